//! Views and writers for the headers the tunnel touches: Ethernet, ARP, IPv4, TCP, UDP, ICMPv4
//!
//! Parsing validates with etherparse's zero-copy slices; rewrites are done in place on the
//! caller's bytes with incremental checksums. Nothing here allocates or keeps state.

pub(crate) mod arp;
pub(crate) mod checksum;
pub(crate) mod dns;
pub(crate) mod ethernet;
pub(crate) mod icmp;
pub(crate) mod ipv4;
pub(crate) mod tcp;

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
pub(crate) mod proto {
    /// ICMPv4
    pub(crate) const ICMP: u8 = 1;
    /// TCP
    pub(crate) const TCP: u8 = 6;
    /// UDP
    pub(crate) const UDP: u8 = 17;
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
