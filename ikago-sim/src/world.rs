//! The World: clients with their LANs, the router and its link, the server and the Internet, on
//! one virtual clock
//!
//! ```text
//! LAN hosts --LAN(i)-- client i --client-side WAN-- router ==link== --server-side WAN-- server
//!                                                                        Internet hosts --'
//!                                                      remote hosts --edge router ==link==--'
//! ```
//!
//! Hosts may also sit on either WAN segment, beside the clients or the server, to exchange
//! traffic through the router without the tunnel. The edge router joins the Internet segment
//! to the segment beyond it, with its own link ([`WorldConfig::edge`]); only IPv6 reaches it from
//! the server (whose IPv6 gateway it is), so it is where an Internet-side Packet Too Big comes
//! from.
//!
//! Time is virtual: one real `Instant` is taken at creation and the machines see that instant
//! plus virtual time; smoltcp sees the virtual time in microseconds. [`World::step`] jumps to the
//! earliest due thing (a frame arriving, a machine's timeout, a host's `poll_at`) and handles
//! everything due then. Everything random is drawn from the World's seed.

use crate::addr::{
    self, CLIENT_LAN, CLIENT_LAN6, EDGE_INTERNET, EDGE_INTERNET6, EDGE_REMOTE, EDGE_REMOTE6,
    PREFIX_LEN, PREFIX_LEN6, ROUTER_INSIDE, ROUTER_INSIDE6, ROUTER_OUTSIDE, ROUTER_OUTSIDE6,
    SERVER_PORT, SERVER_PUBLIC, SERVER_PUBLIC6, SERVER_WAN, SERVER_WAN6, TAG_CLIENT_WAN,
    TAG_INTERNET, TAG_REMOTE, TAG_SERVER_WAN,
};
use crate::capture::Capture;
use crate::drops::Drops;
use crate::fabric::{Fabric, LoggedEvent, Origin, Owner, PortId};
use crate::host::{Host, HostConfig};
use crate::link::LinkConfig;
use crate::machine::Node;
use crate::router::{Port, Router, RouterConfig, Side};
use crate::streams::{Streams, To};
use ikago_proto::Ikago2Config;
use ikago_proto::ikago2::Psk;
use ikago_proto::{
    Client, ClientConfig, DeviceConfig, DeviceRole, Ipv4Net, Ipv6Link, Ipv6Net, LinkType, Mac,
    Method, Server, ServerConfig, Stats,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Steps one `run_for` may take before the World is declared stuck
const RUN_FOR_MAX_STEPS: u64 = 2_000_000;
/// Random stream of the WAN link (each purpose draws its own stream from the World's seed)
const STREAM_LINK: u64 = 1;
/// Random stream of the server's CSPRNG seed
const STREAM_SERVER: u64 = 2;
/// Random streams of the clients' CSPRNG seeds (plus the client's index)
const STREAM_CLIENT: u64 = 0x100;
/// Random streams of the hosts' stacks (plus the host's index)
const STREAM_HOST: u64 = 0x1000;
/// Random streams of the fallback servers' CSPRNG seeds (plus the server's index)
const STREAM_FALLBACK: u64 = 0x200;
/// The Unix time at a World's creation: the machines' wall clock (ikago2's SYN proofs and
/// initiations carry it) is this plus the virtual time
pub const UNIX_EPOCH_OFFSET: Duration = Duration::from_secs(1_700_000_000);

/// The ikago2 PSK of `password` for `port`, derived once per process (Argon2id takes tens of
/// milliseconds; the simulation builds many machines with the same password)
pub fn cached_psk(password: &str, port: u16) -> Psk {
    static CACHE: Mutex<BTreeMap<(String, u16), Psk>> = Mutex::new(BTreeMap::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry((password.to_owned(), port))
        .or_insert_with(|| Psk::derive(password, port))
        .clone()
}

/// Fills what ikago2 takes from the World: the wall clock now and the cached PSK
fn ikago2_of(config: &mut Ikago2Config, password: &str, port: u16, now: Duration) {
    config.unix_time = UNIX_EPOCH_OFFSET + now;
    if config.psk.is_none() && !password.is_empty() {
        config.psk = Some(cached_psk(password, port));
    }
}
/// Random stream of the read sizes of `tcp` mode's connections
const STREAM_READS: u64 = 3;
/// Random stream of the edge router's link
const STREAM_EDGE: u64 = 4;

/// A router's port in the address plan
fn port(tag: u8, v4: Ipv4Addr, v6: Ipv6Addr) -> Port {
    Port {
        v4,
        v6,
        mac: addr::mac(tag, v4),
    }
}

/// 32 seed bytes for one purpose of the World's seed
fn seed32(seed: u64, stream: u64) -> [u8; 32] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    let mut out = [0; 32];
    rng.fill_bytes(&mut out);
    out
}

/// A u64 seed for one purpose of the World's seed
fn seed64(seed: u64, stream: u64) -> u64 {
    let s = seed32(seed, stream);
    u64::from_le_bytes(s[..8].try_into().expect("eight bytes"))
}

/// A device of a machine in the address plan
fn device(
    name: &str,
    role: DeviceRole,
    tag: u8,
    addr: Ipv4Addr,
    gateway: Option<Ipv4Addr>,
) -> DeviceConfig {
    DeviceConfig {
        name: name.to_owned(),
        role,
        link: LinkType::Ethernet,
        mac: Mac(addr::mac(tag, addr)),
        addr: Some(addr),
        prefix_len: PREFIX_LEN,
        gateway,
        gateway_mac: None,
        ipv6: None,
    }
}

/// A device's IPv6 address in the address plan: a /64, with `gateway` as its IPv6 router
fn link6(addr: Ipv6Addr, gateway: Option<Ipv6Addr>) -> Ipv6Link {
    Ipv6Link {
        addr,
        prefix_len: PREFIX_LEN6,
        gateway,
        gateway_mac: None,
    }
}

/// Gives `devices` (listen, upstream) of a server the IPv6 addresses `wan` and `public`
/// (its NAT66 address, the edge router its gateway), unless they have their own
fn server_ipv6(devices: &mut [DeviceConfig], wan: Ipv6Addr, public: Ipv6Addr) {
    let plan = [
        link6(wan, Some(ROUTER_OUTSIDE6)),
        link6(public, Some(EDGE_INTERNET6)),
    ];
    for (d, link) in devices.iter_mut().zip(plan) {
        d.ipv6.get_or_insert(link);
    }
}

/// What a World is built from
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Seed of everything random: the link, the machines' CSPRNGs, the hosts' stacks
    pub seed: u64,
    /// The router between the clients and the server
    pub router: RouterConfig,
    /// The edge router between the Internet segment and the segment beyond it (its link's MTU
    /// is where a Packet Too Big comes from)
    pub edge: RouterConfig,
    /// The server's configuration (its devices follow the address plan; clients added later
    /// copy its method and password)
    pub server: ServerConfig,
    /// Delivery latency of every segment
    pub latency: Duration,
    /// Record every frame on the machines' devices
    pub capture: bool,
    /// `tcp` mode: one-way delay of the kernel TCP connections (which bypass the router)
    pub stream_delay: Duration,
    /// `tcp` mode: the largest read of a connection (each read takes 1 to this many bytes)
    pub stream_read_max: usize,
    /// Put the machines on the IPv6 plane: the server's devices get their IPv6 addresses
    /// (2001:db8:14::2, and 2001:db8:13::1 upstream, its NAT66 address, with the edge router as
    /// its gateway) unless the configuration has its own, and every client gets IPv6 on its
    /// LAN (fd00:11::1) and upstream (2001:db8:12::(2 + i)) devices and its LAN's IPv6 prefix
    /// as a source (`sources6`)
    pub ipv6: bool,
}

