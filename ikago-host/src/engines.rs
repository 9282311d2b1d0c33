//! A server's engines (`--threads N`) on threads of their own: run together, stopped together,
//! counted as one
//!
//! Each engine is the runner's whole loop over a [`Session`] of its own (its machine, its
//! capture and injection handles, its signal channel), so nothing is handed between threads on
//! the packet path. The engines share only what the process has once: the monitor's board
//! ([`crate::monitor`]), the log and the service manager's status. When one engine ends (a
//! signal, a failure, a panic) it ends the others ([`StopAll`]), so that a server never runs on
//! with part of its clients unserved. [`run`] returns when every engine has returned, with their
//! counters added up for the exit summary; the firewall is removed after that.

use crate::app::{Outcome, Session};
use crate::reload::Reread;
use crate::shutdown::StopAll;

/// Runs `run` over each session, the only one on this thread, several on scoped threads named
/// `engine K`; returns the sum of their outcomes ([`sum`])
pub(crate) fn run<F>(sessions: Vec<Session>, stop_all: &StopAll<Reread>, run: &F) -> Outcome
where
    F: Fn(Session) -> Outcome + Sync,
{
    if sessions.len() == 1 {
        let session = sessions.into_iter().next().expect("one session");
        return run(session);
    }
    std::thread::scope(|scope| {
        let threads: Vec<_> = sessions
            .into_iter()
            .enumerate()
            .map(|(k, session)| {
                std::thread::Builder::new()
                    .name(format!("engine {k}"))
                    .spawn_scoped(scope, move || {
                        let _others = StopOnExit(stop_all);
                        run(session)
                    })
            })
            .collect();
        let mut ended = Vec::with_capacity(threads.len());
        for (k, thread) in threads.into_iter().enumerate() {
            ended.push(match thread {
                Ok(t) => t
                    .join()
                    .map_err(|_| format!("engine {k} stopped on an internal error")),
                Err(e) => {
                    stop_all.stop();
                    Err(format!("cannot start engine {k}: {e}"))
                }
            });
        }
        sum(ended)
    })
}

/// Ends every engine when dropped: when its engine returns or unwinds
struct StopOnExit<'a>(&'a StopAll<Reread>);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The engines' outcomes as one: counters added up ([`ikago_proto::Stats::absorb`]), device
/// counters added up device by device, and the first failure, if any (an engine that did not
/// return is a failure of its own)
pub(crate) fn sum(outcomes: Vec<Result<Outcome, String>>) -> Outcome {
    let mut total: Option<Outcome> = None;
    let mut failure = None;
    for outcome in outcomes {
        let o = match outcome {
            Ok(o) => o,
            Err(e) => {
                failure.get_or_insert(e);
                continue;
            }
        };
        if let Err(e) = &o.result {
            failure.get_or_insert_with(|| e.clone());
        }
        match &mut total {
            None => total = Some(o),
            Some(t) => {
                t.stats.absorb(&o.stats);
                for (mine, theirs) in t.devices.iter_mut().zip(&o.devices) {
                    mine.absorb(theirs);
                }
            }
        }
    }
    let mut total = total.unwrap_or(Outcome {
        stats: Default::default(),
        devices: Vec::new(),
        result: Ok(()),
    });
    total.result = failure.map_or(Ok(()), Err);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikago_monitor::DeviceCounters;
    use ikago_proto::{DropReason, Stats};

    fn outcome(rx: usize, captured: u64, result: Result<(), &str>) -> Result<Outcome, String> {
        let mut stats = Stats::default();
        for _ in 0..rx {
            stats.tunnel_rx.add(100);
        }
        stats.drops.add(DropReason::OtherShard);
        stats.nat_capacity = 10;
        Ok(Outcome {
            stats,
            devices: vec![DeviceCounters {
                device: "wan0".into(),
                captured,
                injected: 1,
                ..DeviceCounters::default()
            }],
            result: result.map_err(str::to_owned),
        })
    }

    #[test]
    fn the_engines_add_up() {
        let total = sum(vec![outcome(2, 5, Ok(())), outcome(3, 6, Ok(()))]);
        assert_eq!(total.stats.tunnel_rx.packets, 5);
        assert_eq!(total.stats.tunnel_rx.bytes, 500);
        assert_eq!(total.stats.drops.get(DropReason::OtherShard), 2);
        assert_eq!(total.stats.nat_capacity, 20);
        assert_eq!(total.devices.len(), 1);
        assert_eq!(
            (total.devices[0].captured, total.devices[0].injected),
            (11, 2)
        );
        assert_eq!(total.result, Ok(()));
    }

    #[test]
    fn the_first_failure_is_the_servers() {
        let total = sum(vec![
            outcome(1, 1, Ok(())),
            outcome(1, 1, Err("capture on wan0 failed")),
            Err("engine 2 stopped on an internal error".into()),
        ]);
        assert_eq!(total.result, Err("capture on wan0 failed".into()));
        assert_eq!(total.stats.tunnel_rx.packets, 2, "what ran is counted");
        let none = sum(vec![Err("cannot start engine 0: no threads".into())]);
        assert_eq!(none.result, Err("cannot start engine 0: no threads".into()));
        assert!(none.devices.is_empty());
    }
}
