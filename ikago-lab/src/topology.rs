//! The lab topology: namespaces, links, routes, firewall and services, built and torn down whole

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::addr::*;
use crate::firewall::{INSIDE, OUTSIDE, OUTSIDE2};
use crate::link::{End, bridge, veth};
use crate::netns::new_lab_id;
use crate::runner::{ClientSite, Runner, SERVER_READY, ServerSite, TunnelOptions};
use crate::watchdog::{LAB_DEADLINE, Watchdog};
use crate::{Daemon, FirewallPolicy, Netns, Result, services, sweep_stale};

/// How long a client gets to print "Connected to server" after it starts
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How many labs one process may run at once: a positive number, 1 when unset
///
/// One by default: the lab benchmark measures throughput and must not share the CPUs. Most lab
/// tests spend their time waiting on timeouts, connections and services, so that a test run
/// may set more (`scripts/test.sh` sets 2); a test whose bounds are throughputs builds its lab
/// with [`Lab::build_alone`].
const JOBS_ENV: &str = "IKAGO_LAB_JOBS";

/// The labs of this process: how many run, whether one of them runs alone, and how many wait
/// to run alone (which the others let go first)
struct Running {
    labs: usize,
    alone: bool,
    waiting_alone: usize,
}

static RUNNING: Mutex<Running> = Mutex::new(Running {
    labs: 0,
    alone: false,
    waiting_alone: 0,
});
/// Signalled when a lab ends
static ENDED: Condvar = Condvar::new();

/// A place among the labs this process may run at once ([`JOBS_ENV`]), or all of them for a lab
/// that runs alone; given back when dropped
struct Slot {
    alone: bool,
}

impl Slot {
    /// Waits until fewer labs than allowed run (none at all when `alone`), then takes a place
    fn take(alone: bool) -> Self {
        let jobs = std::env::var(JOBS_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(1);
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if alone {
            running.waiting_alone += 1;
            while running.labs > 0 {
                running = ENDED.wait(running).unwrap_or_else(|e| e.into_inner());
            }
            running.waiting_alone -= 1;
            running.alone = true;
        } else {
            while running.alone || running.waiting_alone > 0 || running.labs >= jobs {
                running = ENDED.wait(running).unwrap_or_else(|e| e.into_inner());
            }
        }
        running.labs += 1;
        Self { alone }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        running.labs -= 1;
        if self.alone {
            running.alone = false;
        }
        ENDED.notify_all();
    }
}

/// The machines of the lab
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// A LAN device whose gateway is the client (198.18.21.2)
    HostA,
    /// A LAN device whose gateway (198.18.21.254) the client publishes by proxy ARP
    HostB,
    /// The client machine: lan0 198.18.21.1, wan0 198.18.22.2, IP forwarding off
    Client,
    /// The second client machine: lan0 198.18.25.1, wan0 198.18.22.3
    Client2,
    /// The LAN device behind the second client (198.18.25.2)
    HostC,
    /// The firewall router: in0 198.18.22.1, out0 198.18.23.1, out1 198.18.26.1
    Firewall,
    /// The server: wan0 198.18.23.2, dst0 198.18.24.1 (NAT address)
    Server,
    /// The second server, for failover: wan0 198.18.26.2, dst0 198.18.27.1 (NAT address)
    Server2,
    /// The destination: DNS, UDP/TCP echo and iperf3 on 198.18.24.2 (eth0), reached from the
    /// second server through eth1 198.18.27.2
    Destination,
    /// The LAN switch (a bridge) joining host A, host B, the client (and host D)
    LanSwitch,
    /// The WAN switch (a bridge) joining both clients and the firewall
    WanSwitch,
    /// IPv6 plane only: a LAN device with an IPv6 address only (fd00:21::4), whose gateway is
    /// the client
    HostD,
    /// IPv6 plane only: a third Internet host (2001:db8:28::2) behind the destination, on a
    /// link of the IPv6 minimum MTU
    Peer,
}

impl Host {
    /// Every host, in creation order
    pub const ALL: [Self; 11] = [
        Self::LanSwitch,
        Self::WanSwitch,
        Self::HostA,
        Self::HostB,
        Self::Client,
        Self::Client2,
        Self::HostC,
        Self::Firewall,
        Self::Server,
        Self::Server2,
        Self::Destination,
    ];

    /// The hosts only a lab with the IPv6 plane has, created after [`Self::ALL`]
    pub const IPV6_ONLY: [Self; 2] = [Self::HostD, Self::Peer];

