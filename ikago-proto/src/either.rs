//! Either machine behind one type, for drivers that run a client or a server the same way
//!
//! A runner, the replay and the simulation all feed inputs and drain outputs without caring
//! which machine they hold; [`Machine`] dispatches to the [`Client`] or the [`Server`], and
//! [`MachineConfig`] builds either.

use crate::client::Client;
use crate::config::{ClientConfig, ConfigError, DeviceConfig, ServerConfig};
use crate::io::{Input, Output};
use crate::server::Server;
use crate::stats::Stats;
use std::time::Instant;

/// The configuration of a client or a server machine
#[derive(Debug, Clone)]
pub enum MachineConfig {
    /// A client's
    Client(ClientConfig),
    /// A server's
    Server(ServerConfig),
}

impl MachineConfig {
    /// The machine's devices, in [`DeviceId`](crate::DeviceId) order
    pub fn devices(&self) -> &[DeviceConfig] {
        match self {
            Self::Client(c) => &c.devices,
            Self::Server(s) => &s.devices,
        }
    }
}

/// A client or a server machine
///
/// ```
/// # use ikago_proto::*;
/// # use std::net::{IpAddr, Ipv4Addr, SocketAddr};
/// # use std::time::Instant;
/// let device = |name: &str, role, last| DeviceConfig {
///     name: name.into(),
///     role,
///     link: LinkType::Ethernet,
///     mac: Mac([2, 0, 0, 0, 0, last]),
///     addr: Some(Ipv4Addr::new(198, 18, last, 1)),
///     prefix_len: 24,
///     gateway: Some(Ipv4Addr::new(198, 18, last, 254)),
///     gateway_mac: None,
///     ipv6: None,
/// };
/// let devices = vec![device("lan0", DeviceRole::Listen, 1), device("wan0", DeviceRole::Upstream, 2)];
/// let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 3, 1)), 443);
/// let config = ClientConfig::new(devices, vec!["198.18.1.0/24".parse().unwrap()], server);
/// let mut machine = Machine::new(MachineConfig::Client(config), Instant::now())?;
/// assert!(machine.as_client().is_some());
/// let mut buf = vec![0; MAX_FRAME_LEN];
/// // the SYN waits for the gateway's MAC: the first frame out is an ARP request
/// assert!(matches!(machine.poll_output(&mut buf), Output::Transmit(_)));
/// # Ok::<(), ConfigError>(())
/// ```
#[derive(Debug)]
pub enum Machine {
    /// The client
    Client(Box<Client>),
    /// The server
    Server(Box<Server>),
}

impl Machine {
    /// Validates `config` and builds the machine it describes (see [`Client::new`] and
    /// [`Server::new`])
    pub fn new(config: MachineConfig, now: Instant) -> Result<Self, ConfigError> {
        Ok(match config {
            MachineConfig::Client(c) => Self::Client(Box::new(Client::new(c, now)?)),
            MachineConfig::Server(s) => Self::Server(Box::new(Server::new(s, now)?)),
        })
    }

    /// Feeds a frame or the passage of time; then drain [`Machine::poll_output`]
    #[inline]
    pub fn handle_input(&mut self, input: Input<'_>) {
        match self {
            Self::Client(c) => c.handle_input(input),
            Self::Server(s) => s.handle_input(input),
        }
    }

    /// The next frame to inject or event, else the instant to call back; `buf` must hold
    /// [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN) bytes
    #[inline]
    pub fn poll_output(&mut self, buf: &mut [u8]) -> Output {
        match self {
            Self::Client(c) => c.poll_output(buf),
            Self::Server(s) => s.poll_output(buf),
        }
    }

    /// A snapshot of the counters
    pub fn stats(&self) -> Stats {
        match self {
            Self::Client(c) => c.stats(),
            Self::Server(s) => s.stats(),
        }
    }

    /// The client, if this is one
    pub fn as_client(&self) -> Option<&Client> {
        match self {
            Self::Client(c) => Some(c),
            Self::Server(_) => None,
        }
    }

    /// The server, if this is one
    pub fn as_server(&self) -> Option<&Server> {
        match self {
            Self::Client(_) => None,
            Self::Server(s) => Some(s),
        }
    }
}

impl From<Client> for Machine {
    fn from(c: Client) -> Self {
        Self::Client(Box::new(c))
    }
}

impl From<Server> for Machine {
    fn from(s: Server) -> Self {
        Self::Server(Box::new(s))
    }
}
