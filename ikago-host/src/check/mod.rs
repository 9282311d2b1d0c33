//! `check client ...` and `check server ...`: what will and will not work with these options,
//! one line each, changing nothing
//!
//! The options are resolved and the devices discovered exactly as for a run ([`crate::app`]);
//! then each finding is a line `ok`, `warn` (works, with a caveat said in the line) or `FAIL`
//! (will not work, and why): privileges and capabilities ([`host`]), the ports, the devices and
//! addresses, GRO and LRO on them, `ip_forward` and `rp_filter`, the tunnel over IPv6 (the
//! IPv6 addresses a server takes it on, the way to a client's IPv6 servers), the MTUs, the NAT port range
//! against `ip_local_port_range`, the firewall tool `--rule` uses, the firewall rules already on
//! this host that would answer or redirect the tunnel's segments ([`ruleset`]), and for a client
//! whether each server (fallbacks included) answers a FakeTCP handshake within three seconds
//! ([`handshake`]). The last
//! line counts them. Exit code 0 when nothing fails, 1 when something does, 2 for options that
//! do not even resolve (as for a run).

mod handshake;
mod host;
mod ruleset;

use crate::app::{self, Settings, StartError};
use ikago_config::RoleCommand;
use std::fmt;
use std::process::ExitCode;

/// Exit code when a finding says something will fail
const EXIT_FAILS: u8 = 1;
/// Exit code for options that do not resolve
const EXIT_USAGE: u8 = 2;

/// How a finding bears on the run
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Works
    Ok,
    /// Works, with a caveat the line says
    Warn,
    /// Will not work
    Fail,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ok => "ok  ",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
        })
    }
}

/// One line of the report
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Its level
    pub level: Level,
    /// What it is about (`privileges`, `gro`, ...)
    pub topic: &'static str,
    /// What holds and why
    pub text: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}: {}", self.level, self.topic, self.text)
    }
}

/// The findings so far, printed as they come
#[derive(Debug, Default)]
pub struct Report {
    findings: Vec<Finding>,
}

impl Report {
    /// Adds and prints a finding
    pub fn add(&mut self, level: Level, topic: &'static str, text: impl Into<String>) {
        let finding = Finding {
            level,
            topic,
            text: text.into(),
        };
        println!("{finding}");
        self.findings.push(finding);
    }

    /// Adds an `ok` finding
    pub fn ok(&mut self, topic: &'static str, text: impl Into<String>) {
        self.add(Level::Ok, topic, text);
    }

    /// Adds a `warn` finding
    pub fn warn(&mut self, topic: &'static str, text: impl Into<String>) {
        self.add(Level::Warn, topic, text);
    }

    /// Adds a `FAIL` finding
    pub fn fail(&mut self, topic: &'static str, text: impl Into<String>) {
        self.add(Level::Fail, topic, text);
    }

    /// How many findings have `level`
    fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }

    /// Prints the closing line for the role `name` and returns the exit code
    fn finish(self, name: &str) -> ExitCode {
        let (fails, warns) = (self.count(Level::Fail), self.count(Level::Warn));
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let verdict = if fails == 0 {
            format!("the {name} will work as configured")
        } else {
            format!("the {name} will not work as configured")
        };
        println!(
            "check: {}, {}: {verdict}",
            plural(fails, "failure"),
            plural(warns, "warning")
        );
        if fails == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_FAILS)
        }
    }
}

/// Runs the check of `role` for the binary `runner`
pub fn run(runner: &str, role: RoleCommand) -> ExitCode {
    let settings = match Settings::load(role) {
        Ok(s) => s,
        Err(StartError(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let name = settings.name();
    println!(
        "Check of the {name} ({runner} {}); nothing is changed",
        env!("CARGO_PKG_VERSION")
    );
    let mut report = Report::default();
    let rule = settings.common().rule;
    host::privileges(&mut report, rule);
    host::ports(&mut report, &settings);
    let devices = match app::devices(&settings) {
        Ok(d) => d,
        Err(StartError(e)) => {
            report.fail("devices", e);
            return report.finish(name);
        }
    };
    let built = match settings.build(devices.clone(), ikago_proto::Shard::WHOLE) {
        Ok(b) => b,
        Err(StartError(e)) => {
            report.fail("settings", e);
            return report.finish(name);
        }
    };
    host::devices(&mut report, &devices);
    host::offloads(&mut report, &devices, rule);
    host::sysctls(&mut report, &settings, &devices);
    host::ipv6(&mut report, &settings, &devices);
    host::tunnel6(&mut report, &settings, &devices);
    host::mtu(&mut report, &settings, &devices);
    host::nat_ports(&mut report, &built.plan, rule);
    let backend = host::backend(&mut report, rule);
    ruleset::check(&mut report, &settings, &devices, &built.plan, backend);
    if let Settings::Client(c) = &settings {
        // each server on its own, the fallbacks too
        for server in std::iter::once(c.server).chain(c.fallback.iter().copied()) {
            let one = ikago_config::ClientSettings {
                server,
                fallback: Vec::new(),
                ..c.clone()
            };
            handshake::check(&mut report, &one, devices.clone());
        }
    }
    report.finish(name)
}
