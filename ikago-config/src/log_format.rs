//! `--log-format`: how the runners write their log lines

use clap::ValueEnum;
use serde::Deserialize;
use std::fmt;

/// The layout of log lines (`--log-format`, key `log-format`)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// The message alone, as the original wrote it (a timestamp before it in the `--log` file)
    #[default]
    Text,
    /// One JSON object per line, for log collectors: `time`, `level`, `message`, and the fields
    /// of the event the line is about where there is one
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}
