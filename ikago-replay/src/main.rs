//! `ikago-replay`: replays pcapng captures through the IkaGo-rs client or server (see `--help`)

use clap::Parser;
use ikago_replay::cli::{Cli, run};
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(outcome) => {
            let mut report = format!("{}\n", outcome.summary);
            match (&outcome.diff, outcome.expected) {
                (Some(diff), _) => report.push_str(diff),
                (None, Some(n)) => report.push_str(&format!(
                    "output matches the expected capture ({n} frames)\n"
                )),
                (None, None) => {}
            }
            // a reader that went away (`| head`) is not a failure of the replay
            let _ = std::io::stdout().lock().write_all(report.as_bytes());
            ExitCode::from(outcome.exit_code())
        }
        Err(e) => {
            eprintln!("ikago-replay: {e}");
            ExitCode::from(2)
        }
    }
}
