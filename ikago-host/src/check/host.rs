//! The findings about this host: privileges, ports, devices, offloads, sysctls, MTUs, the NAT port
//! range and the firewall tool

use super::Report;
use crate::app::Settings;
use crate::firewall::kernel::{self, Feature, GRO, LRO};
use crate::firewall::{Backend, Plan};
use crate::port;
use crate::privilege::{Held, missing_message, needed, raise};
use ikago_proto::DeviceConfig;
use std::net::TcpListener;

/// Where a device's settings are in sysfs
const SYS_NET: &str = "/sys/class/net";

/// Privileges and capabilities: what capturing (and `--rule`) need against what is held
pub(super) fn privileges(report: &mut Report, rule: bool) {
    let held = match Held::current() {
        Ok(h) => h,
        Err(e) => return report.fail("privileges", e),
    };
    // what this check itself runs (nft, ethtool) and captures with: whatever is permitted
    let usable = needed(true) & held.sets.permitted;
    if let Err(e) = raise(&held, usable, true) {
        report.warn(
            "privileges",
            format!("this check runs with less than it holds: {e}"),
        );
    }
    let missing = held.missing(needed(rule));
    if missing.is_empty() {
        let what = if rule {
            "enough to capture and for --rule"
        } else {
            "enough to capture"
        };
        report.ok("privileges", format!("{}: {what}", held.describe()));
    } else {
        let nnp = rustix::thread::no_new_privs().unwrap_or(false);
        report.fail(
            "privileges",
            format!("{}: {}", held.describe(), missing_message(missing, nnp)),
        );
    }
}

/// The ports this process must own: the tunnel port (the client's when fixed) and the monitor's
pub(super) fn ports(report: &mut Report, settings: &Settings) {
    if let Some((what, p)) = settings.fixed_port() {
        match port::reserve(what, p) {
            Ok(Some(_held_and_released)) => report.ok("ports", format!("{what} {p} is free")),
            Ok(None) => report.warn(
                "ports",
                format!(
                    "{what} {p} cannot be reserved without CAP_NET_BIND_SERVICE (below 1024): \
                     other programs may take it"
                ),
            ),
            Err(e) => report.fail("ports", e),
        }
    }
    if let Some(addr) = settings.common().monitor_addr() {
        match TcpListener::bind(addr) {
            Ok(_) => report.ok("ports", format!("the monitor's address {addr} is free")),
            Err(e) => report.fail("ports", format!("the monitor cannot listen on {addr}: {e}")),
        }
    }
}

