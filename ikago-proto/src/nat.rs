//! Server full-cone NAT, for IPv4 and IPv6 (NAT66)
//!
//! The server puts every client's inner packets onto its one public address of their family: the
//! upstream device's IPv4 address, or its IPv6 address for inner IPv6 (without the address of
//! its family, a packet is refused with [`DropReason::NoIpv4`] or [`DropReason::NoIpv6`]). Both families share the table, the timers and the rules
//! below; each has its own port pools. A mapping is keyed by
//! (client, protocol, inner source address, inner source port or ICMP echo id) and owns one port
//! (or id) of that protocol's pool: the destination is not part of the key and inbound packets are
//! not filtered by their source, so any remote host reaches the mapped port (endpoint-independent
//! mapping and filtering, RFC 4787 REQ-1 and REQ-8; RFC 5508 for ICMP).
//!
//! Translation is in place with incremental checksums (RFC 1624), so ICMP errors whose quoted
//! datagram stops after 8 bytes of transport header are translated too: the outer header, the
//! ICMP checksum, the quoted IP header and the quoted transport header with its checksum. ICMPv6
//! checksums also cover the pseudo-header (RFC 4443 §2.3), so the outer address rewrite is
//! folded into them; IPv6 extension headers are walked to the transport header (the quoted
//! datagram's too). The
//! Go original looked errors about TCP and UDP flows up under protocol ICMP and never delivered
//! them (`reference/ikago-original.md` §7.2); here they are looked up under the quoted protocol.
//!
//! Mappings expire after an idle timeout per protocol, refreshed by traffic in both directions.
//! The key map and the port tables change together, so an expired mapping is gone from both and
//! its port can be handed out again (the original kept stale keys, §12 item 6).

use crate::config::NatConfig;
use crate::hashing::{self, Keyed, Map};
use crate::stats::DropReason;
use crate::timer::Queue;
use crate::wire::{checksum, icmp, icmpv6, ipv4, ipv6, proto, tcp};
use rand_core::RngCore;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// ICMP source quench (RFC 792; deprecated by RFC 6633 but still an error that quotes a datagram)
const SOURCE_QUENCH: u8 = 4;
/// Bytes of transport header an ICMP error must quote after the IPv4 header (RFC 792: 64 bits)
const QUOTED_TRANSPORT_LEN: usize = 8;
/// Length of a UDP header (RFC 768)
const UDP_HEADER_LEN: usize = 8;
/// Longest idle timeout honoured: a longer configured one is capped so deadlines cannot overflow
const MAX_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// What outbound translation did
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outbound {
    /// The mapping made for this packet, when it is new (for an `Event::NatMapped`)
    pub(crate) created: Option<Mapping>,
}

/// One NAT mapping: a client's inner endpoint and the public endpoint it goes out as
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mapping {
    /// The owning client (the server's opaque id)
    pub(crate) client: u32,
    /// IP protocol number (1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6)
    pub(crate) protocol: u8,
    /// The inner source address and port (ICMP echo id)
    pub(crate) inner: SocketAddr,
    /// The public address and port (ICMP echo id), of the inner one's family
    pub(crate) public: SocketAddr,
}

/// The server's NAT table: mappings by key and by public port, and their expiry
///
/// Call [`outbound`](Self::outbound) for each inner packet from a client and
/// [`inbound`](Self::inbound) for each packet from the Internet; call
/// [`handle_timeout`](Self::handle_timeout) when [`poll_timeout`](Self::poll_timeout) is due.
#[derive(Debug)]
pub(crate) struct Nat {
    /// The public address IPv4 packets go out from, if the server has one
    public: Option<Ipv4Addr>,
    /// The public address IPv6 packets go out from, if the server has one
    public6: Option<Ipv6Addr>,
    /// Port pools indexed by [`pool_index`]: TCP, UDP, ICMP, then the same for IPv6
    pools: [Pool; 6],
    /// Idle timeouts
    timeouts: Timeouts,
    /// Mapping key -> slot index (hashed under a key from the machine's seed: deterministic)
    keys: Map<Key, u32>,
    /// The mappings; `None` slots are listed in `free`
    slots: Vec<Option<Slot>>,
    /// Indices of empty slots
    free: Vec<u32>,
    /// Scheduled expiry checks, lazily invalidated (see [`Deadline`])
    queue: Queue<Deadline>,
    /// Mappings found expired while translating, reported by the next `handle_timeout`
    pending: Vec<Mapping>,
    /// Earliest expiry among `pending`
    pending_since: Option<Instant>,
    /// Generation given to the next mapping (tells a recycled slot from its previous tenant)
    next_generation: u64,
}

/// The key of a mapping (RFC 4787 endpoint-independent: no destination)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    /// The owning client
    client: u32,
    /// IP protocol number
    protocol: u8,
    /// Inner source address and port (ICMP echo id)
    inner: SocketAddr,
}

impl Key {
    /// The key of `m`
    fn of(m: &Mapping) -> Self {
        Self {
            client: m.client,
            protocol: m.protocol,
            inner: m.inner,
        }
    }
}

/// A live mapping and its timers
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// What is mapped
    mapping: Mapping,
    /// Generation, unique over the table's life
    generation: u64,
    /// When the mapping expires unless refreshed
    expires: Instant,
    /// The deadline of this mapping's valid queue entry (never later than `expires`)
    scheduled: Instant,
    /// TCP: a FIN or RST was seen, the closing timeout applies
    closing: bool,
}

/// A queue entry: check slot `index` when it comes due
///
/// Refreshing a mapping does not touch the queue; when the entry comes due and the mapping was
/// refreshed it is pushed again at the new expiry. An entry is stale, and skipped, when its slot
/// now holds another generation or the mapping was rescheduled earlier (a TCP FIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    /// Generation of the mapping it was pushed for
    generation: u64,
    /// Slot index
    index: u32,
}

/// Idle timeouts from [`NatConfig`], capped at [`MAX_TIMEOUT`]
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    /// TCP
    tcp: Duration,
    /// TCP after a FIN or RST
    tcp_closing: Duration,
    /// UDP
    udp: Duration,
    /// ICMP echo
    icmp: Duration,
}

impl Timeouts {
    /// The idle timeout of a mapping of `protocol`
    fn of(&self, protocol: u8, closing: bool) -> Duration {
        match protocol {
            proto::TCP if closing => self.tcp_closing,
            proto::TCP => self.tcp,
            proto::UDP => self.udp,
            _ => self.icmp,
        }
    }
}

/// The public ports (or ids) of one protocol and who holds them
#[derive(Debug)]
struct Pool {
    /// First port
    first: u16,
    /// Number of ports (0 for an empty range)
    len: u32,
    /// Ports held
    used: u32,
    /// Port - `first` -> slot index + 1, 0 when free; allocated on first use
    table: Vec<u32>,
}

impl Pool {
    /// A pool over `range`, without port 0 when `skip_zero` (TCP and UDP cannot use it)
    fn new(range: &RangeInclusive<u16>, skip_zero: bool) -> Self {
        let (mut first, last) = (*range.start(), *range.end());
        if skip_zero && first == 0 {
            first = 1;
        }
        let len = if first > last || (skip_zero && last == 0) {
            0
        } else {
            u32::from(last - first) + 1
        };
        Self {
            first,
            len,
            used: 0,
            table: Vec::new(),
        }
    }

    /// The table offset of `port`, if it is in the pool
    fn offset(&self, port: u16) -> Option<usize> {
        let off = u32::from(port.checked_sub(self.first)?);
        (off < self.len).then_some(off as usize)
    }

    /// The slot index holding `port`
    fn get(&self, port: u16) -> Option<u32> {
        let off = self.offset(port)?;
        match self.table.get(off) {
            Some(&v) if v != 0 => Some(v - 1),
            _ => None,
        }
    }

    /// Whether the port at table offset `off` is free
    fn free_at(&self, off: usize) -> bool {
        self.table.get(off).is_none_or(|&v| v == 0)
    }

    /// A free port: `preferred` if it is in the pool and free, else the first free one probing
    /// from a random start
    fn allocate(&self, preferred: u16, rng: &mut impl RngCore) -> Option<u16> {
        if self.used >= self.len {
            return None;
        }
        if self.offset(preferred).is_some_and(|off| self.free_at(off)) {
            return Some(preferred);
        }
        let start = ((u64::from(rng.next_u32()) * u64::from(self.len)) >> 32) as u32;
        (0..self.len)
            .map(|i| (start + i) % self.len)
            .find(|&off| self.free_at(off as usize))
            .map(
                // first + off <= last <= 65535
                |off| (u32::from(self.first) + off) as u16,
            )
    }

    /// Marks `port` as held by slot `index`
    fn hold(&mut self, port: u16, index: u32) {
        let Some(off) = self.offset(port) else { return };
        if self.table.is_empty() {
            self.table = vec![0; self.len as usize];
        }
        if let Some(v) = self.table.get_mut(off) {
            if *v == 0 {
                self.used += 1;
            }
            *v = index + 1;
        }
    }

    /// Returns `port` to the pool
    fn release(&mut self, port: u16) {
        let Some(off) = self.offset(port) else { return };
        if let Some(v) = self.table.get_mut(off)
            && *v != 0
        {
            *v = 0;
            self.used -= 1;
        }
    }
}

/// The index into [`Nat::pools`] of a translated protocol of IPv6 (`v6`) or IPv4
fn pool_index(protocol: u8, v6: bool) -> Option<usize> {
    let i = match protocol {
        proto::TCP => 0,
        proto::UDP => 1,
        proto::ICMP if !v6 => 2,
        proto::ICMPV6 if v6 => 2,
        _ => return None,
    };
    Some(if v6 { i + 3 } else { i })
}

/// Which endpoint of a packet to rewrite
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Source address and port
    Src,
    /// Destination address and port
    Dst,
}

/// The layout of a packet as the NAT sees it
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// IPv6 (else IPv4)
    v6: bool,
    /// Where its transport header starts (IPv6: after the extension headers)
    header_len: usize,
    /// Its transport protocol
    protocol: u8,
    /// Its source address
    src: IpAddr,
    /// Its destination address
    dst: IpAddr,
}

