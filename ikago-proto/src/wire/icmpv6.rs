//! ICMPv6 (RFC 4443) messages the tunnel translates or sends, and neighbour discovery
//! (RFC 4861) solicitations and advertisements
//!
//! ICMPv6 checksums cover the IPv6 pseudo-header ([`checksum()`]). [`parse_ndp`] applies
//! RFC 4861's validity checks (§7.1.1, §7.1.2) so that a machine only ever acts on well-formed
//! neighbour discovery; the writers build whole IPv6 packets.

use super::checksum::{self, pseudo_header6};
use super::ipv6::{self, HEADER_LEN as IPV6_HEADER_LEN};
use super::{Mac, proto};
use std::net::Ipv6Addr;

/// Destination unreachable
pub const DEST_UNREACHABLE: u8 = 1;
/// Packet too big
pub const PACKET_TOO_BIG: u8 = 2;
/// Time exceeded
pub const TIME_EXCEEDED: u8 = 3;
/// Parameter problem
pub const PARAMETER_PROBLEM: u8 = 4;
/// Echo request
pub const ECHO_REQUEST: u8 = 128;
/// Echo reply
pub const ECHO_REPLY: u8 = 129;
/// Neighbour solicitation
pub const NEIGHBOR_SOLICIT: u8 = 135;
/// Neighbour advertisement
pub const NEIGHBOR_ADVERT: u8 = 136;
/// Length of the ICMPv6 header (type, code, checksum, 4 bytes of message body)
pub const HEADER_LEN: usize = 8;
/// Hop limit of neighbour discovery messages, and the only one a receiver accepts
pub const NDP_HOP_LIMIT: u8 = 255;
/// Length of a neighbour solicitation or advertisement with one link-layer address option
pub const NDP_LEN: usize = 24 + 8;
/// The all-nodes multicast address, where an answer to duplicate address detection goes
/// (RFC 4861 §7.2.4)
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Option type "source link-layer address"
const OPTION_SOURCE_LL: u8 = 1;
/// Option type "target link-layer address"
const OPTION_TARGET_LL: u8 = 2;
/// Neighbour advertisement flag "solicited"
const FLAG_SOLICITED: u8 = 0x40;
/// Neighbour advertisement flag "override"
const FLAG_OVERRIDE: u8 = 0x20;

/// Whether ICMPv6 type `ty` is an error message (types 0-127)
pub fn is_error(ty: u8) -> bool {
    ty < 128
}

/// The checksum of the ICMPv6 message `msg` (its checksum field zero or not: a valid message
/// sums to zero) sent from `src` to `dst`
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let len = u32::try_from(msg.len()).unwrap_or(u32::MAX);
    checksum::finish(checksum::sum(
        pseudo_header6(src, dst, proto::ICMPV6, len),
        msg,
    ))
}

