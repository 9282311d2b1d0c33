//! The client machine: LAN sources in, FakeTCP to the server out, and back
//!
//! Frames captured on listen devices from a configured source, addressed to this machine's MAC
//! (it is their gateway, directly or through a published address), are reassembled if
//! fragmented, sealed and sent to the server in FakeTCP data segments over the upstream device.
//! Inner packets coming back are delivered to the source that owns their destination address,
//! with the MAC and device it was last seen with. Until the handshake completes, inner packets
//! wait in a bounded queue.
//!
//! IPv6 packets of the `sources6` hosts travel the same way over the `ikago2` wire (on `ikago`
//! they are dropped: the Go original has no IPv6); the client answers neighbour solicitations for
//! its `publish6` addresses (proxy NDP) and never for others, and a reply larger than `fragment`
//! is not fragmented (IPv6 routers do not): a Packet Too Big goes back to its sender instead.
//!
//! The tunnel runs over IPv6 when the server is an IPv6 address: from the upstream device's IPv6
//! address, to the next hop of its IPv6 gateway (or on-link), resolved by neighbour discovery;
//! an ICMPv6 Packet Too Big about our segments to the server lowers the frame size.
//!
//! With fallback servers the client fails over: when the server resets the connection, stays
//! silent for the peer timeout, leaves data unacknowledged for [`STALL_TIMEOUT`], or does not
//! answer [`FAILOVER_SYN_RETRIES`] SYN retransmissions, the next server in the list is tried
//! (the same local port, on the upstream address of the new server's family; UDP flows resume
//! through the new server's NAT). With `failback`,
//! the first server is tried again after that long on another.

mod ikago2;

use crate::config::{
    ClientConfig, ConfigError, DeviceConfig, Ipv4Net, Ipv6Net, Protocol, Roles, TcpTuning,
    Transport, check_common, check_transport,
};
use crate::event::{Event, PeerLostReason};
use crate::faketcp::{Change, Conn, Control, Reply};
use crate::io::{ConnId, DeviceId, Input, Output, StreamInput};
use crate::kcp::{KcpError, KcpSession, KcpTuning};
use crate::machine::{Core, Dest, Machine};
use crate::openwatch::{self, Watch};
use crate::outer;
use crate::pmtu;
use crate::stats::{DropReason, Peer, PeerStats, Stats};
use crate::stream::{Link, Read};
use crate::timer::Timers;
use crate::txq::FrameBuf;
use crate::wire::{Mac, arp, dns, ethernet, icmpv6, ip, ipv4, ipv6, proto, tcp};
use rand_core::RngCore;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The range a random local port is drawn from (IANA dynamic ports, as the original)
pub const DYNAMIC_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// Remote addresses counted at once; the least recently active is forgotten beyond this
const MAX_REMOTES: usize = 1024;
/// Reassembly scope of inner fragments that arrive through the tunnel (devices use 0-255)
const TUNNEL_SCOPE: u32 = 256;
/// With fallback servers: data unacknowledged this long means the server is gone
pub(crate) const STALL_TIMEOUT: Duration = Duration::from_secs(2);
/// With fallback servers: SYN retransmissions before the next server is tried
pub(crate) const FAILOVER_SYN_RETRIES: u32 = 1;

#[derive(Debug, Clone, Copy)]
#[repr(usize)]
enum Timer {
    Syn,
    Keepalive,
    PeerTimeout,
    Ack,
    Stall,
    Failback,
    /// The `ikago2` initiation's retransmission
    Handshake,
}
const TIMERS: usize = 7;

/// A LAN source seen on a listen device
#[derive(Debug, Clone, Copy)]
struct Source {
    mac: Mac,
    device: DeviceId,
    stats: PeerStats,
}

/// The client side of the tunnel
#[derive(Debug)]
pub struct Client {
    core: Core,
    /// The server in use
    server: SocketAddr,
    /// Every server, the preferred first
    servers: Vec<SocketAddr>,
    /// The index of `server` in `servers`
    active: usize,
    failback: Option<Duration>,
    server_hop: IpAddr,
    sources: Vec<Ipv4Net>,
    publish: Vec<Ipv4Addr>,
    /// LAN IPv6 sources
    sources6: Vec<Ipv6Net>,
    /// IPv6 addresses answered by proxy NDP
    publish6: Vec<Ipv6Addr>,
    tuning: TcpTuning,
    conn: Conn,
    /// The kernel TCP connection in `tcp` mode (then `conn` only names the local address)
    link: Option<Link>,
    known: BTreeMap<IpAddr, Source>,
    pending: VecDeque<FrameBuf>,
    timers: Timers<TIMERS>,
    syn_rto: Duration,
    syn_retries: u32,
    /// The KCP session carrying inner packets, with `--kcp`
    kcp: Option<KcpSession>,
    kcp_tuning: Option<KcpTuning>,
    /// A work buffer for one KCP datagram
    datagram: Vec<u8>,
    /// Counters per remote address
    remotes: BTreeMap<IpAddr, PeerStats>,
    /// When the server last reset the connection
    last_reset: Option<Instant>,
    /// Delay before the handshake after a reset that follows another closely
    reset_backoff: Duration,
    /// The pending SYN timer is a delayed first SYN, not a retransmission
    syn_delayed: bool,
    /// The SYN of this attempt was already repeated after a RST to an old connection's segment
    syn_repeated: bool,
    /// Whether the server's payloads open
    opening: Watch,
    /// Whether anything comes back for the data we send
    answered: Watch,
    dns_records: bool,
    /// The `ikago2` wire, when spoken
    ikago2: Option<ikago2::Wire>,
}

/// Checks that the upstream device `up` can reach `server`: an IPv4 server from the device's
/// IPv4 address, on-link or through the gateway, an IPv6 server from the device's IPv6 address
/// (through its IPv6 gateway, or on-link without one)
fn check_reach(up: &DeviceConfig, server: SocketAddr) -> Result<(), ConfigError> {
    match server.ip() {
        IpAddr::V4(_) if up.addr.is_none() => {
            Err(ConfigError::NoIpv4Upstream(up.name.clone(), server))
        }
        IpAddr::V4(ip) if !up.on_link(ip) && up.gateway.is_none() => {
            Err(ConfigError::NoGateway(up.name.clone(), ip))
        }
        IpAddr::V6(_) if up.ipv6.is_none() => {
            Err(ConfigError::NoIpv6Upstream(up.name.clone(), server))
        }
        IpAddr::V4(_) | IpAddr::V6(_) => Ok(()),
    }
}

