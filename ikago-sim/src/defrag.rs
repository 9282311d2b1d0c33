//! The strict conntrack model's IPv6 defragmentation, as Linux's `nf_defrag_ipv6`: fragments
//! are held until their datagram is whole, conntrack judges the whole, and the original
//! fragments go on unchanged (Linux refragments the reassembled packet along the same
//! boundaries)
//!
//! Reassembly is `ikago_proto`'s, under its default caps and on a clock that never moves (the
//! router has none): an incomplete datagram stays until the caps push it out, and at most
//! [`HELD_MAX`] datagrams' fragments are held.

use ikago_proto::ReassemblyLimits;
use ikago_proto::fragment::Reassembler;
use ikago_proto::wire::ipv6;
use std::collections::VecDeque;
use std::net::Ipv6Addr;
use std::time::Instant;

/// Datagrams whose fragments are held at most; the oldest is forgotten beyond
const HELD_MAX: usize = 64;

/// What a fragment brings
#[derive(Debug)]
pub(crate) enum Defragged {
    /// Its datagram is still incomplete (or was refused): nothing to forward yet
    Held,
    /// Its datagram is whole: the reassembled packet (for conntrack) and the original fragments
    /// in arrival order (to forward)
    Whole(Vec<u8>, Vec<Vec<u8>>),
}

/// A datagram's key: source, destination, identification
type Key = (Ipv6Addr, Ipv6Addr, u32);

/// Fragments held per datagram
#[derive(Debug)]
pub(crate) struct Defrag6 {
    reassembler: Reassembler,
    /// The clock the reassembler sees
    epoch: Instant,
    held: VecDeque<(Key, Vec<Vec<u8>>)>,
}

impl Defrag6 {
    /// Nothing held
    pub(crate) fn new() -> Self {
        Self {
            reassembler: Reassembler::new(ReassemblyLimits::default()),
            epoch: Instant::now(),
            held: VecDeque::new(),
        }
    }

    /// Takes the IPv6 fragment `bytes`
    pub(crate) fn add(&mut self, bytes: &[u8]) -> Defragged {
        let Ok(p) = ipv6::Packet::parse(bytes) else {
            return Defragged::Held;
        };
        let Some(f) = p.fragment() else {
            return Defragged::Held;
        };
        let key = (p.src(), p.dst(), f.id);
        let at = match self.held.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                if self.held.len() == HELD_MAX {
                    self.held.pop_front();
                }
                self.held.push_back((key, Vec::new()));
                self.held.len() - 1
            }
        };
        self.held[at].1.push(p.bytes().to_vec());
        match self.reassembler.handle_fragment6(self.epoch, 0, &p) {
            Ok(None) => Defragged::Held,
            Ok(Some(whole)) => {
                let whole = whole.to_vec();
                let (_, pieces) = self.held.remove(at).expect("found above");
                Defragged::Whole(whole, pieces)
            }
            Err(_) => {
                self.held.remove(at);
                Defragged::Held
            }
        }
    }
}
