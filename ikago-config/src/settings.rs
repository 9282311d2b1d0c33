//! Validated settings with defaults applied, and their conversion into the core's configs

use crate::args::{ClientArgs, CommonArgs, ServerArgs};
use crate::error::Error;
use crate::kcp::{tuning_from_args, tuning_keys};
use crate::log_format::LogFormat;
use ikago_proto::KcpTuning;
use ikago_proto::{
    ClientConfig, DeviceConfig, DeviceRole, Ipv4Net, Ipv6Net, MIN_MTU, Method, Protocol,
    ServerConfig, Transport,
};
use serde_json::{Map, Value};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

/// Kernel buffer of each capture unless `--capture-buffer-mb` says otherwise, MiB
pub const DEFAULT_CAPTURE_BUFFER_MB: u32 = 8;

/// The original's default tunnel MTU and fragment size (reference §9.1)
const DEFAULT_MTU: u16 = 1500;

/// Where the monitor listens unless `--monitor-address` says otherwise: this host only
pub const DEFAULT_MONITOR_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Whether injected frames skip a device's queueing discipline (`PACKET_QDISC_BYPASS`,
/// `--qdisc-bypass`)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QdiscBypass {
    /// On the devices that queue nothing anyway: root qdisc `noqueue` and no `clsact` qdisc
    /// (no tc program on egress), as veth devices have by default (no option given)
    #[default]
    Auto,
    /// On every device (`--qdisc-bypass`, key `qdisc-bypass: true`)
    On,
    /// On none (`--qdisc-bypass=false`)
    Off,
}

/// Settings both roles share, validated
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommonSettings {
    /// Devices to listen on; empty means every non-loopback device (the runner decides)
    pub listen_devices: Vec<String>,
    /// The upstream device, when named
    pub upstream_device: Option<String>,
    /// The IPv4 gateway, when given
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 gateway of the upstream device, when given (in place of its IPv6 router)
    pub gateway6: Option<Ipv6Addr>,
    /// FakeTCP or a kernel TCP connection (`mode`)
    pub mode: Transport,
    /// Encryption method
    pub method: Method,
    /// Its password (empty for plain)
    pub password: String,
    /// Whether to install firewall rules
    pub rule: bool,
    /// Monitor HTTP port, if on
    pub monitor: Option<u16>,
    /// Address the monitor listens on ([`DEFAULT_MONITOR_ADDRESS`] unless given)
    pub monitor_address: IpAddr,
    /// Verbose output
    pub verbose: bool,
    /// Log file, if any
    pub log: Option<PathBuf>,
    /// Layout of the log lines
    pub log_format: LogFormat,
    /// Largest FakeTCP frame (IPv4 bytes)
    pub mtu: u16,
    /// Largest IPv4 packet toward the local side
    pub fragment: u16,
    /// KCP with FEC over the tunnel (`--kcp`)
    pub kcp: bool,
    /// KCP tuning, validated even when KCP is off (as the original does)
    pub kcp_tuning: KcpTuning,
    /// Client: local port (0 = random); server: listening port
    pub port: u16,
    /// Kernel buffer of each capture, MiB
    pub capture_buffer_mb: u32,
    /// Whether injected frames skip the devices' queueing disciplines
    pub qdisc_bypass: QdiscBypass,
    /// How long to keep polling the devices before sleeping; `None` sleeps at once
    pub busy_poll: Option<Duration>,
    /// The wire chosen (`--protocol`); `None`: the role's default (see [`ClientSettings`] and
    /// [`ServerSettings`])
    pub protocol: Option<Protocol>,
    /// ikago2: pad records to size buckets
    pub padding: bool,
}

/// Client settings, validated
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The shared part
    pub common: CommonSettings,
    /// LAN sources to tunnel
    pub sources: Vec<Ipv4Net>,
    /// LAN IPv6 sources to tunnel (over the ikago2 wire only)
    pub sources6: Vec<Ipv6Net>,
    /// The server's tunnel address (the preferred one), IPv4 or IPv6
    pub server: SocketAddr,
    /// Servers tried in turn after `server` (failover), of either family
    pub fallback: Vec<SocketAddr>,
    /// With fallbacks: time on another server before the first is tried again
    pub failback: Option<Duration>,
    /// Addresses answered by proxy ARP
    pub publish: Vec<Ipv4Addr>,
    /// IPv6 addresses answered by proxy NDP
    pub publish6: Vec<Ipv6Addr>,
    /// The wire spoken: `--protocol`, else ikago2 with a password in FakeTCP mode and ikago
    /// otherwise (without a password, with KCP, in `tcp` mode)
    pub protocol: Protocol,
}

