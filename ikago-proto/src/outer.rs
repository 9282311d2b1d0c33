//! The outer IP layer of the tunnel, for either family: what a FakeTCP segment's IPv4 or IPv6
//! header looks like, and the few facts about an address that the tunnel needs
//!
//! A FakeTCP connection runs between two addresses of one family (the server listens on its
//! IPv4 and IPv6 addresses at once; each client connection stays in the family it began in).
//! Everything above the IP header (the TCP segment, its options, the sealed payload) is the
//! same for both; what differs is kept here, so that the connection and the machines call one
//! function per step instead of a function per family:
//!
//! - the header: IPv4 with TTL 64, an incrementing ID and DF clear (routers may fragment, as
//!   the Go original has it), or IPv6 with hop limit 64 and the connection's flow label (random
//!   per connection, as Linux's automatic flow labels);
//! - the TCP checksum's pseudo-header ([`checksum::pseudo_header_ip`](crate::wire::checksum));
//! - the address bytes that keyed hashes (SYN cookies, `ikago2` SYN proofs) take: 4 for IPv4, so
//!   that IPv4 values are what they always were, 16 for IPv6.

use crate::wire::{ethernet, ipv4, ipv6, proto, tcp};
use std::net::IpAddr;

/// TTL or hop limit of every FakeTCP packet (Linux `ip_default_ttl`)
pub(crate) const TTL: u8 = 64;
/// Bits of an IPv6 flow label
pub(crate) const FLOW_LABEL_MASK: u32 = 0xf_ffff;

/// Length of the IP header in front of a FakeTCP segment to or from `ip`
#[inline]
pub(crate) fn header_len(ip: IpAddr) -> usize {
    match ip {
        IpAddr::V4(_) => ipv4::HEADER_LEN,
        IpAddr::V6(_) => ipv6::HEADER_LEN,
    }
}

/// The MSS a connection to `ip` offers for a tunnel MTU of `mtu` bytes: the MTU less the IP and
/// TCP headers (Linux's `mtu - 40` over IPv4, `mtu - 60` over IPv6)
pub(crate) fn mss(mtu: usize, ip: IpAddr) -> u16 {
    u16::try_from(mtu.saturating_sub(header_len(ip) + tcp::HEADER_LEN)).unwrap_or(u16::MAX)
}

/// The Ethertype of packets to or from `ip`
#[inline]
pub(crate) fn ethertype(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => ethernet::ETHERTYPE_IPV4,
        IpAddr::V6(_) => ethernet::ETHERTYPE_IPV6,
    }
}

/// The fields of an outer header that are not the addresses
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// IPv4 identification
    pub(crate) id: u16,
    /// IPv4: set DF (RSTs, like Linux's)
    pub(crate) df: bool,
    /// IPv6 flow label (20 bits)
    pub(crate) flow: u32,
}

/// Writes the IP header of a TCP segment of `payload_len` bytes from `src` to `dst` (one
/// family) into `buf`; returns the header length
///
/// # Panics
/// If `buf` is shorter than the header, or the segment longer than 65535 bytes (caller bugs).
#[inline]
pub(crate) fn write_header(
    buf: &mut [u8],
    src: IpAddr,
    dst: IpAddr,
    f: Fields,
    payload_len: usize,
) -> usize {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => ipv4::write_header(
            buf,
            &ipv4::Header {
                src,
                dst,
                protocol: proto::TCP,
                id: f.id,
                ttl: TTL,
                flags_offset: if f.df { ipv4::FLAG_DF } else { 0 },
                payload_len,
            },
        ),
        _ => {
            let n = ipv6::write_header(
                buf,
                &ipv6::Header {
                    src: six(src),
                    dst: six(dst),
                    next_header: proto::TCP,
                    hop_limit: TTL,
                    payload_len,
                },
            );
            ipv6::set_flow_label(buf, f.flow);
            n
        }
    }
}

/// `ip` as IPv6 (an IPv4 address in its mapped form)
fn six(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The bytes of an address: 4 for IPv4, 16 for IPv6
#[derive(Debug, Clone, Copy)]
pub(crate) struct Octets {
    bytes: [u8; 16],
    len: usize,
}

impl Octets {
    /// The bytes of `ip`
    #[inline]
    pub(crate) fn of(ip: IpAddr) -> Self {
        let mut bytes = [0u8; 16];
        let len = match ip {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                bytes = v6.octets();
                16
            }
        };
        Self { bytes, len }
    }
}

impl std::ops::Deref for Octets {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The last 32 bits of an address, big-endian: the whole of an IPv4 address, the interface
/// part's low half of an IPv6 one (BPF `ip6[20:4]` for a source address)
#[inline]
pub(crate) fn low32(ip: IpAddr) -> u32 {
    match ip {
        IpAddr::V4(v4) => v4.to_bits(),
        IpAddr::V6(v6) => v6.to_bits() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn octets_and_low_bits_per_family() {
        let v4 = IpAddr::V4(Ipv4Addr::new(198, 18, 12, 1));
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xc612, 0x0c01));
        assert_eq!(&*Octets::of(v4), &[198, 18, 12, 1]);
        assert_eq!(Octets::of(v6).len(), 16);
        assert_eq!(low32(v4), 0xc612_0c01);
        assert_eq!(low32(v6), 0xc612_0c01);
        assert_eq!((header_len(v4), header_len(v6)), (20, 40));
    }

    #[test]
    fn ipv6_header_carries_hop_limit_64_and_the_flow_label() {
        let (a, b): (IpAddr, IpAddr) = (
            "2001:db8::2".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        let mut buf = [0u8; 60];
        let f = Fields {
            id: 0,
            df: false,
            flow: 0xabcde,
        };
        assert_eq!(write_header(&mut buf, a, b, f, 20), 40);
        let p = ipv6::Packet::parse(&buf).unwrap();
        assert_eq!(
            (p.hop_limit(), p.protocol(), p.payload().len()),
            (64, proto::TCP, 20)
        );
        assert_eq!(ipv6::flow_label(&buf), 0xabcde);
    }
}
