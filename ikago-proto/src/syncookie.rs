//! SYN cookies: a stateless SYN+ACK when the half-open table is full
//!
//! When spoofed SYNs fill the server's half-open table, a new SYN is still answered, but its
//! state travels in the SYN+ACK instead of a table entry (as Linux's `tcp_syncookies`). The
//! client's ACK (or first data segment) brings it back, and the connection is created only then,
//! once the peer has proved that it received the SYN+ACK at its source address.
//!
//! # Encoding
//!
//! - **ISN**: the top 2 bits are a 64-second time counter (mod 4); the low 30 bits are
//!   SipHash-2-4, under a key drawn from the machine's seed, of the 4-tuple (IPv4 or IPv6), the peer's ISN and
//!   the full counter. A cookie is valid for the current counter and the two before it (64 to
//!   192 s), like Linux's.
//! - **Timestamp**: when the peer offers timestamps, the low 4 bits of our SYN+ACK's TSval carry
//!   the peer's window scale (15: none), and the peer echoes them in every TSecr. Without
//!   timestamps, window scaling is not offered, as in Linux.
//! - **Timestamp offset**: a keyed hash of the 4-tuple, so that the connection created from a
//!   cookie keeps the timestamp clock of its SYN+ACK.
//!
//! The MSS is not encoded: the tunnel never segments by it.

use crate::outer::Octets;
use siphasher::sip::SipHasher24;
use std::net::SocketAddr;
use std::time::Duration;

/// Length of one cookie time step (Linux: 64 s)
const STEP: Duration = Duration::from_secs(64);
/// Time steps a cookie stays valid after the one it was made in
const MAX_AGE_STEPS: u64 = 2;
/// The ISN bits that carry the hash
const HASH_MASK: u32 = (1 << 30) - 1;
/// The TSval bits that carry the peer's window scale
pub(crate) const TS_OPT_MASK: u32 = 0xf;
/// Window scale value meaning "the peer offered none"
const NO_WSCALE: u32 = 0xf;

/// The key and the arithmetic of SYN cookies
#[derive(Debug, Clone)]
pub(crate) struct Cookies {
    hasher: SipHasher24,
}

/// What a valid cookie brings back
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Restored {
    /// Our ISN (the cookie)
    pub(crate) iss: u32,
    /// The peer's ISN
    pub(crate) irs: u32,
    /// The peer's window scale, when both ends use scaling (only with timestamps)
    pub(crate) wscale: Option<u8>,
}

impl Cookies {
    /// Cookies under a 128-bit key
    pub(crate) fn new(key: [u8; 16]) -> Self {
        Self {
            hasher: SipHasher24::new_with_key(&key),
        }
    }

    /// SipHash of `tag`, both ends (address bytes of their family, then port) and `extra`
    fn hash(&self, tag: u8, local: SocketAddr, peer: SocketAddr, extra: u64) -> u64 {
        let mut b = [0u8; 1 + 2 * (16 + 2) + 8];
        b[0] = tag;
        let mut n = 1;
        for end in [local, peer] {
            let ip = Octets::of(end.ip());
            b[n..n + ip.len()].copy_from_slice(&ip);
            n += ip.len();
            b[n..n + 2].copy_from_slice(&end.port().to_be_bytes());
            n += 2;
        }
        b[n..n + 8].copy_from_slice(&extra.to_be_bytes());
        self.hasher.hash(&b[..n + 8])
    }

    fn isn_at(&self, local: SocketAddr, peer: SocketAddr, peer_isn: u32, step: u64) -> u32 {
        let extra = (step << 32) | u64::from(peer_isn);
        let h = self.hash(b'c', local, peer, extra) as u32;
        ((step as u32 & 3) << 30) | (h & HASH_MASK)
    }

    /// The ISN of a cookie SYN+ACK answering `peer_isn`, `since_start` after the machine started
    pub(crate) fn isn(
        &self,
        local: SocketAddr,
        peer: SocketAddr,
        peer_isn: u32,
        since_start: Duration,
    ) -> u32 {
        self.isn_at(local, peer, peer_isn, step_of(since_start))
    }

