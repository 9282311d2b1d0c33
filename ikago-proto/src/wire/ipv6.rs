//! IPv6 (RFC 8200): a validated view that walks the extension-header chain, and a header writer
//!
//! [`Packet::parse`] checks the fixed header and walks hop-by-hop, routing, destination-options
//! and fragment headers up to the upper-layer header, within [`MAX_EXTENSION_HEADERS`] headers
//! and [`MAX_CHAIN_LEN`] bytes. A fragment that is not the first stops the walk at its fragment
//! header; a first fragment must reach the upper-layer header (RFC 7112). IPv6 has no header
//! checksum: upper-layer checksums cover a pseudo-header
//! ([`pseudo_header6`](super::checksum::pseudo_header6)).

use std::net::Ipv6Addr;

/// Length of the fixed IPv6 header
pub const HEADER_LEN: usize = 40;
/// Length of a fragment header
pub const FRAGMENT_HEADER_LEN: usize = 8;
/// The smallest MTU every IPv6 link has (RFC 8200 §5)
pub const MIN_MTU: usize = 1280;
/// Largest IPv6 packet without a jumbo payload (40-byte header plus a 65535-byte payload)
pub const MAX_LEN: usize = HEADER_LEN + 65535;
/// Extension headers walked at most; a longer chain is refused
pub const MAX_EXTENSION_HEADERS: usize = 8;
/// Bytes of extension headers walked at most; a longer chain is refused
pub const MAX_CHAIN_LEN: usize = 512;

/// Next-header value of a hop-by-hop options header
pub const HOP_BY_HOP: u8 = 0;
/// Next-header value of a routing header
pub const ROUTING: u8 = 43;
/// Next-header value of a fragment header
pub const FRAGMENT: u8 = 44;
/// Next-header value of a destination-options header
pub const DESTINATION_OPTIONS: u8 = 60;
/// Next-header value "no next header"
pub const NO_NEXT_HEADER: u8 = 59;

/// Why bytes are not a usable IPv6 packet
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Not version 6, shorter than its header or its payload length, or a jumbogram
    Malformed,
    /// An extension-header chain that is truncated, too long, has a hop-by-hop header out of
    /// place, or stops short of the upper-layer header in a first fragment
    ExtensionHeaders,
}

/// The fragment header of a fragment
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Where the fragment header starts (the end of the unfragmentable part)
    pub at: usize,
    /// Where the next-header field that names the fragment header is
    pub next_header_field: usize,
    /// Offset of this fragment's data in the original fragmentable part, in bytes
    pub offset: usize,
    /// Whether more fragments follow
    pub more: bool,
    /// Identification
    pub id: u32,
}

/// A validated IPv6 packet: version 6, payload within the bytes, a bounded extension chain
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// The packet, trimmed to its payload length (link padding removed)
    bytes: &'a [u8],
    /// The upper-layer protocol (for a later fragment, the fragment header's next header)
    protocol: u8,
    /// Where the upper-layer header starts (for a fragment, its data)
    upper: usize,
    /// Where the next-header field naming the upper-layer protocol is
    next_header_field: usize,
    /// The fragment header, when this is a fragment
    fragment: Option<Fragment>,
}

