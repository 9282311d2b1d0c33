//! The rules `--rule` installs, as data, and their text for iptables and nft
//!
//! The kernel knows neither the FakeTCP connection nor the server's NAT ports, so it would answer
//! them with RSTs and ICMP port unreachables (DESIGN §5). Dropping them in INPUT keeps the kernel
//! quiet while pcap, which taps before netfilter, still sees every packet:
//!
//! - client: TCP from `SERVER:PORT` to our FakeTCP address (of the server's family: an IPv6
//!   server's segments come to the upstream device's IPv6 address);
//! - server: TCP to the listening port on each listen address, IPv4 and IPv6 (the tunnel runs
//!   over either), and TCP and UDP to the NAT port
//!   ranges on the public address and, for NAT66, on the upstream device's IPv6 address (the
//!   kernel would answer those with RSTs and ICMPv6 port unreachables as well).

use crate::filter;
use ikago_proto::{ClientConfig, ServerConfig, Transport};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

/// A transport protocol a rule matches
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP
    Tcp,
    /// UDP
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// One INPUT drop rule
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The transport protocol
    pub protocol: Protocol,
    /// The source address and port, when the rule is for one peer (of `to`'s family)
    pub from: Option<SocketAddr>,
    /// The destination address: IPv4, or IPv6 (`ip6tables`, `ip6 daddr`) for an IPv6 tunnel
    /// and the NAT66 ports
    pub to: IpAddr,
    /// The destination ports
    pub ports: RangeInclusive<u16>,
}

impl Rule {
    /// The iptables match arguments (without `-A CHAIN` and `-j DROP`)
    pub fn iptables_args(&self) -> Vec<String> {
        let mut a = vec!["-p".to_owned(), self.protocol.to_string()];
        if let Some(from) = self.from {
            a.extend(["-s".to_owned(), from.ip().to_string()]);
            a.extend(["--sport".to_owned(), from.port().to_string()]);
        }
        a.extend(["-d".to_owned(), self.to.to_string()]);
        let ports = if self.ports.start() == self.ports.end() {
            self.ports.start().to_string()
        } else {
            format!("{}:{}", self.ports.start(), self.ports.end())
        };
        a.extend(["--dport".to_owned(), ports]);
        a
    }

    /// The nft rule statement
    pub fn nft(&self) -> String {
        let p = self.protocol;
        let family = if self.to.is_ipv6() { "ip6" } else { "ip" };
        let mut s = String::new();
        if let Some(from) = self.from {
            s += &format!("{family} saddr {} {p} sport {} ", from.ip(), from.port());
        }
        let ports = if self.ports.start() == self.ports.end() {
            self.ports.start().to_string()
        } else {
            format!("{}-{}", self.ports.start(), self.ports.end())
        };
        s + &format!("{family} daddr {} {p} dport {ports} drop", self.to)
    }
}

/// The client's rules: TCP from each server (of the failover list) to our FakeTCP address of
/// its family; none in `tcp` mode, whose connection the kernel must answer
pub fn client(config: &ClientConfig, local: SocketAddr) -> Vec<Rule> {
    if config.transport == Transport::Tcp {
        return Vec::new();
    }
    std::iter::once(&config.server)
        .chain(&config.fallback)
        .filter_map(|&server| {
            Some(Rule {
                protocol: Protocol::Tcp,
                from: Some(server),
                to: filter::local_of_family(config, local, server.is_ipv6())?,
                ports: local.port()..=local.port(),
            })
        })
        .collect()
}

