//! An enum-indexed timer table: each timer is armed or not; the next deadline is the minimum

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
}
