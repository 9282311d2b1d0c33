//! The IPv6 plane on its own, without the tunnel: hosts on both sides of the WAN router
//! exchange UDP, TCP and ICMPv6 echo directly (neighbour discovery with the router included),
//! the firewall blocks IPv6 UDP and ICMPv6 from the client side as it blocks IPv4 UDP and ICMP,
//! and the edge router answers an oversize IPv6 packet with a Packet Too Big

use ikago_sim::{
    HostConfig, HostId, HostIpv6, LinkConfig, RouterConfig, SimDrop, Transfer, World, WorldConfig,
    addr,
};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Steps one exchange may take
const STEPS: u64 = 100_000;
/// The UDP echo port
const ECHO: u16 = 7;
/// The TCP port the server-side host accepts on
const TCP_PORT: u16 = 8080;

/// A World whose WAN router is `router`, with a host on each side of it: `a` on the client
/// side (2001:db8:12::64, and 198.18.12.100 when `dual`), `b` on the server side
/// (2001:db8:14::64, and 198.18.14.100), `b` echoing UDP
fn pair(seed: u64, router: RouterConfig, dual: bool) -> (World, HostId, HostId) {
    let mut config = WorldConfig::new(seed);
    config.router = router;
    let mut world = World::new(config);
    let side = |name: &str, v4: Ipv4Addr, gw: Ipv4Addr, v6: HostIpv6| {
        if dual {
            HostConfig {
                gateway: Some(gw),
                ..HostConfig::internet(name, v4)
            }
            .with_ipv6(v6)
        } else {
            HostConfig::ipv6_only(name, v6)
        }
    };
    let a = world.add_client_side_host(side(
        "a",
        Ipv4Addr::new(198, 18, 12, 100),
        addr::ROUTER_INSIDE,
        HostIpv6::client_side(addr::client_side6(100)),
    ));
    let b = world.add_server_side_host(side(
        "b",
        Ipv4Addr::new(198, 18, 14, 100),
        addr::ROUTER_OUTSIDE,
        HostIpv6::server_side(addr::server_side6(100)),
    ));
    world.host_mut(b).udp_echo(ECHO);
    (world, a, b)
}

/// An open router that tracks TCP strictly and masquerades IPv4
fn strict_open() -> RouterConfig {
    RouterConfig {
        conntrack: true,
        masquerade: true,
        ..RouterConfig::open(LinkConfig::clean())
    }
}

/// A transfer of `len` bytes each way; `flip` gives the peer's side of it
fn transfer(len: u64, flip: bool) -> Transfer {
    let (mine, theirs) = if flip { (2, 1) } else { (1, 2) };
    Transfer {
        send_seed: mine,
        send_len: len,
        expect_seed: theirs,
        expect_len: len,
    }
}

#[test]
fn direct_udp_tcp_and_ping6_cross_an_open_router() {
    let (mut w, a, b) = pair(1, strict_open(), false);
    let b_addr = addr::server_side6(100);
    let to = SocketAddr::new(b_addr.into(), ECHO);
    w.host_mut(a).udp_send(5000, to, b"over IPv6");
    w.host_mut(a).ping(b_addr, 0x66, 1, b"ping6");
    w.host_mut(b).tcp_listen(TCP_PORT, transfer(200_000, true));
    w.host_mut(a).tcp_connect(
        40000,
        SocketAddr::new(b_addr.into(), TCP_PORT),
        transfer(200_000, false),
    );
    w.run_until(
        |w| {
            !w.host(a).payloads_on(5000).is_empty()
                && !w.host(a).echo_replies().is_empty()
                && w.host(a).tcp_streams()[0].is_complete()
                && w.host(b).tcp_streams()[0].is_complete()
        },
        STEPS,
    );
    let (ha, hb) = (w.host(a), w.host(b));
    assert_eq!(ha.payloads_on(5000), [b"over IPv6"]);
    assert_eq!(ha.datagrams()[0].from, to);
    let a_addr = SocketAddr::new(addr::client_side6(100).into(), 5000);
    assert_eq!(
        hb.datagrams()[0].from,
        a_addr,
        "IPv6 is routed as it is (the masquerade is IPv4 only)"
    );
    let r = &ha.echo_replies()[0];
    assert_eq!((r.from, r.ident, r.seq), (b_addr.into(), 0x66, 1));
    assert_eq!(r.payload, b"ping6");
    assert_eq!(
        hb.tcp_streams()[0].remote,
        Some(SocketAddr::new(addr::client_side6(100).into(), 40000))
    );
    assert_eq!(
        w.drops().iter().count(),
        0,
        "nothing dropped: {}",
        w.drops()
    );
}

