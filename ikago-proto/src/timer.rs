//! Timers: an enum-indexed table of a machine's own timers, and a queue of per-entry deadlines
//!
//! [`Timers`] holds a few timers, each armed or not; the next deadline is the minimum.
//! [`Queue`] holds one deadline per entry of a large table (a client's delayed ACK, its KCP
//! clock, its idle timeout; a NAT mapping's expiry) so that only due entries are visited: no
//! timer scans the table. Entries are invalidated lazily: the owner keeps the deadline it
//! scheduled and skips a popped entry that no longer matches it. Stale entries are bounded:
//! once they outnumber the live ones the queue is rebuilt from the live ones (each once), an
//! O(n log n) step that n stale pushes paid for, so each push costs amortised O(log n).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A table of `N` timers indexed by a machine's timer enum (cast to `usize`)
#[derive(Debug, Clone)]
pub(crate) struct Timers<const N: usize> {
    at: [Option<Instant>; N],
}

impl<const N: usize> Default for Timers<N> {
    fn default() -> Self {
        Self { at: [None; N] }
    }
}

impl<const N: usize> Timers<N> {
    /// Arms timer `t` at `at`, replacing any earlier setting
    pub(crate) fn set(&mut self, t: usize, at: Instant) {
        self.at[t] = Some(at);
    }
    /// Arms timer `t` at `at` unless it is already armed earlier
    pub(crate) fn set_earliest(&mut self, t: usize, at: Instant) {
        self.at[t] = Some(self.at[t].map_or(at, |cur| cur.min(at)));
    }
    /// Disarms timer `t`
    pub(crate) fn stop(&mut self, t: usize) {
        self.at[t] = None;
    }
    /// Disarms and reports timer `t` if it is due at `now`
    pub(crate) fn expire(&mut self, t: usize, now: Instant) -> bool {
        match self.at[t] {
            Some(at) if at <= now => {
                self.at[t] = None;
                true
            }
            _ => false,
        }
    }
    /// The earliest armed deadline
    pub(crate) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

/// Entries a [`Queue`] keeps stale at least before it considers a rebuild
const STALE_SLACK: usize = 1024;

/// Deadlines of table entries (keys `K`), earliest first; ties in key order
#[derive(Debug, Clone)]
pub(crate) struct Queue<K> {
    heap: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Ord + Copy> Default for Queue<K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: Ord + Copy> Queue<K> {
    /// Schedules `key` at `at`
    ///
    /// `live` is the number of entries the owner still schedules; when the queue holds more than
    /// twice that (plus a slack), it keeps only the entries `valid` accepts.
    pub(crate) fn push(
        &mut self,
        at: Instant,
        key: K,
        live: usize,
        valid: impl FnMut(Instant, K) -> bool,
    ) {
        self.heap.push(Reverse((at, key)));
        if self.heap.len() > 2 * live + STALE_SLACK {
            self.retain(valid);
        }
    }

    /// Keeps only the entries `valid` accepts, each once (an owner that rescheduled a key at
    /// the same instant pushed it twice)
    fn retain(&mut self, mut valid: impl FnMut(Instant, K) -> bool) {
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        entries.retain(|Reverse((at, k))| valid(*at, *k));
        entries.sort_unstable();
        entries.dedup();
        self.heap = entries.into();
    }

    /// Drops the entries at the front that `valid` refuses, so that [`Queue::next`] is a live
    /// deadline and the owner is not woken for an entry that no longer holds
    pub(crate) fn skip_stale(&mut self, mut valid: impl FnMut(Instant, K) -> bool) {
        while let Some((at, key)) = self.peek() {
            if valid(at, key) {
                return;
            }
            self.heap.pop();
        }
    }

    /// The earliest deadline
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The earliest entry
    pub(crate) fn peek(&self) -> Option<(Instant, K)> {
        self.heap.peek().map(|Reverse(e)| *e)
    }

    /// Takes the earliest entry
    pub(crate) fn pop(&mut self) -> Option<(Instant, K)> {
        self.heap.pop().map(|Reverse(e)| e)
    }

    /// Takes the earliest entry if it is due at `now`
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, K)> {
        match self.peek() {
            Some((at, _)) if at <= now => self.pop(),
            _ => None,
        }
    }

    /// Entries held, stale ones included
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_and_expiry() {
        let t0 = Instant::now();
        let mut t = Timers::<3>::default();
        assert_eq!(t.next(), None);
        t.set(0, t0 + Duration::from_secs(5));
        t.set_earliest(1, t0 + Duration::from_secs(2));
        t.set_earliest(1, t0 + Duration::from_secs(3));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(2)));
        assert!(!t.expire(1, t0 + Duration::from_secs(1)));
        assert!(t.expire(1, t0 + Duration::from_secs(2)));
        assert!(!t.expire(1, t0 + Duration::from_secs(9)));
        t.stop(0);
        assert_eq!(t.next(), None);
    }

    #[test]
    fn queue_pops_due_entries_in_order_and_drops_stale_ones() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut q = Queue::default();
        q.push(s(3), 1u32, 2, |_, _| true);
        q.push(s(1), 2, 2, |_, _| true);
        q.push(s(1), 0, 3, |_, _| true);
        assert_eq!(q.next(), Some(s(1)));
        assert_eq!(q.pop_due(s(0)), None);
        assert_eq!(q.pop_due(s(1)), Some((s(1), 0)));
        assert_eq!(q.pop_due(s(1)), Some((s(1), 2)));
        assert_eq!(q.pop_due(s(2)), None);
        assert_eq!(q.pop_due(s(9)), Some((s(3), 1)));
        // one live entry rescheduled over and over: the stale ones never pile up
        for i in 0..10_000u64 {
            q.push(s(i), 7, 1, |at, _| at == s(i));
        }
        assert!(q.len() <= 2 + STALE_SLACK + 1, "{}", q.len());
        assert_eq!(q.next(), Some(s(9_999 - (q.len() as u64 - 1))));
        // nor does one rescheduled at the same instant over and over (a clock read once per
        // batch of packets)
        let mut q = Queue::default();
        for _ in 0..10_000 {
            q.push(s(5), 7u32, 1, |at, k| (at, k) == (s(5), 7));
        }
        assert!(q.len() <= 2 + STALE_SLACK + 1, "{}", q.len());
    }

    #[test]
    fn skipping_stale_entries_stops_at_the_first_live_one() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut q = Queue::default();
        for k in 0..4u32 {
            q.push(s(u64::from(k)), k, 4, |_, _| true);
        }
        // 0 and 2 were answered early; 1 still holds, so 2 stays behind it
        let live = |_, k: u32| k % 2 == 1;
        q.skip_stale(live);
        assert_eq!(q.next(), Some(s(1)));
        assert_eq!(q.len(), 3);
        q.pop();
        q.skip_stale(live);
        assert_eq!(q.peek(), Some((s(3), 3)));
        q.skip_stale(|_, _| false);
        assert_eq!(q.next(), None);
    }
}
