//! Configuration of the machines, validated by `Client::new` and `Server::new`

use crate::crypto::Method;
use crate::ikago2::{Psk, RecordCipher, Rekey};
use crate::kcp::{KcpConfigError, KcpTuning};
use crate::shard::Shard;
use crate::wire::Mac;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

/// Smallest tunnel MTU or fragment size accepted (the original's lower bound, RFC 791's 576)
pub const MIN_MTU: u16 = 576;

/// How the tunnel travels between client and server (the original's `-mode`)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// FakeTCP: segments that no kernel socket owns, captured and injected (the default)
    #[default]
    FakeTcp,
    /// A kernel TCP connection the runner opens; the machine frames inner packets in its byte
    /// stream (see the `stream` module docs)
    Tcp,
}

impl Transport {
    /// The name the options use: `faketcp` or `tcp`
    pub fn name(self) -> &'static str {
        match self {
            Self::FakeTcp => "faketcp",
            Self::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a device is used for
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRole {
    /// The local side: client LAN devices where sources live; server devices where clients arrive
    Listen,
    /// Toward the peer (client) or the Internet (server)
    Upstream,
    /// Both at once, as on a one-NIC server
    Both,
}

impl DeviceRole {
    /// Whether the device listens (LAN side on the client, tunnel side on the server)
    pub fn listens(self) -> bool {
        matches!(self, Self::Listen | Self::Both)
    }
    /// Whether the device is the upstream one
    pub fn is_upstream(self) -> bool {
        matches!(self, Self::Upstream | Self::Both)
    }
}

/// The link layer of a device's frames
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LinkType {
    /// Ethernet II
    #[default]
    Ethernet,
}

/// One network device, as the runner discovered it
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Interface name (for events and logs)
    pub name: String,
    /// What the device is used for
    pub role: DeviceRole,
    /// Link type of its frames
    pub link: LinkType,
    /// Its MAC address
    pub mac: Mac,
    /// Its IPv4 address (the tunnel or NAT address on the upstream device); `None` on a device
    /// with IPv6 only ([`Self::ipv6`] is then required), where `prefix_len`, `gateway` and
    /// `gateway_mac` are unused, no ARP request leaves it, and on the server's upstream
    /// device inner IPv4 is a counted drop
    pub addr: Option<Ipv4Addr>,
    /// Prefix length of its IPv4 subnet
    pub prefix_len: u8,
    /// The IPv4 default gateway reached through it, if any (required on the upstream device
    /// unless the peer is on-link)
    pub gateway: Option<Ipv4Addr>,
    /// The gateway's MAC when the runner knows it (otherwise the core resolves it by ARP)
    pub gateway_mac: Option<Mac>,
    /// Its global IPv6 address, when it has one: on the server's upstream device the address
    /// inner IPv6 is NATed onto (NAT66); `None` there makes inner IPv6 a counted drop
    pub ipv6: Option<Ipv6Link>,
}

/// A device's global IPv6 address, its prefix and its IPv6 default gateway
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Link {
    /// The address
    pub addr: Ipv6Addr,
    /// Prefix length of its on-link prefix, 0 to 128
    pub prefix_len: u8,
    /// The IPv6 default router reached through the device (usually link-local), if any
    pub gateway: Option<Ipv6Addr>,
    /// The gateway's MAC when the runner knows it (otherwise the core resolves it by neighbour
    /// discovery)
    pub gateway_mac: Option<Mac>,
}

impl Ipv6Link {
    /// The on-link prefix
    pub fn net(&self) -> Ipv6Net {
        Ipv6Net {
            addr: self.addr,
            prefix_len: self.prefix_len,
        }
    }
}

impl DeviceConfig {
    /// Its addresses: the IPv4 one, then the IPv6 one, each when it has it
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + use<> {
        self.ip_of(false).into_iter().chain(self.ip_of(true))
    }