/// The local tunnel address toward `server`: the upstream device's address of its family
/// (checked by [`check_reach`]) and `port`
fn tunnel_local(up: &DeviceConfig, server: SocketAddr, port: u16) -> SocketAddr {
    let ip = up.ip_of(server.is_ipv6());
    SocketAddr::new(ip.expect("checked by check_reach"), port)
}

/// A KCP session with conversation id `conv`, else a random one (the original reads 4 random
/// bytes)
fn new_session(
    tuning: &KcpTuning,
    conv: Option<u32>,
    rng: &mut impl RngCore,
    now: Instant,
) -> KcpSession {
    let conv = conv.unwrap_or_else(|| rng.next_u32());
    KcpSession::new(conv, tuning, now).expect("the tuning was validated by Client::new")
}

impl Client {
    /// Validates `config` and starts the handshake (the SYN is the first output)
    pub fn new(config: ClientConfig, now: Instant) -> Result<Self, ConfigError> {
        let roles = Roles::of(&config.devices)?;
        check_common(
            config.mtu,
            config.fragment,
            config.method,
            &config.password,
            config.kcp.as_ref(),
        )?;
        if config.sources.is_empty() && config.sources6.is_empty() {
            return Err(ConfigError::NoSources);
        }
        check_transport(
            config.transport,
            Some(config.protocol),
            config.method,
            config.kcp.as_ref(),
        )?;
        if config.transport == Transport::Tcp && !config.fallback.is_empty() {
            return Err(ConfigError::StreamExcludes("fallback servers"));
        }
        if config.tcp.pending_packets == 0 {
            return Err(ConfigError::Zero("pending packets"));
        }
        if config.protocol == Protocol::Ikago2 {
            if config.password.is_empty() {
                return Err(ConfigError::Ikago2NeedsPassword);
            }
            if config.kcp.is_some() {
                return Err(ConfigError::Ikago2WithKcp);
            }
        }
        let up = &config.devices[roles.upstream];
        for server in std::iter::once(&config.server).chain(&config.fallback) {
            check_reach(up, *server)?;
        }
        let wire = (config.protocol == Protocol::Ikago2).then(|| ikago2::Wire::new(&config, now));
        let mut core = Core::new(
            config.devices.clone(),
            roles.upstream,
            config.method,
            &config.password,
            config.mtu,
            config.fragment,
            config.reassembly,
            config.rng_seed,
            now,
        );
        let port = match config.port {
            0 => {
                let span = u32::from(DYNAMIC_PORTS.end() - DYNAMIC_PORTS.start()) + 1;
                DYNAMIC_PORTS.start() + (core.rng.next_u32() % span) as u16
            }
            p => p,
        };
        let local = tunnel_local(up, config.server, port);
        let mss = outer::mss(core.mtu, config.server.ip());
        let conn = Conn::connect(local, config.server, mss, now, now, &mut core.rng);
        let server_hop = core.next_hop_ip(core.upstream, config.server.ip());
        let kcp = config
            .kcp
            .map(|t| new_session(&t, config.kcp_conv, &mut core.rng, now));
        let mut client = Self {
            core,
            server: config.server,
            servers: std::iter::once(config.server)
                .chain(config.fallback.iter().copied())
                .collect(),
            active: 0,
            failback: config.failback,
            server_hop,
            sources: config.sources,
            publish: config.publish,
            sources6: config.sources6,
            publish6: config.publish6,
            tuning: config.tcp,
            conn,
            link: None,
            known: BTreeMap::new(),
            pending: VecDeque::new(),
            timers: Timers::default(),
            syn_rto: config.tcp.syn_rto,
            syn_retries: 0,
            kcp,
            kcp_tuning: config.kcp,
            datagram: vec![0; usize::from(u16::MAX)],
            remotes: BTreeMap::new(),
            last_reset: None,
            reset_backoff: Duration::ZERO,
            syn_delayed: false,
            syn_repeated: false,
            opening: Watch::new(openwatch::SERVER_PAYLOADS),
            answered: Watch::new(openwatch::SERVER_SILENT),
            dns_records: config.dns_records,
            ikago2: wire,
        };
        match config.transport {
            Transport::FakeTcp => client.start_handshake(),
            Transport::Tcp => {
                let ikago2 = client.ikago2.is_some();
                let link = Link::new(&mut client.core, local, config.server, &config.tcp, ikago2);
                client.link = Some(link);
            }
        }
        Ok(client)
    }

    /// The local FakeTCP address (upstream address and port)
    pub fn local_addr(&self) -> SocketAddr {
        self.conn.local
    }

    /// The server's tunnel address
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// Whether the handshake with the server has completed (with `ikago2`, its session's too)
    pub fn is_connected(&self) -> bool {
        self.link
            .as_ref()
            .map_or_else(|| self.tunnel_ready(), Link::is_open)
    }

    /// The wire spoken
    pub fn protocol(&self) -> Protocol {
        match self.ikago2 {
            Some(_) => Protocol::Ikago2,
            None => Protocol::Ikago,
        }
    }

    /// The LAN sources tunnelled
    pub fn sources(&self) -> &[Ipv4Net] {
        &self.sources
    }

    /// The LAN IPv6 sources tunnelled
    pub fn sources6(&self) -> &[Ipv6Net] {
        &self.sources6
    }

    /// The IPv6 addresses answered by proxy NDP
    pub fn publish6(&self) -> &[Ipv6Addr] {
        &self.publish6
    }

