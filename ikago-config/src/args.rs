//! The raw options: one struct per role that clap parses from the command line and serde from a
//! config file, every value optional so that the two layers can be merged

use crate::error::Error;
use crate::file::{FileLayer, load_file};
use crate::list;
use crate::log_format::LogFormat;
use clap::{Args, Subcommand};
use serde::Deserialize;
use std::path::PathBuf;

/// Options both roles take (reference §9.1)
///
/// Booleans other than `-v` take an optional value (`--rule`, `--rule=false`) so that the command
/// line can turn off what a config file turned on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct CommonArgs {
    /// Read options from this JSON file (the original's keys); command-line options override it.
    /// SIGHUP reads it again: sources, publish and the monitor apply at once, other changes at
    /// the next start
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Devices to listen on, a comma list of interface names [default: every non-loopback device]
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    #[serde(deserialize_with = "list::de")]
    pub listen_devices: Option<Vec<String>>,

    /// Device toward the server (client) or the Internet (server) [default: the one holding the
    /// default route]
    #[arg(long, value_name = "NAME")]
    pub upstream_device: Option<String>,

    /// Gateway of the upstream device: an IPv4 address, an IPv6 address, or one of each as a
    /// comma list (198.18.0.1,2001:db8:24::ff); an IPv6 gateway replaces the upstream device's
    /// IPv6 router [default: the routing tables']
    #[arg(long, value_delimiter = ',', value_name = "IPS")]
    #[serde(deserialize_with = "list::de")]
    pub gateway: Option<Vec<String>>,

    /// Transport: faketcp (segments no kernel socket owns), or tcp (a kernel TCP connection,
    /// the original's framing: method plain only, no KCP, one server) [default: faketcp]
    #[arg(long, value_name = "MODE")]
    pub mode: Option<String>,

    /// Encryption: plain, aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-poly1305 or
    /// xchacha20-poly1305 [default: plain]
    #[arg(long, value_name = "METHOD")]
    pub method: Option<String>,

    /// Password of the encryption method (required unless plain)
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "IKAGO_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,

    /// Install firewall rules for the tunnel, removed on exit
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub rule: Option<bool>,

    /// Serve the monitor on this TCP port, 0 for none: the original's JSON at / and /dns,
    /// Prometheus metrics at /metrics and a live dashboard at /dashboard [default: 0]
    #[arg(long, value_name = "PORT")]
    pub monitor: Option<u16>,

    /// Address the monitor listens on; any other than loopback lets whoever reaches it see the
    /// traffic stats and the learned DNS names (0.0.0.0 for every interface) [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    pub monitor_address: Option<String>,

    /// Verbose output (in a config file, `"verbose": true` also turns it on)
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Write the log to this file as well
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Log line layout: text, or json for log collectors (one object per line with time, level,
    /// message and the event's fields) [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Largest FakeTCP frame in IPv4 bytes, 576-65535; bigger frames leave as IPv4 fragments
    /// [default: 1500]
    #[arg(long, value_name = "BYTES")]
    pub mtu: Option<u16>,

    /// Carry the tunnel over KCP with FEC, as the original's -kcp (both sides must agree); the
    /// --kcp-* options tune it [default: false]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub kcp: Option<bool>,

    /// KCP tuning (the file's `kcp-tuning` object)
    #[command(flatten)]
    pub kcp_tuning: KcpArgs,

    /// Largest IPv4 packet written toward the local side, 576-65535 [default: 1500]
    #[arg(long, value_name = "BYTES")]
    pub fragment: Option<u16>,

    /// Client: local tunnel port, 0 for a random one; server: the listening port (required)
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Kernel buffer of each device's capture, 1-1024 MiB: a burst larger than it while the
    /// runner is busy is dropped (and counted in the monitor and the exit summary) [default: 8]
    #[arg(long, value_name = "MIB")]
    pub capture_buffer_mb: Option<u32>,

    /// Injected frames skip the devices' queueing disciplines (PACKET_QDISC_BYPASS): less work
    /// per frame, but no tc shaping or tc egress programs, no tcpdump on the device of what we
    /// send, and a full device queue drops. true: on every device; false: on none [default:
    /// where a device's root qdisc is noqueue and it has no clsact qdisc, e.g. a veth]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub qdisc_bypass: Option<bool>,

    /// Before sleeping, keep polling the devices for this long (0-1000000 microseconds): lower
    /// latency for game traffic, at the cost of CPU while traffic comes and goes [default: 0, off]
    #[arg(long, value_name = "MICROS")]
    pub busy_poll: Option<u32>,

    /// Wire: ikago (the Go original's) or ikago2 (ours: Noise handshake, anti-replay, rekeying,
    /// SYN proofs). Client [default: ikago2 with a password (without --kcp), else ikago]; server:
    /// both on one port [default: both], ikago2 to answer only clients that prove the key
    #[arg(long, value_name = "PROTOCOL")]
    pub protocol: Option<String>,

    /// ikago2: pad records to 128-byte buckets, blurring the inner packets' lengths
    /// [default: false]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub padding: Option<bool>,
}

