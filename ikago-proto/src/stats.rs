//! Plain counters: per direction, per peer and per drop reason

use crate::config::{Protocol, Transport};
use crate::kcp::KcpStats;
use crate::wire::{ipv4, ipv6};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Packets and bytes
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    /// Packets
    pub packets: u64,
    /// Bytes (IPv4 total length, link header excluded)
    pub bytes: u64,
}

impl Counter {
    /// Counts one packet of `bytes` bytes
    #[inline]
    pub fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    /// Adds `other`'s packets and bytes
    pub fn absorb(&mut self, other: Self) {
        self.packets += other.packets;
        self.bytes += other.bytes;
    }
}

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $name:ident => $label:literal,)*) => {
        /// Why a frame or packet was not forwarded
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum DropReason { $($(#[doc = $doc])* $name,)* }

        impl DropReason {
            /// Every reason, in counter order
            pub const ALL: &'static [Self] = &[$(Self::$name,)*];
            /// Number of reasons
            pub const COUNT: usize = Self::ALL.len();

            /// A stable snake_case label (for logs and metrics)
            pub fn label(self) -> &'static str {
                match self { $(Self::$name => $label,)* }
            }
        }
    };
}

drop_reasons! {
    /// A frame or packet that does not parse (truncated, bad header, unknown link type)
    Malformed => "malformed",
    /// An IPv4 header or TCP checksum that does not match
    BadChecksum => "bad_checksum",
    /// Not for this machine: not from a configured source, not to the tunnel port, or our own frame
    NotForUs => "not_for_us",
    /// Client: a source's packet to the client itself, a published address, or another local host
    LocalDestination => "local_destination",
    /// Server: tunnel data from an address that never completed a handshake (answered with RST)
    UnknownPeer => "unknown_peer",
    /// A tunnel payload that fails to authenticate (wrong password or method, or tampering)
    DecryptFailed => "decrypt_failed",
    /// A tunnel payload that opens but is not one valid IPv4 packet
    BadInner => "bad_inner",
    /// Server: an inner protocol the NAT cannot translate
    UnsupportedProtocol => "unsupported_protocol",
    /// Server: an inbound packet (or ICMP error) that matches no NAT mapping
    NoNatMapping => "no_nat_mapping",
    /// Server: no free port or ICMP id in the NAT pool
    NatExhausted => "nat_exhausted",
    /// An IPv4 fragment that is inconsistent (bad length, conflicting end)
    FragmentInvalid => "fragment_invalid",
    /// A fragment refused because the reassembly caps (entries or bytes) were reached
    FragmentLimit => "fragment_limit",
    /// An incomplete datagram whose fragments expired
    FragmentTimeout => "fragment_timeout",
    /// Client: a reply for a LAN address that has not been seen yet. Server: inner IPv6 to an
    /// off-link destination while the upstream device has no IPv6 gateway
    NoRoute => "no_route",
    /// A next hop did not answer ARP; the packets waiting for it were dropped
    ArpUnresolved => "arp_unresolved",
    /// A bounded queue (waiting for ARP or for the handshake) was full
    QueueFull => "queue_full",
    /// Too big for the MTU with DF set: an ICMP "fragmentation needed" was sent back; IPv6
    /// (never fragmented on the way): an ICMPv6 "packet too big" was sent back
    TooBig => "too_big",
    /// An ICMPv6 Packet Too Big that does not quote an unacknowledged segment of a live tunnel
    /// connection (spoofed, stale or corrupt); nothing changes
    BadPacketTooBig => "bad_packet_too_big",
    /// Server: the client's FakeTCP receive window was full (its ACKs are late or lost)
    PeerWindowFull => "peer_window_full",
    /// A KCP/FEC datagram that is garbage, truncated, or of another conversation
    BadKcp => "bad_kcp",
    /// Server: a new client refused because the client limit was reached
    TooManyClients => "too_many_clients",
    /// Server: a SYN beyond the per-second handshake budget (a flood), not answered
    SynRate => "syn_rate",
    /// A SYN, or a RST not exactly at the expected sequence number, on a live connection:
    /// answered with a challenge ACK (RFC 5961) instead of being obeyed
    Challenged => "challenged",
    /// A RST outside the receive window, or a challenge ACK over its rate limit
    BadReset => "bad_reset",
    /// ikago2: a record whose counter was seen before or is too old for the anti-replay window,
    /// an initiation seen before, or a SYN proof sent again from another address
    Replayed => "replayed",
    /// ikago2: a record or initiation that does not authenticate (wrong password, tampering,
    /// or not ikago2 at all), or a transport record before the handshake
    Unauthenticated => "unauthenticated",
    /// ikago2: a record that does not parse (length past the segment, unknown type or kind, a
    /// body shorter than its kind says, a counter at its maximum)
    BadRecord => "bad_record",
    /// ikago2: an initiation that authenticates but is refused (unknown version or cipher, a
    /// clock too far off) or is over the per-second budget of initiations
    HandshakeRefused => "handshake_refused",
    /// ikago2-only server: a SYN without a valid proof of the key, not answered
    SynUnproven => "syn_unproven",
    /// Server engine of several: a segment from a client that another engine owns (the host's
    /// capture filter normally keeps those away)
    OtherShard => "other_shard",
    /// `tcp` mode: bytes in a tunnel connection that cannot start a record (not IPv4, a length
    /// past the limits): the connection was closed
    StreamGarbage => "stream_garbage",
    /// `tcp` mode: a partial record that waited 30 s without any record completing, discarded
    StreamStale => "stream_stale",
    /// Client: an inner IPv6 packet while the server is spoken to on the `ikago` wire, which
    /// carries IPv4 only (the Go original cannot take IPv6)
    Ipv6OnIkago => "ipv6_on_ikago",
    /// Server: an inner IPv6 packet while the upstream device has no IPv6 address to NAT it onto
    NoIpv6 => "no_ipv6",
    /// Server: an inner IPv4 packet while the upstream device has no IPv4 address to NAT it onto
    NoIpv4 => "no_ipv4",
    /// An IPv6 extension-header chain that is malformed, longer than the bound, has a header
    /// out of place, or does not reach the upper-layer header in the first fragment (RFC 7112)
    BadExtensionHeaders => "bad_extension_headers",
    /// An IPv6 fragment that overlaps another of its datagram: the whole datagram is dropped
    /// (RFC 5722)
    FragmentOverlap => "fragment_overlap",
    /// A non-final IPv6 fragment carrying fewer than 256 bytes (no IPv6 link is that small;
    /// only a resource attack sends them)
    FragmentTiny => "fragment_tiny",
    /// A next hop did not answer neighbour solicitation; the packets waiting for it were dropped
    NdpUnresolved => "ndp_unresolved",
    /// A neighbour discovery message that fails RFC 4861's checks (hop limit not 255, bad
    /// length or option), or advertises an address this machine owns or publishes from another
    /// MAC (a spoofing attempt): ignored
    NdpInvalid => "ndp_invalid",
}

impl From<ipv4::Error> for DropReason {
    /// The drop an IPv4 header that fails validation counts as
    fn from(e: ipv4::Error) -> Self {
        match e {
            ipv4::Error::Malformed => Self::Malformed,
            ipv4::Error::Checksum => Self::BadChecksum,
        }
    }
}

impl From<ipv6::Error> for DropReason {
    /// The drop an IPv6 packet that fails validation counts as
    fn from(e: ipv6::Error) -> Self {
        match e {
            ipv6::Error::Malformed => Self::Malformed,
            ipv6::Error::ExtensionHeaders => Self::BadExtensionHeaders,
        }
    }
}

/// Drop counters indexed by [`DropReason`]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drops([u64; DropReason::COUNT]);

impl Default for Drops {
    fn default() -> Self {
        Self([0; DropReason::COUNT])
    }
}

impl Drops {
    /// Counts one drop
    #[inline]
    pub fn add(&mut self, reason: DropReason) {
        self.0[reason as usize] += 1;
    }
    /// Drops counted for `reason`
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize]
    }
    /// Adds `other`'s counts, reason by reason
    pub fn absorb(&mut self, other: &Self) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }
    /// All drops
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    /// Non-zero counters
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.get(r)))
            .filter(|&(_, n)| n > 0)
    }
}

