//! BPF filters: per device, admit only the frames the machine wants
//!
//! Every filter admits ARP (neighbour learning, gateway resolution, proxy ARP), then the IPv4
//! traffic of the device's roles and their IPv6 traffic, as
//! `arp or (ip and IPV4 PART) or (ip6 and IPV6 PART)` (a family with no part is left out):
//!
//! | machine, role | IPv4 part |
//! |---|---|
//! | client, upstream | `dst host LOCAL and ((src host S and ((tcp src port SP and tcp dst port LP) or FRAG)) or ...)` |
//! | client, listen | `ether dst MAC and (src net S1 or src net S2 ...)` |
//! | server, listen | `dst host ADDR and (tcp dst port P or FRAG)` |
//! | server, upstream | `dst host PUBLIC and (tcp dst portrange T or udp dst portrange U or icmp or FRAG)` |
//!
//! where `FRAG` is `ip[6:2] & 0x3fff != 0` (any IPv4 fragment: libpcap matches ports in first
//! fragments only) and the client's servers `S` are those of the failover list of the family.
//! The tunnel runs over IPv4 or IPv6 (a server given as `[ADDR]:PORT`; a server accepts on
//! both), and IPv6 carries the LAN's IPv6 inside the tunnel too:
//!
//! | machine, role | IPv6 part |
//! |---|---|
//! | client, upstream | `(dst host LOCAL6 and ((src host S6 and ((tcp src port SP and tcp dst port LP) or FRAG6)) or ... or PTB)) or (ether dst MAC and NA)` |
//! | client, listen | `(ether dst MAC and (src net S1 or ...) and not NDP) or NS(P1) or ... or (ether dst MAC and NA)` |
//! | server, listen | `(dst host ADDR6 and (tcp dst port P or FRAG6 or PTB)) or (ether dst MAC and NA)` |
//! | server, upstream | `(dst host NAT66 and (tcp dst portrange T or udp dst portrange U or icmp6 or FRAG6)) or (ether dst MAC and NA)` |
//!
//! where `NS(A)` is a neighbour solicitation whose target is `A` (to any destination: they go to
//! a solicited-node multicast group), `NA` a neighbour advertisement, `NDP` ICMPv6 types
//! 133-137 (neighbour discovery belongs to the link, never to the tunnel), `FRAG6`
//! `ip6[6] = 44` (a Fragment header first) and `PTB` an ICMPv6 Packet Too Big (type 2), which
//! tells the tunnel's sender to send smaller frames; the advertisements answer the machine's
//! solicitations for its IPv6 next hops. `LOCAL6` is the client's upstream IPv6
//! address, `ADDR6` a listen device's. The client's listen part needs IPv6 sources or published
//! IPv6 addresses, the server's upstream part an IPv6 address on its upstream device (NAT66);
//! solicitations for the server's own address are the kernel's to answer, and left out. A
//! device with both roles gets `arp or (ip and (UPSTREAM or LISTEN))`. An engine of a sharded
//! server (`--threads`) admits only its share: `tcp dst port P and SHARE` (over IPv6 the share
//! of the source's low 32 bits), its slices of the port ranges and its ICMP echo ids
//! ([`crate::shard`]); fragments and Packet Too Big reach every engine.
//!
//! In `tcp` mode the tunnel is a kernel socket, not pcap: the client's upstream part and the
//! server's listen part are left out, and a device with no part left admits nothing.

use crate::capture::NOTHING;
use crate::shard;
use ikago_proto::{ClientConfig, DeviceConfig, Ipv4Net, Ipv6Net, Mac, ServerConfig, Transport};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

