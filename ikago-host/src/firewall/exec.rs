//! Running the system tools (`iptables`, `nft`, `ethtool`, `ip`) with their errors as one line

use std::io::Write;
use std::process::{Command, Stdio};

/// A system tool that failed or could not be started
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{command}` failed: {reason}")]
pub struct ExecError {
    /// The command line
    pub command: String,
    /// Its first line of stderr, or why it did not start
    pub reason: String,
}

/// Runs `program args...`, feeding `stdin` when given; returns its stdout
pub(crate) fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, ExecError> {
    let command = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let fail = |reason: String| ExecError {
        command: command.clone(),
        reason,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("LC_ALL", "C")
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return Err(fail(format!("{} {}", out.status, line.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` runs (`program --version` succeeds)
pub(crate) fn available(program: &str) -> bool {
    run(program, &["--version"], None).is_ok()
}