impl Layout {
    /// The ICMP protocol of its family
    fn icmp(&self) -> u8 {
        if self.v6 { proto::ICMPV6 } else { proto::ICMP }
    }
    /// Whether ICMP type `ty` of its family is an echo request
    fn is_echo_request(&self, ty: u8) -> bool {
        ty == if self.v6 {
            icmpv6::ECHO_REQUEST
        } else {
            icmp::ECHO_REQUEST
        }
    }
    /// Whether ICMP type `ty` of its family is an echo reply
    fn is_echo_reply(&self, ty: u8) -> bool {
        ty == if self.v6 {
            icmpv6::ECHO_REPLY
        } else {
            icmp::ECHO_REPLY
        }
    }
    /// Whether ICMP type `ty` of its family is an error the NAT translates (redirects are not)
    fn is_translated_error(&self, ty: u8) -> bool {
        if self.v6 {
            matches!(
                ty,
                icmpv6::DEST_UNREACHABLE
                    | icmpv6::PACKET_TOO_BIG
                    | icmpv6::TIME_EXCEEDED
                    | icmpv6::PARAMETER_PROBLEM
            )
        } else {
            is_translated_error(ty)
        }
    }
}

impl Nat {
    /// An empty table for the public addresses `public` and `public6` (each if the server has
    /// one), hashing its keys under `keyed`
    pub(crate) fn new(
        config: &NatConfig,
        public: Option<Ipv4Addr>,
        public6: Option<Ipv6Addr>,
        keyed: Keyed,
    ) -> Self {
        let cap = |d: Duration| d.min(MAX_TIMEOUT);
        Self {
            public,
            public6,
            pools: [
                Pool::new(&config.tcp_ports, true),
                Pool::new(&config.udp_ports, true),
                Pool::new(&config.icmp_ids, false),
                Pool::new(&config.tcp_ports, true),
                Pool::new(&config.udp_ports, true),
                Pool::new(&config.icmp_ids, false),
            ],
            timeouts: Timeouts {
                tcp: cap(config.tcp_timeout),
                tcp_closing: cap(config.tcp_closing_timeout),
                udp: cap(config.udp_timeout),
                icmp: cap(config.icmp_timeout),
            },
            keys: hashing::map(keyed),
            slots: Vec::new(),
            free: Vec::new(),
            queue: Queue::default(),
            pending: Vec::new(),
            pending_since: None,
            next_generation: 0,
        }
    }

    /// Translates in place a packet from client `client` (an opaque id, never reused by the server for another client)
    ///
    /// `packet` is a whole IPv4 or IPv6 packet, not a fragment (an IPv4 one already validated
    /// by `wire::ipv4::Packet::parse`); bytes after its length are left alone. TCP, UDP and
    /// ICMP echo get the public address of their family and a mapped port or id, creating the
    /// mapping if needed and refreshing it. An ICMP error from a LAN host quotes an inbound
    /// packet (source remote, destination the inner endpoint): it is sent from the public address
    /// with the quoted destination mapped back, and never creates or refreshes a mapping. The TTL
    /// (hop limit) is kept.
    pub(crate) fn outbound(
        &mut self,
        now: Instant,
        client: u32,
        packet: &mut [u8],
        rng: &mut impl RngCore,
    ) -> Result<Outbound, DropReason> {
        let (l, len) = parse(packet)?;
        let packet = &mut packet[..len];
        let public = self.public_of(&l)?;
        let hl = l.header_len;
        let protocol = l.protocol;
        match protocol {
            proto::TCP | proto::UDP => {}
            p if p == l.icmp() => match icmp_type(packet, hl)? {
                ty if l.is_echo_request(ty) || l.is_echo_reply(ty) => {}
                ty if l.is_translated_error(ty) => {
                    self.outbound_error(now, client, packet, &l, public)?;
                    return Ok(Outbound { created: None });
                }
                _ => return Err(DropReason::UnsupportedProtocol),
            },
            _ => return Err(DropReason::UnsupportedProtocol),
        }
        let (port, flags) = transport(packet, hl, protocol, Side::Src)?;
        let inner = SocketAddr::new(l.src, port);
        let key = Key {
            client,
            protocol,
            inner,
        };
        let (index, created) = match self.lookup_key(now, &key) {
            Some((index, _)) => (index, None),
            None => {
                let (index, m) = self.create(now, key, rng)?;
                (index, Some(m))
            }
        };
        let public = self
            .touch(now, index, flags)
            .ok_or(DropReason::NoNatMapping)?
            .public;
        rewrite(packet, hl, protocol, Side::Src, public, &mut 0);
        Ok(Outbound { created })
    }

    /// The public address for packets of `l`'s family
    fn public_of(&self, l: &Layout) -> Result<IpAddr, DropReason> {
        if l.v6 {
            self.public6.map(IpAddr::V6).ok_or(DropReason::NoIpv6)
        } else {
            self.public.map(IpAddr::V4).ok_or(DropReason::NoIpv4)
        }
    }

    /// Translates in place a packet from the Internet (validated, not a fragment); returns the owning client id
    ///
    /// TCP, UDP and ICMP echo replies to a mapped public port or id get the inner destination
    /// back and refresh the mapping, whoever sent them (full cone). An ICMP error quoting one of
    /// our packets (source the public endpoint) gets its destination and quoted source mapped
    /// back, without refreshing. Echo requests to the public address are left to the host.
    pub(crate) fn inbound(&mut self, now: Instant, packet: &mut [u8]) -> Result<u32, DropReason> {
        let (l, len) = parse(packet)?;
        let packet = &mut packet[..len];
        if Ok(l.dst) != self.public_of(&l) {
            return Err(DropReason::NoNatMapping);
        }
        let hl = l.header_len;
        let protocol = l.protocol;
        match protocol {
            proto::TCP | proto::UDP => {}
            p if p == l.icmp() => match icmp_type(packet, hl)? {
                ty if l.is_echo_reply(ty) => {}
                ty if l.is_echo_request(ty) => return Err(DropReason::NoNatMapping),
                ty if l.is_translated_error(ty) => return self.inbound_error(now, packet, &l),
                _ => return Err(DropReason::UnsupportedProtocol),
            },
            _ => return Err(DropReason::UnsupportedProtocol),
        }
        let (port, flags) = transport(packet, hl, protocol, Side::Dst)?;
        let (index, _) = self
            .lookup_public(now, protocol, l.v6, port)
            .ok_or(DropReason::NoNatMapping)?;
        let m = self
            .touch(now, index, flags)
            .ok_or(DropReason::NoNatMapping)?;
        rewrite(packet, hl, protocol, Side::Dst, m.inner, &mut 0);
        Ok(m.client)
    }

    /// Earliest instant a mapping may expire
    ///
    /// Refreshing does not reschedule, so this may come before the real expiry; the
    /// `handle_timeout` at that instant then only reschedules. After `handle_timeout(now)` it is
    /// later than `now`.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let queue = self.queue.next();
        match (queue, self.pending_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes expired mappings, calling `expired` for each (for Event::NatExpired)
    ///
    /// Early or repeated calls are harmless.
    pub(crate) fn handle_timeout(&mut self, now: Instant, mut expired: impl FnMut(&Mapping)) {
        for m in self.pending.drain(..) {
            expired(&m);
        }
        self.pending_since = None;
        // due entries, and stale ones at the front so that `poll_timeout` shows a live one
        while let Some((at, d)) = self.queue.peek() {
            let index = d.index as usize;
            let live = self
                .slots
                .get(index)
                .and_then(Option::as_ref)
                .filter(|s| s.generation == d.generation && s.scheduled == at)
                .map(|s| s.expires);
            if live.is_some() && at > now {
                break;
            }
            self.queue.pop();
            match live {
                Some(expires) if expires <= now => {
                    if let Some(slot) = self.remove(d.index) {
                        expired(&slot.mapping);
                    }
                }
                Some(expires) => {
                    if let Some(Some(slot)) = self.slots.get_mut(index) {
                        slot.scheduled = expires;
                    }
                    self.schedule(expires, d);
                }
                None => {}
            }
        }
    }

    /// Queues the check of `d` at `at` (its slot's `scheduled` is already `at`)
    fn schedule(&mut self, at: Instant, d: Deadline) {
        let Self {
            queue, slots, keys, ..
        } = self;
        queue.push(at, d, keys.len(), |at, d| {
            slots
                .get(d.index as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.generation == d.generation && s.scheduled == at)
        });
    }

    /// Mappings in use
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Total pool size (tcp + udp + icmp of each family with a public address)
    pub(crate) fn capacity(&self) -> usize {
        let v4 = if self.public.is_some() { 0..3 } else { 0..0 };
        let v6 = if self.public6.is_some() { 3..6 } else { 0..0 };
        self.pools[v4]
            .iter()
            .chain(&self.pools[v6])
            .map(|p| p.len as usize)
            .sum()
    }

    /// Outbound ICMP error from a LAN host about a packet we delivered to it
    fn outbound_error(
        &mut self,
        now: Instant,
        client: u32,
        packet: &mut [u8],
        l: &Layout,
        public: IpAddr,
    ) -> Result<(), DropReason> {
        let (q, port) = quoted(packet, l, Side::Dst)?;
        let key = Key {
            client,
            protocol: q.protocol,
            inner: SocketAddr::new(q.dst, port),
        };
        let (_, m) = self.lookup_key(now, &key).ok_or(DropReason::NoNatMapping)?;
        rewrite_quoted(packet, l.header_len, &q, Side::Dst, m.public);
        rewrite_addr(packet, l.header_len, l.protocol, Side::Src, public, &mut 0);
        Ok(())
    }

    /// Inbound ICMP error from the Internet about a packet we sent
    fn inbound_error(
        &mut self,
        now: Instant,
        packet: &mut [u8],
        l: &Layout,
    ) -> Result<u32, DropReason> {
        let (q, port) = quoted(packet, l, Side::Src)?;
        if q.src != l.dst {
            return Err(DropReason::NoNatMapping);
        }
        let (_, m) = self
            .lookup_public(now, q.protocol, l.v6, port)
            .ok_or(DropReason::NoNatMapping)?;
        rewrite_quoted(packet, l.header_len, &q, Side::Src, m.inner);
        rewrite_addr(
            packet,
            l.header_len,
            l.protocol,
            Side::Dst,
            m.inner.ip(),
            &mut 0,
        );
        Ok(m.client)
    }

    /// The live mapping with key `key`; an expired one is removed (and reported later)
    fn lookup_key(&mut self, now: Instant, key: &Key) -> Option<(u32, Mapping)> {
        let index = *self.keys.get(key)?;
        self.live(now, index)
    }

    /// The live mapping holding public `port` of `protocol` over IPv6 (`v6`) or IPv4; an
    /// expired one is removed
    fn lookup_public(
        &mut self,
        now: Instant,
        protocol: u8,
        v6: bool,
        port: u16,
    ) -> Option<(u32, Mapping)> {
        let index = self.pools[pool_index(protocol, v6)?].get(port)?;
        self.live(now, index)
    }

    /// The mapping in slot `index` unless it has expired, in which case it is removed now and
    /// reported by the next `handle_timeout`
    fn live(&mut self, now: Instant, index: u32) -> Option<(u32, Mapping)> {
        let slot = self.slots.get(index as usize)?.as_ref()?;
        if slot.expires > now {
            return Some((index, slot.mapping));
        }
        let expires = slot.expires;
        if let Some(slot) = self.remove(index) {
            self.pending.push(slot.mapping);
            self.pending_since = Some(self.pending_since.map_or(expires, |p| p.min(expires)));
        }
        None
    }

    /// Makes a mapping for `key`, preferring to keep its port
    fn create(
        &mut self,
        now: Instant,
        key: Key,
        rng: &mut impl RngCore,
    ) -> Result<(u32, Mapping), DropReason> {
        let v6 = key.inner.is_ipv6();
        let pool = pool_index(key.protocol, v6).ok_or(DropReason::UnsupportedProtocol)?;
        let public = match key.inner {
            SocketAddr::V4(_) => IpAddr::V4(self.public.ok_or(DropReason::NoIpv4)?),
            SocketAddr::V6(_) => IpAddr::V6(self.public6.ok_or(DropReason::NoIpv6)?),
        };
        let port = self.pools[pool]
            .allocate(key.inner.port(), rng)
            .ok_or(DropReason::NatExhausted)?;
        let mapping = Mapping {
            client: key.client,
            protocol: key.protocol,
            inner: key.inner,
            public: SocketAddr::new(public, port),
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        let expires = deadline(now, self.timeouts.of(key.protocol, false));
        let slot = Slot {
            mapping,
            generation,
            expires,
            scheduled: expires,
            closing: false,
        };
        let index = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                // at most 6 * 65536 slots are ever live at once
                (self.slots.len() - 1) as u32
            }
        };
        self.pools[pool].hold(port, index);
        self.keys.insert(key, index);
        self.schedule(expires, Deadline { generation, index });
        Ok((index, mapping))
    }

