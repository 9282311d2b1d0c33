//! Device discovery: interfaces, routes and neighbours into the core's device list
//!
//! Every usable interface (with IPv4, IPv6 or both) becomes a candidate [`DeviceConfig`] that
//! listens; the one holding the route to the peer (the server for a client, the default route
//! for a server, else its IPv6 default route; an IPv6 server by the IPv6 routes) is also
//! upstream. [`add_ipv6`] then gives each its global IPv6 address,
//! IPv6 router and that router's MAC when the neighbour table has it ([`DeviceConfig::ipv6`]; on
//! a server's upstream device the NAT66 address, on a client's the tunnel's address toward an
//! IPv6 server, whose route gives the router, none when the server is on-link).
//! `ikago_config::CommonSettings::apply_device_roles` then applies `--listen-devices` and
//! `--upstream-device`, and [`check_upstream`] makes sure the upstream device can reach the peer.

mod gateway6;
mod interface;
mod neighbor;
mod neighbor6;
mod route;
mod route6;

pub use gateway6::{Gateway6Error, apply_gateway6};
pub use interface::{Interface, list};
pub use neighbor::{Neighbor, Neighbors};
pub use neighbor6::Neighbors6;
pub use route::{Route, Routes};
pub use route6::{Route6, Routes6};

use ikago_proto::{DeviceConfig, DeviceRole, Ipv6Link, LinkType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What the machine's upstream device must reach
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// The peer: the server for a client (IPv4 or IPv6); `None` for a server (any destination,
    /// so the default route)
    pub peer: Option<IpAddr>,
    /// The gateway given with `--gateway`, which overrides the routing table
    pub gateway: Option<Ipv4Addr>,
}

impl Reach {
    /// The address IPv4 routes are looked up for: the peer, or any destination (the default
    /// route) for a server and toward an IPv6 peer
    fn target(self) -> Ipv4Addr {
        match self.peer {
            Some(IpAddr::V4(p)) => p,
            _ => Ipv4Addr::UNSPECIFIED,
        }
    }

    /// The peer when it is IPv6
    fn peer6(self) -> Option<Ipv6Addr> {
        match self.peer {
            Some(IpAddr::V6(p)) => Some(p),
            _ => None,
        }
    }
}

/// Why the upstream device cannot be used
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// No usable device at all
    #[error(
        "no usable network device (up, Ethernet, with an IPv4 or a global IPv6 address); see \
         list-devices"
    )]
    NoDevices,
    /// No route to the peer and no `--gateway`
    #[error("no gateway: no route to {0} (give --gateway and --upstream-device)")]
    NoRoute(String),
    /// The upstream device has no gateway and the peer is not on its subnet
    #[error("no gateway on upstream device {device} (give --gateway)")]
    NoGateway {
        /// The upstream device
        device: String,
    },
    /// The gateway is not on any subnet of the upstream device
    #[error("gateway {gateway} is not on a subnet of upstream device {device}")]
    GatewayOffLink {
        /// The gateway
        gateway: Ipv4Addr,
        /// The upstream device
        device: String,
    },
    /// An IPv4 server, and no IPv4 address on the upstream device
    #[error("upstream device {device} has no IPv4 address to reach server {peer} from")]
    NoIpv4 {
        /// The upstream device
        device: String,
        /// The server
        peer: Ipv4Addr,
    },
    /// A server whose upstream device has IPv6 only, without an IPv6 default router
    #[error("upstream device {device} has IPv6 only and no IPv6 default router")]
    NoRouter6 {
        /// The upstream device
        device: String,
    },
    /// An IPv6 server, and no global IPv6 address on the upstream device
    #[error("upstream device {device} has no global IPv6 address to reach server {peer} from")]
    NoIpv6 {
        /// The upstream device
        device: String,
        /// The server
        peer: Ipv6Addr,
    },
    /// An IPv6 server off-link, and no IPv6 router on the upstream device
    #[error("no IPv6 route to {peer} on upstream device {device} (no IPv6 router, not on-link)")]
    NoRoute6 {
        /// The upstream device
        device: String,
        /// The server
        peer: Ipv6Addr,
    },
}

