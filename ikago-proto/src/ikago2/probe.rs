//! SYN proofs: an `ikago2`-only server answers a SYN only when its ISN proves knowledge of the
//! PSK, so that to a scanner its port looks like any other filtered port
//!
//! `ISN = first 4 bytes (big-endian) of KDF(syn_key, "ikago2 syn" || window || server address ||
//! server port || TSval)`, where `syn_key` is [`Psk::syn_key`](super::Psk::syn_key), `window`
//! is the Unix time divided by [`WINDOW_SECS`] (8 bytes, big-endian), and TSval is the SYN's own
//! timestamp value, a per-SYN nonce (so every SYN of every client has its own proof; a client
//! sends each SYN, retransmissions too, with a fresh ISN). The server accepts the windows within
//! [`TOLERANCE`] of its own. The proof names the server's address as the client addresses it,
//! not the client's: NAT on the client's side rewrites its address and port but keeps the
//! ISN and timestamp.
//!
//! A proof captured on the wire proves the key for its window to whoever sends it again, so the
//! server remembers the proofs it accepted ([`SeenProofs`], bounded) and refuses one that comes
//! back from another address.

use super::keys::{KEY_LEN, kdf};
use crate::outer::Octets;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Seconds of one proof window
pub const WINDOW_SECS: u64 = 30;
/// Windows either side of the server's own that are accepted (±60 s of clock skew at least,
/// 90 s at most)
pub const TOLERANCE: u64 = 2;
/// Accepted proofs remembered at most
pub const SEEN_MAX: usize = 4096;
/// How long an accepted proof is remembered: as long as some window accepts it
const SEEN_FOR: Duration = Duration::from_secs(WINDOW_SECS * (2 * TOLERANCE + 1));

/// The ISN that proves the key for the SYN with `tsval` to `server` at Unix time `unix_secs`
pub fn syn_isn(syn_key: &[u8; KEY_LEN], unix_secs: u64, server: SocketAddr, tsval: u32) -> u32 {
    isn_in_window(syn_key, unix_secs / WINDOW_SECS, server, tsval)
}

fn isn_in_window(syn_key: &[u8; KEY_LEN], window: u64, server: SocketAddr, tsval: u32) -> u32 {
    let mac = kdf(
        syn_key,
        b"ikago2 syn",
        &[
            &window.to_be_bytes(),
            &Octets::of(server.ip()),
            &server.port().to_be_bytes(),
            &tsval.to_be_bytes(),
        ],
    );
    u32::from_be_bytes([mac[0], mac[1], mac[2], mac[3]])
}

/// Whether `isn` proves the key for a SYN with `tsval` to `server`, at the server's Unix time
/// `unix_secs` (five windows tried at most: five keyed BLAKE2s of 30 bytes)
pub fn check_syn(
    syn_key: &[u8; KEY_LEN],
    unix_secs: u64,
    server: SocketAddr,
    tsval: u32,
    isn: u32,
) -> bool {
    let w = unix_secs / WINDOW_SECS;
    (w.saturating_sub(TOLERANCE)..=w.saturating_add(TOLERANCE))
        .any(|x| isn_in_window(syn_key, x, server, tsval) == isn)
}

/// Proofs the server accepted lately, with the address each came from
#[derive(Debug, Default)]
pub struct SeenProofs {
    by_proof: BTreeMap<(u32, u32), SocketAddr>,
    order: VecDeque<((u32, u32), Instant)>,
}

impl SeenProofs {
    /// Remembers the proof (`isn`, `tsval`) from `peer`; false when it was seen from another
    /// address (a replay), true when new or from the same peer (a retransmitted SYN)
    pub fn admit(&mut self, isn: u32, tsval: u32, peer: SocketAddr, now: Instant) -> bool {
        while let Some(&(k, at)) = self.order.front() {
            if now.saturating_duration_since(at) < SEEN_FOR && self.order.len() < SEEN_MAX {
                break;
            }
            self.order.pop_front();
            self.by_proof.remove(&k);
        }
        match self.by_proof.get(&(isn, tsval)) {
            Some(p) => *p == peer,
            None => {
                self.by_proof.insert((isn, tsval), peer);
                self.order.push_back(((isn, tsval), now));
                true
            }
        }
    }

    /// Proofs remembered now
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is remembered
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 18081);

    #[test]
    fn proof_holds_within_tolerance_only() {
        let k = [5u8; 32];
        let t = 1_700_000_000;
        let isn = syn_isn(&k, t, SERVER, 77);
        assert!(check_syn(&k, t, SERVER, 77, isn));
        assert!(check_syn(&k, t + 60, SERVER, 77, isn));
        assert!(check_syn(&k, t - 60, SERVER, 77, isn));
        assert!(!check_syn(&k, t + 91, SERVER, 77, isn));
        assert!(!check_syn(&k, t, SERVER, 78, isn));
        assert!(!check_syn(&[6; 32], t, SERVER, 77, isn));
        let other = SocketAddr::new(SERVER.ip(), 18082);
        assert!(!check_syn(&k, t, other, 77, isn));
    }

    #[test]
    fn a_proof_from_another_address_is_a_replay() {
        let t0 = Instant::now();
        let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 2)), 50000);
        let b = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 1, 3)), 50000);
        let mut s = SeenProofs::default();
        assert!(s.admit(1, 2, a, t0));
        assert!(s.admit(1, 2, a, t0));
        assert!(!s.admit(1, 2, b, t0));
        assert!(s.admit(1, 2, b, t0 + SEEN_FOR));
        for n in 0..(SEEN_MAX as u32 * 2) {
            s.admit(n, 0, a, t0 + SEEN_FOR);
        }
        assert!(s.len() <= SEEN_MAX);
    }
}
