//! BPF filters: per device, admit only the frames the machine wants
//!
//! Every filter admits ARP (neighbour learning, gateway resolution, proxy ARP) and then the IPv4
//! traffic of the device's roles:
//!
//! | machine, role | IPv4 part |
//! |---|---|
//! | client, upstream | `src host SERVER and dst host LOCAL and ((tcp src port SP and tcp dst port LP) or FRAG)` |
//! | client, listen | `ether dst MAC and (src net S1 or src net S2 ...)` |
//! | server, listen | `dst host ADDR and (tcp dst port P or FRAG)` |
//! | server, upstream | `dst host PUBLIC and (tcp dst portrange T or udp dst portrange U or icmp or FRAG)` |
//!
//! where `FRAG` is `ip[6:2] & 0x3fff != 0` (any IPv4 fragment: libpcap matches ports in first
//! fragments only). A device with both roles gets `arp or (ip and (UPSTREAM or LISTEN))`. An
//! engine of a sharded server (`--threads`) admits only its share: `tcp dst port P and SHARE`,
//! its slices of the port ranges and its ICMP echo ids ([`crate::shard`]).
//!
//! In `tcp` mode the tunnel is a kernel socket, not pcap: the client's upstream part and the
//! server's listen part are left out, and a device with no part left admits nothing.

use crate::capture::NOTHING;
use crate::shard;
use ikago_proto::{ClientConfig, DeviceConfig, Ipv4Net, ServerConfig, Transport};
use std::net::SocketAddrV4;
use std::ops::RangeInclusive;

/// Matches any IPv4 fragment, first or not (MF flag or a fragment offset)
const ANY_FRAGMENT: &str = "ip[6:2] & 0x3fff != 0";

/// One filter per device of a client whose FakeTCP address is `local`, in device order; the
/// upstream filter takes every server of the failover list
pub fn client(config: &ClientConfig, local: SocketAddrV4) -> Vec<String> {
    let upstream = std::iter::once(&config.server)
        .chain(&config.fallback)
        .map(|server| {
            format!(
                "(src host {} and ((tcp src port {} and tcp dst port {}) or {ANY_FRAGMENT}))",
                server.ip(),
                server.port(),
                local.port()
            )
        })
        .collect::<Vec<_>>()
        .join(" or ");
    let upstream = (config.transport == Transport::FakeTcp)
        .then(|| format!("dst host {} and ({upstream})", local.ip()));
    let sources = config
        .sources
        .iter()
        .map(|&n| format!("src net {}", network(n)))
        .collect::<Vec<_>>()
        .join(" or ");
    config
        .devices
        .iter()
        .map(|d| {
            let listen = format!("ether dst {} and ({sources})", d.mac);
            device_filter(d, upstream.as_deref(), Some(&listen))
        })
        .collect()
}

/// One filter per device of a server (of the engine its shard names), in device order
pub fn server(config: &ServerConfig) -> Vec<String> {
    let nat = &shard::nat_share(&config.nat, config.shard);
    let public = config
        .devices
        .iter()
        .find(|d| d.role.is_upstream())
        .map_or(std::net::Ipv4Addr::UNSPECIFIED, |d| d.addr);
    let upstream = format!(
        "dst host {public} and (tcp dst portrange {} or udp dst portrange {} or {} or {ANY_FRAGMENT})",
        range(&nat.tcp_ports),
        range(&nat.udp_ports),
        shard::icmp_share(config.shard, &nat.icmp_ids)
    );
    let tunnel = match shard::tunnel_share(config.shard) {
        Some(share) => format!("(tcp dst port {} and {share})", config.port),
        None => format!("tcp dst port {}", config.port),
    };
    config
        .devices
        .iter()
        .map(|d| {
            let listen = (config.transport == Transport::FakeTcp)
                .then(|| format!("dst host {} and ({tunnel} or {ANY_FRAGMENT})", d.addr));
            device_filter(d, Some(&upstream), listen.as_deref())
        })
        .collect()
}

/// `arp or (ip and PART)` with the parts of the device's roles that the machine captures
/// (`None`: a role whose traffic is not captured); nothing without any part
fn device_filter(d: &DeviceConfig, upstream: Option<&str>, listen: Option<&str>) -> String {
    let upstream = upstream.filter(|_| d.role.is_upstream());
    let listen = listen.filter(|_| d.role.listens());
    match (upstream, listen) {
        (Some(u), Some(l)) => format!("arp or (ip and (({u}) or ({l})))"),
        (Some(part), None) | (None, Some(part)) => format!("arp or (ip and {part})"),
        (None, None) => NOTHING.to_owned(),
    }
}

