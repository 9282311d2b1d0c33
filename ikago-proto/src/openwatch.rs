//! Noticing a wrong password or method: tunnel traffic that keeps flowing while none of it opens
//!
//! Neither end can tell a wrong key from tampering by one payload. What gives it away is a run:
//! for a few seconds, several payloads and not one that opens (or, on the client, data sent and
//! nothing coming back). A [`Watch`] counts such a run and says when to report it.

use std::time::{Duration, Instant};

/// A run of failures worth reporting: at least `min` events over at least `after`
#[derive(Debug, Clone, Copy)]
pub(crate) struct Threshold {
    /// Failures in the run
    pub(crate) min: u64,
    /// Time from the first failure of the run
    pub(crate) after: Duration,
    /// Interval between two reports of one run; `None`: once until [`Watch::rearm`]
    pub(crate) repeat: Option<Duration>,
}

/// Server: a client's payloads fail to open (reported at most once a minute per client)
pub(crate) const CLIENT_PAYLOADS: Threshold = Threshold {
    min: 3,
    after: Duration::from_secs(3),
    repeat: Some(Duration::from_secs(60)),
};
/// Client: the server's payloads fail to open
pub(crate) const SERVER_PAYLOADS: Threshold = Threshold {
    min: 3,
    after: Duration::from_secs(3),
    repeat: None,
};
/// Client: data sent to the server and nothing at all comes back (a server that cannot open
/// what we send never answers)
pub(crate) const SERVER_SILENT: Threshold = Threshold {
    min: 8,
    after: Duration::from_secs(5),
    repeat: None,
};

/// One peer's current run of failures
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watch {
    threshold: Threshold,
    failures: u64,
    since: Option<Instant>,
    reported: Option<Instant>,
    flagged: bool,
}

impl Watch {
    /// A watch with no failures
    pub(crate) fn new(threshold: Threshold) -> Self {
        Self {
            threshold,
            failures: 0,
            since: None,
            reported: None,
            flagged: false,
        }
    }

    /// Something opened: the run ends
    pub(crate) fn success(&mut self) {
        self.failures = 0;
        self.since = None;
        self.flagged = false;
    }

    /// Counts a failure at `now`; the run's length when it is due to be reported
    pub(crate) fn failure(&mut self, now: Instant) -> Option<u64> {
        self.failures += 1;
        let since = *self.since.get_or_insert(now);
        if self.failures < self.threshold.min
            || now.saturating_duration_since(since) < self.threshold.after
        {
            return None;
        }
        self.flagged = true;
        let due = match (self.reported, self.threshold.repeat) {
            (None, _) => true,
            (Some(t), Some(every)) => now.saturating_duration_since(t) >= every,
            (Some(_), None) => false,
        };
        if due {
            self.reported = Some(now);
        }
        due.then_some(self.failures)
    }

    /// A new connection: a run may be reported again
    pub(crate) fn rearm(&mut self) {
        *self = Self::new(self.threshold);
    }

    /// Whether the current run has passed the threshold
    pub(crate) fn flagged(&self) -> bool {
        self.flagged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_a_long_run_once_then_after_the_repeat_interval() {
        let t0 = Instant::now();
        let mut w = Watch::new(CLIENT_PAYLOADS);
        let s = Duration::from_secs;
        assert_eq!(w.failure(t0), None);
        assert_eq!(w.failure(t0 + s(1)), None);
        assert_eq!(w.failure(t0 + s(2)), None, "three, but not yet 3 s");
        assert_eq!(w.failure(t0 + s(3)), Some(4));
        assert!(w.flagged());
        assert_eq!(w.failure(t0 + s(4)), None, "reported already");
        assert_eq!(w.failure(t0 + s(63)), Some(6));
        w.success();
        assert!(!w.flagged());
    }

    #[test]
    fn a_success_ends_the_run() {
        let t0 = Instant::now();
        let mut w = Watch::new(SERVER_PAYLOADS);
        for i in 0..10 {
            w.failure(t0 + Duration::from_millis(100 * i));
            w.success();
        }
        assert!(!w.flagged());
        assert_eq!(w.failure(t0 + Duration::from_secs(10)), None);
    }

    #[test]
    fn once_per_connection_without_a_repeat() {
        let t0 = Instant::now();
        let mut w = Watch::new(SERVER_SILENT);
        let at = |i: u64| t0 + Duration::from_secs(i);
        let reports = (0..20).filter(|&i| w.failure(at(i)).is_some()).count();
        assert_eq!(reports, 1);
        w.rearm();
        let reports = (0..20).filter(|&i| w.failure(at(30 + i)).is_some()).count();
        assert_eq!(reports, 1);
    }
}