    /// Replaces the LAN sources to tunnel, for a config reload; the tunnel is untouched
    ///
    /// From the next frame on only the new sources are tunnelled. A source seen before that the
    /// new list no longer covers is forgotten: the replies addressed to it are dropped
    /// ([`DropReason::NoRoute`]), and its packets waiting for the handshake are dropped
    /// ([`DropReason::NotForUs`]). An empty list is refused when there are no IPv6 sources
    /// either, as [`Client::new`] refuses it, and changes nothing. The IPv6 sources stay.
    pub fn set_sources(&mut self, sources: Vec<Ipv4Net>) -> Result<(), ConfigError> {
        if sources.is_empty() && self.sources6.is_empty() {
            return Err(ConfigError::NoSources);
        }
        let covered = |ip: Ipv4Addr| sources.iter().any(|n| n.contains(ip));
        self.known.retain(|ip, _| match ip {
            IpAddr::V4(ip) => covered(*ip),
            IpAddr::V6(_) => true,
        });
        let mut kept = VecDeque::with_capacity(self.pending.len());
        for buf in std::mem::take(&mut self.pending) {
            match ipv4::Packet::parse(&buf.bytes[..buf.len]) {
                _ if buf.bytes.first().is_some_and(|b| b >> 4 == 6) => kept.push_back(buf),
                Ok(p) if covered(p.src()) => kept.push_back(buf),
                _ => {
                    self.core.tx.recycle(buf);
                    self.core.drop(DropReason::NotForUs);
                }
            }
        }
        self.pending = kept;
        self.sources = sources;
        Ok(())
    }

    /// Replaces the LAN IPv6 sources to tunnel, for a config reload, as [`Self::set_sources`]
    /// does for IPv4: a host the new list no longer covers is forgotten and its packets waiting
    /// for the handshake are dropped ([`DropReason::NotForUs`]); an empty list is refused when
    /// there are no IPv4 sources either, and changes nothing. The IPv4 sources stay.
    pub fn set_sources6(&mut self, sources6: Vec<Ipv6Net>) -> Result<(), ConfigError> {
        if sources6.is_empty() && self.sources.is_empty() {
            return Err(ConfigError::NoSources);
        }
        let covered = |ip: Ipv6Addr| sources6.iter().any(|n| n.contains(ip));
        self.known.retain(|ip, _| match ip {
            IpAddr::V4(_) => true,
            IpAddr::V6(ip) => covered(*ip),
        });
        let mut kept = VecDeque::with_capacity(self.pending.len());
        for buf in std::mem::take(&mut self.pending) {
            match ipv6::Packet::parse(&buf.bytes[..buf.len]) {
                _ if buf.bytes.first().is_some_and(|b| b >> 4 != 6) => kept.push_back(buf),
                Ok(p) if covered(p.src()) => kept.push_back(buf),
                _ => {
                    self.core.tx.recycle(buf);
                    self.core.drop(DropReason::NotForUs);
                }
            }
        }
        self.pending = kept;
        self.sources6 = sources6;
        Ok(())
    }

    /// Replaces the IPv6 addresses answered by proxy NDP on the listen devices, for a config
    /// reload; the next neighbour solicitation is answered (or not) by the new list
    pub fn set_publish6(&mut self, publish6: Vec<Ipv6Addr>) {
        self.publish6 = publish6;
    }

    /// The addresses answered by proxy ARP
    pub fn publish(&self) -> &[Ipv4Addr] {
        &self.publish
    }

    /// Replaces the addresses answered by proxy ARP on the listen devices, for a config reload;
    /// the next ARP request is answered (or not) by the new list
    pub fn set_publish(&mut self, publish: Vec<Ipv4Addr>) {
        self.publish = publish;
    }

    /// Turns the [`Event::DnsRecord`] events (names in DNS answers, for the monitor's `/dns`) on
    /// or off, as [`ClientConfig::dns_records`] does at start
    pub fn set_dns_records(&mut self, on: bool) {
        self.dns_records = on;
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

    /// A snapshot of the counters, with one entry per source seen
    pub fn stats(&self) -> Stats {
        let mut s = self.core.stats.clone();
        s.kcp = self.kcp.as_ref().map(|k| k.stats());
        s.peers = self.known.values().map(|k| k.stats).collect();
        s.remotes = self.remotes.values().copied().collect();
        s.peers.sort_by_key(|p| p.peer);
        s.unopenable = usize::from(self.opening.flagged() || self.answered.flagged());
        s.server = Some(self.server);
        s.protocol = Some(self.protocol());
        if self.link.is_some() {
            s.transport = Transport::Tcp;
        }
        s
    }

    /// Learns neighbours and answers requests for published addresses (proxy ARP)
    fn handle_arp(&mut self, device: DeviceId, eth: ethernet::Frame<'_>) {
        let Some(a) = arp::parse(eth.payload) else {
            return self.core.drop(DropReason::Malformed);
        };
        self.core.learn_neighbor(device, &a);
        let dev = self.core.device(device);
        if a.op != arp::OP_REQUEST
            || !dev.role.listens()
            || !self.publish.contains(&a.tpa)
            || a.spa == a.tpa
            || Some(a.tpa) == dev.addr
        {
            return;
        }
        let reply = arp::Arp {
            op: arp::OP_REPLY,
            sha: dev.mac,
            spa: a.tpa,
            tha: a.sha,
            tpa: a.spa,
        };
        let src = dev.mac;
        self.core
            .tx
            .push_with(device, ethernet::MIN_FRAME_LEN, |b| {
                crate::arp::write_arp_frame(b, eth.src, src, &reply)
            });
        self.core.tx.event(Event::ArpReplied {
            publish: a.tpa,
            requester: a.spa,
        });
    }

    /// A packet from the LAN side: tunnel it if it comes from a source and goes beyond the LAN
    fn handle_lan(&mut self, device: DeviceId, eth: ethernet::Frame<'_>, pkt: &ipv4::Packet<'_>) {
        let src = pkt.src();
        if !self.sources.iter().any(|n| n.contains(src)) {
            return self.core.drop(DropReason::NotForUs);
        }
        let dev = self.core.device(device);
        if eth.dst != dev.mac {
            // the source did not route this through us: LAN traffic seen promiscuously
            return self.core.drop(DropReason::NotForUs);
        }
        let dst = pkt.dst();
        if self.core.is_own_addr(dst)
            || self.publish.contains(&dst)
            || dst.is_broadcast()
            || dst.is_multicast()
            || dev.on_link(dst)
        {
            return self.core.drop(DropReason::LocalDestination);
        }
        let len = pkt.bytes().len();
        self.core.stats.local_rx.add(len);
        self.learn_source(device, src.into(), eth.src, len);
        self.count_remote(dst.into(), len, true);
        if pkt.is_fragment() {
            if let Some(whole) = self.core.reassemble(u32::from(device.0), pkt) {
                self.tunnel_inner(whole.bytes());
                self.core.release(whole);
            }
        } else {
            self.tunnel_inner(pkt.bytes());
        }
    }

    fn learn_source(&mut self, device: DeviceId, ip: IpAddr, mac: Mac, len: usize) {
        let now = self.core.now;
        let entry = self.known.entry(ip).or_insert_with(|| Source {
            mac: Mac::ZERO,
            device,
            stats: PeerStats {
                peer: Peer::Source(ip),
                out: Default::default(),
                r#in: Default::default(),
                first_seen: now,
                last_seen: now,
                protocol: None,
            },
        });
        if entry.mac != mac || entry.device != device {
            entry.mac = mac;
            entry.device = device;
            let name = self.core.device(device).name.clone();
            self.core.tx.event(Event::SourceJoined {
                ip,
                mac,
                device: name,
            });
        }
        entry.stats.out.add(len);
        entry.stats.last_seen = now;
    }

    /// Counts a packet to (`out`) or from a remote address, keeping the most recent ones
    fn count_remote(&mut self, ip: IpAddr, len: usize, out: bool) {
        let now = self.core.now;
        if !self.remotes.contains_key(&ip) && self.remotes.len() >= MAX_REMOTES {
            let oldest = self
                .remotes
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(&k, _)| k);
            if let Some(k) = oldest {
                self.remotes.remove(&k);
            }
        }
        let s = self.remotes.entry(ip).or_insert_with(|| PeerStats {
            peer: Peer::Remote(ip),
            out: Default::default(),
            r#in: Default::default(),
            first_seen: now,
            last_seen: now,
            protocol: None,
        });
        if out {
            s.out.add(len)
        } else {
            s.r#in.add(len)
        }
        s.last_seen = now;
    }

