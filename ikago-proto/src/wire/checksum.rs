//! Internet checksums (RFC 1071) and their incremental update (RFC 1624)
//!
//! [`of`] sums one buffer (an IPv4 header, an ICMP message); [`sum`], [`pseudo_header`] and
//! [`finish`] sum pieces (a TCP or UDP segment over its pseudo-header); [`update16`] and
//! [`update32`] fix a checksum after a field changed, without reading the rest. The checksums are
//! values to store big-endian (`to_be_bytes`); data that carries a valid checksum sums to zero.
//!
//! ```
//! use ikago_proto::wire::checksum;
//!
//! // RFC 1071 §3: these words sum to 0xddf2, the checksum is its complement
//! let mut data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7, 0, 0];
//! let c = checksum::of(&data);
//! assert_eq!(c, !0xddf2);
//! data[8..].copy_from_slice(&c.to_be_bytes());
//! assert_eq!(checksum::of(&data), 0);
//! // a field changes: the stored checksum is fixed from the old and new values alone
//! data[2..4].copy_from_slice(&0xbeefu16.to_be_bytes());
//! let fixed = checksum::update16(c, 0xf203, 0xbeef);
//! data[8..].copy_from_slice(&fixed.to_be_bytes());
//! assert_eq!(checksum::of(&data), 0);
//! ```
//!
//! None of these panics. The accumulator adds native-endian 32-bit words into a `u64` (no carry handling in the loop,
//! so it vectorises); the one's-complement sum is byte-order independent (RFC 1071 §2(B)), so
//! folding and swapping once at the end gives the network-order checksum.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Adds `data` to the accumulator `start`; pieces must start at even offsets of the checksummed
/// data (an odd-length piece is zero-padded at its end, so only the last piece may be odd)
#[inline]
pub fn sum(start: u64, data: &[u8]) -> u64 {
    // four independent accumulators over 32-byte blocks keep the adders busy
    let mut acc = [start, 0, 0, 0];
    let mut blocks = data.chunks_exact(32);
    for b in &mut blocks {
        for (i, a) in acc.iter_mut().enumerate() {
            let w = u64::from_ne_bytes(
                b[i * 8..i * 8 + 8]
                    .try_into()
                    .expect("8-byte slice of a 32-byte block"),
            );
            *a += (w & 0xffff_ffff) + (w >> 32);
        }
    }
    let mut total = acc.iter().sum::<u64>();
    let mut words = blocks.remainder().chunks_exact(4);
    for w in &mut words {
        total += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut tail = [0u8; 4];
    let rest = words.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    total + u64::from(u32::from_ne_bytes(tail))
}

/// Folds an accumulator from [`sum`] into the final one's-complement checksum (network order
/// value: write it with `to_be_bytes`)
#[inline]
pub fn finish(acc: u64) -> u16 {
    let mut a = (acc & 0xffff_ffff) + (acc >> 32);
    a = (a & 0xffff_ffff) + (a >> 32);
    let mut b = (a & 0xffff) + (a >> 16);
    b = (b & 0xffff) + (b >> 16);
    b = (b & 0xffff) + (b >> 16);
    let folded = !(b as u16);
    u16::from_be_bytes(folded.to_ne_bytes())
}

/// The checksum of `data` alone (IPv4 header, ICMP message)
#[inline]
pub fn of(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// The accumulator of the TCP/UDP pseudo-header (RFC 793 §3.1, RFC 768)
#[inline]
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> u64 {
    let [l0, l1] = len.to_be_bytes();
    u64::from(u32::from_ne_bytes(src.octets()))
        + u64::from(u32::from_ne_bytes(dst.octets()))
        + u64::from(u32::from_ne_bytes([0, protocol, l0, l1]))
}

/// The accumulator of the IPv6 upper-layer pseudo-header (RFC 8200 §8.1), for TCP, UDP and
/// ICMPv6 alike
#[inline]
pub fn pseudo_header6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u64 {
    let words = |a: Ipv6Addr| {
        a.octets()
            .chunks_exact(4)
            .map(|w| u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
            .sum::<u64>()
    };
    words(src)
        + words(dst)
        + u64::from(u32::from_ne_bytes(len.to_be_bytes()))
        + u64::from(u32::from_ne_bytes([0, 0, 0, next_header]))
}

/// The addresses a TCP or UDP checksum's pseudo-header is made of: [`Ipv4Addr`] ([`pseudo_header`]),
/// [`Ipv6Addr`] ([`pseudo_header6`]) or either ([`IpAddr`], [`pseudo_header_ip`]); callers that
/// know the family get its code alone
pub trait PseudoAddr: Copy {
    /// The accumulator of the pseudo-header from `src` to `dst` for `protocol` and `len` bytes
    fn pseudo(src: Self, dst: Self, protocol: u8, len: u16) -> u64;
}

impl PseudoAddr for Ipv4Addr {
    #[inline]
    fn pseudo(src: Self, dst: Self, protocol: u8, len: u16) -> u64 {
        pseudo_header(src, dst, protocol, len)
    }
}

impl PseudoAddr for Ipv6Addr {
    #[inline]
    fn pseudo(src: Self, dst: Self, protocol: u8, len: u16) -> u64 {
        pseudo_header6(src, dst, protocol, u32::from(len))
    }
}

impl PseudoAddr for IpAddr {
    #[inline]
    fn pseudo(src: Self, dst: Self, protocol: u8, len: u16) -> u64 {
        pseudo_header_ip(src, dst, protocol, len)
    }
}

/// The pseudo-header accumulator for either family: [`pseudo_header`] for two IPv4 addresses,
/// else [`pseudo_header6`] (an IPv4 address beside an IPv6 one counts as its mapped form; the
/// parsers never pair them)
#[inline]
pub fn pseudo_header_ip(src: IpAddr, dst: IpAddr, protocol: u8, len: u16) -> u64 {
    let six = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => pseudo_header(s, d, protocol, len),
        _ => pseudo_header6(six(src), six(dst), protocol, u32::from(len)),
    }
}

/// Updates checksum `csum` after a 16-bit field changed from `old` to `new` (RFC 1624 eq. 3)
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    let mut acc = u32::from(!csum) + u32::from(!old) + u32::from(new);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    !(acc as u16)
}

/// Updates checksum `csum` after a 32-bit field (an address) changed from `old` to `new`
#[inline]
pub fn update32(csum: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let c = update16(
        csum,
        u16::from_be_bytes([old[0], old[1]]),
        u16::from_be_bytes([new[0], new[1]]),
    );
    update16(
        c,
        u16::from_be_bytes([old[2], old[3]]),
        u16::from_be_bytes([new[2], new[3]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of these words is 0xddf2, the checksum its complement
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(of(&data), !0xddf2);
    }

    proptest::proptest! {
        /// The fast sum equals etherparse's reference implementation, pieces included
        #[test]
        fn matches_reference(data in proptest::collection::vec(0u8.., 0..3000), cut in 0usize..3000) {
            use etherparse::checksum::u64_16bit_word as r;
            let reference = r::ones_complement(r::add_slice(0, &data)).to_be();
            proptest::prop_assert_eq!(of(&data), reference);
            let cut = (cut.min(data.len())) & !1;
            proptest::prop_assert_eq!(finish(sum(sum(0, &data[..cut]), &data[cut..])), reference);
        }
    }

    #[test]
    fn pseudo_header6_matches_reference() {
        use etherparse::{Ipv6Header, UdpHeader};
        let (src, dst) = (
            [0xfd, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            [0x20, 1, 0xd, 0xb8, 0, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        );
        let payload = [1u8, 2, 3, 4, 5];
        let ip = Ipv6Header {
            source: src,
            destination: dst,
            ..Default::default()
        };
        let udp = UdpHeader::with_ipv6_checksum(4000, 53, &ip, &payload).unwrap();
        let mut seg = udp.to_bytes().to_vec();
        seg[6..8].fill(0);
        seg.extend_from_slice(&payload);
        let acc = pseudo_header6(src.into(), dst.into(), 17, seg.len() as u32);
        assert_eq!(finish(sum(acc, &seg)), udp.checksum);
    }

    #[test]
    fn incremental_matches_full() {
        let mut data = [
            0x45u8, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x40, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let before = of(&data);
        data[12..16].copy_from_slice(&[198, 18, 13, 1]);
        let full = of(&data);
        assert_eq!(update32(before, [10, 0, 0, 1], [198, 18, 13, 1]), full);
        let c = update16(full, 0x1234, 0xbeef);
        data[4..6].copy_from_slice(&[0xbe, 0xef]);
        assert_eq!(c, of(&data));
    }
}