/// Writes an IPv6 packet from `src` carrying a Packet Too Big about `original` advertising
/// `mtu` (RFC 4443 §3.2), quoting as much of `original` as keeps the packet within the IPv6
/// minimum MTU; returns its length
///
/// # Panics
/// If `buf` is shorter than the packet: at most [`ipv6::MIN_MTU`] bytes.
pub fn write_packet_too_big(
    buf: &mut [u8],
    src: Ipv6Addr,
    original: &ipv6::Packet<'_>,
    mtu: u32,
) -> usize {
    let quoted = original
        .bytes()
        .len()
        .min(ipv6::MIN_MTU - IPV6_HEADER_LEN - HEADER_LEN);
    let dst = original.src();
    let len = HEADER_LEN + quoted;
    ipv6::write_header(
        buf,
        &ipv6::Header {
            src,
            dst,
            next_header: proto::ICMPV6,
            hop_limit: 64,
            payload_len: len,
        },
    );
    let msg = &mut buf[IPV6_HEADER_LEN..IPV6_HEADER_LEN + len];
    msg[0] = PACKET_TOO_BIG;
    msg[1] = 0;
    msg[2..4].fill(0);
    msg[4..8].copy_from_slice(&mtu.to_be_bytes());
    msg[HEADER_LEN..].copy_from_slice(&original.bytes()[..quoted]);
    let c = checksum(src, dst, msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    IPV6_HEADER_LEN + len
}

/// A valid neighbour solicitation or advertisement
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ndp {
    /// Who has `target`? (from `src`, whose MAC is `source_mac` when it said)
    Solicit {
        /// The address asked for
        target: Ipv6Addr,
        /// The link-layer address option of the sender
        source_mac: Option<Mac>,
    },
    /// `target` is at `target_mac`
    Advert {
        /// The address advertised
        target: Ipv6Addr,
        /// The link-layer address option
        target_mac: Option<Mac>,
        /// Whether it answers a solicitation
        solicited: bool,
    },
}

/// Parses the neighbour solicitation or advertisement in `packet` with RFC 4861's checks: hop
/// limit 255, code 0, a valid checksum, at least 24 bytes, a unicast target, options of non-zero
/// length within the message, and for a solicitation from the unspecified address (duplicate
/// address detection, RFC 4862 §5.4.2) a solicited-node destination and no source link-layer
/// address option. `None` when it is not NDP; `Some(Err(()))` when it is NDP but fails a check
#[allow(clippy::result_unit_err)]
pub fn parse_ndp(packet: &ipv6::Packet<'_>) -> Option<Result<Ndp, ()>> {
    if packet.protocol() != proto::ICMPV6 || packet.fragment().is_some() {
        return None;
    }
    let msg = packet.payload();
    let ty = *msg.first()?;
    if ty != NEIGHBOR_SOLICIT && ty != NEIGHBOR_ADVERT {
        return None;
    }
    Some(ndp_body(packet, msg, ty))
}

/// The checks and fields of [`parse_ndp`] for a message of type `ty`
fn ndp_body(packet: &ipv6::Packet<'_>, msg: &[u8], ty: u8) -> Result<Ndp, ()> {
    if packet.hop_limit() != NDP_HOP_LIMIT
        || msg.len() < 24
        || msg[1] != 0
        || checksum(packet.src(), packet.dst(), msg) != 0
    {
        return Err(());
    }
    let target = ipv6::addr(msg, 8);
    if target.is_multicast() {
        return Err(());
    }
    let mut options = &msg[24..];
    let mut ll = None;
    let wanted = if ty == NEIGHBOR_SOLICIT {
        OPTION_SOURCE_LL
    } else {
        OPTION_TARGET_LL
    };
    while !options.is_empty() {
        let len = usize::from(*options.get(1).ok_or(())?) * 8;
        if len == 0 || len > options.len() {
            return Err(());
        }
        if options[0] == wanted && len == 8 {
            let mut m = [0u8; 6];
            m.copy_from_slice(&options[2..8]);
            ll = Some(Mac(m));
        }
        options = &options[len..];
    }
    Ok(if ty == NEIGHBOR_SOLICIT {
        if packet.src().is_unspecified() && (ll.is_some() || !is_solicited_node(packet.dst())) {
            // duplicate address detection goes to a solicited-node group without a source
            // link-layer address (RFC 4861 §7.1.1)
            return Err(());
        }
        Ndp::Solicit {
            target,
            source_mac: ll,
        }
    } else {
        Ndp::Advert {
            target,
            target_mac: ll,
            solicited: msg[4] & FLAG_SOLICITED != 0,
        }
    })
}

/// The solicited-node multicast address of `ip` (ff02::1:ffXX:XXXX)
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::from([
        0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15],
    ])
}

/// Whether `ip` is a solicited-node multicast address (ff02::1:ff00:0/104)
pub fn is_solicited_node(ip: Ipv6Addr) -> bool {
    ip.octets()[..13] == solicited_node(Ipv6Addr::UNSPECIFIED).octets()[..13]
}

