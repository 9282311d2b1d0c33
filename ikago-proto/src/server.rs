//! The server machine: FakeTCP from many clients in, full-cone NAT to the Internet out, and back
//!
//! Clients are keyed by their tunnel address (IP and port as seen here, so clients behind one NAT
//! stay apart), IPv4 or IPv6: the server takes FakeTCP on each listen device's IPv4 address and
//! on its IPv6 address ([`DeviceConfig::ipv6`](crate::DeviceConfig::ipv6)), and a Packet Too
//! Big to a listen IPv6 address about a segment to a client lowers that client's frame size. A SYN starts a half-open handshake (see [`crate::admission`]: floods cannot lock
//! clients out); the client's ACK or first data segment establishes it. A SYN on an established
//! connection gets a challenge ACK, and only a peer that really restarted can answer it with the
//! RST that replaces the session. Data from an address without a connection is answered with a
//! RST so that a client recovers at once after a server restart.
//! Inner packets are reassembled if fragmented, translated by the NAT onto the upstream address
//! and sent to their next hop; replies are translated back and sealed to the owning client.
//!
//! Inner IPv6 (from `ikago2` clients) is NATed onto the upstream device's IPv6 address (NAT66)
//! and sent to the IPv6 gateway, resolved by neighbour discovery; it is never fragmented on the
//! way: a packet larger than `fragment` is answered with an ICMPv6 Packet Too Big to the client.

mod ikago2;