    /// Its address of one family (IPv6 when `ipv6`), when it has one
    pub fn ip_of(&self, ipv6: bool) -> Option<IpAddr> {
        match ipv6 {
            true => self.ipv6.map(|l| IpAddr::V6(l.addr)),
            false => self.addr.map(IpAddr::V4),
        }
    }

    /// Its IPv4 address with the prefix length of its subnet, when it has IPv4
    pub fn net4(&self) -> Option<Ipv4Net> {
        self.addr.map(|addr| Ipv4Net {
            addr,
            prefix_len: self.prefix_len,
        })
    }

    /// Whether `ip` is in this device's IPv4 subnet (never on a device without IPv4)
    pub fn on_link(&self, ip: Ipv4Addr) -> bool {
        self.net4().is_some_and(|n| n.contains(ip))
    }
}

/// An IPv4 network in CIDR form; a bare address is a /32
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// The address
    pub addr: Ipv4Addr,
    /// Prefix length, 0 to 32
    pub prefix_len: u8,
}

impl Ipv4Net {
    /// The netmask as a number
    fn mask(self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix_len.min(32)))
        }
    }
    /// Whether `ip` is inside the network
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) ^ u32::from(self.addr)) & self.mask() == 0
    }
}

/// An IPv6 network in CIDR form; a bare address is a /128
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Net {
    /// The address
    pub addr: Ipv6Addr,
    /// Prefix length, 0 to 128
    pub prefix_len: u8,
}

impl Ipv6Net {
    /// The netmask as a number
    fn mask(self) -> u128 {
        if self.prefix_len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.prefix_len.min(128)))
        }
    }
    /// Whether `ip` is inside the network
    pub fn contains(self, ip: Ipv6Addr) -> bool {
        (u128::from(ip) ^ u128::from(self.addr)) & self.mask() == 0
    }
}

impl From<Ipv6Addr> for Ipv6Net {
    fn from(addr: Ipv6Addr) -> Self {
        Self {
            addr,
            prefix_len: 128,
        }
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix_len == 128 {
            self.addr.fmt(f)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix_len)
        }
    }
}

impl FromStr for Ipv6Net {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadNetwork(s.to_owned());
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().map_err(|_| bad())?),
            None => (s.trim(), 128),
        };
        if p > 128 {
            return Err(bad());
        }
        Ok(Self {
            addr: a.parse().map_err(|_| bad())?,
            prefix_len: p,
        })
    }
}

impl From<Ipv4Addr> for Ipv4Net {
    fn from(addr: Ipv4Addr) -> Self {
        Self {
            addr,
            prefix_len: 32,
        }
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix_len == 32 {
            self.addr.fmt(f)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix_len)
        }
    }
}

impl FromStr for Ipv4Net {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ConfigError::BadNetwork(s.to_owned());
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().map_err(|_| bad())?),
            None => (s.trim(), 32),
        };
        if p > 32 {
            return Err(bad());
        }
        Ok(Self {
            addr: a.parse().map_err(|_| bad())?,
            prefix_len: p,
        })
    }
}

/// The wire spoken inside the FakeTCP connection
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// The Go original's wire (`nonce || ciphertext || tag` per segment)
    Ikago,
    /// Our hardened wire: Noise handshake, records with counters and anti-replay, rekeying,
    /// SYN proofs (see [`crate::ikago2`] and `docs/protocol.md`)
    Ikago2,
}

impl Protocol {
    /// The name used on the command line and in config files
    pub fn name(self) -> &'static str {
        match self {
            Self::Ikago => "ikago",
            Self::Ikago2 => "ikago2",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Protocol {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ikago" => Ok(Self::Ikago),
            "ikago2" => Ok(Self::Ikago2),
            _ => Err(ConfigError::UnknownProtocol(s.to_owned())),
        }
    }
}