    /// The role part of the namespace name
    fn role(self) -> &'static str {
        match self {
            Self::HostA => "a",
            Self::HostB => "b",
            Self::Client => "client",
            Self::Client2 => "client2",
            Self::HostC => "c",
            Self::Firewall => "fw",
            Self::Server => "server",
            Self::Server2 => "server2",
            Self::Destination => "dst",
            Self::LanSwitch => "lansw",
            Self::WanSwitch => "wansw",
            Self::HostD => "d",
            Self::Peer => "peer",
        }
    }
}

/// A running lab; dropping it kills its services and deletes every namespace (and link)
///
/// Processes started with [`Lab::start_server`] and [`Lab::start_client`] are [`Daemon`]
/// guards owned by the caller; whatever is left in a lab namespace at drop is killed too.
pub struct Lab {
    id: String,
    policy: FirewallPolicy,
    /// Whether the IPv6 plane is built beside the IPv4 one
    ipv6: bool,
    services: services::Services,
    namespaces: Vec<(Host, Netns)>,
    /// Dropped after the namespaces: it also watches the teardown
    _watchdog: Watchdog,
    /// Dropped last: the next lab may start once this one is gone
    _slot: Slot,
}

impl Lab {
    /// Builds the whole topology with `policy` on the firewall, services up and answering
    pub fn build(policy: FirewallPolicy) -> Result<Self> {
        Self::build_with(policy, false, false)
    }

    /// Builds the topology as [`Self::build`] does, with no other lab of this process running
    /// beside it: for tests whose bounds are throughputs
    pub fn build_alone(policy: FirewallPolicy) -> Result<Self> {
        Self::build_with(policy, false, true)
    }

    /// Builds the topology with its IPv6 plane beside the IPv4 one ([`crate::addr`]): every
    /// machine dual-stack, host D (IPv6 only) on the LAN, the peer behind the destination,
    /// IPv6 forwarding on the routers, the firewall's policy for IPv6 as well, and the
    /// destination's services on both families
    pub fn build_dual_stack(policy: FirewallPolicy) -> Result<Self> {
        Self::build_with(policy, true, false)
    }

    fn build_with(policy: FirewallPolicy, ipv6: bool, alone: bool) -> Result<Self> {
        let slot = Slot::take(alone);
        if let Err(e) = sweep_stale() {
            eprintln!("ikago-lab: sweeping stale namespaces: {e}");
        }
        let id = new_lab_id();
        let mut lab = Self {
            _watchdog: Watchdog::arm(&id, LAB_DEADLINE),
            id,
            policy,
            ipv6,
            services: services::Services::default(),
            namespaces: Vec::new(),
            _slot: slot,
        };
        let v6_hosts = if ipv6 { &Host::IPV6_ONLY[..] } else { &[] };
        for &host in Host::ALL.iter().chain(v6_hosts) {
            let ns = Netns::create(&lab.id, host.role(), ipv6)?;
            lab.namespaces.push((host, ns));
        }
        lab.wire()?;
        lab.route()?;
        policy.apply(lab.ns(Host::Firewall), ipv6)?;
        lab.services = services::start(lab.ns(Host::Destination), ipv6)?;
        Ok(lab)
    }

    /// The lab's identifier, the common prefix of its namespace names
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The namespace of `host` (a host of [`Host::IPV6_ONLY`] exists only in a dual-stack lab)
    pub fn ns(&self, host: Host) -> &Netns {
        &self
            .namespaces
            .iter()
            .find(|(h, _)| *h == host)
            .unwrap_or_else(|| panic!("{host:?} exists only in a dual-stack lab"))
            .1
    }

    /// Whether the lab has its IPv6 plane
    pub fn is_dual_stack(&self) -> bool {
        self.ipv6
    }

    /// The firewall policy in force
    pub fn policy(&self) -> FirewallPolicy {
        self.policy
    }

    /// Replaces the firewall policy
    pub fn set_policy(&mut self, policy: FirewallPolicy) -> Result<()> {
        policy.apply(self.ns(Host::Firewall), self.ipv6)?;
        self.policy = policy;
        Ok(())
    }

