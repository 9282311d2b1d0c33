//! Views and writers for the headers the tunnel touches: Ethernet, ARP, IPv4, IPv6, TCP, ICMPv4,
//! ICMPv6 with neighbour discovery, the
//! DNS answers the client learns names from, and the Internet checksum they share
//!
//! The machines use these on every packet, and so can drivers, tests and tools that read or build
//! frames: one implementation of each header. Views validate once (Ethernet and ARP with
//! etherparse's zero-copy slices, IPv4 and TCP by hand on the hot path) and then read fields
//! without further checks; writers fill the caller's buffer and rewrites are done in place with
//! incremental checksums (RFC 1624). Nothing here keeps state, and only [`dns`] allocates (the
//! name and addresses it returns).
//!
//! # Panics
//! Parsers take any bytes and never panic: what is not a usable header is `None` or an error.
//! Writers panic only when the caller's buffer is shorter than what they are documented to write,
//! a caller bug like an out-of-range slice index; each says how much it needs.
//!
//! ```
//! use ikago_proto::wire::{checksum, ipv4, proto};
//! use std::net::Ipv4Addr;
//!
//! let mut packet = [0u8; ipv4::HEADER_LEN + 8];
//! let header = ipv4::Header {
//!     src: Ipv4Addr::new(198, 18, 11, 2),
//!     dst: Ipv4Addr::new(198, 18, 13, 2),
//!     protocol: proto::UDP,
//!     id: 1,
//!     ttl: 64,
//!     flags_offset: ipv4::FLAG_DF,
//!     payload_len: 8,
//! };
//! ipv4::write_header(&mut packet, &header);
//! let view = ipv4::Packet::parse(&packet).expect("a valid header was written");
//! assert_eq!((view.src(), view.payload().len()), (header.src, 8));
//! assert_eq!(checksum::of(view.header()), 0, "a valid header sums to zero");
//! ipv4::set_dst(&mut packet, Ipv4Addr::new(198, 18, 13, 3));
//! assert!(ipv4::Packet::parse(&packet).is_ok(), "the rewrite kept the checksum valid");
//! assert!(ipv4::Packet::parse(&packet[..19]).is_err());
//! ```

pub mod arp;
pub mod checksum;
pub mod dns;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;

use std::fmt;

/// An Ethernet MAC address
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The broadcast address ff:ff:ff:ff:ff:ff
    pub const BROADCAST: Self = Self([0xff; 6]);
    /// The all-zero address, used as the unknown target of an ARP request
    pub const ZERO: Self = Self([0; 6]);
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Mac {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next().ok_or(ParseMacError)?;
            if p.len() != 2 {
                return Err(ParseMacError);
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(Self(out))
    }
}

/// A MAC address that is not six colon-separated hex bytes
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address (expected six hex bytes like 02:00:00:00:00:01)")]
pub struct ParseMacError;

/// IP protocol numbers the tunnel handles (IANA "Assigned Internet Protocol Numbers")
pub mod proto {
    /// ICMPv4
    pub const ICMP: u8 = 1;
    /// TCP
    pub const TCP: u8 = 6;
    /// UDP
    pub const UDP: u8 = 17;
    /// ICMPv6
    pub const ICMPV6: u8 = 58;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip() {
        let m: Mac = "02:00:00:00:11:0a".parse().unwrap();
        assert_eq!(m.0, [2, 0, 0, 0, 0x11, 0x0a]);
        assert_eq!(m.to_string(), "02:00:00:00:11:0a");
        assert!("02:00:00:00:11".parse::<Mac>().is_err());
        assert!("02:00:00:00:11:0a:01".parse::<Mac>().is_err());
        assert!("zz:00:00:00:11:0a".parse::<Mac>().is_err());
    }
}