impl WorldConfig {
    /// A firewall router over a clean link, a server with ChaCha20-Poly1305, 50 µs segments,
    /// no capture
    pub fn new(seed: u64) -> Self {
        let devices = vec![
            device(
                "server.wan",
                DeviceRole::Listen,
                TAG_SERVER_WAN,
                SERVER_WAN,
                Some(ROUTER_OUTSIDE),
            ),
            device(
                "server.upstream",
                DeviceRole::Upstream,
                TAG_INTERNET,
                SERVER_PUBLIC,
                None,
            ),
        ];
        let mut server = ServerConfig::new(devices, SERVER_PORT);
        server.method = Method::ChaCha20Poly1305;
        server.password = "ikago-sim".to_owned();
        server.rng_seed = seed32(seed, STREAM_SERVER);
        Self {
            seed,
            router: RouterConfig::firewall(),
            edge: RouterConfig::open(LinkConfig::clean()),
            server,
            latency: Duration::from_micros(50),
            capture: false,
            stream_delay: Duration::from_millis(5),
            stream_read_max: 4096,
            ipv6: false,
        }
    }

    /// As [`new`](Self::new), with the machines on the IPv6 plane as well ([`Self::ipv6`])
    pub fn dual_stack(seed: u64) -> Self {
        Self {
            ipv6: true,
            ..Self::new(seed)
        }
    }
}

