//! Links between namespaces: veth pairs with offloads off, addresses, bridges

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::addr::PREFIX6;

use crate::cmd;
use crate::{Netns, Result};

/// One end of a veth pair: its namespace, name, optional IPv4 address (with prefix length) and
/// optional IPv6 address (a /64)
pub(crate) struct End<'a> {
    pub(crate) ns: &'a Netns,
    pub(crate) name: &'a str,
    pub(crate) addr: Option<(Ipv4Addr, u8)>,
    pub(crate) addr6: Option<Ipv6Addr>,
}

/// Creates a veth pair straight into two namespaces, turns offloads off, addresses and raises it
///
/// Offloads off (DESIGN §6): else pcap sees unchecked checksums and 16 KB GSO frames. MACs are
/// fixed from the address (`02:00:00:00:<octet 3>:<octet 4>`, or for an end with an IPv6
/// address only `02:00:00:06:<subnet>:<last octet>`) so captures read the same each run. IPv6
/// addresses skip duplicate address detection: the plan has no duplicates, and a tentative
/// address could not be bound at once.
pub(crate) fn veth(a: &End<'_>, b: &End<'_>) -> Result<()> {
    let mut args = vec!["link", "add", a.name, "netns", a.ns.name()];
    let (mac_a, mac_b) = (mac_of(a), mac_of(b));
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
        if let Some(ip) = end.addr6 {
            let addr = format!("{ip}/{PREFIX6}");
            end.ns
                .ip(&["-6", "addr", "add", &addr, "dev", end.name, "nodad"])?;
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

/// The fixed MAC of an end with an address, from its IPv4 address when it has one
fn mac_of(end: &End<'_>) -> Option<String> {
    match (end.addr, end.addr6) {
        (Some((ip, _)), _) => {
            let [_, _, c, d] = ip.octets();
            Some(format!("02:00:00:00:{c:02x}:{d:02x}"))
        }
        (None, Some(ip)) => {
            let o = ip.octets();
            Some(format!("02:00:00:06:{:02x}:{:02x}", o[3], o[15]))
        }
        (None, None) => None,
    }
}