use crate::admission::{Admission, SynAdmission};
use crate::config::{
    ConfigError, NatConfig, Roles, ServerConfig, TcpTuning, Transport, check_common,
    check_transport,
};
use crate::event::Event;
use crate::faketcp::{Change, Conn, Control, Received, Reply};
use crate::hashing::{self, Keyed, Map, PeerMap};
use crate::io::{ConnId, DeviceId, Input, Output, StreamInput, StreamOp};
use crate::kcp::{KcpError, KcpSession, KcpStats, KcpTuning};
use crate::machine::{Core, Dest, Machine};
use crate::nat::Nat;
use crate::openwatch::{self, Watch};
use crate::outer;
use crate::pmtu;
use crate::shard::Shard;
use crate::stats::{DropReason, Peer, PeerStats, Stats};
use crate::stream::{Clients, Framing, ServerRead};
use crate::timer::{Queue, Timers};
use crate::txq::FrameBuf;
use crate::wire::{Mac, arp, ethernet, icmpv6, ip, ipv4, ipv6, proto, tcp};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Interval of the sweep that forgets stale half-open handshakes (at most
/// [`crate::admission::HALF_OPEN_MAX`])
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Reassembly scopes of inner fragments are per client, above the device scopes (0-255)
const CLIENT_SCOPE_BASE: u32 = 256;

#[derive(Debug, Clone, Copy)]
#[repr(usize)]
enum Timer {
    Sweep,
}
const TIMERS: usize = 1;

/// One client of the server
#[derive(Debug)]
struct Slot {
    id: u32,
    device: DeviceId,
    mac: Mac,
    conn: Conn,
    stats: PeerStats,
    /// The client's KCP session, opened by its first data shard
    kcp: Option<KcpSession>,
    /// Whether its payloads open (a wrong password or method shows here)
    opening: Watch,
    /// The deadline of its valid entry in [`Server::kcp_due`], if any
    kcp_scheduled: Option<Instant>,
    /// The deadline of its valid entry in [`Server::idle_due`]: when it may have been silent
    /// for the client timeout (never later than that)
    idle_scheduled: Instant,
    /// The wire it speaks
    wire: ikago2::SlotWire,
}

/// The server side of the tunnel
#[derive(Debug)]
pub struct Server {
    core: Core,
    port: u16,
    public: Option<Ipv4Addr>,
    /// The upstream device's IPv6 address (NAT66), if it has one
    public6: Option<Ipv6Addr>,
    nat: Nat,
    tuning: TcpTuning,
    max_clients: usize,
    client_timeout: Duration,
    /// The clients (and NAT ports) this engine serves
    shard: Shard,
    /// Established clients by tunnel address (never iterated where order shows)
    clients: PeerMap<Slot>,
    /// Tunnel addresses by client id
    by_id: Map<u32, SocketAddr>,
    next_id: u32,
    /// Clients' delayed ACKs (valid while it is the client's `conn.ack_due`)
    ack_due: Queue<SocketAddr>,
    /// Clients' KCP clocks (valid while it is the client's `kcp_scheduled`)
    kcp_due: Queue<SocketAddr>,
    /// Clients' idle timeouts (valid while it is the client's `idle_scheduled`)
    idle_due: Queue<SocketAddr>,
    /// Half-open handshakes, cookies and the SYN budget
    admission: Admission,
    timers: Timers<TIMERS>,
    /// KCP tuning, with `--kcp`: every client then talks through a KCP session
    kcp_tuning: Option<KcpTuning>,
    /// A work buffer for one KCP datagram
    datagram: Vec<u8>,
    /// `ikago2`, when accepted
    ikago2: Option<ikago2::Wire>,
    /// The clients' kernel TCP connections in `tcp` mode (then `clients` stays empty)
    streams: Option<Clients>,
}

/// Checks the NAT pools and returns this engine's slice of them
/// Whether the delayed ACK of `peer` at `at` is still due (no ACK or data has left since)
fn ack_live(clients: &PeerMap<Slot>, at: Instant, peer: SocketAddr) -> bool {
    clients
        .get(&peer)
        .is_some_and(|s| s.conn.ack_due == Some(at))
}

fn check_nat(nat: &NatConfig, shard: &Shard) -> Result<NatConfig, ConfigError> {
    let mut mine = nat.clone();
    for (name, r) in [
        ("tcp", &mut mine.tcp_ports),
        ("udp", &mut mine.udp_ports),
        ("icmp", &mut mine.icmp_ids),
    ] {
        if r.start() > r.end() {
            return Err(ConfigError::EmptyNatRange(name));
        }
        *r = shard
            .slice(r)
            .ok_or(ConfigError::NatRangeTooSmall(name, shard.count))?;
    }
    Ok(mine)
}

impl Server {
    /// Validates `config` and starts serving
    pub fn new(config: ServerConfig, now: Instant) -> Result<Self, ConfigError> {
        let roles = Roles::of(&config.devices)?;
        check_common(
            config.mtu,
            config.fragment,
            config.method,
            &config.password,
            config.kcp.as_ref(),
        )?;
        check_transport(
            config.transport,
            config.protocol,
            config.method,
            config.kcp.as_ref(),
        )?;
        if config.port == 0 {
            return Err(ConfigError::PortZero);
        }
        config.shard.check()?;
        let nat = check_nat(&config.nat, &config.shard)?;
        if config.max_clients == 0 {
            return Err(ConfigError::Zero("max clients"));
        }
        let public = config.devices[roles.upstream].addr;
        let public6 = config.devices[roles.upstream].ipv6.map(|l| l.addr);
        let wire = ikago2::Wire::new(&config, now)?;
        let framing = wire.as_ref().map_or(Framing::Ipv4, ikago2::Wire::framing);
        // the cookie key comes from its own stream of the seed, apart from the machine's draws
        let mut cookie_key = [0u8; 16];
        let mut keys = ChaCha20Rng::from_seed(config.rng_seed);
        keys.set_stream(1);
        keys.fill_bytes(&mut cookie_key);
        // and the tables' hash key from another
        let mut hash_key = [0u8; 16];
        keys.set_stream(2);
        keys.fill_bytes(&mut hash_key);
        let keyed = Keyed::new(hash_key);
        let core = Core::new(
            config.devices,
            roles.upstream,
            config.method,
            &config.password,
            config.mtu,
            config.fragment,
            config.reassembly,
            config.rng_seed,
            now,
        );
        Ok(Self {
            admission: Admission::new(cookie_key, now),
            core,
            port: config.port,
            public,
            public6,
            nat: Nat::new(&nat, public, public6, keyed),
            shard: config.shard,
            tuning: config.tcp,
            max_clients: config.max_clients,
            client_timeout: config.client_timeout,
            clients: PeerMap::new(keyed),
            by_id: hashing::map(keyed),
            next_id: 0,
            ack_due: Queue::default(),
            kcp_due: Queue::default(),
            idle_due: Queue::default(),
            timers: Timers::default(),
            kcp_tuning: config.kcp,
            datagram: vec![0; usize::from(u16::MAX)],
            ikago2: wire,
            streams: (config.transport == Transport::Tcp).then(|| Clients::new(framing)),
        })
    }

    /// The FakeTCP port clients connect to
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The public (NAT) IPv4 address, when the upstream device has one
    pub fn public_addr(&self) -> Option<Ipv4Addr> {
        self.public
    }

    /// The public IPv6 (NAT66) address, when the upstream device has one
    pub fn public_addr6(&self) -> Option<Ipv6Addr> {
        self.public6
    }

    /// Clients with an established connection, in address order
    pub fn clients(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let mut v: Vec<SocketAddr> = self.clients.keys().collect();
        v.sort_unstable();
        v.into_iter()
    }

    /// Handshakes waiting for the client's ACK (bounded, expiring in seconds)
    pub fn half_open(&self) -> usize {
        self.admission.len()
    }

    /// Feeds a captured frame or the passage of time; never fails on network bytes
    pub fn handle_input(&mut self, input: Input<'_>) {
        self.drive_input(input);
    }

    /// The next frame to inject (written to `buf`), event, or the instant to call back
    ///
    /// # Panics
    /// If `buf` is shorter than [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN).
    pub fn poll_output(&mut self, buf: &mut [u8]) -> Output {
        self.drive_output(buf)
    }

    /// A snapshot of the counters, with one entry per client
    pub fn stats(&self) -> Stats {
        let mut s = self.core.stats.clone();
        s.peers = self.clients.values().map(|c| c.stats).collect();
        if let Some(streams) = &self.streams {
            s.peers.extend(streams.stats());
            s.transport = Transport::Tcp;
        }
        s.peers.sort_by_key(|p| p.peer);
        s.nat_mappings = self.nat.len();
        if self.kcp_tuning.is_some() {
            let mut total = KcpStats::default();
            for k in self.clients.values().filter_map(|c| c.kcp.as_ref()) {
                total.accumulate(&k.stats());
            }
            s.kcp = Some(total);
        }
        s.nat_capacity = self.nat.capacity();
        s.unopenable = self
            .clients
            .values()
            .filter(|c| c.opening.flagged())
            .count();
        s
    }

    fn handle_ipv4(&mut self, device: DeviceId, from: Mac, pkt: &ipv4::Packet<'_>) {
        let dev = self.core.device(device);
        let to_listener = dev.role.listens() && Some(pkt.dst()) == dev.addr;
        let to_public = device == self.core.upstream && Some(pkt.dst()) == self.public;
        if !to_listener && !to_public {
            return self.core.drop(DropReason::NotForUs);
        }
        self.handle_ip(device, from, &ip::Packet::V4(*pkt), to_listener, to_public);
    }

    /// A packet (either family) to a listen address (`to_listener`) or the public address
    /// (`to_public`): reassembled when it is a fragment, then dispatched
    #[inline(always)]
    fn handle_ip(
        &mut self,
        device: DeviceId,
        from: Mac,
        pkt: &ip::Packet<'_>,
        to_listener: bool,
        to_public: bool,
    ) {
        if pkt.is_fragment() {
            return self.reassemble_then_dispatch(device, from, pkt, to_listener, to_public);
        }
        self.dispatch(device, from, pkt, to_listener, to_public);
    }

    /// The fragment `pkt` to reassembly, then the packet it completes, if any, to [`Self::dispatch`]
    #[cold]
    fn reassemble_then_dispatch(
        &mut self,
        device: DeviceId,
        from: Mac,
        pkt: &ip::Packet<'_>,
        to_listener: bool,
        to_public: bool,
    ) {
        if let Some(whole) = self.core.reassemble_outer(u32::from(device.0), pkt) {
            if let Some(p) = ip::Packet::parse(whole.bytes()) {
                self.dispatch(device, from, &p, to_listener, to_public);
            }
            self.core.release(whole);
        }
    }

    /// Routes a whole packet to the tunnel (our port on a listen address) or to the NAT
    fn dispatch(
        &mut self,
        device: DeviceId,
        from: Mac,
        pkt: &ip::Packet<'_>,
        to_listener: bool,
        to_public: bool,
    ) {
        let payload = pkt.payload();
        let tunnel = to_listener
            && pkt.protocol() == proto::TCP
            && payload.len() >= 4
            && u16::from_be_bytes([payload[2], payload[3]]) == self.port;
        if tunnel {
            self.handle_segment(device, from, pkt);
        } else if to_public {
            self.nat_in(pkt.bytes());
        } else {
            self.core.drop(DropReason::NotForUs);
        }
    }

    fn handle_segment(&mut self, device: DeviceId, from: Mac, pkt: &ip::Packet<'_>) {
        let Some(seg) = self.core.parse_tunnel(pkt) else {
            return;
        };
        let peer = SocketAddr::new(pkt.src(), seg.src_port());
        if !self.shard.owns(peer) {
            // another engine's client: no answer, not even a RST
            return self.core.drop(DropReason::OtherShard);
        }
        let local = SocketAddr::new(pkt.dst(), self.port);
        if self.refuses_syn(local, peer, &seg) {
            return;
        }
        if self.established_segment(device, from, peer, &seg, pkt.bytes().len()) {
            return;
        }
        if self.admission.get_mut(&peer).is_some() {
            self.core.stats.tunnel_rx.add(pkt.bytes().len());
            return self.half_open_segment(device, from, peer, &seg);
        }
        let flags = seg.flags();
        if flags & tcp::RST != 0 {
            return self.core.drop(DropReason::UnknownPeer);
        }
        if flags & tcp::SYN != 0 && flags & tcp::ACK == 0 {
            return self.syn(device, from, local, peer, pkt, &seg);
        }
        let since_start = self.core.now.saturating_duration_since(self.core.epoch);
        if flags & (tcp::SYN | tcp::ACK) == tcp::ACK
            && let Some(restored) = self.admission.check_cookie(local, peer, &seg, since_start)
        {
            let conn = Conn::from_cookie(
                local,
                peer,
                &seg,
                restored,
                self.mss(peer),
                &self.admission.cookies,
                self.core.now,
                self.core.epoch,
                &mut self.core.rng,
            );
            if self.establish(peer, device, from, conn) {
                self.established_segment(device, from, peer, &seg, pkt.bytes().len());
            }
            return;
        }
        self.core.drop(DropReason::UnknownPeer);
        if self.answers_strangers() {
            self.core
                .send_reset(device, Dest::Mac(from), local, peer, &seg);
        }
    }

    /// The MSS the server offers to `peer`
    fn mss(&self, peer: SocketAddr) -> u16 {
        outer::mss(self.core.mtu, peer.ip())
    }

    /// A SYN from a peer with no connection: a half-open entry, a cookie, or nothing
    fn syn(
        &mut self,
        device: DeviceId,
        from: Mac,
        local: SocketAddr,
        peer: SocketAddr,
        pkt: &ip::Packet<'_>,
        seg: &tcp::Segment<'_>,
    ) {
        if self.clients.len() >= self.max_clients {
            return self.core.drop(DropReason::TooManyClients);
        }
        let (now, epoch, mss) = (self.core.now, self.core.epoch, self.mss(peer));
        let how = self.admission.admit(now);
        let mut conn = match how {
            SynAdmission::OverBudget => return self.core.drop(DropReason::SynRate),
            SynAdmission::Table => {
                Conn::accept(local, peer, seg, mss, now, epoch, &mut self.core.rng)
            }
            SynAdmission::Cookie => Conn::cookie_answer(
                local,
                peer,
                seg,
                mss,
                &self.admission.cookies,
                now,
                epoch,
                &mut self.core.rng,
            ),
        };
        self.core.stats.tunnel_rx.add(pkt.bytes().len());
        self.core
            .send_control(&mut conn, device, Dest::Mac(from), Control::SynAck);
        if how == SynAdmission::Table {
            self.admission.insert(peer, conn, device, from, now);
            self.timers
                .set_earliest(Timer::Sweep as usize, now + SWEEP_INTERVAL);
        }
    }

    /// A segment of a half-open handshake: its ACK or first data establishes the client
    fn half_open_segment(
        &mut self,
        device: DeviceId,
        from: Mac,
        peer: SocketAddr,
        seg: &tcp::Segment<'_>,
    ) {
        let now = self.core.now;
        let Some(h) = self.admission.get_mut(&peer) else {
            return;
        };
        h.device = device;
        h.mac = from;
        let r = h.conn.handle_segment(now, seg);
        match r.change {
            Some(Change::Established) => {
                let h = self.admission.remove(&peer).expect("looked up above");
                if self.establish(peer, device, from, h.conn) {
                    self.after_segment(peer, r, seg);
                }
            }
            Some(Change::Reset) => {
                self.admission.remove(&peer);
            }
            Some(Change::Connected { .. }) | None => {
                if let Some(reason) = r.refused {
                    self.core.drop(reason);
                }
                if r.reply == Reply::SynAck {
                    self.core
                        .send_control(&mut h.conn, device, Dest::Mac(from), Control::SynAck);
                }
            }
        }
    }

    /// Makes `conn` an established client; false when the client limit refuses it
    fn establish(&mut self, peer: SocketAddr, device: DeviceId, mac: Mac, conn: Conn) -> bool {
        if self.clients.len() >= self.max_clients {
            self.core.drop(DropReason::TooManyClients);
            return false;
        }
        let now = self.core.now;
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let wire = self.new_slot_wire();
        let stats = PeerStats {
            peer: Peer::Client(peer),
            out: Default::default(),
            r#in: Default::default(),
            first_seen: now,
            last_seen: now,
            protocol: wire.protocol(),
        };
        let slot = Slot {
            id,
            device,
            mac,
            conn,
            stats,
            kcp: None,
            opening: Watch::new(openwatch::CLIENT_PAYLOADS),
            kcp_scheduled: None,
            idle_scheduled: now + self.client_timeout,
            wire,
        };
        self.clients.insert(peer, slot);
        self.by_id.insert(id, peer);
        self.core.stats.handshakes += 1;
        self.core.tx.event(Event::ClientConnected { client: peer });
        let clients = &self.clients;
        self.idle_due
            .push(now + self.client_timeout, peer, clients.len(), |at, p| {
                clients.get(&p).is_some_and(|s| s.idle_scheduled == at)
            });
        true
    }

    /// A segment (`len` bytes of IPv4) of an established client, counted and handled; false
    /// when `peer` is no client (one lookup of the client for both)
    fn established_segment(
        &mut self,
        device: DeviceId,
        from: Mac,
        peer: SocketAddr,
        seg: &tcp::Segment<'_>,
        len: usize,
    ) -> bool {
        let now = self.core.now;
        let Some(slot) = self.clients.get_mut(&peer) else {
            return false;
        };
        self.core.stats.tunnel_rx.add(len);
        slot.device = device;
        slot.mac = from;
        let r = slot.conn.handle_segment(now, seg);
        if r.change == Some(Change::Reset) {
            self.forget(peer);
        } else {
            self.after_segment(peer, r, seg);
        }
        true
    }

    /// Sends what an established client's segment asks for and delivers its payload
    fn after_segment(&mut self, peer: SocketAddr, r: Received, seg: &tcp::Segment<'_>) {
        if let Some(reason) = r.refused {
            self.core.drop(reason);
        }
        match r.reply {
            Reply::Ack => self.send_control(peer, Control::Ack),
            Reply::SynAck => self.send_control(peer, Control::SynAck),
            Reply::Challenge => {
                if let Some(slot) = self.clients.get_mut(&peer) {
                    self.core
                        .send_challenge(&mut slot.conn, slot.device, Dest::Mac(slot.mac));
                }
            }
            Reply::Reset | Reply::None => {}
        }
        if r.deliver {
            self.open_from_client(peer, seg.payload());
            self.schedule_ack(peer);
        }
    }

    fn forget(&mut self, peer: SocketAddr) {
        if let Some(slot) = self.clients.remove(&peer) {
            self.by_id.remove(&slot.id);
        }
    }

    fn send_control(&mut self, peer: SocketAddr, kind: Control) {
        let Some(slot) = self.clients.get_mut(&peer) else {
            return;
        };
        self.core
            .send_control(&mut slot.conn, slot.device, Dest::Mac(slot.mac), kind);
    }

    fn schedule_ack(&mut self, peer: SocketAddr) {
        let Some(slot) = self.clients.get_mut(&peer) else {
            return;
        };
        let threshold = self.tuning.ack_bytes.min(slot.conn.window_bytes() / 4);
        if slot.conn.take_quickack() || slot.conn.unacked >= threshold {
            self.send_control(peer, Control::Ack);
        } else if slot.conn.unacked > 0 && slot.conn.ack_due.is_none() {
            let at = self.core.now + self.tuning.ack_delay;
            slot.conn.ack_due = Some(at);
            let clients = &self.clients;
            self.ack_due
                .push(at, peer, clients.len(), |at, p| ack_live(clients, at, p));
        }
    }

    /// Opens a client's payload into a frame buffer and sends the inner packet through the NAT
    fn open_from_client(&mut self, peer: SocketAddr, sealed: &[u8]) {
        if self.ikago2_payload(peer, sealed) {
            return;
        }
        let now = self.core.now;
        let Some(slot) = self.clients.get_mut(&peer) else {
            return;
        };
        let id = slot.id;
        let mut buf = self.core.tx.take(ethernet::HEADER_LEN + sealed.len());
        let Ok(len) = self
            .core
            .cipher
            .open_into(sealed, &mut buf.bytes[ethernet::HEADER_LEN..])
        else {
            self.core.tx.recycle(buf);
            if let Some(packets) = slot.opening.failure(now) {
                self.core.tx.event(Event::Unopenable { peer, packets });
            }
            return self.core.drop(DropReason::DecryptFailed);
        };
        slot.opening.success();
        slot.compat_opened();
        if self.kcp_tuning.is_some() {
            self.kcp_input(
                peer,
                id,
                &buf.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + len],
            );
            return self.core.tx.recycle(buf);
        }
        buf.len = ethernet::HEADER_LEN + len;
        self.take_inner(peer, id, buf);
    }

    /// Feeds a client's KCP datagram to its session (opening one for a new conversation) and
    /// forwards the messages it completes
    fn kcp_input(&mut self, peer: SocketAddr, id: u32, datagram: &[u8]) {
        let now = self.core.now;
        let Some(tuning) = self.kcp_tuning else {
            return;
        };
        let Some(slot) = self.clients.get_mut(&peer) else {
            return;
        };
        let conv = tuning.conversation_of(datagram);
        let fresh = match (&slot.kcp, conv) {
            (None, Some(_)) => true,
            (Some(s), Some(c)) => s.conv() != c,
            (_, None) => false,
        };
        if let (true, Some(c)) = (fresh, conv) {
            // a new client, or one that restarted its session (kcp-go replaces it too)
            slot.kcp = Some(
                KcpSession::new(c, &tuning, now).expect("the tuning was validated by Server::new"),
            );
        }
        let Some(session) = slot.kcp.as_mut() else {
            return self.core.drop(DropReason::BadKcp);
        };
        if session.handle_datagram(now, datagram).is_err() {
            return self.core.drop(DropReason::BadKcp);
        }
        let mut scratch = std::mem::take(&mut self.core.scratch);
        while let Some(n) = self
            .clients
            .get_mut(&peer)
            .and_then(|s| s.kcp.as_mut())
            .and_then(|k| k.recv(&mut scratch))
        {
            let mut buf = self.core.tx.take(ethernet::HEADER_LEN + n);
            buf.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + n]
                .copy_from_slice(&scratch[..n]);
            buf.len = ethernet::HEADER_LEN + n;
            self.take_inner(peer, id, buf);
        }
        self.core.scratch = scratch;
        self.flush_kcp(peer);
    }

    /// Validates an inner packet from a client at `buf.bytes[14..buf.len]`, reassembles it if it
    /// is a fragment, and sends it through the NAT; refused without an upstream IPv4 address
    fn take_inner(&mut self, peer: SocketAddr, id: u32, mut buf: FrameBuf) {
        let len = buf.len - ethernet::HEADER_LEN;
        if buf
            .bytes
            .get(ethernet::HEADER_LEN)
            .is_some_and(|b| b >> 4 == 6)
        {
            return self.take_inner6(peer, id, buf);
        }
        let (valid, is_fragment) =
            match ipv4::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + len])
            {
                Ok(p) => (p.bytes().len() == len, p.is_fragment()),
                Err(_) => (false, false),
            };
        let reason = if !valid {
            Some(DropReason::BadInner)
        } else {
            self.public.is_none().then_some(DropReason::NoIpv4)
        };
        if let Some(r) = reason {
            self.core.tx.recycle(buf);
            return self.core.drop(r);
        }
        let now = self.core.now;
        if let Some(slot) = self.clients.get_mut(&peer) {
            slot.stats.out.add(len);
            slot.stats.last_seen = now;
        }
        self.core.stats.inner_rx.add(len);
        if is_fragment {
            // a Go client forwards its sources' fragments as they are
            let frag = &buf.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + len];
            let p = ipv4::Packet::parse(frag).expect("validated above");
            let scope = CLIENT_SCOPE_BASE.wrapping_add(id);
            let whole = match self.core.reassembler.handle_fragment(now, scope, &p) {
                Err(r) => {
                    self.core.tx.recycle(buf);
                    return self.core.drop(r);
                }
                Ok(None) => return self.core.tx.recycle(buf),
                Ok(Some(whole)) => whole,
            };
            let n = whole.len();
            let mut out = self.core.tx.take(ethernet::HEADER_LEN + n);
            out.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + n].copy_from_slice(whole);
            out.len = ethernet::HEADER_LEN + n;
            self.core.tx.recycle(buf);
            return self.nat_out(peer, id, out);
        }
        buf.len = ethernet::HEADER_LEN + len;
        self.nat_out(peer, id, buf);
    }

    /// Validates an inner IPv6 packet from a client at `buf.bytes[14..buf.len]` and sends it
    /// through the NAT66; refused from a client on the `ikago` wire (which carries IPv4 only),
    /// without an upstream IPv6 address, or as a fragment (clients reassemble before tunnelling)
    fn take_inner6(&mut self, peer: SocketAddr, id: u32, buf: FrameBuf) {
        let len = buf.len - ethernet::HEADER_LEN;
        let reason = match ipv6::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..buf.len]) {
            Ok(p) if p.bytes().len() != len || p.fragment().is_some() => Some(DropReason::BadInner),
            Ok(_) => None,
            Err(e) => Some(e.into()),
        };
        let compat = self
            .clients
            .get(&peer)
            .is_some_and(|s| matches!(s.wire, ikago2::SlotWire::Compat) || s.kcp.is_some());
        let reason = reason
            .or(compat.then_some(DropReason::Ipv6OnIkago))
            .or(self.public6.is_none().then_some(DropReason::NoIpv6));
        if let Some(r) = reason {
            self.core.tx.recycle(buf);
            return self.core.drop(r);
        }
        let now = self.core.now;
        if let Some(slot) = self.clients.get_mut(&peer) {
            slot.stats.out.add(len);
            slot.stats.last_seen = now;
        }
        self.core.stats.inner_rx.add(len);
        self.nat_out6(peer, id, buf);
    }

    /// Translates the inner IPv6 packet at `buf.bytes[14..buf.len]` and sends it toward its
    /// destination, or answers a Packet Too Big when it exceeds `fragment` (IPv6 routers do not
    /// fragment)
    fn nat_out6(&mut self, peer: SocketAddr, id: u32, buf: FrameBuf) {
        let (fragment, up) = (self.core.fragment, self.core.upstream);
        let len = buf.len - ethernet::HEADER_LEN;
        let Ok(p) = ipv6::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..buf.len]) else {
            return self.core.tx.recycle(buf);
        };
        // outbound NAT rewrites only the source: the destination read here stays valid
        let dst = p.dst();
        let (Some(public6), Some(link)) = (self.public6, self.core.device(up).ipv6) else {
            self.core.tx.recycle(buf);
            return self.core.drop(DropReason::NoIpv6);
        };
        if len > fragment {
            let ptb = self.core.packet_too_big(&p, public6, fragment);
            self.seal_to_client(id, &ptb.bytes[ethernet::HEADER_LEN..ptb.len]);
            self.core.tx.recycle(ptb);
            return self.core.tx.recycle(buf);
        }
        if !link.net().contains(dst) && link.gateway.is_none() {
            self.core.tx.recycle(buf);
            return self.core.drop(DropReason::NoRoute);
        }
        let Some(mut buf) = self.translate_out(peer, id, buf) else {
            return;
        };
        let hop = Dest::NextHop(IpAddr::V6(self.core.next_hop6(up, dst)));
        self.core.stats.local_tx.add(len);
        let src = self.core.device(up).mac;
        ethernet::write(&mut buf.bytes, Mac::ZERO, src, ethernet::ETHERTYPE_IPV6);
        buf.len = ethernet::pad(&mut buf.bytes, buf.len);
        self.core.send_frame(up, hop, buf);
    }

    /// An IPv6 frame on `device`: neighbour advertisements teach the gateway's MAC; packets to
    /// the public IPv6 address go back through the NAT66
    fn handle_ipv6(&mut self, device: DeviceId, from: Mac, pkt: &ipv6::Packet<'_>) {
        match icmpv6::parse_ndp(pkt) {
            Some(Ok(icmpv6::Ndp::Advert {
                target, target_mac, ..
            })) => {
                return self
                    .core
                    .learn_mac(device, target.into(), target_mac.unwrap_or(from));
            }
            // the host's kernel answers solicitations for its own addresses
            Some(Ok(icmpv6::Ndp::Solicit { .. })) => return self.core.drop(DropReason::NotForUs),
            Some(Err(())) => return self.core.drop(DropReason::NdpInvalid),
            None => {}
        }
        let dev = self.core.device(device);
        let to_listener = dev.role.listens() && dev.ipv6.is_some_and(|l| l.addr == pkt.dst());
        let to_public = device == self.core.upstream && Some(pkt.dst()) == self.public6;
        if !to_listener && !to_public {
            return self.core.drop(DropReason::NotForUs);
        }
        if to_listener && let Some(report) = pmtu::parse(pkt) {
            match report {
                Ok(r) if r.local.port() == self.port => return self.tunnel_packet_too_big(&r),
                // a NAT66 flow's, translated back to its client below
                Ok(_) | Err(_) if to_public => {}
                Ok(_) => return self.core.drop(DropReason::BadPacketTooBig),
                Err(reason) => return self.core.drop(reason),
            }
        }
        self.handle_ip(device, from, &ip::Packet::V6(*pkt), to_listener, to_public);
    }

    /// A Packet Too Big about a segment to a client: lowers that client's frame size when it
    /// quotes one of its unacknowledged segments
    fn tunnel_packet_too_big(&mut self, report: &pmtu::Report) {
        match self.clients.get_mut(&report.remote) {
            Some(slot) => self.core.packet_too_big_for(&mut slot.conn, report),
            None => self.core.drop(DropReason::BadPacketTooBig),
        }
    }

    /// Translates the inner packet at `buf.bytes[14..buf.len]` and sends it toward its
    /// destination, or answers a Fragmentation Needed when it exceeds `fragment` with DF set
    fn nat_out(&mut self, peer: SocketAddr, id: u32, buf: FrameBuf) {
        let fragment = self.core.fragment;
        let Some(public) = self.public else {
            self.core.tx.recycle(buf);
            return self.core.drop(DropReason::NoIpv4);
        };
        let len = buf.len - ethernet::HEADER_LEN;
        // outbound NAT rewrites only the source: the destination read here stays valid
        let (df, dst) = match ipv4::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..buf.len]) {
            Ok(p) => (p.dont_fragment(), p.dst()),
            Err(_) => return self.core.tx.recycle(buf),
        };
        if len > fragment && df {
            let p = ipv4::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..buf.len])
                .expect("validated by the caller");
            let icmp = self.core.frag_needed(&p, public, fragment);
            self.seal_to_client(id, &icmp.bytes[ethernet::HEADER_LEN..icmp.len]);
            self.core.tx.recycle(icmp);
            return self.core.tx.recycle(buf);
        }
        let Some(mut buf) = self.translate_out(peer, id, buf) else {
            return;
        };
        let up = self.core.upstream;
        let hop = Dest::NextHop(self.core.next_hop(up, dst).into());
        self.core.stats.local_tx.add(len);
        if len <= fragment {
            let src = self.core.device(up).mac;
            ethernet::write(&mut buf.bytes, Mac::ZERO, src, ethernet::ETHERTYPE_IPV4);
            buf.len = ethernet::pad(&mut buf.bytes, buf.len);
            self.core.send_frame(up, hop, buf);
        } else {
            let p = ipv4::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..buf.len])
                .expect("NAT keeps the header valid");
            self.core.send_ip(up, hop, &p, fragment);
            self.core.tx.recycle(buf);
        }
    }

    /// Runs the outbound NAT of client `id` (at `peer`) over the inner packet at
    /// `buf.bytes[14..buf.len]`, reporting a mapping it created; a refused packet is counted and
    /// its buffer recycled
    fn translate_out(&mut self, peer: SocketAddr, id: u32, mut buf: FrameBuf) -> Option<FrameBuf> {
        let inner = &mut buf.bytes[ethernet::HEADER_LEN..buf.len];
        match self
            .nat
            .outbound(self.core.now, id, inner, &mut self.core.rng)
        {
            Err(r) => {
                self.core.tx.recycle(buf);
                self.core.drop(r);
                None
            }
            Ok(out) => {
                if let Some(m) = out.created {
                    self.core.tx.event(Event::NatMapped {
                        client: peer,
                        protocol: m.protocol,
                        inner: m.inner,
                        public: m.public,
                    });
                }
                Some(buf)
            }
        }
    }

    /// A whole packet to a public address (IPv4 or IPv6): translate it back and seal it to its
    /// client
    fn nat_in(&mut self, pkt: &[u8]) {
        let n = pkt.len();
        let mut scratch = std::mem::take(&mut self.core.scratch);
        scratch[..n].copy_from_slice(pkt);
        let now = self.core.now;
        match self.nat.inbound(now, &mut scratch[..n]) {
            Ok(id) => {
                self.core.stats.local_rx.add(n);
                self.seal_to_client(id, &scratch[..n]);
            }
            Err(r) => self.core.drop(r),
        }
        self.core.scratch = scratch;
    }

    /// Seals an inner packet to client `id`
    fn seal_to_client(&mut self, id: u32, inner: &[u8]) {
        if let Some(streams) = self.streams.as_mut() {
            if !streams.send(&mut self.core, id, inner) {
                self.core.drop(DropReason::UnknownPeer);
            }
            return;
        }
        let Some(peer) = self.by_id.get(&id).copied() else {
            return self.core.drop(DropReason::UnknownPeer);
        };
        let Some(slot) = self.clients.get_mut(&peer) else {
            return;
        };
        if let Some(session) = slot.kcp.as_mut() {
            match session.send(self.core.now, inner) {
                Ok(()) => {
                    slot.stats.r#in.add(inner.len());
                    slot.stats.last_seen = self.core.now;
                    self.core.stats.inner_tx.add(inner.len());
                }
                Err(KcpError::TooLarge { .. } | KcpError::Empty) => {
                    self.core.drop(DropReason::TooBig)
                }
                Err(_) => self.core.drop(DropReason::QueueFull),
            }
            return self.flush_kcp(peer);
        }
        if matches!(slot.wire, ikago2::SlotWire::Undecided) {
            return self.core.drop(DropReason::UnknownPeer);
        }
        let sealed = inner.len() + slot.wire.overhead(self.core.cipher.overhead());
        if !slot.conn.can_send() || sealed + slot.conn.data_offset() > ipv4::MAX_LEN {
            return self.core.drop(DropReason::TooBig);
        }
        if !slot.conn.window_allows(sealed) {
            return self.core.drop(DropReason::PeerWindowFull);
        }
        slot.stats.r#in.add(inner.len());
        slot.stats.last_seen = self.core.now;
        if matches!(slot.wire, ikago2::SlotWire::Compat) {
            self.core
                .send_tunnel(&mut slot.conn, slot.device, Dest::Mac(slot.mac), inner);
        } else {
            self.send_record(peer, crate::ikago2::Kind::Packet, inner);
        }
        self.core.stats.inner_tx.add(inner.len());
    }

    /// Sends the datagrams a client's KCP session has ready and re-arms the KCP timer
    fn flush_kcp(&mut self, peer: SocketAddr) {
        let Some(slot) = self.clients.get_mut(&peer) else {
            return;
        };
        let Some(session) = slot.kcp.as_mut() else {
            return;
        };
        if slot.conn.can_send() {
            while let Some(n) = session.poll_datagram(&mut self.datagram) {
                self.core.send_tunnel(
                    &mut slot.conn,
                    slot.device,
                    Dest::Mac(slot.mac),
                    &self.datagram[..n],
                );
            }
        }
        let at = session.poll_timeout();
        if slot.kcp_scheduled.is_none_or(|s| at < s) {
            slot.kcp_scheduled = Some(at);
            let clients = &self.clients;
            self.kcp_due.push(at, peer, clients.len(), |at, p| {
                clients.get(&p).is_some_and(|s| s.kcp_scheduled == Some(at))
            });
        }
    }
}