/// A client of the World, by creation order
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientId(usize);

impl ClientId {
    /// Its index (0 for the first client), as in [`Origin::Client`] and tap names
    pub fn index(self) -> usize {
        self.0
    }
}

/// A host of the World
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostId(usize);

/// The simulated network
#[derive(Debug)]
pub struct World {
    fabric: Fabric,
    seed: u64,
    steps: u64,
    router: Router,
    router_ports: [PortId; 2],
    edge: Router,
    edge_ports: [PortId; 2],
    server: Node,
    server_config: ServerConfig,
    /// The server was stopped: it neither receives nor sends
    server_down: bool,
    /// Fallback servers, beside the server on both of its segments
    fallbacks: Vec<Node>,
    clients: Vec<Node>,
    client_configs: Vec<ClientConfig>,
    lans: Vec<usize>,
    client_wan: usize,
    server_wan: usize,
    internet: usize,
    /// The segment beyond the edge router
    remote: usize,
    hosts: Vec<(Host, PortId)>,
    /// The port of [`World::inject_server_wan`], attached on first use
    spoofer: Option<PortId>,
    /// `tcp` mode's connections
    streams: Streams,
    /// The machines are on the IPv6 plane
    ipv6: bool,
}

impl World {
    /// Builds the router, the server and the Internet segment; clients and hosts come next
    ///
    /// # Panics
    /// If the server configuration is refused.
    pub fn new(mut config: WorldConfig) -> Self {
        let s = &mut config.server;
        ikago2_of(&mut s.ikago2, &s.password, s.port, Duration::ZERO);
        if config.ipv6 {
            server_ipv6(&mut s.devices, SERVER_WAN6, SERVER_PUBLIC6);
        }
        let mut fabric = Fabric::new(Instant::now(), config.latency, config.capture);
        let client_wan = fabric.add_segment();
        let server_wan = fabric.add_segment();
        let internet = fabric.add_segment();
        let remote = fabric.add_segment();
        let router_ports = [
            fabric.attach(client_wan, Owner::Router(Side::Inside), None),
            fabric.attach(server_wan, Owner::Router(Side::Outside), None),
        ];
        let edge_ports = [
            fabric.attach(internet, Owner::Edge(Side::Inside), None),
            fabric.attach(remote, Owner::Edge(Side::Outside), None),
        ];
        let segments = [server_wan, internet];
        let ports = (0..config.server.devices.len())
            .map(|d| {
                fabric.attach(
                    segments[d],
                    Owner::Server(d),
                    Some(config.server.devices[d].name.clone()),
                )
            })
            .collect();
        let server = Server::new(config.server.clone(), fabric.instant())
            .unwrap_or_else(|e| panic!("server config: {e}"));
        let server = Node::new(
            server.into(),
            &config.server.devices,
            ports,
            Origin::Server,
            &mut fabric,
        );
        let router = Router::new(
            &config.router,
            [
                port(TAG_CLIENT_WAN, ROUTER_INSIDE, ROUTER_INSIDE6),
                port(TAG_SERVER_WAN, ROUTER_OUTSIDE, ROUTER_OUTSIDE6),
            ],
            seed64(config.seed, STREAM_LINK),
        );
        let edge = Router::new(
            &config.edge,
            [
                port(TAG_INTERNET, EDGE_INTERNET, EDGE_INTERNET6),
                port(TAG_REMOTE, EDGE_REMOTE, EDGE_REMOTE6),
            ],
            seed64(config.seed, STREAM_EDGE),
        );
        Self {
            router,
            edge,
            edge_ports,
            fabric,
            seed: config.seed,
            steps: 0,
            router_ports,
            server,
            server_config: config.server,
            server_down: false,
            fallbacks: Vec::new(),
            clients: Vec::new(),
            client_configs: Vec::new(),
            lans: Vec::new(),
            client_wan,
            server_wan,
            internet,
            remote,
            hosts: Vec::new(),
            spoofer: None,
            streams: Streams::new(
                config.stream_delay,
                config.stream_read_max,
                seed64(config.seed, STREAM_READS),
            ),
            ipv6: config.ipv6,
        }
    }

