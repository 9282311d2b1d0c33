//! IPv4 (RFC 791): a validated view, a header writer and in-place address rewrites

use super::checksum;
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options
pub const HEADER_LEN: usize = 20;
/// Largest IPv4 packet
pub const MAX_LEN: usize = 65535;
/// Flag bit "don't fragment" in the flags/offset word
pub const FLAG_DF: u16 = 0x4000;
/// Flag bit "more fragments" in the flags/offset word
pub const FLAG_MF: u16 = 0x2000;
/// Mask of the fragment offset (in 8-byte units) in the flags/offset word
pub const OFFSET_MASK: u16 = 0x1fff;

/// A validated IPv4 packet: version 4, sane IHL, total length within the bytes, good header checksum
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// The packet, trimmed to its total length (link padding removed)
    bytes: &'a [u8],
    header_len: usize,
}

/// Why bytes are not a usable IPv4 packet
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Not version 4, bad IHL, or shorter than its headers claim
    Malformed,
    /// The header checksum does not match
    Checksum,
}

impl<'a> Packet<'a> {
    /// Validates `bytes` as one IPv4 packet (trailing link padding is allowed and cut off);
    /// never panics, and the accessors of the view read within what was validated
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        // the checks of etherparse's Ipv4HeaderSlice, done once on the hot path
        let (&first, rest) = bytes.split_first().ok_or(Error::Malformed)?;
        let header_len = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || header_len < HEADER_LEN || bytes.len() < header_len || rest.len() < 3
        {
            return Err(Error::Malformed);
        }
        let total = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if total < header_len || total > bytes.len() {
            return Err(Error::Malformed);
        }
        if checksum::of(&bytes[..header_len]) != 0 {
            return Err(Error::Checksum);
        }
        Ok(Self {
            bytes: &bytes[..total],
            header_len,
        })
    }

    /// The whole packet
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The header, options included
    #[inline]
    pub fn header(&self) -> &'a [u8] {
        &self.bytes[..self.header_len]
    }
    /// The header length in bytes
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }
    /// What follows the header
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.header_len..]
    }
    /// Source address
    #[inline]
    pub fn src(&self) -> Ipv4Addr {
        addr(self.bytes, 12)
    }
    /// Destination address
    #[inline]
    pub fn dst(&self) -> Ipv4Addr {
        addr(self.bytes, 16)
    }
    /// Protocol number
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.bytes[9]
    }
    /// Identification
    #[inline]
    pub fn id(&self) -> u16 {
        u16::from_be_bytes([self.bytes[4], self.bytes[5]])
    }
    /// The flags/offset word
    #[inline]
    fn flags_offset(&self) -> u16 {
        u16::from_be_bytes([self.bytes[6], self.bytes[7]])
    }
    /// Whether "don't fragment" is set
    #[inline]
    pub fn dont_fragment(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }
    /// Whether "more fragments" is set
    #[inline]
    pub fn more_fragments(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }
    /// Fragment offset in bytes
    #[inline]
    pub fn fragment_offset(&self) -> usize {
        usize::from(self.flags_offset() & OFFSET_MASK) * 8
    }
    /// Whether this is a fragment (MF set or a non-zero offset)
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_offset() & (FLAG_MF | OFFSET_MASK) != 0
    }
}

fn addr(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}

/// Fields of an IPv4 header without options, for [`write_header`]
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Source address
    pub src: Ipv4Addr,
    /// Destination address
    pub dst: Ipv4Addr,
    /// Protocol number
    pub protocol: u8,
    /// Identification
    pub id: u16,
    /// Time to live
    pub ttl: u8,
    /// Flags and fragment offset word ([`FLAG_DF`], [`FLAG_MF`], offset in 8-byte units)
    pub flags_offset: u16,
    /// Length of what follows the header
    pub payload_len: usize,
}