/// One candidate per usable interface: all listen, the one routing to the peer (by `routes6`
/// for an IPv6 peer, and for a server without an IPv4 default route) is also upstream
pub fn candidates(
    ifaces: &[Interface],
    routes: &Routes,
    routes6: &Routes6,
    neighbors: &Neighbors,
    reach: Reach,
) -> Vec<DeviceConfig> {
    let usable: Vec<&Interface> = ifaces.iter().filter(|i| i.usable()).collect();
    let upstream = match (reach.gateway, reach.peer6()) {
        (_, Some(peer)) => routes6.lookup(peer, None).map(|r| r.device.as_str()),
        (Some(gw), None) => usable
            .iter()
            .find(|i| i.addr_for(gw).is_some())
            .map(|i| i.name.as_str()),
        (None, None) => routes
            .lookup(reach.target(), None)
            .map(|r| r.device.as_str())
            // a server without an IPv4 default route: the device of its IPv6 default route
            .or_else(|| {
                let any = reach.peer.is_none().then_some(Ipv6Addr::UNSPECIFIED)?;
                routes6.lookup(any, None).map(|r| r.device.as_str())
            }),
    };
    usable
        .into_iter()
        .map(|i| {
            let gateway = reach.gateway.or_else(|| {
                routes
                    .lookup(reach.target(), Some(&i.name))
                    .and_then(|r| r.gateway)
            });
            let peer4 = match reach.peer {
                Some(IpAddr::V4(p)) => Some(p),
                _ => None,
            };
            let net = [gateway, peer4]
                .into_iter()
                .flatten()
                .find_map(|ip| i.addr_for(ip))
                .or(i.addrs.first().copied());
            // an IPv4 gateway only for a device with IPv4
            let gateway = gateway.filter(|_| net.is_some());
            DeviceConfig {
                name: i.name.clone(),
                role: if upstream == Some(i.name.as_str()) {
                    DeviceRole::Both
                } else {
                    DeviceRole::Listen
                },
                link: LinkType::Ethernet,
                mac: i.mac.expect("usable interfaces have a MAC"),
                addr: net.map(|n| n.addr),
                prefix_len: net.map_or(0, |n| n.prefix_len),
                gateway,
                gateway_mac: gateway.and_then(|g| neighbors.mac(&i.name, g)),
                ipv6: None,
            }
        })
        .collect()
}

/// Gives each device of `devices` its IPv6 link from `ifaces`: its router, from `routes` (the
/// next hop of its route to an IPv6 peer of `reach`, none when the peer is on-link; else its
/// IPv6 default router), that router's MAC from `neighbors`, and the first global IPv6 address
/// whose prefix holds the peer or the router (when it is not link-local), else its first; a
/// device without a global IPv6 address has none
pub fn add_ipv6(
    devices: &mut [DeviceConfig],
    ifaces: &[Interface],
    routes: &Routes6,
    neighbors: &Neighbors6,
    reach: Reach,
) {
    let peer = reach.peer6();
    for d in devices {
        let Some(i) = ifaces.iter().find(|i| i.name == d.name) else {
            continue;
        };
        let gateway = match peer.and_then(|p| routes.lookup(p, Some(&d.name))) {
            Some(route) => route.gateway,
            None => routes.gateway(&d.name),
        };
        let holds =
            |n: &&ikago_proto::Ipv6Net| peer.into_iter().chain(gateway).any(|a| n.contains(a));
        let Some(net) = i.addrs6.iter().find(holds).or(i.addrs6.first()) else {
            continue;
        };
        d.ipv6 = Some(Ipv6Link {
            addr: net.addr,
            prefix_len: net.prefix_len,
            gateway,
            gateway_mac: gateway.and_then(|g| neighbors.mac(&d.name, g)),
        });
    }
}

