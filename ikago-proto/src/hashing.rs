//! Keyed hashing for the server's lookup tables (clients, NAT mappings)
//!
//! The tables are keyed by what peers choose (tunnel addresses, inner ports), so the hash is
//! keyed, like std's default, but with SipHash-1-3 under a key drawn from the machine's seed
//! rather than from the OS: the same seed builds the same tables, so runs stay reproducible.
//! Lookups cost a short hash and usually one probe whatever the table's size (an ordered map
//! walks about log2(n) nodes). Nothing iterates these maps where the order could show in output;
//! what is listed is sorted first.

use siphasher::sip::SipHasher13;
use std::collections::HashMap;
use std::hash::BuildHasher;

/// Builds SipHash-1-3 hashers under one key
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyed {
    /// First half of the key
    k0: u64,
    /// Second half of the key
    k1: u64,
}

impl Keyed {
    /// Hashers under the 128-bit `key`
    pub(crate) fn new(key: [u8; 16]) -> Self {
        let (a, b) = key.split_at(8);
        let half = |s: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s);
            u64::from_le_bytes(w)
        };
        Self {
            k0: half(a),
            k1: half(b),
        }
    }
}

impl BuildHasher for Keyed {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}

/// A hash map under a [`Keyed`] hasher
pub(crate) type Map<K, V> = HashMap<K, V, Keyed>;

/// An empty map hashing under `keyed`
pub(crate) fn map<K, V>(keyed: Keyed) -> Map<K, V> {
    HashMap::with_hasher(keyed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn the_key_decides_the_hash() {
        let a = SocketAddrV4::new(Ipv4Addr::new(198, 18, 11, 2), 40000);
        let k = Keyed::new([7; 16]);
        assert_eq!(k.hash_one(a), Keyed::new([7; 16]).hash_one(a));
        assert_ne!(k.hash_one(a), Keyed::new([8; 16]).hash_one(a));
        let b = SocketAddrV4::new(Ipv4Addr::new(198, 18, 11, 2), 40001);
        assert_ne!(k.hash_one(a), k.hash_one(b));
    }
}