/// KCP tuning: flags `--kcp-*` on the command line, object `kcp-tuning` in a file (reference §5.2)
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Deserialize)]
#[serde(default)]
pub struct KcpArgs {
    /// KCP MTU, at most 1500 [default: 1400]
    #[arg(
        id = "kcp-mtu",
        long = "kcp-mtu",
        value_name = "BYTES",
        allow_negative_numbers = true
    )]
    pub mtu: Option<i64>,
    /// KCP send window in packets, above 0 [default: 32]
    #[arg(
        id = "kcp-sndwnd",
        long = "kcp-sndwnd",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub sndwnd: Option<i64>,
    /// KCP receive window in packets, above 0 [default: 32]
    #[arg(
        id = "kcp-rcvwnd",
        long = "kcp-rcvwnd",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub rcvwnd: Option<i64>,
    /// FEC data shards, 0 or more [default: 10]
    #[arg(
        id = "kcp-datashard",
        long = "kcp-datashard",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub datashard: Option<i64>,
    /// FEC parity shards, 0 or more [default: 3]
    #[arg(
        id = "kcp-parityshard",
        long = "kcp-parityshard",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub parityshard: Option<i64>,
    /// Acknowledge without delay
    #[arg(id = "kcp-acknodelay", long = "kcp-acknodelay", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub acknodelay: Option<bool>,
    /// KCP nodelay mode (30 ms minimum RTO)
    #[arg(id = "kcp-nodelay", long = "kcp-nodelay", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub nodelay: Option<bool>,
    /// KCP update interval in milliseconds, 0 or more [default: 100]
    #[arg(
        id = "kcp-interval",
        long = "kcp-interval",
        value_name = "MS",
        allow_negative_numbers = true
    )]
    pub interval: Option<i64>,
    /// Fast resend after this many duplicate ACKs, 0 (off) or more [default: 0]
    #[arg(
        id = "kcp-resend",
        long = "kcp-resend",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub resend: Option<i64>,
    /// 1 turns congestion control off, 0 or more [default: 0]
    #[arg(
        id = "kcp-nc",
        long = "kcp-nc",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub nc: Option<i64>,
}

/// Client options: the common ones plus sources, server and publish
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ClientArgs {
    /// Options both roles take
    #[command(flatten)]
    pub common: CommonArgs,

    /// LAN sources to tunnel, a comma list of IPv4 and IPv6 addresses or CIDR blocks (required);
    /// IPv6 sources need the ikago2 wire
    #[arg(short = 'r', long, value_delimiter = ',', value_name = "ADDRS")]
    pub sources: Option<Vec<String>>,

    /// The server's tunnel address (required): HOST:PORT, an IPv6 address as [ADDR]:PORT (the
    /// tunnel then runs over IPv6); a comma list for failover, families mixed: the first that
    /// completes a handshake is used, the next when it goes silent or resets
    #[arg(short = 's', long, value_delimiter = ',', value_name = "HOST:PORT")]
    pub server: Option<Vec<String>>,

    /// With several servers: after this many seconds on another, try the first again
    #[arg(long, value_name = "SECS")]
    pub failback: Option<u64>,

    /// Answer ARP (IPv4) and neighbour solicitations (IPv6) for these addresses on the listen
    /// devices (proxy ARP and proxy NDP), a comma list
    #[arg(long, value_name = "IPS")]
    pub publish: Option<String>,

    /// A server's option, refused here with one line rather than clap's usage (a client reads
    /// a shared config file's `threads` key as nothing)
    #[arg(long, value_name = "N", hide = true)]
    pub threads: Option<u16>,
}

/// The client-only keys of a config file, read apart from the common ones so that serde's error
/// positions stay exact (`#[serde(flatten)]` would report the end of the object)
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ClientKeys {
    #[serde(deserialize_with = "list::de")]
    sources: Option<Vec<String>>,
    #[serde(deserialize_with = "list::de")]
    server: Option<Vec<String>>,
    failback: Option<u64>,
    publish: Option<String>,
}