    /// Turns kernel forwarding on the client machines and the server on or off
    ///
    /// On, the LAN hosts reach the destination without the tunnel (the direct path, through the
    /// firewall); off (the default), only IkaGo moves packets between their legs.
    pub fn set_direct_routing(&self, on: bool) -> Result<()> {
        let value = if on { "1" } else { "0" };
        for host in [Host::Client, Host::Client2, Host::Server, Host::Server2] {
            self.ns(host).sysctl("net.ipv4.ip_forward", value)?;
            if self.ipv6 {
                self.ns(host)
                    .sysctl("net.ipv6.conf.all.forwarding", value)?;
            }
        }
        Ok(())
    }

    /// Lowers the MTU of the firewall's client-side link (its `in0` and the WAN switch's port
    /// toward it) to `mtu`: the firewall answers a bigger packet it routes toward the clients
    /// with ICMP "fragmentation needed" or ICMPv6 Packet Too Big to its sender, and the switch
    /// drops bigger frames from the clients
    pub fn narrow_inside_link(&self, mtu: u16) -> Result<()> {
        let mtu = mtu.to_string();
        for (host, dev) in [(Host::Firewall, INSIDE), (Host::WanSwitch, "pfw")] {
            self.ns(host).ip(&["link", "set", dev, "mtu", &mtu])?;
        }
        Ok(())
    }

    /// Starts the server of `runner` on the server machine
    pub fn start_server(&self, runner: Runner, tunnel: &TunnelOptions) -> Result<Daemon> {
        self.start_server_at(runner, ServerSite::Main, tunnel)
    }

    /// Starts the server of `runner` on the server machine and waits until it is ready
    /// ([`SERVER_READY`]), so that a client started next connects at its first SYN instead of
    /// retrying a second later
    pub fn start_ready_server(&self, runner: Runner, tunnel: &TunnelOptions) -> Result<Daemon> {
        self.start_ready_server_at(runner, ServerSite::Main, tunnel)
    }

    /// Starts the server of `runner` on the server machine `site` and waits until it is ready
    /// ([`SERVER_READY`]): capturing, with its rules in, so that its kernel resets no SYN
    pub fn start_ready_server_at(
        &self,
        runner: Runner,
        site: ServerSite,
        tunnel: &TunnelOptions,
    ) -> Result<Daemon> {
        let server = self.start_server_at(runner, site, tunnel)?;
        server.wait_for_line(SERVER_READY, 0, CONNECT_TIMEOUT)?;
        Ok(server)
    }

    /// Starts the server of `runner` on the server machine `site`
    pub fn start_server_at(
        &self,
        runner: Runner,
        site: ServerSite,
        tunnel: &TunnelOptions,
    ) -> Result<Daemon> {
        self.spawn_runner(runner, site.host(), site.name(), &tunnel.server_args())
    }

    /// Starts `runner` with the command line `args` on `host`, labelled `name` in the output
    pub fn spawn_runner(
        &self,
        runner: Runner,
        host: Host,
        name: &str,
        args: &[String],
    ) -> Result<Daemon> {
        let args = args.iter().map(String::as_str).collect::<Vec<_>>();
        let binary = runner.binary()?;
        Daemon::spawn(
            self.ns(host),
            &format!("{}-{name}", runner.name()),
            &binary,
            &args,
        )
    }

    /// Starts the client of `runner` at `site` without waiting for it to connect
    pub fn spawn_client(
        &self,
        runner: Runner,
        site: ClientSite,
        tunnel: &TunnelOptions,
    ) -> Result<Daemon> {
        self.spawn_runner(runner, site.host(), site.name(), &tunnel.client_args(site))
    }

    /// Starts the client of `runner` at `site` and waits until it prints "Connected to server"
    pub fn start_client(
        &self,
        runner: Runner,
        site: ClientSite,
        tunnel: &TunnelOptions,
    ) -> Result<Daemon> {
        let client = self.spawn_client(runner, site, tunnel)?;
        client.wait_for_line(crate::runner::CONNECTED, 0, CONNECT_TIMEOUT)?;
        Ok(client)
    }

