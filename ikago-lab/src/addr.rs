//! The lab's addressing plan: IPv4 in 198.18.0.0/15 (RFC 2544 benchmarking range); the IPv6
//! plane of a dual-stack lab ([`crate::Lab::build_dual_stack`]) in 2001:db8::/32 (RFC 3849
//! documentation) for the Internet side and the firewall's links, and fd00::/8 (unique local)
//! for the LANs behind the clients
//!
//! Each IPv4 subnet 198.18.N.0/24 has its IPv6 twin, 2001:db8:N::/64 or fd00:N::/64 (N written
//! the same in hex, so 198.18.24.2 and 2001:db8:24::2 are the same machine's leg), and the two
//! hosts the IPv6 plane adds: [`HOST_D6`], a LAN device with only an IPv6 address, and
//! [`PEER6`], a third Internet host behind the destination.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is in 198.18.0.0/15, the only IPv4 addresses lab traffic may use
pub fn is_lab_address(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 198 && b & 0xfe == 18
}

/// Whether `ip` is in 2001:db8::/32 or fd00::/8, the only IPv6 addresses lab traffic may use
pub fn is_lab_address6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    (s[0] == 0x2001 && s[1] == 0x0db8) || s[0] >> 8 == 0xfd
}

/// Whether `ip` is a lab address of either family
pub fn is_lab_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_lab_address(v4),
        IpAddr::V6(v6) => is_lab_address6(v6),
    }
}

/// Prefix length of every lab subnet
pub const PREFIX: u8 = 24;

/// Client's LAN address (lan0), host A's gateway
pub const CLIENT_LAN: Ipv4Addr = Ipv4Addr::new(198, 18, 21, 1);
/// Host A: a LAN device that uses the client as its gateway
pub const HOST_A: Ipv4Addr = Ipv4Addr::new(198, 18, 21, 2);
/// Host B: a LAN device whose gateway nobody owns
pub const HOST_B: Ipv4Addr = Ipv4Addr::new(198, 18, 21, 3);
/// Host B's gateway, which the client answers for by proxy ARP (`--publish`)
pub const PUBLISHED_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 18, 21, 254);

/// Firewall's inside (client side) address, the clients' gateway
pub const FIREWALL_INSIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 22, 1);
/// Client's WAN address (wan0)
pub const CLIENT_WAN: Ipv4Addr = Ipv4Addr::new(198, 18, 22, 2);
/// Second client machine's WAN address (wan0)
pub const CLIENT2_WAN: Ipv4Addr = Ipv4Addr::new(198, 18, 22, 3);

/// Firewall's outside (server side) address, what the server sees under masquerade
pub const FIREWALL_OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 23, 1);
/// Server's tunnel address (wan0)
pub const SERVER_WAN: Ipv4Addr = Ipv4Addr::new(198, 18, 23, 2);

/// Server's NAT address (dst0), the destination's gateway
pub const SERVER_DST: Ipv4Addr = Ipv4Addr::new(198, 18, 24, 1);
/// Destination host: DNS, UDP and TCP echo, iperf3
pub const DESTINATION: Ipv4Addr = Ipv4Addr::new(198, 18, 24, 2);

/// Second client's LAN address (lan0), host C's gateway
pub const CLIENT2_LAN: Ipv4Addr = Ipv4Addr::new(198, 18, 25, 1);
/// Host C: the LAN device behind the second client
pub const HOST_C: Ipv4Addr = Ipv4Addr::new(198, 18, 25, 2);

/// Firewall's second outside address (out1), facing the second server
pub const FIREWALL_OUTSIDE2: Ipv4Addr = Ipv4Addr::new(198, 18, 26, 1);
/// Second server's tunnel address (wan0): the failover target
pub const SERVER2_WAN: Ipv4Addr = Ipv4Addr::new(198, 18, 26, 2);
/// Second server's NAT address (dst0)
pub const SERVER2_DST: Ipv4Addr = Ipv4Addr::new(198, 18, 27, 1);
/// The destination's leg toward the second server (eth1), that server's gateway; the services
/// listen on [`DESTINATION`], which this leg reaches too
pub const DESTINATION2: Ipv4Addr = Ipv4Addr::new(198, 18, 27, 2);

/// Prefix length of every IPv6 lab subnet
pub const PREFIX6: u8 = 64;

/// Client's LAN IPv6 address (lan0), host A's and host D's IPv6 gateway
pub const CLIENT_LAN6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x21, 0, 0, 0, 0, 0, 1);
/// Host A's IPv6 address (dual-stack with [`HOST_A`])
pub const HOST_A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x21, 0, 0, 0, 0, 0, 2);
/// Host B's IPv6 address (dual-stack with [`HOST_B`])
pub const HOST_B6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x21, 0, 0, 0, 0, 0, 3);
/// Host D: a LAN device with an IPv6 address only, whose gateway is the client
pub const HOST_D6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x21, 0, 0, 0, 0, 0, 4);
/// Host B's IPv6 gateway, which the client answers for by proxy NDP (`--publish`)
pub const PUBLISHED_GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x21, 0, 0, 0, 0, 0, 0xfe);
/// The main LAN's IPv6 prefix
pub const LAN6: &str = "fd00:21::/64";

