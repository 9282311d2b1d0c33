//! `--rule`: firewall rules and kernel settings for the tunnel, undone on exit
//!
//! [`Plan`] says what to change for the machine's role ([`rules`] has the drop rules); installing
//! it gives a [`Firewall`] guard that undoes every change when removed or dropped, on a normal
//! exit, after SIGINT/SIGTERM (the runners shut down gracefully) and on error paths alike. The
//! rules live in a chain or table of our own, named after the process id, so they never touch
//! the host's other rules.

mod backend;
pub(crate) mod exec;
pub(crate) mod kernel;
pub mod rules;

pub use backend::Backend;
pub use exec::ExecError;

use ikago_proto::{ClientConfig, ServerConfig};
use rules::Rule;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

/// What `--rule` changes for one machine
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// INPUT drop rules
    pub rules: Vec<Rule>,
    /// Whether to turn IPv4 forwarding off (client: the kernel must not route the sources'
    /// packets itself)
    pub ip_forward_off: bool,
    /// Whether to turn IPv6 forwarding off (client with IPv6 sources, for the same reason)
    pub ip6_forward_off: bool,
    /// Devices whose GRO is turned off (it would merge FakeTCP segments before pcap sees them)
    pub gro_devices: Vec<String>,
    /// Local ports the rules drop, which the kernel's own connections should not use
    pub reserved_ports: Vec<RangeInclusive<u16>>,
}

impl Plan {
    /// The client's plan for FakeTCP address `local`
    pub fn client(config: &ClientConfig, local: SocketAddr) -> Self {
        Self {
            rules: rules::client(config, local),
            ip_forward_off: true,
            ip6_forward_off: !config.sources6.is_empty(),
            gro_devices: device_names(config.devices.iter().map(|d| d.name.as_str())),
            reserved_ports: Vec::new(),
        }
    }

    /// The server's plan
    pub fn server(config: &ServerConfig) -> Self {
        Self {
            rules: rules::server(config),
            ip_forward_off: false,
            ip6_forward_off: false,
            gro_devices: device_names(config.devices.iter().map(|d| d.name.as_str())),
            reserved_ports: vec![config.nat.tcp_ports.clone(), config.nat.udp_ports.clone()],
        }
    }
}

fn device_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for n in names {
        if !v.iter().any(|x| x == n) {
            v.push(n.to_owned());
        }
    }
    v
}

/// Why `--rule` could not be applied
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// Neither iptables nor nft runs
    #[error("--rule needs iptables or nft, and neither runs")]
    NoTool,
    /// A tool failed
    #[error("cannot install firewall rules: {0}")]
    Exec(#[from] ExecError),
    /// A sysctl could not be read or written
    #[error("cannot set {path}: {source}")]
    Sysctl {
        /// The sysctl file
        path: &'static str,
        /// Why
        source: std::io::Error,
    },
}

/// Installed rules and changed settings; undone by [`Firewall::remove`] or on drop
#[derive(Debug)]
pub struct Firewall {
    backend: Backend,
    name: String,
    installed: bool,
    /// The forwarding switches turned off, with the value each had
    forwarding: Vec<(&'static str, String)>,
    gro_off: Vec<String>,
}

impl Firewall {
    /// Applies `plan` with `backend` (detected when `None`); what was applied before a failure is
    /// undone before the error returns
    pub fn install(plan: &Plan, backend: Option<Backend>) -> Result<Self, FirewallError> {
        let backend = backend
            .or_else(Backend::detect)
            .ok_or(FirewallError::NoTool)?;
        let mut fw = Self {
            backend,
            name: backend.object_name(std::process::id()),
            installed: false,
            forwarding: Vec::new(),
            gro_off: Vec::new(),
        };
        if let Some(local) = kernel::local_port_range() {
            let mut warned: Vec<&RangeInclusive<u16>> = Vec::new();
            for r in &plan.reserved_ports {
                if !kernel::overlap(r, &local) || warned.contains(&r) {
                    continue;
                }
                warned.push(r);
                log::warn!(
                    "NAT ports {}-{} overlap the kernel's ephemeral ports {}-{}: this host's own \
                     connections there are dropped; narrow them with sysctl -w \
                     net.ipv4.ip_local_port_range=\"{} {}\"",
                    r.start(),
                    r.end(),
                    local.start(),
                    local.end(),
                    local.start(),
                    r.start().saturating_sub(1).max(*local.start()),
                );
            }
        }
        for stale in backend.stale() {
            match backend.remove(&stale) {
                Ok(()) => {
                    log::warn!("Remove firewall rules {stale} left by a process that was killed")
                }
                Err(e) => log::warn!("Cannot remove stale firewall rules {stale}: {e}"),
            }
        }
        backend.install(&fw.name, &plan.rules)?;
        fw.installed = true;
        log::info!("Install firewall rules in {}", fw.describe());
        for r in &plan.rules {
            log::debug!("Firewall: {}", r.nft());
        }
        for (off, path, what) in [
            (plan.ip_forward_off, kernel::IP_FORWARD, "IP forwarding"),
            (plan.ip6_forward_off, kernel::IP6_FORWARD, "IPv6 forwarding"),
        ] {
            if !off {
                continue;
            }
            let sysctl = |source| FirewallError::Sysctl { path, source };
            let old = kernel::read_sysctl(path).map_err(sysctl)?;
            if old != "0" {
                kernel::write_sysctl(path, "0").map_err(sysctl)?;
                fw.forwarding.push((path, old));
                log::info!("Disable {what}");
            }
        }
        for dev in &plan.gro_devices {
            match kernel::gro_changeable_on(dev).and_then(|on| {
                if on {
                    kernel::set_gro(dev, false)?;
                }
                Ok(on)
            }) {
                Ok(true) => {
                    fw.gro_off.push(dev.clone());
                    log::info!("Disable GRO on {dev}");
                }
                Ok(false) => {}
                Err(e) => log::warn!("GRO stays as it is on {dev}: {e}"),
            }
        }
        Ok(fw)
    }

    /// `iptables chain IKAGO-123` or `nft table inet ikago_123` (the chain has an ip6tables twin
    /// when there are IPv6 rules)
    pub fn describe(&self) -> String {
        match self.backend {
            Backend::Iptables => format!("iptables chain {}", self.name),
            Backend::Nft => format!("nft table inet {}", self.name),
        }
    }

    /// The name of our chain or table
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Undoes everything; returns whether every step succeeded (failures are logged)
    pub fn remove(mut self) -> bool {
        self.restore()
    }

    fn restore(&mut self) -> bool {
        let mut ok = true;
        for dev in std::mem::take(&mut self.gro_off) {
            if let Err(e) = kernel::set_gro(&dev, true) {
                log::error!("Cannot turn GRO back on on {dev}: {e}");
                ok = false;
            }
        }
        for (path, old) in std::mem::take(&mut self.forwarding) {
            if let Err(e) = kernel::write_sysctl(path, &old) {
                log::error!("Cannot restore {path} to {old}: {e}");
                ok = false;
            }
        }
        if std::mem::take(&mut self.installed) {
            match self.backend.remove(&self.name) {
                Ok(()) => log::info!("Remove firewall rules from {}", self.describe()),
                Err(e) => {
                    log::error!("Cannot remove firewall rules: {e}");
                    ok = false;
                }
            }
        }
        ok
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        self.restore();
    }
}
