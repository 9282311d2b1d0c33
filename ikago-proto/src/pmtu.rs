//! Path MTU of the tunnel over IPv6: the ICMPv6 Packet Too Big messages that lower a
//! connection's frame size
//!
//! IPv6 routers never fragment: a FakeTCP frame larger than a link on the way is dropped there
//! and the router reports it with a Packet Too Big (RFC 4443 §3.2) quoting the start of the
//! frame. Such a report lowers the frame size of the connection it names, never below the IPv6
//! minimum of 1280 bytes (RFC 8200 §5); the sender then fragments larger frames itself with
//! fragment headers (see [`fragment6`](crate::fragment::fragment6)).
//!
//! Anyone can send an ICMPv6 message, so a report is believed only when it proves it saw one of
//! our own packets (RFC 5927 §4.1, as Linux's TCP checks): a correct ICMPv6 checksum, the quoted
//! packet from our tunnel address to the peer's with their ports, and a quoted sequence number
//! inside the connection's unacknowledged window (`snd_una..snd_nxt`), which an off-path attacker
//! does not know. Anything else is counted as [`DropReason::BadPacketTooBig`] and changes
//! nothing.
//!
//! Over IPv4 the tunnel leaves DF clear, so routers fragment its frames (as the Go original's
//! peers expect) and never send "fragmentation needed" about them: the IPv4 frame size stays the
//! configured MTU.

use crate::stats::DropReason;
use crate::wire::{icmpv6, ipv6, proto};
use std::net::SocketAddr;

/// What a Packet Too Big claims about one of our segments
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Report {
    /// The quoted packet's source: our tunnel address
    pub(crate) local: SocketAddr,
    /// The quoted packet's destination: the peer's tunnel address
    pub(crate) remote: SocketAddr,
    /// The quoted TCP sequence number
    pub(crate) seq: u32,
    /// The MTU of the link that dropped the packet
    pub(crate) mtu: u32,
}

/// Reads `pkt` as a Packet Too Big about a TCP segment: `None` when it is another message,
/// `Some(Err)` when it is a Packet Too Big that cannot be believed or used (bad checksum, a
/// quote that is not an IPv6 TCP segment with its ports and sequence number)
pub(crate) fn parse(pkt: &ipv6::Packet<'_>) -> Option<Result<Report, DropReason>> {
    let msg = pkt.payload();
    if pkt.protocol() != proto::ICMPV6 || msg.first() != Some(&icmpv6::PACKET_TOO_BIG) {
        return None;
    }
    Some(read(pkt, msg).ok_or(DropReason::BadPacketTooBig))
}

/// The report of the Packet Too Big `msg` carried by `pkt`, if it holds together
fn read(pkt: &ipv6::Packet<'_>, msg: &[u8]) -> Option<Report> {
    if pkt.fragment().is_some()
        || msg.len() < icmpv6::HEADER_LEN
        || icmpv6::checksum(pkt.src(), pkt.dst(), msg) != 0
    {
        return None;
    }
    let mtu = u32::from_be_bytes(msg[4..8].try_into().ok()?);
    let quoted = ipv6::Packet::parse_quoted(&msg[icmpv6::HEADER_LEN..]).ok()?;
    if quoted.protocol() != proto::TCP || quoted.fragment().is_some() {
        return None;
    }
    let tcp = quoted.payload().get(..8)?;
    let port = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
    Some(Report {
        local: SocketAddr::new(quoted.src().into(), port(0)),
        remote: SocketAddr::new(quoted.dst().into(), port(2)),
        seq: u32::from_be_bytes(tcp[4..8].try_into().ok()?),
        mtu,
    })
}

/// The frame size a believed report of `mtu` leaves: at least the IPv6 minimum MTU
pub(crate) fn lowered(mtu: u32) -> usize {
    usize::try_from(mtu)
        .unwrap_or(usize::MAX)
        .max(ipv6::MIN_MTU)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp;
    use std::net::Ipv6Addr;

    const ROUTER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 0xfe);
    const US: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 2);
    const PEER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x14, 0, 0, 0, 0, 2);

    /// A Packet Too Big from the router about our 1400-byte segment with `seq`
    fn ptb(seq: u32, mtu: u32) -> Vec<u8> {
        let mut seg = vec![0u8; 1400];
        ipv6::write_header(
            &mut seg,
            &ipv6::Header {
                src: US,
                dst: PEER,
                next_header: proto::TCP,
                hop_limit: 64,
                payload_len: 1360,
            },
        );
        let h = tcp::Header {
            src_port: 50000,
            dst_port: 18081,
            seq,
            ack: 1,
            flags: tcp::ACK | tcp::PSH,
            window: 100,
            options: tcp::Options::default(),
        };
        tcp::write_header(&mut seg[40..], &h);
        let original = ipv6::Packet::parse(&seg).unwrap();
        let mut out = vec![0u8; ipv6::MIN_MTU];
        let n = icmpv6::write_packet_too_big(&mut out, ROUTER, &original, mtu);
        out.truncate(n);
        out
    }

    #[test]
    fn reads_the_quoted_segment_and_refuses_a_corrupted_one() {
        let b = ptb(777, 1300);
        let r = parse(&ipv6::Packet::parse(&b).unwrap()).unwrap().unwrap();
        assert_eq!(r.local, SocketAddr::new(US.into(), 50000));
        assert_eq!(r.remote, SocketAddr::new(PEER.into(), 18081));
        assert_eq!((r.seq, r.mtu), (777, 1300));
        let mut bad = b.clone();
        bad[100] ^= 1;
        let p = ipv6::Packet::parse(&bad).unwrap();
        assert_eq!(parse(&p), Some(Err(DropReason::BadPacketTooBig)));
        assert_eq!((lowered(1000), lowered(1400)), (1280, 1400));
    }
}