impl<'a> Packet<'a> {
    /// Validates `bytes` as one IPv6 packet (trailing link padding is allowed and cut off) and
    /// walks its extension headers; never panics
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::walk(bytes, true)
    }

    /// Validates the start of an IPv6 packet of which only `bytes` are present, as an ICMPv6
    /// error quotes it: the extension headers up to the upper-layer header must be within them
    pub fn parse_quoted(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::walk(bytes, false)
    }

    /// The checks of [`parse`](Self::parse), of a whole packet or of a quoted start of one
    fn walk(bytes: &'a [u8], whole: bool) -> Result<Self, Error> {
        if bytes.len() < HEADER_LEN || bytes[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        let payload_len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
        if payload_len == 0 && bytes[6] == HOP_BY_HOP {
            // a jumbogram (RFC 2675) or an empty packet claiming options: not carried
            return Err(Error::Malformed);
        }
        let total = HEADER_LEN + payload_len;
        if total > bytes.len() && whole {
            return Err(Error::Malformed);
        }
        let bytes = &bytes[..total.min(bytes.len())];
        let mut next = bytes[6];
        let mut field = 6;
        let mut at = HEADER_LEN;
        let mut fragment = None;
        for n in 0.. {
            match next {
                HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS | FRAGMENT => {}
                _ => break,
            }
            if n == MAX_EXTENSION_HEADERS
                || (next == HOP_BY_HOP && n != 0)
                || at - HEADER_LEN >= MAX_CHAIN_LEN
            {
                return Err(Error::ExtensionHeaders);
            }
            let h = bytes.get(at..at + 8).ok_or(Error::ExtensionHeaders)?;
            let len = if next == FRAGMENT {
                FRAGMENT_HEADER_LEN
            } else {
                (usize::from(h[1]) + 1) * 8
            };
            if at + len > bytes.len() {
                return Err(Error::ExtensionHeaders);
            }
            if next == FRAGMENT {
                if fragment.is_some() {
                    return Err(Error::ExtensionHeaders);
                }
                let word = u16::from_be_bytes([h[2], h[3]]);
                let f = Fragment {
                    at,
                    next_header_field: field,
                    offset: usize::from(word & !7),
                    more: word & 1 == 1,
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                };
                fragment = Some(f);
                if f.offset != 0 {
                    // what follows a later fragment's header is data, not headers
                    return Ok(Self {
                        bytes,
                        protocol: h[0],
                        upper: at + len,
                        next_header_field: at,
                        fragment,
                    });
                }
            }
            next = h[0];
            field = at;
            at += len;
        }
        if whole && fragment.is_some_and(|f| f.more) && at >= bytes.len() && next != NO_NEXT_HEADER
        {
            // RFC 7112: the first fragment holds the whole header chain and the upper header
            return Err(Error::ExtensionHeaders);
        }
        Ok(Self {
            bytes,
            protocol: next,
            upper: at,
            next_header_field: field,
            fragment,
        })
    }

    /// The whole packet
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Source address
    #[inline]
    pub fn src(&self) -> Ipv6Addr {
        addr(self.bytes, 8)
    }
    /// Destination address
    #[inline]
    pub fn dst(&self) -> Ipv6Addr {
        addr(self.bytes, 24)
    }
    /// Hop limit
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.bytes[7]
    }
    /// The upper-layer protocol (TCP, UDP, ICMPv6...); for a later fragment, the fragment
    /// header's next header
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.protocol
    }
    /// Where the upper-layer header starts (the fixed header plus the extension headers)
    #[inline]
    pub fn header_len(&self) -> usize {
        self.upper
    }
    /// Where the next-header field naming [`protocol`](Self::protocol) is
    #[inline]
    pub fn next_header_field(&self) -> usize {
        self.next_header_field
    }
    /// What follows the headers: the upper-layer header and data (or a fragment's data)
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.upper..]
    }
    /// The fragment header, when this is a fragment
    #[inline]
    pub fn fragment(&self) -> Option<Fragment> {
        self.fragment
    }
}

/// The IPv6 address at `at` (callers have checked the length)
pub(crate) fn addr(b: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&b[at..at + 16]);
    Ipv6Addr::from(o)
}

/// Fields of an IPv6 header without extension headers, for [`write_header`]
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Source address
    pub src: Ipv6Addr,
    /// Destination address
    pub dst: Ipv6Addr,
    /// Next header (the upper-layer protocol)
    pub next_header: u8,
    /// Hop limit
    pub hop_limit: u8,
    /// Length of what follows the header
    pub payload_len: usize,
}

