//! A per-second budget for answers an attacker could otherwise draw without bound

use std::time::{Duration, Instant};

/// Allows at most `limit` events in each one-second window
#[derive(Debug, Clone, Copy)]
pub(crate) struct PerSecond {
    start: Instant,
    used: u32,
    limit: u32,
}

impl PerSecond {
    /// A budget of `limit` events a second, starting at `now`
    pub(crate) fn new(limit: u32, now: Instant) -> Self {
        Self {
            start: now,
            used: 0,
            limit,
        }
    }

    /// Takes one event from the budget; false when this second's budget is spent
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.start) >= Duration::from_secs(1) {
            self.start = now;
            self.used = 0;
        }
        if self.used >= self.limit {
            return false;
        }
        self.used += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refills_each_second() {
        let t0 = Instant::now();
        let mut b = PerSecond::new(2, t0);
        assert!(b.allow(t0) && b.allow(t0));
        assert!(!b.allow(t0 + Duration::from_millis(999)));
        assert!(b.allow(t0 + Duration::from_secs(1)));
    }
}