    /// Adds a client with its own LAN (198.18.11.0/24, all of it a source; on the IPv6 plane
    /// fd00:11::/64 as well) on the client-side WAN; `configure` may change its configuration
    /// (method, password, MTU, publish, port, TCP tuning...) but must keep its two devices (LAN
    /// first, then WAN)
    ///
    /// # Panics
    /// If the configuration is refused.
    pub fn add_client(&mut self, configure: impl FnOnce(&mut ClientConfig)) -> ClientId {
        let i = self.clients.len();
        let lan = self.fabric.add_segment();
        let mut devices = vec![
            device(
                &format!("client{i}.lan"),
                DeviceRole::Listen,
                addr::lan_tag(i),
                CLIENT_LAN,
                None,
            ),
            device(
                &format!("client{i}.wan"),
                DeviceRole::Upstream,
                TAG_CLIENT_WAN,
                addr::client_wan(i),
                Some(ROUTER_INSIDE),
            ),
        ];
        if self.ipv6 {
            devices[0].ipv6 = Some(link6(CLIENT_LAN6, None));
            devices[1].ipv6 = Some(link6(addr::client_wan6(i), Some(ROUTER_INSIDE6)));
        }
        let sources = vec![Ipv4Net {
            addr: addr::lan(0),
            prefix_len: PREFIX_LEN,
        }];
        let server = SocketAddr::from((SERVER_WAN, self.server_config.port));
        let mut cfg = ClientConfig::new(devices, sources, server);
        cfg.method = self.server_config.method;
        cfg.password = self.server_config.password.clone();
        cfg.rng_seed = seed32(self.seed, STREAM_CLIENT + i as u64);
        if self.ipv6 {
            cfg.sources6 = vec![Ipv6Net {
                addr: addr::lan6(0),
                prefix_len: PREFIX_LEN6,
            }];
        }
        configure(&mut cfg);
        ikago2_of(
            &mut cfg.ikago2,
            &cfg.password,
            server.port(),
            self.fabric.now,
        );
        let ports = vec![
            self.fabric
                .attach(lan, Owner::Client(i, 0), Some(cfg.devices[0].name.clone())),
            self.fabric.attach(
                self.client_wan,
                Owner::Client(i, 1),
                Some(cfg.devices[1].name.clone()),
            ),
        ];
        let client = Client::new(cfg.clone(), self.fabric.instant())
            .unwrap_or_else(|e| panic!("client config: {e}"));
        self.clients.push(Node::new(
            client.into(),
            &cfg.devices,
            ports,
            Origin::Client(i),
            &mut self.fabric,
        ));
        self.lans.push(lan);
        self.client_configs.push(cfg);
        self.pump_streams();
        ClientId(i)
    }

