//! Command-line options and JSON config files of IkaGo-rs, shared by every runner
//!
//! Every binary takes the same options, named as in the Go original (reference §9) with two
//! dashes (`--listen-devices`, `--kcp-sndwnd`, ...) while `-r -s -p -c -v` stay short. A JSON
//! config file given with `-c` uses the original's keys unchanged (`listen-devices`,
//! `kcp-tuning` {`mtu`, `sndwnd`, ...}); `#` comment lines are dropped, `$VAR` and `${VAR}` are
//! expanded, and a key that no option has is an error naming it (the original ignored it, so a
//! typo went unnoticed). Some options are ours alone: `--monitor-address` (key
//! `monitor-address`), where the monitor of `--monitor PORT` listens; [`DEFAULT_MONITOR_ADDRESS`]
//! (127.0.0.1) unless given, where the original listened on every interface; `--log-format`
//! ([`LogFormat`], key `log-format`); and the flight recorder's `--record FILE` and
//! `--record-max-mb N` ([`RecordArgs`], keys `record` and `record-max-mb`), which the live
//! runners take beside the role's options; and the server's `--threads N` (key `threads`,
//! [`ServerSettings::engines`]), its engines.
//!
//! The flow is: parse [`ClientArgs`] or [`ServerArgs`] with clap, [`ClientArgs::load`] the config
//! file (command-line values win over the file, the file over the defaults),
//! [`ClientSettings::resolve`] them into validated [`ClientSettings`], then build the core's [`ikago_proto::ClientConfig`] from the
//! devices the runner discovered with [`ClientSettings::client_config`]. Every mistake is one
//! lower-case [`Error`] line. [`ClientSettings::machine_keys`] goes back: the config-file keys that
//! give the same machine, without the password, which a recording's scenario holds. On a reload,
//! [`ClientSettings::changes`] says which keys changed and whether a running machine can take them
//! ([`Changes`]).

#![forbid(unsafe_code)]

mod args;
mod changes;
mod error;
mod file;
mod kcp;
mod keys;
mod list;
mod log_format;
mod record;
mod settings;

pub use args::{ClientArgs, CommonArgs, KcpArgs, RoleCommand, ServerArgs};
pub use changes::Changes;
pub use error::Error;
pub use file::{FileLayer, load_file, parse_str, preprocess};
pub use kcp::tuning_from_args;
pub use log_format::LogFormat;
pub use record::{DEFAULT_RECORD_MAX_MB, RecordArgs, RecordSettings};
pub use settings::{
    ClientSettings, CommonSettings, DEFAULT_CAPTURE_BUFFER_MB, DEFAULT_MONITOR_ADDRESS,
    MAX_THREADS, QdiscBypass, ServerSettings, fastest_record_method,
};