impl fmt::Display for Drops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (r, n) in self.iter() {
            write!(f, "{}{}={n}", if first { "" } else { " " }, r.label())?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Who a [`PeerStats`] entry is about
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Peer {
    /// Client: a LAN source address (IPv4, or IPv6 for a `sources6` host)
    Source(IpAddr),
    /// Server: a client's tunnel address
    Client(SocketAddr),
    /// Client: a remote address its sources talk to
    Remote(IpAddr),
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Source(ip) => ip.fmt(f),
            Self::Client(a) => a.fmt(f),
            Self::Remote(ip) => ip.fmt(f),
        }
    }
}

/// Counters of one source (client) or one client (server)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerStats {
    /// Who
    pub peer: Peer,
    /// Inner packets it sent into the tunnel (remote: packets sent to it)
    pub out: Counter,
    /// Inner packets delivered to it from the tunnel (remote: packets received from it)
    pub r#in: Counter,
    /// When it was first seen
    pub first_seen: Instant,
    /// When it was last seen, in either direction
    pub last_seen: Instant,
    /// Server: the wire the client speaks, once its first payload told
    pub protocol: Option<Protocol>,
}

/// A snapshot of a machine's counters
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// FakeTCP frames sent (handshake, ACKs and data), IP bytes
    pub tunnel_tx: Counter,
    /// FakeTCP frames received and accepted, IP bytes
    pub tunnel_rx: Counter,
    /// Inner packets sealed into the tunnel
    pub inner_tx: Counter,
    /// Inner packets opened from the tunnel and forwarded
    pub inner_rx: Counter,
    /// Frames written to the local side (client: LAN; server: toward destinations)
    pub local_tx: Counter,
    /// Packets taken from the local side (client: from sources; server: NAT replies)
    pub local_rx: Counter,
    /// Drops by reason
    pub drops: Drops,
    /// Handshakes completed (client: with the server; server: with any client)
    pub handshakes: u64,
    /// Client: times the server was lost and a new handshake began
    pub reconnects: u64,
    /// Client: the latest RTT to the server (handshake or timestamp echo)
    pub rtt: Option<Duration>,
    /// Client: the server in use
    pub server: Option<SocketAddr>,
    /// Client: the wire spoken to it
    pub protocol: Option<Protocol>,
    /// Client: times the tunnel moved to another server
    pub server_switches: u64,
    /// Server: NAT mappings in use
    pub nat_mappings: usize,
    /// Server: size of the NAT pools (TCP + UDP + ICMP)
    pub nat_capacity: usize,
    /// How the tunnel travels (FakeTCP or a kernel TCP connection)
    pub transport: Transport,
    /// Per source (client) or per client (server)
    pub peers: Vec<PeerStats>,
    /// Client: per remote address (the most recently active ones, bounded)
    pub remotes: Vec<PeerStats>,
    /// KCP counters: the client's session, or the server's sessions summed
    pub kcp: Option<KcpStats>,
    /// Peers whose tunnel payloads cannot be opened (wrong password or method): 0 or 1 on the
    /// client, the number of such clients on the server
    pub unopenable: usize,
}

