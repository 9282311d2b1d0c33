//! IPv6 for the simulated routers and kernels: a checked packet view, neighbour discovery
//! (RFC 4861: solicitations and advertisements with link-layer address options) and ICMPv6
//! Packet Too Big (RFC 4443 §3.2), parsed and built with etherparse
//!
//! The hosts' own IPv6 (NDP included) is smoltcp's; what is here is what the router and the
//! machines' kernels need: forwarding, answering solicitations for their addresses, resolving
//! next hops, and telling a sender its packet was too big.

use crate::packet::{self, ETH_LEN};
use etherparse::icmpv6::NeighborAdvertisementHeader;
use etherparse::{Icmpv6Header, Icmpv6Slice, Icmpv6Type, IpNumber, Ipv6Header, Ipv6Slice};
use ikago_proto::Mac;
use std::net::Ipv6Addr;

/// EtherType of IPv6
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Next-header number of ICMPv6
pub(crate) const ICMPV6: u8 = 58;
/// Length of the fixed IPv6 header
pub(crate) const HEADER_LEN: usize = 40;
/// The IPv6 minimum MTU: an ICMPv6 error quotes as much of the packet as fits in it
const MIN_MTU: usize = 1280;
/// Hop limit of neighbour discovery messages (RFC 4861 §7.1: anything else is discarded)
const NDP_HOP_LIMIT: u8 = 255;
/// Hop limit of the ICMPv6 errors a router sends
const ERROR_HOP_LIMIT: u8 = 64;
/// NDP option: source link-layer address
const OPT_SOURCE_LLA: u8 = 1;
/// NDP option: target link-layer address
const OPT_TARGET_LLA: u8 = 2;
/// Highest ICMPv6 error type (errors are 1 to 127; 1 to 4 are defined)
const ERROR_TYPE_MAX: u8 = 127;

/// A whole IPv6 packet: version and payload length checked, extension headers walked
#[derive(Debug, Clone)]
pub(crate) struct Ipv6<'a> {
    bytes: &'a [u8],
    slice: Ipv6Slice<'a>,
}

impl<'a> Ipv6<'a> {
    /// Checks the header and the extension chain; bytes beyond the payload length are cut off
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<Self> {
        let slice = Ipv6Slice::from_slice(bytes).ok()?;
        let len = HEADER_LEN + usize::from(slice.header().payload_length());
        Some(Self {
            bytes: bytes.get(..len)?,
            slice,
        })
    }

    /// The packet's bytes
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Source address
    pub(crate) fn src(&self) -> Ipv6Addr {
        self.slice.header().source_addr()
    }
    /// Destination address
    pub(crate) fn dst(&self) -> Ipv6Addr {
        self.slice.header().destination_addr()
    }
    /// The upper-layer protocol (after the extension headers)
    pub(crate) fn protocol(&self) -> u8 {
        self.slice.payload().ip_number.0
    }
    /// Whether the upper-layer payload is only part of a fragmented packet
    pub(crate) fn is_fragment(&self) -> bool {
        self.slice.is_payload_fragmented()
    }
    /// The upper-layer payload (after the extension headers)
    pub(crate) fn payload(&self) -> &'a [u8] {
        self.slice.payload().payload
    }
    /// Whether this is an ICMPv6 error message (which never causes another error)
    fn is_icmp_error(&self) -> bool {
        self.protocol() == ICMPV6
            && !self.is_fragment()
            && self.payload().first().is_some_and(|&t| t <= ERROR_TYPE_MAX)
    }
}

/// A neighbour solicitation or advertisement
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ndp {
    /// An advertisement (otherwise a solicitation)
    pub(crate) advert: bool,
    /// The IPv6 source
    pub(crate) src: Ipv6Addr,
    /// The address asked about or advertised
    pub(crate) target: Ipv6Addr,
    /// The link-layer address option (source in a solicitation, target in an advertisement)
    pub(crate) lladdr: Option<Mac>,
}