    /// Refreshes the mapping in slot `index` after a packet with TCP flags `flags` (0 otherwise)
    ///
    /// A FIN or RST switches a TCP mapping to the closing timeout; a SYN without ACK (a new
    /// connection from the same inner port) switches it back.
    fn touch(&mut self, now: Instant, index: u32, flags: u8) -> Option<Mapping> {
        let slot = self.slots.get_mut(index as usize)?.as_mut()?;
        if slot.mapping.protocol == proto::TCP {
            if flags & (tcp::FIN | tcp::RST) != 0 {
                slot.closing = true;
            } else if flags & (tcp::SYN | tcp::ACK) == tcp::SYN {
                slot.closing = false;
            }
        }
        slot.expires = deadline(now, self.timeouts.of(slot.mapping.protocol, slot.closing));
        let mapping = slot.mapping;
        if slot.expires < slot.scheduled {
            slot.scheduled = slot.expires;
            let (at, generation) = (slot.expires, slot.generation);
            self.schedule(at, Deadline { generation, index });
        }
        Some(mapping)
    }

    /// Takes the mapping out of slot `index`, the key map and the port table
    fn remove(&mut self, index: u32) -> Option<Slot> {
        let slot = self.slots.get_mut(index as usize)?.take()?;
        self.keys.remove(&Key::of(&slot.mapping));
        if let Some(pool) = pool_index(slot.mapping.protocol, slot.mapping.inner.is_ipv6()) {
            self.pools[pool].release(slot.mapping.public.port());
        }
        self.free.push(index);
        Some(slot)
    }
}

/// `now + timeout` (`now` if that overflows, which a timeout capped at [`MAX_TIMEOUT`] does not
/// on a real clock)
fn deadline(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout).unwrap_or(now)
}

/// Checks the IPv4 or IPv6 packet again (the NAT never trusts its caller with bytes) and returns
/// its layout and length
fn parse(packet: &[u8]) -> Result<(Layout, usize), DropReason> {
    if packet.first().is_some_and(|b| b >> 4 == 6) {
        let p = ipv6::Packet::parse(packet).map_err(DropReason::from)?;
        if p.fragment().is_some() {
            return Err(DropReason::Malformed);
        }
        let l = Layout {
            v6: true,
            header_len: p.header_len(),
            protocol: p.protocol(),
            src: p.src().into(),
            dst: p.dst().into(),
        };
        return Ok((l, p.bytes().len()));
    }
    let p = ipv4::Packet::parse(packet).map_err(DropReason::from)?;
    if p.is_fragment() {
        return Err(DropReason::Malformed);
    }
    let l = Layout {
        v6: false,
        header_len: p.header_len(),
        protocol: p.protocol(),
        src: p.src().into(),
        dst: p.dst().into(),
    };
    Ok((l, p.bytes().len()))
}

/// The ICMP type of `packet`, whose ICMP header must be whole
fn icmp_type(packet: &[u8], hl: usize) -> Result<u8, DropReason> {
    if packet.len() < hl + icmp::HEADER_LEN {
        return Err(DropReason::Malformed);
    }
    Ok(packet[hl])
}

/// Whether ICMP type `ty` is an error the NAT translates (redirects are not)
fn is_translated_error(ty: u8) -> bool {
    matches!(
        ty,
        icmp::DEST_UNREACHABLE | SOURCE_QUENCH | icmp::TIME_EXCEEDED | icmp::PARAMETER_PROBLEM
    )
}

/// The port (ICMP id) on `side` and the TCP flags of a TCP, UDP or ICMP echo packet
fn transport(packet: &[u8], hl: usize, protocol: u8, side: Side) -> Result<(u16, u8), DropReason> {
    let min = match protocol {
        proto::TCP => tcp::HEADER_LEN,
        proto::UDP => UDP_HEADER_LEN,
        _ => icmp::HEADER_LEN,
    };
    let t = packet
        .get(hl..)
        .filter(|t| t.len() >= min)
        .ok_or(DropReason::Malformed)?;
    let port = read16(t, layout(protocol, side).0).ok_or(DropReason::Malformed)?;
    let flags = if protocol == proto::TCP { t[13] } else { 0 };
    Ok((port, flags))
}

/// Validates the ICMP error in `packet` (layout `l`) and its quoted datagram; returns the quoted
/// datagram's layout and its port (ICMP id) on `side`
///
/// The ICMP checksum is verified first (RFC 5508 REQ-3; for ICMPv6 over the pseudo-header). The
/// quoted datagram must be of the error's family, and TCP, UDP or an ICMP echo with at least 8
/// bytes of transport header (IPv6: after its extension headers).
fn quoted(packet: &[u8], l: &Layout, side: Side) -> Result<(Layout, u16), DropReason> {
    let msg = packet.get(l.header_len..).ok_or(DropReason::Malformed)?;
    let sum = match (l.src, l.dst) {
        (IpAddr::V6(src), IpAddr::V6(dst)) => icmpv6::checksum(src, dst, msg),
        _ => checksum::of(msg),
    };
    if sum != 0 {
        return Err(DropReason::BadChecksum);
    }
    let q = msg.get(icmp::HEADER_LEN..).ok_or(DropReason::Malformed)?;
    let quoted = if l.v6 {
        let p = ipv6::Packet::parse_quoted(q).map_err(DropReason::from)?;
        if p.fragment().is_some_and(|f| f.offset != 0) {
            // a later fragment: what follows its header is no transport header
            return Err(DropReason::NoNatMapping);
        }
        Layout {
            v6: true,
            header_len: p.header_len(),
            protocol: p.protocol(),
            src: p.src().into(),
            dst: p.dst().into(),
        }
    } else {
        if q.len() < ipv4::HEADER_LEN || q[0] >> 4 != 4 {
            return Err(DropReason::Malformed);
        }
        let header_len = usize::from(q[0] & 0x0f) * 4;
        if header_len < ipv4::HEADER_LEN {
            return Err(DropReason::Malformed);
        }
        if u16::from_be_bytes([q[6], q[7]]) & ipv4::OFFSET_MASK != 0 {
            // a later fragment: what follows its header is no transport header
            return Err(DropReason::NoNatMapping);
        }
        Layout {
            v6: false,
            header_len,
            protocol: q[9],
            src: IpAddr::V4(ip_at(q, 12)),
            dst: IpAddr::V4(ip_at(q, 16)),
        }
    };
    let t = q
        .get(quoted.header_len..)
        .filter(|t| t.len() >= QUOTED_TRANSPORT_LEN)
        .ok_or(DropReason::Malformed)?;
    match quoted.protocol {
        proto::TCP | proto::UDP => {}
        p if p == quoted.icmp() && (quoted.is_echo_request(t[0]) || quoted.is_echo_reply(t[0])) => {
        }
        _ => return Err(DropReason::UnsupportedProtocol),
    }
    let port = read16(t, layout(quoted.protocol, side).0).ok_or(DropReason::Malformed)?;
    Ok((quoted, port))
}

