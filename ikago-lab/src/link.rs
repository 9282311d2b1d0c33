//! Links between namespaces: veth pairs with offloads off, addresses, bridges

use std::net::Ipv4Addr;

use crate::cmd;
use crate::{Netns, Result};

/// One end of a veth pair: its namespace, name and optional address (with prefix length)
pub(crate) struct End<'a> {
    pub(crate) ns: &'a Netns,
    pub(crate) name: &'a str,
    pub(crate) addr: Option<(Ipv4Addr, u8)>,
}

/// Creates a veth pair straight into two namespaces, turns offloads off, addresses and raises it
///
/// Offloads off (DESIGN §6): else pcap sees unchecked checksums and 16 KB GSO frames. MACs are
/// fixed from the address (`02:00:00:00:<octet 3>:<octet 4>`) so captures read the same each run.
pub(crate) fn veth(a: &End<'_>, b: &End<'_>) -> Result<()> {
    let mut args = vec!["link", "add", a.name, "netns", a.ns.name()];
    let (mac_a, mac_b) = (a.addr.map(mac_for), b.addr.map(mac_for));
    if let Some(mac) = &mac_a {
        args.extend(["address", mac]);
    }
    args.extend(["type", "veth", "peer", "name", b.name, "netns", b.ns.name()]);
    if let Some(mac) = &mac_b {
        args.extend(["address", mac]);
    }
    cmd::run("ip", &args)?;
    for end in [a, b] {
        offloads_off(end.ns, end.name)?;
        if let Some((ip, prefix)) = end.addr {
            end.ns
                .ip(&["addr", "add", &format!("{ip}/{prefix}"), "dev", end.name])?;
        }
        end.ns.ip(&["link", "set", end.name, "up"])?;
    }
    Ok(())
}

/// Turns off checksum offload, TSO, GSO and GRO on a device
pub(crate) fn offloads_off(ns: &Netns, dev: &str) -> Result<()> {
    ns.exec(
        "ethtool",
        &[
            "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
        ],
    )
    .map(drop)
}

/// Creates bridge `name` in `ns` with the given ports, and keeps it out of iptables
///
/// `bridge-nf-call-iptables` is turned off in the switch namespace (DESIGN §6): a switch does
/// not filter.
pub(crate) fn bridge(ns: &Netns, name: &str, ports: &[&str]) -> Result<()> {
    ns.ip(&["link", "add", name, "type", "bridge"])?;
    for key in ["iptables", "ip6tables", "arptables"] {
        // Present only where br_netfilter is loaded; absent means bridges skip iptables anyway
        let _ = ns.sysctl(&format!("net.bridge.bridge-nf-call-{key}"), "0");
    }
    for port in ports {
        ns.ip(&["link", "set", port, "master", name])?;
    }
    ns.ip(&["link", "set", name, "up"]).map(drop)
}

/// The fixed MAC of an interface with this address
fn mac_for((ip, _): (Ipv4Addr, u8)) -> String {
    let [_, _, c, d] = ip.octets();
    format!("02:00:00:00:{c:02x}:{d:02x}")
}