/// Engines a server may run (`--threads`)
pub const MAX_THREADS: u16 = 256;

/// Server settings, validated (`common.port` is not 0)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// The shared part
    pub common: CommonSettings,
    /// Engines asked for with `--threads` (1 to [`MAX_THREADS`]); `None`: see
    /// [`ServerSettings::engines`]
    pub threads: Option<u16>,
}

/// Parses an IPv4 address given to `option`
/// The gateways of `--gateway`: at most one IPv4 and one IPv6 address, in any order
fn gateways(items: &[String]) -> Result<(Option<Ipv4Addr>, Option<Ipv6Addr>), Error> {
    let (mut v4, mut v6) = (None, None);
    for item in items {
        let ip: IpAddr = item
            .trim()
            .parse()
            .map_err(|_| Error::BadGateway(item.clone()))?;
        let (family, first) = match ip {
            IpAddr::V4(a) => ("IPv4", v4.replace(a).map(IpAddr::V4)),
            IpAddr::V6(a) => ("IPv6", v6.replace(a).map(IpAddr::V6)),
        };
        if let Some(first) = first {
            return Err(Error::TwoGateways {
                family,
                first,
                second: ip,
            });
        }
    }
    Ok((v4, v6))
}

/// The sources of `-r`: each item an IPv4 or an IPv6 address or prefix
fn sources(items: &[String]) -> Result<(Vec<Ipv4Net>, Vec<Ipv6Net>), Error> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for s in items {
        let bad = || Error::BadSource(s.clone());
        if s.contains(':') {
            v6.push(s.parse::<Ipv6Net>().map_err(|_| bad())?);
        } else {
            v4.push(s.parse::<Ipv4Net>().map_err(|_| bad())?);
        }
    }
    Ok((v4, v6))
}

/// The addresses of `--publish`: a comma list of IPv4 and IPv6 addresses
fn published(list: Option<&str>) -> Result<(Vec<Ipv4Addr>, Vec<Ipv6Addr>), Error> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for p in list.into_iter().flat_map(|p| p.split(',')).map(str::trim) {
        match p.parse::<IpAddr>() {
            _ if p.is_empty() => {}
            Ok(IpAddr::V4(a)) => v4.push(a),
            Ok(IpAddr::V6(a)) => v6.push(a),
            Err(_) => return Err(Error::BadPublish(p.to_owned())),
        }
    }
    Ok((v4, v6))
}

/// Resolves `HOST:PORT` to a socket address: an IPv4 address, an IPv6 one in brackets
/// (`[2001:db8::1]:18081`), or a name, which resolves to its first IPv4 address, else its first
/// IPv6 one
fn server_addr(value: &str) -> Result<SocketAddr, Error> {
    let bad = || Error::BadServer(value.to_owned());
    let v = value.trim();
    let addr = match v.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            let (host, port) = v.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            // a host of digits and dots that is not a dotted quad (`1.2.3`) would be read by the
            // resolver as an old shorthand (1.2.0.3), and one with a colon is an IPv6 address
            // without its brackets: refuse them rather than guess
            let digits = host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
            if host.is_empty() || digits || host.contains(':') {
                return Err(bad());
            }
            let found: Vec<SocketAddr> =
                (host, port).to_socket_addrs().map_err(|_| bad())?.collect();
            let first_v4 = found.iter().find(|a| a.is_ipv4());
            *first_v4.or(found.first()).ok_or_else(bad)?
        }
    };
    if addr.port() == 0 {
        return Err(Error::ServerPortZero(value.to_owned()));
    }
    Ok(addr)
}