/// The neighbour discovery message an Ethernet frame carries, if it is a valid one (hop limit
/// 255, checksum right); duplicate address detection is not modelled: a solicitation from the
/// unspecified address is ignored
pub(crate) fn ndp_of(frame: &[u8]) -> Option<Ndp> {
    let eth = ikago_proto::wire::ethernet::parse(frame)?;
    if eth.ethertype != ETHERTYPE_IPV6 {
        return None;
    }
    let ip = Ipv6::parse(eth.payload)?;
    if ip.protocol() != ICMPV6 || ip.is_fragment() || ip.slice.header().hop_limit() != NDP_HOP_LIMIT
    {
        return None;
    }
    let icmp = Icmpv6Slice::from_slice(ip.payload()).ok()?;
    if !icmp.is_checksum_valid(ip.src().octets(), ip.dst().octets()) {
        return None;
    }
    if ip.src().is_unspecified() {
        return None;
    }
    let (advert, opt) = match icmp.icmp_type() {
        Icmpv6Type::NeighborSolicitation => (false, OPT_SOURCE_LLA),
        Icmpv6Type::NeighborAdvertisement(_) => (true, OPT_TARGET_LLA),
        _ => return None,
    };
    let body = icmp.payload();
    let target: [u8; 16] = body.get(..16)?.try_into().ok()?;
    let mut options = &body[16..];
    let mut lladdr = None;
    while let [kind, len, ..] = *options {
        let len = usize::from(len) * 8;
        if len == 0 || options.len() < len {
            return None;
        }
        if kind == opt && len >= 8 {
            lladdr = Some(Mac(options[2..8].try_into().ok()?));
        }
        options = &options[len..];
    }
    Some(Ndp {
        advert,
        src: ip.src(),
        target: Ipv6Addr::from(target),
        lladdr,
    })
}

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1)
fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet multicast address of an IPv6 multicast address (RFC 2464 §7)
fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// An Ethernet frame carrying an ICMPv6 message of `icmp_type` with `body` after its first
/// eight bytes
fn icmp_frame(
    eth: (Mac, Mac),
    ip: (Ipv6Addr, Ipv6Addr),
    hop_limit: u8,
    icmp_type: Icmpv6Type,
    body: &[u8],
) -> Vec<u8> {
    let pkt = icmp_packet(ip, hop_limit, icmp_type, body);
    packet::frame(eth.0, eth.1, ETHERTYPE_IPV6, &pkt)
}

/// An IPv6 packet carrying an ICMPv6 message of `icmp_type` with `body` after its first eight
/// bytes
fn icmp_packet(
    (src, dst): (Ipv6Addr, Ipv6Addr),
    hop_limit: u8,
    icmp_type: Icmpv6Type,
    body: &[u8],
) -> Vec<u8> {
    let icmp = Icmpv6Header::with_checksum(icmp_type, src.octets(), dst.octets(), body)
        .expect("an ICMPv6 message within the minimum MTU");
    let ip = Ipv6Header {
        payload_length: (icmp.header_len() + body.len()) as u16,
        next_header: IpNumber::IPV6_ICMP,
        hop_limit,
        source: src.octets(),
        destination: dst.octets(),
        ..Ipv6Header::default()
    };
    let mut out = Vec::with_capacity(HEADER_LEN + icmp.header_len() + body.len());
    ip.write(&mut out).expect("a vector");
    icmp.write(&mut out).expect("a vector");
    out.extend_from_slice(body);
    out
}

/// A target (or source) address followed by a link-layer address option
fn ndp_body(target: Ipv6Addr, option: u8, mac: Mac) -> [u8; 24] {
    let mut body = [0; 24];
    body[..16].copy_from_slice(&target.octets());
    body[16] = option;
    body[17] = 1;
    body[18..].copy_from_slice(&mac.0);
    body
}

/// A neighbour solicitation from `mac` at `src` for `target`, to its solicited-node group
pub(crate) fn solicit(mac: Mac, src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    icmp_frame(
        (multicast_mac(group), mac),
        (src, group),
        NDP_HOP_LIMIT,
        Icmpv6Type::NeighborSolicitation,
        &ndp_body(target, OPT_SOURCE_LLA, mac),
    )
}

/// The solicited advertisement of `target` at `mac` answering `request` (sent to its source,
/// at `to_mac`)
pub(crate) fn advertise(mac: Mac, target: Ipv6Addr, request: &Ndp, to_mac: Mac) -> Vec<u8> {
    let flags = NeighborAdvertisementHeader {
        router: false,
        solicited: true,
        r#override: true,
    };
    icmp_frame(
        (to_mac, mac),
        (target, request.src),
        NDP_HOP_LIMIT,
        Icmpv6Type::NeighborAdvertisement(flags),
        &ndp_body(target, OPT_TARGET_LLA, mac),
    )
}

/// The Packet Too Big a router at `src` sends about `original` (an IPv6 packet) for a next hop
/// of `mtu` bytes; `None` when no error may be sent (the packet is itself an ICMPv6 error, or
/// comes from an unspecified or multicast source)
pub(crate) fn packet_too_big(src: Ipv6Addr, original: &Ipv6<'_>, mtu: u32) -> Option<Vec<u8>> {
    let to = original.src();
    if original.is_icmp_error() || to.is_unspecified() || to.is_multicast() {
        return None;
    }
    let room = MIN_MTU - HEADER_LEN - Icmpv6Header::MIN_LEN;
    let quoted = &original.bytes()[..original.bytes().len().min(room)];
    Some(icmp_packet(
        (src, to),
        ERROR_HOP_LIMIT,
        Icmpv6Type::PacketTooBig { mtu },
        quoted,
    ))
}

