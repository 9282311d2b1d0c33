//! The lab's error type

use std::io;
use std::time::Duration;

/// What went wrong while building, driving or checking the lab
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command ran and exited unsuccessfully
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line
        cmd: String,
        /// Its exit status
        status: String,
        /// What it printed on standard error
        stderr: String,
    },
    /// A command could not be started
    #[error("cannot run `{cmd}`: {source}")]
    Spawn {
        /// The command line
        cmd: String,
        /// Why
        source: io::Error,
    },
    /// A socket or file operation failed
    #[error("{what}: {source}")]
    Io {
        /// What was being done
        what: String,
        /// Why it failed
        source: io::Error,
    },
    /// Something expected did not happen in time
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited
        what: String,
        /// How long we waited
        after: Duration,
    },
    /// A measurement or tool output did not have the expected shape
    #[error("{0}")]
    Check(String),
}

impl LabError {
    /// Wraps an I/O error with a description of the operation
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    /// Like [`Self::io`], but a socket timeout becomes [`Self::Timeout`] after `after`
    pub(crate) fn recv(what: impl Into<String>, after: Duration) -> impl FnOnce(io::Error) -> Self {
        let what = what.into();
        move |source| match source.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Self::Timeout { what, after },
            _ => Self::Io { what, source },
        }
    }
}

/// The lab's result type
pub type Result<T, E = LabError> = std::result::Result<T, E>;
