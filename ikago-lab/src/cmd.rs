//! Running the network tools (`ip`, `iptables`, `tc`, ...) and turning failures into errors

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::process::{join_within, kernel_wait, reap};
use crate::{LabError, Result};

/// How long one network tool may run: they all finish in milliseconds unless something is stuck
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long its output pipes may stay open after it exited
const PIPES_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `program args`, returning its standard output; a non-zero exit is an error
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    checked(program, args, attempt(program, args, None)?)
}

/// Runs `program args` with `input` on standard input; a non-zero exit is an error
pub(crate) fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<String> {
    checked(program, args, attempt(program, args, Some(input))?)
}

/// Runs `program args` and returns whatever it did, success or not, within [`COMMAND_TIMEOUT`]
pub(crate) fn attempt(program: &str, args: &[&str], input: Option<&str>) -> Result<Output> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let spawn_error = |source| LabError::Spawn {
        cmd: line(program, args),
        source,
    };
    let mut child = command.spawn().map_err(spawn_error)?;
    // Read before writing: a tool that answers while it reads cannot block on a full pipe
    let (stdout, out_reader) = drain(child.stdout.take());
    let (stderr, err_reader) = drain(child.stderr.take());
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin was requested as a pipe");
        stdin.write_all(input.as_bytes()).map_err(spawn_error)?;
    }
    let cmd = line(program, args);
    let Some(status) = reap(&mut child, COMMAND_TIMEOUT).map_err(spawn_error)? else {
        let stuck = kernel_wait(child.id());
        // Our own child, not reaped yet, so the pid is still ours
        let _ = child.kill();
        let _ = reap(&mut child, PIPES_TIMEOUT);
        return Err(LabError::Timeout {
            what: format!("`{cmd}` to finish ({stuck})"),
            after: COMMAND_TIMEOUT,
        });
    };
    if !join_within(vec![out_reader, err_reader], PIPES_TIMEOUT) {
        return Err(LabError::Timeout {
            what: format!("the output of `{cmd}` to close"),
            after: PIPES_TIMEOUT,
        });
    }
    let take = |buf: Arc<Mutex<Vec<u8>>>| {
        std::mem::take(&mut *buf.lock().unwrap_or_else(|e| e.into_inner()))
    };
    Ok(Output {
        status,
        stdout: take(stdout),
        stderr: take(stderr),
    })
}

/// Reads `pipe` to its end on a thread of its own, into the returned buffer
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&buf);
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error ends the output early; the exit status still tells the outcome
            let _ = pipe.read_to_end(&mut bytes);
        }
        *into.lock().unwrap_or_else(|e| e.into_inner()) = bytes;
    });
    (buf, reader)
}

/// The command line as one string, for messages
pub(crate) fn line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

fn checked(program: &str, args: &[&str], output: Output) -> Result<String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(LabError::Command {
            cmd: line(program, args),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