/// Matches any IPv4 fragment, first or not (MF flag or a fragment offset)
const ANY_FRAGMENT: &str = "ip[6:2] & 0x3fff != 0";
/// Matches an IPv6 packet whose first header after the fixed one is a Fragment header
const ANY_FRAGMENT6: &str = "ip6[6] = 44";
/// Matches an ICMPv6 Packet Too Big
const PACKET_TOO_BIG: &str = "(icmp6 and icmp6[0] = 2)";
/// Matches neighbour discovery: ICMPv6 router solicitation to redirect (types 133-137)
const NDP: &str = "(icmp6 and icmp6[0] >= 133 and icmp6[0] <= 137)";

/// What a role of a device admits of each family (`None`: nothing of it)
#[derive(Debug, Default)]
struct Part {
    /// Of IPv4
    ip: Option<String>,
    /// Of IPv6
    ip6: Option<String>,
}

/// One filter per device of a client whose FakeTCP address is `local`, in device order; the
/// upstream filter takes every server of the failover list, each on its family's address of
/// the upstream device
pub fn client(config: &ClientConfig, local: SocketAddr) -> Vec<String> {
    let servers: Vec<SocketAddr> = std::iter::once(&config.server)
        .chain(&config.fallback)
        .copied()
        .collect();
    let (local4, local6) = (
        local_of_family(config, local, false),
        local_of_family(config, local, true),
    );
    let fake = config.transport == Transport::FakeTcp;
    let upstream = Part {
        ip: local4
            .filter(|_| fake)
            .and_then(|l| from_servers(&servers, l, local.port())),
        ip6: local6.filter(|_| fake).and_then(|l| {
            let up = config.devices.iter().find(|d| d.role.is_upstream())?;
            let from = from_servers(&servers, l, local.port())?;
            Some(format!("({from}) or {}", advertisement_to(up.mac)))
        }),
    };
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
            let listen = Part {
                ip: (!sources.is_empty()).then(|| format!("ether dst {} and ({sources})", d.mac)),
                ip6: client_listen6(config, d.mac),
            };
            device_filter(d, &upstream, &listen)
        })
        .collect()
}

/// The client's tunnel address of one family (IPv6 when `ipv6`): `local`'s when it is of that
/// family, else the upstream device's address of it (a failover list may mix the families)
pub(crate) fn local_of_family(
    config: &ClientConfig,
    local: SocketAddr,
    ipv6: bool,
) -> Option<IpAddr> {
    if local.is_ipv6() == ipv6 {
        return Some(local.ip());
    }
    let up = config.devices.iter().find(|d| d.role.is_upstream())?;
    up.ip_of(ipv6)
}

/// The part admitting the tunnel segments (and fragments) of every server of `local`'s family
/// to `local` at `port`, and over IPv6 the Packet Too Big messages to it; `None` without a
/// server of that family
fn from_servers(servers: &[SocketAddr], local: IpAddr, port: u16) -> Option<String> {
    let frag = match local {
        IpAddr::V4(_) => ANY_FRAGMENT,
        IpAddr::V6(_) => ANY_FRAGMENT6,
    };
    let mut parts: Vec<String> = servers
        .iter()
        .filter(|s| s.is_ipv4() == local.is_ipv4())
        .map(|s| {
            format!(
                "(src host {} and ((tcp src port {} and tcp dst port {port}) or {frag}))",
                s.ip(),
                s.port()
            )
        })
        .collect();
    if parts.is_empty() {
        return None;
    }
    if local.is_ipv6() {
        parts.push(PACKET_TOO_BIG.to_owned());
    }
    Some(format!("dst host {local} and ({})", parts.join(" or ")))
}

/// The IPv6 part of a client's listen device of MAC `mac`: its IPv6 sources' packets to it,
/// neighbour solicitations for its published IPv6 addresses, and advertisements to it
fn client_listen6(config: &ClientConfig, mac: Mac) -> Option<String> {
    if config.sources6.is_empty() && config.publish6.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if !config.sources6.is_empty() {
        let sources = config
            .sources6
            .iter()
            .map(|&n| format!("src net {}", network6(n)))
            .collect::<Vec<_>>()
            .join(" or ");
        parts.push(format!("(ether dst {mac} and ({sources}) and not {NDP})"));
    }
    parts.extend(config.publish6.iter().map(|&a| solicitation_for(a)));
    parts.push(advertisement_to(mac));
    Some(parts.join(" or "))
}