/// Rewrites endpoint `side` of the datagram quoted in the ICMP error in `packet`, fixing the
/// ICMP checksum
fn rewrite_quoted(packet: &mut [u8], hl: usize, q: &Layout, side: Side, to: SocketAddr) {
    let Some(msg) = packet.get_mut(hl..) else {
        return;
    };
    let Some(mut c) = read16(msg, 2) else { return };
    if let Some(inner) = msg.get_mut(icmp::HEADER_LEN..) {
        rewrite(inner, q.header_len, q.protocol, side, to, &mut c);
    }
    replace16(msg, 2, c, &mut 0);
}

/// Offsets in the transport header of the port (ICMP echo id) on `side` and of the checksum,
/// and whether the checksum covers the pseudo-header
fn layout(protocol: u8, side: Side) -> (usize, usize, bool) {
    let port = if side == Side::Src { 0 } else { 2 };
    match protocol {
        proto::TCP => (port, 16, true),
        proto::UDP => (port, 6, true),
        proto::ICMPV6 => (4, 2, true),
        _ => (4, 2, false),
    }
}

/// Rewrites the address and port (ICMP echo id) on `side` of the IP datagram at the start of
/// `pkt` (transport header at `hl`) to `to`, of the datagram's family, updating its IPv4 header
/// checksum and its transport checksum
///
/// The datagram may be a quoted one cut after 8 bytes of transport header: a checksum that is
/// not there (a quoted TCP one) is skipped. A UDP checksum of 0 ("none") stays 0. Every changed
/// 16-bit word is also folded into `outer`, the checksum of an enclosing ICMP message.
fn rewrite(pkt: &mut [u8], hl: usize, protocol: u8, side: Side, to: SocketAddr, outer: &mut u16) {
    rewrite_addr(pkt, hl, protocol, side, to.ip(), outer);
    let (port_at, csum_at, _) = layout(protocol, side);
    let Some(t) = pkt.get_mut(hl..) else { return };
    let Some(old_port) = replace16(t, port_at, to.port(), outer) else {
        return;
    };
    update_transport(t, protocol, csum_at, &[(old_port, to.port())], outer);
}

/// Rewrites the address on `side` of the IP datagram at the start of `pkt` (transport header at
/// `hl`) to `ip`, of the datagram's family, updating its IPv4 header checksum and the transport
/// checksum when it covers the pseudo-header (TCP, UDP, ICMPv6); changed words are folded into
/// `outer` as [`rewrite`] does
fn rewrite_addr(pkt: &mut [u8], hl: usize, protocol: u8, side: Side, ip: IpAddr, outer: &mut u16) {
    let (at, new, words) = match ip {
        IpAddr::V4(a) => {
            let mut w = [0u8; 16];
            w[..4].copy_from_slice(&a.octets());
            (if side == Side::Src { 12 } else { 16 }, w, 2)
        }
        IpAddr::V6(a) => (if side == Side::Src { 8 } else { 24 }, a.octets(), 8),
    };
    if pkt.len() < at + words * 2 {
        return;
    }
    let mut changes = [(0u16, 0u16); 8];
    for (i, c) in changes.iter_mut().enumerate().take(words) {
        let w = u16::from_be_bytes([new[2 * i], new[2 * i + 1]]);
        let old = replace16(pkt, at + 2 * i, w, outer).unwrap_or(w);
        *c = (old, w);
    }
    let changes = &changes[..words];
    if ip.is_ipv4()
        && let Some(mut c) = read16(pkt, 10)
    {
        for &(old, new) in changes {
            c = checksum::update16(c, old, new);
        }
        replace16(pkt, 10, c, outer);
    }
    let (_, csum_at, pseudo) = layout(protocol, side);
    if let (true, Some(t)) = (pseudo, pkt.get_mut(hl..)) {
        update_transport(t, protocol, csum_at, changes, outer);
    }
}

/// Folds the 16-bit changes `(old, new)` into the transport checksum at `csum_at` of `t` (when
/// it is there; a UDP checksum of 0 stays 0), folding the checksum's own change into `outer`
fn update_transport(
    t: &mut [u8],
    protocol: u8,
    csum_at: usize,
    changes: &[(u16, u16)],
    outer: &mut u16,
) {
    let Some(mut c) = read16(t, csum_at) else {
        return;
    };
    let udp = protocol == proto::UDP;
    if udp && c == 0 {
        return;
    }
    for &(old, new) in changes {
        c = checksum::update16(c, old, new);
    }
    // UDP sends a computed 0 as its one's-complement twin (RFC 768)
    let c = if udp && c == 0 { 0xffff } else { c };
    replace16(t, csum_at, c, outer);
}

/// The big-endian 16-bit word at `at`
fn read16(b: &[u8], at: usize) -> Option<u16> {
    let w = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([w[0], w[1]]))
}

/// Writes `new` at `at` (an even offset into the checksummed data), folding the change into
/// checksum `outer`; returns the old word
fn replace16(b: &mut [u8], at: usize, new: u16, outer: &mut u16) -> Option<u16> {
    let w = b.get_mut(at..at + 2)?;
    let old = u16::from_be_bytes([w[0], w[1]]);
    w.copy_from_slice(&new.to_be_bytes());
    *outer = checksum::update16(*outer, old, new);
    Some(old)
}

