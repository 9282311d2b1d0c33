//! The program both runners share, up to and after the run loop
//!
//! [`main`] parses the command line, loads the config file, acquires the capabilities it needs
//! ([`crate::privilege`]), discovers the devices, builds the machine, opens pcap, catches
//! SIGINT, SIGTERM and SIGHUP and installs the `--rule` firewall, all before any traffic; with
//! `--monitor` it binds the monitor's port first of all that, and next it reserves the tunnel
//! port (the server's, or the client's when fixed) for the process's lifetime ([`crate::port`]).
//! With `--record` it starts the flight recorder ([`crate::record`]) with the machine's scenario
//! and the seed it drew. Then it hands a [`Session`] to the runner's loop and, when that returns,
//! removes the rules and logs the counters. On SIGHUP the loop applies the config read again
//! ([`crate::reload`]). A mistake before the loop (a monitor or tunnel port in use, a recording
//! that cannot be created among them) is one `error: ...` line on stderr and exit code 2; a
//! graceful shutdown exits 0. Started by systemd, it tells the service manager when it is ready
//! and when it stops ([`notify`]).
//!
//! A server runs `--threads N` engines ([`ServerSettings::engines`]): N machines, engine `k`
//! with [`Shard`] `k` of N, its own seed, its share of `max_clients` and its own capture handles
//! whose filters admit only its share ([`crate::shard`]), each driven by the runner's loop on a
//! thread of its own ([`crate::engines`]). The port reservation, the firewall, the signals
//! ([`shutdown::catch`] hands each signal to every engine) and the monitor ([`Feed::shared`])
//! are the whole server's; the exit summary adds the engines' counters up.

use crate::capture::{self, DeviceIo, IoOptions};
use crate::cli::{Cli, Command};
use crate::discover::{self, Neighbors, Neighbors6, Reach, Routes, Routes6};
use crate::firewall::{Firewall, Plan};
use crate::machine::{self, device_summary, summary};
use crate::monitor::Feed;
use crate::port::{self, Reservation};
use crate::reload::{Reader, Reload, Reread};
use crate::shutdown::{self, Signals, StopAll};
use crate::stream::{self, Sink, Streams};
use crate::{engines, events, filter, logging, notify, privilege, record};
use ikago_config::{
    Changes, ClientSettings, CommonSettings, DEFAULT_MONITOR_ADDRESS, RecordArgs, RecordSettings,
    RoleCommand, ServerSettings, load_file,
};
use ikago_monitor::{DEFAULT_PROBE_INTERVAL, Monitor, Recorder};
use ikago_proto::{
    Client, DeviceConfig, Ipv4Net, Ipv6Net, Machine, Method, Server, ServerConfig, Shard, Stats,
    Transport,
};
use std::io::Read;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Exit code of a mistake found before the run (bad options, devices, privileges)
const EXIT_USAGE: u8 = 2;
/// Exit code of a failure while running (a device went away)
const EXIT_FAILURE: u8 = 1;

/// Everything a runner's loop needs: one per engine
#[derive(Debug)]
pub struct Session {
    /// The machine to drive
    pub machine: Machine,
    /// The open devices, indexed by [`ikago_proto::DeviceId`]
    pub devices: Vec<OpenDevice>,
    /// One message per SIGINT or SIGTERM (stop and return) and per SIGHUP (call
    /// [`Reload::apply`])
    pub signals: Signals<Reread>,
    /// The monitor's side of the loop: show it every event, publish when due (off without
    /// `--monitor`)
    pub monitor: Feed,
    /// What a SIGHUP re-reads and applies
    pub reload: Reload,
    /// The flight recorder: show it every input before the machine gets it, and pass it to
    /// [`machine::drain`] (off without `--record`)
    pub recorder: record::Recorder,
    /// How long to keep polling the devices before sleeping (`--busy-poll`), when on
    pub busy_poll: Option<Duration>,
    /// The tunnel's kernel TCP connections in `--mode tcp`: [`TunnelSockets::start`] them with
    /// the runner's sink, and pass them to [`machine::drain`]
    pub sockets: TunnelSockets,
}

