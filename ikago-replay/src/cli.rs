//! The `ikago-replay` command line and what it runs

use crate::capture::{Capture, Frame, merge, read_capture_bytes, write_pcapng};
use crate::compare::{canonical, compare, render};
use crate::drive::{Replay, replay, replay_recorded};
use crate::recording::{Fed, Recording};
use crate::scenario::{self, Options, Scenario};
use crate::summary::Summary;
use crate::{Error, Prepared, Role, prepare};
use clap::{Args, Parser, Subcommand};
use ikago_config::{ClientArgs, CommonArgs, ServerArgs};
use std::path::{Path, PathBuf};

/// The long help: invocation, scenario format, time, adaptation, output, exit codes
const LONG_ABOUT: &str = "\
Replays pcapng captures through the IkaGo-rs client or server (the same sans-IO machine the live
runners drive), prints a summary, writes what the machine transmitted and compares it with an
expected capture. No libpcap, no network, no root.

  ikago-replay [OPTIONS] CAPTURE.pcapng...           the role from the capture or its scenario
  ikago-replay client [OPTIONS] CAPTURE.pcapng...    replay a client (LAN + WAN captures)
  ikago-replay server [OPTIONS] CAPTURE.pcapng...    replay a server (tunnel + Internet captures)

ROLE. Without `client` or `server`, the scenario tells: its `role` key (\"client\" or
\"server\"), else its options (`sources` or `server` make a client, a `port` without them a
server); in a capture folder's scenario.json, the host (client or server) that has every interface
of the captures. When nothing tells, the error says so and the role must be named. That form
takes --password (or IKAGO_PASSWORD) and -v; the role subcommands take every option of the live
runners (see `ikago-replay client --help`): command line first, then the -c config file, then the
scenario's options, then the defaults.

CAPTURES. One file with an interface block per device (mergecap's output), or several files merged
by timestamp (the Go captures are one file per interface: client-lan + client-wan for a client,
server-wan + server-dst for a server). Each interface block maps to the device of the same name
(if_name); link type must be Ethernet. Frames whose source MAC is their device's own were sent by
the recorded machine: they are counted as `own`, not fed.

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
An interface's role is listen, upstream or both; gateway and gateway-mac are optional (without
gateway-mac the machine resolves the gateway by ARP). start (seconds since the Unix epoch) is when
the machine starts, by default at the first frame; seed is the default of --seed; role (client or
server) names the machine when no subcommand does. Any config-file key (method, password, sources,
server, port, publish, mtu, fragment, ...) may stand at the top level. The scenario.json of a
shared/captures folder is read as well: the `hosts` entry of the replayed role gives the
interfaces, its default_gateway the gateway, and `tunnel.command_lines` the options.

TIME. Timestamps become virtual time from the start. The machine's deadlines that fall between
frames (SYN retransmissions, delayed ACKs, keepalives, expiries) are fed at their virtual time,
after the frames of the same instant; the replay stops at the last frame. Output frames carry the
virtual time they were produced at. --seed N seeds the machine's random generator: the same input and seed give the same output.

ADAPTATION. The capture's peers answered the recorded machine, whose random ISNs, client port, NAT
ports and ICMP ids differ from ours. Frames from a peer are rewritten to our machine's port (or id)
and acknowledgment number, pairing flows by remote endpoint in order of first use, so that the
handshake completes and replies reach our NAT mappings. A KCP client takes over the recorded
client's conversation id (read from its first tunnelled datagram), so the recorded server's KCP
datagrams are its own. --verbatim feeds them as captured and keeps our random conversation id.