/// Server options: the common ones (`-p` is required) and the engines
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct ServerArgs {
    /// Options both roles take
    #[command(flatten)]
    pub common: CommonArgs,

    /// Engines (worker threads), 1-256, each serving its share of the clients with its own
    /// captures and NAT ports; 1 runs one engine. FakeTCP only; with --record or --mode tcp the
    /// default is 1 [default: the number of cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<u16>,
}

/// The server-only keys of a config file, read apart from the common ones (see [`ClientKeys`])
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ServerKeys {
    threads: Option<u16>,
}

impl FileLayer for CommonArgs {
    fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

impl FileLayer for ClientArgs {
    fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let common = CommonArgs::from_json(text)?;
        let keys: ClientKeys = serde_json::from_str(text)?;
        Ok(Self {
            common,
            sources: keys.sources,
            server: keys.server,
            failback: keys.failback,
            publish: keys.publish,
            threads: None,
        })
    }
}

impl FileLayer for ServerArgs {
    fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let common = CommonArgs::from_json(text)?;
        let keys: ServerKeys = serde_json::from_str(text)?;
        Ok(Self {
            common,
            threads: keys.threads,
        })
    }
}

/// The role subcommand every runner offers: `client [OPTIONS]` or `server [OPTIONS]`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum RoleCommand {
    /// Run the client: tunnel the LAN sources' traffic to the server
    Client(ClientArgs),
    /// Run the server: accept clients and NAT their traffic to the Internet
    Server(ServerArgs),
}

impl KcpArgs {
    /// Each value from `self`, else from `other`
    pub fn or(self, other: Self) -> Self {
        Self {
            mtu: self.mtu.or(other.mtu),
            sndwnd: self.sndwnd.or(other.sndwnd),
            rcvwnd: self.rcvwnd.or(other.rcvwnd),
            datashard: self.datashard.or(other.datashard),
            parityshard: self.parityshard.or(other.parityshard),
            acknodelay: self.acknodelay.or(other.acknodelay),
            nodelay: self.nodelay.or(other.nodelay),
            interval: self.interval.or(other.interval),
            resend: self.resend.or(other.resend),
            nc: self.nc.or(other.nc),
        }
    }
}

impl CommonArgs {
    /// Each value from `self`, else from `other`; verbose is on if either turns it on
    pub fn or(self, other: Self) -> Self {
        Self {
            config: self.config.or(other.config),
            listen_devices: self.listen_devices.or(other.listen_devices),
            upstream_device: self.upstream_device.or(other.upstream_device),
            gateway: self.gateway.or(other.gateway),
            mode: self.mode.or(other.mode),
            method: self.method.or(other.method),
            password: self.password.or(other.password),
            rule: self.rule.or(other.rule),
            monitor: self.monitor.or(other.monitor),
            monitor_address: self.monitor_address.or(other.monitor_address),
            verbose: self.verbose || other.verbose,
            log: self.log.or(other.log),
            log_format: self.log_format.or(other.log_format),
            mtu: self.mtu.or(other.mtu),
            kcp: self.kcp.or(other.kcp),
            kcp_tuning: self.kcp_tuning.or(other.kcp_tuning),
            fragment: self.fragment.or(other.fragment),
            port: self.port.or(other.port),
            capture_buffer_mb: self.capture_buffer_mb.or(other.capture_buffer_mb),
            qdisc_bypass: self.qdisc_bypass.or(other.qdisc_bypass),
            busy_poll: self.busy_poll.or(other.busy_poll),
            protocol: self.protocol.or(other.protocol),
            padding: self.padding.or(other.padding),
        }
    }
}

impl ClientArgs {
    /// Each value from `self`, else from `other`
    pub fn or(self, other: Self) -> Self {
        Self {
            common: self.common.or(other.common),
            sources: self.sources.or(other.sources),
            server: self.server.or(other.server),
            failback: self.failback.or(other.failback),
            publish: self.publish.or(other.publish),
            threads: self.threads.or(other.threads),
        }
    }

    /// Merges the config file named by `-c`, if any, under these options
    pub fn load(self) -> Result<Self, Error> {
        match self.common.config.clone() {
            Some(path) => {
                let file: Self = load_file(&path)?;
                Ok(self.or(file))
            }
            None => Ok(self),
        }
    }
}

impl ServerArgs {
    /// Each value from `self`, else from `other`
    pub fn or(self, other: Self) -> Self {
        Self {
            common: self.common.or(other.common),
            threads: self.threads.or(other.threads),
        }
    }

    /// Merges the config file named by `-c`, if any, under these options
    pub fn load(self) -> Result<Self, Error> {
        match self.common.config.clone() {
            Some(path) => {
                let file: Self = load_file(&path)?;
                Ok(self.or(file))
            }
            None => Ok(self),
        }
    }
}
