//! Network interfaces: pcap's device list for addresses and flags, sysfs for MAC and link type

use ikago_proto::{Ipv4Net, Ipv6Net, Mac};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

/// `ARPHRD_ETHER` from linux/if_arp.h: the only link type the core speaks
const ARPHRD_ETHER: u16 = 1;

/// One network interface as the runner sees it
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Its name (`eth0`)
    pub name: String,
    /// Its MAC, when it has one
    pub mac: Option<Mac>,
    /// Its IPv4 addresses with prefix lengths, in the kernel's order
    pub addrs: Vec<Ipv4Net>,
    /// Its global IPv6 addresses (unique local ones included, link-local ones not) with prefix
    /// lengths, in the kernel's order
    pub addrs6: Vec<Ipv6Net>,
    /// Whether it is up
    pub up: bool,
    /// Whether it is running (carrier present)
    pub running: bool,
    /// Whether it is a loopback device
    pub loopback: bool,
    /// Whether its frames are Ethernet (the link type the core handles)
    pub ethernet: bool,
}

impl Interface {
    /// Whether the core can use it: up, Ethernet, with a MAC and an IPv4 or a global IPv6
    /// address, not loopback
    pub fn usable(&self) -> bool {
        let addressed = !self.addrs.is_empty() || !self.addrs6.is_empty();
        self.up && self.ethernet && !self.loopback && self.mac.is_some() && addressed
    }

    /// The first of its addresses whose subnet contains `ip`
    pub fn addr_for(&self, ip: std::net::Ipv4Addr) -> Option<Ipv4Net> {
        self.addrs.iter().copied().find(|n| n.contains(ip))
    }
}

/// Whether `ip` can be a device's global IPv6 address: unicast, not link-local, loopback or
/// unspecified
fn global6(ip: Ipv6Addr) -> bool {
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unicast_link_local()
        || ip.to_ipv4_mapped().is_some())
}

impl fmt::Display for Interface {
    /// The `list-devices` line: `eth0 [02:00:00:00:00:01]: 198.18.0.2/24 (up, running)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(mac) = self.mac {
            write!(f, " [{mac}]")?;
        }
        f.write_str(":")?;
        let v6 = self
            .addrs6
            .iter()
            .map(|a| format!("{}/{}", a.addr, a.prefix_len));
        let all = self
            .addrs
            .iter()
            .map(|a| format!("{}/{}", a.addr, a.prefix_len));
        for (i, a) in all.chain(v6).enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            write!(f, "{sep}{a}")?;
        }
        let flags: Vec<&str> = [
            (self.up, "up"),
            (self.running, "running"),
            (self.loopback, "loopback"),
            (!self.ethernet, "not ethernet"),
            (
                self.addrs.is_empty() && !self.addrs6.is_empty(),
                "IPv6 only",
            ),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        write!(
            f,
            " ({})",
            if flags.is_empty() {
                "down".to_owned()
            } else {
                flags.join(", ")
            }
        )
    }
}

/// Lists the interfaces pcap can open, with their IPv4 and global IPv6 addresses
pub fn list() -> Result<Vec<Interface>, pcap::Error> {
    let sys = Path::new("/sys/class/net");
    Ok(pcap::Device::list()?
        .into_iter()
        .filter(|d| sys.join(&d.name).exists())
        .map(|d| from_pcap(&d, &sys.join(&d.name)))
        .collect())
}

/// Combines pcap's view of a device with its sysfs folder
fn from_pcap(d: &pcap::Device, sysfs: &Path) -> Interface {
    let read = |file: &str| std::fs::read_to_string(sysfs.join(file)).unwrap_or_default();
    let addrs = d
        .addresses
        .iter()
        .filter_map(|a| match (a.addr, a.netmask) {
            (IpAddr::V4(addr), Some(IpAddr::V4(mask))) => Some(Ipv4Net {
                addr,
                prefix_len: u32::from(mask).count_ones() as u8,
            }),
            (IpAddr::V4(addr), _) => Some(Ipv4Net::from(addr)),
            _ => None,
        })
        .collect();
    let addrs6 = d
        .addresses
        .iter()
        .filter_map(|a| match (a.addr, a.netmask) {
            (IpAddr::V6(addr), _) if !global6(addr) => None,
            (IpAddr::V6(addr), Some(IpAddr::V6(mask))) => Some(Ipv6Net {
                addr,
                prefix_len: u128::from(mask).count_ones() as u8,
            }),
            (IpAddr::V6(addr), _) => Some(Ipv6Net::from(addr)),
            _ => None,
        })
        .collect();
    Interface {
        name: d.name.clone(),
        mac: read("address")
            .trim()
            .parse()
            .ok()
            .filter(|m| *m != Mac::ZERO),
        addrs,
        addrs6,
        up: d.flags.is_up(),
        running: d.flags.is_running(),
        loopback: d.flags.is_loopback(),
        ethernet: read("type").trim().parse() == Ok(ARPHRD_ETHER),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn eth0() -> Interface {
        Interface {
            name: "eth0".into(),
            mac: Some("02:00:00:00:00:01".parse().unwrap()),
            addrs: vec![
                "198.18.0.2/24".parse().unwrap(),
                "198.19.0.2/16".parse().unwrap(),
            ],
            addrs6: vec!["2001:db8:1::2/64".parse().unwrap()],
            up: true,
            running: true,
            loopback: false,
            ethernet: true,
        }
    }

    #[test]
    fn displays_as_list_devices_line() {
        assert_eq!(
            eth0().to_string(),
            "eth0 [02:00:00:00:00:01]: 198.18.0.2/24, 198.19.0.2/16, 2001:db8:1::2/64 (up, running)"
        );
        let lo = Interface {
            name: "lo".into(),
            mac: None,
            addrs: vec![Ipv4Net::from(Ipv4Addr::LOCALHOST)],
            addrs6: Vec::new(),
            up: true,
            running: true,
            loopback: true,
            ethernet: false,
        };
        assert_eq!(
            lo.to_string(),
            "lo: 127.0.0.1/32 (up, running, loopback, not ethernet)"
        );
        let v6_only = Interface {
            addrs: Vec::new(),
            ..eth0()
        };
        assert_eq!(
            v6_only.to_string(),
            "eth0 [02:00:00:00:00:01]: 2001:db8:1::2/64 (up, running, IPv6 only)"
        );
    }

    #[test]
    fn only_global_ipv6_addresses_count() {
        for global in ["2001:db8::1", "fd00:21::1"] {
            assert!(global6(global.parse().unwrap()), "{global}");
        }
        for other in ["fe80::1", "::1", "::", "ff02::1", "::ffff:198.18.0.1"] {
            assert!(!global6(other.parse().unwrap()), "{other}");
        }
    }

    #[test]
    fn picks_the_address_of_a_subnet() {
        let e = eth0();
        assert!(e.usable());
        let v6_only = Interface {
            addrs: Vec::new(),
            ..eth0()
        };
        assert!(v6_only.usable());
        let bare = Interface {
            addrs6: Vec::new(),
            ..v6_only
        };
        assert!(!bare.usable());
        assert_eq!(
            e.addr_for(Ipv4Addr::new(198, 19, 9, 9))
                .unwrap()
                .to_string(),
            "198.19.0.2/16"
        );
        assert_eq!(e.addr_for(Ipv4Addr::new(203, 0, 113, 1)), None);
    }
}