#[test]
fn firewall_blocks_ipv6_udp_and_icmpv6_from_the_client_side_but_not_tcp() {
    let firewall = RouterConfig {
        conntrack: true,
        ..RouterConfig::firewall()
    };
    let (mut w, a, b) = pair(2, firewall, false);
    let b_addr = addr::server_side6(100);
    w.host_mut(a)
        .udp_send(5000, SocketAddr::new(b_addr.into(), ECHO), b"blocked");
    w.host_mut(a).ping(b_addr, 0x66, 1, b"blocked");
    w.host_mut(b).tcp_listen(TCP_PORT, transfer(50_000, true));
    w.host_mut(a).tcp_connect(
        40000,
        SocketAddr::new(b_addr.into(), TCP_PORT),
        transfer(50_000, false),
    );
    w.run_until(|w| w.host(a).tcp_streams()[0].is_complete(), STEPS);
    w.run_for(Duration::from_secs(2));
    assert!(w.host(b).tcp_streams()[0].is_complete());
    assert!(w.host(b).datagrams().is_empty(), "no UDP crossed");
    assert!(w.host(a).echo_replies().is_empty(), "no echo crossed");
    assert_eq!(w.drops().get(SimDrop::Firewall), 2, "{}", w.drops());
    assert_eq!(w.drops().conntrack_invalid(), 0, "{}", w.drops());
    // from the server side, UDP and ICMPv6 are let in (the firewall blocks what leaves the
    // client side), and the host on the client side answers
    let a_addr = addr::client_side6(100);
    w.host_mut(a).udp_echo(ECHO);
    w.host_mut(b)
        .udp_send(6000, SocketAddr::new(a_addr.into(), ECHO), b"inbound");
    w.host_mut(b).ping(a_addr, 0x77, 1, b"inbound");
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.host(a).payloads_on(ECHO), [b"inbound"]);
    assert!(
        w.host(b).payloads_on(6000).is_empty(),
        "the echo is blocked"
    );
    assert!(w.host(b).echo_replies().is_empty(), "so is the echo reply");
    assert_eq!(w.drops().get(SimDrop::Firewall), 4, "{}", w.drops());
}

#[test]
fn dual_stack_hosts_use_both_versions_at_once() {
    let (mut w, a, b) = pair(3, RouterConfig::open(LinkConfig::clean()), true);
    let v4 = SocketAddr::new(Ipv4Addr::new(198, 18, 14, 100).into(), ECHO);
    let v6 = SocketAddr::new(addr::server_side6(100).into(), ECHO);
    w.host_mut(a).udp_send(5004, v4, b"four");
    w.host_mut(a).udp_send(5006, v6, b"six");
    w.run_until(|w| w.host(a).datagrams().len() == 2, STEPS);
    assert_eq!(w.host(a).payloads_on(5004), [b"four"]);
    assert_eq!(w.host(a).payloads_on(5006), [b"six"]);
    let from: Vec<SocketAddr> = w.host(b).datagrams().iter().map(|d| d.from).collect();
    assert!(from.contains(&SocketAddr::new(
        Ipv4Addr::new(198, 18, 12, 100).into(),
        5004
    )));
    assert!(from.contains(&SocketAddr::new(addr::client_side6(100).into(), 5006)));
}

#[test]
fn edge_router_answers_an_oversize_ipv6_packet_with_packet_too_big() {
    let mut w = World::new(WorldConfig::new(4));
    w.set_edge_link(LinkConfig {
        mtu: 1280,
        ..LinkConfig::clean()
    });
    let near = w.add_internet_host(HostConfig::internet6("near", addr::internet6(0x20)));
    let far = w.add_remote_host(HostConfig::ipv6_only(
        "far",
        HostIpv6::remote(addr::remote6(2)),
    ));
    w.host_mut(far).udp_echo(ECHO);
    let to = SocketAddr::new(addr::remote6(2).into(), ECHO);
    // 1232 bytes of payload make a 1280-byte packet: it fits
    let fits = vec![1; 1232];
    w.host_mut(near).udp_send(5000, to, &fits);
    w.run_until(|w| !w.host(near).datagrams().is_empty(), STEPS);
    assert_eq!(w.host(near).payloads_on(5000), [&fits[..]]);
    let big = vec![2; 1233];
    w.host_mut(near).udp_send(5000, to, &big);
    w.run_until(|w| !w.host(near).icmp6_errors().is_empty(), STEPS);
    let e = &w.host(near).icmp6_errors()[0];
    assert_eq!(
        (e.from, e.icmp_type, e.code, e.info),
        (addr::EDGE_INTERNET6, 2, 0, 1280)
    );
    let quoted = etherparse::Ipv6HeaderSlice::from_slice(&e.quoted).expect("an IPv6 header");
    assert_eq!(
        (quoted.source_addr(), quoted.destination_addr()),
        (addr::internet6(0x20), addr::remote6(2))
    );
    assert_eq!(quoted.payload_length(), 8 + 1233);
    assert_eq!(w.drops().get(SimDrop::LinkMtu), 1);
    assert_eq!(
        w.host(far).datagrams().len(),
        1,
        "only the packet that fits"
    );
}

#[test]
fn the_machines_kernels_answer_neighbour_solicitations_for_their_ipv6_addresses() {
    let mut config = WorldConfig::dual_stack(5);
    config.capture = true;
    let mut w = World::new(config);
    let client = w.add_client(|_| {});
    let probe = w.add_client_side_host(HostConfig::ipv6_only(
        "probe",
        HostIpv6::client_side(addr::client_side6(100)),
    ));
    let target = addr::client_wan6(client.index());
    w.host_mut(probe).ping(target, 1, 1, b"who has");
    w.run_for(Duration::from_millis(100));
    let adverts: Vec<(std::net::Ipv6Addr, [u8; 16])> = w
        .capture()
        .tap("client0.wan")
        .expect("the client's upstream tap")
        .frames
        .iter()
        .filter(|f| f.direction == ikago_sim::Direction::Out)
        .filter_map(|f| {
            let p = etherparse::SlicedPacket::from_ethernet(&f.data).ok()?;
            let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
                return None;
            };
            let Some(etherparse::TransportSlice::Icmpv6(icmp)) = p.transport else {
                return None;
            };
            (icmp.type_u8() == 136).then(|| {
                let target = icmp.payload()[..16].try_into().expect("16 bytes");
                (ip.header().destination_addr(), target)
            })
        })
        .collect();
    assert_eq!(
        adverts,
        [(addr::client_side6(100), target.octets())],
        "one advertisement of the client's address, to the prober"
    );
}