impl CommonSettings {
    /// Validates the shared options and applies the defaults
    pub fn resolve(a: &CommonArgs) -> Result<Self, Error> {
        let mode = match a.mode.as_deref().map(str::trim) {
            None | Some("faketcp") => Transport::FakeTcp,
            Some("tcp") => Transport::Tcp,
            Some(other) => return Err(Error::UnknownMode(other.to_owned())),
        };
        let method = match &a.method {
            None => Method::Plain,
            Some(m) => m.parse().map_err(|_| Error::UnknownMethod(m.clone()))?,
        };
        let password = a.password.clone().unwrap_or_default();
        if method != Method::Plain && password.is_empty() {
            return Err(Error::MissingPassword(method));
        }
        let mtu = a.mtu.unwrap_or(DEFAULT_MTU);
        if mtu < MIN_MTU {
            return Err(Error::MtuRange(mtu));
        }
        let fragment = a.fragment.unwrap_or(DEFAULT_MTU);
        if fragment < MIN_MTU {
            return Err(Error::FragmentRange(fragment));
        }
        let kcp_tuning = tuning_from_args(&a.kcp_tuning)?;
        let capture_buffer_mb = a.capture_buffer_mb.unwrap_or(DEFAULT_CAPTURE_BUFFER_MB);
        if !(1..=1024).contains(&capture_buffer_mb) {
            return Err(Error::CaptureBufferRange(capture_buffer_mb));
        }
        let busy_poll = match a.busy_poll.unwrap_or(0) {
            0 => None,
            us @ 1..=1_000_000 => Some(Duration::from_micros(us.into())),
            us => return Err(Error::BusyPollRange(us)),
        };
        let kcp = a.kcp == Some(true);
        let protocol = match a.protocol.as_deref().map(str::trim) {
            None | Some("both") => None,
            Some(p) => Some(
                p.parse()
                    .map_err(|_| Error::UnknownProtocol(p.to_owned()))?,
            ),
        };
        if protocol == Some(Protocol::Ikago2) {
            if password.is_empty() {
                return Err(Error::Ikago2NeedsPassword);
            }
            if kcp {
                return Err(Error::Ikago2WithKcp);
            }
        }
        let (gateway, gateway6) = gateways(a.gateway.as_deref().unwrap_or_default())?;
        let monitor_address = match a.monitor_address.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_MONITOR_ADDRESS,
            Some(ip) => ip
                .parse()
                .map_err(|_| Error::BadMonitorAddress(ip.to_owned()))?,
        };
        Ok(Self {
            listen_devices: a.listen_devices.clone().unwrap_or_default(),
            upstream_device: a.upstream_device.clone().filter(|s| !s.trim().is_empty()),
            gateway,
            gateway6,
            mode,
            method,
            password,
            rule: a.rule.unwrap_or(false),
            monitor: a.monitor.filter(|&p| p != 0),
            monitor_address,
            verbose: a.verbose,
            log: a.log.clone().filter(|p| !p.as_os_str().is_empty()),
            log_format: a.log_format.unwrap_or_default(),
            mtu,
            fragment,
            kcp,
            kcp_tuning,
            port: a.port.unwrap_or(0),
            capture_buffer_mb,
            qdisc_bypass: match a.qdisc_bypass {
                None => QdiscBypass::Auto,
                Some(true) => QdiscBypass::On,
                Some(false) => QdiscBypass::Off,
            },
            busy_poll,
            protocol,
            padding: a.padding.unwrap_or(false),
        })
    }

    /// The config-file keys of the settings the core's configuration takes from these (mode, method,
    /// sizes, port, KCP), never the password: see [`ClientSettings::machine_keys`]
    fn machine_keys(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if self.mode != Transport::FakeTcp {
            m.insert("mode".into(), self.mode.name().into());
        }
        m.insert("method".into(), self.method.name().into());
        m.insert("mtu".into(), self.mtu.into());
        m.insert("fragment".into(), self.fragment.into());
        m.insert("port".into(), self.port.into());
        m.insert("kcp".into(), self.kcp.into());
        if self.kcp {
            m.insert("kcp-tuning".into(), tuning_keys(&self.kcp_tuning));
        }
        if self.padding {
            m.insert("padding".into(), true.into());
        }
        m
    }

    /// The ikago2 settings of the core's configuration; its wall clock (`unix_time`) is left
    /// at 0 for the caller to set: the runner's clock at the machine's creation, or a
    /// recording's start
    fn ikago2_config(&self) -> ikago_proto::Ikago2Config {
        ikago_proto::Ikago2Config {
            padding: self.padding,
            ..Default::default()
        }
    }

    /// Where the monitor listens, when it is on (`--monitor` not 0)
    pub fn monitor_addr(&self) -> Option<SocketAddr> {
        self.monitor
            .map(|port| SocketAddr::new(self.monitor_address, port))
    }

    /// Applies `--listen-devices` and `--upstream-device` to the devices the caller found
    ///
    /// When listen devices are named, exactly those listen; when an upstream device is named, it
    /// alone is upstream; a device named by both is [`DeviceRole::Both`]. An option not given
    /// leaves the caller's roles as they are. Devices left with no role are removed. A name not
    /// among `devices` is an error.
    pub fn apply_device_roles(
        &self,
        devices: Vec<DeviceConfig>,
    ) -> Result<Vec<DeviceConfig>, Error> {
        let named = self.listen_devices.iter().map(|n| ("listen device", n));
        for (option, name) in
            named.chain(self.upstream_device.iter().map(|n| ("upstream device", n)))
        {
            if !devices.iter().any(|d| &d.name == name) {
                let known = devices
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Error::UnknownDevice {
                    option,
                    name: name.clone(),
                    known,
                });
            }
        }
        Ok(devices
            .into_iter()
            .filter_map(|mut d| {
                let listens = if self.listen_devices.is_empty() {
                    d.role.listens()
                } else {
                    self.listen_devices.contains(&d.name)
                };
                let upstream = match &self.upstream_device {
                    Some(u) => *u == d.name,
                    None => d.role.is_upstream(),
                };
                d.role = match (listens, upstream) {
                    (true, true) => DeviceRole::Both,
                    (true, false) => DeviceRole::Listen,
                    (false, true) => DeviceRole::Upstream,
                    (false, false) => return None,
                };
                Some(d)
            })
            .collect())
    }
}

