//! The kernel's ARP cache from `/proc/net/arp`

use ikago_proto::Mac;
use std::net::Ipv4Addr;

/// ARP entry flag: the entry is complete (`ATF_COM`, linux/if_arp.h)
const ATF_COM: u32 = 0x02;

/// One complete ARP entry
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbor {
    /// The neighbour's address
    pub ip: Ipv4Addr,
    /// Its MAC
    pub mac: Mac,
}

/// Complete ARP entries, by device
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Neighbors(pub Vec<(String, Neighbor)>);

impl Neighbors {
    /// Reads `/proc/net/arp`; an unreadable file is an empty cache
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/net/arp")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Parses the text of `/proc/net/arp`, keeping complete entries with a MAC
    pub fn parse(text: &str) -> Self {
        Self(text.lines().skip(1).filter_map(parse_line).collect())
    }

    /// The MAC of `ip` on `device`, if the kernel knows it
    pub fn mac(&self, device: &str, ip: Ipv4Addr) -> Option<Mac> {
        self.0
            .iter()
            .find(|(d, n)| d == device && n.ip == ip)
            .map(|(_, n)| n.mac)
    }
}

fn parse_line(line: &str) -> Option<(String, Neighbor)> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 6 {
        return None;
    }
    let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).ok()?;
    let mac: Mac = f[3].parse().ok()?;
    if flags & ATF_COM == 0 || mac == Mac::ZERO {
        return None;
    }
    Some((
        f[5].to_owned(),
        Neighbor {
            ip: f[0].parse().ok()?,
            mac,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_complete_entries() {
        let t = "\
IP address       HW type     Flags       HW address            Mask     Device
198.18.0.1       0x1         0x2         02:00:00:00:00:01     *        eth0
198.18.0.7       0x1         0x0         00:00:00:00:00:00     *        eth0
198.18.1.1       0x1         0x2         02:00:00:00:01:01     *        eth1
";
        let n = Neighbors::parse(t);
        assert_eq!(n.0.len(), 2);
        let gw = Ipv4Addr::new(198, 18, 0, 1);
        assert_eq!(
            n.mac("eth0", gw),
            Some("02:00:00:00:00:01".parse().unwrap())
        );
        assert_eq!(n.mac("eth1", gw), None);
        assert_eq!(n.mac("eth0", Ipv4Addr::new(198, 18, 0, 7)), None);
    }
}
