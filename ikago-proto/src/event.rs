//! Events a machine reports to its runner

use crate::stats::DropReason;
use crate::wire::Mac;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Something a user may want to see in a log or a monitor
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Client: the FakeTCP handshake with the server completed
    Connected {
        /// The server
        server: SocketAddr,
        /// Time from the SYN that succeeded to its SYN+ACK
        rtt: Duration,
    },
    /// Client: the server stopped answering or reset the connection; a new handshake starts
    PeerLost {
        /// The server
        server: SocketAddr,
        /// Why
        reason: PeerLostReason,
    },
    /// Client: a handshake attempt (first SYN or a retransmission) was sent
    Connecting {
        /// The server
        server: SocketAddr,
        /// 0 for the first SYN of an attempt, then 1, 2, ... for retransmissions
        retry: u32,
    },
    /// Client: the tunnel moved to another server (failover, or back to the preferred one)
    ServerSwitched {
        /// The server left
        from: SocketAddr,
        /// The server now tried
        to: SocketAddr,
    },
    /// Server: a client completed (or restarted) its handshake
    ClientConnected {
        /// The client's tunnel address
        client: SocketAddr,
    },
    /// Server: a client's tunnel connection closed (`tcp` mode), or the server closed it for
    /// garbage; its NAT mappings stay until they expire
    ClientDisconnected {
        /// The client's tunnel address
        client: SocketAddr,
    },
    /// Server: a client was forgotten after a long silence
    ClientExpired {
        /// The client's tunnel address
        client: SocketAddr,
    },
    /// Client: a LAN device sent its first packet, or moved to another MAC or device
    SourceJoined {
        /// The device's address (IPv4, or IPv6 for a `sources6` host)
        ip: IpAddr,
        /// Its MAC
        mac: Mac,
        /// The name of the LAN device it was seen on
        device: String,
    },
    /// Client: proxy ARP answered a request for a published address
    ArpReplied {
        /// The published address asked for
        publish: Ipv4Addr,
        /// Who asked
        requester: Ipv4Addr,
    },
    /// Client: proxy NDP answered a neighbour solicitation for a published IPv6 address
    NdpReplied {
        /// The published address asked for
        publish: Ipv6Addr,
        /// Who asked; `::` for duplicate address detection (a LAN device about to take the
        /// address, told it is in use)
        requester: Ipv6Addr,
    },
    /// A next hop (gateway or on-link host) was resolved by ARP, or by neighbour discovery for
    /// IPv6
    NeighborResolved {
        /// The next hop
        ip: IpAddr,
        /// Its MAC
        mac: Mac,
    },
    /// Server: a NAT mapping was created
    NatMapped {
        /// The client that owns it
        client: SocketAddr,
        /// IP protocol number (1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6)
        protocol: u8,
        /// The inner source address and port (ICMP id); IPv6 for a NAT66 mapping
        inner: SocketAddr,
        /// The public address and port (ICMP id)
        public: SocketAddr,
    },
    /// Server: an idle NAT mapping expired
    NatExpired {
        /// IP protocol number
        protocol: u8,
        /// The public address and port (ICMP id) released
        public: SocketAddr,
    },
    /// Client: a DNS answer in the return path named an address (with `dns_records` on)
    DnsRecord {
        /// The name asked for
        name: String,
        /// One address of its A or AAAA records
        ip: IpAddr,
    },
    /// Tunnel traffic with this peer has gone on for a few seconds and none of it could be
    /// opened: the password or the method differs on the two ends. Client: the server's payloads
    /// fail to open, or none came back for the data sent since the handshake (once per
    /// connection). Server: a client's payloads fail to open (at most once a minute per client).
    Unopenable {
        /// The server (client side) or the client's tunnel address (server side)
        peer: SocketAddr,
        /// Payload segments that could not be opened (client: or went unanswered) so far
        packets: u64,
    },
    /// An ICMPv6 Packet Too Big about one of our unacknowledged segments lowered the frame size
    /// of the tunnel connection with `peer`: larger frames now leave in IPv6 fragments
    PathMtuLowered {
        /// The server (client side) or the client's tunnel address (server side)
        peer: SocketAddr,
        /// The new frame size (IP bytes), at least 1280
        mtu: u16,
    },
    /// Packets were dropped for a reason a user should know about (rate-limited: at most one
    /// event per reason per second, with the count since the last one)
    Dropped {
        /// Why
        reason: DropReason,
        /// How many since the last event for this reason
        count: u64,
    },
}

/// Why the client considers the server lost
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerLostReason {
    /// The server sent a TCP RST
    Reset,
    /// Nothing was heard from the server for the configured peer timeout
    Timeout,
    /// `tcp` mode: the connection closed, could not be opened, or carried garbage
    Closed,
}