impl ClientSettings {
    /// Validates client options and applies the defaults
    pub fn resolve(a: &ClientArgs) -> Result<Self, Error> {
        if a.threads.is_some() {
            return Err(Error::ClientThreads);
        }
        let common = CommonSettings::resolve(&a.common)?;
        let (sources, sources6) = sources(a.sources.as_deref().unwrap_or_default())?;
        if sources.is_empty() && sources6.is_empty() {
            return Err(Error::NoSources);
        }
        let mut servers = a
            .server
            .iter()
            .flatten()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(server_addr)
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(Error::NoServer);
        }
        let server = servers.remove(0);
        let failback = a.failback.map(Duration::from_secs);
        let (publish, publish6) = published(a.publish.as_deref())?;
        let mut common = common;
        let protocol = common
            .protocol
            .unwrap_or(if common.password.is_empty() || common.kcp {
                Protocol::Ikago
            } else {
                Protocol::Ikago2
            });
        if protocol == Protocol::Ikago && !sources6.is_empty() {
            return Err(Error::Ipv6NeedsIkago2);
        }
        if protocol == Protocol::Ikago2 && common.method == Method::Plain {
            // ikago2 always encrypts: with no method given, the cipher this CPU runs fastest
            common.method = fastest_record_method();
        }
        Ok(Self {
            common,
            sources,
            sources6,
            server,
            fallback: servers,
            failback,
            publish,
            publish6,
            protocol,
        })
    }

    /// The config-file keys that give the client of these settings again, for a recording's
    /// scenario: every setting [`Self::client_config`] reads except the password, which is never
    /// written down (`monitor` is among them: it turns on the DNS records). Resolved with a
    /// password, they give the same configuration over the same devices.
    pub fn machine_keys(&self) -> Map<String, Value> {
        let mut m = self.common.machine_keys();
        let sources: Vec<String> = (self.sources.iter().map(ToString::to_string))
            .chain(self.sources6.iter().map(ToString::to_string))
            .collect();
        m.insert("sources".into(), sources.into());
        let servers: Vec<String> = std::iter::once(&self.server)
            .chain(&self.fallback)
            .map(ToString::to_string)
            .collect();
        m.insert("server".into(), servers.join(",").into());
        if let Some(after) = self.failback {
            m.insert("failback".into(), after.as_secs().into());
        }
        if !self.publish.is_empty() || !self.publish6.is_empty() {
            let publish: Vec<String> = (self.publish.iter().map(ToString::to_string))
                .chain(self.publish6.iter().map(ToString::to_string))
                .collect();
            m.insert("publish".into(), publish.join(",").into());
        }
        if let Some(port) = self.common.monitor {
            m.insert("monitor".into(), port.into());
        }
        m.insert("protocol".into(), self.protocol.name().into());
        m
    }

    /// The core's configuration for these settings over `devices` (roles already set, see
    /// [`CommonSettings::apply_device_roles`]), seeding its CSPRNG with `rng_seed`; every setting
    /// it reads must be in [`Self::machine_keys`] too, or recordings would not replay
    pub fn client_config(&self, devices: Vec<DeviceConfig>, rng_seed: [u8; 32]) -> ClientConfig {
        let c = &self.common;
        let mut config = ClientConfig::new(devices, self.sources.clone(), self.server);
        config.fallback = self.fallback.clone();
        config.failback = self.failback;
        config.publish = self.publish.clone();
        config.sources6 = self.sources6.clone();
        config.publish6 = self.publish6.clone();
        config.port = c.port;
        config.transport = c.mode;
        config.method = c.method;
        config.password = c.password.clone();
        config.mtu = c.mtu;
        config.fragment = c.fragment;
        config.kcp = c.kcp.then_some(c.kcp_tuning);
        // the monitor's /dns lists the names in DNS answers, as the original's did
        config.dns_records = c.monitor.is_some();
        config.protocol = self.protocol;
        config.ikago2 = c.ikago2_config();
        config.rng_seed = rng_seed;
        config
    }
}