impl Machine for Server {
    fn core(&mut self) -> &mut Core {
        &mut self.core
    }

    fn handle_frame(&mut self, device: DeviceId, eth: ethernet::Frame<'_>) {
        match eth.ethertype {
            ethernet::ETHERTYPE_ARP => {
                let Some(a) = arp::parse(eth.payload) else {
                    return self.core.drop(DropReason::Malformed);
                };
                self.core.learn_neighbor(device, &a);
            }
            ethernet::ETHERTYPE_IPV4 => match ipv4::Packet::parse(eth.payload) {
                Ok(p) => self.handle_ipv4(device, eth.src, &p),
                Err(e) => self.core.drop(e.into()),
            },
            ethernet::ETHERTYPE_IPV6 => match ipv6::Packet::parse(eth.payload) {
                Ok(p) => self.handle_ipv6(device, eth.src, &p),
                Err(e) => self.core.drop(e.into()),
            },
            _ => self.core.drop(DropReason::NotForUs),
        }
    }

    fn handle_stream(&mut self, conn: ConnId, event: StreamInput<'_>) {
        let Some(streams) = self.streams.as_mut() else {
            return self.core.drop(DropReason::NotForUs);
        };
        match event {
            StreamInput::Opened { peer } => {
                if streams.len() >= self.max_clients {
                    self.core.drop(DropReason::TooManyClients);
                    return self.core.tx.stream_op(StreamOp::Close { conn });
                }
                let id = self.next_id;
                self.next_id = self.next_id.wrapping_add(1);
                streams.open(&mut self.core, conn, peer, id);
            }
            StreamInput::Closed => streams.close(&mut self.core, conn),
            StreamInput::Data(mut rest) => {
                streams.arrive(&mut self.core, conn);
                while let Some(streams) = self.streams.as_mut() {
                    let (now, epoch) = (self.core.now, self.core.epoch);
                    let mut accept = self.ikago2.as_mut().map(|w| w.accept(now, epoch));
                    match streams.read(&mut self.core, conn, &mut rest, accept.as_mut()) {
                        ServerRead::Record { peer, id, buf } => self.take_inner(peer, id, buf),
                        ServerRead::Handled => {}
                        ServerRead::Done | ServerRead::Closed => return,
                    }
                }
            }
        }
    }

