//! The live runners under test (`ikago-sync`, `ikago-async`): finding them and their command lines

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::addr::{
    HOST_A, HOST_A6, HOST_B, HOST_B6, HOST_C, HOST_C6, HOST_D6, PUBLISHED_GATEWAY,
    PUBLISHED_GATEWAY6, SERVER_WAN, SERVER_WAN6, SERVER2_WAN, SERVER2_WAN6, TUNNEL_PORT,
};
use crate::{Host, LabError, Result};

/// What a client prints once its tunnel is up
pub const CONNECTED: &str = "Connected to server";

/// What a server (with `--rule`, as the lab starts it) prints once its captures are open and its
/// rules in place: from then on it answers a handshake at the first SYN
pub const SERVER_READY: &str = "Install firewall rules in";

/// Directory with prebuilt runner binaries; unset, the lab builds them itself (release)
pub const BIN_DIR_ENV: &str = "IKAGO_LAB_BIN_DIR";

/// One of the two live runners
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    /// `ikago-sync`: blocking threads
    Sync,
    /// `ikago-async`: async tasks
    Async,
}

impl Runner {
    /// Both runners
    pub const BOTH: [Self; 2] = [Self::Sync, Self::Async];

    /// Short name, for labels
    pub fn name(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Async => "async",
        }
    }

    /// The binary's file name
    fn binary_name(self) -> &'static str {
        match self {
            Self::Sync => "ikago-sync",
            Self::Async => "ikago-async",
        }
    }

    /// The package that builds it
    fn package(self) -> &'static str {
        match self {
            Self::Sync => "ikago-runner-sync",
            Self::Async => "ikago-runner-async",
        }
    }

    /// Path of the runner's binary: from [`BIN_DIR_ENV`], else built (once per process) in
    /// release mode into `target/lab`, a target directory of its own so that building never
    /// waits on the lock of a `cargo test` that is running us
    pub fn binary(self) -> Result<String> {
        if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
            let path = PathBuf::from(dir).join(self.binary_name());
            return match path.exists() {
                true => Ok(path.to_string_lossy().into_owned()),
                false => Err(LabError::Check(format!(
                    "{} does not exist ({BIN_DIR_ENV})",
                    path.display()
                ))),
            };
        }
        static BUILT: [OnceLock<Result<String, String>>; 2] = [OnceLock::new(), OnceLock::new()];
        BUILT[self as usize]
            .get_or_init(|| self.build().map_err(|e| e.to_string()))
            .clone()
            .map_err(LabError::Check)
    }

    fn build(self) -> Result<String> {
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = workspace.join("target").join("lab");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(&cargo)
            .current_dir(&workspace)
            .args(["build", "--release", "-p", self.package(), "--target-dir"])
            .arg(&target)
            .status()
            .map_err(|source| LabError::Spawn {
                cmd: format!("{cargo} build -p {}", self.package()),
                source,
            })?;
        if !status.success() {
            return Err(LabError::Check(format!(
                "building {} failed ({status})",
                self.package()
            )));
        }
        Ok(target
            .join("release")
            .join(self.binary_name())
            .to_string_lossy()
            .into_owned())
    }
}

/// Which client machine a client runs on
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientSite {
    /// The client machine: sources host A and host B, publishes host B's gateway
    Main,
    /// The second client machine: source host C
    Second,
}

impl ClientSite {
    /// The machine
    pub fn host(self) -> Host {
        match self {
            Self::Main => Host::Client,
            Self::Second => Host::Client2,
        }
    }

    /// Short name, for labels
    pub fn name(self) -> &'static str {
        match self {
            Self::Main => "client",
            Self::Second => "client2",
        }
    }
}

/// Which server machine a server runs on
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerSite {
    /// The server machine (198.18.23.2)
    Main,
    /// The second server machine (198.18.26.2), for failover
    Second,
}

impl ServerSite {
    /// The machine
    pub fn host(self) -> Host {
        match self {
            Self::Main => Host::Server,
            Self::Second => Host::Server2,
        }
    }

    /// Short name, for labels
    pub fn name(self) -> &'static str {
        match self {
            Self::Main => "server",
            Self::Second => "server2",
        }
    }

    /// The tunnel address the clients reach it at
    pub fn addr(self) -> Ipv4Addr {
        match self {
            Self::Main => SERVER_WAN,
            Self::Second => SERVER2_WAN,
        }
    }

    /// The IPv6 tunnel address the clients reach it at in a dual-stack lab
    pub fn addr6(self) -> Ipv6Addr {
        match self {
            Self::Main => SERVER_WAN6,
            Self::Second => SERVER2_WAN6,
        }
    }
}