/// The tunnel's sockets before the runner's loop starts: none (FakeTCP), a client's, or a
/// server's listeners, bound at start so that a port in use is a start error
#[derive(Debug)]
pub enum TunnelSockets {
    /// FakeTCP
    Off,
    /// A client's: connections are opened when the machine asks
    Client,
    /// A server's listeners
    Server(Vec<std::net::TcpListener>),
}

impl TunnelSockets {
    /// The connections, their events going to `sink`
    pub fn start(self, sink: Sink) -> std::io::Result<Streams> {
        match self {
            Self::Off => Ok(Streams::off()),
            Self::Client => Ok(Streams::client(sink)),
            Self::Server(listeners) => Streams::server(listeners, sink),
        }
    }
}

/// A device with its pcap handles
#[derive(Debug)]
pub struct OpenDevice {
    /// The interface name
    pub name: String,
    /// Its capture and inject handles
    pub io: DeviceIo,
}

/// How a runner's loop ended
#[derive(Debug)]
pub struct Outcome {
    /// The machine's counters at the end
    pub stats: Stats,
    /// The capture and injection counters of each device at the end
    pub devices: Vec<ikago_monitor::DeviceCounters>,
    /// `Err` with a one-line reason when the loop stopped for a failure rather than a signal
    pub result: Result<(), String>,
}

/// What [`start`] sets up: the sessions for the loops, and what must outlive them
struct Started {
    /// One per engine
    sessions: Vec<Session>,
    /// Ends every engine's loop
    stop_all: StopAll<Reread>,
    /// Removed after the loop
    firewall: Option<Firewall>,
    /// Held until the process exits
    _port: Option<Reservation>,
    /// What the service manager hears about
    service: notify::Role,
}

/// A mistake found before the run (one line, exit code 2), or in a config reloaded
#[derive(Debug)]
pub(crate) struct StartError(pub(crate) String);