/// Firewall's inside IPv6 address, the clients' IPv6 gateway
pub const FIREWALL_INSIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x22, 0, 0, 0, 0, 1);
/// Client's WAN IPv6 address (wan0)
pub const CLIENT_WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x22, 0, 0, 0, 0, 2);
/// Second client machine's WAN IPv6 address (wan0)
pub const CLIENT2_WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x22, 0, 0, 0, 0, 3);

/// Firewall's outside IPv6 address (out0)
pub const FIREWALL_OUTSIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x23, 0, 0, 0, 0, 1);
/// Server's IPv6 address on the firewall's side (wan0)
pub const SERVER_WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x23, 0, 0, 0, 0, 2);

/// Server's NAT66 address (dst0)
pub const SERVER_DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x24, 0, 0, 0, 0, 1);
/// The destination's IPv6 address: DNS, UDP and TCP echo
pub const DESTINATION6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x24, 0, 0, 0, 0, 2);

/// Second client's LAN IPv6 address (lan0), host C's IPv6 gateway
pub const CLIENT2_LAN6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x25, 0, 0, 0, 0, 0, 1);
/// Host C's IPv6 address
pub const HOST_C6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x25, 0, 0, 0, 0, 0, 2);
/// The second LAN's IPv6 prefix
pub const LAN2_6: &str = "fd00:25::/64";

/// Firewall's second outside IPv6 address (out1)
pub const FIREWALL_OUTSIDE2_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x26, 0, 0, 0, 0, 1);
/// Second server's IPv6 address on the firewall's side (wan0)
pub const SERVER2_WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x26, 0, 0, 0, 0, 2);
/// Second server's NAT66 address (dst0)
pub const SERVER2_DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x27, 0, 0, 0, 0, 1);
/// The destination's IPv6 leg toward the second server (eth1)
pub const DESTINATION2_6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x27, 0, 0, 0, 0, 2);

/// The destination's leg toward the third Internet host (eth2), that host's gateway
pub const DESTINATION_PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 1);
/// The third Internet host, behind the destination: it reaches the server's mapped ports
pub const PEER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x28, 0, 0, 0, 0, 2);
/// MTU of the link between the destination and [`PEER6`], the IPv6 minimum: larger packets
/// toward the peer draw a Packet Too Big from the destination
pub const PEER_LINK_MTU: u16 = 1280;

/// The tunnel port the server listens on
pub const TUNNEL_PORT: u16 = 18081;
/// DNS on the destination (dnsmasq): every name under [`DNS_DOMAIN`] is [`DESTINATION`]
pub const DNS_PORT: u16 = 53;
/// The domain the destination's DNS server answers
pub const DNS_DOMAIN: &str = "lab.test";
/// UDP and TCP echo on the destination (socat), RFC 862
pub const ECHO_PORT: u16 = 7;
/// iperf3 server on the destination
pub const IPERF_PORT: u16 = 5201;
/// Port of the in-process bulk TCP and UDP stream receivers on the destination
pub const BULK_PORT: u16 = 9000;
/// Port of the benchmark's in-process UDP echo reflector on the destination
pub const RTT_PORT: u16 = 9007;
/// Port of the runners' monitor (`--monitor`) in the lab, on each runner's loopback
pub const MONITOR_PORT: u16 = 18080;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_range_is_198_18_0_0_15() {
        for a in [[198, 18, 0, 0], [198, 18, 22, 3], [198, 19, 255, 255]] {
            assert!(is_lab_address(a.into()), "{a:?}");
        }
        for a in [
            [198, 17, 255, 255],
            [198, 20, 0, 0],
            [10, 18, 0, 1],
            [199, 18, 0, 1],
        ] {
            assert!(!is_lab_address(a.into()), "{a:?}");
        }
    }

    #[test]
    fn every_ipv6_plan_address_is_documentation_or_unique_local() {
        for a in [
            CLIENT_LAN6,
            HOST_A6,
            HOST_B6,
            HOST_D6,
            PUBLISHED_GATEWAY6,
            FIREWALL_INSIDE6,
            CLIENT_WAN6,
            CLIENT2_WAN6,
            FIREWALL_OUTSIDE6,
            SERVER_WAN6,
            SERVER_DST6,
            DESTINATION6,
            CLIENT2_LAN6,
            HOST_C6,
            FIREWALL_OUTSIDE2_6,
            SERVER2_WAN6,
            SERVER2_DST6,
            DESTINATION2_6,
            DESTINATION_PEER6,
            PEER6,
        ] {
            assert!(is_lab_address6(a), "{a}");
        }
        for net in [LAN6, LAN2_6] {
            let base: Ipv6Addr = net.split('/').next().unwrap().parse().unwrap();
            assert!(is_lab_address6(base), "{net}");
        }
        for a in [
            "2001:db9::1",
            "2001:db7::1",
            "fc00::1",
            "fe80::1",
            "::1",
            "2002::1",
        ] {
            assert!(!is_lab_address6(a.parse().unwrap()), "{a}");
        }
        assert!(is_lab_ip(IpAddr::V6(PEER6)) && is_lab_ip(IpAddr::V4(DESTINATION)));
    }
}