/// What `ikago2` needs beyond the shared settings, for either machine
#[derive(Debug, Clone, Default)]
pub struct Ikago2Config {
    /// Pad records to 128-byte buckets (`--padding`), blurring inner packet lengths
    pub padding: bool,
    /// The Unix time at the `now` given to `new` (runners: the wall clock; a replay: the
    /// recorded start). SYN proofs and initiations carry the time
    pub unix_time: Duration,
    /// The PSK derived beforehand by [`Psk::derive`] for this password and the server's port
    /// (a client's `server`; fallbacks on other ports derive theirs); `None` derives it in
    /// `new` (tens of milliseconds)
    pub psk: Option<Psk>,
    /// Rekeying limits ([`Rekey::default`]: WireGuard's)
    pub rekey: Rekey,
}

impl Ikago2Config {
    /// The PSK for `password` and `port`: the one given when it is for `port` (the server's
    /// own, `given_for`), else derived now
    pub(crate) fn psk_for(&self, password: &str, port: u16, given_for: u16) -> Psk {
        match &self.psk {
            Some(p) if port == given_for => p.clone(),
            _ => Psk::derive(password, port),
        }
    }
}

/// FakeTCP timing and shape; the defaults behave like a Linux TCP connection
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpTuning {
    /// First SYN retransmission timeout (RFC 6298 §2: 1 s); doubled on each retry
    pub syn_rto: Duration,
    /// Upper bound of the SYN retransmission timeout
    pub syn_rto_max: Duration,
    /// Interval of keepalive probes (their answers also measure the RTT)
    pub keepalive: Duration,
    /// Consider the peer lost after this long without hearing from it
    pub peer_timeout: Duration,
    /// Send a pure ACK once this many received payload bytes are unacknowledged; keeps strict
    /// conntrack windows moving on one-way flows
    pub ack_bytes: u32,
    /// Send a pure ACK this long after unacknowledged data arrived (delayed ACK, RFC 9293 §3.8.6.3)
    pub ack_delay: Duration,
    /// Inner packets kept while a handshake is in progress
    pub pending_packets: usize,
}

impl Default for TcpTuning {
    fn default() -> Self {
        Self {
            syn_rto: Duration::from_secs(1),
            syn_rto_max: Duration::from_secs(4),
            keepalive: Duration::from_secs(5),
            peer_timeout: Duration::from_secs(20),
            ack_bytes: 16 * 1024,
            ack_delay: Duration::from_millis(40),
            pending_packets: 256,
        }
    }
}

/// Limits of IPv4 reassembly
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyLimits {
    /// Datagrams being reassembled at once
    pub max_entries: usize,
    /// Bytes buffered across all datagrams
    pub max_bytes: usize,
    /// An incomplete datagram is dropped after this long (RFC 791 suggests 15 s; Linux uses 30 s)
    pub timeout: Duration,
}