/// A device's sysfs attribute, trimmed
fn sys(device: &str, attribute: &str) -> Option<String> {
    std::fs::read_to_string(format!("{SYS_NET}/{device}/{attribute}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// A device's MTU
pub(super) fn device_mtu(device: &str) -> Option<u16> {
    sys(device, "mtu")?.parse().ok()
}

/// The chosen devices, their roles and addresses, and whether they have a carrier
pub(super) fn devices(report: &mut Report, devices: &[DeviceConfig]) {
    for d in devices {
        let mut roles = Vec::new();
        if d.role.listens() {
            roles.push("listens".to_owned());
        }
        if d.role.is_upstream() {
            roles.push(match (d.gateway, d.gateway_mac) {
                _ if d.addr.is_none() => "is upstream over IPv6".to_owned(),
                (Some(g), Some(m)) => format!("is upstream, to gateway {g} [{m}]"),
                (Some(g), None) => {
                    format!("is upstream, to gateway {g} (its MAC is learned by ARP at start)")
                }
                (None, _) => "is upstream, to on-link peers".to_owned(),
            });
        }
        let addrs: Vec<String> = (d.net4().into_iter().map(|n| n.to_string()))
            .chain(d.ipv6.map(|l| l.net().to_string()))
            .collect();
        let line = format!(
            "{} [{}] {} {}",
            d.name,
            d.mac,
            addrs.join(" "),
            roles.join(" and ")
        );
        if sys(&d.name, "carrier").as_deref() == Some("0") {
            report.fail(
                "devices",
                format!("{line}, but has no carrier (cable unplugged or link down)"),
            );
        } else {
            report.ok("devices", line);
        }
    }
}

/// GRO and LRO on the devices: both merge received TCP segments before pcap sees them, and the
/// machines drop what was merged
pub(super) fn offloads(report: &mut Report, devices: &[DeviceConfig], rule: bool) {
    let merge = "it merges received segments before capture, and merged ones are dropped";
    let mut off = Vec::new();
    for d in devices {
        let text = match kernel::features(&d.name) {
            Ok(t) => t,
            Err(e) => {
                report.warn("offloads", format!("cannot read those of {}: {e}", d.name));
                continue;
            }
        };
        let (gro, lro) = (kernel::feature(&text, GRO), kernel::feature(&text, LRO));
        let name = &d.name;
        match gro {
            Some(Feature {
                on: true,
                fixed: false,
            }) if rule => report.ok(
                "offloads",
                format!("GRO is on on {name}; --rule turns it off while running"),
            ),
            Some(Feature {
                on: true,
                fixed: false,
            }) => report.warn(
                "offloads",
                format!(
                    "GRO is on on {name}: {merge}; --rule turns it off, or `ethtool -K {name} \
                     gro off`"
                ),
            ),
            Some(Feature {
                on: true,
                fixed: true,
            }) => report.warn(
                "offloads",
                format!("GRO is on on {name} and the driver keeps it on: {merge}"),
            ),
            _ => {}
        }
        match lro {
            Some(Feature {
                on: true,
                fixed: false,
            }) => report.warn(
                "offloads",
                format!("LRO is on on {name}: {merge}; `ethtool -K {name} lro off`"),
            ),
            Some(Feature {
                on: true,
                fixed: true,
            }) => report.warn(
                "offloads",
                format!("LRO is on on {name} and the driver keeps it on: {merge}"),
            ),
            _ if !gro.is_some_and(|f| f.on) => off.push(name.as_str()),
            _ => {}
        }
    }
    if !off.is_empty() {
        report.ok(
            "offloads",
            format!(
                "GRO and LRO are off on {}: segments reach capture as they were sent",
                off.join(", ")
            ),
        );
    }
}

/// A sysctl of this network namespace
fn sysctl(path: &str) -> Option<String> {
    kernel::read_sysctl(path).ok()
}

/// `ip_forward` (the client must not forward the sources' packets itself) and `rp_filter`
/// (which pcap does not see: it reads frames before the kernel's reverse-path check)
pub(super) fn sysctls(report: &mut Report, settings: &Settings, devices: &[DeviceConfig]) {
    let rule = settings.common().rule;
    match (sysctl(kernel::IP_FORWARD).as_deref(), settings) {
        (None, _) => report.warn("ip_forward", "cannot read net.ipv4.ip_forward"),
        (Some("0"), Settings::Client(_)) => report.ok(
            "ip_forward",
            "0: only the tunnel carries the sources' packets",
        ),
        (Some(_), Settings::Client(_)) if rule => report.ok(
            "ip_forward",
            "1; --rule turns it off while running, so that only the tunnel carries the sources' \
             packets",
        ),
        (Some(_), Settings::Client(_)) => report.warn(
            "ip_forward",
            "1: the kernel also forwards the sources' packets itself, outside the tunnel; --rule \
             turns it off while running, or `sysctl -w net.ipv4.ip_forward=0`",
        ),
        (Some(v), Settings::Server(_)) => report.ok(
            "ip_forward",
            format!("{v}: the server does not use it (its NAT runs inside IkaGo)"),
        ),
    }
    let all = sysctl("/proc/sys/net/ipv4/conf/all/rp_filter")
        .and_then(|v| v.parse::<u8>().ok())
        .unwrap_or(0);
    let values: Vec<String> = devices
        .iter()
        .map(|d| {
            let own = sysctl(&format!("/proc/sys/net/ipv4/conf/{}/rp_filter", d.name))
                .and_then(|v| v.parse::<u8>().ok())
                .unwrap_or(0);
            // the kernel applies the larger of `all` and the device's own
            let name = match own.max(all) {
                0 => "off",
                1 => "strict",
                _ => "loose",
            };
            format!("{name} on {}", d.name)
        })
        .collect();
    report.ok(
        "rp_filter",
        format!(
            "{}: it does not affect the tunnel, since capture reads frames before the kernel's \
             reverse-path check",
            values.join(", ")
        ),
    );
}

/// The tunnel over IPv6: the IPv6 addresses a server takes tunnels on, or the way a client's
/// frames take to its IPv6 servers (from the upstream device's IPv6 address, through its IPv6
/// router or to an on-link server); nothing without IPv6 on either side
pub(super) fn tunnel6(report: &mut Report, settings: &Settings, devices: &[DeviceConfig]) {
    let port = settings.common().port;
    match settings {
        Settings::Server(_) => {
            let on: Vec<String> = devices
                .iter()
                .filter(|d| d.role.listens())
                .filter_map(|d| d.ipv6.map(|l| format!("[{}]:{port} on {}", l.addr, d.name)))
                .collect();
            if !on.is_empty() {
                let on = on.join(", ");
                report.ok(
                    "tunnel",
                    format!("clients may tunnel over IPv6 too, to {on}"),
                );
            }
        }
        Settings::Client(c) => {
            let servers = std::iter::once(&c.server).chain(&c.fallback);
            let servers: Vec<String> = servers
                .filter(|s| s.is_ipv6())
                .map(ToString::to_string)
                .collect();
            let Some(up) = devices.iter().find(|d| d.role.is_upstream()) else {
                return;
            };
            match (servers.is_empty(), up.ipv6) {
                (true, _) => {}
                (false, None) => report.fail(
                    "tunnel",
                    format!(
                        "{} has no global IPv6 address to reach {} from",
                        up.name,
                        servers.join(", ")
                    ),
                ),
                (false, Some(link)) => {
                    let via = match (link.gateway, link.gateway_mac) {
                        (Some(g), Some(m)) => format!("through router {g} [{m}]"),
                        (Some(g), None) => {
                            format!(
                                "through router {g} (its MAC is learned by neighbour discovery)"
                            )
                        }
                        (None, _) => "to the server on the link".to_owned(),
                    };
                    report.ok(
                        "tunnel",
                        format!(
                            "over IPv6 to {} from {} on {}, {via}",
                            servers.join(", "),
                            link.addr,
                            up.name
                        ),
                    );
                }
            }
        }
    }
}

/// Inner IPv6: a server's NAT66 address (and that an IPv6-only server drops inner IPv4), or a
/// client's IPv6 sources with IPv6 forwarding (which must be off, as IPv4's) and the IPv6
/// gateway its LAN hosts can use; nothing for a client without IPv6 sources
pub(super) fn ipv6(report: &mut Report, settings: &Settings, devices: &[DeviceConfig]) {
    match settings {
        Settings::Server(_) => {
            let Some(up) = devices.iter().find(|d| d.role.is_upstream()) else {
                return;
            };
            match up.ipv6 {
                Some(link) => report.ok(
                    "ipv6",
                    format!(
                        "inner IPv6 from ikago2 clients is NATed onto {} on {}{}",
                        link.addr,
                        up.name,
                        link.gateway
                            .map_or_else(String::new, |g| format!(", to gateway {g}"))
                    ),
                ),
                None => report.ok(
                    "ipv6",
                    format!(
                        "{} has no global IPv6 address: inner IPv6 from clients is dropped (no_ipv6)",
                        up.name
                    ),
                ),
            }
            if up.addr.is_none() {
                report.ok(
                    "ipv6",
                    format!(
                        "{} has IPv6 only: inner IPv4 from clients is dropped (no_ipv4)",
                        up.name
                    ),
                );
            }
        }
        Settings::Client(c) if c.sources6.is_empty() => {}
        Settings::Client(c) => {
            match sysctl(kernel::IP6_FORWARD).as_deref() {
                None => report.warn("ipv6", "cannot read net.ipv6.conf.all.forwarding"),
                Some("0") => report.ok(
                    "ipv6",
                    "forwarding 0: only the tunnel carries the IPv6 sources' packets",
                ),
                Some(_) if settings.common().rule => report.ok(
                    "ipv6",
                    "forwarding 1; --rule turns it off while running, so that only the tunnel \
                     carries the IPv6 sources' packets",
                ),
                Some(_) => report.warn(
                    "ipv6",
                    "forwarding 1: the kernel also forwards the IPv6 sources' packets itself, \
                     outside the tunnel; --rule turns it off while running, or `sysctl -w \
                     net.ipv6.conf.all.forwarding=0`",
                ),
            }
            let gateways: Vec<String> = devices
                .iter()
                .filter(|d| d.role.listens())
                .filter_map(|d| d.ipv6.map(|l| format!("{} on {}", l.addr, d.name)))
                .chain(c.publish6.iter().map(|a| format!("{a} (published)")))
                .collect();
            match gateways.is_empty() {
                true => report.warn(
                    "ipv6",
                    "no listen device has a global IPv6 address and none is published: the IPv6 \
                     sources need one as their gateway (--publish an unused address of their \
                     prefix)",
                ),
                false => report.ok(
                    "ipv6",
                    format!("the IPv6 sources' gateway can be {}", gateways.join(", ")),
                ),
            }
        }
    }
}

/// The devices' MTUs against `--mtu` (frames toward the peer) and `--fragment` (packets toward
/// the local side): a frame above a device's MTU cannot be sent on it
pub(super) fn mtu(report: &mut Report, settings: &Settings, devices: &[DeviceConfig]) {
    let common = settings.common();
    let client = matches!(settings, Settings::Client(_));
    for d in devices {
        let Some(dev_mtu) = device_mtu(&d.name) else {
            report.warn("mtu", format!("cannot read the MTU of {}", d.name));
            continue;
        };
        // the tunnel leaves a client upstream and a server on its listen devices
        let tunnel = if client {
            d.role.is_upstream()
        } else {
            d.role.listens()
        };
        let local = if client {
            d.role.listens()
        } else {
            d.role.is_upstream()
        };
        for (on, option, value, what) in [
            (tunnel, "--mtu", common.mtu, "tunnel frames"),
            (
                local,
                "--fragment",
                common.fragment,
                "packets toward the local side",
            ),
        ] {
            if !on {
                continue;
            }
            if value > dev_mtu {
                report.fail(
                    "mtu",
                    format!(
                        "{option} {value} is above the MTU {dev_mtu} of {}: larger {what} \
                         cannot be sent there; give {option} {dev_mtu}",
                        d.name
                    ),
                );
            } else {
                report.ok(
                    "mtu",
                    format!(
                        "{what} up to {option} {value} fit the MTU {dev_mtu} of {}",
                        d.name
                    ),
                );
            }
        }
    }
}

/// The server's NAT port ranges against the kernel's ephemeral ports
pub(super) fn nat_ports(report: &mut Report, plan: &Plan, rule: bool) {
    let Some((first, last)) = plan
        .reserved_ports
        .iter()
        .map(|r| (*r.start(), *r.end()))
        .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
    else {
        return;
    };
    let Some(local) = kernel::local_port_range() else {
        return report.warn(
            "nat ports",
            format!("cannot read {}", kernel::LOCAL_PORT_RANGE),
        );
    };
    if plan
        .reserved_ports
        .iter()
        .any(|r| kernel::overlap(r, &local))
    {
        let why = if rule {
            "this host's own connections there get no replies, since --rule drops them"
        } else {
            "this host's own connections there and NAT mappings may collide"
        };
        report.warn(
            "nat ports",
            format!(
                "{first}-{last} overlap the kernel's ephemeral ports {}-{}: {why}; narrow them \
                 with `sysctl -w net.ipv4.ip_local_port_range=\"{} {}\"`",
                local.start(),
                local.end(),
                local.start(),
                first.saturating_sub(1).max(*local.start()),
            ),
        );
    } else {
        report.ok(
            "nat ports",
            format!(
                "{first}-{last} are clear of the kernel's ephemeral ports {}-{}",
                local.start(),
                local.end()
            ),
        );
    }
}

/// Which firewall tool `--rule` uses, and whether one runs at all
pub(super) fn backend(report: &mut Report, rule: bool) -> Option<Backend> {
    let backend = Backend::detect();
    let pid = std::process::id();
    let described = backend.map(|b| match b {
        Backend::Iptables => format!(
            "{} (chain {}, jumped to from the top of INPUT)",
            iptables_flavour(),
            b.object_name(pid).replace(&pid.to_string(), "PID")
        ),
        Backend::Nft => format!(
            "nft (table inet {})",
            b.object_name(pid).replace(&pid.to_string(), "PID")
        ),
    });
    match (described, rule) {
        (Some(d), true) => report.ok("firewall", format!("--rule will use {d}")),
        (Some(d), false) => report.ok("firewall", format!("--rule is off; it would use {d}")),
        (None, true) => report.fail("firewall", "--rule needs iptables or nft, and neither runs"),
        (None, false) => report.ok(
            "firewall",
            "--rule is off; neither iptables nor nft runs, which it would need",
        ),
    }
    backend
}

/// `iptables (nf_tables)` or `iptables (legacy)`, from `iptables --version`
fn iptables_flavour() -> String {
    let version = crate::firewall::exec::run("iptables", &["--version"], None).unwrap_or_default();
    match version.find('(') {
        Some(at) => format!("iptables {}", version[at..].trim()),
        None => "iptables".to_owned(),
    }
}