/// Writes a 20-byte IPv4 header with its checksum into `buf[..20]`
///
/// # Panics
/// If `buf` is shorter than [`HEADER_LEN`] or `payload_len + 20` exceeds [`MAX_LEN`] (caller
/// bugs).
pub fn write_header(buf: &mut [u8], h: &Header) -> usize {
    let total = u16::try_from(HEADER_LEN + h.payload_len).expect("callers bound packets to 65535");
    buf[0] = 0x45;
    buf[1] = 0;
    buf[2..4].copy_from_slice(&total.to_be_bytes());
    buf[4..6].copy_from_slice(&h.id.to_be_bytes());
    buf[6..8].copy_from_slice(&h.flags_offset.to_be_bytes());
    buf[8] = h.ttl;
    buf[9] = h.protocol;
    buf[10..12].fill(0);
    buf[12..16].copy_from_slice(&h.src.octets());
    buf[16..20].copy_from_slice(&h.dst.octets());
    let c = checksum::of(&buf[..HEADER_LEN]);
    buf[10..12].copy_from_slice(&c.to_be_bytes());
    HEADER_LEN
}

/// Rewrites the source address of the IPv4 header at the start of `pkt`, fixing its checksum
///
/// # Panics
/// If `pkt` is shorter than [`HEADER_LEN`].
pub fn set_src(pkt: &mut [u8], ip: Ipv4Addr) {
    set_addr(pkt, 12, ip);
}

/// Rewrites the destination address of the IPv4 header at the start of `pkt`, fixing its checksum
///
/// # Panics
/// If `pkt` is shorter than [`HEADER_LEN`].
pub fn set_dst(pkt: &mut [u8], ip: Ipv4Addr) {
    set_addr(pkt, 16, ip);
}

fn set_addr(pkt: &mut [u8], at: usize, ip: Ipv4Addr) {
    let old: [u8; 4] = pkt[at..at + 4].try_into().expect("4-byte range");
    let new = ip.octets();
    pkt[at..at + 4].copy_from_slice(&new);
    let c = u16::from_be_bytes([pkt[10], pkt[11]]);
    let c = checksum::update32(c, old, new);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICMP echo request from the 01-faketcp-plain capture (198.18.11.2 -> 198.18.13.2)
    const PING_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x54, 0x5c, 0x6b, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00, 198, 18, 11, 2,
        198, 18, 13, 2,
    ];

    fn ping() -> Vec<u8> {
        let mut p = PING_HEADER.to_vec();
        let c = checksum::of(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.resize(84, 0xab);
        p
    }

    #[test]
    fn parse_fields_and_padding() {
        let mut p = ping();
        p.extend_from_slice(&[0; 6]);
        let v = Packet::parse(&p).unwrap();
        assert_eq!(v.bytes().len(), 84);
        assert_eq!(v.src(), Ipv4Addr::new(198, 18, 11, 2));
        assert_eq!(v.dst(), Ipv4Addr::new(198, 18, 13, 2));
        assert_eq!(v.protocol(), 1);
        assert!(v.dont_fragment() && !v.is_fragment());
        assert_eq!(v.payload().len(), 64);
    }

    #[test]
    fn rejects_bad_packets() {
        let p = ping();
        assert_eq!(Packet::parse(&p[..83]).unwrap_err(), Error::Malformed);
        let mut bad = p.clone();
        bad[11] ^= 1;
        assert_eq!(Packet::parse(&bad).unwrap_err(), Error::Checksum);
        let mut v6 = p;
        v6[0] = 0x65;
        assert_eq!(Packet::parse(&v6).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn write_and_rewrite_keep_checksum_valid() {
        let mut buf = [0u8; 20];
        let h = Header {
            src: Ipv4Addr::new(198, 18, 12, 2),
            dst: Ipv4Addr::new(198, 18, 12, 1),
            protocol: 6,
            id: 7,
            ttl: 64,
            flags_offset: FLAG_DF,
            payload_len: 0,
        };
        write_header(&mut buf, &h);
        assert_eq!(checksum::of(&buf), 0);
        set_src(&mut buf, Ipv4Addr::new(1, 2, 3, 4));
        set_dst(&mut buf, Ipv4Addr::new(5, 6, 7, 8));
        assert_eq!(checksum::of(&buf), 0);
        let v = Packet::parse(&buf).unwrap();
        assert_eq!(
            (v.src(), v.dst()),
            (Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8))
        );
    }
}
