//! Inner IPv6 through the tunnel: LAN hosts with IPv6 addresses behind a client on the
//! `ikago2` wire (over the IPv4 FakeTCP tunnel) reach IPv6 Internet hosts through the server's
//! NAT66, while the router between client and server blocks UDP, ICMP and ICMPv6 and tracks TCP
//! strictly; on the `ikago` wire inner IPv6 is a counted drop

mod common;

use common::{
    CONNECT_STEPS, EXCHANGE_STEPS, add_dual_stack_far, connect, dual_stack_lan, exchange, payload,
};
use ikago_proto::{DropReason, Protocol};
use ikago_sim::{
    ClientId, Direction, HostConfig, HostId, HostIpv6, LinkConfig, SimDrop, Transfer, World,
    WorldConfig, addr, dns,
};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The UDP echo port of the Internet hosts
const ECHO: u16 = 7;
/// The TCP port the Internet host accepts on
const TCP_PORT: u16 = 8080;
/// The echo identifier of the LAN hosts' pings
const IDENT: u16 = 0x6666;
/// The LAN host's MTU: its full-size packets fit the tunnel's outer packets whole (the
/// conntrack model drops IPv4 fragments, where Linux would reassemble them first)
const LAN_MTU: usize = 1400;

/// A dual-stack World behind the strict firewall (UDP, ICMP and ICMPv6 blocked, strict TCP
/// conntrack), its client speaking `protocol`, a LAN host `pc` (IPv6-only at fd00:11::2, or
/// dual-stack with 198.18.11.2 when `dual`; MTU [`LAN_MTU`]) and a dual-stack Internet host `far`
/// (198.18.13.2, 2001:db8:13::2) echoing UDP
struct V6 {
    world: World,
    client: ClientId,
    pc: HostId,
    far: HostId,
}

impl V6 {
    fn new(seed: u64, protocol: Protocol, dual: bool) -> Self {
        let mut config = WorldConfig::dual_stack(seed);
        config.router.conntrack = true;
        let mut world = World::new(config);
        let client = world.add_client(|c| c.protocol = protocol);
        let pc = if dual {
            dual_stack_lan("pc", 2)
        } else {
            HostConfig::lan6("pc", addr::lan6(2))
        };
        let pc = world.add_lan_host(client, HostConfig { mtu: LAN_MTU, ..pc });
        let far = add_dual_stack_far(&mut world);
        Self {
            world,
            client,
            pc,
            far,
        }
    }

    fn connected(seed: u64, protocol: Protocol, dual: bool) -> Self {
        let mut v = Self::new(seed, protocol, dual);
        connect(&mut v.world, v.client);
        v
    }
}

/// `far`'s IPv6 echo service
fn echo6() -> SocketAddr {
    SocketAddr::new(addr::internet6(2).into(), ECHO)
}

#[test]
fn ipv6_only_lan_host_reaches_udp_tcp_dns_and_ping6_through_the_firewall() {
    let mut v = V6::connected(61, Protocol::Ikago2, false);
    let (small, full) = (payload(1, 20), payload(2, 1200));
    exchange(&mut v.world, v.pc, 5000, echo6(), &small);
    exchange(&mut v.world, v.pc, 5000, echo6(), &full);
    let pc = v.world.host(v.pc);
    assert_eq!(pc.payloads_on(5000), [&small[..], &full[..]]);
    assert!(pc.datagrams().iter().all(|d| d.from == echo6()));
    let far = v.world.host(v.far);
    assert!(
        far.datagrams()
            .iter()
            .all(|d| d.from.ip() == IpAddr::from(addr::SERVER_PUBLIC6)),
        "the server NATs onto its IPv6 address"
    );

    for seq in 1..=3u16 {
        let data = payload(seq as u8, 56);
        v.world
            .host_mut(v.pc)
            .ping(addr::internet6(2), IDENT, seq, &data);
        v.world.run_until(
            |w| w.host(v.pc).echo_replies().len() == usize::from(seq),
            EXCHANGE_STEPS,
        );
    }
    for (r, seq) in v.world.host(v.pc).echo_replies().iter().zip(1..=3u16) {
        assert_eq!(
            (r.from, r.ident, r.seq),
            (addr::internet6(2).into(), IDENT, seq)
        );
        assert_eq!(r.payload, payload(seq as u8, 56));
    }

    let len = 300_000;
    v.world.host_mut(v.far).tcp_listen(
        TCP_PORT,
        Transfer {
            send_seed: 2,
            send_len: len,
            expect_seed: 1,
            expect_len: len,
        },
    );
    v.world.host_mut(v.pc).tcp_connect(
        40000,
        SocketAddr::new(addr::internet6(2).into(), TCP_PORT),
        Transfer {
            send_seed: 1,
            send_len: len,
            expect_seed: 2,
            expect_len: len,
        },
    );
    v.world.run_until(
        |w| {
            w.host(v.pc).tcp_streams()[0].is_complete()
                && w.host(v.far).tcp_streams()[0].is_complete()
        },
        CONNECT_STEPS * 10,
    );
    let remote = v.world.host(v.far).tcp_streams()[0].remote;
    assert_eq!(
        remote.map(|r| r.ip()),
        Some(addr::SERVER_PUBLIC6.into()),
        "TCP is NATed onto the server's IPv6 address"
    );

    let name_server = addr::internet6(53);
    let ns = v
        .world
        .add_internet_host(HostConfig::internet6("ns", name_server));
    let answer = addr::internet(80);
    v.world
        .host_mut(ns)
        .dns_server(&[("www.example.test", answer)]);
    v.world
        .host_mut(v.pc)
        .dns_query(5353, name_server, 9, "www.example.test");
    v.world.run_until(
        |w| !w.host(v.pc).payloads_on(5353).is_empty(),
        EXCHANGE_STEPS,
    );
    let query = dns::query(9, "www.example.test");
    let expected =
        dns::answer(&query, &[("www.example.test".to_owned(), answer)]).expect("a query");
    assert_eq!(v.world.host(v.pc).payloads_on(5353), [&expected[..]]);

    let drops = v.world.drops();
    assert_eq!(drops.get(SimDrop::Firewall), 0, "{drops}");
    assert_eq!(drops.conntrack_invalid(), 0, "{drops}");
    assert_eq!(drops.get(SimDrop::UntrackedFragment), 0, "{drops}");
}