    fn handle_timeout(&mut self) {
        self.core.handle_timeout();
        let now = self.core.now;
        while let Some((at, peer)) = self.kcp_due.pop_due(now) {
            let Some(slot) = self.clients.get_mut(&peer) else {
                continue;
            };
            if slot.kcp_scheduled != Some(at) {
                continue;
            }
            slot.kcp_scheduled = None;
            if let Some(k) = slot.kcp.as_mut()
                && k.poll_timeout() <= now
            {
                k.handle_timeout(now);
            }
            self.flush_kcp(peer);
        }
        let Self { nat, core, .. } = self;
        nat.handle_timeout(now, |m| {
            core.tx.event(Event::NatExpired {
                protocol: m.protocol,
                public: m.public,
            });
        });
        while let Some((at, peer)) = self.ack_due.pop_due(now) {
            if ack_live(&self.clients, at, peer) {
                self.send_control(peer, Control::Ack);
            }
        }
        while let Some((at, peer)) = self.idle_due.pop_due(now) {
            let timeout = self.client_timeout;
            let Some(slot) = self.clients.get_mut(&peer) else {
                continue;
            };
            if slot.idle_scheduled != at {
                continue;
            }
            let due = slot.conn.last_rx + timeout;
            if due <= now {
                self.forget(peer);
                self.core.tx.event(Event::ClientExpired { client: peer });
            } else {
                slot.idle_scheduled = due;
                let clients = &self.clients;
                self.idle_due.push(due, peer, clients.len(), |at, p| {
                    clients.get(&p).is_some_and(|s| s.idle_scheduled == at)
                });
            }
        }
        if self.timers.expire(Timer::Sweep as usize, now) {
            self.admission.expire(now);
            if self.admission.len() > 0 {
                self.timers.set(Timer::Sweep as usize, now + SWEEP_INTERVAL);
            }
        }
    }

    fn skip_stale_deadlines(&mut self) {
        // a delayed ACK goes stale whenever an ACK or data leaves first, many times a second
        // under load: each would wake the runner for nothing
        let clients = &self.clients;
        self.ack_due.skip_stale(|at, p| ack_live(clients, at, p));
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.timers.next(),
            self.core.poll_timeout(),
            self.nat.poll_timeout(),
            self.ack_due.next(),
            self.kcp_due.next(),
            self.idle_due.next(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
