//! Minimal read-only views of Ethernet, ARP, IPv4 and transport headers: bounds-checked, no panics

use std::net::Ipv4Addr;

/// Length of an Ethernet II header
pub(crate) const ETH_LEN: usize = 14;
/// EtherType of IPv4
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP
pub(crate) const ETHERTYPE_ARP: u16 = 0x0806;
/// IP protocol numbers (IANA)
pub(crate) const ICMP: u8 = 1;
pub(crate) const TCP: u8 = 6;
pub(crate) const UDP: u8 = 17;

/// Big-endian u16 at `at`, 0 when out of bounds
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(s) => u16::from_be_bytes([s[0], s[1]]),
        None => 0,
    }
}

/// Big-endian u32 at `at`, 0 when out of bounds
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

fn ip_at(b: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from(be32(b, at))
}

/// The EtherType and payload of an Ethernet II frame
pub(crate) fn ethernet(frame: &[u8]) -> Option<(u16, &[u8])> {
    (frame.len() >= ETH_LEN).then(|| (be16(frame, 12), &frame[ETH_LEN..]))
}

/// An IPv4 packet or fragment
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ipv4<'a> {
    /// Source address
    pub(crate) src: Ipv4Addr,
    /// Destination address
    pub(crate) dst: Ipv4Addr,
    /// IP protocol
    pub(crate) protocol: u8,
    /// Identification
    pub(crate) id: u16,
    /// More-fragments flag
    pub(crate) more: bool,
    /// Fragment offset in bytes
    pub(crate) offset: usize,
    /// Header length in bytes
    pub(crate) header_len: usize,
    /// The packet, cut to its total length (Ethernet padding removed)
    pub(crate) bytes: &'a [u8],
}

impl<'a> Ipv4<'a> {
    /// Parses the IPv4 header at the start of `b`
    pub(crate) fn parse(b: &'a [u8]) -> Option<Self> {
        let first = *b.first()?;
        let header_len = usize::from(first & 0x0f) * 4;
        let total = usize::from(be16(b, 2));
        if first >> 4 != 4 || header_len < 20 || total < header_len || b.len() < total {
            return None;
        }
        let frag = be16(b, 6);
        Some(Self {
            src: ip_at(b, 12),
            dst: ip_at(b, 16),
            protocol: b[9],
            id: be16(b, 4),
            more: frag & 0x2000 != 0,
            offset: usize::from(frag & 0x1fff) * 8,
            header_len,
            bytes: &b[..total],
        })
    }

    /// The IPv4 packet of an Ethernet frame
    pub(crate) fn of_frame(frame: &'a [u8]) -> Option<Self> {
        match ethernet(frame)? {
            (ETHERTYPE_IPV4, p) => Self::parse(p),
            _ => None,
        }
    }

    /// What follows the header
    pub(crate) fn payload(&self) -> &'a [u8] {
        &self.bytes[self.header_len..]
    }

    /// Whether this is a fragment rather than a whole datagram
    pub(crate) fn is_fragment(&self) -> bool {
        self.more || self.offset > 0
    }
}
