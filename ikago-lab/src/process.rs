//! Long-running processes in a namespace, with their output kept and a kill on drop

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd;
use crate::{LabError, Netns, Result};

/// How often exit is polled while waiting for a process to end
const EXIT_POLL: Duration = Duration::from_millis(20);
/// Lines of a process's output shown when a test panics with it running
const TAIL_ON_PANIC: usize = 40;

/// A process started in a namespace, killed (SIGKILL, by its pid) when the guard drops
///
/// Its standard output and error are read line by line into memory (and echoed to stderr when
/// `IKAGO_LAB_ECHO` is set), so tests can wait for a readiness line such as the runner's
/// "Connected to server".
pub struct Daemon {
    name: String,
    child: Child,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
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
            .stderr(Stdio::piped());
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
        })
    }

    /// The process id
    pub fn pid(&self) -> u32 {
        self.child.id()
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
        let deadline = Instant::now() + timeout;
        loop {
            let polled = self.child.try_wait();
            if let Some(status) = polled.map_err(LabError::io(format!("wait for {}", self.name)))? {
                self.join_readers();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(LabError::Timeout {
                    what: format!("{} to exit", self.name),
                    after: timeout,
                });
            }
            std::thread::sleep(EXIT_POLL);
        }
    }

    /// Whether the process is still running
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn nix_pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("Linux pids fit in i32"))
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            // A reader ends when the pipe closes; its panics would only lose log lines
            let _ = reader.join();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_running() {
            // Our own child, by pid; it may exit between the check and the kill
            let _ = self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
        self.join_readers();
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

/// How long a runner gets to exit after SIGTERM
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops a process the polite way: SIGTERM, then waits for its exit status
pub fn stop(daemon: &mut Daemon) -> Result<ExitStatus> {
    daemon.signal(Signal::SIGTERM)?;
    daemon.wait_exit(STOP_TIMEOUT)
}