/// A neighbour solicitation (ICMPv6 type 135) whose target address (bytes 8-23) is `target`
fn solicitation_for(target: Ipv6Addr) -> String {
    let o = target.octets();
    let words = (0..4)
        .map(|i| {
            let w = u32::from_be_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]);
            format!("icmp6[{}:4] = 0x{w:08x}", 8 + 4 * i)
        })
        .collect::<Vec<_>>()
        .join(" and ");
    format!("(icmp6 and icmp6[0] = 135 and {words})")
}

/// A neighbour advertisement (ICMPv6 type 136) to `mac`: the answer to a solicitation sent
fn advertisement_to(mac: Mac) -> String {
    format!("(ether dst {mac} and icmp6 and icmp6[0] = 136)")
}

/// One filter per device of a server (of the engine its shard names), in device order
pub fn server(config: &ServerConfig) -> Vec<String> {
    let nat = &shard::nat_share(&config.nat, config.shard);
    // without an upstream IPv4 address the server NATs no IPv4: nothing of it to capture
    let public = config
        .devices
        .iter()
        .find(|d| d.role.is_upstream())
        .and_then(|d| d.addr);
    let upstream = public.map(|public| {
        format!(
            "dst host {public} and (tcp dst portrange {} or udp dst portrange {} or {} or \
             {ANY_FRAGMENT})",
            range(&nat.tcp_ports),
            range(&nat.udp_ports),
            shard::icmp_share(config.shard, &nat.icmp_ids)
        )
    });
    let tunnel = match shard::tunnel_share(config.shard) {
        Some(share) => format!("(tcp dst port {} and {share})", config.port),
        None => format!("tcp dst port {}", config.port),
    };
    let tunnel6 = match shard::tunnel_share6(config.shard) {
        Some(share) => format!("(tcp dst port {} and {share})", config.port),
        None => format!("tcp dst port {}", config.port),
    };
    let fake = config.transport == Transport::FakeTcp;
    config
        .devices
        .iter()
        .map(|d| {
            let upstream = Part {
                ip: upstream.clone(),
                ip6: d.ipv6.map(|link| {
                    format!(
                        "(dst host {} and (tcp dst portrange {} or udp dst portrange {} or {} or \
                         {ANY_FRAGMENT6})) or {}",
                        link.addr,
                        range(&nat.tcp_ports),
                        range(&nat.udp_ports),
                        shard::icmp6_share(config.shard, &nat.icmp_ids),
                        advertisement_to(d.mac)
                    )
                }),
            };
            let listen = Part {
                ip: d
                    .addr
                    .filter(|_| fake)
                    .map(|a| format!("dst host {a} and ({tunnel} or {ANY_FRAGMENT})")),
                ip6: d.ipv6.filter(|_| fake).map(|link| {
                    format!(
                        "(dst host {} and ({tunnel6} or {ANY_FRAGMENT6} or {PACKET_TOO_BIG})) or {}",
                        link.addr,
                        advertisement_to(d.mac)
                    )
                }),
            };
            device_filter(d, &upstream, &listen)
        })
        .collect()
}