impl Stats {
    /// Adds the counters of another engine of the same server (`--threads`), so that the
    /// engines read as one: counts, drops, handshakes, NAT mappings and capacity, unopenable
    /// peers and KCP totals add up; peers (and remotes) are listed together, sorted by peer;
    /// what only a client has (RTT, server, wire) stays, or comes from `other` when unset
    pub fn absorb(&mut self, other: &Self) {
        // destructured so that a new counter cannot be forgotten here
        let Self {
            tunnel_tx,
            tunnel_rx,
            inner_tx,
            inner_rx,
            local_tx,
            local_rx,
            drops,
            handshakes,
            reconnects,
            rtt,
            server,
            protocol,
            server_switches,
            nat_mappings,
            nat_capacity,
            transport: _,
            peers,
            remotes,
            kcp,
            unopenable,
        } = other;
        self.tunnel_tx.absorb(*tunnel_tx);
        self.tunnel_rx.absorb(*tunnel_rx);
        self.inner_tx.absorb(*inner_tx);
        self.inner_rx.absorb(*inner_rx);
        self.local_tx.absorb(*local_tx);
        self.local_rx.absorb(*local_rx);
        self.drops.absorb(drops);
        self.handshakes += handshakes;
        self.reconnects += reconnects;
        self.rtt = self.rtt.or(*rtt);
        self.server = self.server.or(*server);
        self.protocol = self.protocol.or(*protocol);
        self.server_switches += server_switches;
        self.nat_mappings += nat_mappings;
        self.nat_capacity += nat_capacity;
        self.peers.extend_from_slice(peers);
        self.peers.sort_by_key(|p| p.peer);
        self.remotes.extend_from_slice(remotes);
        self.remotes.sort_by_key(|p| p.peer);
        match (&mut self.kcp, kcp) {
            (Some(mine), Some(theirs)) => mine.accumulate(theirs),
            (mine @ None, theirs) => *mine = *theirs,
            (Some(_), None) => {}
        }
        self.unopenable += unopenable;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn peer(port: u16, packets: u64) -> PeerStats {
        let now = Instant::now();
        PeerStats {
            peer: Peer::Client(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(198, 18, 16, 2)),
                port,
            )),
            out: Counter { packets, bytes: 0 },
            r#in: Counter::default(),
            first_seen: now,
            last_seen: now,
            protocol: None,
        }
    }

    #[test]
    fn engines_add_up_to_one_server() {
        let mut a = Stats {
            nat_mappings: 3,
            nat_capacity: 100,
            handshakes: 1,
            peers: vec![peer(40002, 1)],
            kcp: Some(KcpStats {
                retransmissions: 2,
                ..KcpStats::default()
            }),
            ..Stats::default()
        };
        a.tunnel_rx.add(100);
        a.drops.add(DropReason::OtherShard);
        let mut b = Stats {
            nat_mappings: 4,
            nat_capacity: 101,
            handshakes: 2,
            unopenable: 1,
            peers: vec![peer(40003, 5), peer(40001, 7)],
            kcp: Some(KcpStats {
                retransmissions: 3,
                ..KcpStats::default()
            }),
            ..Stats::default()
        };
        b.tunnel_rx.add(200);
        b.tunnel_rx.add(300);
        b.drops.add(DropReason::OtherShard);
        b.drops.add(DropReason::Malformed);
        a.absorb(&b);
        assert_eq!(
            a.tunnel_rx,
            Counter {
                packets: 3,
                bytes: 600
            }
        );
        assert_eq!(a.drops.get(DropReason::OtherShard), 2);
        assert_eq!(a.drops.total(), 3);
        assert_eq!((a.nat_mappings, a.nat_capacity), (7, 201));
        assert_eq!((a.handshakes, a.unopenable), (3, 1));
        let ports: Vec<_> = a
            .peers
            .iter()
            .map(|p| match p.peer {
                Peer::Client(c) => c.port(),
                _ => 0,
            })
            .collect();
        assert_eq!(ports, [40001, 40002, 40003], "listed together, sorted");
        assert_eq!(a.kcp.map(|k| k.retransmissions), Some(5));
        // an engine with nothing adds nothing
        let before = a.clone();
        a.absorb(&Stats::default());
        assert_eq!(a, before);
    }
}