    /// Reports the names and addresses (A and AAAA records) of a DNS answer from port 53 of a
    /// remote host, given the protocol and payload of a whole packet of either family
    fn record_dns(&mut self, protocol: u8, udp: &[u8]) {
        if protocol != proto::UDP || udp.len() < 8 || udp[0..2] != 53u16.to_be_bytes() {
            return;
        }
        if let Some(a) = dns::parse_answer(&udp[8..]) {
            for ip in a.addrs {
                self.core.tx.event(Event::DnsRecord {
                    name: a.name.clone(),
                    ip,
                });
            }
        }
    }

    /// Sends an inner packet to the server, or queues it while the handshake runs
    fn tunnel_inner(&mut self, inner: &[u8]) {
        if inner.len() + self.wire_overhead() + self.conn.data_offset() > ipv4::MAX_LEN {
            return self.core.drop(DropReason::TooBig);
        }
        if let Some(session) = self.kcp.as_mut() {
            match session.send(self.core.now, inner) {
                Ok(()) => self.core.stats.inner_tx.add(inner.len()),
                Err(KcpError::TooLarge { .. } | KcpError::Empty) => {
                    self.core.drop(DropReason::TooBig)
                }
                Err(_) => self.core.drop(DropReason::QueueFull),
            }
            return self.flush_kcp();
        }
        let sealed = inner.len() + self.wire_overhead();
        if let Some(link) = self.link.as_mut()
            && link.is_open()
            && self.pending.is_empty()
        {
            link.write(&mut self.core, inner);
        } else if self.link.is_none()
            && self.tunnel_ready()
            && self.pending.is_empty()
            && self.conn.window_allows(sealed)
        {
            let up = self.core.upstream;
            if self.ikago2.is_some() {
                self.send_record(crate::ikago2::Kind::Packet, inner);
            } else {
                self.core
                    .send_tunnel(&mut self.conn, up, Dest::NextHop(self.server_hop), inner);
            }
            self.core.stats.inner_tx.add(inner.len());
            self.note_sent();
        } else if self.pending.len() >= self.tuning.pending_packets {
            self.core.drop(DropReason::QueueFull);
        } else {
            let mut buf = self.core.tx.take(inner.len());
            buf.bytes[..inner.len()].copy_from_slice(inner);
            buf.len = inner.len();
            self.pending.push_back(buf);
        }
    }

    /// A packet from the server's address on the upstream device (either family)
    fn handle_tunnel(&mut self, device: DeviceId, pkt: &ip::Packet<'_>) {
        if pkt.dst() != self.conn.local.ip() {
            return self.core.drop(DropReason::NotForUs);
        }
        if pkt.is_fragment() {
            if let Some(whole) = self.core.reassemble_outer(u32::from(device.0), pkt) {
                if let Some(p) = ip::Packet::parse(whole.bytes()) {
                    self.handle_segment(&p);
                }
                self.core.release(whole);
            }
            return;
        }
        self.handle_segment(pkt);
    }

    fn handle_segment(&mut self, pkt: &ip::Packet<'_>) {
        if pkt.protocol() != proto::TCP {
            return self.core.drop(DropReason::NotForUs);
        }
        let Some(seg) = self.core.parse_tunnel(pkt) else {
            return;
        };
        if seg.src_port() != self.server.port() || seg.dst_port() != self.conn.local.port() {
            return self.core.drop(DropReason::NotForUs);
        }
        self.core.stats.tunnel_rx.add(pkt.bytes().len());
        let now = self.core.now;
        let r = self.conn.handle_segment(now, &seg);
        if let Some(rtt) = self.conn.take_rtt_sample() {
            self.core.stats.rtt = Some(rtt);
        }
        if let Some(reason) = r.refused {
            self.core.drop(reason);
        }
        match r.change {
            // on_connected sends the ACK that completes the handshake
            Some(Change::Connected { rtt }) => self.on_connected(rtt),
            Some(Change::Reset) => return self.on_lost(PeerLostReason::Reset),
            Some(Change::Established) | None => self.answer(r.reply, &seg),
        }
        if r.deliver {
            self.answered.success();
            self.deliver(seg.payload());
            self.schedule_ack();
        }
        self.flush_pending();
    }

    /// Sends what a segment of the server asks for
    fn answer(&mut self, reply: Reply, seg: &tcp::Segment<'_>) {
        let up = self.core.upstream;
        let hop = Dest::NextHop(self.server_hop);
        match reply {
            Reply::Ack => self.send_control(Control::Ack),
            Reply::Challenge => self.core.send_challenge(&mut self.conn, up, hop),
            Reply::Reset => {
                // the server still has our previous connection: the RST ends it there, and the
                // SYN, repeated once at once, opens the new one without waiting for its timer
                self.core
                    .send_reset(up, hop, self.conn.local, self.server, seg);
                if !std::mem::replace(&mut self.syn_repeated, true) {
                    self.prove_syn();
                    self.send_control(Control::Syn);
                }
            }
            Reply::SynAck | Reply::None => {}
        }
    }