    /// The firewall rules of `host`, for leak checks: `iptables-save` and `ip6tables-save`
    /// rules and user chains, and nftables tables other than the ones iptables-nft creates empty
    /// on first use
    pub fn firewall_rules(&self, host: Host) -> Result<Vec<String>> {
        let ns = self.ns(host);
        let builtin = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"];
        let mut rules = Vec::new();
        for save in ["iptables-save", "ip6tables-save"] {
            let saved = ns.exec(save, &[])?;
            rules.extend(
                saved
                    .lines()
                    .filter(|l| {
                        l.starts_with("-A")
                            || l.strip_prefix(':').is_some_and(|c| {
                                !builtin.contains(&c.split(' ').next().unwrap_or(""))
                            })
                    })
                    .map(strip_counters),
            );
        }
        let iptables_nft = ["ip", "ip6"].into_iter().flat_map(|family| {
            ["filter", "nat", "mangle", "raw", "security"].map(|t| format!("table {family} {t}"))
        });
        let iptables_nft = iptables_nft.collect::<Vec<_>>();
        let tables = ns.exec("nft", &["list", "tables"])?;
        rules.extend(
            tables
                .lines()
                .filter(|t| !iptables_nft.contains(&t.trim().to_owned()))
                .map(str::to_owned),
        );
        Ok(rules)
    }

    /// Creates the links: two bridges, six point-to-point veths (and with the IPv6 plane host
    /// D's port on the LAN switch and the peer's link to the destination)
    fn wire(&self) -> Result<()> {
        let v6 = |a| self.ipv6.then_some(a);
        let end = |host, name, addr: Option<std::net::Ipv4Addr>, addr6| End {
            ns: self.ns(host),
            name,
            addr: addr.map(|a| (a, PREFIX)),
            addr6,
        };
        let (lan, wan) = (Host::LanSwitch, Host::WanSwitch);
        veth(
            &end(Host::HostA, "eth0", Some(HOST_A), v6(HOST_A6)),
            &end(lan, "pa", None, None),
        )?;
        veth(
            &end(Host::HostB, "eth0", Some(HOST_B), v6(HOST_B6)),
            &end(lan, "pb", None, None),
        )?;
        veth(
            &end(Host::Client, "lan0", Some(CLIENT_LAN), v6(CLIENT_LAN6)),
            &end(lan, "pclient", None, None),
        )?;
        let mut lan_ports = vec!["pa", "pb", "pclient"];
        if self.ipv6 {
            veth(
                &end(Host::HostD, "eth0", None, Some(HOST_D6)),
                &end(lan, "pd", None, None),
            )?;
            lan_ports.push("pd");
        }
        bridge(self.ns(lan), "br0", &lan_ports)?;
        veth(
            &end(Host::Client, "wan0", Some(CLIENT_WAN), v6(CLIENT_WAN6)),
            &end(wan, "pclient", None, None),
        )?;
        veth(
            &end(Host::Client2, "wan0", Some(CLIENT2_WAN), v6(CLIENT2_WAN6)),
            &end(wan, "pclient2", None, None),
        )?;
        veth(
            &end(
                Host::Firewall,
                INSIDE,
                Some(FIREWALL_INSIDE),
                v6(FIREWALL_INSIDE6),
            ),
            &end(wan, "pfw", None, None),
        )?;
        bridge(self.ns(wan), "br0", &["pclient", "pclient2", "pfw"])?;
        veth(
            &end(Host::HostC, "eth0", Some(HOST_C), v6(HOST_C6)),
            &end(Host::Client2, "lan0", Some(CLIENT2_LAN), v6(CLIENT2_LAN6)),
        )?;
        veth(
            &end(
                Host::Firewall,
                OUTSIDE,
                Some(FIREWALL_OUTSIDE),
                v6(FIREWALL_OUTSIDE6),
            ),
            &end(Host::Server, "wan0", Some(SERVER_WAN), v6(SERVER_WAN6)),
        )?;
        veth(
            &end(Host::Server, "dst0", Some(SERVER_DST), v6(SERVER_DST6)),
            &end(
                Host::Destination,
                "eth0",
                Some(DESTINATION),
                v6(DESTINATION6),
            ),
        )?;
        veth(
            &end(
                Host::Firewall,
                OUTSIDE2,
                Some(FIREWALL_OUTSIDE2),
                v6(FIREWALL_OUTSIDE2_6),
            ),
            &end(Host::Server2, "wan0", Some(SERVER2_WAN), v6(SERVER2_WAN6)),
        )?;
        veth(
            &end(Host::Server2, "dst0", Some(SERVER2_DST), v6(SERVER2_DST6)),
            &end(
                Host::Destination,
                "eth1",
                Some(DESTINATION2),
                v6(DESTINATION2_6),
            ),
        )?;
        if self.ipv6 {
            veth(
                &end(Host::Destination, "eth2", None, Some(DESTINATION_PEER6)),
                &end(Host::Peer, "eth0", None, Some(PEER6)),
            )?;
            let mtu = PEER_LINK_MTU.to_string();
            for (host, dev) in [(Host::Destination, "eth2"), (Host::Peer, "eth0")] {
                self.ns(host).ip(&["link", "set", dev, "mtu", &mtu])?;
            }
        }
        Ok(())
    }