impl Default for ReassemblyLimits {
    fn default() -> Self {
        Self {
            max_entries: 256,
            max_bytes: 4 << 20,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Server NAT pools and timeouts
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConfig {
    /// Public TCP ports (the original used 49152-65535)
    pub tcp_ports: RangeInclusive<u16>,
    /// Public UDP ports
    pub udp_ports: RangeInclusive<u16>,
    /// Public ICMP query ids
    pub icmp_ids: RangeInclusive<u16>,
    /// Idle timeout of UDP mappings (RFC 4787 REQ-5: at least 2 minutes)
    pub udp_timeout: Duration,
    /// Idle timeout of TCP mappings (RFC 5382 REQ-5: at least 2 h 4 min once established)
    pub tcp_timeout: Duration,
    /// Idle timeout of TCP mappings after a FIN or RST (RFC 5382: 4 minutes for transitory)
    pub tcp_closing_timeout: Duration,
    /// Idle timeout of ICMP query mappings (RFC 5508 REQ-1: at least 60 s)
    pub icmp_timeout: Duration,
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            tcp_ports: 49152..=65535,
            udp_ports: 49152..=65535,
            icmp_ids: 0..=65535,
            udp_timeout: Duration::from_secs(120),
            tcp_timeout: Duration::from_secs(7440),
            tcp_closing_timeout: Duration::from_secs(240),
            icmp_timeout: Duration::from_secs(60),
        }
    }
}

/// Configuration of a [`Client`](crate::Client)
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Devices; exactly one is upstream, at least one listens
    pub devices: Vec<DeviceConfig>,
    /// LAN sources whose packets are tunnelled (addresses or CIDR blocks)
    pub sources: Vec<Ipv4Net>,
    /// Addresses answered by proxy ARP on the listen devices
    pub publish: Vec<Ipv4Addr>,
    /// LAN IPv6 sources whose packets are tunnelled (addresses or prefixes); carried over the
    /// `ikago2` wire only (on `ikago` their packets are dropped as
    /// [`DropReason::Ipv6OnIkago`](crate::DropReason::Ipv6OnIkago))
    pub sources6: Vec<Ipv6Net>,
    /// IPv6 addresses answered by proxy NDP (neighbour advertisements) on the listen devices
    pub publish6: Vec<Ipv6Addr>,
    /// The server's tunnel address (the preferred one when there are fallbacks)
    pub server: SocketAddr,
    /// More servers, tried in turn when the current one goes silent, resets or does not answer
    /// the handshake (failover); empty for one server
    pub fallback: Vec<SocketAddr>,
    /// With fallbacks: after this long on another server, try `server` again
    pub failback: Option<Duration>,
    /// Local FakeTCP port (`tcp` mode: the port the connection is bound to); 0 draws one from
    /// 49152-65535
    pub port: u16,
    /// FakeTCP or a kernel TCP connection
    pub transport: Transport,
    /// Encryption method
    pub method: Method,
    /// Password for every method but plain
    pub password: String,
    /// Largest FakeTCP frame (IPv4 bytes); bigger frames go out as IPv4 fragments
    pub mtu: u16,
    /// Largest IPv4 packet written to the LAN; bigger ones are fragmented (or refused with DF)
    pub fragment: u16,
    /// FakeTCP behaviour
    pub tcp: TcpTuning,
    /// Reassembly limits
    pub reassembly: ReassemblyLimits,
    /// KCP with FEC over the tunnel (the original's `-kcp`); both sides must agree
    pub kcp: Option<KcpTuning>,
    /// The first KCP conversation id; `None` draws it from the CSPRNG (as the original does).
    /// A replay sets the recorded one. Conversations after a reconnect are always drawn.
    pub kcp_conv: Option<u32>,
    /// Report the names and addresses (A and AAAA records) in DNS answers to the sources, over
    /// either family, as [`Event::DnsRecord`](crate::Event) (for a monitor's `/dns`)
    pub dns_records: bool,
    /// The wire to speak; [`Protocol::Ikago2`] needs a password and uses `method` only to
    /// choose its record cipher (see [`ClientConfig::record_cipher`])
    pub protocol: Protocol,
    /// `ikago2` settings
    pub ikago2: Ikago2Config,
    /// Seed of the machine's CSPRNG (ISN, IP IDs, port, nonces); runners fill it from the OS
    pub rng_seed: [u8; 32],
}

impl ClientConfig {
    /// A configuration with the original's defaults for everything but the given parts
    pub fn new(devices: Vec<DeviceConfig>, sources: Vec<Ipv4Net>, server: SocketAddr) -> Self {
        Self {
            devices,
            sources,
            publish: Vec::new(),
            sources6: Vec::new(),
            publish6: Vec::new(),
            server,
            fallback: Vec::new(),
            failback: None,
            port: 0,
            transport: Transport::FakeTcp,
            method: Method::Plain,
            password: String::new(),
            mtu: 1500,
            fragment: 1500,
            tcp: TcpTuning::default(),
            reassembly: ReassemblyLimits::default(),
            kcp: None,
            kcp_conv: None,
            dns_records: false,
            protocol: Protocol::Ikago,
            ikago2: Ikago2Config::default(),
            rng_seed: [0; 32],
        }
    }