impl ServerSettings {
    /// Validates server options and applies the defaults
    pub fn resolve(a: &ServerArgs) -> Result<Self, Error> {
        let common = CommonSettings::resolve(&a.common)?;
        if common.port == 0 {
            return Err(Error::ServerPortMissing);
        }
        let threads = a.threads;
        if let Some(n) = threads {
            if !(1..=MAX_THREADS).contains(&n) {
                return Err(Error::ThreadsRange(n));
            }
            if n > 1 && common.mode == Transport::Tcp {
                return Err(Error::ThreadsWithTcp(n));
            }
        }
        Ok(Self { common, threads })
    }

    /// How many engines to run: `--threads` when given, else one per core (at most
    /// [`MAX_THREADS`]); one in `--mode tcp` (the kernel's connections are not sharded) and
    /// when `recording` (a recording replays one machine), where more than one given is an error
    pub fn engines(&self, recording: bool) -> Result<u16, Error> {
        match self.threads {
            Some(n) if n > 1 && recording => Err(Error::ThreadsWithRecord(n)),
            Some(n) => Ok(n),
            None if recording || self.common.mode == Transport::Tcp => Ok(1),
            None => Ok(std::thread::available_parallelism()
                .map_or(1, |n| u16::try_from(n.get()).unwrap_or(MAX_THREADS))
                .min(MAX_THREADS)),
        }
    }

    /// The config-file keys that give the server of these settings again, never the password
    /// (see [`ClientSettings::machine_keys`])
    pub fn machine_keys(&self) -> Map<String, Value> {
        let mut m = self.common.machine_keys();
        let protocol = self.common.protocol.map_or("both", Protocol::name);
        m.insert("protocol".into(), protocol.into());
        m
    }

    /// The core's configuration for these settings over `devices` (roles already set), seeding
    /// its CSPRNG with `rng_seed`; every setting it reads must be in [`Self::machine_keys`] too
    pub fn server_config(&self, devices: Vec<DeviceConfig>, rng_seed: [u8; 32]) -> ServerConfig {
        let c = &self.common;
        let mut config = ServerConfig::new(devices, c.port);
        config.transport = c.mode;
        config.method = c.method;
        config.password = c.password.clone();
        config.mtu = c.mtu;
        config.fragment = c.fragment;
        config.kcp = c.kcp.then_some(c.kcp_tuning);
        config.protocol = c.protocol;
        config.ikago2 = c.ikago2_config();
        config.rng_seed = rng_seed;
        config
    }
}

/// The ikago2 record method this CPU runs fastest: AES-256-GCM with the AES instructions,
/// ChaCha20-Poly1305 without
pub fn fastest_record_method() -> Method {
    #[cfg(target_arch = "x86_64")]
    let aes = std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    let aes = std::arch::is_aarch64_feature_detected!("aes");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let aes = false;
    if aes {
        Method::Aes256Gcm
    } else {
        Method::ChaCha20Poly1305
    }
}
