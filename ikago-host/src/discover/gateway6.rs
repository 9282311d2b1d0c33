//! `--gateway` with an IPv6 address: the upstream device's IPv6 router, in place of the one the
//! routing table gives

use super::{Interface, Neighbors6};
use ikago_proto::{DeviceConfig, Ipv6Link};
use std::net::Ipv6Addr;

/// Why an IPv6 gateway cannot be used
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Gateway6Error {
    /// The upstream device has no global IPv6 address to send from
    #[error(
        "IPv6 gateway {gateway} given, but upstream device {device} has no global IPv6 address"
    )]
    NoAddress {
        /// The gateway
        gateway: Ipv6Addr,
        /// The upstream device
        device: String,
    },
    /// The gateway is neither link-local nor on a prefix of the upstream device
    #[error("IPv6 gateway {gateway} is not on a subnet of upstream device {device}")]
    OffLink {
        /// The gateway
        gateway: Ipv6Addr,
        /// The upstream device
        device: String,
    },
}

/// Makes `gateway` the IPv6 router of the upstream device of `devices` (once the roles are
/// applied): its link takes the global address on the gateway's prefix (for a link-local gateway
/// such as fe80::1, the one it has), and the gateway's MAC from `neighbors`; without one the
/// core resolves it by neighbour discovery. Nothing to do without an upstream device (which
/// [`super::check_upstream`] reports).
pub fn apply_gateway6(
    devices: &mut [DeviceConfig],
    ifaces: &[Interface],
    gateway: Ipv6Addr,
    neighbors: &Neighbors6,
) -> Result<(), Gateway6Error> {
    let Some(up) = devices.iter_mut().find(|d| d.role.is_upstream()) else {
        return Ok(());
    };
    let device = up.name.clone();
    let addrs = ifaces
        .iter()
        .find(|i| i.name == up.name)
        .map_or(&[][..], |i| &i.addrs6[..]);
    let on_prefix = addrs.iter().find(|n| n.contains(gateway));
    let (addr, prefix_len) = match on_prefix {
        Some(n) => (n.addr, n.prefix_len),
        None if !gateway.is_unicast_link_local() && !addrs.is_empty() => {
            return Err(Gateway6Error::OffLink { gateway, device });
        }
        None => match up.ipv6.map(|l| (l.addr, l.prefix_len)) {
            Some(held) => held,
            None => return Err(Gateway6Error::NoAddress { gateway, device }),
        },
    };
    up.ipv6 = Some(Ipv6Link {
        addr,
        prefix_len,
        gateway: Some(gateway),
        gateway_mac: neighbors.mac(&device, gateway),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikago_proto::{DeviceRole, LinkType, Mac};
    use std::net::Ipv4Addr;

    fn device(name: &str, role: DeviceRole, ipv6: Option<Ipv6Link>) -> DeviceConfig {
        DeviceConfig {
            name: name.into(),
            role,
            link: LinkType::Ethernet,
            mac: Mac([2, 0, 0, 0, 0, 2]),
            addr: Some(Ipv4Addr::new(198, 18, 2, 1)),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(198, 18, 2, 254)),
            gateway_mac: None,
            ipv6,
        }
    }

    fn iface(name: &str, addrs6: &[&str]) -> Interface {
        Interface {
            name: name.into(),
            mac: Some(Mac([2, 0, 0, 0, 0, 2])),
            addrs: vec!["198.18.2.1/24".parse().unwrap()],
            addrs6: addrs6.iter().map(|a| a.parse().unwrap()).collect(),
            up: true,
            running: true,
            loopback: false,
            ethernet: true,
        }
    }

    fn ip(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    /// wan0 (upstream) with two global prefixes, its link on the first with the routing table's
    /// router fe80::1; lan0 listens
    fn setup() -> (Vec<DeviceConfig>, Vec<Interface>) {
        let routed = Ipv6Link {
            addr: ip("2001:db8:24::1"),
            prefix_len: 64,
            gateway: Some(ip("fe80::1")),
            gateway_mac: Some(Mac([2, 0, 0, 0, 0, 0xfe])),
        };
        let devices = vec![
            device("lan0", DeviceRole::Listen, None),
            device("wan0", DeviceRole::Both, Some(routed)),
        ];
        let ifaces = vec![
            iface("lan0", &["2001:db8:21::1/64"]),
            iface("wan0", &["2001:db8:24::1/64", "2001:db8:25::1/64"]),
        ];
        (devices, ifaces)
    }

    #[test]
    fn the_gateway_replaces_the_routing_tables_on_the_upstream_device() {
        let (mut d, i) = setup();
        let neighbors =
            Neighbors6::parse("2001:db8:25::ff dev wan0 lladdr 02:00:00:00:25:ff REACHABLE\n");
        apply_gateway6(&mut d, &i, ip("2001:db8:25::ff"), &neighbors).unwrap();
        assert_eq!(
            d[1].ipv6,
            Some(Ipv6Link {
                addr: ip("2001:db8:25::1"),
                prefix_len: 64,
                gateway: Some(ip("2001:db8:25::ff")),
                gateway_mac: Some("02:00:00:00:25:ff".parse().unwrap()),
            }),
            "the address on the gateway's prefix, the MAC from the neighbour table"
        );
        assert_eq!(d[0].ipv6, None, "a listen device is left alone");
        assert_eq!(d[1].gateway, Some(Ipv4Addr::new(198, 18, 2, 254)));
    }

    #[test]
    fn a_link_local_gateway_keeps_the_address_and_is_resolved_by_ndp() {
        let (mut d, i) = setup();
        apply_gateway6(&mut d, &i, ip("fe80::2"), &Neighbors6::default()).unwrap();
        let link = d[1].ipv6.unwrap();
        assert_eq!(
            (link.addr, link.gateway, link.gateway_mac),
            (ip("2001:db8:24::1"), Some(ip("fe80::2")), None)
        );
    }

    #[test]
    fn the_gateway_goes_to_the_device_the_roles_made_upstream() {
        let (mut d, i) = setup();
        d[0].role = DeviceRole::Both;
        d[1].role = DeviceRole::Listen;
        let before = d[1].ipv6;
        apply_gateway6(&mut d, &i, ip("2001:db8:21::fe"), &Neighbors6::default()).unwrap();
        assert_eq!(
            d[0].ipv6.map(|l| (l.addr, l.gateway)),
            Some((ip("2001:db8:21::1"), Some(ip("2001:db8:21::fe"))))
        );
        assert_eq!(d[1].ipv6, before);
    }

    #[test]
    fn an_unusable_gateway_is_one_line() {
        let (mut d, mut i) = setup();
        let wan = || "wan0".to_owned();
        assert_eq!(
            apply_gateway6(&mut d, &i, ip("2001:db8:99::1"), &Neighbors6::default()),
            Err(Gateway6Error::OffLink {
                gateway: ip("2001:db8:99::1"),
                device: wan()
            })
        );
        i[1].addrs6.clear();
        d[1].ipv6 = None;
        for gateway in [ip("fe80::1"), ip("2001:db8:24::ff")] {
            let e = apply_gateway6(&mut d, &i, gateway, &Neighbors6::default()).unwrap_err();
            assert_eq!(
                e,
                Gateway6Error::NoAddress {
                    gateway,
                    device: wan()
                }
            );
            assert!(!e.to_string().contains('\n'));
        }
        assert_eq!(
            Gateway6Error::NoAddress {
                gateway: ip("fe80::1"),
                device: wan()
            }
            .to_string(),
            "IPv6 gateway fe80::1 given, but upstream device wan0 has no global IPv6 address"
        );
    }
}
