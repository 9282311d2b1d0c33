//! Keyed hashing for the server's lookup tables (clients, NAT mappings)
//!
//! The tables are keyed by what peers choose (tunnel addresses, inner ports), so the hash is
//! keyed, like std's default, but under a key drawn from the machine's seed rather than from the
//! OS: the same seed builds the same tables, so runs stay reproducible. The hash is a folded
//! multiply per written integer (the 64x64->128-bit product's halves XORed, the construction of
//! foldhash and of aHash's portable path): a few cycles for the small integer keys of these
//! tables, where SipHash spends more on its rounds than on the key. Lookups cost that hash and
//! usually one probe whatever the table's size (an ordered map walks about log2(n) nodes).
//! Nothing iterates these maps where the order could show in output; what is listed is sorted
//! first.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// An odd constant with well-spread bits (the fractional part of pi), mixed into the key
const PI: [u64; 2] = [0x243f_6a88_85a3_08d3, 0x1319_8a2e_0370_7344];

/// The 128-bit product of `a` and `b`, its halves XORed
#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Builds [`Fold`] hashers under one key
#[derive(Debug, Clone, Copy)]
pub(crate) struct Keyed {
    /// Mixed into each written integer
    k0: u64,
    /// Mixed into the running state
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
            k0: half(a) ^ PI[0],
            k1: half(b) ^ PI[1],
        }
    }
}

impl BuildHasher for Keyed {
    type Hasher = Fold;

    #[inline]
    fn build_hasher(&self) -> Fold {
        // not k1: the first integer is multiplied by `state ^ k1`, which must not be 0
        Fold {
            state: self.k0,
            keys: *self,
        }
    }
}

/// A keyed folded-multiply hasher (see the module documentation)
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fold {
    /// What was written so far, mixed
    state: u64,
    /// The key
    keys: Keyed,
}

impl Fold {
    /// Mixes one integer into the state
    #[inline]
    fn mix(&mut self, x: u64) {
        self.state = folded_multiply(x ^ self.keys.k0, self.state ^ self.keys.k1);
    }
}

impl Hasher for Fold {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(w));
        }
        self.mix(bytes.len() as u64);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    /// An enum's discriminant (the family of a `SocketAddr` key) is one integer, not bytes
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        folded_multiply(self.state, self.keys.k0 ^ PI[1]).rotate_left(23)
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
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    #[test]
    fn the_key_decides_the_hash() {
        let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 11, 2)), 40000);
        let k = Keyed::new([7; 16]);
        assert_eq!(k.hash_one(a), Keyed::new([7; 16]).hash_one(a));
        assert_ne!(k.hash_one(a), Keyed::new([8; 16]).hash_one(a));
        let b = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 11, 2)), 40001);
        assert_ne!(k.hash_one(a), k.hash_one(b));
        // every integer written counts, the first one too
        let c = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 11, 3)), 40000);
        assert_ne!(k.hash_one(a), k.hash_one(c));
    }

    #[test]
    fn neighbouring_keys_spread_over_buckets_and_tags() {
        // a table's bucket is the hash's low bits, its tag the top 7: ports next to each other
        // (or 256 apart), and hosts next to each other on one port, land all over both
        let k = Keyed::new([3; 16]);
        let mut low = [0u32; 64];
        let mut top = [0u32; 128];
        for port in 0..4096u16 {
            let host = Ipv4Addr::from_bits(0xc612_1000 + u32::from(port));
            for (host, p) in [
                (Ipv4Addr::new(198, 18, 11, 3), port.swap_bytes()),
                (host, 40000),
            ] {
                let h = k.hash_one(SocketAddr::new(IpAddr::V4(host), p));
                low[(h & 63) as usize] += 1;
                top[(h >> 57) as usize] += 1;
            }
        }
        // 8192 keys: 128 per low bucket and 64 per tag on average
        assert!(low.iter().all(|&n| (64..=192).contains(&n)), "{low:?}");
        assert!(top.iter().all(|&n| (24..=104).contains(&n)), "{top:?}");
    }
}
