//! The IPv4 routing table from `/proc/net/route`

use std::net::Ipv4Addr;

/// Route flag: the route is usable (`RTF_UP`, linux/route.h)
const RTF_UP: u16 = 0x0001;
/// Route flag: the destination is reached through a gateway (`RTF_GATEWAY`)
const RTF_GATEWAY: u16 = 0x0002;
/// Route flag: the route rejects packets (`RTF_REJECT`)
const RTF_REJECT: u16 = 0x0200;

/// One usable route of the main table
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The interface it leaves by
    pub device: String,
    /// The destination network
    pub destination: Ipv4Addr,
    /// The destination's netmask
    pub mask: Ipv4Addr,
    /// The next hop, when the destination is not on-link
    pub gateway: Option<Ipv4Addr>,
    /// The route's metric (lower wins among equal prefixes)
    pub metric: u32,
}

impl Route {
    /// Whether `ip` is inside the route's destination
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::from(self.mask);
        u32::from(ip) & mask == u32::from(self.destination) & mask
    }
}

/// The routing table
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes(pub Vec<Route>);

impl Routes {
    /// Reads `/proc/net/route`; an unreadable file is an empty table
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/net/route")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Parses the text of `/proc/net/route`, keeping the usable routes and skipping bad lines
    pub fn parse(text: &str) -> Self {
        Self(text.lines().skip(1).filter_map(parse_line).collect())
    }

    /// The route to `ip`: the longest prefix, then the lowest metric; only routes leaving by
    /// `device` when it is given
    pub fn lookup(&self, ip: Ipv4Addr, device: Option<&str>) -> Option<&Route> {
        self.0
            .iter()
            .filter(|r| r.contains(ip) && device.is_none_or(|d| r.device == d))
            .min_by_key(|r| (std::cmp::Reverse(u32::from(r.mask).count_ones()), r.metric))
    }
}

/// A hexadecimal address as the kernel prints it: the network-order bytes read as a native u32
fn hex_addr(field: &str) -> Option<Ipv4Addr> {
    let v = u32::from_str_radix(field, 16).ok()?;
    Some(Ipv4Addr::from(v.to_ne_bytes()))
}

fn parse_line(line: &str) -> Option<Route> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 8 {
        return None;
    }
    let flags = u16::from_str_radix(f[3], 16).ok()?;
    if flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
        return None;
    }
    let gateway = hex_addr(f[2])?;
    Some(Route {
        device: f[0].to_owned(),
        destination: hex_addr(f[1])?,
        mask: hex_addr(f[7])?,
        gateway: (flags & RTF_GATEWAY != 0 && !gateway.is_unspecified()).then_some(gateway),
        metric: f[6].parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table as a little-endian host prints it: default via 198.18.0.1 on eth0 (metric 100),
    /// a second default on wlan0 (metric 600), on-link 198.18.0.0/24 and a /26 via a router
    #[cfg(target_endian = "little")]
    const TABLE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010012C6\t0003\t0\t0\t100\t00000000\t0\t0\t0
wlan0\t00000000\t010113C6\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t000012C6\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
eth0\t400012C6\t FE0012C6\t0003\t0\t0\t0\tC0FFFFFF\t0\t0\t0
eth1\t000013C6\t00000000\t0201\t0\t0\t0\t00FFFFFF\t0\t0\t0
broken line
";

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_and_looks_up() {
        let t = Routes::parse(TABLE);
        assert_eq!(
            t.0.len(),
            4,
            "the reject route and the bad line are skipped"
        );
        let d = t.lookup(Ipv4Addr::new(203, 0, 113, 5), None).unwrap();
        assert_eq!(d.device, "eth0");
        assert_eq!(d.gateway, Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert!(d.mask.is_unspecified(), "the default route");
        let w = t
            .lookup(Ipv4Addr::new(203, 0, 113, 5), Some("wlan0"))
            .unwrap();
        assert_eq!(w.gateway, Some(Ipv4Addr::new(198, 19, 1, 1)));
        let l = t.lookup(Ipv4Addr::new(198, 18, 0, 9), None).unwrap();
        assert_eq!((l.gateway, l.mask), (None, Ipv4Addr::new(255, 255, 255, 0)));
        let r = t.lookup(Ipv4Addr::new(198, 18, 0, 70), None).unwrap();
        assert_eq!(r.gateway, Some(Ipv4Addr::new(198, 18, 0, 254)));
        assert!(t.lookup(Ipv4Addr::new(1, 1, 1, 1), Some("eth9")).is_none());
    }
}
