//! The IPv6 routing table from `/proc/net/ipv6_route`: each device's IPv6 default router, and the
//! route to an IPv6 server

use ikago_proto::Ipv6Net;
use std::net::Ipv6Addr;

/// Route flag: the route is usable (`RTF_UP`, linux/route.h)
const RTF_UP: u32 = 0x0001;
/// Route flag: the destination is reached through a gateway (`RTF_GATEWAY`)
const RTF_GATEWAY: u32 = 0x0002;
/// Route flag: the route rejects packets (`RTF_REJECT`)
const RTF_REJECT: u32 = 0x0200;

/// One usable IPv6 route
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route6 {
    /// The interface it leaves by
    pub device: String,
    /// The destination prefix (`::/0` for a default route)
    pub destination: Ipv6Net,
    /// The router, usually a link-local address; `None` for an on-link prefix
    pub gateway: Option<Ipv6Addr>,
    /// The route's metric (lower wins)
    pub metric: u32,
}

/// The usable IPv6 routes
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes6(pub Vec<Route6>);

impl Routes6 {
    /// Reads `/proc/net/ipv6_route`; an unreadable file (no IPv6) is an empty table
    pub fn read() -> Self {
        std::fs::read_to_string("/proc/net/ipv6_route")
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    /// Parses the text of `/proc/net/ipv6_route`, keeping the usable routes and skipping reject
    /// routes and bad lines
    pub fn parse(text: &str) -> Self {
        Self(text.lines().filter_map(parse_line).collect())
    }

    /// The IPv6 default router of `device` with the lowest metric
    pub fn gateway(&self, device: &str) -> Option<Ipv6Addr> {
        self.0
            .iter()
            .filter(|r| r.device == device && r.destination.prefix_len == 0)
            .filter_map(|r| Some((r.metric, r.gateway?)))
            .min_by_key(|&(metric, _)| metric)
            .map(|(_, gateway)| gateway)
    }

    /// The route to `ip` (through `device` only, when given): the longest prefix holding it,
    /// the lowest metric among equals
    pub fn lookup(&self, ip: Ipv6Addr, device: Option<&str>) -> Option<&Route6> {
        self.0
            .iter()
            .filter(|r| r.destination.contains(ip) && device.is_none_or(|d| r.device == d))
            .min_by_key(|r| (std::cmp::Reverse(r.destination.prefix_len), r.metric))
    }
}

/// A 32-digit hexadecimal address as the kernel prints it (network order)
fn hex_addr(field: &str) -> Option<Ipv6Addr> {
    (field.len() == 32)
        .then(|| u128::from_str_radix(field, 16).ok())
        .flatten()
        .map(Ipv6Addr::from)
}

/// `dest plen src plen nexthop metric refcnt use flags device`
fn parse_line(line: &str) -> Option<Route6> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 {
        return None;
    }
    let flags = u32::from_str_radix(f[8], 16).ok()?;
    let prefix_len = u8::from_str_radix(f[1], 16).ok().filter(|&l| l <= 128)?;
    let next_hop = hex_addr(f[4])?;
    let gateway = (flags & RTF_GATEWAY != 0 && !next_hop.is_unspecified()).then_some(next_hop);
    let addr = hex_addr(f[0])?;
    (flags & RTF_UP != 0 && flags & RTF_REJECT == 0).then(|| Route6 {
        device: f[9].to_owned(),
        destination: Ipv6Net { addr, prefix_len },
        gateway,
        metric: u32::from_str_radix(f[5], 16).ok().unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table as the kernel prints it: a default via fe80::1 on eth0 (metric 1024), defaults
    /// via 2001:db8:7::1 (metric 200) and 2001:db8:7::2 (metric 100) on eth1, an on-link /64 on
    /// eth0, the loopback's reject route
    const TABLE: &str = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000700000000000000000001 000000c8 00000001 00000000 00000003     eth1
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8000700000000000000000002 00000064 00000001 00000000 00000003     eth1
20010db8002400000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo
broken line
";

    #[test]
    fn finds_each_devices_default_router() {
        let t = Routes6::parse(TABLE);
        assert_eq!(t.0.len(), 4, "the reject and bad lines are skipped");
        assert_eq!(t.gateway("eth0"), Some("fe80::1".parse().unwrap()));
        assert_eq!(
            t.gateway("eth1"),
            Some("2001:db8:7::2".parse().unwrap()),
            "the lowest metric"
        );
        assert_eq!(t.gateway("lo"), None);
        assert_eq!(t.gateway("eth9"), None);
    }

    #[test]
    fn looks_up_the_route_to_an_address() {
        let t = Routes6::parse(TABLE);
        let on_link = t
            .lookup("2001:db8:24::9".parse().unwrap(), None)
            .expect("a route");
        assert_eq!(
            (on_link.device.as_str(), on_link.gateway),
            ("eth0", None),
            "the on-link /64 before the default routes"
        );
        let far = t
            .lookup("2001:db8:99::1".parse().unwrap(), None)
            .expect("a route");
        assert_eq!(
            (far.device.as_str(), far.gateway),
            ("eth1", Some("2001:db8:7::2".parse().unwrap())),
            "the default route of the lowest metric"
        );
        let through_eth0 = t.lookup("2001:db8:99::1".parse().unwrap(), Some("eth0"));
        assert_eq!(
            through_eth0.and_then(|r| r.gateway),
            Some("fe80::1".parse().unwrap()),
            "the device's own default route"
        );
        assert_eq!(Routes6::default().lookup(Ipv6Addr::LOCALHOST, None), None);
    }
}