impl<E: std::fmt::Display> From<E> for StartError {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

/// Runs the program: `runner` names the binary in the banner, and `run` is the runner's loop,
/// called once per engine (on as many threads when a server runs several)
pub fn main(runner: &'static str, run: impl Fn(Session) -> Outcome + Sync) -> ExitCode {
    let cli = match Cli::parse_args(runner, std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e.to_string()),
    };
    let role = match cli.command {
        Command::ListDevices if cli.record != RecordArgs::default() => {
            return usage_error("--record and --record-max-mb record a client or a server");
        }
        Command::ListDevices => return list_devices(),
        Command::Check(_) if cli.record != RecordArgs::default() => {
            return usage_error("--record and --record-max-mb record a client or a server");
        }
        Command::Check(check) => return crate::check::run(runner, check.role),
        Command::Role(role) => role,
    };
    let Started {
        sessions,
        stop_all,
        firewall,
        _port,
        service,
    } = match start(runner, *role, cli.record) {
        Ok(started) => started,
        Err(StartError(e)) => return usage_error(&e),
    };
    if let Err(e) = notify::started(service) {
        log::warn!("Cannot notify the service manager: {e}");
    }
    let outcome = engines::run(sessions, &stop_all, &run);
    notify::stopping();
    events::flush();
    let removed = firewall.is_none_or(Firewall::remove);
    log::info!("{}", summary(&outcome.stats));
    for d in &outcome.devices {
        log::info!("{}", device_summary(d));
    }
    match outcome.result {
        Ok(()) if removed => ExitCode::SUCCESS,
        Ok(()) => ExitCode::from(EXIT_FAILURE),
        Err(e) => {
            log::error!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn usage_error(message: &str) -> ExitCode {
    logging::error(&format!("error: {message}"));
    ExitCode::from(EXIT_USAGE)
}

/// `list-devices`: one line per interface
fn list_devices() -> ExitCode {
    match discover::list() {
        Ok(list) => {
            for i in list {
                println!("{i}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&format!("cannot list devices: {e}")),
    }
}

/// Everything before the loop; the firewall guard undoes its changes if a later step fails
fn start(runner: &str, role: RoleCommand, record: RecordArgs) -> Result<Started, StartError> {
    let (started, started_wall) = (Instant::now(), SystemTime::now());
    let reader = Reader::new(role.clone(), record.clone());
    let record = record_settings(&role, record)?;
    let settings = Settings::load(role)?;
    let engines = match &settings {
        Settings::Client(_) => 1,
        Settings::Server(s) => s.engines(record.is_some())?,
    };
    let common = settings.common();
    logging::init(common.verbose, common.log.as_deref(), common.log_format)
        .map_err(|e| format!("cannot open log file: {e}"))?;
    log::info!(
        "IkaGo-rs {} {} ({runner})",
        settings.name(),
        env!("CARGO_PKG_VERSION")
    );
    privilege::acquire(common.rule)?;
    // first, so that a port in use stops the start before anything else is set up
    let monitor = match common.monitor_addr() {
        Some(addr) => Some(Monitor::start(addr)?),
        None => {
            if common.monitor_address != DEFAULT_MONITOR_ADDRESS {
                log::warn!("--monitor-address is ignored without --monitor");
            }
            None
        }
    };
    let transport = settings.common().mode;
    if transport == Transport::Tcp && record.is_some() {
        return Err(StartError(
            "--record records FakeTCP machines only (the flight recorder has no place for the \
             tunnel connection's bytes in tcp mode)"
                .into(),
        ));
    }
    // in tcp mode the tunnel's own socket holds the port
    let reservation = match settings
        .fixed_port()
        .filter(|_| transport == Transport::FakeTcp)
    {
        Some((what, p)) => port::reserve(what, p)?,
        None => None,
    };
    let devices = devices(&settings)?;
    let built = (0..engines)
        .map(|k| settings.build(devices.clone(), Shard::new(k, engines)?))
        .collect::<Result<Vec<Built>, StartError>>()?;
    describe(common, &devices);
    if engines > 1 {
        log::info!("Run {engines} engines, each with its share of the clients");
    }
    let mut open = Vec::with_capacity(built.len());
    for (k, b) in built.iter().enumerate() {
        let mut handles = Vec::with_capacity(devices.len());
        for (d, f) in devices.iter().zip(&b.filters) {
            match engines {
                1 => log::debug!("Filter on {}: {f}", d.name),
                _ => log::debug!("Filter of engine {k} on {}: {f}", d.name),
            }
            handles.push(OpenDevice {
                name: d.name.clone(),
                io: capture::open(&d.name, f, IoOptions::of(common))?,
            });
        }
        open.push(handles);
    }
    // a recording runs one engine ([`ServerSettings::engines`])
    let recorder = match &record {
        Some(r) => start_recorder(runner, r, &settings, &devices, &built[0])?,
        None => record::Recorder::off(),
    };
    let (signals, stop_all) = shutdown::catch(usize::from(engines), move || reader.read())
        .map_err(|e| format!("cannot catch signals: {e}"))?;
    // in tcp mode a server runs one engine ([`ServerSettings::engines`])
    let sockets = match (&built[0].machine, transport) {
        (_, Transport::FakeTcp) => TunnelSockets::Off,
        (Machine::Client(_), Transport::Tcp) => TunnelSockets::Client,
        (Machine::Server(_), Transport::Tcp) => {
            let port = common.port;
            let addrs: Vec<SocketAddr> = devices
                .iter()
                .filter(|d| d.role.listens())
                .flat_map(DeviceConfig::ips)
                .map(|ip| SocketAddr::new(ip, port))
                .collect();
            TunnelSockets::Server(stream::listen(&addrs)?)
        }
    };
    // the plan of any engine is the whole server's (every port of the pools)
    let firewall = if common.rule {
        Some(Firewall::install(&built[0].plan, None)?)
    } else if transport == Transport::Tcp {
        None
    } else {
        log::warn!(
            "Without --rule the kernel answers tunnel segments with RSTs unless a firewall drops \
             them (--rule installs such rules)"
        );
        None
    };
    if let Some(m) = &monitor {
        describe_monitor(m.local_addr());
    }
    let monitor_recorders = built
        .iter()
        .map(|b| {
            Recorder::new(
                machine::role(&b.machine),
                env!("CARGO_PKG_VERSION"),
                started,
                started_wall,
            )
            .with_probe_interval(b.probe_interval)
        })
        .collect();
    let feeds = Feed::shared(monitor, monitor_recorders, Instant::now());
    let service = settings.service();
    let busy_poll = common.busy_poll;
    let mut recorder = Some(recorder);
    let mut sockets = Some(sockets);
    let sessions = built
        .into_iter()
        .zip(open)
        .zip(signals.into_iter().zip(feeds))
        .enumerate()
        .map(|(k, ((b, devs), (signals, monitor)))| {
            let local = match &b.machine {
                Machine::Client(c) => Some(c.local_addr()),
                Machine::Server(_) => None,
            };
            let files = (devices.clone(), b.filters);
            let reload = Reload::new(settings.clone(), record.clone(), files, local);
            Session {
                machine: b.machine,
                devices: devs,
                signals,
                monitor,
                // the engines after the first say nothing of a reload, record nothing and
                // hold no tunnel connection
                reload: if k == 0 { reload } else { reload.quiet() },
                recorder: recorder.take().unwrap_or_else(record::Recorder::off),
                busy_poll,
                sockets: sockets.take().unwrap_or(TunnelSockets::Off),
            }
        })
        .collect();
    Ok(Started {
        sessions,
        stop_all,
        firewall,
        _port: reservation,
        service,
    })
}

/// The recorder's settings: the command line's over the config file's; `None` when off
pub(crate) fn record_settings(
    role: &RoleCommand,
    args: RecordArgs,
) -> Result<Option<RecordSettings>, StartError> {
    let config = match role {
        RoleCommand::Client(a) => &a.common.config,
        RoleCommand::Server(a) => &a.common.config,
    };
    let args = match config {
        Some(path) => args.or(load_file(path)?),
        None => args,
    };
    let settings = args.resolve()?;
    if settings.is_none() && args.record_max_mb.is_some() {
        log::warn!("--record-max-mb is ignored without --record");
    }
    Ok(settings)
}

/// Starts the flight recorder with the scenario of the machine just built
fn start_recorder(
    runner: &str,
    record: &RecordSettings,
    settings: &Settings,
    devices: &[DeviceConfig],
    built: &Built,
) -> Result<record::Recorder, StartError> {
    let (role, keys) = match settings {
        Settings::Client(c) => (ikago_replay::Role::Client, c.machine_keys()),
        Settings::Server(s) => (ikago_replay::Role::Server, s.machine_keys()),
    };
    let since_epoch = built
        .created_wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let scenario = ikago_replay::scenario::to_json(role, devices, since_epoch, &built.seed, keys);
    let names: Vec<String> = devices.iter().map(|d| d.name.clone()).collect();
    Ok(record::Recorder::start(
        record,
        &record::Recorded {
            application: &format!("{runner} {}", env!("CARGO_PKG_VERSION")),
            devices: &names,
            scenario: &scenario,
            created: built.created,
            created_wall: built.created_wall,
        },
    )?)
}

/// The devices of `settings`: those discovered, with the roles the options give them and the
/// upstream one's IPv6 gateway when `--gateway` names one, the upstream one checked to reach the
/// peer
pub(crate) fn devices(settings: &Settings) -> Result<Vec<DeviceConfig>, StartError> {
    let ifaces = discover::list().map_err(|e| format!("cannot list devices: {e}"))?;
    let (reach, routes6) = (settings.reach(), Routes6::read());
    let mut found = discover::candidates(
        &ifaces,
        &Routes::read(),
        &routes6,
        &Neighbors::read(),
        reach,
    );
    let neighbors6 = Neighbors6::read();
    discover::add_ipv6(&mut found, &ifaces, &routes6, &neighbors6, reach);
    let mut devices = settings.common().apply_device_roles(found)?;
    if let Some(gateway) = settings.common().gateway6 {
        discover::apply_gateway6(&mut devices, &ifaces, gateway, &neighbors6)?;
    }
    discover::check_upstream(&devices, reach)?;
    Ok(devices)
}

/// The validated settings of the role the command line chose
#[derive(Clone)]
pub enum Settings {
    /// `client`
    Client(ClientSettings),
    /// `server`
    Server(ServerSettings),
}

/// A machine with what goes around it
pub(crate) struct Built {
    pub(crate) machine: Machine,
    /// One BPF filter per device, in device order
    pub(crate) filters: Vec<String>,
    /// What `--rule` changes
    pub(crate) plan: Plan,
    /// How often the client probes the server, which the monitor's `ping` follows
    probe_interval: Duration,
    /// The seed of the machine's CSPRNG, drawn from the OS
    seed: [u8; 32],
    /// When the machine was created, and that instant's wall-clock time
    created: Instant,
    created_wall: SystemTime,
}

impl Settings {
    /// Merges the config file under the options and validates them
    pub(crate) fn load(role: RoleCommand) -> Result<Self, StartError> {
        Ok(match role {
            RoleCommand::Client(args) => Self::Client(ClientSettings::resolve(&args.load()?)?),
            RoleCommand::Server(args) => Self::Server(ServerSettings::resolve(&args.load()?)?),
        })
    }

    /// How `new` (re-read for a reload) differs from these settings
    pub(crate) fn changes(&self, new: &Self) -> Changes {
        match (self, new) {
            (Self::Client(old), Self::Client(new)) => old.changes(new),
            (Self::Server(old), Self::Server(new)) => old.changes(new),
            // the role comes from the command line, which a reload reads as it was
            _ => Changes {
                live: Vec::new(),
                restart: vec!["role"],
            },
        }
    }

    /// Takes the settings of `new` that a running machine applies, keeping the others
    pub(crate) fn adopt_live(&mut self, new: &Self) {
        match (self, new) {
            (Self::Client(old), Self::Client(new)) => old.adopt_live(new),
            (Self::Server(old), Self::Server(new)) => old.adopt_live(new),
            _ => {}
        }
    }

    pub(crate) fn common(&self) -> &CommonSettings {
        match self {
            Self::Client(c) => &c.common,
            Self::Server(s) => &s.common,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Client(_) => "client",
            Self::Server(_) => "server",
        }
    }

    /// The tunnel port this process must own, with its name for messages: the server's, or the
    /// client's local port when one is given
    pub(crate) fn fixed_port(&self) -> Option<(&'static str, u16)> {
        match self {
            Self::Client(c) => (c.common.port != 0).then_some(("local port", c.common.port)),
            Self::Server(s) => Some(("tunnel port", s.common.port)),
        }
    }

    /// What the service manager is told about ([`notify`])
    fn service(&self) -> notify::Role {
        match self {
            Self::Client(c) => notify::Role::Client { server: c.server },
            Self::Server(s) => notify::Role::Server {
                port: s.common.port,
            },
        }
    }

    /// What the upstream device must reach: the server, or for a server the default route
    pub(crate) fn reach(&self) -> Reach {
        Reach {
            peer: match self {
                Self::Client(c) => Some(c.server.ip()),
                Self::Server(_) => None,
            },
            gateway: self.common().gateway,
        }
    }

    /// The machine over `devices`, seeded from the OS, with its filters and firewall plan; a
    /// server's engine `shard` of several serves its share of the clients, at most its share of
    /// `max_clients`. The first engine (shard 0) logs what the machines speak.
    pub(crate) fn build(
        &self,
        devices: Vec<DeviceConfig>,
        shard: Shard,
    ) -> Result<Built, StartError> {
        let (seed, now, wall) = (os_seed()?, Instant::now(), SystemTime::now());
        let first = shard.index == 0;
        Ok(match self {
            Self::Client(c) => {
                let mut config = c.client_config(devices, seed);
                config.ikago2.unix_time = unix(wall);
                log::info!("Speak protocol {}", config.protocol);
                let core = Client::new(config.clone(), now)?;
                let local = core.local_addr();
                describe_proxy(&config.sources, &config.sources6, local, config.server);
                Built {
                    machine: core.into(),
                    filters: filter::client(&config, local),
                    plan: Plan::client(&config, local),
                    probe_interval: config.tcp.keepalive,
                    seed,
                    created: now,
                    created_wall: wall,
                }
            }
            Self::Server(s) => {
                let mut config = s.server_config(devices, seed);
                config.ikago2.unix_time = unix(wall);
                config.shard = shard;
                config.max_clients = config.max_clients.div_ceil(usize::from(shard.count));
                let core = Server::new(config.clone(), now)?;
                if first {
                    match config.protocol {
                        Some(p) => log::info!("Accept protocol {p} only"),
                        // ikago2 needs a password and does not carry KCP
                        None if config.password.is_empty() || config.kcp.is_some() => {
                            log::info!("Accept protocol ikago")
                        }
                        None => log::info!("Accept protocols ikago and ikago2"),
                    }
                    log::info!("Proxy from :{}", config.port);
                    describe_tunnel_addrs(&config);
                }
                Built {
                    machine: core.into(),
                    filters: filter::server(&config),
                    plan: Plan::server(&config),
                    probe_interval: DEFAULT_PROBE_INTERVAL,
                    seed,
                    created: now,
                    created_wall: wall,
                }
            }
        })
    }
}

/// `wall` as time since the Unix epoch: the machine's wall clock at its creation, which a
/// recording keeps for its replay
fn unix(wall: SystemTime) -> Duration {
    wall.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The startup lines about settings and devices
fn describe(common: &CommonSettings, devices: &[DeviceConfig]) {
    match common.mode {
        Transport::FakeTcp => log::info!("Use FakeTCP"),
        Transport::Tcp => log::info!("Use standard TCP"),
    }
    if common.method != Method::Plain {
        log::info!("Encrypt with {}", common.method);
    }
    log::info!("Set MTU to {} Bytes", common.mtu);
    log::info!("Set fragment to {} Bytes", common.fragment);
    for d in devices {
        let ipv4 = d.net4();
        if d.role.listens() {
            match ipv4 {
                Some(net) => log::info!("Listen on {} [{}]: {net}", d.name, d.mac),
                None => log::info!("Listen on {} [{}]: IPv6 only", d.name, d.mac),
            }
        }
        if d.role.is_upstream() {
            let gateway = match (d.gateway, d.gateway_mac) {
                (Some(g), Some(m)) => format!("gateway {g} [{m}]"),
                (Some(g), None) => format!("gateway {g}"),
                (None, _) => "on-link peers".to_owned(),
            };
            match ipv4 {
                Some(net) => log::info!(
                    "Route upstream from {} [{}]: {net} to {gateway}",
                    d.name,
                    d.mac
                ),
                None => log::info!("Route upstream from {} [{}]: IPv6 only", d.name, d.mac),
            }
        }
        if let Some(link) = d.ipv6 {
            let gateway = match (link.gateway, link.gateway_mac) {
                (Some(g), Some(m)) => format!(", IPv6 gateway {g} [{m}]"),
                (Some(g), None) => format!(", IPv6 gateway {g}"),
                (None, _) => String::new(),
            };
            log::info!("IPv6 on {}: {}{gateway}", d.name, link.net());
        }
    }
}

/// The line saying what the client tunnels (IPv4 and IPv6 sources) and over which family, at
/// start and when a reload changes the sources
pub(crate) fn describe_proxy(
    sources: &[Ipv4Net],
    sources6: &[Ipv6Net],
    local: SocketAddr,
    server: SocketAddr,
) {
    let sources6 = sources6.iter().map(ToString::to_string);
    let sources = (sources.iter().map(ToString::to_string))
        .chain(sources6)
        .collect::<Vec<_>>();
    let family = if server.is_ipv6() { "IPv6" } else { "IPv4" };
    log::info!(
        "Proxy {} through {local} to {server} (tunnel over {family})",
        sources.join(", ")
    );
}

/// The startup line naming the addresses a server takes tunnels on, with their family: each
/// listen device's IPv4 and IPv6 addresses, each when it has one
fn describe_tunnel_addrs(config: &ServerConfig) {
    let addrs: Vec<String> = config
        .devices
        .iter()
        .filter(|d| d.role.listens())
        .flat_map(DeviceConfig::ips)
        .map(|ip| SocketAddr::new(ip, config.port))
        .map(|a| format!("{a} ({})", if a.is_ipv6() { "IPv6" } else { "IPv4" }))
        .collect();
    log::info!("Take tunnels on {}", addrs.join(", "));
}

/// The startup line of the monitor, and a warning when others than this host may reach it
pub(crate) fn describe_monitor(addr: SocketAddr) {
    log::info!("Monitor on http://{addr}/ (/, /dns, /metrics, /dashboard)");
    if !addr.ip().is_loopback() {
        log::warn!(
            "The monitor listens on {}: whoever reaches it sees the traffic counters and the DNS \
             names learned",
            addr.ip()
        );
    }
}

/// 32 bytes from the OS for the machine's CSPRNG
pub(crate) fn os_seed() -> Result<[u8; 32], StartError> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(seed)
}