    /// Opens a tunnel payload and delivers the inner packet to its source
    fn deliver(&mut self, sealed: &[u8]) {
        if self.ikago2.is_some() {
            return self.ikago2_receive(sealed);
        }
        let now = self.core.now;
        let mut buf = self.core.tx.take(ethernet::HEADER_LEN + sealed.len());
        let Ok(len) = self
            .core
            .cipher
            .open_into(sealed, &mut buf.bytes[ethernet::HEADER_LEN..])
        else {
            self.core.tx.recycle(buf);
            if let Some(packets) = self.opening.failure(now) {
                self.core.tx.event(Event::Unopenable {
                    peer: self.server,
                    packets,
                });
            }
            return self.core.drop(DropReason::DecryptFailed);
        };
        self.opening.success();
        if self.kcp.is_some() {
            self.kcp_input(&buf.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + len]);
            return self.core.tx.recycle(buf);
        }
        self.deliver_inner(buf, len);
    }

    /// Feeds a KCP datagram to the session and delivers the messages it completes
    fn kcp_input(&mut self, datagram: &[u8]) {
        let now = self.core.now;
        let Some(session) = self.kcp.as_mut() else {
            return;
        };
        if session.handle_datagram(now, datagram).is_err() {
            return self.core.drop(DropReason::BadKcp);
        }
        let mut scratch = std::mem::take(&mut self.core.scratch);
        while let Some(n) = self.kcp.as_mut().and_then(|s| s.recv(&mut scratch)) {
            let mut buf = self.core.tx.take(ethernet::HEADER_LEN + n);
            buf.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + n]
                .copy_from_slice(&scratch[..n]);
            self.deliver_inner(buf, n);
        }
        self.core.scratch = scratch;
        self.flush_kcp();
    }

    /// Delivers the inner packet at `buf.bytes[14..14 + len]` (reassembling it if it is a fragment)
    fn deliver_inner(&mut self, mut buf: FrameBuf, len: usize) {
        let inner = &buf.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + len];
        if inner.first().is_some_and(|b| b >> 4 == 6) {
            let ok = ipv6::Packet::parse(inner)
                .is_ok_and(|p| p.bytes().len() == len && p.fragment().is_none());
            if !ok || self.ikago2.is_none() {
                self.core.tx.recycle(buf);
                return self.core.drop(DropReason::BadInner);
            }
            self.core.stats.inner_rx.add(len);
            buf.len = ethernet::HEADER_LEN + len;
            return self.deliver_lan6(buf);
        }
        let (is_fragment, ok) = match ipv4::Packet::parse(inner) {
            Ok(p) => (p.is_fragment(), p.bytes().len() == len),
            Err(_) => (false, false),
        };
        if !ok {
            self.core.tx.recycle(buf);
            return self.core.drop(DropReason::BadInner);
        }
        self.core.stats.inner_rx.add(len);
        if !is_fragment {
            buf.len = ethernet::HEADER_LEN + len;
            return self.deliver_lan(buf);
        }
        let now = self.core.now;
        let p = ipv4::Packet::parse(inner).expect("parsed above");
        match self.core.reassembler.handle_fragment(now, TUNNEL_SCOPE, &p) {
            Err(r) => self.core.drop(r),
            Ok(None) => {}
            Ok(Some(whole)) => {
                let mut out = self.core.tx.take(ethernet::HEADER_LEN + whole.len());
                out.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + whole.len()]
                    .copy_from_slice(whole);
                out.len = ethernet::HEADER_LEN + whole.len();
                self.deliver_lan(out);
            }
        }
        self.core.tx.recycle(buf);
    }

    /// Writes an inner packet at `buf.bytes[14..buf.len]` to the source that owns its destination
    fn deliver_lan(&mut self, mut buf: FrameBuf) {
        let (src, dst, len, df) = {
            let p = ipv4::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..buf.len])
                .expect("validated by the caller");
            (p.src(), p.dst(), p.bytes().len(), p.dont_fragment())
        };
        self.count_remote(src.into(), len, false);
        if self.dns_records
            && let Ok(p) = ipv4::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..buf.len])
        {
            self.record_dns(p.protocol(), p.payload());
        }
        let now = self.core.now;
        let Some(source) = self.known.get_mut(&IpAddr::V4(dst)) else {
            self.core.tx.recycle(buf);
            return self.core.drop(DropReason::NoRoute);
        };
        source.stats.r#in.add(len);
        source.stats.last_seen = now;
        let (device, mac) = (source.device, source.mac);
        let fragment = self.core.fragment;
        if len <= fragment {
            let src_mac = self.core.device(device).mac;
            ethernet::write(&mut buf.bytes, mac, src_mac, ethernet::ETHERTYPE_IPV4);
            buf.len = ethernet::pad(&mut buf.bytes, ethernet::HEADER_LEN + len);
            self.core.stats.local_tx.add(len);
            self.core.tx.push(device, buf);
            return;
        }
        let p = ipv4::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..buf.len])
            .expect("validated by the caller");
        if df {
            let from = self.core.device(device).addr;
            let Some(from) = from.or(self.publish.first().copied()) else {
                self.core.tx.recycle(buf);
                return self.core.drop(DropReason::TooBig);
            };
            let icmp = self.core.frag_needed(&p, from, fragment);
            self.tunnel_inner(&icmp.bytes[ethernet::HEADER_LEN..icmp.len]);
            self.core.tx.recycle(icmp);
        } else {
            self.core.stats.local_tx.add(len);
            self.core.send_ip(device, Dest::Mac(mac), &p, fragment);
        }
        self.core.tx.recycle(buf);
    }

    /// Writes an inner IPv6 packet at `buf.bytes[14..buf.len]` to the source that owns its
    /// destination; one larger than `fragment` gets a Packet Too Big back to its sender instead
    /// (from the listen device's IPv6 address, else the first published one)
    fn deliver_lan6(&mut self, mut buf: FrameBuf) {
        let Ok(p) = ipv6::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..buf.len]) else {
            return self.core.tx.recycle(buf);
        };
        let (src, dst, len) = (p.src(), p.dst(), p.bytes().len());
        self.count_remote(src.into(), len, false);
        if self.dns_records && p.fragment().is_none() {
            self.record_dns(p.protocol(), p.payload());
        }
        let now = self.core.now;
        let Some(source) = self.known.get_mut(&IpAddr::V6(dst)) else {
            self.core.tx.recycle(buf);
            return self.core.drop(DropReason::NoRoute);
        };
        let (device, mac) = (source.device, source.mac);
        let fragment = self.core.fragment;
        if len > fragment {
            let from = self.core.device(device).ipv6.map(|l| l.addr);
            let Some(from) = from.or(self.publish6.first().copied()) else {
                self.core.tx.recycle(buf);
                return self.core.drop(DropReason::TooBig);
            };
            let p = ipv6::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..buf.len])
                .expect("parsed above");
            let ptb = self.core.packet_too_big(&p, from, fragment);
            self.tunnel_inner(&ptb.bytes[ethernet::HEADER_LEN..ptb.len]);
            self.core.tx.recycle(ptb);
            return self.core.tx.recycle(buf);
        }
        source.stats.r#in.add(len);
        source.stats.last_seen = now;
        let src_mac = self.core.device(device).mac;
        ethernet::write(&mut buf.bytes, mac, src_mac, ethernet::ETHERTYPE_IPV6);
        buf.len = ethernet::pad(&mut buf.bytes, ethernet::HEADER_LEN + len);
        self.core.stats.local_tx.add(len);
        self.core.tx.push(device, buf);
    }

    /// An IPv6 frame: on the upstream device a Packet Too Big about our tunnel address or a
    /// packet from an IPv6 server; on a listen device a LAN packet or neighbour discovery; on
    /// an upstream-only device neighbour discovery (the IPv6 gateway's advertisements)
    fn handle_ipv6(&mut self, device: DeviceId, eth: ethernet::Frame<'_>, pkt: &ipv6::Packet<'_>) {
        if device == self.core.upstream {
            if IpAddr::V6(pkt.dst()) == self.conn.local.ip()
                && let Some(report) = pmtu::parse(pkt)
            {
                return match report {
                    Ok(r) => self.core.packet_too_big_for(&mut self.conn, &r),
                    Err(reason) => self.core.drop(reason),
                };
            }
            // an on-link server's neighbour discovery is not tunnel traffic
            if IpAddr::V6(pkt.src()) == self.server.ip() && icmpv6::parse_ndp(pkt).is_none() {
                return self.handle_tunnel(device, &ip::Packet::V6(*pkt));
            }
        }
        if self.core.device(device).role.listens() {
            return self.handle_lan6(device, eth, pkt);
        }
        match icmpv6::parse_ndp(pkt) {
            Some(Ok(ndp)) => self.handle_ndp(device, eth, pkt, ndp),
            Some(Err(())) => self.core.drop(DropReason::NdpInvalid),
            None => self.core.drop(DropReason::NotForUs),
        }
    }

    /// An IPv6 frame on a listen device: neighbour discovery (proxy NDP for `publish6`), or a
    /// packet of a `sources6` host to tunnel (over `ikago2` only)
    fn handle_lan6(&mut self, device: DeviceId, eth: ethernet::Frame<'_>, pkt: &ipv6::Packet<'_>) {
        match icmpv6::parse_ndp(pkt) {
            Some(Err(())) => return self.core.drop(DropReason::NdpInvalid),
            Some(Ok(ndp)) => return self.handle_ndp(device, eth, pkt, ndp),
            None => {}
        }
        let src = pkt.src();
        if !self.sources6.iter().any(|n| n.contains(src)) {
            return self.core.drop(DropReason::NotForUs);
        }
        let dev = self.core.device(device);
        if eth.dst != dev.mac {
            return self.core.drop(DropReason::NotForUs);
        }
        let dst = pkt.dst();
        let link_local = dst.segments()[0] & 0xffc0 == 0xfe80;
        if dst.is_multicast()
            || link_local
            || dst.is_loopback()
            || dst.is_unspecified()
            || self.publish6.contains(&dst)
            || self
                .core
                .devices
                .iter()
                .any(|d| d.ipv6.is_some_and(|l| l.addr == dst))
            || dev.ipv6.is_some_and(|l| l.net().contains(dst))
        {
            return self.core.drop(DropReason::LocalDestination);
        }
        if self.ikago2.is_none() {
            return self.core.drop(DropReason::Ipv6OnIkago);
        }
        let len = pkt.bytes().len();
        self.core.stats.local_rx.add(len);
        self.learn_source(device, src.into(), eth.src, len);
        self.count_remote(dst.into(), len, true);
        if pkt.fragment().is_some() {
            if let Some(whole) = self.core.reassemble6(u32::from(device.0), pkt) {
                self.tunnel_inner(whole.bytes());
                self.core.release(whole);
            }
        } else {
            self.tunnel_inner(pkt.bytes());
        }
    }

    /// A valid neighbour discovery message on a listen device: a solicitation for a published
    /// address is answered (proxy NDP), duplicate address detection for one too (a LAN device
    /// must not take it); an advertisement claiming one is a spoofing attempt
    fn handle_ndp(
        &mut self,
        device: DeviceId,
        eth: ethernet::Frame<'_>,
        pkt: &ipv6::Packet<'_>,
        ndp: icmpv6::Ndp,
    ) {
        let dev = self.core.device(device);
        let (mac, listens) = (dev.mac, dev.role.listens());
        match ndp {
            icmpv6::Ndp::Solicit { target, source_mac }
                if listens && self.publish6.contains(&target) && pkt.src() != target =>
            {
                let requester = pkt.src();
                // a probe of duplicate address detection (from ::) is answered to all nodes,
                // unsolicited, so that the prober sees the address is taken (RFC 4861 §7.2.4)
                let dad = requester.is_unspecified();
                let (dst, to) = if dad {
                    let all = icmpv6::ALL_NODES;
                    (all, icmpv6::multicast_mac(all))
                } else {
                    (requester, source_mac.unwrap_or(eth.src))
                };
                let len = ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmpv6::NDP_LEN;
                self.core.tx.push_with(device, len, |b| {
                    let n = ethernet::write(b, to, mac, ethernet::ETHERTYPE_IPV6);
                    n + icmpv6::write_advert(&mut b[n..], target, dst, mac, !dad)
                });
                self.core.tx.event(Event::NdpReplied {
                    publish: target,
                    requester,
                });
            }
            icmpv6::Ndp::Advert { target, .. } if self.publish6.contains(&target) => {
                self.core.drop(DropReason::NdpInvalid);
            }
            icmpv6::Ndp::Advert {
                target, target_mac, ..
            } => {
                self.core
                    .learn_mac(device, target.into(), target_mac.unwrap_or(eth.src));
            }
            icmpv6::Ndp::Solicit { .. } => self.core.drop(DropReason::NotForUs),
        }
    }

    /// Acknowledges received data now when enough is outstanding, otherwise soon
    fn schedule_ack(&mut self) {
        let threshold = self.tuning.ack_bytes.min(self.conn.window_bytes() / 4);
        if self.conn.take_quickack() || self.conn.unacked >= threshold {
            self.send_control(Control::Ack);
        } else if self.conn.unacked > 0 && self.conn.ack_due.is_none() {
            let at = self.core.now + self.tuning.ack_delay;
            self.conn.ack_due = Some(at);
            self.timers.set(Timer::Ack as usize, at);
        }
    }

    fn send_control(&mut self, kind: Control) {
        let up = self.core.upstream;
        self.core
            .send_control(&mut self.conn, up, Dest::NextHop(self.server_hop), kind);
        if kind != Control::Syn {
            self.timers.stop(Timer::Ack as usize);
        }
    }

    fn start_handshake(&mut self) {
        self.syn_retries = 0;
        self.syn_rto = self.tuning.syn_rto;
        for t in [Timer::Keepalive, Timer::PeerTimeout, Timer::Ack] {
            self.timers.stop(t as usize);
        }
        if self.reset_backoff.is_zero() {
            self.send_syn();
        } else {
            self.syn_delayed = true;
            self.timers
                .set(Timer::Syn as usize, self.core.now + self.reset_backoff);
        }
    }

    fn send_syn(&mut self) {
        self.syn_repeated = false;
        self.prove_syn();
        self.send_control(Control::Syn);
        self.core.tx.event(Event::Connecting {
            server: self.server,
            retry: self.syn_retries,
        });
        self.timers
            .set(Timer::Syn as usize, self.core.now + self.syn_rto);
    }

    fn on_connected(&mut self, rtt: Duration) {
        let now = self.core.now;
        self.timers.stop(Timer::Syn as usize);
        if self.ikago2.is_none() {
            // with ikago2 the tunnel is connected once its session is up
            self.core.stats.handshakes += 1;
            self.core.stats.rtt = Some(rtt);
            self.core.tx.event(Event::Connected {
                server: self.server,
                rtt,
            });
        }
        self.timers
            .set(Timer::Keepalive as usize, now + self.tuning.keepalive);
        self.timers
            .set(Timer::PeerTimeout as usize, now + self.tuning.peer_timeout);
        self.opening.rearm();
        self.answered.rearm();
        // the ACK completing the handshake goes out before the queued data
        self.send_control(Control::Ack);
        if !self.ikago2_connected() {
            self.flush_pending();
            self.flush_kcp();
        }
    }

    /// Sends the datagrams the KCP session has ready, once the handshake is done
    fn flush_kcp(&mut self) {
        if !self.conn.can_send() {
            return;
        }
        let up = self.core.upstream;
        while let Some(n) = self
            .kcp
            .as_mut()
            .and_then(|s| s.poll_datagram(&mut self.datagram))
        {
            self.core.send_tunnel(
                &mut self.conn,
                up,
                Dest::NextHop(self.server_hop),
                &self.datagram[..n],
            );
            self.note_sent();
        }
    }

    /// Counts a data segment sent toward the server's silence: a server that cannot open our
    /// payloads never answers them; with fallbacks, watches for a server that stopped
    /// acknowledging
    fn note_sent(&mut self) {
        if self.servers.len() > 1 {
            self.timers
                .set_earliest(Timer::Stall as usize, self.core.now + STALL_TIMEOUT);
        }
        if let Some(packets) = self.answered.failure(self.core.now) {
            self.core.tx.event(Event::Unopenable {
                peer: self.server,
                packets,
            });
        }
    }

    /// Sends the packets waiting for the handshake or for the server's window, in order
    fn flush_pending(&mut self) {
        if let Some(link) = self.link.as_mut() {
            while link.is_open()
                && let Some(buf) = self.pending.pop_front()
            {
                link.write(&mut self.core, &buf.bytes[..buf.len]);
                self.core.tx.recycle(buf);
            }
            return;
        }
        if self.ikago2.is_some() {
            return self.ikago2_flush();
        }
        if !self.conn.can_send() {
            return;
        }
        let up = self.core.upstream;
        let overhead = self.core.cipher.overhead();
        while let Some(buf) = self.pending.front() {
            if !self.conn.window_allows(buf.len + overhead) {
                break;
            }
            let buf = self.pending.pop_front().expect("front exists");
            self.core.send_tunnel(
                &mut self.conn,
                up,
                Dest::NextHop(self.server_hop),
                &buf.bytes[..buf.len],
            );
            self.core.stats.inner_tx.add(buf.len);
            self.core.tx.recycle(buf);
            self.note_sent();
        }
    }

    fn on_lost(&mut self, reason: PeerLostReason) {
        self.core.tx.event(Event::PeerLost {
            server: self.server,
            reason,
        });
        self.core.stats.reconnects += 1;
        self.ikago2_reset();
        if self.servers.len() > 1 {
            return self.switch_to((self.active + 1) % self.servers.len());
        }
        let now = self.core.now;
        self.conn.restart(now, &mut self.core.rng);
        if let Some(tuning) = self.kcp_tuning {
            // a restarted server has no session and cannot follow old sequence numbers: a new
            // conversation makes it open a fresh one
            self.kcp = Some(new_session(&tuning, None, &mut self.core.rng, now));
        }
        // resets in quick succession (a kernel without the firewall rule answers every
        // segment with one) back off like SYN retransmissions instead of looping
        let recent = self.last_reset.is_some_and(|t| {
            now.saturating_duration_since(t) < self.reset_backoff * 2 + self.tuning.syn_rto
        });
        self.reset_backoff = match (reason, recent) {
            (PeerLostReason::Reset, true) => {
                (self.reset_backoff * 2).clamp(self.tuning.syn_rto, self.tuning.syn_rto_max)
            }
            _ => Duration::ZERO,
        };
        if reason == PeerLostReason::Reset {
            self.last_reset = Some(now);
        }
        self.start_handshake();
    }

    /// Moves the tunnel to server `next` and starts its handshake at once
    fn switch_to(&mut self, next: usize) {
        self.ikago2_close();
        self.ikago2_reset();
        let now = self.core.now;
        let from = self.server;
        self.active = next;
        self.server = self.servers[next];
        self.server_hop = self.core.next_hop_ip(self.core.upstream, self.server.ip());
        self.core.stats.server_switches += 1;
        self.core.tx.event(Event::ServerSwitched {
            from,
            to: self.server,
        });
        let up = self.core.device(self.core.upstream);
        let local = tunnel_local(up, self.server, self.conn.local.port());
        let mss = outer::mss(self.core.mtu, self.server.ip());
        self.conn
            .retarget(local, self.server, mss, now, &mut self.core.rng);
        if let Some(tuning) = self.kcp_tuning {
            self.kcp = Some(new_session(&tuning, None, &mut self.core.rng, now));
        }
        self.timers.stop(Timer::Stall as usize);
        match self.failback {
            Some(after) if next != 0 => self.timers.set(Timer::Failback as usize, now + after),
            _ => self.timers.stop(Timer::Failback as usize),
        }
        self.last_reset = None;
        self.reset_backoff = Duration::ZERO;
        self.start_handshake();
    }
}