    /// Drops client `id` and starts it again with the same configuration (its port included,
    /// when fixed) and a CSPRNG seeded from `seed`, as a process restart would
    pub fn restart_client(&mut self, id: ClientId, seed: u64) {
        let mut cfg = self.client_configs[id.0].clone();
        cfg.rng_seed = seed32(seed, STREAM_CLIENT + id.0 as u64);
        cfg.ikago2.unix_time = UNIX_EPOCH_OFFSET + self.fabric.now;
        let client = Client::new(cfg, self.fabric.instant())
            .expect("the same configuration was accepted before");
        self.clients[id.0].replace(client.into(), &mut self.fabric);
        self.pump_streams();
    }

    /// Sends `frame` onto the server-side WAN from a station between the firewall and the
    /// server: a spoofer past the firewall
    pub fn inject_server_wan(&mut self, frame: &[u8]) {
        let port = match self.spoofer {
            Some(p) => p,
            None => {
                let p = self.fabric.attach(self.server_wan, Owner::Spoofer, None);
                self.spoofer = Some(p);
                p
            }
        };
        self.fabric.send(port, frame, Duration::ZERO);
    }

    fn add_host(&mut self, config: HostConfig, segment: usize, tag: u8) -> HostId {
        let i = self.hosts.len();
        let host = Host::new(
            config,
            tag,
            seed64(self.seed, STREAM_HOST + i as u64),
            self.fabric.now,
        );
        let port = self.fabric.attach(segment, Owner::Host(i), None);
        self.hosts.push((host, port));
        HostId(i)
    }

    /// Adds a host to `client`'s LAN
    pub fn add_lan_host(&mut self, client: ClientId, config: HostConfig) -> HostId {
        self.add_host(config, self.lans[client.0], addr::lan_tag(client.0))
    }

    /// Adds a host to the Internet segment (on-link with the server's public address)
    pub fn add_internet_host(&mut self, config: HostConfig) -> HostId {
        self.add_host(config, self.internet, TAG_INTERNET)
    }

    /// Adds a host beyond the edge router (see [`HostIpv6::remote`](crate::HostIpv6::remote))
    pub fn add_remote_host(&mut self, config: HostConfig) -> HostId {
        self.add_host(config, self.remote, TAG_REMOTE)
    }

    /// Adds a host to the client-side WAN, beside the clients (its traffic to the server side
    /// crosses the router without a tunnel)
    pub fn add_client_side_host(&mut self, config: HostConfig) -> HostId {
        self.add_host(config, self.client_wan, TAG_CLIENT_WAN)
    }

    /// Adds a host to the server-side WAN, beside the server
    pub fn add_server_side_host(&mut self, config: HostConfig) -> HostId {
        self.add_host(config, self.server_wan, TAG_SERVER_WAN)
    }

