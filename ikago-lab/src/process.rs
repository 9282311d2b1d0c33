//! Long-running processes in a namespace, with their output kept and a kill on drop

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::cmd;
use crate::{LabError, Netns, Result};

/// Longest pause between two polls for an exit
const EXIT_POLL: Duration = Duration::from_millis(20);
/// Lines of a process's output shown when a test panics with it running
const TAIL_ON_PANIC: usize = 40;
/// How long a killed process gets to be reaped before the guard gives up on it
const REAP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the output readers get to see the pipes close once the process is gone
const READERS_TIMEOUT: Duration = Duration::from_secs(5);

/// A process started in a namespace, killed with its process group (SIGKILL) when the guard drops
///
/// It leads a process group of its own, so the children it forks (socat's per-peer children,
/// the runners' `iptables` calls) die with it. Its standard output and error are read line by
/// line into memory (and echoed to stderr when `IKAGO_LAB_ECHO` is set), so tests can wait for
/// a readiness line such as the runner's "Connected to server".
///
/// Every wait is bounded: a process stuck in the kernel is reported and left behind rather than
/// hanging the test run.
pub struct Daemon {
    name: String,
    child: Child,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
    /// Whether the exit status was collected: from then on the pid may belong to another process
    reaped: bool,
}

/// Lines printed so far by a process, both streams interleaved
#[derive(Default)]
struct Output {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Daemon {
    /// Starts `program args` in `ns` (via `ip netns exec`, which execs it: the pid is its own)
    pub fn spawn(ns: &Netns, name: &str, program: &str, args: &[&str]) -> Result<Self> {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns.name(), program])
            .args(args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command.spawn().map_err(|source| LabError::Spawn {
            cmd: cmd::line(program, args),
            source,
        })?;
        let output = Arc::new(Output::default());
        let stdout = child.stdout.take().expect("stdout was requested as a pipe");
        let stderr = child.stderr.take().expect("stderr was requested as a pipe");
        let readers = vec![
            collect(name, Box::new(stdout), Arc::clone(&output)),
            collect(name, Box::new(stderr), Arc::clone(&output)),
        ];
        Ok(Self {
            name: name.to_owned(),
            child,
            output,
            readers,
            reaped: false,
        })
    }

