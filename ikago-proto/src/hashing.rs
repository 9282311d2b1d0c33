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
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::SocketAddr;

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

/// A tunnel address as a table key: an IPv4 address and its port are one integer to hash (as
/// the IPv4-only keys were), an IPv6 one three; `SocketAddr`'s own `Hash` writes the family, the
/// address and the port apart, and IPv6's flow information and scope too
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerKey(pub(crate) SocketAddr);

impl Hash for PeerKey {
    #[inline]
    fn hash<H: Hasher>(&self, h: &mut H) {
        match self.0 {
            SocketAddr::V4(a) => {
                h.write_u64(u64::from(a.ip().to_bits()) << 16 | u64::from(a.port()))
            }
            SocketAddr::V6(a) => {
                let ip = a.ip().to_bits();
                h.write_u64((ip >> 64) as u64);
                h.write_u64(ip as u64);
                h.write_u16(a.port());
            }
        }
    }
}

/// A map keyed by tunnel address (see [`PeerKey`]), looked up by the address itself
#[derive(Debug)]
pub(crate) struct PeerMap<V>(Map<PeerKey, V>);

impl<V> PeerMap<V> {
    /// An empty map hashing under `keyed`
    pub(crate) fn new(keyed: Keyed) -> Self {
        Self(map(keyed))
    }

    /// The entry of `peer`
    #[inline]
    pub(crate) fn get(&self, peer: &SocketAddr) -> Option<&V> {
        self.0.get(&PeerKey(*peer))
    }

    /// The entry of `peer`, to change
    #[inline]
    pub(crate) fn get_mut(&mut self, peer: &SocketAddr) -> Option<&mut V> {
        self.0.get_mut(&PeerKey(*peer))
    }

    /// Sets the entry of `peer`
    pub(crate) fn insert(&mut self, peer: SocketAddr, v: V) -> Option<V> {
        self.0.insert(PeerKey(peer), v)
    }

    /// Takes the entry of `peer` out
    pub(crate) fn remove(&mut self, peer: &SocketAddr) -> Option<V> {
        self.0.remove(&PeerKey(*peer))
    }

    /// Entries in all
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The addresses, in no order
    pub(crate) fn keys(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.0.keys().map(|k| k.0)
    }

    /// The entries, in no order
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.0.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    #[test]
    fn the_key_decides_the_hash() {
        let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 11, 2)), 40000);
        let k = Keyed::new([7; 16]);
        assert_eq!(
            k.hash_one(PeerKey(a)),
            Keyed::new([7; 16]).hash_one(PeerKey(a))
        );
        assert_ne!(
            k.hash_one(PeerKey(a)),
            Keyed::new([8; 16]).hash_one(PeerKey(a))
        );
        let b = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 11, 2)), 40001);
        assert_ne!(k.hash_one(PeerKey(a)), k.hash_one(PeerKey(b)));
        // every integer written counts, the first one too
        let c = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 11, 3)), 40000);
        assert_ne!(k.hash_one(PeerKey(a)), k.hash_one(PeerKey(c)));
        // an IPv6 peer with the same low bits and port is another key
        let six = SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(198, 18, 11, 2).to_ipv6_mapped()),
            40000,
        );
        assert_ne!(k.hash_one(PeerKey(a)), k.hash_one(PeerKey(six)));
        let other6 = SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xc612, 0x0b02)),
            40000,
        );
        assert_ne!(k.hash_one(PeerKey(six)), k.hash_one(PeerKey(other6)));
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
                let h = k.hash_one(PeerKey(SocketAddr::new(IpAddr::V4(host), p)));
                low[(h & 63) as usize] += 1;
                top[(h >> 57) as usize] += 1;
            }
        }
        // 8192 keys: 128 per low bucket and 64 per tag on average
        assert!(low.iter().all(|&n| (64..=192).contains(&n)), "{low:?}");
        assert!(top.iter().all(|&n| (24..=104).contains(&n)), "{top:?}");
    }
}
