//! The anti-replay window of RFC 6479: a ring of bitmap blocks that slides with the highest
//! counter seen, in constant time and memory
//!
//! A counter is accepted once, and only if it is above the highest seen or within the last
//! [`WINDOW`] counters below it. Checking and marking are split so that a record is marked
//! only after it authenticates: a forged record cannot move the window.

/// Bits in the ring (a power of two)
const RING_BITS: u64 = 4096;
/// Bits of one block
const BLOCK_BITS: u64 = 64;
/// Blocks in the ring
const BLOCKS: usize = (RING_BITS / BLOCK_BITS) as usize;
/// Counters below the highest that are still told apart: the ring less one block (RFC 6479 §2)
pub const WINDOW: u64 = RING_BITS - BLOCK_BITS;

/// Why a counter is refused
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Seen before
    Replayed,
    /// Too far below the highest counter seen to tell
    TooOld,
}

/// The window of one receive key
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// The highest counter marked, plus one (0: nothing marked)
    top: u64,
    ring: [u64; BLOCKS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayWindow {
    /// A window that has seen nothing
    pub fn new() -> Self {
        Self {
            top: 0,
            ring: [0; BLOCKS],
        }
    }

    fn slot(counter: u64) -> (usize, u64) {
        let block = ((counter / BLOCK_BITS) % BLOCKS as u64) as usize;
        (block, 1 << (counter % BLOCK_BITS))
    }

    /// Whether `counter` would be accepted now (nothing changes)
    pub fn check(&self, counter: u64) -> Result<(), Refused> {
        if self.top == 0 || counter >= self.top {
            return Ok(());
        }
        if self.top - 1 - counter >= WINDOW {
            return Err(Refused::TooOld);
        }
        let (block, bit) = Self::slot(counter);
        if self.ring[block] & bit != 0 {
            Err(Refused::Replayed)
        } else {
            Ok(())
        }
    }

    /// Marks `counter` as seen, sliding the window when it is the new highest; call after
    /// [`ReplayWindow::check`] accepted it and the record authenticated
    pub fn mark(&mut self, counter: u64) {
        if self.top == 0 || counter >= self.top {
            // clear the blocks the window slides over (at most the whole ring)
            let first = if self.top == 0 {
                0
            } else {
                (self.top - 1) / BLOCK_BITS + 1
            };
            let last = counter / BLOCK_BITS;
            let n = (last + 1).saturating_sub(first).min(BLOCKS as u64);
            for i in 0..n {
                let b = ((last - i) % BLOCKS as u64) as usize;
                self.ring[b] = 0;
            }
            self.top = counter.saturating_add(1);
        }
        let (block, bit) = Self::slot(counter);
        self.ring[block] |= bit;
    }

    /// [`check`](Self::check) then [`mark`](Self::mark)
    pub fn accept(&mut self, counter: u64) -> Result<(), Refused> {
        self.check(counter)?;
        self.mark(counter);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The model: every counter seen, and the highest
    fn model(seen: &BTreeSet<u64>, c: u64) -> Result<(), Refused> {
        match seen.last() {
            None => Ok(()),
            Some(&top) if c > top => Ok(()),
            Some(&top) if top - c >= WINDOW => Err(Refused::TooOld),
            Some(_) if seen.contains(&c) => Err(Refused::Replayed),
            Some(_) => Ok(()),
        }
    }

    #[test]
    fn duplicates_old_and_jumps() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(0), Ok(()));
        assert_eq!(w.accept(0), Err(Refused::Replayed));
        assert_eq!(w.accept(5000), Ok(()));
        assert_eq!(w.accept(5000 - WINDOW), Err(Refused::TooOld));
        assert_eq!(w.accept(5001 - WINDOW), Ok(()));
        assert_eq!(w.accept(4999), Ok(()));
        assert_eq!(w.accept(4999), Err(Refused::Replayed));
        assert_eq!(w.accept(u64::MAX - 1), Ok(()));
        assert_eq!(w.accept(u64::MAX - 2), Ok(()));
        assert_eq!(w.accept(5000), Err(Refused::TooOld));
    }

    proptest! {
        #[test]
        fn behaves_like_the_model(ops in proptest::collection::vec(
            prop_oneof![0u64..300, 0u64..20_000, Just(4031u64), Just(4032u64)], 1..400))
        {
            let mut w = ReplayWindow::new();
            let mut seen = BTreeSet::new();
            for c in ops {
                let want = model(&seen, c);
                prop_assert_eq!(w.accept(c), want, "counter {}", c);
                if want.is_ok() {
                    seen.insert(c);
                }
            }
        }
    }
}