/// An ICMPv6 error message a host received: its type, code, the 32-bit field after the
/// checksum (the MTU of a Packet Too Big) and the quoted packet
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Icmp6Error {
    /// Virtual time of arrival
    pub at: std::time::Duration,
    /// Who sent it
    pub from: Ipv6Addr,
    /// ICMPv6 type (1 destination unreachable, 2 packet too big, 3 time exceeded, 4 parameter
    /// problem)
    pub icmp_type: u8,
    /// ICMPv6 code
    pub code: u8,
    /// The MTU of a Packet Too Big, the pointer of a Parameter Problem
    pub info: u32,
    /// The quoted packet (as much of the invoking packet as the sender included)
    pub quoted: Vec<u8>,
}

/// The ICMPv6 error an Ethernet frame carries to `own` at `mac`, if any (checksum verified)
pub(crate) fn error_of(
    frame: &[u8],
    mac: Mac,
    own: Ipv6Addr,
    at: std::time::Duration,
) -> Option<Icmp6Error> {
    let eth = ikago_proto::wire::ethernet::parse(frame)?;
    if eth.dst != mac || eth.ethertype != ETHERTYPE_IPV6 {
        return None;
    }
    let ip = Ipv6::parse(eth.payload)?;
    if ip.dst() != own || !ip.is_icmp_error() {
        return None;
    }
    let icmp = Icmpv6Slice::from_slice(ip.payload()).ok()?;
    if !icmp.is_checksum_valid(ip.src().octets(), own.octets()) {
        return None;
    }
    Some(Icmp6Error {
        at,
        from: ip.src(),
        icmp_type: icmp.type_u8(),
        code: icmp.code_u8(),
        info: u32::from_be_bytes(icmp.bytes5to8()),
        quoted: icmp.payload().to_vec(),
    })
}

/// Whether the frame's destination MAC is an IPv6 multicast one
pub(crate) fn is_multicast_frame(frame: &[u8]) -> bool {
    frame.len() >= ETH_LEN && frame[..2] == [0x33, 0x33]
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 2);
    const B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 1);
    const MAC_A: Mac = Mac([2, 0, 0, 0, 0x12, 2]);
    const MAC_B: Mac = Mac([2, 0, 0, 0, 0x12, 1]);

    #[test]
    fn solicitation_and_advertisement_round_trip() {
        let ns = solicit(MAC_A, A, B);
        assert_eq!(&ns[..6], &[0x33, 0x33, 0xff, 0, 0, 1]);
        assert!(is_multicast_frame(&ns));
        let n = ndp_of(&ns).expect("a solicitation");
        assert_eq!(
            n,
            Ndp {
                advert: false,
                src: A,
                target: B,
                lladdr: Some(MAC_A)
            }
        );
        let na = advertise(MAC_B, B, &n, MAC_A);
        assert_eq!(&na[..6], &MAC_A.0);
        let a = ndp_of(&na).expect("an advertisement");
        assert_eq!(
            (a.advert, a.src, a.target, a.lladdr),
            (true, B, B, Some(MAC_B))
        );
        let mut bad = na.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(ndp_of(&bad), None, "a wrong checksum is ignored");
        bad = na;
        bad[ETH_LEN + 7] = 64;
        assert_eq!(ndp_of(&bad), None, "a hop limit below 255 is ignored");
    }

    #[test]
    fn packet_too_big_quotes_the_packet_within_the_minimum_mtu() {
        let mut pkt = Vec::new();
        PacketBuilder::ipv6(A.octets(), B.octets(), 64)
            .udp(5000, 7)
            .write(&mut pkt, &[9; 1400])
            .expect("vec");
        let p = Ipv6::parse(&pkt).expect("valid");
        assert_eq!((p.protocol(), p.payload().len()), (17, 1408));
        let ptb = packet_too_big(B, &p, 1280).expect("an error is due");
        assert_eq!(ptb.len(), MIN_MTU);
        let frame = packet::frame(MAC_A, MAC_B, ETHERTYPE_IPV6, &ptb);
        let e = error_of(&frame, MAC_A, A, std::time::Duration::ZERO).expect("an error");
        assert_eq!((e.from, e.icmp_type, e.code, e.info), (B, 2, 0, 1280));
        assert_eq!(e.quoted, pkt[..MIN_MTU - 48]);
        let again = Ipv6::parse(&ptb).expect("valid");
        assert_eq!(
            packet_too_big(A, &again, 1280),
            None,
            "no error about an error"
        );
        assert_eq!(error_of(&frame, MAC_B, A, std::time::Duration::ZERO), None);
    }
}
