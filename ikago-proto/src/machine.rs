//! What the client and server machines share: devices, time, randomness, the output queue,
//! neighbour resolution, reassembly, sealing into FakeTCP frames, and counters

use crate::arp::{LinkAddr, Neighbors, Sent};
use crate::config::{DeviceConfig, ReassemblyLimits};
use crate::crypto::{Cipher, Method};
use crate::event::Event;
use crate::faketcp::{self, Conn, Control};
use crate::fragment::{self, Reassembler};
use crate::io::{ConnId, DeviceId, Input, Output, StreamInput};
use crate::outer;
use crate::pmtu::{self, Report};
use crate::ratelimit::PerSecond;
use crate::stats::{DropReason, Stats};
use crate::txq::{FrameBuf, TxQueue};
use crate::wire::checksum::PseudoAddr;
use crate::wire::{Mac, arp, ethernet, icmp, icmpv6, ip, ipv4, ipv6, proto, tcp};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How far ahead `poll_output` points when nothing is scheduled
const IDLE_TIMEOUT: Duration = Duration::from_secs(86_400);
/// Minimum interval between two [`Event::Dropped`] for the same reason
const DROP_EVENT_INTERVAL: Duration = Duration::from_secs(1);
/// TTL of ICMP errors the machines originate (Linux `ip_default_ttl`)
const ICMP_TTL: u8 = 64;
/// RSTs sent per second at most (Linux `icmp_ratelimit`-like protection)
const RST_PER_SECOND: u32 = 100;
/// Challenge ACKs sent per second at most (Linux `tcp_challenge_ack_limit`, per machine)
const CHALLENGE_PER_SECOND: u32 = 100;

/// Where a frame goes on its link
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dest {
    /// A known MAC (the source's, or the MAC the peer's frames came from)
    Mac(Mac),
    /// A next hop to resolve by ARP (IPv4) or neighbour discovery (IPv6)
    NextHop(IpAddr),
}

/// Where the payload of a FakeTCP data segment of `conn` starts in a frame buffer
pub(crate) fn payload_offset(conn: &Conn) -> usize {
    ethernet::HEADER_LEN + conn.data_offset()
}