    /// The process id
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the process has used so far, user and system, all its threads (`/proc/PID/stat`
    /// fields 14 and 15, in clock ticks); `None` once it is gone or reaped
    pub fn cpu_time(&self) -> Option<Duration> {
        if self.reaped {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // The command name (field 2) may hold spaces: count fields after its closing ')'
        let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
        let utime: u64 = fields.nth(11)?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
        let ticks = u64::try_from(ticks).ok().filter(|&t| t > 0)?;
        Some(Duration::from_secs_f64(
            (utime + stime) as f64 / ticks as f64,
        ))
    }

    /// How many lines the process has printed so far
    pub fn line_count(&self) -> usize {
        self.output
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Every line printed so far
    pub fn lines(&self) -> Vec<String> {
        self.output
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits until a line from index `since` on contains `needle`; returns that line
    pub fn wait_for_line(&self, needle: &str, since: usize, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(line) = lines.iter().skip(since).find(|l| l.contains(needle)) {
                return Ok(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LabError::Timeout {
                    what: format!("{} to print {needle:?}", self.name),
                    after: timeout,
                });
            }
            lines = self
                .output
                .grew
                .wait_timeout(lines, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Sends `signal` to the process
    pub fn signal(&self, signal: Signal) -> Result<()> {
        kill(self.nix_pid(), signal)
            .map_err(|e| LabError::io(format!("signal {signal} to {}", self.name))(e.into()))
    }

    /// Waits for the process to exit, at most `timeout`
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let status = reap(&mut self.child, timeout)
            .map_err(LabError::io(format!("wait for {}", self.name)))?
            .ok_or_else(|| LabError::Timeout {
                what: format!("{} to exit", self.name),
                after: timeout,
            })?;
        self.reaped = true;
        self.join_readers();
        Ok(status)
    }

    fn nix_pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("Linux pids fit in i32"))
    }

    /// Waits, at most [`READERS_TIMEOUT`], for the output readers to see both pipes close
    fn join_readers(&mut self) {
        if !join_within(std::mem::take(&mut self.readers), READERS_TIMEOUT) {
            eprintln!(
                "ikago-lab: the output of {} stayed open after it exited",
                self.name
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.reaped {
            // The group created at spawn, led by our own child, which is running or a zombie
            // (so its pid is still ours): the process and the children it forked
            let _ = killpg(self.nix_pid(), Signal::SIGKILL);
            match reap(&mut self.child, REAP_TIMEOUT) {
                Ok(Some(_)) => self.join_readers(),
                _ => eprintln!(
                    "ikago-lab: {} (pid {}) did not exit {REAP_TIMEOUT:?} after SIGKILL; left behind ({})",
                    self.name,
                    self.child.id(),
                    kernel_wait(self.child.id())
                ),
            }
        }
        if std::thread::panicking() {
            let lines = self.lines();
            let from = lines.len().saturating_sub(TAIL_ON_PANIC);
            eprintln!(
                "---- last output of {} (pid {}) ----",
                self.name,
                self.child.id()
            );
            for line in &lines[from..] {
                eprintln!("{}: {line}", self.name);
            }
        }
    }
}

/// Reads `pipe` line by line into `output` until it closes
fn collect(name: &str, pipe: Box<dyn Read + Send>, output: Arc<Output>) -> JoinHandle<()> {
    let echo = std::env::var_os("IKAGO_LAB_ECHO").map(|_| name.to_owned());
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(name) = &echo {
                eprintln!("{name}: {line}");
            }
            output
                .lines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(line);
            output.grew.notify_all();
        }
    })
}

/// Waits at most `timeout` for `child` to exit; `None` if it is still running then
pub(crate) fn reap(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    poll_for(timeout, || child.try_wait())
}

/// Joins `threads` if they all finish within `timeout`; otherwise leaves them detached and
/// returns false. Their panics are ignored: they would only lose output.
pub(crate) fn join_within(threads: Vec<JoinHandle<()>>, timeout: Duration) -> bool {
    let finished = poll_for(timeout, || {
        Ok(threads.iter().all(JoinHandle::is_finished).then_some(()))
    });
    if !matches!(finished, Ok(Some(()))) {
        return false;
    }
    for thread in threads {
        let _ = thread.join();
    }
    true
}

/// Calls `done` until it returns a value, at most `timeout`; `None` if it never did
///
/// Polls from 1 ms up to [`EXIT_POLL`] apart, so that the many short commands of a lab build are
/// noticed as soon as they end.
fn poll_for<T>(
    timeout: Duration,
    mut done: impl FnMut() -> std::io::Result<Option<T>>,
) -> std::io::Result<Option<T>> {
    let deadline = Instant::now() + timeout;
    let mut poll = Duration::from_millis(1);
    loop {
        if let Some(value) = done()? {
            return Ok(Some(value));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(poll);
        poll = (poll * 2).min(EXIT_POLL);
    }
}

/// Where in the kernel process `pid` waits (`/proc/PID/wchan` and its state), for reports
pub(crate) fn kernel_wait(pid: u32) -> String {
    let read = |file: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_else(|_| "?".into())
    };
    let stat = read("stat");
    // The state follows the parenthesised command name
    let state = stat
        .rfind(')')
        .and_then(|at| stat[at + 1..].split_whitespace().next())
        .unwrap_or("?");
    format!("state {state}, waiting in {}", read("wchan").trim())
}

/// How long a runner gets to exit after SIGTERM
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops a process the polite way: SIGTERM, then waits for its exit status
pub fn stop(daemon: &mut Daemon) -> Result<ExitStatus> {
    daemon.signal(Signal::SIGTERM)?;
    daemon.wait_exit(STOP_TIMEOUT)
}
