//! Running the network tools (`ip`, `iptables`, `tc`, ...) and turning failures into errors

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::{LabError, Result};

/// Runs `program args`, returning its standard output; a non-zero exit is an error
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String> {
    checked(program, args, attempt(program, args, None)?)
}

/// Runs `program args` with `input` on standard input; a non-zero exit is an error
pub(crate) fn run_with_input(program: &str, args: &[&str], input: &str) -> Result<String> {
    checked(program, args, attempt(program, args, Some(input))?)
}

/// Runs `program args` and returns whatever it did, success or not
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
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin was requested as a pipe");
        stdin.write_all(input.as_bytes()).map_err(spawn_error)?;
    }
    child.wait_with_output().map_err(spawn_error)
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