/// The Ethernet multicast MAC of the IPv6 multicast address `ip` (33:33 and its last 4 bytes)
pub fn multicast_mac(ip: Ipv6Addr) -> Mac {
    let o = ip.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// Writes an IPv6 neighbour solicitation for `target` from `src` (MAC `mac`) to the target's
/// solicited-node address, or to `target` itself when `unicast` (a reachability probe); returns
/// the packet length ([`IPV6_HEADER_LEN`] + [`NDP_LEN`])
///
/// # Panics
/// If `buf` is shorter than 72 bytes.
pub fn write_solicit(
    buf: &mut [u8],
    src: Ipv6Addr,
    mac: Mac,
    target: Ipv6Addr,
    unicast: bool,
) -> usize {
    let dst = if unicast {
        target
    } else {
        solicited_node(target)
    };
    write_ndp(
        buf,
        src,
        dst,
        NEIGHBOR_SOLICIT,
        0,
        target,
        OPTION_SOURCE_LL,
        mac,
    )
}

/// Writes an IPv6 neighbour advertisement from `target` to `dst` saying `target` is at `mac`
/// (solicited when it answers a solicitation from a unicast address, with the override flag);
/// returns the packet length ([`IPV6_HEADER_LEN`] + [`NDP_LEN`])
///
/// # Panics
/// If `buf` is shorter than 72 bytes.
pub fn write_advert(
    buf: &mut [u8],
    target: Ipv6Addr,
    dst: Ipv6Addr,
    mac: Mac,
    solicited: bool,
) -> usize {
    let flags = FLAG_OVERRIDE | if solicited { FLAG_SOLICITED } else { 0 };
    write_ndp(
        buf,
        target,
        dst,
        NEIGHBOR_ADVERT,
        flags,
        target,
        OPTION_TARGET_LL,
        mac,
    )
}

/// Writes a neighbour discovery packet with one link-layer address option
#[allow(clippy::too_many_arguments)]
fn write_ndp(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ty: u8,
    flags: u8,
    target: Ipv6Addr,
    option: u8,
    mac: Mac,
) -> usize {
    ipv6::write_header(
        buf,
        &ipv6::Header {
            src,
            dst,
            next_header: proto::ICMPV6,
            hop_limit: NDP_HOP_LIMIT,
            payload_len: NDP_LEN,
        },
    );
    let msg = &mut buf[IPV6_HEADER_LEN..IPV6_HEADER_LEN + NDP_LEN];
    msg.fill(0);
    msg[0] = ty;
    msg[4] = flags;
    msg[8..24].copy_from_slice(&target.octets());
    msg[24] = option;
    msg[25] = 1;
    msg[26..32].copy_from_slice(&mac.0);
    let c = checksum(src, dst, msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    IPV6_HEADER_LEN + NDP_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 2);
    const GW: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 0x1);
    const MAC: Mac = Mac([2, 0, 0, 0, 0x11, 2]);

    #[test]
    fn solicit_and_advert_round_trip() {
        let mut buf = [0u8; 80];
        let n = write_solicit(&mut buf, HOST, MAC, GW, false);
        let p = ipv6::Packet::parse(&buf[..n]).unwrap();
        assert_eq!(p.dst(), "ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(multicast_mac(p.dst()), Mac([0x33, 0x33, 0xff, 0, 0, 1]));
        assert_eq!(
            parse_ndp(&p),
            Some(Ok(Ndp::Solicit {
                target: GW,
                source_mac: Some(MAC)
            }))
        );
        let n = write_advert(&mut buf, GW, HOST, MAC, true);
        let p = ipv6::Packet::parse(&buf[..n]).unwrap();
        assert_eq!(
            parse_ndp(&p),
            Some(Ok(Ndp::Advert {
                target: GW,
                target_mac: Some(MAC),
                solicited: true
            }))
        );
    }

    #[test]
    fn ndp_checks() {
        let mut buf = [0u8; 80];
        let n = write_solicit(&mut buf, HOST, MAC, GW, true);
        let mut hop = buf;
        hop[7] = 64;
        let p = ipv6::Packet::parse(&hop[..n]).unwrap();
        assert_eq!(parse_ndp(&p), Some(Err(())), "hop limit not 255");
        let mut sum = buf;
        sum[50] ^= 1;
        let p = ipv6::Packet::parse(&sum[..n]).unwrap();
        assert_eq!(parse_ndp(&p), Some(Err(())), "bad checksum");
        let mut opt = buf;
        opt[40 + 25] = 0;
        let c = checksum(HOST, GW, &{
            let mut m = opt[40..n].to_vec();
            m[2..4].fill(0);
            m
        });
        opt[42..44].copy_from_slice(&c.to_be_bytes());
        let p = ipv6::Packet::parse(&opt[..n]).unwrap();
        assert_eq!(parse_ndp(&p), Some(Err(())), "zero-length option");
    }

    /// A duplicate address detection probe for `target`: a solicitation from `::` to `dst`,
    /// with the source link-layer address option when `option`
    fn dad_probe(target: Ipv6Addr, dst: Ipv6Addr, option: bool) -> Vec<u8> {
        let mut buf = vec![0u8; 72];
        let n = write_solicit(&mut buf, Ipv6Addr::UNSPECIFIED, MAC, target, false);
        buf.truncate(if option { n } else { n - 8 });
        let payload_len = buf.len() as u16 - 40;
        buf[4..6].copy_from_slice(&payload_len.to_be_bytes());
        buf[24..40].copy_from_slice(&dst.octets());
        buf[42..44].fill(0);
        let c = checksum(Ipv6Addr::UNSPECIFIED, dst, &buf[40..]);
        buf[42..44].copy_from_slice(&c.to_be_bytes());
        buf
    }

    #[test]
    fn duplicate_address_detection_probes() {
        let group = solicited_node(GW);
        assert!(is_solicited_node(group) && !is_solicited_node(GW));
        assert!(!is_solicited_node(ALL_NODES));
        let probe = dad_probe(GW, group, false);
        assert_eq!(
            parse_ndp(&ipv6::Packet::parse(&probe).unwrap()),
            Some(Ok(Ndp::Solicit {
                target: GW,
                source_mac: None
            }))
        );
        // RFC 4861 §7.1.1: no source link-layer address, and to a solicited-node group
        for (bad, why) in [
            (dad_probe(GW, group, true), "with a link-layer address"),
            (dad_probe(GW, GW, false), "to a unicast address"),
            (dad_probe(GW, ALL_NODES, false), "to all nodes"),
        ] {
            let p = ipv6::Packet::parse(&bad).unwrap();
            assert_eq!(parse_ndp(&p), Some(Err(())), "{why}");
        }
        // the answer: to all nodes, not solicited, overriding
        let mut buf = [0u8; 80];
        let n = write_advert(&mut buf, GW, ALL_NODES, MAC, false);
        let p = ipv6::Packet::parse(&buf[..n]).unwrap();
        assert_eq!(
            parse_ndp(&p),
            Some(Ok(Ndp::Advert {
                target: GW,
                target_mac: Some(MAC),
                solicited: false
            }))
        );
        assert_eq!(p.payload()[4], FLAG_OVERRIDE);
        assert_eq!(multicast_mac(ALL_NODES), Mac([0x33, 0x33, 0, 0, 0, 1]));
    }

    #[test]
    fn packet_too_big_quotes_within_min_mtu() {
        let mut orig = vec![0u8; 1500];
        ipv6::write_header(
            &mut orig,
            &ipv6::Header {
                src: HOST,
                dst: GW,
                next_header: proto::UDP,
                hop_limit: 64,
                payload_len: 1460,
            },
        );
        let o = ipv6::Packet::parse(&orig).unwrap();
        let mut buf = [0u8; 1280];
        let n = write_packet_too_big(&mut buf, GW, &o, 1400);
        assert_eq!(n, 1280);
        let p = ipv6::Packet::parse(&buf[..n]).unwrap();
        assert_eq!((p.src(), p.dst(), p.protocol()), (GW, HOST, proto::ICMPV6));
        assert_eq!(checksum(GW, HOST, p.payload()), 0);
        assert_eq!(&p.payload()[4..8], &1400u32.to_be_bytes());
        assert_eq!(&p.payload()[8..48], &orig[..40]);
    }
}
