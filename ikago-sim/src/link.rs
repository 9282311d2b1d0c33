//! The WAN link between the router's two sides: seeded loss, duplication, reordering, a fixed
//! delay and an MTU
//!
//! Every packet the router forwards, in either direction, crosses the link once (the router
//! itself answers an IPv6 packet above the MTU with a Packet Too Big: only IPv4 is dropped or
//! fragmented here). Random
//! decisions come from one ChaCha stream seeded by the World, so a seed replays exactly.

use crate::drops::{Drops, SimDrop};
use crate::packet;
use ikago_proto::wire::ipv4;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::time::Duration;

/// What the link does with a packet larger than its MTU
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// Drop it (counted as [`SimDrop::LinkMtu`])
    Drop,
    /// Fragment it as a router would (fragments of fragments included); drop it when DF is set
    Fragment,
}

/// Impairments of the WAN link
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way delay of every packet
    pub delay: Duration,
    /// Probability that a packet is lost
    pub loss: f64,
    /// Probability that a packet is delivered twice
    pub duplicate: f64,
    /// Probability that a packet is held back by an extra random delay (which reorders it)
    pub reorder: f64,
    /// Upper bound of that extra delay (uniform in `0..reorder_delay`)
    pub reorder_delay: Duration,
    /// Largest packet carried, in bytes
    pub mtu: usize,
    /// What happens to larger IPv4 packets (larger IPv6 packets get a Packet Too Big)
    pub oversize: Oversize,
}

impl LinkConfig {
    /// A clean link: 10 ms one way, MTU 1500, no loss, duplication or reordering
    pub fn clean() -> Self {
        Self {
            delay: Duration::from_millis(10),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            mtu: 1500,
            oversize: Oversize::Drop,
        }
    }
}

/// The link's state: its configuration and random stream
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) config: LinkConfig,
    rng: ChaCha8Rng,
}

impl Link {
    /// A link drawing its randomness from `seed`
    pub(crate) fn new(config: LinkConfig, seed: u64) -> Self {
        Self {
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// True with probability `p`
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (f64::from(self.rng.next_u32()) / 4_294_967_296.0) < p
    }

    /// What arrives at the far side for the IPv4 packet `pkt`: each copy with its delay
    pub(crate) fn carry(&mut self, pkt: &[u8], drops: &mut Drops) -> Vec<(Duration, Vec<u8>)> {
        let c = self.config;
        let packets = match ipv4::Packet::parse(pkt) {
            Ok(p) if p.bytes().len() > c.mtu => match c.oversize {
                Oversize::Fragment => packet::fragment(&p, c.mtu),
                Oversize::Drop => None,
            },
            _ => Some(vec![pkt.to_vec()]),
        };
        let Some(packets) = packets else {
            drops.add(SimDrop::LinkMtu);
            return Vec::new();
        };
        let mut out = Vec::new();
        for p in packets {
            if self.chance(c.loss) {
                drops.add(SimDrop::LinkLoss);
                continue;
            }
            let copies = if self.chance(c.duplicate) { 2 } else { 1 };
            for _ in 0..copies {
                let mut delay = c.delay;
                if self.chance(c.reorder) {
                    let max = c.reorder_delay.as_micros().max(1) as u64;
                    delay += Duration::from_micros(u64::from(self.rng.next_u32()) % max);
                }
                out.push((delay, p.clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn packet(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([198, 18, 12, 2], [198, 18, 14, 2], 64)
            .udp(1, 2)
            .write(&mut out, &vec![7; len - 28])
            .expect("vec");
        out[6] &= !0x40; // DF off
        packet::fill_header_checksum(&mut out);
        out
    }

    #[test]
    fn clean_link_delays_only() {
        let mut drops = Drops::default();
        let mut l = Link::new(LinkConfig::clean(), 1);
        let p = packet(100);
        assert_eq!(
            l.carry(&p, &mut drops),
            vec![(Duration::from_millis(10), p)]
        );
        assert_eq!(drops.iter().count(), 0);
    }

    #[test]
    fn mtu_drops_or_fragments() {
        let mut drops = Drops::default();
        let mut l = Link::new(
            LinkConfig {
                mtu: 1000,
                ..LinkConfig::clean()
            },
            1,
        );
        assert!(l.carry(&packet(1400), &mut drops).is_empty());
        assert_eq!(drops.get(SimDrop::LinkMtu), 1);
        l.config.oversize = Oversize::Fragment;
        let out = l.carry(&packet(1400), &mut drops);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|(_, f)| f.len() <= 1000));
    }

    #[test]
    fn loss_and_duplication_follow_the_seed() {
        let cfg = LinkConfig {
            loss: 0.2,
            duplicate: 0.2,
            reorder: 0.5,
            reorder_delay: Duration::from_millis(5),
            ..LinkConfig::clean()
        };
        let run = |seed| {
            let mut drops = Drops::default();
            let mut l = Link::new(cfg, seed);
            let n: usize = (0..1000)
                .map(|_| l.carry(&packet(100), &mut drops).len())
                .sum();
            (n, drops.get(SimDrop::LinkLoss))
        };
        assert_eq!(run(7), run(7));
        let (n, lost) = run(7);
        assert!((150..250).contains(&lost), "{lost}");
        assert!((850..1100).contains(&n), "{n}");
    }
}
