//! The lab topology: namespaces, links, routes, firewall and services, built and torn down whole

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::addr::*;
use crate::firewall::{INSIDE, OUTSIDE, OUTSIDE2};
use crate::link::{End, bridge, veth};
use crate::netns::new_lab_id;
use crate::runner::{ClientSite, Runner, ServerSite, TunnelOptions};
use crate::watchdog::{LAB_DEADLINE, Watchdog};
use crate::{Daemon, FirewallPolicy, Netns, Result, services, sweep_stale};

/// How long a client gets to print "Connected to server" after it starts
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// One lab at a time per process: lab tests measure throughput and must not share 2 cores
static SERIAL: Mutex<()> = Mutex::new(());

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
    /// The LAN switch (a bridge) joining host A, host B and the client
    LanSwitch,
    /// The WAN switch (a bridge) joining both clients and the firewall
    WanSwitch,
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
    services: Vec<Daemon>,
    namespaces: Vec<(Host, Netns)>,
    /// Dropped after the namespaces: it also watches the teardown
    _watchdog: Watchdog,
    _serial: MutexGuard<'static, ()>,
}

impl Lab {
    /// Builds the whole topology with `policy` on the firewall, services up and answering
    pub fn build(policy: FirewallPolicy) -> Result<Self> {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = sweep_stale() {
            eprintln!("ikago-lab: sweeping stale namespaces: {e}");
        }
        let id = new_lab_id();
        let mut lab = Self {
            _watchdog: Watchdog::arm(&id, LAB_DEADLINE),
            id,
            policy,
            services: Vec::new(),
            namespaces: Vec::new(),
            _serial: serial,
        };
        for host in Host::ALL {
            let ns = Netns::create(&lab.id, host.role())?;
            lab.namespaces.push((host, ns));
        }
        lab.wire()?;
        lab.route()?;
        policy.apply(lab.ns(Host::Firewall))?;
        lab.services = services::start(lab.ns(Host::Destination))?;
        Ok(lab)
    }

    /// The lab's identifier, the common prefix of its namespace names
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The namespace of `host`
    pub fn ns(&self, host: Host) -> &Netns {
        &self
            .namespaces
            .iter()
            .find(|(h, _)| *h == host)
            .expect("every host is created in build")
            .1
    }

    /// The firewall policy in force
    pub fn policy(&self) -> FirewallPolicy {
        self.policy
    }

    /// Replaces the firewall policy
    pub fn set_policy(&mut self, policy: FirewallPolicy) -> Result<()> {
        policy.apply(self.ns(Host::Firewall))?;
        self.policy = policy;
        Ok(())
    }

    /// Turns kernel forwarding on the client machines and the server on or off
    ///
    /// On, the LAN hosts reach the destination without the tunnel (the direct path, through the
    /// firewall); off (the default), only IkaGo moves packets between their legs.
    pub fn set_direct_routing(&self, on: bool) -> Result<()> {
        for host in [Host::Client, Host::Client2, Host::Server, Host::Server2] {
            self.ns(host)
                .sysctl("net.ipv4.ip_forward", if on { "1" } else { "0" })?;
        }
        Ok(())
    }

    /// Starts the server of `runner` on the server machine
    pub fn start_server(&self, runner: Runner, tunnel: &TunnelOptions) -> Result<Daemon> {
        self.start_server_at(runner, ServerSite::Main, tunnel)
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

    /// The firewall rules of `host`, for leak checks: `iptables-save` rules and user chains,
    /// and nftables tables other than the ones iptables-nft creates empty on first use
    pub fn firewall_rules(&self, host: Host) -> Result<Vec<String>> {
        let ns = self.ns(host);
        let saved = ns.exec("iptables-save", &[])?;
        let builtin = ["INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"];
        let mut rules = saved
            .lines()
            .filter(|l| {
                l.starts_with("-A")
                    || l.strip_prefix(':')
                        .is_some_and(|c| !builtin.contains(&c.split(' ').next().unwrap_or("")))
            })
            .map(strip_counters)
            .collect::<Vec<_>>();
        let iptables_nft =
            ["filter", "nat", "mangle", "raw", "security"].map(|t| format!("table ip {t}"));
        let tables = ns.exec("nft", &["list", "tables"])?;
        rules.extend(
            tables
                .lines()
                .filter(|t| !iptables_nft.contains(&t.trim().to_owned()))
                .map(str::to_owned),
        );
        Ok(rules)
    }

    /// Creates the links: two bridges, six point-to-point veths
    fn wire(&self) -> Result<()> {
        let end = |host, name, addr: Option<std::net::Ipv4Addr>| End {
            ns: self.ns(host),
            name,
            addr: addr.map(|a| (a, PREFIX)),
        };
        let (lan, wan) = (Host::LanSwitch, Host::WanSwitch);
        veth(
            &end(Host::HostA, "eth0", Some(HOST_A)),
            &end(lan, "pa", None),
        )?;
        veth(
            &end(Host::HostB, "eth0", Some(HOST_B)),
            &end(lan, "pb", None),
        )?;
        veth(
            &end(Host::Client, "lan0", Some(CLIENT_LAN)),
            &end(lan, "pclient", None),
        )?;
        bridge(self.ns(lan), "br0", &["pa", "pb", "pclient"])?;
        veth(
            &end(Host::Client, "wan0", Some(CLIENT_WAN)),
            &end(wan, "pclient", None),
        )?;
        veth(
            &end(Host::Client2, "wan0", Some(CLIENT2_WAN)),
            &end(wan, "pclient2", None),
        )?;
        veth(
            &end(Host::Firewall, INSIDE, Some(FIREWALL_INSIDE)),
            &end(wan, "pfw", None),
        )?;
        bridge(self.ns(wan), "br0", &["pclient", "pclient2", "pfw"])?;
        veth(
            &end(Host::HostC, "eth0", Some(HOST_C)),
            &end(Host::Client2, "lan0", Some(CLIENT2_LAN)),
        )?;
        veth(
            &end(Host::Firewall, OUTSIDE, Some(FIREWALL_OUTSIDE)),
            &end(Host::Server, "wan0", Some(SERVER_WAN)),
        )?;
        veth(
            &end(Host::Server, "dst0", Some(SERVER_DST)),
            &end(Host::Destination, "eth0", Some(DESTINATION)),
        )?;
        veth(
            &end(Host::Firewall, OUTSIDE2, Some(FIREWALL_OUTSIDE2)),
            &end(Host::Server2, "wan0", Some(SERVER2_WAN)),
        )?;
        veth(
            &end(Host::Server2, "dst0", Some(SERVER2_DST)),
            &end(Host::Destination, "eth1", Some(DESTINATION2)),
        )
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
        self.set_direct_routing(false)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Services first, then namespaces in reverse creation order, then the serial lock
        self.services.clear();
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
