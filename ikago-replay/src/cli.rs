//! The `ikago-replay` command line and what it runs

use crate::capture::{Frame, merge, read_pcapng, write_pcapng};
use crate::compare::{canonical, compare, render};
use crate::drive::replay;
use crate::scenario::{self, Options, Scenario};
use crate::summary::Summary;
use crate::{Error, Role, prepare};
use clap::{Args, Parser, Subcommand};
use ikago_config::{ClientArgs, ServerArgs};
use std::path::{Path, PathBuf};

/// The long help: invocation, scenario format, time, adaptation, output, exit codes
const LONG_ABOUT: &str = "\
Replays pcapng captures through the IkaGo-rs client or server (the same sans-IO machine the live
runners drive), prints a summary, writes what the machine transmitted and compares it with an
expected capture. No libpcap, no network, no root.

  ikago-replay client [OPTIONS] CAPTURE.pcapng...    replay a client (LAN + WAN captures)
  ikago-replay server [OPTIONS] CAPTURE.pcapng...    replay a server (tunnel + Internet captures)

The machine takes the same options as the live runners (see `ikago-replay client --help`):
command line first, then the -c config file, then the scenario's options, then the defaults.

CAPTURES. Several files are merged by timestamp (the Go captures are one file per interface:
client-lan + client-wan for a client, server-wan + server-dst for a server). Each interface block
maps to the device of the same name (if_name); link type must be Ethernet. Frames whose source MAC
is their device's own were sent by the recorded machine: they are counted as `own`, not fed.

SCENARIO (--scenario FILE, default scenario.json beside the first capture). JSON with `#` comment
lines and $VAR expansion, like a config file:
  {
    \"interfaces\": {
      \"lan0\": { \"role\": \"listen\", \"mac\": \"02:00:00:00:11:01\", \"address\": \"198.18.11.1/24\" },
      \"wan0\": { \"role\": \"upstream\", \"mac\": \"02:00:00:00:12:02\", \"address\": \"198.18.12.2/24\",
                \"gateway\": \"198.18.12.1\", \"gateway-mac\": \"02:00:00:00:12:01\" }
    },
    \"start\": \"1764094060.5\",
    \"sources\": [\"198.18.11.2\"], \"server\": \"198.18.12.1:18081\", \"method\": \"plain\"
  }
role is listen, upstream or both; gateway and gateway-mac are optional (without gateway-mac the
machine resolves the gateway by ARP). start (seconds since the Unix epoch) is when the machine
starts, by default at the first frame; seed is the default of --seed. Any config-file key (method, password, sources, server,
port, publish, mtu, fragment, ...) may stand at the top level. The scenario.json of a
shared/captures folder is read as well: the `hosts` entry of the replayed role gives the
interfaces, its default_gateway the gateway, and `tunnel.command_lines` the options.

TIME. Timestamps become virtual time from the start. The machine's deadlines that fall between
frames (SYN retransmissions, delayed ACKs, keepalives, expiries) are fed at their virtual time,
after the frames of the same instant; the replay stops at the last frame. Output frames carry the virtual time they were produced at.
--seed N seeds the machine's random generator: the same input and seed give the same output.

ADAPTATION. The capture's peers answered the recorded machine, whose random ISNs, client port, NAT
ports and ICMP ids differ from ours. Frames from a peer are rewritten to our machine's port (or id)
and acknowledgment number, pairing flows by remote endpoint in order of first use, so that the
handshake completes and replies reach our NAT mappings. A KCP client takes over the recorded
client's conversation id (read from its first tunnelled datagram), so the recorded server's KCP
datagrams are its own. --verbatim feeds them as captured and keeps our random conversation id.

OUTPUT. A summary is always printed: frames in, own and out per device, tunnel counters and
segments, inner packets per source (client) or client (server) from the machine's counters, inner
packets written to the LAN or toward destinations by destination address (parsed from the output),
events, and drops by reason. -o writes every transmitted frame, on its device's interface, with its
timestamp. --expect compares with a capture: interface, bytes and (unless --ignore-time) timestamp
of every frame, instant by instant, each interface in its own order (per-interface captures do not
order the frames of one instant across interfaces); it prints the first differences.

EXIT CODES. 0: replayed (and matches --expect); 1: differs from --expect; 2: bad options, scenario
or capture (truncated, garbled, unsupported): one line on stderr, never a panic.";

/// `ikago-replay`: replay captures through the IkaGo-rs client or server
#[derive(Debug, Parser)]
#[command(name = "ikago-replay", version, about = "Replay pcapng captures through the IkaGo-rs client or server", long_about = LONG_ABOUT)]
pub struct Cli {
    /// The machine to replay
    #[command(subcommand)]
    pub role: RoleArgs,
}

