//! Configuration errors: each one clear lower-case line, shown before anything touches the network

use ikago_proto::Method;
use std::net::IpAddr;
use std::path::PathBuf;

/// A mistake in the options or the config file
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file cannot be read
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file
        path: PathBuf,
        /// Why
        source: std::io::Error,
    },
    /// The config file is not valid JSON for the options (serde's message has the line and column)
    #[error("bad config file {path}: {source}")]
    Parse {
        /// The file
        path: PathBuf,
        /// serde's error, with line and column
        source: serde_json::Error,
    },
    /// A mode other than faketcp or tcp
    #[error("unknown mode {0:?} (expected faketcp or tcp)")]
    UnknownMode(String),
    /// A protocol other than ikago, ikago2 (or both, on a server)
    #[error("unknown protocol {0:?} (expected ikago or ikago2, or both on a server)")]
    UnknownProtocol(String),
    /// Protocol ikago2 without a password
    #[error(
        "protocol ikago2 needs a password (--password, IKAGO_PASSWORD or the config file's \"password\")"
    )]
    Ikago2NeedsPassword,
    /// Protocol ikago2 with KCP
    #[error("protocol ikago2 does not carry kcp (use --protocol ikago with --kcp)")]
    Ikago2WithKcp,
    /// A KCP tuning the core refuses (e.g. too many shards)
    #[error(transparent)]
    Kcp(#[from] ikago_proto::KcpConfigError),
    /// A KCP tuning value out of its range
    #[error("kcp-{name} {value} out of range ({expected})")]
    KcpRange {
        /// The option without its `kcp-` prefix
        name: &'static str,
        /// The value given
        value: i64,
        /// The allowed range, in words
        expected: &'static str,
    },
    /// An unknown encryption method
    #[error(
        "unknown method {0:?} (expected plain, aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-poly1305 or xchacha20-poly1305)"
    )]
    UnknownMethod(String),
    /// A method other than plain without a password
    #[error(
        "method {0} needs a password (--password, IKAGO_PASSWORD or the config file's \"password\")"
    )]
    MissingPassword(Method),
    /// A gateway that is neither an IPv4 nor an IPv6 address
    #[error(
        "invalid gateway address {0:?} (expected an IPv4 or IPv6 address like 198.18.0.1 or 2001:db8:24::ff)"
    )]
    BadGateway(String),
    /// Two gateways of one family
    #[error("two {family} gateways ({first} and {second}): give at most one of each family")]
    TwoGateways {
        /// `IPv4` or `IPv6`
        family: &'static str,
        /// The first one given
        first: IpAddr,
        /// The second one given
        second: IpAddr,
    },
    /// A monitor address that is not an IP address
    #[error(
        "invalid monitor address {0:?} (expected an IP address like 127.0.0.1, or 0.0.0.0 for every interface)"
    )]
    BadMonitorAddress(String),
    /// A source that is neither an IPv4 nor an IPv6 address or CIDR block
    #[error(
        "invalid source {0:?} (expected an IPv4 or IPv6 address or CIDR block like 198.18.11.0/24 or 2001:db8:1::/64)"
    )]
    BadSource(String),
    /// A published address that is neither IPv4 nor IPv6
    #[error(
        "invalid publish address {0:?} (expected an IPv4 or IPv6 address like 198.18.11.254 or 2001:db8:1::1)"
    )]
    BadPublish(String),
    /// IPv6 sources on the `ikago` wire, which carries IPv4 only
    #[error(
        "IPv6 sources travel over the ikago2 wire only (give a password, and no --kcp or --protocol ikago)"
    )]
    Ipv6NeedsIkago2,
    /// The client was given no sources
    #[error("no sources given (-r ADDR[,ADDR...])")]
    NoSources,
    /// The client was given no server
    #[error("no server given (-s HOST:PORT)")]
    NoServer,
    /// A server that is not `HOST:PORT` or `[IPV6]:PORT`, or whose name does not resolve
    #[error(
        "invalid server {0:?} (expected HOST:PORT with an IPv4 address, [ADDR]:PORT with an IPv6 address, or a resolvable name)"
    )]
    BadServer(String),
    /// Port 0 in the client's server address
    #[error("server {0:?} has port 0")]
    ServerPortZero(String),
    /// The server was given no listening port, or port 0
    #[error("server port must be given with -p (1-65535)")]
    ServerPortMissing,
    /// A tunnel MTU below 576
    #[error("mtu {0} out of range 576-65535")]
    MtuRange(u16),
    /// A capture buffer outside 1-1024 MiB
    #[error("capture-buffer-mb {0} out of range 1-1024")]
    CaptureBufferRange(u32),
    /// A busy-poll budget above one second
    #[error("busy-poll {0} out of range 0-1000000 microseconds")]
    BusyPollRange(u32),
    /// `--threads` outside 1-256
    #[error("threads {0} out of range 1-{max}", max = crate::settings::MAX_THREADS)]
    ThreadsRange(u16),
    /// `--threads` given to a client
    #[error("--threads is a server option (a client runs one engine)")]
    ClientThreads,
    /// More than one engine with the flight recorder
    #[error(
        "threads {0} with record: a recording replays one engine (give threads 1, or leave it out)"
    )]
    ThreadsWithRecord(u16),
    /// More than one engine in `--mode tcp`
    #[error("threads {0} with mode tcp: the tunnel's kernel connections run on one engine")]
    ThreadsWithTcp(u16),
    /// A fragment size below 576
    #[error("fragment {0} out of range 576-65535")]
    FragmentRange(u16),
    /// A recording size bound of 0, or too large to count in bytes
    #[error("record-max-mb {0} out of range (1 to {max})", max = u64::MAX / 1_000_000)]
    RecordMaxMb(u64),
    /// A device named in an option that the runner did not find
    #[error("unknown {option} {name:?} (devices: {known})")]
    UnknownDevice {
        /// The option naming it
        option: &'static str,
        /// The name given
        name: String,
        /// The devices there are, comma-separated
        known: String,
    },
}