impl Machine for Client {
    fn core(&mut self) -> &mut Core {
        &mut self.core
    }

    fn handle_frame(&mut self, device: DeviceId, eth: ethernet::Frame<'_>) {
        match eth.ethertype {
            ethernet::ETHERTYPE_ARP => self.handle_arp(device, eth),
            ethernet::ETHERTYPE_IPV4 => match ipv4::Packet::parse(eth.payload) {
                Ok(p)
                    if device == self.core.upstream && IpAddr::V4(p.src()) == self.server.ip() =>
                {
                    self.handle_tunnel(device, &ip::Packet::V4(p))
                }
                Ok(p) if self.core.device(device).role.listens() => {
                    self.handle_lan(device, eth, &p)
                }
                Ok(_) => self.core.drop(DropReason::NotForUs),
                Err(e) => self.core.drop(e.into()),
            },
            ethernet::ETHERTYPE_IPV6 => match ipv6::Packet::parse(eth.payload) {
                Ok(p) => self.handle_ipv6(device, eth, &p),
                Err(e) => self.core.drop(e.into()),
            },
            _ => self.core.drop(DropReason::NotForUs),
        }
    }

    fn handle_stream(&mut self, conn: ConnId, event: StreamInput<'_>) {
        let Some(link) = self.link.as_mut() else {
            return self.core.drop(DropReason::NotForUs);
        };
        let StreamInput::Data(mut rest) = event else {
            let (wire, port) = (self.ikago2.as_ref(), self.server.port());
            let endpoint = |core: &mut Core| wire.map(|w| w.new_endpoint(core, port));
            if link.handle(&mut self.core, conn, event, endpoint) {
                self.flush_pending();
            }
            return;
        };
        link.arrive(&mut self.core, conn);
        while let Some(link) = self.link.as_mut() {
            match link.read(&mut self.core, conn, &mut rest) {
                Read::Record(buf, len) => self.deliver_inner(buf, len),
                Read::Established => self.flush_pending(),
                Read::Handled => {}
                Read::Done | Read::Closed => return,
            }
        }
    }