/// The role subcommand with its machine options and replay options
#[derive(Debug, Subcommand)]
pub enum RoleArgs {
    /// Replay a client, fed its LAN and WAN captures (e.g. client-lan.pcapng client-wan.pcapng)
    Client {
        /// The client's options, as the live runners take them
        #[command(flatten)]
        options: ClientArgs,
        /// What to replay and how
        #[command(flatten)]
        replay: ReplayArgs,
    },
    /// Replay a server, fed its tunnel and Internet captures (e.g. server-wan.pcapng server-dst.pcapng)
    Server {
        /// The server's options, as the live runners take them
        #[command(flatten)]
        options: ServerArgs,
        /// What to replay and how
        #[command(flatten)]
        replay: ReplayArgs,
    },
}

/// Options of the replay itself
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Replay")]
pub struct ReplayArgs {
    /// Scenario file: device facts and options (see --help) [default: scenario.json beside the
    /// first capture]
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Seed of the machine's random generator; the same input and seed give the same output
    /// [default: the scenario's `seed`, else 0]
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Write every frame the machine transmitted to this pcapng file
    #[arg(short = 'o', long = "output", value_name = "OUT.pcapng")]
    pub output: Option<PathBuf>,
    /// Compare the output with this pcapng file; exit code 1 when they differ
    #[arg(long, value_name = "EXPECTED.pcapng")]
    pub expect: Option<PathBuf>,
    /// Compare without timestamps
    #[arg(long)]
    pub ignore_time: bool,
    /// Differences shown at most
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_diffs: usize,
    /// Feed peer frames exactly as captured (no adaptation to our ISNs, ports and KCP
    /// conversation)
    #[arg(long)]
    pub verbatim: bool,
    /// Captures to replay, merged by timestamp
    #[arg(required = true, value_name = "CAPTURE.pcapng")]
    pub captures: Vec<PathBuf>,
}

/// What a run printed and whether the output matched
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The summary
    pub summary: String,
    /// The number of frames of the expected capture, when `--expect` was given
    pub expected: Option<usize>,
    /// The diff, when `--expect` was given and the output differs
    pub diff: Option<String>,
}

impl Outcome {
    /// The process exit code: 0, or 1 when the output differs from the expected capture
    pub fn exit_code(&self) -> u8 {
        if self.diff.is_some() { 1 } else { 0 }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a capture file
pub fn read_capture(path: &Path) -> Result<Vec<Frame>, Error> {
    read_pcapng(&read(path)?).map_err(|source| Error::Capture {
        path: path.to_owned(),
        source,
    })
}

/// Reads a scenario file for `role`, expanding variables from the environment
pub fn load_scenario(path: &Path, role: Role) -> Result<Scenario, Error> {
    let bytes = read(path)?;
    let text = String::from_utf8_lossy(&bytes);
    scenario::parse(&text, role, |n| std::env::var(n).ok()).map_err(|source| Error::Scenario {
        path: path.to_owned(),
        source,
    })
}

/// Runs a replay as the binary does
pub fn run(cli: Cli) -> Result<Outcome, Error> {
    let (options, args, role) = match cli.role {
        RoleArgs::Client { options, replay } => (Options::Client(options), replay, Role::Client),
        RoleArgs::Server { options, replay } => (Options::Server(options), replay, Role::Server),
    };
    let scenario_path = match &args.scenario {
        Some(p) => p.clone(),
        None => args
            .captures
            .first()
            .map(|c| c.with_file_name("scenario.json"))
            .filter(|p| p.is_file())
            .ok_or(Error::NoScenario)?,
    };
    let scenario = load_scenario(&scenario_path, role)?;
    let prepared = prepare(options, &scenario, args.seed)?;
    let frames = merge(
        args.captures
            .iter()
            .map(|p| read_capture(p))
            .collect::<Result<_, _>>()?,
    );
    let expected = args.expect.as_deref().map(read_capture).transpose()?;
    let r = replay(
        prepared.config.clone(),
        &frames,
        prepared.start,
        !args.verbatim,
    )?;
    let summary = Summary::new(&r, prepared.role, prepared.port, prepared.verbose).to_string();
    if let Some(path) = &args.output {
        let names: Vec<String> = r.devices.iter().map(|d| d.name.clone()).collect();
        std::fs::write(path, write_pcapng(&names, &r.output)).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    }
    let diff = expected.as_ref().and_then(|e| {
        let check_time = !args.ignore_time;
        let (e, a) = (canonical(e, check_time), canonical(&r.output, check_time));
        let d = compare(&e, &a, check_time);
        (!d.is_empty()).then(|| render(&d, &e, &a, r.start, args.max_diffs))
    });
    Ok(Outcome {
        summary,
        expected: expected.map(|e| e.len()),
        diff,
    })
}