/// Writes a 40-byte IPv6 header (traffic class and flow label 0) into `buf[..40]`
///
/// # Panics
/// If `buf` is shorter than [`HEADER_LEN`] or `payload_len` exceeds 65535 (caller bugs).
pub fn write_header(buf: &mut [u8], h: &Header) -> usize {
    let len = u16::try_from(h.payload_len).expect("callers bound payloads to 65535");
    buf[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    buf[4..6].copy_from_slice(&len.to_be_bytes());
    buf[6] = h.next_header;
    buf[7] = h.hop_limit;
    buf[8..24].copy_from_slice(&h.src.octets());
    buf[24..40].copy_from_slice(&h.dst.octets());
    HEADER_LEN
}

/// Sets the flow label (the low 20 bits of `label`) of the IPv6 header at the start of `buf`,
/// keeping its version and traffic class
///
/// # Panics
/// If `buf` is shorter than 4 bytes.
pub fn set_flow_label(buf: &mut [u8], label: u32) {
    let word = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let word = (word & !0xf_ffff) | (label & 0xf_ffff);
    buf[0..4].copy_from_slice(&word.to_be_bytes());
}

/// The flow label of the IPv6 header at the start of `buf` (0 when shorter than 4 bytes)
pub fn flow_label(buf: &[u8]) -> u32 {
    match buf {
        [_, b1, b2, b3, ..] => u32::from_be_bytes([0, b1 & 0xf, *b2, *b3]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::proto;
    use proptest::prelude::*;

    const SRC: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 2);
    const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x14, 0, 0, 0, 0, 2);

    /// A packet with the extension headers `ext` (next header, bytes) and then `upper` bytes of
    /// protocol `protocol`
    fn packet(ext: &[(u8, Vec<u8>)], protocol: u8, upper: usize) -> Vec<u8> {
        let chain: usize = ext.iter().map(|(_, b)| b.len()).sum();
        let mut v = vec![0u8; HEADER_LEN + chain + upper];
        let first = ext.first().map_or(protocol, |e| e.0);
        write_header(
            &mut v,
            &Header {
                src: SRC,
                dst: DST,
                next_header: first,
                hop_limit: 64,
                payload_len: chain + upper,
            },
        );
        let mut at = HEADER_LEN;
        for (i, (_, b)) in ext.iter().enumerate() {
            v[at..at + b.len()].copy_from_slice(b);
            v[at] = ext.get(i + 1).map_or(protocol, |e| e.0);
            at += b.len();
        }
        v
    }

    /// An options header (hop-by-hop, destination, routing) of `units` 8-byte units
    fn options(units: u8) -> Vec<u8> {
        let mut b = vec![0u8; usize::from(units) * 8];
        b[1] = units - 1;
        b
    }

    /// A fragment header at `offset` bytes
    fn frag(offset: u16, more: bool, id: u32) -> Vec<u8> {
        let mut b = vec![0u8; 8];
        b[2..4].copy_from_slice(&(offset | u16::from(more)).to_be_bytes());
        b[4..8].copy_from_slice(&id.to_be_bytes());
        b
    }

    #[test]
    fn plain_packet_and_padding() {
        let mut p = packet(&[], proto::UDP, 12);
        p.extend_from_slice(&[0; 6]);
        let v = Packet::parse(&p).unwrap();
        assert_eq!((v.src(), v.dst(), v.protocol()), (SRC, DST, proto::UDP));
        assert_eq!(
            (v.header_len(), v.payload().len(), v.bytes().len()),
            (40, 12, 52)
        );
        assert_eq!((v.next_header_field(), v.hop_limit()), (6, 64));
        assert!(v.fragment().is_none());
    }

    #[test]
    fn walks_the_chain() {
        let ext = [
            (HOP_BY_HOP, options(1)),
            (DESTINATION_OPTIONS, options(2)),
            (ROUTING, options(3)),
        ];
        let p = packet(&ext, proto::TCP, 20);
        let v = Packet::parse(&p).unwrap();
        assert_eq!((v.protocol(), v.header_len()), (proto::TCP, 40 + 48));
        assert_eq!(v.next_header_field(), 40 + 24);
    }

    #[test]
    fn refuses_bad_chains() {
        // hop-by-hop not first
        let p = packet(
            &[(ROUTING, options(1)), (HOP_BY_HOP, options(1))],
            proto::UDP,
            8,
        );
        assert_eq!(Packet::parse(&p).unwrap_err(), Error::ExtensionHeaders);
        // too many headers
        let many: Vec<_> = (0..=MAX_EXTENSION_HEADERS)
            .map(|_| (DESTINATION_OPTIONS, options(1)))
            .collect();
        let p = packet(&many, proto::UDP, 8);
        assert_eq!(Packet::parse(&p).unwrap_err(), Error::ExtensionHeaders);
        // too many bytes
        let long = [(DESTINATION_OPTIONS, options(255)), (ROUTING, options(1))];
        let p = packet(&long, proto::UDP, 8);
        assert_eq!(Packet::parse(&p).unwrap_err(), Error::ExtensionHeaders);
        // a header past the end
        let mut p = packet(&[(ROUTING, options(2))], proto::UDP, 0);
        p.truncate(HEADER_LEN + 8);
        p[4..6].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(Packet::parse(&p).unwrap_err(), Error::ExtensionHeaders);
        // a first fragment that stops before its upper header (RFC 7112)
        let p = packet(
            &[
                (FRAGMENT, frag(0, true, 1)),
                (DESTINATION_OPTIONS, options(1)),
            ],
            proto::UDP,
            0,
        );
        assert_eq!(Packet::parse(&p).unwrap_err(), Error::ExtensionHeaders);
        // two fragment headers
        let p = packet(
            &[(FRAGMENT, frag(0, false, 1)), (FRAGMENT, frag(0, false, 1))],
            proto::UDP,
            8,
        );
        assert_eq!(Packet::parse(&p).unwrap_err(), Error::ExtensionHeaders);
    }

    #[test]
    fn refuses_malformed() {
        let p = packet(&[], proto::UDP, 8);
        assert_eq!(Packet::parse(&p[..47]).unwrap_err(), Error::Malformed);
        let mut v4 = p.clone();
        v4[0] = 0x45;
        assert_eq!(Packet::parse(&v4).unwrap_err(), Error::Malformed);
        let mut jumbo = packet(&[(HOP_BY_HOP, options(1))], proto::UDP, 8);
        jumbo[4..6].fill(0);
        assert_eq!(Packet::parse(&jumbo).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn fragments() {
        let p = packet(
            &[(HOP_BY_HOP, options(1)), (FRAGMENT, frag(0, true, 7))],
            proto::UDP,
            16,
        );
        let v = Packet::parse(&p).unwrap();
        let f = v.fragment().unwrap();
        assert_eq!(
            (f.at, f.next_header_field, f.offset, f.more, f.id),
            (48, 40, 0, true, 7)
        );
        assert_eq!((v.protocol(), v.header_len()), (proto::UDP, 56));
        let later = packet(&[(FRAGMENT, frag(1232, false, 7))], proto::UDP, 16);
        let v = Packet::parse(&later).unwrap();
        let f = v.fragment().unwrap();
        assert_eq!(
            (f.offset, f.more, v.protocol(), v.payload().len()),
            (1232, false, 17, 16)
        );
    }

    proptest! {
        /// Any bytes: parse never panics and a view stays within them
        #[test]
        fn parse_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Some(b) = data.first_mut() {
                *b = 0x60 | (*b & 0x0f);
            }
            if let Ok(v) = Packet::parse(&data) {
                prop_assert!(v.header_len() <= v.bytes().len());
                prop_assert!(v.bytes().len() <= data.len());
            }
        }

        /// A written chain parses back to what was written
        #[test]
        fn emit_parse(kinds in proptest::collection::vec(any::<bool>(), 0..MAX_EXTENSION_HEADERS),
                      units in proptest::collection::vec(1u8..4, MAX_EXTENSION_HEADERS),
                      upper in 0usize..100, tcp in any::<bool>()) {
            let ext: Vec<_> = kinds
                .iter()
                .zip(&units)
                .map(|(&routing, &u)| (if routing { ROUTING } else { DESTINATION_OPTIONS }, options(u)))
                .collect();
            let protocol = if tcp { proto::TCP } else { proto::UDP };
            let p = packet(&ext, protocol, upper);
            let v = Packet::parse(&p).unwrap();
            let chain: usize = ext.iter().map(|e| e.1.len()).sum();
            prop_assert_eq!(v.protocol(), protocol);
            prop_assert_eq!(v.header_len(), HEADER_LEN + chain);
            prop_assert_eq!(v.payload().len(), upper);
            prop_assert_eq!((v.src(), v.dst()), (SRC, DST));
        }
    }
}