    /// Adds a fallback server with the server's configuration on 198.18.14.(3 + n), public
    /// address 198.18.13.(201 + n) (on the IPv6 plane 2001:db8:14::(3 + n) and
    /// 2001:db8:13::(201 + n)); returns its tunnel address for a client's `fallback` list
    pub fn add_fallback_server(&mut self) -> SocketAddr {
        let n = self.fallbacks.len();
        let wan = Ipv4Addr::new(198, 18, 14, 3 + n as u8);
        let public = Ipv4Addr::new(198, 18, 13, 201 + n as u8);
        let mut cfg = self.server_config.clone();
        cfg.devices = vec![
            device(
                &format!("fallback{n}.wan"),
                DeviceRole::Listen,
                TAG_SERVER_WAN,
                wan,
                Some(ROUTER_OUTSIDE),
            ),
            device(
                &format!("fallback{n}.upstream"),
                DeviceRole::Upstream,
                TAG_INTERNET,
                public,
                None,
            ),
        ];
        if self.ipv6 {
            let (wan, public) = (wan.octets()[3], public.octets()[3]);
            server_ipv6(
                &mut cfg.devices,
                addr::server_side6(wan),
                addr::internet6(public),
            );
        }
        cfg.rng_seed = seed32(self.seed, STREAM_FALLBACK + n as u64);
        cfg.ikago2.unix_time = UNIX_EPOCH_OFFSET + self.fabric.now;
        let ports = [self.server_wan, self.internet]
            .into_iter()
            .enumerate()
            .map(|(d, segment)| {
                let tap = Some(cfg.devices[d].name.clone());
                self.fabric.attach(segment, Owner::Fallback(n, d), tap)
            })
            .collect();
        let server = Server::new(cfg.clone(), self.fabric.instant())
            .unwrap_or_else(|e| panic!("fallback server config: {e}"));
        self.fallbacks.push(Node::new(
            server.into(),
            &cfg.devices,
            ports,
            Origin::Fallback(n),
            &mut self.fabric,
        ));
        SocketAddr::from((wan, cfg.port))
    }

    /// Fallback server `n`
    pub fn fallback_server(&self, n: usize) -> &Server {
        self.fallbacks[n]
            .machine
            .as_server()
            .expect("a fallback's node holds a server")
    }

    /// Stops the server, as a crash or a power cut would: from now on it neither receives nor
    /// sends
    pub fn stop_server(&mut self) {
        self.server_down = true;
    }

    /// Drops the server (running or stopped) and starts a new one with the same configuration
    /// and a CSPRNG seeded from `seed`
    pub fn restart_server(&mut self, seed: u64) {
        let mut cfg = self.server_config.clone();
        cfg.rng_seed = seed32(seed, STREAM_SERVER);
        cfg.ikago2.unix_time = UNIX_EPOCH_OFFSET + self.fabric.now;
        let server = Server::new(cfg, self.fabric.instant())
            .expect("the same configuration was accepted before");
        self.streams.server_restarted(self.fabric.now);
        self.server.replace(server.into(), &mut self.fabric);
        self.server_down = false;
        self.pump_streams();
    }

    /// Virtual time since creation
    pub fn now(&self) -> Duration {
        self.fabric.now
    }

    /// Steps taken so far
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// A client machine
    pub fn client(&self, id: ClientId) -> &Client {
        let machine = &self.clients[id.0].machine;
        machine.as_client().expect("a client's node holds a client")
    }

    /// The server machine
    pub fn server(&self) -> &Server {
        let machine = &self.server.machine;
        machine
            .as_server()
            .expect("the server's node holds a server")
    }

    /// A host
    pub fn host(&self, id: HostId) -> &Host {
        &self.hosts[id.0].0
    }

    /// A host, to send or to start a service (takes effect at the next step)
    pub fn host_mut(&mut self, id: HostId) -> &mut Host {
        &mut self.hosts[id.0].0
    }

    /// Every event of every machine so far, in order
    pub fn events(&self) -> &[LoggedEvent] {
        &self.fabric.events
    }

    /// Frames dropped by the link and the router, by reason
    pub fn drops(&self) -> &Drops {
        &self.fabric.drops
    }

    /// Everything captured on the machines' devices
    pub fn capture(&self) -> &Capture {
        &self.fabric.capture
    }

    /// The link's impairments now
    pub fn link(&self) -> LinkConfig {
        self.router.link.config
    }

    /// Changes the link's impairments from now on (frames in flight keep their delays)
    pub fn set_link(&mut self, link: LinkConfig) {
        self.router.link.config = link;
    }

