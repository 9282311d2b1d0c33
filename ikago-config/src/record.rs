//! The flight recorder's options of the live runners: `--record FILE` and `--record-max-mb N`

use crate::error::Error;
use crate::file::FileLayer;
use clap::Args;
use serde::Deserialize;
use std::path::PathBuf;

/// The size bound of a recording unless `--record-max-mb` says otherwise, in megabytes
pub const DEFAULT_RECORD_MAX_MB: u64 = 100;
/// Bytes in one megabyte of `--record-max-mb`
const MB: u64 = 1_000_000;

/// Options of the flight recorder: on a runner's command line (before or after the role) and in
/// its config file (keys `record` and `record-max-mb`)
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct RecordArgs {
    /// Record every input of the machine and every frame it sends, with its scenario (never the
    /// password), to this pcapng file; `ikago-replay FILE` replays it
    #[arg(long, value_name = "FILE", global = true)]
    pub record: Option<PathBuf>,

    /// Stop recording (the run goes on) when the file reaches this many megabytes (10^6 bytes)
    /// [default: 100]
    #[arg(long, value_name = "N", global = true)]
    pub record_max_mb: Option<u64>,
}

/// The flight recorder's validated settings
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSettings {
    /// The file
    pub path: PathBuf,
    /// Recording stops once the file holds this many bytes
    pub max_bytes: u64,
}

impl FileLayer for RecordArgs {
    fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl RecordArgs {
    /// Each value from `self`, else from `other`
    pub fn or(self, other: Self) -> Self {
        Self {
            record: self.record.or(other.record),
            record_max_mb: self.record_max_mb.or(other.record_max_mb),
        }
    }

    /// Validates the options: `None` when recording is off (no file, or an empty name)
    pub fn resolve(&self) -> Result<Option<RecordSettings>, Error> {
        let mb = self.record_max_mb.unwrap_or(DEFAULT_RECORD_MAX_MB);
        let max_bytes = mb
            .checked_mul(MB)
            .filter(|_| mb > 0)
            .ok_or(Error::RecordMaxMb(mb))?;
        Ok(self
            .record
            .clone()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|path| RecordSettings { path, max_bytes }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::parse_str;

    #[test]
    fn defaults_bounds_and_file_keys() {
        assert_eq!(RecordArgs::default().resolve().unwrap(), None);
        let on = RecordArgs {
            record: Some("run.pcapng".into()),
            record_max_mb: None,
        };
        assert_eq!(
            on.resolve().unwrap(),
            Some(RecordSettings {
                path: "run.pcapng".into(),
                max_bytes: 100_000_000
            })
        );
        for bad in [0, u64::MAX] {
            let e = RecordArgs {
                record_max_mb: Some(bad),
                ..on.clone()
            }
            .resolve()
            .unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("record-max-mb {bad} out of range (1 to 18446744073709)")
            );
        }
        let file: RecordArgs = parse_str(
            r#"{"record": "f.pcapng", "record-max-mb": 5, "port": 1}"#,
            |_| None,
        )
        .unwrap();
        let cli = RecordArgs {
            record_max_mb: Some(7),
            record: None,
        };
        assert_eq!(
            cli.or(file).resolve().unwrap(),
            Some(RecordSettings {
                path: "f.pcapng".into(),
                max_bytes: 7_000_000
            })
        );
    }
}