/// Checks that the upstream device (after the roles were applied) reaches the peer: through a
/// gateway on its subnet, or directly when the peer is on-link; an IPv6 peer from the device's
/// IPv6 address, through its IPv6 router or on-link; a server's IPv6-only upstream device
/// through its IPv6 router
pub fn check_upstream(devices: &[DeviceConfig], reach: Reach) -> Result<(), DeviceError> {
    if devices.is_empty() {
        return Err(DeviceError::NoDevices);
    }
    let target = reach.peer.map_or_else(
        || "the Internet (no default route)".to_owned(),
        |p| p.to_string(),
    );
    let up = devices
        .iter()
        .find(|d| d.role.is_upstream())
        .ok_or(DeviceError::NoRoute(target))?;
    if let Some(peer) = reach.peer6() {
        let device = up.name.clone();
        return match up.ipv6 {
            None => Err(DeviceError::NoIpv6 { device, peer }),
            Some(link) if link.gateway.is_some() || link.net().contains(peer) => Ok(()),
            Some(_) => Err(DeviceError::NoRoute6 { device, peer }),
        };
    }
    if up.addr.is_none() {
        let device = up.name.clone();
        return match reach.peer {
            Some(IpAddr::V4(peer)) => Err(DeviceError::NoIpv4 { device, peer }),
            _ if up.ipv6.is_some_and(|l| l.gateway.is_some()) => Ok(()),
            _ => Err(DeviceError::NoRouter6 { device }),
        };
    }
    match up.gateway {
        Some(gateway) if !up.on_link(gateway) => Err(DeviceError::GatewayOffLink {
            gateway,
            device: up.name.clone(),
        }),
        Some(_) => Ok(()),
        None if reach
            .peer
            .is_some_and(|p| matches!(p, IpAddr::V4(p) if up.on_link(p))) =>
        {
            Ok(())
        }
        None => Err(DeviceError::NoGateway {
            device: up.name.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, mac: u8, addrs: &[&str]) -> Interface {
        Interface {
            name: name.into(),
            mac: Some(ikago_proto::Mac([2, 0, 0, 0, 0, mac])),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            addrs6: Vec::new(),
            up: true,
            running: true,
            loopback: false,
            ethernet: true,
        }
    }

    fn route(dev: &str, dst: [u8; 4], mask: [u8; 4], gw: Option<[u8; 4]>) -> Route {
        Route {
            device: dev.into(),
            destination: dst.into(),
            mask: mask.into(),
            gateway: gw.map(Ipv4Addr::from),
            metric: 0,
        }
    }

    fn setup() -> (Vec<Interface>, Routes, Neighbors) {
        let mut lo = iface("lo", 0, &["127.0.0.1/8"]);
        lo.loopback = true;
        let ifaces = vec![
            lo,
            iface("lan0", 1, &["198.18.1.1/24"]),
            iface("wan0", 2, &["198.19.5.5/16", "198.18.2.1/24"]),
        ];
        let routes = Routes(vec![
            route("wan0", [0; 4], [0; 4], Some([198, 18, 2, 254])),
            route("wan0", [198, 18, 2, 0], [255, 255, 255, 0], None),
            route("lan0", [198, 18, 1, 0], [255, 255, 255, 0], None),
        ]);
        let gw_mac = ikago_proto::Mac([2, 0, 0, 0, 0, 0xfe]);
        let neighbors = Neighbors(vec![(
            "wan0".into(),
            Neighbor {
                ip: Ipv4Addr::new(198, 18, 2, 254),
                mac: gw_mac,
            },
        )]);
        (ifaces, routes, neighbors)
    }

    #[test]
    fn default_route_device_is_upstream_with_its_gateway() {
        let (i, r, n) = setup();
        let reach = Reach {
            peer: Some(Ipv4Addr::new(198, 19, 113, 5).into()),
            gateway: None,
        };
        let d = candidates(&i, &r, &Routes6::default(), &n, reach);
        assert_eq!(d.len(), 2, "loopback is not a candidate");
        assert_eq!(
            (d[0].name.as_str(), d[0].role),
            ("lan0", DeviceRole::Listen)
        );
        assert_eq!((d[1].name.as_str(), d[1].role), ("wan0", DeviceRole::Both));
        assert_eq!(
            d[1].addr,
            Some(Ipv4Addr::new(198, 18, 2, 1)),
            "the address on the gateway's subnet"
        );
        assert_eq!(d[1].gateway, Some(Ipv4Addr::new(198, 18, 2, 254)));
        assert!(d[1].gateway_mac.is_some());
        assert_eq!(d[0].gateway, None);
        assert_eq!(check_upstream(&d, reach), Ok(()));
    }

    #[test]
    fn on_link_peer_needs_no_gateway() {
        let (i, _, n) = setup();
        let r = Routes(vec![route(
            "lan0",
            [198, 18, 1, 0],
            [255, 255, 255, 0],
            None,
        )]);
        let reach = Reach {
            peer: Some(Ipv4Addr::new(198, 18, 1, 9).into()),
            gateway: None,
        };
        let d = candidates(&i, &r, &Routes6::default(), &n, reach);
        assert_eq!(d[0].role, DeviceRole::Both);
        assert_eq!(check_upstream(&d, reach), Ok(()));
        let server = Reach {
            peer: None,
            gateway: None,
        };
        let d = candidates(&i, &r, &Routes6::default(), &n, server);
        assert!(matches!(
            check_upstream(&d, server),
            Err(DeviceError::NoRoute(_))
        ));
    }

    #[test]
    fn explicit_gateway_picks_its_device() {
        let (i, r, n) = setup();
        let reach = Reach {
            peer: None,
            gateway: Some(Ipv4Addr::new(198, 18, 1, 254)),
        };
        let d = candidates(&i, &r, &Routes6::default(), &n, reach);
        assert_eq!(d[0].role, DeviceRole::Both);
        assert_eq!(check_upstream(&d, reach), Ok(()));
        let mut d = d;
        d[0].role = DeviceRole::Listen;
        d[1].role = DeviceRole::Both;
        assert!(matches!(
            check_upstream(&d, reach),
            Err(DeviceError::GatewayOffLink { .. })
        ));
    }

    #[test]
    fn devices_get_their_ipv6_link() {
        let (mut i, r, n) = setup();
        i[2].addrs6 = vec![
            "fd00:9::5/64".parse().unwrap(),
            "2001:db8:24::1/64".parse().unwrap(),
        ];
        i[1].addrs6 = vec!["fd00:21::1/64".parse().unwrap()];
        let reach = Reach {
            peer: None,
            gateway: None,
        };
        let mut d = candidates(&i, &r, &Routes6::default(), &n, reach);
        let table = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8002400000000000000000002 00000400 00000001 00000000 00000003     wan0
";
        let neighbors =
            Neighbors6::parse("2001:db8:24::2 dev wan0 lladdr 02:00:00:00:18:02 REACHABLE\n");
        add_ipv6(&mut d, &i, &Routes6::parse(table), &neighbors, reach);
        assert_eq!(
            d[1].ipv6,
            Some(Ipv6Link {
                addr: "2001:db8:24::1".parse().unwrap(),
                prefix_len: 64,
                gateway: Some("2001:db8:24::2".parse().unwrap()),
                gateway_mac: Some("02:00:00:00:18:02".parse().unwrap()),
            }),
            "the address on the router's prefix, the router and its MAC"
        );
        let lan = d[0].ipv6.expect("lan0 has an IPv6 address");
        assert_eq!(
            (lan.addr, lan.prefix_len),
            ("fd00:21::1".parse().unwrap(), 64)
        );
        assert_eq!((lan.gateway, lan.gateway_mac), (None, None));
        i[1].addrs6.clear();
        let mut d = candidates(&i, &r, &Routes6::default(), &n, reach);
        add_ipv6(
            &mut d,
            &i,
            &Routes6::default(),
            &Neighbors6::default(),
            reach,
        );
        assert_eq!(d[0].ipv6, None, "no global IPv6 address");
        assert_eq!(
            d[1].ipv6.map(|l| l.gateway),
            Some(None),
            "no IPv6 router known"
        );
    }

    /// `/proc/net/ipv6_route` lines: a default via fe80::1 on wan0, 2001:db8:23::/64 via
    /// 2001:db8:22::1 on wan0, 2001:db8:21::/64 on-link on lan0
    const ROUTES6: &str = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     wan0
20010db8002300000000000000000000 40 00000000000000000000000000000000 00 20010db8002200000000000000000001 00000400 00000001 00000000 00000003     wan0
20010db8002100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     lan0
";

    /// The devices found for an IPv6 peer `peer`, with their IPv6 links
    fn found6(peer: &str) -> (Vec<DeviceConfig>, Reach) {
        let (mut i, r, n) = setup();
        i[1].addrs6 = vec!["2001:db8:21::1/64".parse().unwrap()];
        i[2].addrs6 = vec![
            "fd00:9::5/64".parse().unwrap(),
            "2001:db8:22::2/64".parse().unwrap(),
        ];
        let reach = Reach {
            peer: Some(peer.parse().unwrap()),
            gateway: None,
        };
        let routes6 = Routes6::parse(ROUTES6);
        let mut d = candidates(&i, &r, &routes6, &n, reach);
        let neighbors =
            Neighbors6::parse("2001:db8:22::1 dev wan0 lladdr 02:00:00:00:16:01 REACHABLE\n");
        add_ipv6(&mut d, &i, &routes6, &neighbors, reach);
        (d, reach)
    }

    #[test]
    fn an_ipv6_server_is_reached_by_its_ipv6_route() {
        let (d, reach) = found6("2001:db8:23::2");
        assert_eq!((d[1].name.as_str(), d[1].role), ("wan0", DeviceRole::Both));
        assert_eq!(d[0].role, DeviceRole::Listen);
        assert_eq!(
            d[1].ipv6,
            Some(Ipv6Link {
                addr: "2001:db8:22::2".parse().unwrap(),
                prefix_len: 64,
                gateway: Some("2001:db8:22::1".parse().unwrap()),
                gateway_mac: Some("02:00:00:00:16:01".parse().unwrap()),
            }),
            "the route's next hop, the address on its prefix, the router's MAC"
        );
        assert_eq!(check_upstream(&d, reach), Ok(()));
        let (d, reach) = found6("2001:db8:99::7");
        assert_eq!(
            d[1].ipv6.and_then(|l| l.gateway),
            Some("fe80::1".parse().unwrap()),
            "the default router"
        );
        assert_eq!(check_upstream(&d, reach), Ok(()));
    }

    #[test]
    fn an_on_link_ipv6_server_needs_no_router() {
        let (d, reach) = found6("2001:db8:21::9");
        assert_eq!((d[0].name.as_str(), d[0].role), ("lan0", DeviceRole::Both));
        let link = d[0].ipv6.expect("lan0's IPv6 link");
        assert_eq!(
            (link.addr, link.gateway),
            ("2001:db8:21::1".parse().unwrap(), None)
        );
        assert_eq!(check_upstream(&d, reach), Ok(()));
    }

    #[test]
    fn an_ipv6_server_needs_an_ipv6_address_and_route_upstream() {
        let (mut d, reach) = found6("2001:db8:23::2");
        let peer = "2001:db8:23::2".parse().unwrap();
        let device = "wan0".to_owned();
        if let Some(link) = d[1].ipv6.as_mut() {
            link.gateway = None;
        }
        assert_eq!(
            check_upstream(&d, reach),
            Err(DeviceError::NoRoute6 {
                device: device.clone(),
                peer
            })
        );
        d[1].ipv6 = None;
        let e = check_upstream(&d, reach).unwrap_err();
        assert_eq!(e, DeviceError::NoIpv6 { device, peer });
        assert_eq!(
            e.to_string(),
            "upstream device wan0 has no global IPv6 address to reach server 2001:db8:23::2 from"
        );
    }

    #[test]
    fn an_ipv6_only_host_serves_through_its_ipv6_default_route() {
        let (mut i, _, _) = setup();
        i[1].addrs6 = vec!["2001:db8:21::1/64".parse().unwrap()];
        i[2].addrs6 = vec!["2001:db8:22::2/64".parse().unwrap()];
        for iface in &mut i {
            iface.addrs.clear();
        }
        let (routes, routes6) = (Routes::default(), Routes6::parse(ROUTES6));
        let neighbors = Neighbors::default();
        let server = Reach {
            peer: None,
            gateway: None,
        };
        let mut d = candidates(&i, &routes, &routes6, &neighbors, server);
        add_ipv6(&mut d, &i, &routes6, &Neighbors6::default(), server);
        assert_eq!(d.len(), 2, "the loopback has no global IPv6 address");
        assert_eq!((d[1].name.as_str(), d[1].role), ("wan0", DeviceRole::Both));
        assert_eq!((d[0].addr, d[1].addr, d[1].gateway), (None, None, None));
        assert_eq!(
            d[1].ipv6.and_then(|l| l.gateway),
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(check_upstream(&d, server), Ok(()));
        let device = "wan0".to_owned();
        if let Some(link) = d[1].ipv6.as_mut() {
            link.gateway = None;
        }
        assert_eq!(
            check_upstream(&d, server),
            Err(DeviceError::NoRouter6 {
                device: device.clone()
            })
        );
        let peer = Ipv4Addr::new(198, 19, 113, 5);
        let client = Reach {
            peer: Some(peer.into()),
            gateway: None,
        };
        assert_eq!(
            check_upstream(&d, client),
            Err(DeviceError::NoIpv4 { device, peer })
        );
    }
}