RECORDINGS. The live runners' --record FILE writes a recording: pcapng that carries the machine's
scenario (its options without the password, its devices, the seed it drew, when it started), every
frame it was fed, every timer wake-up with its time and every frame it sent. `ikago-replay FILE`
replays it alone: the role and options come from the file, the inputs are fed exactly as recorded
(no adaptation, no deadlines of the replay's own), and `--expect FILE` compares the output with
the frames the live machine sent: byte for byte the same. The password of an encrypted session is
never recorded: give --password or IKAGO_PASSWORD. A recording stopped early (--record-max-mb, a
slow disk) or cut short (the recorder was killed) replays up to its last whole input, and the
summary says where it stopped. The format is documented in ikago-replay's README.

OUTPUT. A summary is always printed: frames in, own and out per device, tunnel counters and
segments, inner packets per source (client) or client (server) from the machine's counters, inner
packets written to the LAN or toward destinations by destination address (parsed from the output),
events, and drops by reason. -o writes every transmitted frame, on its device's interface, with its
timestamp. --expect compares with a capture: interface, bytes and (unless --ignore-time) timestamp
of every frame, instant by instant, each interface in its own order (per-interface captures do not
order the frames of one instant across interfaces); it prints the first differences.

EXIT CODES. 0: replayed (and matches --expect); 1: differs from --expect; 2: bad options, scenario
or capture (truncated, garbled, unsupported, a recording of an unknown version or without its
password): one line on stderr, never a panic.";

/// `ikago-replay`: replay captures through the IkaGo-rs client or server
#[derive(Debug, Parser)]
#[command(
    name = "ikago-replay",
    version,
    about = "Replay pcapng captures through the IkaGo-rs client or server",
    long_about = LONG_ABOUT,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// The machine to replay, with its options; without, the capture or its scenario says
    #[command(subcommand)]
    pub role: Option<RoleArgs>,
    /// The form without a role
    #[command(flatten)]
    pub auto: AutoArgs,
}

/// `ikago-replay CAPTURE...`: the role and the options come from the capture or its scenario
#[derive(Debug, Clone, Args)]
pub struct AutoArgs {
    /// Password of an encrypted session (scenarios may hold it; recordings never do)
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "IKAGO_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// List every event
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// What to replay and how
    #[command(flatten)]
    pub replay: ReplayArgs,
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

/// Reads a capture file: a recording (as far as it is whole) or frames
pub fn read_file(path: &Path) -> Result<Capture, Error> {
    read_capture_bytes(&read(path)?).map_err(|source| Error::Capture {
        path: path.to_owned(),
        source,
    })
}

/// The frames of a capture file, as `--expect` compares with them: every frame of a capture, the
/// transmitted frames of a recording
pub fn read_capture(path: &Path) -> Result<Vec<Frame>, Error> {
    Ok(match read_file(path)? {
        Capture::Frames(f) => f,
        Capture::Recording(r) => r.outputs,
    })
}

/// Reads a scenario file for `role`, expanding variables from the environment
pub fn load_scenario(path: &Path, role: Role) -> Result<Scenario, Error> {
    parse_scenario(path, &scenario_text(path)?, role)
}

fn scenario_text(path: &Path) -> Result<String, Error> {
    Ok(String::from_utf8_lossy(&read(path)?).into_owned())
}

fn parse_scenario(path: &Path, text: &str, role: Role) -> Result<Scenario, Error> {
    scenario::parse(text, role, |n| std::env::var(n).ok()).map_err(|source| Error::Scenario {
        path: path.to_owned(),
        source,
    })
}

/// The machine options the command line gave
enum Given {
    /// `client [OPTIONS]`
    Client(ClientArgs),
    /// `server [OPTIONS]`
    Server(ServerArgs),
    /// No role subcommand: only a password and `-v`
    Auto {
        password: Option<String>,
        verbose: bool,
    },
}

impl Given {
    fn new(cli: Cli) -> (Self, ReplayArgs) {
        match cli.role {
            Some(RoleArgs::Client { options, replay }) => (Self::Client(options), replay),
            Some(RoleArgs::Server { options, replay }) => (Self::Server(options), replay),
            None => (
                Self::Auto {
                    password: cli.auto.password,
                    verbose: cli.auto.verbose,
                },
                cli.auto.replay,
            ),
        }
    }

    /// The role the command line named
    fn role(&self) -> Option<Role> {
        match self {
            Self::Client(_) => Some(Role::Client),
            Self::Server(_) => Some(Role::Server),
            Self::Auto { .. } => None,
        }
    }