    /// Changes the edge router's link from now on (its MTU included)
    pub fn set_edge_link(&mut self, link: LinkConfig) {
        self.edge.link.config = link;
    }

    /// The earliest instant something is due
    fn next_due(&mut self) -> Option<Duration> {
        let now = self.fabric.now;
        let server = (!self.server_down).then_some(self.server.deadline);
        let machines = self
            .clients
            .iter()
            .chain(&self.fallbacks)
            .map(|c| c.deadline)
            .chain(server);
        let hosts: Vec<Option<Duration>> = self
            .hosts
            .iter_mut()
            .map(|(h, _)| h.deadline(now))
            .collect();
        machines
            .map(Some)
            .chain(hosts)
            .chain([self.fabric.next_at(), self.streams.next_at()])
            .flatten()
            .min()
    }

    /// Handles everything due at `at` (or earlier)
    fn run_step(&mut self, at: Duration) {
        self.fabric.now = self.fabric.now.max(at);
        self.steps += 1;
        while let Some((port, frame)) = self.fabric.pop_due() {
            self.deliver(port, frame);
        }
        let now = self.fabric.now;
        for c in self.clients.iter_mut().chain(&mut self.fallbacks) {
            if c.deadline <= now {
                c.timeout(&mut self.fabric);
            }
        }
        if !self.server_down && self.server.deadline <= now {
            self.server.timeout(&mut self.fabric);
        }
        for (host, port) in &mut self.hosts {
            if host.deadline(now).is_some_and(|t| t <= now) {
                for frame in host.poll(now) {
                    self.fabric.send(*port, &frame, Duration::ZERO);
                }
            }
        }
        self.pump_streams();
        while let Some((to, conn, report)) = self.streams.pop_due(now) {
            match to {
                To::Client(i) => self.clients[i].stream(conn, report.input(), &mut self.fabric),
                To::Server if self.server_down => {}
                To::Server => self.server.stream(conn, report.input(), &mut self.fabric),
            }
            self.pump_streams();
        }
    }

    /// Carries out the tunnel connection operations the machines asked for
    fn pump_streams(&mut self) {
        let now = self.fabric.now;
        let port = self.server_config.port;
        for (origin, op, bytes) in std::mem::take(&mut self.fabric.stream_ops) {
            let up = !self.server_down;
            self.streams.handle(now, origin, op, &bytes, up, port);
        }
    }

    fn deliver(&mut self, port: PortId, frame: Vec<u8>) {
        match self.fabric.owner(port) {
            Owner::Host(h) => self.hosts[h].0.deliver(frame, self.fabric.now),
            Owner::Client(c, d) => self.clients[c].frame(d, &frame, &mut self.fabric),
            Owner::Server(_) if self.server_down => {}
            Owner::Server(d) => self.server.frame(d, &frame, &mut self.fabric),
            Owner::Fallback(n, d) => self.fallbacks[n].frame(d, &frame, &mut self.fabric),
            Owner::Spoofer => {}
            Owner::Router(side) => {
                for e in self
                    .router
                    .handle_frame(side, &frame, &mut self.fabric.drops)
                {
                    self.fabric
                        .send(self.router_ports[e.side as usize], &e.frame, e.delay);
                }
            }
            Owner::Edge(side) => {
                for e in self.edge.handle_frame(side, &frame, &mut self.fabric.drops) {
                    self.fabric
                        .send(self.edge_ports[e.side as usize], &e.frame, e.delay);
                }
            }
        }
    }

    /// Advances to the earliest due instant and handles everything due then; false when nothing
    /// is scheduled at all
    pub fn step(&mut self) -> bool {
        match self.next_due() {
            Some(at) => {
                self.run_step(at);
                true
            }
            None => false,
        }
    }