/// A network with its host bits cleared, as libpcap wants it (`198.18.11.0/24`)
fn network(n: Ipv4Net) -> String {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(n.prefix_len.min(32)))
        .unwrap_or(0);
    let base = std::net::Ipv4Addr::from(u32::from(n.addr) & mask);
    format!("{base}/{}", n.prefix_len)
}

/// A port range as `A-B`
fn range(r: &RangeInclusive<u16>) -> String {
    format!("{}-{}", r.start(), r.end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use ikago_proto::{DeviceRole, LinkType, Mac};
    use std::net::Ipv4Addr;

    const CLIENT_MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const OTHER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 9];

    fn device(name: &str, role: DeviceRole, addr: [u8; 4], mac: Mac) -> DeviceConfig {
        DeviceConfig {
            name: name.into(),
            role,
            link: LinkType::Ethernet,
            mac,
            addr: addr.into(),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(addr[0], addr[1], addr[2], 254)),
            gateway_mac: None,
            ipv6: None,
        }
    }

    fn client_config() -> ClientConfig {
        ClientConfig::new(
            vec![
                device("lan0", DeviceRole::Listen, [198, 18, 1, 1], CLIENT_MAC),
                device(
                    "wan0",
                    DeviceRole::Upstream,
                    [198, 18, 2, 1],
                    Mac([2, 0, 0, 0, 0, 2]),
                ),
            ],
            vec![
                "198.18.1.7/24".parse().unwrap(),
                "198.18.9.9".parse().unwrap(),
            ],
            "198.19.0.1:18081".parse().unwrap(),
        )
    }

    /// Whether `filter` admits `frame`, compiled by libpcap for Ethernet
    fn admits(filter: &str, frame: &[u8]) -> bool {
        let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).expect("a dead capture");
        dead.compile(filter, true)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .filter(frame)
    }

    fn udp(dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(OTHER_MAC, dst_mac)
            .ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut v, b"x")
            .unwrap();
        v
    }

    fn tcp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(OTHER_MAC, [2, 0, 0, 0, 0, 2])
            .ipv4(src, dst, 64)
            .tcp(sport, dport, 1, 1000)
            .write(&mut v, b"x")
            .unwrap();
        v
    }

    fn arp() -> Vec<u8> {
        let mut v = vec![0xff; 6];
        v.extend_from_slice(&OTHER_MAC);
        v.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        v.extend_from_slice(&OTHER_MAC);
        v.extend_from_slice(&[198, 18, 1, 7, 0, 0, 0, 0, 0, 0, 198, 18, 1, 1]);
        v
    }

    #[test]
    fn client_filters_text() {
        let f = client(&client_config(), "198.18.2.1:50000".parse().unwrap());
        assert_eq!(
            f[0],
            "arp or (ip and ether dst 02:00:00:00:00:01 and (src net 198.18.1.0/24 or src net 198.18.9.9/32))"
        );
        assert_eq!(
            f[1],
            "arp or (ip and dst host 198.18.2.1 and ((src host 198.19.0.1 and \
             ((tcp src port 18081 and tcp dst port 50000) or ip[6:2] & 0x3fff != 0))))"
        );
    }

    #[test]
    fn client_filters_take_every_fallback_server() {
        let mut config = client_config();
        config.fallback = vec!["198.19.0.2:18082".parse().unwrap()];
        let f = client(&config, "198.18.2.1:50000".parse().unwrap());
        assert_eq!(
            f[1],
            "arp or (ip and dst host 198.18.2.1 and ((src host 198.19.0.1 and \
             ((tcp src port 18081 and tcp dst port 50000) or ip[6:2] & 0x3fff != 0)) or \
             (src host 198.19.0.2 and ((tcp src port 18082 and tcp dst port 50000) or \
             ip[6:2] & 0x3fff != 0))))"
        );
    }

    #[test]
    fn client_filters_admit_only_what_the_core_wants() {
        let f = client(&client_config(), "198.18.2.1:50000".parse().unwrap());
        let (lan, wan) = (&f[0], &f[1]);
        let mac = CLIENT_MAC.0;
        assert!(admits(lan, &arp()));
        assert!(admits(
            lan,
            &udp(mac, [198, 18, 1, 7], [1, 1, 1, 1], 5000, 53)
        ));
        assert!(admits(
            lan,
            &udp(mac, [198, 18, 9, 9], [1, 1, 1, 1], 5000, 53)
        ));
        assert!(
            !admits(lan, &udp(mac, [198, 18, 9, 8], [1, 1, 1, 1], 5000, 53)),
            "not a source"
        );
        assert!(
            !admits(
                lan,
                &udp(OTHER_MAC, [198, 18, 1, 7], [1, 1, 1, 1], 5000, 53)
            ),
            "not to us"
        );
        assert!(admits(
            wan,
            &tcp([198, 19, 0, 1], [198, 18, 2, 1], 18081, 50000)
        ));
        assert!(
            !admits(wan, &tcp([198, 19, 0, 1], [198, 18, 2, 1], 18081, 22)),
            "other port"
        );
        assert!(
            !admits(wan, &tcp([198, 19, 0, 2], [198, 18, 2, 1], 18081, 50000)),
            "other host"
        );
        let mut frag = tcp([198, 19, 0, 1], [198, 18, 2, 1], 1, 2);
        frag[14 + 6] = 0x00;
        frag[14 + 7] = 0xb9; // offset 185 * 8, no MF: a last fragment
        assert!(admits(wan, &frag));
    }

    #[test]
    fn tcp_mode_captures_no_tunnel() {
        let mut c = client_config();
        c.transport = Transport::Tcp;
        let f = client(&c, "198.18.2.1:50000".parse().unwrap());
        assert_eq!(f[1], NOTHING, "the client's upstream device");
        assert!(
            f[0].contains("src net 198.18.1.0/24"),
            "the LAN as in FakeTCP"
        );
        assert!(!admits(&f[1], &arp()));
        assert!(!admits(
            &f[1],
            &tcp([198, 19, 0, 1], [198, 18, 2, 1], 18081, 50000)
        ));
        let m = Mac([2, 0, 0, 0, 0, 2]);
        let mut s = ServerConfig::new(
            vec![
                device("eth0", DeviceRole::Both, [198, 19, 0, 1], m),
                device("lan9", DeviceRole::Listen, [198, 18, 7, 1], m),
            ],
            18081,
        );
        s.transport = Transport::Tcp;
        let f = server(&s);
        assert_eq!(f[1], NOTHING, "a listen-only device");
        assert!(
            !admits(&f[0], &tcp([198, 18, 2, 1], [198, 19, 0, 1], 50000, 18081)),
            "the tunnel port, on a device that is upstream too"
        );
        assert!(
            admits(&f[0], &tcp([1, 1, 1, 1], [198, 19, 0, 1], 443, 49152)),
            "NAT replies as in FakeTCP"
        );
    }

    #[test]
    fn server_filters() {
        let mut c = ServerConfig::new(
            vec![
                device(
                    "eth0",
                    DeviceRole::Both,
                    [198, 19, 0, 1],
                    Mac([2, 0, 0, 0, 0, 2]),
                ),
                device(
                    "lan9",
                    DeviceRole::Listen,
                    [198, 18, 7, 1],
                    Mac([2, 0, 0, 0, 0, 3]),
                ),
            ],
            18081,
        );
        c.nat.udp_ports = 40000..=40999;
        let f = server(&c);
        assert_eq!(
            f[1],
            "arp or (ip and dst host 198.18.7.1 and (tcp dst port 18081 or ip[6:2] & 0x3fff != 0))"
        );
        let both = &f[0];
        assert!(both.starts_with("arp or (ip and ((dst host 198.19.0.1 and (tcp dst portrange 49152-65535 or udp dst portrange 40000-40999 or icmp or"));
        let m = [2, 0, 0, 0, 0, 2];
        assert!(
            admits(both, &tcp([198, 18, 2, 1], [198, 19, 0, 1], 50000, 18081)),
            "tunnel"
        );
        assert!(
            admits(both, &tcp([1, 1, 1, 1], [198, 19, 0, 1], 443, 49152)),
            "tcp NAT reply"
        );
        assert!(
            admits(both, &udp(m, [1, 1, 1, 1], [198, 19, 0, 1], 53, 40000)),
            "udp NAT reply"
        );
        assert!(
            !admits(both, &udp(m, [1, 1, 1, 1], [198, 19, 0, 1], 53, 41000)),
            "outside the pool"
        );
        assert!(
            !admits(both, &tcp([1, 1, 1, 1], [198, 19, 0, 1], 5000, 22)),
            "the host's own ssh"
        );
        assert!(
            !admits(&f[1], &tcp([1, 1, 1, 1], [198, 19, 0, 1], 5000, 18081)),
            "other address"
        );
    }
}