    /// The options of the machine, which is a `role`
    fn options(self, role: Role) -> Options {
        match self {
            Self::Client(a) => Options::Client(a),
            Self::Server(a) => Options::Server(a),
            Self::Auto { password, verbose } => {
                let common = CommonArgs {
                    password,
                    verbose,
                    ..CommonArgs::default()
                };
                match role {
                    Role::Client => Options::Client(ClientArgs {
                        common,
                        ..ClientArgs::default()
                    }),
                    Role::Server => Options::Server(ServerArgs {
                        common,
                        ..ServerArgs::default()
                    }),
                }
            }
        }
    }
}

/// The role of captures named by neither the command line nor their scenario: from the
/// scenario's options or the capture's interfaces (see [`scenario::infer_role`])
fn infer_role(path: &Path, text: &str, frames: &[Frame]) -> Result<Role, Error> {
    let mut names: Vec<&str> = frames.iter().map(|f| f.interface.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    scenario::infer_role(text, &names, |n| std::env::var(n).ok())
        .map_err(|source| Error::Scenario {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| Error::NoRole(path.to_owned()))
}

/// Replays captures (with a scenario beside them or given) as a machine of the given or inferred
/// role
fn replay_captures(
    given: Given,
    args: &ReplayArgs,
    captures: Vec<Vec<Frame>>,
) -> Result<(Prepared, Replay), Error> {
    let scenario_path = match &args.scenario {
        Some(p) => p.clone(),
        None => args
            .captures
            .first()
            .map(|c| c.with_file_name("scenario.json"))
            .filter(|p| p.is_file())
            .ok_or(Error::NoScenario)?,
    };
    let frames = merge(captures);
    let text = scenario_text(&scenario_path)?;
    let role = match given.role() {
        Some(role) => role,
        None => infer_role(&scenario_path, &text, &frames)?,
    };
    let scenario = parse_scenario(&scenario_path, &text, role)?;
    let prepared = prepare(given.options(role), &scenario, args.seed)?;
    let r = replay(
        prepared.config.clone(),
        &frames,
        prepared.start,
        !args.verbatim,
    )?;
    Ok((prepared, r))
}

/// Replays a recording with the scenario it carries, its inputs exactly as they were fed
fn replay_recording(
    given: Given,
    args: &ReplayArgs,
    path: &Path,
    rec: &Recording,
) -> Result<(Prepared, Replay), Error> {
    if args.scenario.is_some() {
        return Err(Error::RecordingScenario(path.to_owned()));
    }
    let scenario_err = |source| Error::Scenario {
        path: path.to_owned(),
        source,
    };
    let role = scenario::recorded_role(&rec.scenario).map_err(scenario_err)?;
    let scenario = scenario::parse_recorded(&rec.scenario, given.role().unwrap_or(role))
        .map_err(scenario_err)?;
    let prepared = prepare(given.options(role), &scenario, args.seed).map_err(|e| match e {
        Error::Options(ikago_config::Error::MissingPassword(method)) => Error::RecordingPassword {
            path: path.to_owned(),
            method,
        },
        e => e,
    })?;
    let start = prepared
        .start
        .or_else(|| rec.inputs.first().map(Fed::time))
        .unwrap_or_default();
    let r = replay_recorded(prepared.config.clone(), &rec.inputs, start)?;
    Ok((prepared, r))
}

/// Runs a replay as the binary does
pub fn run(cli: Cli) -> Result<Outcome, Error> {
    let (given, args) = Given::new(cli);
    let mut frames = Vec::with_capacity(args.captures.len());
    let mut recording = None;
    for path in &args.captures {
        match read_file(path)? {
            Capture::Frames(f) => frames.push(f),
            Capture::Recording(r) => recording = Some((path, r)),
        }
    }
    let ((prepared, r), note) = match recording {
        Some((path, _)) if args.captures.len() > 1 => {
            return Err(Error::RecordingAlone(path.clone()));
        }
        Some((path, rec)) => (
            replay_recording(given, &args, path, &rec)?,
            Some(rec.describe()),
        ),
        None => (replay_captures(given, &args, frames)?, None),
    };
    let expected = args.expect.as_deref().map(read_capture).transpose()?;
    let mut summary = Summary::new(&r, prepared.role, prepared.port, prepared.verbose).to_string();
    if let Some(note) = note {
        summary.push('\n');
        summary.push_str(&note);
    }
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