/// The server's rules: TCP to the listening port on each listen address, IPv4 and IPv6 (not in
/// `tcp` mode, whose connections the kernel must answer), TCP and UDP to the NAT ranges on the
/// public address
pub fn server(config: &ServerConfig) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    let fake = config.transport == Transport::FakeTcp;
    for d in config.devices.iter().filter(|d| fake && d.role.listens()) {
        for to in d.ips() {
            let r = Rule {
                protocol: Protocol::Tcp,
                from: None,
                to,
                ports: config.port..=config.port,
            };
            if !rules.contains(&r) {
                rules.push(r);
            }
        }
    }
    if let Some(up) = config.devices.iter().find(|d| d.role.is_upstream()) {
        for to in up.ips() {
            for (protocol, ports) in [
                (Protocol::Tcp, &config.nat.tcp_ports),
                (Protocol::Udp, &config.nat.udp_ports),
            ] {
                rules.push(Rule {
                    protocol,
                    from: None,
                    to,
                    ports: ports.clone(),
                });
            }
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikago_proto::{DeviceConfig, DeviceRole, LinkType, Mac};

    fn device(name: &str, role: DeviceRole, addr: [u8; 4]) -> DeviceConfig {
        DeviceConfig {
            name: name.into(),
            role,
            link: LinkType::Ethernet,
            mac: Mac([2, 0, 0, 0, 0, addr[3]]),
            addr: Some(addr.into()),
            prefix_len: 24,
            gateway: None,
            gateway_mac: None,
            ipv6: None,
        }
    }

    #[test]
    fn client_rule_text() {
        let c = ClientConfig::new(
            vec![device("eth0", DeviceRole::Both, [198, 18, 2, 1])],
            vec!["198.18.1.0/24".parse().unwrap()],
            "198.19.0.1:18081".parse().unwrap(),
        );
        let r = client(&c, "198.18.2.1:50000".parse().unwrap());
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].iptables_args().join(" "),
            "-p tcp -s 198.19.0.1 --sport 18081 -d 198.18.2.1 --dport 50000"
        );
        assert_eq!(
            r[0].nft(),
            "ip saddr 198.19.0.1 tcp sport 18081 ip daddr 198.18.2.1 tcp dport 50000 drop"
        );
    }

    #[test]
    fn tcp_mode_leaves_the_tunnel_port_to_the_kernel() {
        let mut c = ClientConfig::new(
            vec![device("eth0", DeviceRole::Both, [198, 18, 2, 1])],
            vec!["198.18.1.0/24".parse().unwrap()],
            "198.19.0.1:18081".parse().unwrap(),
        );
        c.transport = Transport::Tcp;
        assert!(client(&c, "198.18.2.1:50000".parse().unwrap()).is_empty());
        let mut s = ServerConfig::new(
            vec![
                device("eth0", DeviceRole::Both, [198, 19, 0, 1]),
                device("eth1", DeviceRole::Listen, [198, 18, 7, 1]),
            ],
            18081,
        );
        s.transport = Transport::Tcp;
        let text: Vec<String> = server(&s)
            .iter()
            .map(|r| r.iptables_args().join(" "))
            .collect();
        assert_eq!(
            text,
            [
                "-p tcp -d 198.19.0.1 --dport 49152:65535",
                "-p udp -d 198.19.0.1 --dport 49152:65535",
            ]
        );
    }

    #[test]
    fn server_rule_text() {
        let mut c = ServerConfig::new(
            vec![
                device("eth0", DeviceRole::Both, [198, 19, 0, 1]),
                device("eth1", DeviceRole::Listen, [198, 18, 7, 1]),
            ],
            18081,
        );
        c.nat.udp_ports = 40000..=40999;
        let text: Vec<String> = server(&c)
            .iter()
            .map(|r| r.iptables_args().join(" "))
            .collect();
        assert_eq!(
            text,
            [
                "-p tcp -d 198.19.0.1 --dport 18081",
                "-p tcp -d 198.18.7.1 --dport 18081",
                "-p tcp -d 198.19.0.1 --dport 49152:65535",
                "-p udp -d 198.19.0.1 --dport 40000:40999",
            ]
        );
        assert_eq!(
            server(&c)[3].nft(),
            "ip daddr 198.19.0.1 udp dport 40000-40999 drop"
        );
    }

    #[test]
    fn nat66_ports_are_dropped_on_the_ipv6_address() {
        let mut up = device("eth0", DeviceRole::Upstream, [198, 19, 0, 1]);
        up.ipv6 = Some(ikago_proto::Ipv6Link {
            addr: "2001:db8:24::1".parse().unwrap(),
            prefix_len: 64,
            gateway: None,
            gateway_mac: None,
        });
        let mut c = ServerConfig::new(
            vec![up, device("eth1", DeviceRole::Listen, [198, 18, 7, 1])],
            18081,
        );
        c.nat.udp_ports = 40000..=40999;
        let rules = server(&c);
        let text: Vec<String> = rules.iter().map(|r| r.iptables_args().join(" ")).collect();
        assert_eq!(
            text,
            [
                "-p tcp -d 198.18.7.1 --dport 18081",
                "-p tcp -d 198.19.0.1 --dport 49152:65535",
                "-p udp -d 198.19.0.1 --dport 40000:40999",
                "-p tcp -d 2001:db8:24::1 --dport 49152:65535",
                "-p udp -d 2001:db8:24::1 --dport 40000:40999",
            ]
        );
        assert_eq!(
            rules[4].nft(),
            "ip6 daddr 2001:db8:24::1 udp dport 40000-40999 drop"
        );
    }

    fn with_ipv6(mut d: DeviceConfig, addr: &str) -> DeviceConfig {
        d.ipv6 = Some(ikago_proto::Ipv6Link {
            addr: addr.parse().unwrap(),
            prefix_len: 64,
            gateway: None,
            gateway_mac: None,
        });
        d
    }

    #[test]
    fn a_server_drops_its_port_on_its_ipv6_address_too() {
        let wan = with_ipv6(
            device("wan0", DeviceRole::Listen, [198, 18, 23, 2]),
            "2001:db8:23::2",
        );
        let c = ServerConfig::new(
            vec![wan, device("dst0", DeviceRole::Upstream, [198, 18, 24, 1])],
            18081,
        );
        let rules = server(&c);
        let text: Vec<String> = rules.iter().map(|r| r.iptables_args().join(" ")).collect();
        assert_eq!(
            text[..2],
            [
                "-p tcp -d 198.18.23.2 --dport 18081",
                "-p tcp -d 2001:db8:23::2 --dport 18081",
            ]
        );
        assert_eq!(
            rules[1].nft(),
            "ip6 daddr 2001:db8:23::2 tcp dport 18081 drop"
        );
    }

    #[test]
    fn a_client_drops_each_servers_segments_on_the_address_of_its_family() {
        let wan = with_ipv6(
            device("wan0", DeviceRole::Both, [198, 18, 22, 2]),
            "2001:db8:22::2",
        );
        let mut c = ClientConfig::new(
            vec![wan],
            vec!["198.18.21.0/24".parse().unwrap()],
            "198.18.23.2:18081".parse().unwrap(),
        );
        let local: SocketAddr = "198.18.22.2:50000".parse().unwrap();
        let from = |server: &str| Rule {
            protocol: Protocol::Tcp,
            from: Some(server.parse().unwrap()),
            to: "2001:db8:22::2".parse().unwrap(),
            ports: 50000..=50000,
        };
        let v6 = from("[2001:db8:23::2]:18081");
        assert_eq!(
            v6.iptables_args().join(" "),
            "-p tcp -s 2001:db8:23::2 --sport 18081 -d 2001:db8:22::2 --dport 50000"
        );
        assert_eq!(
            v6.nft(),
            "ip6 saddr 2001:db8:23::2 tcp sport 18081 ip6 daddr 2001:db8:22::2 tcp dport 50000 drop"
        );
        assert_eq!(client(&c, local).len(), 1);
        c.fallback = vec!["[2001:db8:23::2]:18081".parse().unwrap()];
        assert_eq!(
            client(&c, local)[1],
            v6,
            "the IPv6 fallback's, on the IPv6 address"
        );
        c.server = "[2001:db8:23::2]:18081".parse().unwrap();
        c.fallback.clear();
        let local6 = "[2001:db8:22::2]:50000".parse().unwrap();
        assert_eq!(client(&c, local6), [v6]);
        c.devices[0].ipv6 = None;
        assert_eq!(
            filter::local_of_family(&c, local, true),
            None,
            "no IPv6 address upstream"
        );
    }
}
