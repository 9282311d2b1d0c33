//! `ikago-replay`: replays pcapng captures through the IkaGo-rs client or server (see `--help`)

use clap::Parser;
use ikago_replay::cli::{Cli, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(outcome) => {
            println!("{}", outcome.summary);
            match (&outcome.diff, outcome.expected) {
                (Some(diff), _) => print!("{diff}"),
                (None, Some(n)) => println!("output matches the expected capture ({n} frames)"),
                (None, None) => {}
            }
            ExitCode::from(outcome.exit_code())
        }
        Err(e) => {
            eprintln!("ikago-replay: {e}");
            ExitCode::from(2)
        }
    }
}
