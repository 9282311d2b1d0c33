//! The lab's addressing plan: everything in 198.18.0.0/15 (RFC 2544 benchmarking range)

use std::net::Ipv4Addr;

/// Whether `ip` is in 198.18.0.0/15, the only addresses lab traffic may use
pub fn is_lab_address(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    a == 198 && b & 0xfe == 18
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
}