/// `arp or (ip and PART) or (ip6 and PART6)` with the parts of the device's roles that the
/// machine captures; nothing without any part
fn device_filter(d: &DeviceConfig, upstream: &Part, listen: &Part) -> String {
    let (up, listens) = (d.role.is_upstream(), d.role.listens());
    // the parts of one family, each in parentheses when it has alternatives of its own
    let family = |u: Option<&String>, l: Option<&String>, wrap: bool| match (
        u.filter(|_| up),
        l.filter(|_| listens),
    ) {
        (Some(u), Some(l)) => Some(format!("(({u}) or ({l}))")),
        (Some(p), None) | (None, Some(p)) if wrap => Some(format!("({p})")),
        (Some(p), None) | (None, Some(p)) => Some(p.clone()),
        (None, None) => None,
    };
    let ip = family(upstream.ip.as_ref(), listen.ip.as_ref(), false);
    let ip6 = family(upstream.ip6.as_ref(), listen.ip6.as_ref(), true);
    let families: Vec<String> = [
        ip.map(|f| format!("(ip and {f})")),
        ip6.map(|f| format!("(ip6 and {f})")),
    ]
    .into_iter()
    .flatten()
    .collect();
    match families.is_empty() {
        true => NOTHING.to_owned(),
        false => format!("arp or {}", families.join(" or ")),
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

/// An IPv6 network with its host bits cleared, as libpcap wants it (`2001:db8:1::/64`)
fn network6(n: Ipv6Net) -> String {
    let len = u32::from(n.prefix_len.min(128));
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    format!("{}/{len}", Ipv6Addr::from(u128::from(n.addr) & mask))
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
            addr: Some(addr.into()),
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

    const LAN_SOURCE6: [u8; 16] = [0xfd, 0, 0, 0x21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn v6(text: &str) -> [u8; 16] {
        text.parse::<Ipv6Addr>().unwrap().octets()
    }

    /// An IPv6 frame to `dst_mac` carrying `icmp` (type, code, bytes 5-8) and `body`, or UDP
    /// from `sport` to `dport` when `icmp` is `None`
    fn frame6(
        dst_mac: [u8; 6],
        src: [u8; 16],
        dst: [u8; 16],
        icmp: Option<(u8, u8, [u8; 4])>,
        ports: (u16, u16),
        body: &[u8],
    ) -> Vec<u8> {
        let mut v = Vec::new();
        let b = PacketBuilder::ethernet2(OTHER_MAC, dst_mac).ipv6(src, dst, 255);
        match icmp {
            Some((type_u8, code_u8, bytes5to8)) => b
                .icmpv6(etherparse::Icmpv6Type::Unknown {
                    type_u8,
                    code_u8,
                    bytes5to8,
                })
                .write(&mut v, body)
                .unwrap(),
            None => b.udp(ports.0, ports.1).write(&mut v, body).unwrap(),
        }
        v
    }

    fn tcp6(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2(OTHER_MAC, [2, 0, 0, 0, 0, 2])
            .ipv6(src, dst, 64)
            .tcp(sport, dport, 1, 1000)
            .write(&mut v, b"x")
            .unwrap();
        v
    }

    /// A neighbour solicitation for `target`, to its solicited-node group's MAC
    fn solicitation(src: [u8; 16], target: [u8; 16]) -> Vec<u8> {
        let group_mac = [0x33, 0x33, 0xff, target[13], target[14], target[15]];
        let mut group = v6("ff02::1:ff00:0");
        group[13..].copy_from_slice(&target[13..]);
        let mut body = target.to_vec();
        body.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 9]);
        frame6(group_mac, src, group, Some((135, 0, [0; 4])), (0, 0), &body)
    }

    #[test]
    fn client_filters_admit_ipv6_sources_and_solicitations_for_published_addresses() {
        let mut c = client_config();
        c.sources6 = vec![
            "fd00:21::/64".parse().unwrap(),
            "2001:db8:9::9".parse().unwrap(),
        ];
        c.publish6 = vec!["fd00:21::fe".parse().unwrap()];
        let f = client(&c, "198.18.2.1:50000".parse().unwrap());
        let lan = &f[0];
        assert!(lan.starts_with(
            "arp or (ip and ether dst 02:00:00:00:00:01 and (src net 198.18.1.0/24 or \
             src net 198.18.9.9/32)) or (ip6 and ((ether dst 02:00:00:00:00:01 and \
             (src net fd00:21::/64 or src net 2001:db8:9::9/128) and not (icmp6 and"
        ));
        let wan = &f[1];
        assert!(!wan.contains("ip6"), "the tunnel is IPv4: {wan}");
        let mac = CLIENT_MAC.0;
        let out = v6("2001:db8:24::2");
        let udp6 = |mac, src| frame6(mac, src, out, None, (5000, 53), b"x");
        assert!(admits(lan, &udp6(mac, LAN_SOURCE6)));
        assert!(admits(lan, &udp6(mac, v6("2001:db8:9::9"))));
        assert!(
            !admits(lan, &udp6(mac, v6("2001:db8:9::8"))),
            "not a source"
        );
        assert!(!admits(lan, &udp6(OTHER_MAC, LAN_SOURCE6)), "not to us");
        let echo = frame6(
            mac,
            LAN_SOURCE6,
            out,
            Some((128, 0, [0, 7, 0, 1])),
            (0, 0),
            b"ping",
        );
        assert!(admits(lan, &echo), "ICMPv6 echo");
        assert!(
            admits(lan, &solicitation(LAN_SOURCE6, v6("fd00:21::fe"))),
            "published"
        );
        assert!(
            !admits(lan, &solicitation(LAN_SOURCE6, v6("fd00:21::1"))),
            "the host's own address: the kernel answers"
        );
        let mut unicast_ns = solicitation(LAN_SOURCE6, v6("fd00:21::1"));
        unicast_ns[..6].copy_from_slice(&mac);
        assert!(
            !admits(lan, &unicast_ns),
            "neighbour discovery is never tunnelled"
        );
        let advert = frame6(
            mac,
            LAN_SOURCE6,
            v6("fd00:21::1"),
            Some((136, 0, [0x60, 0, 0, 0])),
            (0, 0),
            &[0; 16],
        );
        assert!(admits(lan, &advert));
        assert!(
            admits(lan, &udp(mac, [198, 18, 1, 7], [1, 1, 1, 1], 5000, 53)),
            "IPv4 too"
        );
        assert!(admits(lan, &arp()));
        // IPv6 sources only: the IPv4 part is left out
        c.sources.clear();
        let f = client(&c, "198.18.2.1:50000".parse().unwrap());
        assert!(f[0].starts_with("arp or (ip6 and ("), "{}", f[0]);
        assert!(!admits(
            &f[0],
            &udp(mac, [198, 18, 1, 7], [1, 1, 1, 1], 5000, 53)
        ));
        assert!(admits(&f[0], &udp6(mac, LAN_SOURCE6)));
    }

    #[test]
    fn server_filters_admit_nat66_replies_errors_and_advertisements() {
        let mut up = device(
            "eth0",
            DeviceRole::Both,
            [198, 19, 0, 1],
            Mac([2, 0, 0, 0, 0, 2]),
        );
        up.ipv6 = Some(ikago_proto::Ipv6Link {
            addr: "2001:db8:24::1".parse().unwrap(),
            prefix_len: 64,
            gateway: Some("fe80::1".parse().unwrap()),
            gateway_mac: None,
        });
        let mut c = ServerConfig::new(vec![up], 18081);
        c.nat.udp_ports = 40000..=40999;
        let f = &server(&c)[0];
        let (me, mac) = (v6("2001:db8:24::1"), [2, 0, 0, 0, 0, 2]);
        let far = v6("2001:db8:28::2");
        assert!(
            admits(f, &frame6(mac, far, me, None, (53, 40000), b"x")),
            "udp NAT reply"
        );
        assert!(
            !admits(f, &frame6(mac, far, me, None, (53, 41000), b"x")),
            "outside the pool"
        );
        assert!(admits(f, &tcp6(far, me, 443, 49152)), "tcp NAT reply");
        assert!(!admits(f, &tcp6(far, me, 5000, 22)), "the host's own ssh");
        assert!(
            !admits(f, &tcp6(far, v6("2001:db8:24::9"), 443, 49152)),
            "another address"
        );
        let reply = frame6(mac, far, me, Some((129, 0, [0, 7, 0, 1])), (0, 0), b"x");
        assert!(admits(f, &reply), "echo reply");
        let too_big = frame6(mac, far, me, Some((2, 0, [0, 0, 5, 0])), (0, 0), &[0; 48]);
        assert!(admits(f, &too_big), "Packet Too Big");
        let mut fragment = frame6(mac, far, me, None, (53, 1), b"x");
        fragment[14 + 6] = 44;
        assert!(admits(f, &fragment), "a fragment");
        assert!(
            !admits(f, &solicitation(v6("fe80::1"), me)),
            "a solicitation for us: the kernel answers"
        );
        let advert = frame6(
            mac,
            v6("fe80::1"),
            v6("fe80::2"),
            Some((136, 0, [0x60, 0, 0, 0])),
            (0, 0),
            &[0; 16],
        );
        assert!(admits(f, &advert), "the gateway's advertisement");
        assert!(
            admits(f, &tcp([198, 18, 2, 1], [198, 19, 0, 1], 50000, 18081)),
            "tunnel"
        );
        // without an IPv6 address the filter is the IPv4 one
        c.devices[0].ipv6 = None;
        assert!(!server(&c)[0].contains("ip6"));
    }

    #[test]
    fn sharded_servers_split_icmpv6_echo_replies_by_id() {
        let mut up = device(
            "eth0",
            DeviceRole::Upstream,
            [198, 19, 0, 1],
            Mac([2, 0, 0, 0, 0, 2]),
        );
        up.ipv6 = Some(ikago_proto::Ipv6Link {
            addr: "2001:db8:24::1".parse().unwrap(),
            prefix_len: 64,
            gateway: None,
            gateway_mac: None,
        });
        let (me, far, mac) = (
            v6("2001:db8:24::1"),
            v6("2001:db8:28::2"),
            [2, 0, 0, 0, 0, 2],
        );
        let engines: Vec<String> = (0..2)
            .map(|k| {
                let mut c = ServerConfig::new(vec![up.clone()], 18081);
                c.shard = ikago_proto::Shard::new(k, 2).unwrap();
                server(&c).remove(0)
            })
            .collect();
        let nat = ikago_proto::NatConfig::default();
        for k in 0..2u16 {
            let mine = shard::nat_share(&nat, ikago_proto::Shard::new(k, 2).unwrap());
            let reply = |id: u16| {
                let [a, b] = id.to_be_bytes();
                frame6(mac, far, me, Some((129, 0, [a, b, 0, 1])), (0, 0), b"x")
            };
            for id in [*mine.icmp_ids.start(), *mine.icmp_ids.end()] {
                let takers: Vec<usize> = (0..2)
                    .filter(|&e| admits(&engines[e], &reply(id)))
                    .collect();
                assert_eq!(takers, [usize::from(k)], "echo reply {id}");
            }
        }
        let error = frame6(mac, far, me, Some((1, 4, [0; 4])), (0, 0), &[0; 48]);
        assert!(
            engines.iter().all(|e| admits(e, &error)),
            "errors reach every engine"
        );
    }

    /// A Packet Too Big from `from` to `to`, quoting the start of a tunnel segment
    fn too_big(from: [u8; 16], to: [u8; 16]) -> Vec<u8> {
        frame6(
            [2, 0, 0, 0, 0, 2],
            from,
            to,
            Some((2, 0, [0, 0, 5, 0])),
            (0, 0),
            &[0; 48],
        )
    }

    /// A neighbour advertisement from a router to `to`, at our device's MAC
    fn advertisement(to: [u8; 16]) -> Vec<u8> {
        let target = v6("fe80::1");
        frame6(
            [2, 0, 0, 0, 0, 2],
            target,
            to,
            Some((136, 0, [0x60, 0, 0, 0])),
            (0, 0),
            &target,
        )
    }

    /// `frame` made a fragment: its next header the Fragment header
    fn fragment(mut frame: Vec<u8>) -> Vec<u8> {
        frame[14 + 6] = 44;
        frame
    }

    #[test]
    fn client_upstream_admits_the_ipv6_servers_segments_fragments_and_too_big() {
        let servers: Vec<SocketAddr> = ["[2001:db8:23::2]:18081", "198.19.0.2:18082"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let me = v6("2001:db8:22::2");
        let f = from_servers(&servers, IpAddr::from(me), 50000).expect("an IPv6 server");
        assert_eq!(
            f,
            "dst host 2001:db8:22::2 and ((src host 2001:db8:23::2 and ((tcp src port 18081 and \
             tcp dst port 50000) or ip6[6] = 44)) or (icmp6 and icmp6[0] = 2))"
        );
        let f = format!("arp or (ip6 and {f})");
        let server = v6("2001:db8:23::2");
        assert!(admits(&f, &tcp6(server, me, 18081, 50000)), "a segment");
        assert!(!admits(&f, &tcp6(server, me, 18081, 22)), "another port");
        assert!(
            !admits(&f, &tcp6(server, me, 18082, 50000)),
            "another source port"
        );
        let other = v6("2001:db8:23::9");
        assert!(!admits(&f, &tcp6(other, me, 18081, 50000)), "another host");
        assert!(!admits(&f, &tcp6(server, other, 18081, 50000)), "not to us");
        assert!(admits(&f, &fragment(tcp6(server, me, 1, 2))), "a fragment");
        assert!(
            !admits(&f, &fragment(tcp6(other, me, 1, 2))),
            "another host's fragment"
        );
        assert!(
            admits(&f, &too_big(v6("2001:db8:22::1"), me)),
            "Packet Too Big"
        );
        assert!(!admits(&f, &too_big(v6("2001:db8:22::1"), other)));
        let v4 = from_servers(&servers, IpAddr::from([198, 18, 2, 1]), 50000).expect("an IPv4 one");
        assert!(
            !v4.contains("2001:db8") && v4.contains("198.19.0.2"),
            "{v4}"
        );
        assert_eq!(
            from_servers(&servers[..1], IpAddr::from([198, 18, 2, 1]), 50000),
            None,
            "no IPv4 server"
        );
    }

    #[test]
    fn server_listen_devices_admit_the_ipv6_tunnel() {
        let mut wan = device(
            "wan0",
            DeviceRole::Listen,
            [198, 18, 23, 2],
            Mac([2, 0, 0, 0, 0, 2]),
        );
        wan.ipv6 = Some(ikago_proto::Ipv6Link {
            addr: "2001:db8:23::2".parse().unwrap(),
            prefix_len: 64,
            gateway: None,
            gateway_mac: None,
        });
        let mut c = ServerConfig::new(vec![wan], 18081);
        let f = &server(&c)[0];
        assert_eq!(
            f,
            "arp or (ip and dst host 198.18.23.2 and (tcp dst port 18081 or ip[6:2] & 0x3fff != 0)) \
             or (ip6 and ((dst host 2001:db8:23::2 and (tcp dst port 18081 or ip6[6] = 44 or \
             (icmp6 and icmp6[0] = 2))) or (ether dst 02:00:00:00:00:02 and icmp6 and \
             icmp6[0] = 136)))"
        );
        let (me, client) = (v6("2001:db8:23::2"), v6("2001:db8:22::2"));
        assert!(admits(f, &tcp6(client, me, 50000, 18081)), "a segment");
        assert!(!admits(f, &tcp6(client, me, 50000, 22)), "another port");
        assert!(
            !admits(f, &tcp6(client, v6("2001:db8:23::9"), 50000, 18081)),
            "another address"
        );
        assert!(admits(f, &fragment(tcp6(client, me, 1, 2))), "a fragment");
        assert!(
            admits(f, &too_big(v6("2001:db8:23::1"), me)),
            "Packet Too Big"
        );
        assert!(
            admits(f, &advertisement(me)),
            "the next hop's advertisement"
        );
        let udp6 = frame6([2, 0, 0, 0, 0, 2], client, me, None, (5000, 18081), b"x");
        assert!(!admits(f, &udp6), "UDP to the port");
        assert!(
            admits(f, &tcp([198, 18, 22, 2], [198, 18, 23, 2], 50000, 18081)),
            "IPv4 as before"
        );
        // a listen device with IPv6 only: nothing of IPv4, the IPv6 tunnel as before
        c.devices[0].addr = None;
        let f = &server(&c)[0];
        assert!(f.starts_with("arp or (ip6 and "), "{f}");
        assert!(!f.contains("(ip and"), "{f}");
        assert!(admits(f, &tcp6(client, me, 50000, 18081)), "a segment");
        assert!(
            !admits(f, &tcp([198, 18, 22, 2], [198, 18, 23, 2], 50000, 18081)),
            "no IPv4"
        );
        c.transport = Transport::Tcp;
        assert_eq!(server(&c)[0], NOTHING, "tcp mode: the kernel's sockets");
    }

    #[test]
    fn a_client_over_ipv6_and_a_mixed_failover_list() {
        let mut c = client_config();
        c.devices[1].ipv6 = Some(ikago_proto::Ipv6Link {
            addr: "2001:db8:22::2".parse().unwrap(),
            prefix_len: 64,
            gateway: Some("fe80::1".parse().unwrap()),
            gateway_mac: None,
        });
        c.server = "[2001:db8:23::2]:18081".parse().unwrap();
        let f = client(&c, "[2001:db8:22::2]:50000".parse().unwrap());
        assert_eq!(
            f[1],
            "arp or (ip6 and ((dst host 2001:db8:22::2 and ((src host 2001:db8:23::2 and ((tcp \
             src port 18081 and tcp dst port 50000) or ip6[6] = 44)) or (icmp6 and icmp6[0] = \
             2))) or (ether dst 02:00:00:00:00:02 and icmp6 and icmp6[0] = 136)))"
        );
        let (server, me) = (v6("2001:db8:23::2"), v6("2001:db8:22::2"));
        assert!(admits(&f[1], &tcp6(server, me, 18081, 50000)));
        assert!(
            admits(&f[1], &advertisement(me)),
            "the router's advertisement, which resolves the next hop"
        );
        assert!(
            !admits(&f[1], &solicitation(v6("fe80::1"), me)),
            "a solicitation for our address: the kernel answers"
        );
        assert!(!admits(
            &f[1],
            &tcp([198, 19, 0, 1], [198, 18, 2, 1], 18081, 50000)
        ));
        // an IPv4 fallback: its segments to the device's IPv4 address, on the same port
        c.fallback = vec!["198.19.0.1:18081".parse().unwrap()];
        let f = client(&c, "[2001:db8:22::2]:50000".parse().unwrap());
        assert!(admits(&f[1], &tcp6(server, me, 18081, 50000)));
        assert!(admits(
            &f[1],
            &tcp([198, 19, 0, 1], [198, 18, 2, 1], 18081, 50000)
        ));
        // on the IPv4 server, the IPv6 one's segments still come in
        let f = client(&c, "198.18.2.1:50000".parse().unwrap());
        assert!(admits(&f[1], &tcp6(server, me, 18081, 50000)));
        c.transport = Transport::Tcp;
        let f = client(&c, "[2001:db8:22::2]:50000".parse().unwrap());
        assert_eq!(f[1], NOTHING, "tcp mode: the kernel's socket");
    }
}
