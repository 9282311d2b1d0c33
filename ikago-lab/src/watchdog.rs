//! A deadline for each lab: a stuck test becomes a report and a failure, never a hung run
//!
//! Every wait in the lab is bounded on its own; the watchdog is the backstop for whatever is not
//! (a probe stuck in the kernel, a runner that ignores SIGKILL while exiting). When a lab
//! outlives [`LAB_DEADLINE`], it prints where each of the lab's processes and each thread of the
//! test process waits, then kills the lab's processes, which unblocks any wait on them. If the
//! lab is still not torn down [`GRACE`] later, the test process aborts with that report.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::netns::{kill_all_in, namespaces_with_prefix, pids_in};
use crate::process::kernel_wait;

/// The longest a lab may live: the slowest lab test takes about a minute
pub(crate) const LAB_DEADLINE: Duration = Duration::from_secs(600);
/// How long the lab gets to finish once its processes were killed
const GRACE: Duration = Duration::from_secs(60);

/// Armed for one lab from its build until it drops
pub(crate) struct Watchdog {
    disarm: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching the lab whose namespaces are named `<lab_id>-<role>`
    pub(crate) fn arm(lab_id: &str, deadline: Duration) -> Self {
        let (disarm, armed) = mpsc::channel::<()>();
        let lab_id = lab_id.to_owned();
        let thread = std::thread::spawn(move || {
            if armed.recv_timeout(deadline) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            eprintln!("ikago-lab: lab {lab_id} still running after {deadline:?}");
            report(&lab_id);
            eprintln!("ikago-lab: killing the processes of lab {lab_id}");
            for ns in namespaces_with_prefix(&format!("{lab_id}-")) {
                kill_all_in(&ns);
            }
            if armed.recv_timeout(GRACE) == Err(RecvTimeoutError::Timeout) {
                eprintln!("ikago-lab: lab {lab_id} still stuck {GRACE:?} later; aborting");
                report(&lab_id);
                std::process::abort();
            }
        });
        Self {
            disarm: Some(disarm),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Dropping the sender disconnects the channel, which disarms the thread
        drop(self.disarm.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Prints where each process of the lab and each thread of this process waits
fn report(lab_id: &str) {
    for ns in namespaces_with_prefix(&format!("{lab_id}-")) {
        for pid in pids_in(&ns) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            eprintln!(
                "ikago-lab:   {ns}: pid {pid} {}: {}",
                comm.trim(),
                kernel_wait(pid)
            );
        }
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let read = |file: &str| {
            std::fs::read_to_string(task.path().join(file)).unwrap_or_else(|_| "?".into())
        };
        eprintln!(
            "ikago-lab:   test thread {} {}: waiting in {}",
            task.file_name().to_string_lossy(),
            read("comm").trim(),
            read("wchan").trim()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns::{Netns, new_lab_id};
    use crate::process::Daemon;

    #[test]
    fn a_lab_past_its_deadline_has_its_processes_killed() {
        if !crate::require_root() {
            return;
        }
        let id = new_lab_id();
        let ns = Netns::create(&id, "stuck", false).expect("namespace");
        let mut stuck = Daemon::spawn(&ns, "stuck", "sleep", &["600"]).expect("sleep starts");
        let _watchdog = Watchdog::arm(&id, Duration::from_millis(300));
        let status = stuck
            .wait_exit(Duration::from_secs(30))
            .expect("the watchdog ends the wait");
        assert!(!status.success(), "killed, not exited: {status}");
    }
}