    /// Default routes and forwarding: each host's gateway as in the addressing plan
    fn route(&self) -> Result<()> {
        let default_via = |host, gw: std::net::Ipv4Addr| {
            self.ns(host)
                .ip(&["route", "add", "default", "via", &gw.to_string()])
                .map(drop)
        };
        default_via(Host::HostA, CLIENT_LAN)?;
        default_via(Host::HostB, PUBLISHED_GATEWAY)?;
        default_via(Host::HostC, CLIENT2_LAN)?;
        default_via(Host::Client, FIREWALL_INSIDE)?;
        default_via(Host::Client2, FIREWALL_INSIDE)?;
        // The server's upstream is dst0 with the destination as gateway (the original's model)
        default_via(Host::Server, DESTINATION)?;
        default_via(Host::Server2, DESTINATION2)?;
        default_via(Host::Destination, SERVER_DST)?;
        // The firewall's way out is the server: used only by the direct path (server forwarding on)
        default_via(Host::Firewall, SERVER_WAN)?;
        let fw = self.ns(Host::Firewall);
        fw.sysctl("net.ipv4.ip_forward", "1")?;
        // Back to the LANs, used only by the direct path (client forwarding on)
        fw.ip(&[
            "route",
            "add",
            "198.18.21.0/24",
            "via",
            &CLIENT_WAN.to_string(),
        ])?;
        fw.ip(&[
            "route",
            "add",
            "198.18.25.0/24",
            "via",
            &CLIENT2_WAN.to_string(),
        ])?;
        for (server, firewall) in [
            (Host::Server, FIREWALL_OUTSIDE),
            (Host::Server2, FIREWALL_OUTSIDE2),
        ] {
            for net in ["198.18.21.0/24", "198.18.22.0/24", "198.18.25.0/24"] {
                self.ns(server)
                    .ip(&["route", "add", net, "via", &firewall.to_string()])?;
            }
        }
        if self.ipv6 {
            self.route6()?;
        }
        self.set_direct_routing(false)
    }

    /// The IPv6 plane's routes, the same shape as the IPv4 ones: the destination routes back
    /// through the server and forwards to the peer, the firewall forwards between its legs
    fn route6(&self) -> Result<()> {
        let via = |host, net: &str, gw: std::net::Ipv6Addr| {
            self.ns(host)
                .ip(&["-6", "route", "add", net, "via", &gw.to_string()])
                .map(drop)
        };
        via(Host::HostA, "default", CLIENT_LAN6)?;
        via(Host::HostD, "default", CLIENT_LAN6)?;
        via(Host::HostB, "default", PUBLISHED_GATEWAY6)?;
        via(Host::HostC, "default", CLIENT2_LAN6)?;
        via(Host::Client, "default", FIREWALL_INSIDE6)?;
        via(Host::Client2, "default", FIREWALL_INSIDE6)?;
        via(Host::Server, "default", DESTINATION6)?;
        via(Host::Server2, "default", DESTINATION2_6)?;
        via(Host::Destination, "default", SERVER_DST6)?;
        via(Host::Peer, "default", DESTINATION_PEER6)?;
        via(Host::Firewall, "default", SERVER_WAN6)?;
        via(Host::Firewall, LAN6, CLIENT_WAN6)?;
        via(Host::Firewall, LAN2_6, CLIENT2_WAN6)?;
        for (server, firewall) in [
            (Host::Server, FIREWALL_OUTSIDE6),
            (Host::Server2, FIREWALL_OUTSIDE2_6),
        ] {
            for net in [LAN6, LAN2_6, "2001:db8:22::/64"] {
                via(server, net, firewall)?;
            }
        }
        for host in [Host::Firewall, Host::Destination] {
            self.ns(host).sysctl("net.ipv6.conf.all.forwarding", "1")?;
        }
        Ok(())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Services first, then namespaces in reverse creation order, then the slot
        drop(std::mem::take(&mut self.services));
        while self.namespaces.pop().is_some() {}
    }
}

/// An `iptables-save` line without its `[packets:bytes]` counters
fn strip_counters(line: &str) -> String {
    match line.rfind(" [") {
        Some(at) if line.starts_with(':') => line[..at].to_owned(),
        _ => line.to_owned(),
    }
}
