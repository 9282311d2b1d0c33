//! `ikago-lab`: the lab's demo and benchmark commands (root)
//!
//! ```text
//! ikago-lab demo  [--runner sync|async]     a LAN host's DNS, UDP and ping through the tunnel
//! ikago-lab bench [--runner sync|async]... [--busy-poll MICROS]... [--qdisc-bypass[=BOOL]]...
//!                 [--threads N]... [--latency-only]
//!                                           direct path vs tunnel: UDP throughput, loss, echo
//!                                           and ping round trips and the tunnel's CPU per GB
//!                                           (round trips alone with --latency-only)
//! ikago-lab sweep                           remove namespaces left by killed lab runs
//! ```
//! Runner binaries come from `IKAGO_LAB_BIN_DIR`, else are built into `target/lab`.

use std::process::ExitCode;

use ikago_lab::{Runner, bench, demo, sweep_stale};

fn main() -> ExitCode {
    let args = std::env::args().skip(1).collect::<Vec<_>>();
    let Some((command, rest)) = args.split_first() else {
        return usage();
    };
    let Some(plan) = plan(rest) else {
        return usage();
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("ikago-lab: the lab needs root (network namespaces, links, firewall rules)");
        return ExitCode::from(2);
    }
    let outcome = match command.as_str() {
        "demo" => demo::run(plan.runners[0]),
        "bench" => bench::run(&plan).map(|rows| {
            // Other work on the 2 cores skews every figure, the direct path's too: say how busy
            println!("load average (1 min) after the run: {}", load_average());
            println!("{}", bench::table(&rows));
            bench::verdicts(&rows).iter().for_each(|v| println!("{v}"));
        }),
        "sweep" => sweep_stale().map(|gone| println!("removed {} stale namespaces", gone.len())),
        _ => return usage(),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ikago-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The `--runner` options (both runners when none is given), `--busy-poll MICROS`,
/// `--qdisc-bypass[=BOOL]` and the server's `--threads N`, each an extra row, and
/// `--latency-only`; `None` on a bad option
fn plan(args: &[String]) -> Option<bench::Plan> {
    let mut plan = bench::Plan {
        runners: Vec::new(),
        extra_rows: Vec::new(),
        server_rows: Vec::new(),
        latency_only: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--qdisc-bypass" || arg.starts_with("--qdisc-bypass=") {
            plan.extra_rows.push(vec![arg.clone()]);
            continue;
        }
        if arg == "--latency-only" {
            plan.latency_only = true;
            continue;
        }
        match (arg.as_str(), args.next().map(String::as_str)) {
            ("--runner", Some("sync")) => plan.runners.push(Runner::Sync),
            ("--runner", Some("async")) => plan.runners.push(Runner::Async),
            ("--busy-poll", Some(micros)) => {
                let micros: u32 = micros.parse().ok()?;
                plan.extra_rows.push(vec![arg.clone(), micros.to_string()]);
            }
            ("--threads", Some(n)) => {
                let n: u16 = n.parse().ok()?;
                plan.server_rows.push(vec![arg.clone(), n.to_string()]);
            }
            _ => return None,
        }
    }
    if plan.runners.is_empty() {
        plan.runners = Runner::BOTH.to_vec();
    }
    Some(plan)
}

/// The 1-minute load average, from /proc/loadavg
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: ikago-lab demo|bench [--runner sync|async]... [--busy-poll MICROS]... \
         [--qdisc-bypass[=BOOL]]... [--threads N]... [--latency-only] | ikago-lab sweep"
    );
    ExitCode::from(2)
}