/// The tunnel's settings, shared by server and client unless a test makes them differ
#[derive(Clone, Debug)]
pub struct TunnelOptions {
    /// Encryption method (`plain`, `aes-256-gcm`, ...)
    pub method: String,
    /// Password, for every method but `plain`
    pub password: Option<String>,
    /// The server's tunnel port
    pub port: u16,
    /// The servers a client is given (`-s`), the preferred first
    pub servers: Vec<ServerSite>,
    /// The wire (`--protocol`), unless the runners' default
    pub protocol: Option<&'static str>,
    /// Tunnel the LAN hosts' IPv6 too (a dual-stack lab, the ikago2 wire): the client's `-r`
    /// gains their IPv6 addresses (host D's, IPv6 only, on the main LAN) and its `--publish`
    /// host B's IPv6 gateway
    pub ipv6: bool,
    /// Run the tunnel itself over IPv6 (a dual-stack lab): the client's `-s` gives each server's
    /// IPv6 address ([`ServerSite::addr6`]), `[ADDR]:PORT`
    pub tunnel6: bool,
    /// Extra arguments appended to both command lines
    pub extra: Vec<String>,
    /// Extra arguments appended to the server's command line only (`--threads 2`)
    pub server_extra: Vec<String>,
}

impl Default for TunnelOptions {
    fn default() -> Self {
        Self {
            method: "plain".into(),
            password: None,
            port: TUNNEL_PORT,
            servers: vec![ServerSite::Main],
            protocol: None,
            ipv6: false,
            tunnel6: false,
            extra: Vec::new(),
            server_extra: Vec::new(),
        }
    }
}

impl TunnelOptions {
    /// Settings for `method` with `password` on the Go-compatible wire (`--protocol ikago`),
    /// which has every method
    pub fn encrypted(method: &str, password: &str) -> Self {
        Self {
            method: method.into(),
            password: Some(password.into()),
            protocol: Some("ikago"),
            ..Self::default()
        }
    }

    /// ikago2 with `password` on both ends (`--protocol ikago2`: a server that answers only
    /// clients proving the key), its record cipher the one the CPU runs fastest
    pub fn ikago2(password: &str) -> Self {
        Self {
            password: Some(password.into()),
            protocol: Some("ikago2"),
            ..Self::default()
        }
    }

    /// [`Self::ikago2`] with the LAN hosts' IPv6 tunnelled as well (see [`Self::ipv6`])
    pub fn dual_stack(password: &str) -> Self {
        Self {
            ipv6: true,
            ..Self::ikago2(password)
        }
    }

    /// `server -p PORT --listen-devices wan0 --upstream-device dst0 --rule -v ...`
    pub fn server_args(&self) -> Vec<String> {
        let mut args = vec!["server".to_owned(), "-p".into(), self.port.to_string()];
        args.extend(["--listen-devices", "wan0", "--upstream-device", "dst0"].map(String::from));
        let mut args = self.common(args);
        args.extend(self.server_extra.iter().cloned());
        args
    }

    /// `client -r SOURCES -s SERVER:PORT[,SERVER:PORT] --listen-devices lan0 --upstream-device wan0 ...`
    pub fn client_args(&self, site: ClientSite) -> Vec<String> {
        let mut sources = match site {
            ClientSite::Main => format!("{HOST_A},{HOST_B}"),
            ClientSite::Second => HOST_C.to_string(),
        };
        if self.ipv6 {
            sources += &match site {
                ClientSite::Main => format!(",{HOST_A6},{HOST_B6},{HOST_D6}"),
                ClientSite::Second => format!(",{HOST_C6}"),
            };
        }
        let mut args = vec!["client".to_owned(), "-r".into(), sources];
        let servers = self
            .servers
            .iter()
            .map(|&s| self.server_addr(s).to_string())
            .collect::<Vec<_>>();
        args.extend(["-s".into(), servers.join(",")]);
        args.extend(["--listen-devices", "lan0", "--upstream-device", "wan0"].map(String::from));
        if site == ClientSite::Main {
            let mut publish = PUBLISHED_GATEWAY.to_string();
            if self.ipv6 {
                publish += &format!(",{PUBLISHED_GATEWAY6}");
            }
            args.extend(["--publish".into(), publish]);
        }
        self.common(args)
    }

    /// The tunnel address of server `site` a client is given: IPv6 with [`Self::tunnel6`]
    pub fn server_addr(&self, site: ServerSite) -> SocketAddr {
        match self.tunnel6 {
            true => SocketAddr::new(site.addr6().into(), self.port),
            false => SocketAddr::new(site.addr().into(), self.port),
        }
    }

    fn common(&self, mut args: Vec<String>) -> Vec<String> {
        args.extend(["--method".into(), self.method.clone()]);
        if let Some(password) = &self.password {
            args.extend(["--password".into(), password.clone()]);
        }
        if let Some(protocol) = self.protocol {
            args.extend(["--protocol".into(), protocol.into()]);
        }
        args.extend(["--rule".into(), "-v".into()]);
        args.extend(self.extra.iter().cloned());
        args
    }
}
