//! Device discovery: interfaces, routes and neighbours into the core's device list
//!
//! Every usable interface becomes a candidate [`DeviceConfig`] that listens; the one holding the
//! route to the peer (the server for a client, the default route for a server) is also upstream.
//! [`add_ipv6`] then gives each its global IPv6 address, IPv6 default router and that router's
//! MAC when the neighbour table has it ([`DeviceConfig::ipv6`]; on a server's upstream device
//! the NAT66 address).
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
pub use route6::{DefaultRoute6, Routes6};

use ikago_proto::{DeviceConfig, DeviceRole, Ipv6Link, LinkType};
use std::net::Ipv4Addr;

/// What the machine's upstream device must reach
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reach {
    /// The peer: the server for a client; `None` for a server (any destination, so the default
    /// route)
    pub peer: Option<Ipv4Addr>,
    /// The gateway given with `--gateway`, which overrides the routing table
    pub gateway: Option<Ipv4Addr>,
}

impl Reach {
    /// The address routes are looked up for
    fn target(self) -> Ipv4Addr {
        self.peer.unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
}

/// Why the upstream device cannot be used
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// No usable device at all
    #[error("no usable network device (up, Ethernet, with an IPv4 address); see list-devices")]
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
}

/// One candidate per usable interface: all listen, the one routing to the peer is also upstream
pub fn candidates(
    ifaces: &[Interface],
    routes: &Routes,
    neighbors: &Neighbors,
    reach: Reach,
) -> Vec<DeviceConfig> {
    let usable: Vec<&Interface> = ifaces.iter().filter(|i| i.usable()).collect();
    let upstream = match reach.gateway {
        Some(gw) => usable
            .iter()
            .find(|i| i.addr_for(gw).is_some())
            .map(|i| i.name.as_str()),
        None => routes
            .lookup(reach.target(), None)
            .map(|r| r.device.as_str()),
    };
    usable
        .into_iter()
        .map(|i| {
            let gateway = reach.gateway.or_else(|| {
                routes
                    .lookup(reach.target(), Some(&i.name))
                    .and_then(|r| r.gateway)
            });
            let net = [gateway, reach.peer]
                .into_iter()
                .flatten()
                .find_map(|ip| i.addr_for(ip))
                .unwrap_or(i.addrs[0]);
            DeviceConfig {
                name: i.name.clone(),
                role: if upstream == Some(i.name.as_str()) {
                    DeviceRole::Both
                } else {
                    DeviceRole::Listen
                },
                link: LinkType::Ethernet,
                mac: i.mac.expect("usable interfaces have a MAC"),
                addr: net.addr,
                prefix_len: net.prefix_len,
                gateway,
                gateway_mac: gateway.and_then(|g| neighbors.mac(&i.name, g)),
                ipv6: None,
            }
        })
        .collect()
}

/// Gives each device of `devices` its IPv6 link from `ifaces`: the first global IPv6 address
/// (one whose prefix holds the IPv6 default router, when it is not link-local), that router
/// from `routes` and its MAC from `neighbors`; a device without a global IPv6 address has none
pub fn add_ipv6(
    devices: &mut [DeviceConfig],
    ifaces: &[Interface],
    routes: &Routes6,
    neighbors: &Neighbors6,
) {
    for d in devices {
        let Some(i) = ifaces.iter().find(|i| i.name == d.name) else {
            continue;
        };
        let gateway = routes.gateway(&d.name);
        let on_gateway = |n: &&ikago_proto::Ipv6Net| gateway.is_some_and(|g| n.contains(g));
        let Some(net) = i.addrs6.iter().find(on_gateway).or(i.addrs6.first()) else {
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
/// gateway on its subnet, or directly when the peer is on-link
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
    match up.gateway {
        Some(gateway) if !up.on_link(gateway) => Err(DeviceError::GatewayOffLink {
            gateway,
            device: up.name.clone(),
        }),
        Some(_) => Ok(()),
        None if reach.peer.is_some_and(|p| up.on_link(p)) => Ok(()),
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
            peer: Some(Ipv4Addr::new(203, 0, 113, 5)),
            gateway: None,
        };
        let d = candidates(&i, &r, &n, reach);
        assert_eq!(d.len(), 2, "loopback is not a candidate");
        assert_eq!(
            (d[0].name.as_str(), d[0].role),
            ("lan0", DeviceRole::Listen)
        );
        assert_eq!((d[1].name.as_str(), d[1].role), ("wan0", DeviceRole::Both));
        assert_eq!(
            d[1].addr,
            Ipv4Addr::new(198, 18, 2, 1),
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
            peer: Some(Ipv4Addr::new(198, 18, 1, 9)),
            gateway: None,
        };
        let d = candidates(&i, &r, &n, reach);
        assert_eq!(d[0].role, DeviceRole::Both);
        assert_eq!(check_upstream(&d, reach), Ok(()));
        let server = Reach {
            peer: None,
            gateway: None,
        };
        let d = candidates(&i, &r, &n, server);
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
        let d = candidates(&i, &r, &n, reach);
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
        let mut d = candidates(&i, &r, &n, reach);
        let table = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8002400000000000000000002 00000400 00000001 00000000 00000003     wan0
";
        let neighbors =
            Neighbors6::parse("2001:db8:24::2 dev wan0 lladdr 02:00:00:00:18:02 REACHABLE\n");
        add_ipv6(&mut d, &i, &Routes6::parse(table), &neighbors);
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
        let mut d = candidates(&i, &r, &n, reach);
        add_ipv6(&mut d, &i, &Routes6::default(), &Neighbors6::default());
        assert_eq!(d[0].ipv6, None, "no global IPv6 address");
        assert_eq!(
            d[1].ipv6.map(|l| l.gateway),
            Some(None),
            "no IPv6 router known"
        );
    }
}
