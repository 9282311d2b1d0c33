//! ARP for Ethernet and IPv4 (RFC 826)

use super::Mac;
use etherparse::{ArpHardwareId, ArpOperation, ArpPacketSlice, EtherType};
use std::net::Ipv4Addr;

/// Length of an Ethernet/IPv4 ARP packet
pub const LEN: usize = 28;
/// ARP operation: request
pub const OP_REQUEST: u16 = 1;
/// ARP operation: reply
pub const OP_REPLY: u16 = 2;

/// An Ethernet/IPv4 ARP packet
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// Operation ([`OP_REQUEST`] or [`OP_REPLY`]; others are kept as is)
    pub op: u16,
    /// Sender hardware address
    pub sha: Mac,
    /// Sender protocol address
    pub spa: Ipv4Addr,
    /// Target hardware address
    pub tha: Mac,
    /// Target protocol address
    pub tpa: Ipv4Addr,
}

/// Parses an ARP packet; `None` unless it is a complete Ethernet/IPv4 one
pub fn parse(bytes: &[u8]) -> Option<Arp> {
    let s = ArpPacketSlice::from_slice(bytes).ok()?;
    if s.hw_addr_type() != ArpHardwareId::ETHERNET
        || s.proto_addr_type() != EtherType::IPV4
        || s.hw_addr_size() != 6
        || s.proto_addr_size() != 4
    {
        return None;
    }
    let mac = |b: &[u8]| Mac(b.try_into().expect("hardware address size checked as 6"));
    let ip = |b: &[u8]| Ipv4Addr::from(<[u8; 4]>::try_from(b).expect("protocol size checked as 4"));
    Some(Arp {
        op: s.operation().0,
        sha: mac(s.sender_hw_addr()),
        spa: ip(s.sender_protocol_addr()),
        tha: mac(s.target_hw_addr()),
        tpa: ip(s.target_protocol_addr()),
    })
}

impl Arp {
    /// Writes the packet into `buf[..28]`
    ///
    /// # Panics
    /// If `buf` is shorter than [`LEN`].
    pub fn write(&self, buf: &mut [u8]) -> usize {
        buf[0..2].copy_from_slice(&ArpHardwareId::ETHERNET.0.to_be_bytes());
        buf[2..4].copy_from_slice(&EtherType::IPV4.0.to_be_bytes());
        buf[4] = 6;
        buf[5] = 4;
        buf[6..8].copy_from_slice(&ArpOperation(self.op).0.to_be_bytes());
        buf[8..14].copy_from_slice(&self.sha.0);
        buf[14..18].copy_from_slice(&self.spa.octets());
        buf[18..24].copy_from_slice(&self.tha.0);
        buf[24..28].copy_from_slice(&self.tpa.octets());
        LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let a = Arp {
            op: OP_REQUEST,
            sha: Mac([2, 0, 0, 0, 0x11, 2]),
            spa: Ipv4Addr::new(198, 18, 11, 2),
            tha: Mac::ZERO,
            tpa: Ipv4Addr::new(198, 18, 11, 254),
        };
        let mut buf = [0u8; 28];
        assert_eq!(a.write(&mut buf), 28);
        assert_eq!(parse(&buf), Some(a));
        assert_eq!(parse(&buf[..27]), None);
        buf[4] = 8;
        assert_eq!(parse(&buf), None);
    }
}
