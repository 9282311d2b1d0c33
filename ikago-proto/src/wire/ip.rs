//! A received IP packet of either family: an [`ipv4::Packet`] or an [`ipv6::Packet`] behind one
//! set of accessors, for code that reads the addresses, protocol and payload alike for both
//!
//! ```
//! use ikago_proto::wire::ip;
//!
//! let mut packet = [0u8; 40];
//! packet[0] = 0x60; // IPv6, no payload
//! packet[6] = 59; // no next header
//! packet[7] = 64;
//! let p = ip::Packet::parse(&packet).expect("an IPv6 header");
//! assert_eq!((p.protocol(), p.payload().len(), p.is_fragment()), (59, 0, false));
//! assert!(ip::Packet::parse(&[0x50; 40]).is_none(), "neither version");
//! ```

use super::{ipv4, ipv6};
use std::net::IpAddr;

/// A received packet of either family
#[derive(Debug, Clone, Copy)]
pub enum Packet<'a> {
    /// An IPv4 packet
    V4(ipv4::Packet<'a>),
    /// An IPv6 packet
    V6(ipv6::Packet<'a>),
}

impl<'a> Packet<'a> {
    /// Parses a whole packet of either family (a reassembled one), by its version
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        match bytes.first()? >> 4 {
            4 => ipv4::Packet::parse(bytes).ok().map(Self::V4),
            6 => ipv6::Packet::parse(bytes).ok().map(Self::V6),
            _ => None,
        }
    }

    /// Source address
    #[inline]
    pub fn src(&self) -> IpAddr {
        match self {
            Self::V4(p) => p.src().into(),
            Self::V6(p) => p.src().into(),
        }
    }

    /// Destination address
    #[inline]
    pub fn dst(&self) -> IpAddr {
        match self {
            Self::V4(p) => p.dst().into(),
            Self::V6(p) => p.dst().into(),
        }
    }

    /// The upper-layer protocol
    #[inline]
    pub fn protocol(&self) -> u8 {
        match self {
            Self::V4(p) => p.protocol(),
            Self::V6(p) => p.protocol(),
        }
    }

    /// What follows the IP header (and IPv6 extension headers)
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        match self {
            Self::V4(p) => p.payload(),
            Self::V6(p) => p.payload(),
        }
    }

    /// The whole packet
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        match self {
            Self::V4(p) => p.bytes(),
            Self::V6(p) => p.bytes(),
        }
    }

    /// Whether this is a fragment, to reassemble first
    #[inline]
    pub fn is_fragment(&self) -> bool {
        match self {
            Self::V4(p) => p.is_fragment(),
            Self::V6(p) => p.fragment().is_some(),
        }
    }
}