    /// The `ikago2` record cipher `method` chooses: AES-256-GCM for the AES methods,
    /// ChaCha20-Poly1305 otherwise (runners turn `plain` into the one the CPU runs fastest)
    pub fn record_cipher(&self) -> RecordCipher {
        match self.method {
            Method::Aes128Gcm | Method::Aes192Gcm | Method::Aes256Gcm => RecordCipher::Aes256Gcm,
            _ => RecordCipher::ChaCha20Poly1305,
        }
    }
}

/// Configuration of a [`Server`](crate::Server)
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Devices; clients arrive on listen devices, NAT traffic leaves by the one upstream device
    pub devices: Vec<DeviceConfig>,
    /// FakeTCP listening port (`tcp` mode: the port the runner listens on; not 0)
    pub port: u16,
    /// FakeTCP or kernel TCP connections
    pub transport: Transport,
    /// Encryption method
    pub method: Method,
    /// Password for every method but plain
    pub password: String,
    /// Largest FakeTCP frame (IPv4 bytes) toward clients
    pub mtu: u16,
    /// Largest IPv4 packet sent toward destinations
    pub fragment: u16,
    /// NAT pools and timeouts
    pub nat: NatConfig,
    /// FakeTCP behaviour
    pub tcp: TcpTuning,
    /// Reassembly limits
    pub reassembly: ReassemblyLimits,
    /// Clients served at once
    pub max_clients: usize,
    /// A silent client is forgotten after this long (its NAT mappings stay until they expire)
    pub client_timeout: Duration,
    /// KCP with FEC over the tunnel (the original's `-kcp`); both sides must agree
    pub kcp: Option<KcpTuning>,
    /// Which engine of a sharded server this is: it serves only its clients and its slice of
    /// each NAT pool ([`Shard::WHOLE`] for a server of one engine)
    pub shard: Shard,
    /// The wires accepted: `None` both on the same port (told apart per connection; `ikago2`
    /// only with a password), `Some(p)` only `p`. An `ikago2`-only server answers no SYN
    /// without a proof of the key and no unauthenticated data
    pub protocol: Option<Protocol>,
    /// `ikago2` settings
    pub ikago2: Ikago2Config,
    /// Seed of the machine's CSPRNG
    pub rng_seed: [u8; 32],
}

impl ServerConfig {
    /// A configuration with defaults for everything but the given parts
    pub fn new(devices: Vec<DeviceConfig>, port: u16) -> Self {
        Self {
            devices,
            port,
            transport: Transport::FakeTcp,
            method: Method::Plain,
            password: String::new(),
            mtu: 1500,
            fragment: 1500,
            nat: NatConfig::default(),
            tcp: TcpTuning::default(),
            reassembly: ReassemblyLimits::default(),
            max_clients: 1024,
            client_timeout: Duration::from_secs(600),
            kcp: None,
            shard: Shard::WHOLE,
            protocol: None,
            ikago2: Ikago2Config::default(),
            rng_seed: [0; 32],
        }
    }
}