    /// Steps until `done` holds; returns the virtual time it took
    ///
    /// # Panics
    /// After `limit` steps without `done`, with a [`summary`](Self::summary) of the World.
    pub fn run_until(&mut self, mut done: impl FnMut(&Self) -> bool, limit: u64) -> Duration {
        let start = self.fabric.now;
        let mut steps = 0;
        while !done(self) {
            assert!(
                steps < limit,
                "run_until: not done after {limit} steps\n{}",
                self.summary()
            );
            assert!(
                self.step(),
                "run_until: nothing left to do\n{}",
                self.summary()
            );
            steps += 1;
        }
        self.fabric.now - start
    }

    /// Lets `duration` of virtual time pass, handling everything due in it
    ///
    /// # Panics
    /// If that takes more than two million steps (something is stuck), with a summary.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.fabric.now + duration;
        let mut steps = 0;
        while let Some(at) = self.next_due().filter(|&t| t <= end) {
            assert!(
                steps < RUN_FOR_MAX_STEPS,
                "run_for: stuck at {:?}\n{}",
                self.fabric.now,
                self.summary()
            );
            self.run_step(at);
            steps += 1;
        }
        self.fabric.now = end;
    }

    /// A readable report: time, both machines' stats, network drops, what each host received
    /// and the latest events
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "== World at {:?} after {} steps (seed {}) ==",
            self.fabric.now, self.steps, self.seed
        );
        for i in 0..self.clients.len() {
            let m = self.client(ClientId(i));
            let _ = writeln!(
                s,
                "client{i} {} -> {} connected={}",
                m.local_addr(),
                m.server_addr(),
                m.is_connected()
            );
            write_stats(&mut s, &m.stats());
        }
        let _ = writeln!(
            s,
            "server clients={:?}",
            self.server().clients().collect::<Vec<_>>()
        );
        write_stats(&mut s, &self.server.machine.stats());
        let _ = writeln!(s, "network drops: {}", self.fabric.drops);
        for (h, _) in &self.hosts {
            let c = h.config();
            let addrs: Vec<String> = c.addrs().map(|a| a.to_string()).collect();
            let _ = writeln!(
                s,
                "host {} {}: {} frames in, {} datagrams, {} echo replies, {} ICMPv6 errors",
                c.name,
                addrs.join(" "),
                h.frames_in(),
                h.datagrams().len(),
                h.echo_replies().len(),
                h.icmp6_errors().len()
            );
            for d in h.datagrams().iter().take(8) {
                let _ = writeln!(
                    s,
                    "  udp :{} <- {} {} bytes at {:?}",
                    d.port,
                    d.from,
                    d.payload.len(),
                    d.at
                );
            }
            for t in h.tcp_streams() {
                let _ = writeln!(
                    s,
                    "  tcp :{} <-> {:?} sent {}/{} received {}/{} mismatch {:?}",
                    t.port,
                    t.remote,
                    t.sent,
                    t.transfer.send_len,
                    t.received,
                    t.transfer.expect_len,
                    t.mismatch_at
                );
            }
        }
        let events = &self.fabric.events;
        let _ = writeln!(s, "last events ({} in all):", events.len());
        for e in &events[events.len().saturating_sub(20)..] {
            let _ = writeln!(s, "  {:?} {:?} {:?}", e.at, e.origin, e.event);
        }
        s
    }
}

fn write_stats(s: &mut String, st: &Stats) {
    let c = |c: ikago_proto::Counter| format!("{}p/{}B", c.packets, c.bytes);
    let _ = writeln!(
        s,
        "  tunnel tx {} rx {} | inner tx {} rx {} | local tx {} rx {} | handshakes {} reconnects {} nat {}/{}",
        c(st.tunnel_tx),
        c(st.tunnel_rx),
        c(st.inner_tx),
        c(st.inner_rx),
        c(st.local_tx),
        c(st.local_rx),
        st.handshakes,
        st.reconnects,
        st.nat_mappings,
        st.nat_capacity
    );
    let _ = writeln!(s, "  drops: {}", st.drops);
}
