//! The rules `--rule` installs, as data, and their text for iptables and nft
//!
//! The kernel knows neither the FakeTCP connection nor the server's NAT ports, so it would answer
//! them with RSTs and ICMP port unreachables (DESIGN §5). Dropping them in INPUT keeps the kernel
//! quiet while pcap, which taps before netfilter, still sees every packet:
//!
//! - client: TCP from `SERVER:PORT` to our FakeTCP address;
//! - server: TCP to the listening port on each listen address, and TCP and UDP to the NAT port
//!   ranges on the public address and, for NAT66, on the upstream device's IPv6 address (the
//!   kernel would answer those with RSTs and ICMPv6 port unreachables as well).

use ikago_proto::{ClientConfig, ServerConfig, Transport};
use std::fmt;
use std::net::{IpAddr, SocketAddrV4};
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
    /// The source address and port, when the rule is for one peer
    pub from: Option<SocketAddrV4>,
    /// The destination address: IPv4, or IPv6 for the NAT66 ports (`ip6tables`, `ip6 daddr`)
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
        let mut s = String::new();
        if let Some(from) = self.from {
            s += &format!("ip saddr {} {p} sport {} ", from.ip(), from.port());
        }
        let ports = if self.ports.start() == self.ports.end() {
            self.ports.start().to_string()
        } else {
            format!("{}-{}", self.ports.start(), self.ports.end())
        };
        let family = if self.to.is_ipv6() { "ip6" } else { "ip" };
        s + &format!("{family} daddr {} {p} dport {ports} drop", self.to)
    }
}

/// The client's rules: TCP from each server (of the failover list) to our FakeTCP address; none
/// in `tcp` mode, whose connection the kernel must answer
pub fn client(config: &ClientConfig, local: SocketAddrV4) -> Vec<Rule> {
    if config.transport == Transport::Tcp {
        return Vec::new();
    }
    std::iter::once(&config.server)
        .chain(&config.fallback)
        .map(|&server| Rule {
            protocol: Protocol::Tcp,
            from: Some(server),
            to: IpAddr::V4(*local.ip()),
            ports: local.port()..=local.port(),
        })
        .collect()
}

/// The server's rules: TCP to the listening port on each listen address (not in `tcp` mode,
/// whose connections the kernel must answer), TCP and UDP to the NAT ranges on the public address
pub fn server(config: &ServerConfig) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    let fake = config.transport == Transport::FakeTcp;
    for d in config.devices.iter().filter(|d| fake && d.role.listens()) {
        let r = Rule {
            protocol: Protocol::Tcp,
            from: None,
            to: d.addr.into(),
            ports: config.port..=config.port,
        };
        if !rules.contains(&r) {
            rules.push(r);
        }
    }
    if let Some(up) = config.devices.iter().find(|d| d.role.is_upstream()) {
        let nat66 = up.ipv6.map(|link| IpAddr::V6(link.addr));
        for to in std::iter::once(IpAddr::V4(up.addr)).chain(nat66) {
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
            addr: addr.into(),
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
}