    /// The timestamp offset of the connection with `peer`
    pub(crate) fn ts_offset(&self, local: SocketAddr, peer: SocketAddr) -> u32 {
        self.hash(b't', local, peer, 0) as u32
    }

    /// Checks the ACK of a cookie SYN+ACK: `seq` and `ack` are the segment's numbers, `tsecr`
    /// its echoed timestamp when it carries one
    pub(crate) fn check(
        &self,
        local: SocketAddr,
        peer: SocketAddr,
        seq: u32,
        ack: u32,
        tsecr: Option<u32>,
        since_start: Duration,
    ) -> Option<Restored> {
        let iss = ack.wrapping_sub(1);
        let irs = seq.wrapping_sub(1);
        let now = step_of(since_start);
        let valid = (0..=MAX_AGE_STEPS)
            .filter_map(|age| now.checked_sub(age))
            .filter(|step| (step & 3) as u32 == iss >> 30)
            .any(|step| self.isn_at(local, peer, irs, step) == iss);
        if !valid {
            return None;
        }
        let wscale = tsecr
            .map(|ts| ts & TS_OPT_MASK)
            .filter(|&w| w != NO_WSCALE)
            .map(|w| w as u8);
        Some(Restored { iss, irs, wscale })
    }
}

fn step_of(since_start: Duration) -> u64 {
    since_start.as_secs() / STEP.as_secs()
}

/// A TSval that carries the peer's window scale in its low bits and is never ahead of `now_ts`
pub(crate) fn encode_tsval(now_ts: u32, wscale: Option<u8>) -> u32 {
    let opt = wscale.map_or(NO_WSCALE, |w| u32::from(w.min(14)));
    let ts = (now_ts & !TS_OPT_MASK) | opt;
    if ts > now_ts {
        ts.wrapping_sub(TS_OPT_MASK + 1)
    } else {
        ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{IpAddr, Ipv4Addr};

    const L: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 18081);
    const P: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)), 50000);

    #[test]
    fn valid_for_three_steps_then_refused() {
        let c = Cookies::new([7; 16]);
        // the start of a time step: valid until the end of the second step after it
        let t0 = STEP * 15;
        let iss = c.isn(L, P, 41, t0);
        let ack = iss.wrapping_add(1);
        for later in [0, 60, 128, 191] {
            let r = c.check(L, P, 42, ack, None, t0 + Duration::from_secs(later));
            assert_eq!(
                r,
                Some(Restored {
                    iss,
                    irs: 41,
                    wscale: None
                }),
                "{later} s later"
            );
        }
        assert_eq!(c.check(L, P, 42, ack, None, t0 + STEP * 3), None);
    }

    #[test]
    fn bound_to_the_tuple_the_peer_isn_and_the_key() {
        let c = Cookies::new([7; 16]);
        let t = Duration::from_secs(5);
        let ack = c.isn(L, P, 41, t).wrapping_add(1);
        let other = SocketAddr::new(P.ip(), 50001);
        assert!(c.check(L, other, 42, ack, None, t).is_none());
        assert!(c.check(L, P, 43, ack, None, t).is_none());
        assert!(
            Cookies::new([8; 16])
                .check(L, P, 42, ack, None, t)
                .is_none()
        );
    }

    #[test]
    fn window_scale_rides_in_the_timestamp() {
        let c = Cookies::new([1; 16]);
        let t = Duration::from_secs(5);
        let ack = c.isn(L, P, 9, t).wrapping_add(1);
        for w in [None, Some(0), Some(7), Some(14)] {
            let ts = encode_tsval(123_456_789, w);
            assert!(ts <= 123_456_789);
            assert_eq!(c.check(L, P, 10, ack, Some(ts), t).unwrap().wscale, w);
        }
    }

    proptest! {
        #[test]
        fn a_random_ack_almost_never_passes(seq in any::<u32>(), ack in any::<u32>(), secs in 0u64..10_000) {
            let c = Cookies::new([3; 16]);
            let t = Duration::from_secs(secs);
            let genuine = c.isn(L, P, seq.wrapping_sub(1), t).wrapping_add(1);
            prop_assume!(ack != genuine);
            // a forged ACK passes only if it hits one of three 30-bit hashes
            prop_assert!(c.check(L, P, seq, ack, None, t).is_none());
        }
    }
}
