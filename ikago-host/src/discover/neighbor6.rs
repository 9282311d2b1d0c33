//! The kernel's IPv6 neighbour table, read with `ip -6 neigh show` (procfs has none)

use crate::firewall::exec::run;
use ikago_proto::Mac;
use std::net::Ipv6Addr;

/// Neighbour states whose MAC can be used (`ip neigh` prints them in capitals)
const USABLE: [&str; 5] = ["REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT"];

/// Known IPv6 neighbours with a MAC, by device
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Neighbors6(pub Vec<(String, Ipv6Addr, Mac)>);

impl Neighbors6 {
    /// Runs `ip -6 neigh show`; without `ip` (or IPv6) the table is empty, and the core resolves
    /// the gateway by neighbour discovery
    pub fn read() -> Self {
        run("ip", &["-6", "neigh", "show"], None)
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Parses `ip -6 neigh show` lines (`ADDR dev DEV lladdr MAC [router] STATE`), keeping the
    /// entries with a MAC in a usable state
    pub fn parse(text: &str) -> Self {
        Self(text.lines().filter_map(parse_line).collect())
    }

    /// The MAC of `ip` on `device`, if the kernel knows it
    pub fn mac(&self, device: &str, ip: Ipv6Addr) -> Option<Mac> {
        self.0
            .iter()
            .find(|(d, a, _)| d == device && *a == ip)
            .map(|&(_, _, mac)| mac)
    }
}

fn parse_line(line: &str) -> Option<(String, Ipv6Addr, Mac)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let ip: Ipv6Addr = f.first()?.parse().ok()?;
    let after = |key: &str| f.iter().position(|w| *w == key).and_then(|i| f.get(i + 1));
    let device = after("dev")?;
    let mac: Mac = after("lladdr")?.parse().ok()?;
    let state = f.last()?;
    (USABLE.contains(state) && mac != Mac::ZERO).then(|| ((*device).to_owned(), ip, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_entries_with_a_usable_mac() {
        let t = "\
fe80::1 dev eth0 lladdr 02:00:00:00:00:01 router REACHABLE
2001:db8:24::2 dev eth0 lladdr 02:00:00:00:18:02 STALE
fe80::9 dev eth0 FAILED
fe80::7 dev eth1 lladdr 02:00:00:00:00:07 INCOMPLETE
nonsense
";
        let n = Neighbors6::parse(t);
        assert_eq!(n.0.len(), 2);
        let gw = "fe80::1".parse().unwrap();
        assert_eq!(
            n.mac("eth0", gw),
            Some("02:00:00:00:00:01".parse().unwrap())
        );
        assert_eq!(n.mac("eth1", gw), None);
        assert_eq!(n.mac("eth0", "fe80::9".parse().unwrap()), None);
        assert_eq!(n.mac("eth1", "fe80::7".parse().unwrap()), None);
    }
}