/// A configuration mistake, reported by `new` before anything runs
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No device has the upstream role
    #[error("no upstream device")]
    NoUpstreamDevice,
    /// More than one device has the upstream role
    #[error("more than one upstream device")]
    ManyUpstreamDevices,
    /// No device listens
    #[error("no listen device")]
    NoListenDevice,
    /// More than 255 devices
    #[error("too many devices (at most 255)")]
    TooManyDevices,
    /// A device prefix length above 32
    #[error("device {0}: prefix length must be at most 32")]
    BadPrefix(String),
    /// The client has no sources
    #[error("no sources given")]
    NoSources,
    /// A method other than plain with an empty password
    #[error("method {0} needs a password")]
    EmptyPassword(Method),
    /// An unknown method name
    #[error(
        "unknown method {0:?} (expected plain, aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-poly1305 or xchacha20-poly1305)"
    )]
    UnknownMethod(String),
    /// A network that is not an address or an address with a prefix length (`a.b.c.d/n`,
    /// `x:y::z/n`)
    #[error("invalid network {0:?} (expected an address or CIDR block)")]
    BadNetwork(String),
    /// A device with neither an IPv4 nor an IPv6 address
    #[error("device {0} has neither an IPv4 nor an IPv6 address")]
    NoAddress(String),
    /// An IPv4 server while the upstream device has no IPv4 address to reach it from
    #[error("server {1} is an IPv4 address but upstream device {0} has no IPv4 address")]
    NoIpv4Upstream(String, SocketAddr),
    /// A device IPv6 prefix length above 128
    #[error("device {0}: IPv6 prefix length must be at most 128")]
    BadPrefix6(String),
    /// A tunnel MTU outside 576-65535
    #[error("mtu {0} out of range 576-65535")]
    MtuOutOfRange(u16),
    /// A fragment size outside 576-65535
    #[error("fragment {0} out of range 576-65535")]
    FragmentOutOfRange(u16),
    /// Server port 0
    #[error("server port must not be 0")]
    PortZero,
    /// An empty or inverted NAT range
    #[error("NAT range {0} is empty")]
    EmptyNatRange(&'static str),
    /// The upstream device cannot reach the peer: it is off-link and there is no gateway
    #[error("no gateway on upstream device {0} and {1} is not on its subnet")]
    NoGateway(String, Ipv4Addr),
    /// An IPv6 server while the upstream device has no IPv6 address to reach it from
    #[error("server {1} is an IPv6 address but upstream device {0} has no IPv6 address")]
    NoIpv6Upstream(String, SocketAddr),
    /// A zero limit
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A shard index not below the shard count
    #[error("shard {0} of {1} does not exist (shards are numbered from 0)")]
    ShardOutOfRange(u16, u16),
    /// A NAT range with fewer ports than the server has engines
    #[error("NAT range {0} has fewer ports than the {1} engines")]
    NatRangeTooSmall(&'static str, u16),
    /// `tcp` mode with an encrypted method on the compatible wire: the original's stream has
    /// no lengths to find the sealed packets by
    #[error(
        "mode tcp carries the compatible wire only with method plain: encrypted packets cannot \
         be delimited in the original's stream (use protocol ikago2, or faketcp)"
    )]
    StreamNeedsPlain,
    /// `tcp` mode with KCP or fallback servers, which run over FakeTCP only
    #[error("mode tcp does not take {0} (FakeTCP only)")]
    StreamExcludes(&'static str),
    /// A KCP tuning out of range
    #[error(transparent)]
    Kcp(#[from] KcpConfigError),
    /// An unknown protocol name
    #[error("unknown protocol {0:?} (expected ikago or ikago2)")]
    UnknownProtocol(String),
    /// `ikago2` without a password
    #[error("protocol ikago2 needs a password")]
    Ikago2NeedsPassword,
    /// `ikago2` with KCP, which it does not carry
    #[error("protocol ikago2 does not carry KCP (use --protocol ikago with --kcp)")]
    Ikago2WithKcp,
}

/// The devices split by role, shared by both machines' validation
#[derive(Debug, Clone, Copy)]
pub(crate) struct Roles {
    /// Index of the upstream device
    pub(crate) upstream: usize,
}

impl Roles {
    /// Validates the device list: at most 255, each with an address of either family, exactly one
    /// upstream, at least one listening
    pub(crate) fn of(devices: &[DeviceConfig]) -> Result<Self, ConfigError> {
        if devices.len() > 255 {
            return Err(ConfigError::TooManyDevices);
        }
        if let Some(d) = devices.iter().find(|d| d.prefix_len > 32) {
            return Err(ConfigError::BadPrefix(d.name.clone()));
        }
        if let Some(d) = devices
            .iter()
            .find(|d| d.ipv6.is_some_and(|l| l.prefix_len > 128))
        {
            return Err(ConfigError::BadPrefix6(d.name.clone()));
        }
        if let Some(d) = devices
            .iter()
            .find(|d| d.addr.is_none() && d.ipv6.is_none())
        {
            return Err(ConfigError::NoAddress(d.name.clone()));
        }
        let mut ups = devices
            .iter()
            .enumerate()
            .filter(|(_, d)| d.role.is_upstream());
        let upstream = ups.next().ok_or(ConfigError::NoUpstreamDevice)?.0;
        if ups.next().is_some() {
            return Err(ConfigError::ManyUpstreamDevices);
        }
        if !devices.iter().any(|d| d.role.listens()) {
            return Err(ConfigError::NoListenDevice);
        }
        Ok(Self { upstream })
    }
}

/// Checks what `tcp` mode cannot carry: the compatible wire encrypted, KCP (`protocol` `None`
/// is a server's both wires, whose compatible one must then be plain)
pub(crate) fn check_transport(
    transport: Transport,
    protocol: Option<Protocol>,
    method: Method,
    kcp: Option<&KcpTuning>,
) -> Result<(), ConfigError> {
    if transport == Transport::FakeTcp {
        return Ok(());
    }
    if method != Method::Plain && protocol != Some(Protocol::Ikago2) {
        return Err(ConfigError::StreamNeedsPlain);
    }
    if kcp.is_some() {
        return Err(ConfigError::StreamExcludes("--kcp"));
    }
    Ok(())
}

/// Checks the tunnel MTU and fragment size ranges and the password
pub(crate) fn check_common(
    mtu: u16,
    fragment: u16,
    method: Method,
    password: &str,
    kcp: Option<&KcpTuning>,
) -> Result<(), ConfigError> {
    if mtu < MIN_MTU {
        return Err(ConfigError::MtuOutOfRange(mtu));
    }
    if fragment < MIN_MTU {
        return Err(ConfigError::FragmentOutOfRange(fragment));
    }
    if method != Method::Plain && password.is_empty() {
        return Err(ConfigError::EmptyPassword(method));
    }
    if let Some(k) = kcp {
        k.validate()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_match() {
        let n: Ipv4Net = "198.18.11.0/24".parse().unwrap();
        assert!(n.contains(Ipv4Addr::new(198, 18, 11, 200)));
        assert!(!n.contains(Ipv4Addr::new(198, 18, 12, 1)));
        let one: Ipv4Net = "198.18.11.2".parse().unwrap();
        assert_eq!(one.prefix_len, 32);
        assert!(one.contains(Ipv4Addr::new(198, 18, 11, 2)));
        assert!(!one.contains(Ipv4Addr::new(198, 18, 11, 3)));
        let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
        for bad in ["1.2.3.4/33", "1.2.3/8", "x", "1.2.3.4/"] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
        assert_eq!(n.to_string(), "198.18.11.0/24");
    }

    #[test]
    fn ipv6_networks_parse_and_match() {
        let n: Ipv6Net = "2001:db8:1::/64".parse().unwrap();
        assert!(n.contains("2001:db8:1::42".parse().unwrap()));
        assert!(n.contains("2001:db8:1:0:ffff::1".parse().unwrap()));
        assert!(!n.contains("2001:db8:2::42".parse().unwrap()));
        let one: Ipv6Net = "fd00::7".parse().unwrap();
        assert_eq!(one.prefix_len, 128);
        assert!(one.contains("fd00::7".parse().unwrap()));
        assert!(!one.contains("fd00::8".parse().unwrap()));
        assert_eq!(one, Ipv6Net::from("fd00::7".parse::<Ipv6Addr>().unwrap()));
        let all: Ipv6Net = "::/0".parse().unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
        let odd: Ipv6Net = "2001:db8:ff00::/39".parse().unwrap();
        assert!(odd.contains("2001:db8:ff00::1".parse().unwrap()));
        assert!(odd.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!odd.contains("2001:db9::1".parse().unwrap()));
        for bad in [
            "2001:db8::/129",
            "2001:db8::1::2",
            "198.18.0.1",
            "x",
            "fd00::/",
        ] {
            assert!(bad.parse::<Ipv6Net>().is_err(), "{bad}");
        }
        assert_eq!(n.to_string(), "2001:db8:1::/64");
        assert_eq!(one.to_string(), "fd00::7");
    }
}