#[test]
fn dual_stack_lan_host_uses_ipv4_and_ipv6_at_once() {
    let mut v = V6::connected(62, Protocol::Ikago2, true);
    let echo4 = SocketAddr::new(addr::internet(2).into(), ECHO);
    for n in 0..10u8 {
        v.world
            .host_mut(v.pc)
            .udp_send(5004, echo4, &payload(n, 400));
        v.world
            .host_mut(v.pc)
            .udp_send(5006, echo6(), &payload(n, 600));
        v.world.run_for(Duration::from_millis(5));
    }
    v.world
        .run_until(|w| w.host(v.pc).datagrams().len() == 20, EXCHANGE_STEPS);
    let pc = v.world.host(v.pc);
    let four: Vec<Vec<u8>> = (0..10).map(|n| payload(n, 400)).collect();
    let six: Vec<Vec<u8>> = (0..10).map(|n| payload(n, 600)).collect();
    assert_eq!(
        pc.payloads_on(5004),
        four.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
    assert_eq!(
        pc.payloads_on(5006),
        six.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
    let sources: Vec<IpAddr> = v
        .world
        .host(v.far)
        .datagrams()
        .iter()
        .map(|d| d.from.ip())
        .collect();
    assert!(sources.contains(&addr::SERVER_PUBLIC.into()));
    assert!(sources.contains(&addr::SERVER_PUBLIC6.into()));
    assert_eq!(v.world.drops().get(SimDrop::Firewall), 0);
}

#[test]
fn a_third_internet_host_reaches_the_mapped_ipv6_port() {
    let mut v = V6::connected(63, Protocol::Ikago2, false);
    v.world.host_mut(v.pc).udp_bind(5000);
    exchange(&mut v.world, v.pc, 5000, echo6(), b"open a mapping");
    let mapped = v.world.host(v.far).datagrams()[0].from;
    assert_eq!(mapped.ip(), IpAddr::from(addr::SERVER_PUBLIC6));
    let third = v
        .world
        .add_internet_host(HostConfig::internet6("third", addr::internet6(3)));
    v.world.host_mut(third).udp_send(9000, mapped, b"full cone");
    v.world.run_until(
        |w| w.host(v.pc).payloads_on(5000).len() == 2,
        EXCHANGE_STEPS,
    );
    let got = &v.world.host(v.pc).datagrams()[1];
    assert_eq!(got.payload, b"full cone");
    assert_eq!(
        got.from,
        SocketAddr::new(addr::internet6(3).into(), 9000),
        "the third host's own address and port"
    );
}

#[test]
fn a_packet_too_big_from_the_internet_side_reaches_the_lan_host_translated() {
    let mut v = V6::connected(64, Protocol::Ikago2, false);
    v.world.set_edge_link(LinkConfig {
        mtu: 1280,
        ..LinkConfig::clean()
    });
    let remote = v.world.add_remote_host(HostConfig::ipv6_only(
        "remote",
        HostIpv6::remote(addr::remote6(2)),
    ));
    v.world.host_mut(remote).udp_echo(ECHO);
    let to = SocketAddr::new(addr::remote6(2).into(), ECHO);
    exchange(&mut v.world, v.pc, 5000, to, &payload(3, 1000));
    // 1250 bytes of payload make a 1298-byte inner packet: it crosses the tunnel, not the edge
    v.world.host_mut(v.pc).udp_send(5000, to, &payload(4, 1250));
    v.world
        .run_until(|w| !w.host(v.pc).icmp6_errors().is_empty(), EXCHANGE_STEPS);
    let e = &v.world.host(v.pc).icmp6_errors()[0];
    assert_eq!((e.from, e.icmp_type, e.code), (addr::EDGE_INTERNET6, 2, 0));
    assert!(e.info <= 1280, "mtu {}", e.info);
    let quoted = etherparse::Ipv6HeaderSlice::from_slice(&e.quoted).expect("an IPv6 header");
    assert_eq!(
        (quoted.source_addr(), quoted.destination_addr()),
        (addr::lan6(2), addr::remote6(2)),
        "the quoted packet is the LAN host's own, translated back"
    );
    let udp = etherparse::UdpHeaderSlice::from_slice(&e.quoted[40..]).expect("a UDP header");
    assert_eq!((udp.source_port(), udp.destination_port()), (5000, ECHO));
    assert_eq!(
        v.world.host(remote).datagrams().len(),
        1,
        "only the packet that fits"
    );
}

#[test]
fn the_ikago_wire_drops_inner_ipv6_and_still_carries_ipv4() {
    let mut v = V6::connected(65, Protocol::Ikago, true);
    v.world.host_mut(v.pc).udp_send(5006, echo6(), b"six");
    v.world.host_mut(v.pc).udp_send(5006, echo6(), b"six again");
    let echo4 = SocketAddr::new(addr::internet(2).into(), ECHO);
    exchange(&mut v.world, v.pc, 5004, echo4, b"four");
    v.world.run_for(Duration::from_secs(1));
    assert_eq!(v.world.host(v.pc).payloads_on(5004), [b"four"]);
    assert!(v.world.host(v.pc).payloads_on(5006).is_empty());
    let drops = &v.world.client(v.client).stats().drops;
    assert_eq!(drops.get(DropReason::Ipv6OnIkago), 2);
    assert!(
        v.world
            .host(v.far)
            .datagrams()
            .iter()
            .all(|d| d.from.is_ipv4()),
        "no IPv6 reached the Internet"
    );
}

/// An IPv6 and a dual-stack LAN host over a lossy, reordering link
fn run(seed: u64) -> World {
    let mut config = WorldConfig::dual_stack(seed);
    config.capture = true;
    config.router.link = LinkConfig {
        loss: 0.02,
        reorder: 0.2,
        reorder_delay: Duration::from_millis(5),
        ..LinkConfig::clean()
    };
    let mut world = World::new(config);
    let client = world.add_client(|c| c.protocol = Protocol::Ikago2);
    let six = world.add_lan_host(client, HostConfig::lan6("six", addr::lan6(2)));
    let dual = world.add_lan_host(client, dual_stack_lan("dual", 3));
    add_dual_stack_far(&mut world);
    world.run_for(Duration::from_secs(1));
    let echo4 = SocketAddr::new(addr::internet(2).into(), ECHO);
    for n in 0..30u8 {
        world.host_mut(six).udp_send(5000, echo6(), &[n; 300]);
        world.host_mut(dual).udp_send(5000, echo6(), &[n; 200]);
        world.host_mut(dual).udp_send(5001, echo4, &[n; 100]);
        world
            .host_mut(six)
            .ping(addr::internet6(2), IDENT, u16::from(n), &[n; 32]);
        world.run_for(Duration::from_millis(20));
    }
    world.run_for(Duration::from_secs(3));
    world
}

#[test]
fn a_seed_replays_exactly_with_ipv6_traffic() {
    let (first, second) = (run(66), run(66));
    assert_eq!(first.events(), second.events());
    for (x, y) in first.capture().taps.iter().zip(&second.capture().taps) {
        assert!(!x.frames.is_empty(), "{}", x.name);
        assert!(x.frames == y.frames, "{} differs", x.name);
    }
    assert_eq!(first.drops(), second.drops());
    let upstream = &first
        .capture()
        .tap("server.upstream")
        .expect("a tap")
        .frames;
    assert!(
        upstream
            .iter()
            .any(|f| f.direction == Direction::Out && f.data[12..14] == [0x86, 0xdd]),
        "IPv6 left the server"
    );
    let other = run(67);
    assert_ne!(
        first.capture().taps[0].frames,
        other.capture().taps[0].frames,
        "another seed differs"
    );
}

#[test]
fn a_published_ipv6_gateway_is_answered_by_proxy_ndp() {
    let gateway = addr::lan6(0xfe);
    let mut world = World::new(WorldConfig::dual_stack(68));
    let client = world.add_client(|c| {
        c.protocol = Protocol::Ikago2;
        c.publish6 = vec![gateway];
    });
    let pc = world.add_lan_host(
        client,
        HostConfig::ipv6_only(
            "pc",
            HostIpv6 {
                gateway: Some(gateway),
                ..HostIpv6::lan(addr::lan6(2))
            },
        ),
    );
    let far = world.add_internet_host(HostConfig::internet6("far", addr::internet6(2)));
    world.host_mut(far).udp_echo(ECHO);
    connect(&mut world, client);
    exchange(&mut world, pc, 5000, echo6(), b"via the published gateway");
    assert_eq!(
        world.host(pc).payloads_on(5000),
        [b"via the published gateway"]
    );
}