/// The IPv4 address at `at` (callers have checked the length)
fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
    use proptest::prelude::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    /// The server's public address
    const PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 1);
    /// A LAN host behind a client
    const HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 11, 2);
    /// A host on the Internet
    const REMOTE: Ipv4Addr = Ipv4Addr::new(198, 18, 14, 2);
    /// Another host on the Internet, never contacted first
    const THIRD: Ipv4Addr = Ipv4Addr::new(198, 18, 15, 9);
    /// A router on the path, sending ICMP errors
    const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 254);
    /// The server's public IPv6 address
    const PUBLIC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 1);

    /// A seeded generator
    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    /// A table with the default configuration
    fn nat() -> Nat {
        Nat::new(
            &NatConfig::default(),
            Some(PUBLIC),
            Some(PUBLIC6),
            Keyed::new([0; 16]),
        )
    }

    /// An endpoint
    fn ep(ip: Ipv4Addr, port: u16) -> SocketAddr {
        SocketAddr::new(ip.into(), port)
    }

    /// The IP header builder from `src` to `dst` (IPv4 or IPv6, hop limit 64)
    fn ip(src: IpAddr, dst: IpAddr) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
            _ => panic!("mixed families"),
        }
    }

    /// A UDP datagram with a checksum
    fn udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let b = ip(src.ip(), dst.ip()).udp(src.port(), dst.port());
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    /// A TCP segment with `flags` (of FIN, SYN, RST, ACK)
    fn tcp_with(src: SocketAddr, dst: SocketAddr, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = ip(src.ip(), dst.ip()).tcp(src.port(), dst.port(), 1000, 64240);
        if flags & tcp::SYN != 0 {
            b = b.syn();
        }
        if flags & tcp::ACK != 0 {
            b = b.ack(1);
        }
        if flags & tcp::FIN != 0 {
            b = b.fin();
        }
        if flags & tcp::RST != 0 {
            b = b.rst();
        }
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    /// An ICMP echo request or reply
    fn echo(
        src: impl Into<IpAddr>,
        dst: impl Into<IpAddr>,
        request: bool,
        id: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let src = src.into();
        let b = ip(src, dst.into());
        let mut v = Vec::new();
        match (request, src.is_ipv6()) {
            (true, false) => b.icmpv4_echo_request(id, 1).write(&mut v, payload),
            (false, false) => b.icmpv4_echo_reply(id, 1).write(&mut v, payload),
            (true, true) => b.icmpv6_echo_request(id, 1).write(&mut v, payload),
            (false, true) => b.icmpv6_echo_reply(id, 1).write(&mut v, payload),
        }
        .unwrap();
        v
    }

    /// An ICMP error from `src` to `dst` quoting `quoted` cut after `quote` bytes
    fn error(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        ty: u8,
        code: u8,
        rest: [u8; 4],
        quoted: &[u8],
        quote: usize,
    ) -> Vec<u8> {
        let b = PacketBuilder::ipv4(src.octets(), dst.octets(), 64).icmpv4_raw(ty, code, rest);
        let mut v = Vec::new();
        b.write(&mut v, &quoted[..quote.min(quoted.len())]).unwrap();
        v
    }

    /// Source and destination endpoints (ICMP: the echo id as both ports)
    fn endpoints(pkt: &[u8]) -> (SocketAddr, SocketAddr) {
        let (l, _) = parse(pkt).unwrap();
        let t = &pkt[l.header_len..];
        let (sp, dp) = match l.protocol {
            proto::ICMP | proto::ICMPV6 => (read16(t, 4).unwrap(), read16(t, 4).unwrap()),
            _ => (read16(t, 0).unwrap(), read16(t, 2).unwrap()),
        };
        (SocketAddr::new(l.src, sp), SocketAddr::new(l.dst, dp))
    }

    /// Whether two checksums are the same one's-complement number (0 and 0xffff are both zero)
    fn same(a: u16, b: u16) -> bool {
        a == b || (a | b == 0xffff && a & b == 0)
    }

    /// Recomputes every checksum of `pkt` with etherparse, recursing into a quoted datagram that
    /// is whole; a truncated quoted datagram must still have a valid IPv4 header checksum
    fn assert_checksums(pkt: &[u8]) {
        let s = SlicedPacket::from_ip(pkt).expect("parses");
        let Some(NetSlice::Ipv4(ip)) = &s.net else {
            panic!("not ipv4")
        };
        let h = ip.header();
        assert_eq!(
            h.to_header().calc_header_checksum(),
            h.header_checksum(),
            "ip header"
        );
        let (src, dst) = (h.source(), h.destination());
        match s.transport.expect("transport") {
            TransportSlice::Tcp(t) => {
                assert!(
                    same(t.calc_checksum_ipv4(src, dst).unwrap(), t.checksum()),
                    "tcp"
                );
            }
            TransportSlice::Udp(u) => {
                if u.checksum() != 0 {
                    let c = u
                        .to_header()
                        .calc_checksum_ipv4_raw(src, dst, u.payload())
                        .unwrap();
                    assert!(same(c, u.checksum()), "udp");
                }
            }
            TransportSlice::Icmpv4(i) => {
                assert!(
                    same(i.icmp_type().calc_checksum(i.payload()), i.checksum()),
                    "icmp"
                );
                if is_translated_error(i.type_u8()) {
                    let q = i.payload();
                    let qhl = usize::from(q[0] & 0x0f) * 4;
                    assert_eq!(checksum::of(&q[..qhl]), 0, "quoted ip header");
                    if usize::from(u16::from_be_bytes([q[2], q[3]])) == q.len() {
                        assert_checksums(q);
                    }
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Outbound, asserting success and valid checksums
    fn out(nat: &mut Nat, now: Instant, client: u32, pkt: &mut [u8]) -> Outbound {
        let o = nat
            .outbound(now, client, pkt, &mut rng())
            .expect("outbound");
        assert_checksums(pkt);
        o
    }

    /// Inbound, asserting success and valid checksums
    fn inn(nat: &mut Nat, now: Instant, pkt: &mut [u8]) -> u32 {
        let c = nat.inbound(now, pkt).expect("inbound");
        assert_checksums(pkt);
        c
    }

    /// A LAN host's IPv6 address behind a client
    const HOST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 2);
    /// An Internet host's IPv6 address
    const REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x14, 0, 0, 0, 0, 2);
    /// An IPv6 router on the path
    const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 0xfe);

    /// An IPv6 endpoint
    fn ep6(ip: Ipv6Addr, port: u16) -> SocketAddr {
        SocketAddr::new(ip.into(), port)
    }

    /// Checks every checksum of the IPv6 packet `pkt` from scratch: its upper-layer checksum
    /// over the pseudo-header, and a whole quoted datagram's too
    fn assert_checksums6(pkt: &[u8]) {
        let p = ipv6::Packet::parse(pkt).expect("parses");
        let len = p.payload().len() as u32;
        let acc = checksum::pseudo_header6(p.src(), p.dst(), p.protocol(), len);
        assert_eq!(
            checksum::finish(checksum::sum(acc, p.payload())),
            0,
            "upper-layer checksum"
        );
        if p.protocol() == proto::ICMPV6 && icmpv6::is_error(p.payload()[0]) {
            let q = &p.payload()[icmpv6::HEADER_LEN..];
            if ipv6::Packet::parse(q).is_ok_and(|qp| qp.bytes().len() == q.len()) {
                assert_checksums6(q);
            }
        }
    }

    /// An ICMPv6 error from `src` to `dst` quoting `quoted` cut after `quote` bytes
    fn error6(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        ty: u8,
        rest: [u8; 4],
        quoted: &[u8],
        quote: usize,
    ) -> Vec<u8> {
        let q = &quoted[..quote.min(quoted.len())];
        let mut v = vec![0u8; ipv6::HEADER_LEN + icmpv6::HEADER_LEN + q.len()];
        ipv6::write_header(
            &mut v,
            &ipv6::Header {
                src,
                dst,
                next_header: proto::ICMPV6,
                hop_limit: 64,
                payload_len: 8 + q.len(),
            },
        );
        let msg = &mut v[ipv6::HEADER_LEN..];
        msg[0] = ty;
        msg[4..8].copy_from_slice(&rest);
        msg[8..].copy_from_slice(q);
        let c = icmpv6::checksum(src, dst, msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        v
    }

    #[test]
    fn nat66_udp_tcp_and_echo_out_then_in() {
        let (mut nat, now) = (nat(), Instant::now());
        let inner = ep6(HOST6, 50000);
        let mut p = udp(inner, ep6(REMOTE6, 53), b"query");
        let m = nat
            .outbound(now, 1, &mut p, &mut rng())
            .unwrap()
            .created
            .unwrap();
        assert_checksums6(&p);
        assert_eq!(
            (m.protocol, m.inner, m.public),
            (proto::UDP, inner, ep6(PUBLIC6, 50000)),
            "port kept"
        );
        assert_eq!(endpoints(&p), (m.public, ep6(REMOTE6, 53)));
        assert_eq!(p[7], 64, "hop limit kept");
        let mut r = udp(ep6(REMOTE6, 53), m.public, b"answer");
        assert_eq!(nat.inbound(now, &mut r), Ok(1));
        assert_checksums6(&r);
        assert_eq!(endpoints(&r), (ep6(REMOTE6, 53), inner));

        // the same inner port over IPv4 is a mapping of its own, in its own pool
        let mut p4 = udp(ep(HOST, 50000), ep(REMOTE, 53), b"v4");
        let m4 = out(&mut nat, now, 1, &mut p4).created.unwrap();
        assert_eq!(m4.public, ep(PUBLIC, 50000));
        // an IPv6 reply to the IPv4 port of a mapping that only exists over IPv4 does not match
        let mut stray = udp(ep6(REMOTE6, 53), ep6(PUBLIC6, 50001), b"x");
        assert_eq!(nat.inbound(now, &mut stray), Err(DropReason::NoNatMapping));

        let mut t = tcp_with(ep6(HOST6, 40000), ep6(REMOTE6, 443), tcp::SYN, &[]);
        let mt = nat
            .outbound(now, 1, &mut t, &mut rng())
            .unwrap()
            .created
            .unwrap();
        assert_checksums6(&t);
        let mut tr = tcp_with(ep6(REMOTE6, 443), mt.public, tcp::SYN | tcp::ACK, b"hi");
        assert_eq!(nat.inbound(now, &mut tr), Ok(1));
        assert_checksums6(&tr);
        assert_eq!(endpoints(&tr).1, ep6(HOST6, 40000));

        let mut e = echo(HOST6, REMOTE6, true, 77, b"ping");
        let me = nat
            .outbound(now, 1, &mut e, &mut rng())
            .unwrap()
            .created
            .unwrap();
        assert_checksums6(&e);
        assert_eq!(me.protocol, proto::ICMPV6);
        let mut er = echo(REMOTE6, PUBLIC6, false, me.public.port(), b"ping");
        assert_eq!(nat.inbound(now, &mut er), Ok(1));
        assert_checksums6(&er);
        assert_eq!(endpoints(&er).1, ep6(HOST6, 77));
        // an echo request to the public address is the host's
        let mut req = echo(REMOTE6, PUBLIC6, true, me.public.port(), b"ping");
        assert_eq!(nat.inbound(now, &mut req), Err(DropReason::NoNatMapping));
    }

    #[test]
    fn nat66_translates_icmpv6_errors_both_ways() {
        let (mut nat, now) = (nat(), Instant::now());
        let inner = ep6(HOST6, 5000);
        let mut p = udp(inner, ep6(REMOTE6, 53), &[7u8; 1400]);
        let m = nat
            .outbound(now, 1, &mut p, &mut rng())
            .unwrap()
            .created
            .unwrap();
        // a router's Packet Too Big about our packet, quoting as much as fits in 1280 bytes
        for quote in [48, 1232, p.len()] {
            let mut ptb = error6(
                ROUTER6,
                PUBLIC6,
                icmpv6::PACKET_TOO_BIG,
                1280u32.to_be_bytes(),
                &p,
                quote,
            );
            assert_eq!(nat.inbound(now, &mut ptb), Ok(1), "quote {quote}");
            assert_checksums6(&ptb);
            let back = ipv6::Packet::parse(&ptb).unwrap();
            assert_eq!((back.src(), back.dst()), (ROUTER6, HOST6));
            let q = ipv6::Packet::parse_quoted(&back.payload()[8..]).unwrap();
            assert_eq!(q.src(), HOST6);
            assert_eq!(&back.payload()[4..8], &1280u32.to_be_bytes(), "MTU kept");
            assert_eq!(
                read16(q.payload(), 0),
                Some(5000),
                "quoted port mapped back"
            );
        }
        // the LAN host's own error about an inbound packet goes out from the public address
        let reply = {
            let mut r = udp(ep6(REMOTE6, 53), m.public, b"answer");
            nat.inbound(now, &mut r).unwrap();
            r
        };
        let mut unreach = error6(
            HOST6,
            REMOTE6,
            icmpv6::DEST_UNREACHABLE,
            [0; 4],
            &reply,
            reply.len(),
        );
        assert!(
            nat.outbound(now, 1, &mut unreach, &mut rng())
                .unwrap()
                .created
                .is_none()
        );
        assert_checksums6(&unreach);
        let out = ipv6::Packet::parse(&unreach).unwrap();
        assert_eq!(out.src(), PUBLIC6);
        let q = ipv6::Packet::parse(&out.payload()[8..]).unwrap();
        assert_eq!(
            (q.dst(), read16(q.payload(), 2)),
            (PUBLIC6, Some(m.public.port()))
        );

        // garbage quoted, a bad checksum, and an error quoting nobody's packet are refused
        let mut garbage = error6(
            ROUTER6,
            PUBLIC6,
            icmpv6::TIME_EXCEEDED,
            [0; 4],
            &[0x60; 30],
            30,
        );
        assert!(nat.inbound(now, &mut garbage).is_err());
        let mut bad = error6(ROUTER6, PUBLIC6, icmpv6::PACKET_TOO_BIG, [0; 4], &p, 100);
        bad[50] ^= 1;
        assert_eq!(nat.inbound(now, &mut bad), Err(DropReason::BadChecksum));
        let other = udp(ep6(PUBLIC6, 999), ep6(REMOTE6, 53), b"x");
        let mut none = error6(ROUTER6, PUBLIC6, icmpv6::TIME_EXCEEDED, [0; 4], &other, 64);
        assert_eq!(nat.inbound(now, &mut none), Err(DropReason::NoNatMapping));
    }

    #[test]
    fn nat66_needs_a_public_ipv6_address() {
        let now = Instant::now();
        let mut nat = Nat::new(
            &NatConfig::default(),
            Some(PUBLIC),
            None,
            Keyed::new([0; 16]),
        );
        let mut p = udp(ep6(HOST6, 5000), ep6(REMOTE6, 53), b"q");
        assert_eq!(
            nat.outbound(now, 1, &mut p, &mut rng()),
            Err(DropReason::NoIpv6)
        );
        assert_eq!(nat.len(), 0);
        assert_eq!(nat.capacity() * 2, self::nat().capacity());
    }

    #[test]
    fn nat44_needs_a_public_ipv4_address() {
        let now = Instant::now();
        let public6 = Some(PUBLIC6);
        let mut nat = Nat::new(&NatConfig::default(), None, public6, Keyed::new([0; 16]));
        let mut p = udp(ep(HOST, 5000), ep(REMOTE, 53), b"q");
        assert_eq!(
            nat.outbound(now, 1, &mut p, &mut rng()),
            Err(DropReason::NoIpv4)
        );
        let mut p6 = udp(ep6(HOST6, 5000), ep6(REMOTE6, 53), b"q");
        assert!(nat.outbound(now, 1, &mut p6, &mut rng()).is_ok());
        assert_eq!(nat.len(), 1);
        assert_eq!(nat.capacity() * 2, self::nat().capacity());
    }

    #[test]
    fn udp_out_then_in() {
        let (mut nat, now) = (nat(), Instant::now());
        let inner = ep(HOST, 5000);
        let mut p = udp(inner, ep(REMOTE, 53), b"query");
        let o = out(&mut nat, now, 1, &mut p);
        let m = o.created.expect("new mapping");
        assert_eq!(
            (m.client, m.protocol, m.inner, m.public.ip()),
            (1, proto::UDP, inner, IpAddr::V4(PUBLIC))
        );
        assert!((49152..=65535).contains(&m.public.port()));
        assert_eq!(endpoints(&p), (m.public, ep(REMOTE, 53)));
        assert_eq!(p[8], 64, "ttl kept");
        assert!(p.ends_with(b"query"));
        assert_eq!(nat.len(), 1);

        // a second packet reuses the mapping
        let mut p2 = udp(inner, ep(REMOTE, 53), b"again");
        assert_eq!(out(&mut nat, now, 1, &mut p2).created, None);
        assert_eq!(endpoints(&p2).0, m.public);

        let mut r = udp(ep(REMOTE, 53), m.public, b"answer");
        assert_eq!(inn(&mut nat, now, &mut r), 1);
        assert_eq!(endpoints(&r), (ep(REMOTE, 53), inner));
        assert!(r.ends_with(b"answer"));
    }

    #[test]
    fn udp_without_checksum_stays_without() {
        let (mut nat, now) = (nat(), Instant::now());
        let mut p = udp(ep(HOST, 5000), ep(REMOTE, 53), b"x");
        p[26..28].fill(0);
        out(&mut nat, now, 1, &mut p);
        assert_eq!(&p[26..28], &[0, 0]);
        let (public, _) = endpoints(&p);
        let mut r = udp(ep(REMOTE, 53), public, b"y");
        r[26..28].fill(0);
        inn(&mut nat, now, &mut r);
        assert_eq!(&r[26..28], &[0, 0]);
    }

    #[test]
    fn tcp_out_then_in() {
        let (mut nat, now) = (nat(), Instant::now());
        let inner = ep(HOST, 40000);
        let mut p = tcp_with(inner, ep(REMOTE, 443), tcp::SYN, &[]);
        let m = out(&mut nat, now, 3, &mut p).created.unwrap();
        assert_eq!(m.protocol, proto::TCP);
        let mut p = tcp_with(inner, ep(REMOTE, 443), tcp::ACK, b"hello");
        out(&mut nat, now, 3, &mut p);
        assert_eq!(endpoints(&p), (m.public, ep(REMOTE, 443)));
        let mut r = tcp_with(ep(REMOTE, 443), m.public, tcp::ACK, b"world");
        assert_eq!(inn(&mut nat, now, &mut r), 3);
        assert_eq!(endpoints(&r), (ep(REMOTE, 443), inner));
    }

    #[test]
    fn icmp_echo_out_then_in() {
        let (mut nat, now) = (nat(), Instant::now());
        let mut p = echo(HOST, REMOTE, true, 0x1234, b"ping");
        let m = out(&mut nat, now, 2, &mut p).created.unwrap();
        assert_eq!(
            (m.protocol, m.inner, m.public),
            (proto::ICMP, ep(HOST, 0x1234), ep(PUBLIC, 0x1234))
        );
        let mut r = echo(REMOTE, PUBLIC, false, 0x1234, b"ping");
        assert_eq!(inn(&mut nat, now, &mut r), 2);
        assert_eq!(endpoints(&r).1, ep(HOST, 0x1234));
        // an echo request to the public address is the host's
        let mut q = echo(REMOTE, PUBLIC, true, 0x1234, b"ping");
        assert_eq!(nat.inbound(now, &mut q), Err(DropReason::NoNatMapping));
    }

    #[test]
    fn full_cone_third_host_reaches_mapping() {
        let (mut nat, now) = (nat(), Instant::now());
        let inner = ep(HOST, 5000);
        let mut p = udp(inner, ep(REMOTE, 3478), b"stun");
        let m = out(&mut nat, now, 1, &mut p).created.unwrap();
        let mut r = udp(ep(THIRD, 9999), m.public, b"hi");
        assert_eq!(inn(&mut nat, now, &mut r), 1);
        assert_eq!(endpoints(&r), (ep(THIRD, 9999), inner));
        // and the same inner endpoint to another destination keeps the mapping
        let mut p = udp(inner, ep(THIRD, 9999), b"hi back");
        assert_eq!(out(&mut nat, now, 1, &mut p).created, None);
        assert_eq!(endpoints(&p).0, m.public);
    }

    #[test]
    fn two_clients_identical_inner_endpoints() {
        let (mut nat, now) = (nat(), Instant::now());
        let inner = ep(HOST, 5000);
        let mut a = udp(inner, ep(REMOTE, 53), b"a");
        let mut b = udp(inner, ep(REMOTE, 53), b"b");
        let ma = out(&mut nat, now, 1, &mut a).created.unwrap();
        let mb = out(&mut nat, now, 2, &mut b).created.unwrap();
        assert_ne!(ma.public, mb.public);
        assert_eq!(nat.len(), 2);
        let mut ra = udp(ep(REMOTE, 53), ma.public, b"ra");
        let mut rb = udp(ep(REMOTE, 53), mb.public, b"rb");
        assert_eq!(inn(&mut nat, now, &mut rb), 2);
        assert_eq!(inn(&mut nat, now, &mut ra), 1);
        assert_eq!(endpoints(&ra).1, inner);
        assert_eq!(endpoints(&rb).1, inner);
    }

    #[test]
    fn port_preservation() {
        let config = NatConfig {
            udp_ports: 1000..=2000,
            ..NatConfig::default()
        };
        let (mut nat, now) = (
            Nat::new(&config, Some(PUBLIC), None, Keyed::new([0; 16])),
            Instant::now(),
        );
        let mut p = udp(ep(HOST, 1500), ep(REMOTE, 53), b"");
        assert_eq!(
            out(&mut nat, now, 1, &mut p).created.unwrap().public.port(),
            1500
        );
        // taken by client 1: client 2 gets another port of the pool
        let mut p = udp(ep(HOST, 1500), ep(REMOTE, 53), b"");
        let port = out(&mut nat, now, 2, &mut p).created.unwrap().public.port();
        assert!(port != 1500 && (1000..=2000).contains(&port));
        // outside the pool: a random port of the pool
        let mut p = udp(ep(HOST, 3000), ep(REMOTE, 53), b"");
        let port = out(&mut nat, now, 1, &mut p).created.unwrap().public.port();
        assert!((1000..=2000).contains(&port));
    }

    #[test]
    fn exhaustion_with_tiny_pool() {
        let config = NatConfig {
            udp_ports: 1000..=1001,
            tcp_ports: 7..=7,
            icmp_ids: 9..=9,
            ..NatConfig::default()
        };
        let (mut nat, now) = (
            Nat::new(&config, Some(PUBLIC), None, Keyed::new([0; 16])),
            Instant::now(),
        );
        assert_eq!(nat.capacity(), 4);
        let mut ports = Vec::new();
        for inner in [5001, 5002] {
            let mut p = udp(ep(HOST, inner), ep(REMOTE, 53), b"");
            ports.push(out(&mut nat, now, 1, &mut p).created.unwrap().public.port());
        }
        ports.sort_unstable();
        assert_eq!(ports, [1000, 1001]);
        let mut p = udp(ep(HOST, 5003), ep(REMOTE, 53), b"");
        let before = p.clone();
        assert_eq!(
            nat.outbound(now, 1, &mut p, &mut rng()),
            Err(DropReason::NatExhausted)
        );
        assert_eq!(p, before, "a dropped packet is not modified");
        // existing mappings still work, other pools are separate
        let mut p = udp(ep(HOST, 5001), ep(REMOTE, 53), b"");
        assert!(nat.outbound(now, 1, &mut p, &mut rng()).is_ok());
        let mut p = tcp_with(ep(HOST, 5003), ep(REMOTE, 80), tcp::SYN, b"");
        assert_eq!(
            out(&mut nat, now, 1, &mut p).created.unwrap().public.port(),
            7
        );
        assert_eq!(nat.len(), 3);
    }

    #[test]
    fn expiry_refresh_and_reuse() {
        let config = NatConfig {
            udp_ports: 1000..=1000,
            ..NatConfig::default()
        };
        let (mut nat, t0) = (
            Nat::new(&config, Some(PUBLIC), None, Keyed::new([0; 16])),
            Instant::now(),
        );
        let s = Duration::from_secs;
        assert_eq!(nat.poll_timeout(), None);
        let mut p = udp(ep(HOST, 5000), ep(REMOTE, 53), b"");
        let m = out(&mut nat, t0, 1, &mut p).created.unwrap();
        assert_eq!(nat.poll_timeout(), Some(t0 + s(120)));

        // inbound traffic at 100 s refreshes: nothing expires at 120 s
        let mut r = udp(ep(REMOTE, 53), m.public, b"");
        inn(&mut nat, t0 + s(100), &mut r);
        let mut gone = Vec::new();
        nat.handle_timeout(t0 + s(120), |m| gone.push(*m));
        assert!(gone.is_empty());
        assert_eq!(
            nat.poll_timeout(),
            Some(t0 + s(220)),
            "rescheduled at the real expiry"
        );
        nat.handle_timeout(t0 + s(219), |m| gone.push(*m));
        assert!(gone.is_empty());

        // another flow cannot get the only port meanwhile
        let mut p2 = udp(ep(HOST, 6000), ep(REMOTE, 53), b"");
        assert_eq!(
            nat.outbound(t0 + s(150), 1, &mut p2, &mut rng()),
            Err(DropReason::NatExhausted)
        );

        nat.handle_timeout(t0 + s(220), |m| gone.push(*m));
        assert_eq!(gone, [m]);
        assert_eq!((nat.len(), nat.poll_timeout()), (0, None));

        // the expired mapping no longer translates inbound
        let mut r = udp(ep(REMOTE, 53), m.public, b"");
        assert_eq!(
            nat.inbound(t0 + s(221), &mut r),
            Err(DropReason::NoNatMapping)
        );
        // and its port goes to the next flow
        let mut p2 = udp(ep(HOST, 6000), ep(REMOTE, 53), b"");
        let m2 = out(&mut nat, t0 + s(221), 2, &mut p2).created.unwrap();
        assert_eq!(m2.public, m.public);
        let mut r = udp(ep(REMOTE, 53), m.public, b"");
        assert_eq!(inn(&mut nat, t0 + s(222), &mut r), 2);
        assert_eq!(endpoints(&r).1, ep(HOST, 6000));
    }

    #[test]
    fn expired_mapping_is_not_used_before_handle_timeout() {
        let (mut nat, t0) = (nat(), Instant::now());
        let s = Duration::from_secs;
        let mut p = udp(ep(HOST, 5000), ep(REMOTE, 53), b"");
        let m = out(&mut nat, t0, 1, &mut p).created.unwrap();
        // due, but handle_timeout was not called yet
        let mut r = udp(ep(REMOTE, 53), m.public, b"");
        assert_eq!(
            nat.inbound(t0 + s(120), &mut r),
            Err(DropReason::NoNatMapping)
        );
        assert_eq!(nat.len(), 0);
        // a new packet of the flow makes a new mapping
        let mut p = udp(ep(HOST, 5000), ep(REMOTE, 53), b"");
        assert!(out(&mut nat, t0 + s(121), 1, &mut p).created.is_some());
        assert!(nat.poll_timeout().unwrap() <= t0 + s(120));
        let mut gone = Vec::new();
        nat.handle_timeout(t0 + s(121), |m| gone.push(*m));
        assert_eq!(gone, [m], "reported once");
        assert_eq!(nat.len(), 1);
        assert_eq!(nat.poll_timeout(), Some(t0 + s(241)));
        nat.handle_timeout(t0 + s(121), |m| gone.push(*m));
        assert_eq!(gone.len(), 1);
    }

    #[test]
    fn tcp_fin_or_rst_shortens_and_syn_restores() {
        let (mut nat, t0) = (nat(), Instant::now());
        let s = Duration::from_secs;
        let inner = ep(HOST, 40000);
        let mut p = tcp_with(inner, ep(REMOTE, 443), tcp::SYN, &[]);
        let m = out(&mut nat, t0, 1, &mut p).created.unwrap();
        assert_eq!(nat.poll_timeout(), Some(t0 + s(7440)));
        // a FIN from the remote
        let mut r = tcp_with(ep(REMOTE, 443), m.public, tcp::FIN | tcp::ACK, &[]);
        inn(&mut nat, t0 + s(10), &mut r);
        assert_eq!(nat.poll_timeout(), Some(t0 + s(250)));
        let mut gone = Vec::new();
        nat.handle_timeout(t0 + s(249), |m| gone.push(*m));
        assert!(gone.is_empty());
        nat.handle_timeout(t0 + s(250), |m| gone.push(*m));
        assert_eq!(gone, [m]);
        // the stale long entry is skipped without reporting anything
        nat.handle_timeout(t0 + s(8000), |m| gone.push(*m));
        assert_eq!((gone.len(), nat.poll_timeout()), (1, None));

        // RST outbound, then a new SYN from the same port goes back to the long timeout
        let t1 = t0 + s(9000);
        let mut p = tcp_with(inner, ep(REMOTE, 443), tcp::SYN, &[]);
        let m = out(&mut nat, t1, 1, &mut p).created.unwrap();
        let mut p = tcp_with(inner, ep(REMOTE, 443), tcp::RST, &[]);
        out(&mut nat, t1 + s(1), 1, &mut p);
        assert_eq!(nat.poll_timeout(), Some(t1 + s(241)));
        let mut p = tcp_with(inner, ep(REMOTE, 443), tcp::SYN, &[]);
        out(&mut nat, t1 + s(2), 1, &mut p);
        nat.handle_timeout(t1 + s(241), |m| gone.push(*m));
        assert_eq!(gone.len(), 1);
        assert_eq!(nat.poll_timeout(), Some(t1 + s(7442)));
        let mut r = tcp_with(ep(REMOTE, 443), m.public, tcp::ACK, &[]);
        assert_eq!(inn(&mut nat, t1 + s(300), &mut r), 1);
    }

    #[test]
    fn inbound_port_unreachable_about_udp_flow() {
        let (mut nat, now) = (nat(), Instant::now());
        let inner = ep(HOST, 5000);
        let original = udp(inner, ep(REMOTE, 5353), b"payload of the datagram");
        let mut p = original.clone();
        let m = out(&mut nat, now, 4, &mut p).created.unwrap();
        // whole quote and a quote cut after 8 bytes of UDP header
        for quote in [p.len(), 28] {
            let mut e = error(REMOTE, PUBLIC, icmp::DEST_UNREACHABLE, 3, [0; 4], &p, quote);
            assert_eq!(inn(&mut nat, now, &mut e), 4);
            assert_eq!(ipv4::Packet::parse(&e).unwrap().dst(), HOST);
            assert_eq!(&e[28..], &original[..quote], "quoted datagram restored");
        }
        // an error about a port nobody holds
        let mut other = p.clone();
        other[20..22].copy_from_slice(&(m.public.port() ^ 1).to_be_bytes());
        let mut e = error(
            REMOTE,
            PUBLIC,
            icmp::DEST_UNREACHABLE,
            3,
            [0; 4],
            &other,
            28,
        );
        assert_eq!(nat.inbound(now, &mut e), Err(DropReason::NoNatMapping));
        // an error with a bad ICMP checksum
        let mut e = error(REMOTE, PUBLIC, icmp::DEST_UNREACHABLE, 3, [0; 4], &p, 28);
        e[23] ^= 1;
        assert_eq!(nat.inbound(now, &mut e), Err(DropReason::BadChecksum));
    }

    #[test]
    fn inbound_frag_needed_about_tcp_flow_quoted_8_bytes() {
        let (mut nat, now) = (nat(), Instant::now());
        let original = tcp_with(ep(HOST, 40000), ep(REMOTE, 443), tcp::ACK, &[0x55; 1400]);
        let mut p = original.clone();
        out(&mut nat, now, 1, &mut p);
        let mtu = 1400u16.to_be_bytes();
        let mut e = error(
            ROUTER,
            PUBLIC,
            icmp::DEST_UNREACHABLE,
            icmp::CODE_FRAG_NEEDED,
            [0, 0, mtu[0], mtu[1]],
            &p,
            28,
        );
        assert_eq!(inn(&mut nat, now, &mut e), 1);
        assert_eq!(&e[24..28], &[0, 0, mtu[0], mtu[1]], "rest of header kept");
        assert_eq!(&e[28..], &original[..28]);
    }

    #[test]
    fn inbound_time_exceeded_quoting_echo() {
        let (mut nat, now) = (nat(), Instant::now());
        let original = echo(HOST, REMOTE, true, 77, b"traceroute probe");
        let mut p = original.clone();
        let m = out(&mut nat, now, 5, &mut p).created.unwrap();
        let mut p_other_id = p.clone();
        for quote in [p.len(), 28] {
            let mut e = error(ROUTER, PUBLIC, icmp::TIME_EXCEEDED, 0, [0; 4], &p, quote);
            assert_eq!(inn(&mut nat, now, &mut e), 5);
            assert_eq!(&e[28..], &original[..quote]);
        }
        // quoting an id we do not hold
        p_other_id[24..26].copy_from_slice(&(m.public.port().wrapping_add(1)).to_be_bytes());
        let mut e = error(
            ROUTER,
            PUBLIC,
            icmp::TIME_EXCEEDED,
            0,
            [0; 4],
            &p_other_id,
            28,
        );
        assert_eq!(nat.inbound(now, &mut e), Err(DropReason::NoNatMapping));
    }

    #[test]
    fn outbound_port_unreachable_from_lan_host() {
        let (mut nat, now) = (nat(), Instant::now());
        let inner = ep(HOST, 5000);
        let mut p = udp(inner, ep(REMOTE, 53), b"");
        let m = out(&mut nat, now, 1, &mut p).created.unwrap();
        // a third host sends to the mapping; the LAN host answers port unreachable
        let arriving = udp(ep(THIRD, 7000), m.public, b"unexpected datagram");
        let mut delivered = arriving.clone();
        inn(&mut nat, now, &mut delivered);
        let len_before = nat.len();
        for quote in [delivered.len(), 28] {
            let mut e = error(
                HOST,
                THIRD,
                icmp::DEST_UNREACHABLE,
                3,
                [0; 4],
                &delivered,
                quote,
            );
            assert_eq!(out(&mut nat, now, 1, &mut e).created, None);
            let v = ipv4::Packet::parse(&e).unwrap();
            assert_eq!((v.src(), v.dst()), (PUBLIC, THIRD));
            assert_eq!(&e[28..], &arriving[..quote], "quoted as it arrived");
        }
        assert_eq!(nat.len(), len_before, "errors create no mapping");
        // from another client, or about an endpoint without mapping: dropped, nothing created
        let mut e = error(
            HOST,
            THIRD,
            icmp::DEST_UNREACHABLE,
            3,
            [0; 4],
            &delivered,
            28,
        );
        assert_eq!(
            nat.outbound(now, 2, &mut e, &mut rng()),
            Err(DropReason::NoNatMapping)
        );
        let stray = udp(ep(THIRD, 7000), ep(HOST, 6000), b"");
        let mut e = error(HOST, THIRD, icmp::DEST_UNREACHABLE, 3, [0; 4], &stray, 28);
        assert_eq!(
            nat.outbound(now, 1, &mut e, &mut rng()),
            Err(DropReason::NoNatMapping)
        );
        assert_eq!(nat.len(), len_before);
    }

    #[test]
    fn errors_do_not_refresh() {
        let (mut nat, t0) = (nat(), Instant::now());
        let mut p = udp(ep(HOST, 5000), ep(REMOTE, 53), b"");
        out(&mut nat, t0, 1, &mut p);
        let mut e = error(REMOTE, PUBLIC, icmp::DEST_UNREACHABLE, 3, [0; 4], &p, 28);
        inn(&mut nat, t0 + Duration::from_secs(100), &mut e);
        let mut gone = 0;
        nat.handle_timeout(t0 + Duration::from_secs(120), |_| gone += 1);
        assert_eq!(gone, 1);
    }

    #[test]
    fn drops() {
        let (mut nat, now) = (nat(), Instant::now());
        // a protocol the NAT does not translate, both ways
        let mut p = vec![0u8; 24];
        ipv4::write_header(
            &mut p,
            &ipv4::Header {
                src: HOST,
                dst: REMOTE,
                protocol: 47,
                id: 1,
                ttl: 64,
                flags_offset: 0,
                payload_len: 4,
            },
        );
        assert_eq!(
            nat.outbound(now, 1, &mut p, &mut rng()),
            Err(DropReason::UnsupportedProtocol)
        );
        ipv4::write_header(
            &mut p,
            &ipv4::Header {
                src: REMOTE,
                dst: PUBLIC,
                protocol: 47,
                id: 1,
                ttl: 64,
                flags_offset: 0,
                payload_len: 4,
            },
        );
        assert_eq!(
            nat.inbound(now, &mut p),
            Err(DropReason::UnsupportedProtocol)
        );
        // other ICMP types: timestamp request, redirect
        let mut ts = error(HOST, REMOTE, 13, 0, [0; 4], &[0; 12], 12);
        assert_eq!(
            nat.outbound(now, 1, &mut ts, &mut rng()),
            Err(DropReason::UnsupportedProtocol)
        );
        let quoted = udp(ep(PUBLIC, 50000), ep(REMOTE, 53), b"");
        let mut redirect = error(ROUTER, PUBLIC, 5, 1, [1, 2, 3, 4], &quoted, 28);
        assert_eq!(
            nat.inbound(now, &mut redirect),
            Err(DropReason::UnsupportedProtocol)
        );
        // nothing mapped, not addressed to us
        let mut r = udp(ep(REMOTE, 53), ep(PUBLIC, 50000), b"");
        assert_eq!(nat.inbound(now, &mut r), Err(DropReason::NoNatMapping));
        let mut p = udp(ep(HOST, 5000), ep(REMOTE, 53), b"");
        let public = out(&mut nat, now, 1, &mut p).created.unwrap().public;
        let mut r = udp(ep(REMOTE, 53), ep(THIRD, public.port()), b"");
        assert_eq!(nat.inbound(now, &mut r), Err(DropReason::NoNatMapping));
        // the mapping of another protocol does not match
        let mut r = tcp_with(ep(REMOTE, 53), public, tcp::ACK, b"");
        assert_eq!(nat.inbound(now, &mut r), Err(DropReason::NoNatMapping));
        // truncated transport headers
        let mut t = udp(ep(HOST, 5000), ep(REMOTE, 53), b"");
        t.truncate(24);
        t[2..4].copy_from_slice(&24u16.to_be_bytes());
        t[10..12].fill(0);
        let c = checksum::of(&t[..20]);
        t[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            nat.outbound(now, 1, &mut t, &mut rng()),
            Err(DropReason::Malformed)
        );
        let mut t = tcp_with(ep(HOST, 5000), ep(REMOTE, 53), tcp::SYN, b"");
        t.truncate(36);
        t[2..4].copy_from_slice(&36u16.to_be_bytes());
        t[10..12].fill(0);
        let c = checksum::of(&t[..20]);
        t[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            nat.outbound(now, 1, &mut t, &mut rng()),
            Err(DropReason::Malformed)
        );
        // an ICMP error whose quote stops inside the transport header
        let mut e = error(REMOTE, PUBLIC, icmp::DEST_UNREACHABLE, 3, [0; 4], &p, 24);
        assert_eq!(nat.inbound(now, &mut e), Err(DropReason::Malformed));
        assert_eq!(nat.len(), 1);
    }

    /// The translated packet with source and destination swapped (an echo reply for a request)
    fn reply(pkt: &[u8], payload: &[u8]) -> Vec<u8> {
        let (src, dst) = endpoints(pkt);
        match parse(pkt).unwrap().0.protocol {
            proto::TCP => tcp_with(dst, src, tcp::ACK, payload),
            proto::UDP => udp(dst, src, payload),
            _ => echo(dst.ip(), src.ip(), false, src.port(), payload),
        }
    }

    /// A first packet of a flow: TCP, UDP or an echo request (id = source port)
    fn packet(
        protocol: u8,
        src: SocketAddr,
        dst: SocketAddr,
        flags: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        match protocol {
            proto::TCP => tcp_with(src, dst, flags, payload),
            proto::UDP => udp(src, dst, payload),
            _ => echo(src.ip(), dst.ip(), true, src.port(), payload),
        }
    }

    /// Any endpoint
    fn arb_endpoint() -> impl Strategy<Value = SocketAddr> {
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(Ipv4Addr::from(ip).into(), port))
    }

    /// Any endpoint of the family of `v6`
    fn arb_endpoint_of(v6: bool) -> BoxedStrategy<SocketAddr> {
        if v6 {
            (any::<u128>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(Ipv6Addr::from(ip).into(), port))
                .boxed()
        } else {
            arb_endpoint().boxed()
        }
    }

    /// A flow of either family: (client, protocol, inner, remote, TCP flags, payload)
    fn arb_flow() -> impl Strategy<Value = (u32, u8, SocketAddr, SocketAddr, u8, Vec<u8>)> {
        any::<bool>().prop_flat_map(|v6| {
            let icmp = if v6 { proto::ICMPV6 } else { proto::ICMP };
            (
                0u32..4,
                prop::sample::select(vec![proto::TCP, proto::UDP, icmp]),
                arb_endpoint_of(v6),
                arb_endpoint_of(v6),
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..64),
            )
        })
    }

    /// Checks the checksums of `pkt` of either family
    fn assert_checksums_any(pkt: &[u8]) {
        if pkt[0] >> 4 == 6 {
            assert_checksums6(pkt);
        } else {
            assert_checksums(pkt);
        }
    }

    proptest! {
        #[test]
        fn out_then_in_round_trips(
            flows in prop::collection::vec(arb_flow(), 1..12),
            seed in any::<u64>(),
        ) {
            let (mut nat, now) = (nat(), Instant::now());
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for (client, protocol, inner, remote, flags, payload) in flows {
                let mut p = packet(protocol, inner, remote, flags & 0x17, &payload);
                let o = nat.outbound(now, client, &mut p, &mut rng).unwrap();
                assert_checksums_any(&p);
                let (public, to) = endpoints(&p);
                let expected: IpAddr = if inner.is_ipv6() { PUBLIC6.into() } else { PUBLIC.into() };
                prop_assert_eq!(public.ip(), expected);
                let icmp = protocol == proto::ICMP || protocol == proto::ICMPV6;
                if !icmp {
                    prop_assert_eq!(to, remote);
                }
                if let Some(m) = o.created {
                    prop_assert_eq!((m.client, m.protocol, m.inner, m.public), (client, protocol, inner, public));
                }
                let mut r = reply(&p, &payload);
                let owner = nat.inbound(now, &mut r).unwrap();
                assert_checksums_any(&r);
                prop_assert_eq!(owner, client);
                let (from, back) = endpoints(&r);
                if icmp {
                    prop_assert_eq!(back, inner);
                    prop_assert_eq!(from.ip(), remote.ip());
                } else {
                    prop_assert_eq!((from, back), (remote, inner));
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..120),
            protocol in prop::sample::select(vec![proto::TCP, proto::UDP, proto::ICMP, 47]),
            ty in prop::sample::select(vec![0u8, 3, 4, 5, 8, 11, 12, 13]),
            inbound in any::<bool>(),
        ) {
            let (mut nat, now) = (nat(), Instant::now());
            let mut rng = rng();
            // a mapping to hit sometimes
            let mut p = udp(ep(HOST, 5000), ep(REMOTE, 53), b"");
            nat.outbound(now, 0, &mut p, &mut rng).unwrap();
            // raw bytes
            let mut raw = bytes.clone();
            let _ = nat.outbound(now, 0, &mut raw, &mut rng);
            let mut raw = bytes.clone();
            let _ = nat.inbound(now, &mut raw);
            // a valid header over arbitrary transport bytes, ICMP with an error type
            let mut pkt = vec![0u8; 20 + bytes.len()];
            let (src, dst) = if inbound { (REMOTE, PUBLIC) } else { (HOST, REMOTE) };
            ipv4::write_header(&mut pkt, &ipv4::Header {
                src, dst, protocol, id: 0, ttl: 64, flags_offset: 0, payload_len: bytes.len(),
            });
            pkt[20..].copy_from_slice(&bytes);
            if protocol == proto::ICMP && !bytes.is_empty() {
                pkt[20] = ty;
                if bytes.len() >= 4 {
                    pkt[22..24].fill(0);
                    let c = checksum::of(&pkt[20..]);
                    pkt[22..24].copy_from_slice(&c.to_be_bytes());
                }
            }
            let result = if inbound {
                nat.inbound(now, &mut pkt).map(|_| ())
            } else {
                nat.outbound(now, 0, &mut pkt, &mut rng).map(|_| ())
            };
            if result.is_ok() {
                prop_assert_eq!(checksum::of(&pkt[..20]), 0);
            }
            nat.handle_timeout(now + Duration::from_secs(100_000), |_| {});
            prop_assert_eq!(nat.len(), 0);
        }
    }
}