/// The drive loop both machines share: their public `handle_input` and `poll_output` call
/// [`Machine::drive_input`] and [`Machine::drive_output`]
pub(crate) trait Machine {
    /// The shared state
    fn core(&mut self) -> &mut Core;
    /// Handles an Ethernet frame on a configured device that another station sent
    fn handle_frame(&mut self, device: DeviceId, eth: ethernet::Frame<'_>);
    /// Handles a report about a tunnel connection (`tcp` mode)
    fn handle_stream(&mut self, conn: ConnId, event: StreamInput<'_>);
    /// Runs the due timers
    fn handle_timeout(&mut self);
    /// The earliest deadline
    fn next_deadline(&self) -> Option<Instant>;
    /// Drops the deadlines that no longer hold from the front of the queues, before the
    /// runner is told when to call back
    fn skip_stale_deadlines(&mut self) {}

    /// Feeds one input; timers that fell due meanwhile run after a frame too
    fn drive_input(&mut self, input: Input<'_>) {
        match input {
            Input::Frame { now, device, data } => {
                let core = self.core();
                core.advance(now);
                if device.index() >= core.devices.len() {
                    core.drop(DropReason::NotForUs);
                } else if let Some(eth) = ethernet::parse(data) {
                    // our own frames come back where a capture sees what it sends
                    if eth.src == core.device(device).mac {
                        core.drop(DropReason::NotForUs);
                    } else {
                        self.handle_frame(device, eth);
                    }
                } else {
                    core.drop(DropReason::Malformed);
                }
                let now = self.core().now;
                if self.next_deadline().is_some_and(|t| t <= now) {
                    self.handle_timeout();
                }
            }
            Input::Stream { now, conn, event } => {
                self.core().advance(now);
                self.handle_stream(conn, event);
                let now = self.core().now;
                if self.next_deadline().is_some_and(|t| t <= now) {
                    self.handle_timeout();
                }
            }
            Input::Timeout(now) => {
                self.core().advance(now);
                self.handle_timeout();
            }
        }
    }

    /// The next queued frame or event, else the instant to call back
    fn drive_output(&mut self, buf: &mut [u8]) -> Output {
        if let Some(o) = self.core().poll(buf) {
            return o;
        }
        let idle = self.core().now + IDLE_TIMEOUT;
        self.skip_stale_deadlines();
        Output::Timeout(self.next_deadline().unwrap_or(idle))
    }
}

/// A reassembled IPv4 packet lent out of [`Core`]; give it back with [`Core::release`]
#[derive(Debug)]
pub(crate) struct Reassembled {
    buf: Vec<u8>,
    len: usize,
}

impl Reassembled {
    /// The whole packet
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Copies a datagram the reassembler completed into the lent buffer `reassembled`
fn lend(
    reassembled: &mut Vec<u8>,
    result: Result<Option<&[u8]>, DropReason>,
) -> Result<Option<Reassembled>, DropReason> {
    Ok(result?.map(|whole| {
        let len = whole.len();
        let mut buf = std::mem::take(reassembled);
        buf[..len].copy_from_slice(whole);
        Reassembled { buf, len }
    }))
}

/// A frame holding one fragment: `hdr` then `chunk` after an Ethernet header of `ethertype`
fn piece_frame(
    tx: &mut TxQueue,
    src_mac: Mac,
    ethertype: u16,
    hdr: &[u8],
    chunk: &[u8],
) -> FrameBuf {
    let mut buf = tx.take(ethernet::HEADER_LEN + hdr.len() + chunk.len());
    let n = ethernet::write(&mut buf.bytes, Mac::ZERO, src_mac, ethertype);
    buf.bytes[n..n + hdr.len()].copy_from_slice(hdr);
    buf.bytes[n + hdr.len()..n + hdr.len() + chunk.len()].copy_from_slice(chunk);
    buf.len = ethernet::pad(&mut buf.bytes, n + hdr.len() + chunk.len());
    buf
}

/// Per-reason state of the rate-limited drop events
#[derive(Debug, Clone, Copy, Default)]
struct DropReport {
    last: Option<Instant>,
    unreported: u64,
}

/// The shared part of both machines
#[derive(Debug)]
pub(crate) struct Core {
    /// Configured devices, indexed by [`DeviceId`]
    pub(crate) devices: Vec<DeviceConfig>,
    /// The upstream device
    pub(crate) upstream: DeviceId,
    /// Latest time seen (never goes backwards)
    pub(crate) now: Instant,
    /// When the machine was created
    pub(crate) epoch: Instant,
    /// The machine's CSPRNG
    pub(crate) rng: ChaCha20Rng,
    /// Frames and events waiting for `poll_output`
    pub(crate) tx: TxQueue,
    /// ARP cache and resolution
    pub(crate) neighbors: Neighbors,
    /// IPv4 reassembly
    pub(crate) reassembler: Reassembler,
    /// The keyed encryption method
    pub(crate) cipher: Cipher,
    /// Largest FakeTCP frame (IPv4 bytes)
    pub(crate) mtu: usize,
    /// Largest IPv4 packet toward the local side
    pub(crate) fragment: usize,
    /// Counters (per-peer entries are filled in by the machines' `stats`)
    pub(crate) stats: Stats,
    /// A 64 KiB work area for packets that must be copied before they are rewritten
    pub(crate) scratch: Vec<u8>,
    /// A 64 KiB copy of the latest reassembled packet while it is processed (see [`Core::reassemble`])
    reassembled: Vec<u8>,
    /// Reused list of fragments being sent
    frag_out: Vec<FrameBuf>,
    /// The identification of the next IPv6 fragmented frame, drawn at the first one
    frag_id6: Option<u32>,
    drop_reports: [DropReport; DropReason::COUNT],
    /// The budget of RSTs
    rsts: PerSecond,
    /// The budget of challenge ACKs
    challenges: PerSecond,
}

/// Drop reasons a user must hear about (as rate-limited events), not only count
fn is_notable(r: DropReason) -> bool {
    matches!(
        r,
        DropReason::DecryptFailed
            | DropReason::NatExhausted
            | DropReason::QueueFull
            | DropReason::ArpUnresolved
            | DropReason::NdpUnresolved
            | DropReason::NoIpv6
            | DropReason::NoIpv4
            | DropReason::Ipv6OnIkago
            | DropReason::TooManyClients
            | DropReason::SynRate
            | DropReason::UnknownPeer
            | DropReason::BadInner
    )
}

impl Core {
    /// Shared state for `devices` with `upstream` toward the peer or the Internet
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        devices: Vec<DeviceConfig>,
        upstream: usize,
        method: Method,
        password: &str,
        mtu: u16,
        fragment: u16,
        reassembly: ReassemblyLimits,
        seed: [u8; 32],
        now: Instant,
    ) -> Self {
        let links = devices
            .iter()
            .map(|d| LinkAddr {
                mac: d.mac,
                ip: d.addr,
                ip6: d.ipv6.map(|l| l.addr),
            })
            .collect();
        let mut neighbors = Neighbors::new(links);
        for (i, d) in devices.iter().enumerate() {
            if let (Some(gw), Some(mac)) = (d.gateway, d.gateway_mac) {
                neighbors.insert_static(now, DeviceId(i as u8), gw.into(), mac);
            }
            if let Some(l) = d.ipv6
                && let (Some(gw), Some(mac)) = (l.gateway, l.gateway_mac)
            {
                neighbors.insert_static(now, DeviceId(i as u8), gw.into(), mac);
            }
        }
        Self {
            upstream: DeviceId(upstream as u8),
            devices,
            now,
            epoch: now,
            rng: ChaCha20Rng::from_seed(seed),
            tx: TxQueue::new(),
            neighbors,
            reassembler: Reassembler::new(reassembly),
            cipher: Cipher::new(method, password),
            mtu: usize::from(mtu),
            fragment: usize::from(fragment),
            stats: Stats::default(),
            scratch: vec![0; ipv4::MAX_LEN],
            reassembled: vec![0; ipv4::MAX_LEN],
            frag_out: Vec::new(),
            frag_id6: None,
            drop_reports: [DropReport::default(); DropReason::COUNT],
            rsts: PerSecond::new(RST_PER_SECOND, now),
            challenges: PerSecond::new(CHALLENGE_PER_SECOND, now),
        }
    }

    /// Moves the clock to `now`, never backwards
    pub(crate) fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    /// The device's configuration
    pub(crate) fn device(&self, d: DeviceId) -> &DeviceConfig {
        &self.devices[d.index()]
    }

    /// Whether `ip` is one of this machine's own addresses
    pub(crate) fn is_own_addr(&self, ip: Ipv4Addr) -> bool {
        self.devices.iter().any(|d| d.addr == Some(ip))
    }

    /// The next hop toward `dst` through `device`: `dst` itself when on-link, else the gateway
    pub(crate) fn next_hop(&self, device: DeviceId, dst: Ipv4Addr) -> Ipv4Addr {
        let d = self.device(device);
        if d.on_link(dst) {
            dst
        } else {
            d.gateway.unwrap_or(dst)
        }
    }

    /// The IPv6 next hop toward `dst` through `device`: `dst` itself when on-link (or the device
    /// has no IPv6 gateway), else the gateway
    pub(crate) fn next_hop6(&self, device: DeviceId, dst: Ipv6Addr) -> Ipv6Addr {
        match self.device(device).ipv6 {
            Some(l) if !l.net().contains(dst) => l.gateway.unwrap_or(dst),
            _ => dst,
        }
    }

    /// The next hop toward `dst` of either family through `device`
    pub(crate) fn next_hop_ip(&self, device: DeviceId, dst: IpAddr) -> IpAddr {
        match dst {
            IpAddr::V4(v4) => self.next_hop(device, v4).into(),
            IpAddr::V6(v6) => self.next_hop6(device, v6).into(),
        }
    }

    /// Feeds a fragment to reassembly under `scope`; the whole packet when it completes
    ///
    /// Drops are counted here. The packet is copied out of the reassembler so that the machine
    /// can use itself mutably while it holds the packet.
    pub(crate) fn reassemble(
        &mut self,
        scope: u32,
        fragment: &ipv4::Packet<'_>,
    ) -> Option<Reassembled> {
        let result = self.reassembler.handle_fragment(self.now, scope, fragment);
        let lent = lend(&mut self.reassembled, result);
        lent.unwrap_or_else(|r| {
            self.drop(r);
            None
        })
    }

    /// Feeds an IPv6 fragment to reassembly under `scope`, as [`reassemble`](Self::reassemble)
    pub(crate) fn reassemble6(
        &mut self,
        scope: u32,
        fragment: &ipv6::Packet<'_>,
    ) -> Option<Reassembled> {
        let result = self.reassembler.handle_fragment6(self.now, scope, fragment);
        let lent = lend(&mut self.reassembled, result);
        lent.unwrap_or_else(|r| {
            self.drop(r);
            None
        })
    }

    /// Feeds an outer fragment of either family to reassembly under `scope`, as
    /// [`reassemble`](Self::reassemble)
    pub(crate) fn reassemble_outer(
        &mut self,
        scope: u32,
        fragment: &ip::Packet<'_>,
    ) -> Option<Reassembled> {
        match fragment {
            ip::Packet::V4(p) => self.reassemble(scope, p),
            ip::Packet::V6(p) => self.reassemble6(scope, p),
        }
    }

    /// Gives back the buffer of a [`Reassembled`] packet
    pub(crate) fn release(&mut self, r: Reassembled) {
        self.reassembled = r.buf;
    }

    /// Learns the sender of an ARP packet if it is being resolved or cached
    pub(crate) fn learn_neighbor(&mut self, device: DeviceId, a: &arp::Arp) {
        self.learn_mac(device, a.spa.into(), a.sha);
    }

    /// Learns that `ip` is at `mac` on `device` (from ARP or a neighbour advertisement) if it is
    /// being resolved or cached
    pub(crate) fn learn_mac(&mut self, device: DeviceId, ip: IpAddr, mac: Mac) {
        if self
            .neighbors
            .learn(self.now, device, ip, mac, &mut self.tx)
        {
            self.tx.event(Event::NeighborResolved { ip, mac });
        }
    }

    /// Counts a drop; notable reasons also become rate-limited [`Event::Dropped`]
    pub(crate) fn drop(&mut self, reason: DropReason) {
        self.drop_n(reason, 1);
    }

    /// Counts `n` drops for one reason
    pub(crate) fn drop_n(&mut self, reason: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        for _ in 0..n {
            self.stats.drops.add(reason);
        }
        if !is_notable(reason) {
            return;
        }
        let now = self.now;
        let r = &mut self.drop_reports[reason as usize];
        r.unreported += n;
        if r.last
            .is_none_or(|t| now.saturating_duration_since(t) >= DROP_EVENT_INTERVAL)
        {
            let count = std::mem::take(&mut r.unreported);
            r.last = Some(now);
            self.tx.event(Event::Dropped { reason, count });
        }
    }

    /// Puts a frame on its way: at once with a known MAC, or after ARP resolution
    pub(crate) fn send_frame(&mut self, device: DeviceId, dest: Dest, mut buf: FrameBuf) {
        match dest {
            Dest::Mac(mac) => {
                buf.bytes[0..6].copy_from_slice(&mac.0);
                self.tx.push(device, buf);
            }
            Dest::NextHop(ip) => {
                if self.neighbors.send(self.now, device, ip, buf, &mut self.tx) == Sent::QueueFull {
                    self.drop(DropReason::QueueFull);
                }
            }
        }
    }

    /// Sends the IPv4 `packet` on `device`, fragmenting it to `mtu` bytes when it is larger
    ///
    /// The caller has already decided about DF. Returns the number of frames sent.
    pub(crate) fn send_ip(
        &mut self,
        device: DeviceId,
        dest: Dest,
        packet: &ipv4::Packet<'_>,
        mtu: usize,
    ) -> usize {
        let src_mac = self.device(device).mac;
        let bytes = packet.bytes();
        if bytes.len() <= mtu {
            let mut buf = self.tx.take(ethernet::HEADER_LEN + bytes.len());
            ethernet::write(&mut buf.bytes, Mac::ZERO, src_mac, ethernet::ETHERTYPE_IPV4);
            buf.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + bytes.len()]
                .copy_from_slice(bytes);
            buf.len = ethernet::pad(&mut buf.bytes, ethernet::HEADER_LEN + bytes.len());
            self.send_frame(device, dest, buf);
            return 1;
        }
        let mut frames = std::mem::take(&mut self.frag_out);
        let tx = &mut self.tx;
        fragment::fragment(packet, mtu, |hdr, chunk| {
            frames.push(piece_frame(
                tx,
                src_mac,
                ethernet::ETHERTYPE_IPV4,
                hdr,
                chunk,
            ));
        });
        self.send_pieces(device, dest, frames)
    }

    /// Sends the IPv6 `packet` (one of our own FakeTCP frames) on `device` in fragments of at
    /// most `mtu` bytes with fragment headers, as only an IPv6 sender may fragment; returns the
    /// number of frames sent
    fn send_ip6_fragments(
        &mut self,
        device: DeviceId,
        dest: Dest,
        packet: &ipv6::Packet<'_>,
        mtu: usize,
    ) -> usize {
        let src_mac = self.device(device).mac;
        let id = match self.frag_id6 {
            Some(id) => id,
            None => self.rng.next_u32(),
        };
        self.frag_id6 = Some(id.wrapping_add(1));
        let mut frames = std::mem::take(&mut self.frag_out);
        let tx = &mut self.tx;
        fragment::fragment6(packet, mtu, id, |hdr, chunk| {
            frames.push(piece_frame(
                tx,
                src_mac,
                ethernet::ETHERTYPE_IPV6,
                hdr,
                chunk,
            ));
        });
        self.send_pieces(device, dest, frames)
    }

    /// Sends the fragment frames `frames` in order, keeping the list for reuse; their count
    fn send_pieces(&mut self, device: DeviceId, dest: Dest, mut frames: Vec<FrameBuf>) -> usize {
        let count = frames.len();
        for buf in frames.drain(..) {
            self.send_frame(device, dest, buf);
        }
        self.frag_out = frames;
        count
    }

    /// Seals `inner` into a FakeTCP data segment of `conn` and sends it (as IPv4 fragments when
    /// the frame exceeds the tunnel MTU); returns the IPv4 bytes put on the wire
    pub(crate) fn send_tunnel(
        &mut self,
        conn: &mut Conn,
        device: DeviceId,
        dest: Dest,
        inner: &[u8],
    ) -> usize {
        let off = payload_offset(conn);
        let mut buf = self.tx.take(off + inner.len() + self.cipher.overhead());
        let sealed = self
            .cipher
            .seal_from(inner, &mut buf.bytes[off..], &mut self.rng);
        self.send_payload(conn, device, dest, buf, sealed)
    }

    /// Sends the FakeTCP data segment of `conn` whose `len` payload bytes are already at
    /// `buf.bytes[payload_offset(conn)..]`; returns the IPv4 bytes put on the wire
    pub(crate) fn send_payload(
        &mut self,
        conn: &mut Conn,
        device: DeviceId,
        dest: Dest,
        mut buf: FrameBuf,
        len: usize,
    ) -> usize {
        let src_mac = self.device(device).mac;
        let ethertype = outer::ethertype(conn.remote.ip());
        ethernet::write(&mut buf.bytes, Mac::ZERO, src_mac, ethertype);
        let ip_len = conn.write_data_headers(&mut buf.bytes[ethernet::HEADER_LEN..], self.now, len);
        self.finish_tunnel(device, dest, buf, ip_len, conn.frame_size(self.mtu))
    }

    /// Parses the FakeTCP segment of `pkt`, counting a drop when it is malformed; without an
    /// AEAD (plain) a segment's payload is checked against the TCP checksum too, since nothing
    /// else would catch its corruption
    #[inline]
    pub(crate) fn parse_tunnel<'a>(&mut self, pkt: &ip::Packet<'a>) -> Option<tcp::Segment<'a>> {
        match pkt {
            ip::Packet::V4(p) => self.parse_segment(p.payload(), p.src(), p.dst()),
            ip::Packet::V6(p) => self.parse_segment(p.payload(), p.src(), p.dst()),
        }
    }

    /// [`parse_tunnel`](Self::parse_tunnel) over the TCP bytes from `src` to `dst`
    fn parse_segment<'a, A: PseudoAddr>(
        &mut self,
        bytes: &'a [u8],
        src: A,
        dst: A,
    ) -> Option<tcp::Segment<'a>> {
        let Some(seg) = tcp::Segment::parse_tunnel(bytes, src, dst) else {
            self.drop(DropReason::Malformed);
            return None;
        };
        if self.cipher.overhead() == 0
            && !seg.payload().is_empty()
            && !tcp::checksum_ok(bytes, src, dst)
        {
            self.drop(DropReason::BadChecksum);
            return None;
        }
        Some(seg)
    }

    /// Answers `seg` with a RST from `local` to `peer`, within the RST budget
    pub(crate) fn send_reset(
        &mut self,
        device: DeviceId,
        dest: Dest,
        local: SocketAddr,
        peer: SocketAddr,
        seg: &tcp::Segment<'_>,
    ) {
        if !self.rsts.allow(self.now) {
            return;
        }
        let mut buf = self.tx.take(ethernet::MIN_FRAME_LEN + 40);
        let src = self.device(device).mac;
        ethernet::write(&mut buf.bytes, Mac::ZERO, src, outer::ethertype(peer.ip()));
        let n = faketcp::write_reset(&mut buf.bytes[ethernet::HEADER_LEN..], local, peer, seg);
        self.stats.tunnel_tx.add(n);
        buf.len = ethernet::pad(&mut buf.bytes, ethernet::HEADER_LEN + n);
        self.send_frame(device, dest, buf);
    }

    /// Sends a challenge ACK on `conn` (RFC 5961 §7), within the challenge budget; counted as
    /// [`DropReason::Challenged`], or [`DropReason::BadReset`] beyond the budget
    pub(crate) fn send_challenge(&mut self, conn: &mut Conn, device: DeviceId, dest: Dest) {
        if self.challenges.allow(self.now) {
            self.drop(DropReason::Challenged);
            self.send_control(conn, device, dest, Control::Ack);
        } else {
            self.drop(DropReason::BadReset);
        }
    }

    /// Sends a FakeTCP control segment (SYN, SYN+ACK, ACK, keepalive) of `conn`
    pub(crate) fn send_control(
        &mut self,
        conn: &mut Conn,
        device: DeviceId,
        dest: Dest,
        kind: Control,
    ) {
        let mut buf = self.tx.take(ethernet::MIN_FRAME_LEN + 80);
        let src_mac = self.device(device).mac;
        let ethertype = outer::ethertype(conn.remote.ip());
        ethernet::write(&mut buf.bytes, Mac::ZERO, src_mac, ethertype);
        let ip_len = conn.write_control(&mut buf.bytes[ethernet::HEADER_LEN..], self.now, kind);
        self.finish_tunnel(device, dest, buf, ip_len, conn.frame_size(self.mtu));
    }

    /// Pads a built FakeTCP frame of `ip_len` IP bytes and sends it, or fragments it when it
    /// exceeds `mtu` (its connection's frame size); returns its IP length
    pub(crate) fn finish_tunnel(
        &mut self,
        device: DeviceId,
        dest: Dest,
        mut buf: FrameBuf,
        ip_len: usize,
        mtu: usize,
    ) -> usize {
        self.stats.tunnel_tx.add(ip_len);
        if ip_len <= mtu {
            buf.len = ethernet::pad(&mut buf.bytes, ethernet::HEADER_LEN + ip_len);
            self.send_frame(device, dest, buf);
        } else {
            let end = ethernet::HEADER_LEN + ip_len;
            match ip::Packet::parse(&buf.bytes[ethernet::HEADER_LEN..end]) {
                Some(ip::Packet::V4(p)) => {
                    self.send_ip(device, dest, &p, mtu);
                }
                Some(ip::Packet::V6(p)) => {
                    self.send_ip6_fragments(device, dest, &p, mtu);
                }
                None => unreachable!("the frame was just written with a valid header"),
            }
            self.tx.recycle(buf);
        }
        ip_len
    }

    /// Takes a believed Packet Too Big `report` for `conn`: lowers its frame size when the report
    /// quotes one of its unacknowledged segments, else counts [`DropReason::BadPacketTooBig`]
    pub(crate) fn packet_too_big_for(&mut self, conn: &mut Conn, report: &Report) {
        if !conn.quotes_unacked(report) {
            return self.drop(DropReason::BadPacketTooBig);
        }
        if conn.lower_frame_size(pmtu::lowered(report.mtu), self.mtu) {
            let mtu = u16::try_from(conn.frame_size(self.mtu)).unwrap_or(u16::MAX);
            self.tx.event(Event::PathMtuLowered {
                peer: conn.remote,
                mtu,
            });
        }
    }

    /// The largest frame `conn` sends: the tunnel MTU or its lowered path MTU
    pub(crate) fn frame_size(&self, conn: &Conn) -> usize {
        conn.frame_size(self.mtu)
    }

    /// Builds an ICMP "fragmentation needed" about `original` (too big for `mtu` with DF set)
    /// from `src`, counting a [`DropReason::TooBig`]; the IPv4 packet is `buf.bytes[14..buf.len]`
    pub(crate) fn frag_needed(
        &mut self,
        original: &ipv4::Packet<'_>,
        src: Ipv4Addr,
        mtu: usize,
    ) -> FrameBuf {
        let mut buf = self.tx.take(ethernet::HEADER_LEN + ipv4::HEADER_LEN + 128);
        let at = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
        let mtu = u16::try_from(mtu).unwrap_or(u16::MAX);
        let icmp_len = icmp::write_frag_needed(&mut buf.bytes[at..], original, mtu);
        ipv4::write_header(
            &mut buf.bytes[ethernet::HEADER_LEN..],
            &ipv4::Header {
                src,
                dst: original.src(),
                protocol: proto::ICMP,
                id: 0,
                ttl: ICMP_TTL,
                flags_offset: 0,
                payload_len: icmp_len,
            },
        );
        buf.len = at + icmp_len;
        self.drop(DropReason::TooBig);
        buf
    }

    /// Builds an ICMPv6 Packet Too Big about `original` (too big for `mtu`) from `src`, counting
    /// a [`DropReason::TooBig`]; the IPv6 packet is `buf.bytes[14..buf.len]`
    pub(crate) fn packet_too_big(
        &mut self,
        original: &ipv6::Packet<'_>,
        src: Ipv6Addr,
        mtu: usize,
    ) -> FrameBuf {
        let mut buf = self.tx.take(ethernet::HEADER_LEN + ipv6::MIN_MTU);
        let mtu = u32::try_from(mtu).unwrap_or(u32::MAX);
        let n = icmpv6::write_packet_too_big(
            &mut buf.bytes[ethernet::HEADER_LEN..],
            src,
            original,
            mtu,
        );
        buf.len = ethernet::HEADER_LEN + n;
        self.drop(DropReason::TooBig);
        buf
    }

    /// Earliest deadline of the shared parts
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.neighbors.poll_timeout(),
            self.reassembler.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Runs the shared parts' due timers
    pub(crate) fn handle_timeout(&mut self) {
        let now = self.now;
        let unresolved = self.neighbors.handle_timeout(now, &mut self.tx);
        self.drop_n(DropReason::ArpUnresolved, unresolved.arp as u64);
        self.drop_n(DropReason::NdpUnresolved, unresolved.ndp as u64);
        let expired = self.reassembler.handle_timeout(now);
        self.drop_n(DropReason::FragmentTimeout, expired as u64);
    }

    /// The next queued frame or event
    pub(crate) fn poll(&mut self, buf: &mut [u8]) -> Option<Output> {
        self.tx.poll(buf)
    }
}
