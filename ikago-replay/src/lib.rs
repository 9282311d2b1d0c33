//! Replays pcapng captures through the IkaGo-rs [`Client`](ikago_proto::Client) or
//! [`Server`](ikago_proto::Server), writes what the machine transmitted and compares it with an
//! expected capture. No libpcap: captures are read and written with pcap-file.
//!
//! The pipeline, which the `ikago-replay` binary runs ([`cli::run`]):
//! 1. [`scenario::parse`] reads the device facts a capture lacks (and optionally options);
//! 2. [`prepare`] merges the options (command line, then `-c` file, then scenario) into the core's
//!    configuration, exactly as the live runners do with [`ikago_config`];
//! 3. [`capture::read_pcapng`] and [`capture::merge`] give the frames in time order;
//! 4. [`drive::replay`] feeds them and the machine's deadlines in virtual time, adapting peer frames
//!    to our machine's random choices ([`adapt`]);
//! 5. [`summary::Summary`] and [`compare::compare`] report.

#![forbid(unsafe_code)]

pub mod adapt;
pub mod capture;
pub mod cli;
pub mod compare;
pub mod decode;
pub mod drive;
mod error;
pub mod fuzzing;
mod packet;
pub mod recording;
pub mod scenario;
pub mod stream;
pub mod summary;

pub use error::Error;

use ikago_config::{ClientArgs, ClientSettings, ServerArgs, ServerSettings};
use ikago_proto::{DeviceConfig, MachineConfig, Method};
use scenario::{Options, Scenario};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Which machine is replayed
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The client: fed its LAN and WAN captures
    Client,
    /// The server: fed its tunnel-side and Internet-side captures
    Server,
}

impl Role {
    /// `client` or `server`, as scenarios and messages name it
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
        }
    }
}

/// A machine ready to be replayed, with what the report needs to know about it
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Which machine
    pub role: Role,
    /// Its configuration
    pub config: MachineConfig,
    /// Its encryption method
    pub method: Method,
    /// Its password
    pub password: String,
    /// The server's tunnel port
    pub port: u16,
    /// Whether to list every event
    pub verbose: bool,
    /// When the machine starts (time since the Unix epoch), if the scenario says
    pub start: Option<Duration>,
}

/// The CSPRNG seed of the machine for `--seed N`: N little-endian, then zeros
pub fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut s = [0; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s
}

/// `--gateway` replaces the scenario's gateway of the upstream device (its MAC is then resolved
/// by ARP unless the scenario gave that same gateway)
fn with_gateway(mut devices: Vec<DeviceConfig>, gateway: Option<Ipv4Addr>) -> Vec<DeviceConfig> {
    if let Some(g) = gateway {
        for d in devices
            .iter_mut()
            .filter(|d| d.role.is_upstream() && d.gateway != Some(g))
        {
            d.gateway = Some(g);
            d.gateway_mac = None;
        }
    }
    devices
}

/// Merges the command-line options over the `-c` file over the scenario's, validates them and
/// builds the machine's configuration over the scenario's devices; `seed` (else the scenario's,
/// else 0) seeds its random generator
pub fn prepare(cli: Options, scenario: &Scenario, seed: Option<u64>) -> Result<Prepared, Error> {
    let rng_seed = seed
        .map(seed_bytes)
        .or(scenario.seed)
        .unwrap_or_else(|| seed_bytes(0));
    Ok(match cli {
        Options::Client(args) => {
            let file = match &scenario.options {
                Options::Client(f) => f.clone(),
                Options::Server(_) => ClientArgs::default(),
            };

            let s = ClientSettings::resolve(&args.load()?.or(file))?;
            let devices = with_gateway(
                s.common.apply_device_roles(scenario.devices.clone())?,
                s.common.gateway,
            );
            Prepared {
                role: Role::Client,
                config: MachineConfig::Client({
                    let mut c = s.client_config(devices, rng_seed);
                    // the recorded wall clock (ikago2's SYN proofs and initiations carry it)
                    c.ikago2.unix_time = scenario.start.unwrap_or_default();
                    c
                }),
                method: s.common.method,
                password: s.common.password.clone(),
                port: s.server.port(),
                verbose: s.common.verbose,
                start: scenario.start,
            }
        }
        Options::Server(args) => {
            let file = match &scenario.options {
                Options::Server(f) => f.clone(),
                Options::Client(_) => ServerArgs::default(),
            };

            let s = ServerSettings::resolve(&args.load()?.or(file))?;
            // a recording is one engine's: more than one given is refused
            s.engines(true)?;
            let devices = with_gateway(
                s.common.apply_device_roles(scenario.devices.clone())?,
                s.common.gateway,
            );
            Prepared {
                role: Role::Server,
                config: MachineConfig::Server({
                    let mut c = s.server_config(devices, rng_seed);
                    c.ikago2.unix_time = scenario.start.unwrap_or_default();
                    c
                }),
                method: s.common.method,
                password: s.common.password.clone(),
                port: s.common.port,
                verbose: s.common.verbose,
                start: scenario.start,
            }
        }
    })
}
