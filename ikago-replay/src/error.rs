//! The errors of a replay: each one lower-case line, exit code 2

use crate::capture::CaptureError;
use crate::drive::DriveError;
use crate::scenario::ScenarioError;
use std::path::PathBuf;

/// Why a replay could not run
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that cannot be read
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file
        path: PathBuf,
        /// Why
        source: std::io::Error,
    },
    /// A capture that is truncated, garbled or unsupported
    #[error("capture {path}: {source}")]
    Capture {
        /// The file
        path: PathBuf,
        /// What is wrong with it
        source: CaptureError,
    },
    /// A bad scenario file
    #[error("scenario {path}: {source}")]
    Scenario {
        /// The file
        path: PathBuf,
        /// What is wrong with it
        source: ScenarioError,
    },
    /// No scenario given and none beside the first capture
    #[error("no scenario: give --scenario FILE or put scenario.json beside the first capture")]
    NoScenario,
    /// No role subcommand, and neither the scenario nor the captures tell the role
    #[error(
        "cannot tell whether the captures are a client's or a server's (scenario {0} names no role, and its hosts do not tell by the capture's interfaces): run `ikago-replay client ...` or `ikago-replay server ...`"
    )]
    NoRole(PathBuf),
    /// A recording given with other captures
    #[error("{0} is a recording: it is replayed alone")]
    RecordingAlone(PathBuf),
    /// `--scenario` with a recording
    #[error("{0} is a recording: it carries its scenario (--scenario is for other captures)")]
    RecordingScenario(PathBuf),
    /// An encrypted recording and no password
    #[error(
        "{path} records a {method} session and recordings never hold the password: give it with --password or IKAGO_PASSWORD"
    )]
    RecordingPassword {
        /// The recording
        path: PathBuf,
        /// Its method
        method: ikago_proto::Method,
    },
    /// A bad option, in the command line, the `-c` file or the scenario
    #[error(transparent)]
    Options(#[from] ikago_config::Error),
    /// The replay itself failed
    #[error(transparent)]
    Drive(#[from] DriveError),
    /// The output cannot be written
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file
        path: PathBuf,
        /// Why
        source: std::io::Error,
    },
}
