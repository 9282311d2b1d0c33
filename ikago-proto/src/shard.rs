//! Sharding a server over worker engines: which clients and which NAT ports each one owns
//!
//! A server can run as `count` engines (one per worker thread), each a whole
//! [`Server`](crate::Server) with state of its own. Engine `index` owns the clients whose tunnel
//! address hashes to `index` ([`Shard::of`]) and a disjoint slice of every NAT pool
//! ([`Shard::slice`]), so that a client's segments and the Internet's replies to its mappings
//! all reach the one engine that holds it: each client's packets stay in order and nothing is
//! shared between engines. The hash is one a classic BPF capture filter computes, so that the
//! host can hand each engine only its share: `(a ^ (a >> 16) ^ p) % count` over the address `a`
//! as a 32-bit number and the port `p`. For an IPv6 client `a` is the last 32 bits of its
//! address (BPF `ip6[20:4]` for the source address of a packet).

use crate::config::ConfigError;
use crate::outer;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

/// Engine `index` of `count` (`0` of `1`: the whole server)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This engine's number, below `count`
    pub index: u16,
    /// Engines in all (at least 1)
    pub count: u16,
}

impl Default for Shard {
    fn default() -> Self {
        Self::WHOLE
    }
}

impl Shard {
    /// One engine serving everything
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    /// Engine `index` of `count`
    ///
    /// # Errors
    /// A count of 0 or an index not below it.
    pub fn new(index: u16, count: u16) -> Result<Self, ConfigError> {
        let s = Self { index, count };
        s.check()?;
        Ok(s)
    }

    /// Checks the count and index
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        if self.count == 0 {
            return Err(ConfigError::Zero("shard count"));
        }
        if self.index >= self.count {
            return Err(ConfigError::ShardOutOfRange(self.index, self.count));
        }
        Ok(())
    }

    /// The engine, of `count`, that owns the client at tunnel address `peer`
    pub fn of(peer: SocketAddr, count: u16) -> u16 {
        let a = outer::low32(peer.ip());
        let h = a ^ (a >> 16) ^ u32::from(peer.port());
        // below `count`, a u16
        (h % u32::from(count.max(1))) as u16
    }

    /// Whether this engine owns the client at `peer`
    #[inline]
    pub fn owns(&self, peer: SocketAddr) -> bool {
        self.count <= 1 || Self::of(peer, self.count) == self.index
    }

    /// This engine's slice of the NAT pool `range`: the `index`-th of `count` contiguous parts
    /// of (nearly) equal size; `None` when the range has fewer ports than engines
    pub fn slice(&self, range: &RangeInclusive<u16>) -> Option<RangeInclusive<u16>> {
        let (first, last) = (u32::from(*range.start()), u32::from(*range.end()));
        if first > last {
            return None;
        }
        let len = last - first + 1;
        let (i, n) = (u32::from(self.index), u32::from(self.count.max(1)));
        if len < n {
            return None;
        }
        let start = first + len * i / n;
        let end = first + len * (i + 1) / n;
        // start < end <= last + 1 <= 65536 since len >= n
        Some(start as u16..=(end - 1) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    #[test]
    fn slices_split_a_pool_into_disjoint_parts() {
        let pool = 49152..=65535u16;
        for count in 1..=7u16 {
            let mut next = *pool.start();
            for index in 0..count {
                let s = Shard::new(index, count).unwrap().slice(&pool).unwrap();
                assert_eq!(*s.start(), next, "{index}/{count}");
                next = s.end().wrapping_add(1);
            }
            assert_eq!(next, 0, "the last slice ends at 65535");
        }
        assert_eq!(Shard::new(2, 4).unwrap().slice(&(10..=12)), None);
        assert_eq!(Shard::new(0, 4).unwrap().slice(&(10..=13)), Some(10..=10));
        assert_eq!(Shard::new(1, 2).unwrap().slice(&(10..=13)), Some(12..=13));
        assert!(Shard::new(2, 2).is_err());
        assert!(Shard::new(0, 0).is_err());
    }

    #[test]
    fn clients_spread_over_engines_and_each_has_one_owner() {
        let mut per = [0u32; 3];
        for host in 1..=200u8 {
            for port in [40000u16, 40001, 50000] {
                let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 12, host)), port);
                let owner = Shard::of(peer, 3);
                per[usize::from(owner)] += 1;
                let owners = (0..3).filter(|&i| Shard { index: i, count: 3 }.owns(peer));
                assert_eq!(owners.collect::<Vec<_>>(), [owner]);
                assert!(Shard::WHOLE.owns(peer));
            }
        }
        assert!(per.iter().all(|&n| n > 150), "{per:?}");
    }
}