    fn handle_timeout(&mut self) {
        self.core.handle_timeout();
        if let Some(link) = self.link.as_mut() {
            link.handle_timeout(&mut self.core);
        }
        let now = self.core.now;
        if let Some(session) = self.kcp.as_mut()
            && session.poll_timeout() <= now
        {
            session.handle_timeout(now);
            self.flush_kcp();
        }
        if self.timers.expire(Timer::Syn as usize, now) {
            if !std::mem::take(&mut self.syn_delayed) {
                self.syn_retries += 1;
                self.syn_rto = (self.syn_rto * 2).min(self.tuning.syn_rto_max);
            }
            if self.servers.len() > 1 && self.syn_retries > FAILOVER_SYN_RETRIES {
                return self.switch_to((self.active + 1) % self.servers.len());
            }
            self.send_syn();
        }
        if self.timers.expire(Timer::Stall as usize, now) && self.conn.can_send() {
            match self.conn.stalled_since() {
                Some(t) if now.saturating_duration_since(t) >= STALL_TIMEOUT => {
                    return self.on_lost(PeerLostReason::Timeout);
                }
                Some(t) => self.timers.set(Timer::Stall as usize, t + STALL_TIMEOUT),
                None => {}
            }
        }
        if self.timers.expire(Timer::Failback as usize, now) && self.active != 0 {
            return self.switch_to(0);
        }
        if self.timers.expire(Timer::Ack as usize, now)
            && self.conn.can_send()
            && self.conn.unacked > 0
        {
            self.send_control(Control::Ack);
        }
        if self.timers.expire(Timer::Handshake as usize, now) {
            self.ikago2_resend();
        }
        if self.timers.expire(Timer::PeerTimeout as usize, now) {
            let heard = self.last_heard();
            if now.saturating_duration_since(heard) >= self.tuning.peer_timeout {
                return self.on_lost(PeerLostReason::Timeout);
            }
            self.timers.set(
                Timer::PeerTimeout as usize,
                heard + self.tuning.peer_timeout,
            );
        }
        if self.timers.expire(Timer::Keepalive as usize, now) {
            // a probe every interval, busy or not: it keeps NAT and conntrack state alive and its
            // answer measures the RTT (peers that echo timestamps)
            self.send_control(Control::Keepalive);
            self.ikago2_ping();
            self.timers
                .set(Timer::Keepalive as usize, now + self.tuning.keepalive);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let kcp = self.kcp.as_ref().map(|s| s.poll_timeout());
        let link = self.link.as_ref().and_then(Link::deadline);
        [self.timers.next(), self.core.poll_timeout(), kcp, link]
            .into_iter()
            .flatten()
            .min()
    }
}
