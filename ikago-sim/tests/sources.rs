//! Several LAN sources, several clients behind one masquerading NAT, and proxy ARP

mod common;

use common::{Basic, connect, events_of, payload};
use ikago_proto::{Event, Peer};
use ikago_sim::{HostConfig, Origin, World, WorldConfig, addr};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

#[test]
fn two_sources_behind_one_client() {
    let mut b = Basic::new(WorldConfig::new(5));
    let tv = b
        .world
        .add_lan_host(b.client, HostConfig::lan("tv", addr::lan(3)));
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    let (from_pc, from_tv) = (payload(10, 100), payload(20, 200));
    b.world.host_mut(b.pc).udp_send(6000, to, &from_pc);
    b.world.host_mut(tv).udp_send(6000, to, &from_tv);
    b.world.run_until(
        |w| {
            [b.pc, tv]
                .iter()
                .all(|&h| w.host(h).payloads_on(6000).len() == 1)
        },
        20_000,
    );
    b.world.run_for(Duration::from_secs(1));
    assert_eq!(b.world.host(b.pc).payloads_on(6000), [&from_pc[..]]);
    assert_eq!(b.world.host(tv).payloads_on(6000), [&from_tv[..]]);
    let far = b.world.host(b.far);
    // both sources use port 6000: the server gives each its own public port
    let public_ports: BTreeSet<u16> = far.datagrams().iter().map(|d| d.from.port()).collect();
    assert_eq!(public_ports.len(), 2, "each source has its own mapping");
    let peers: Vec<Peer> = b
        .world
        .client(b.client)
        .stats()
        .peers
        .iter()
        .map(|p| p.peer)
        .collect();
    assert_eq!(
        peers,
        [
            Peer::Source(addr::lan(2).into()),
            Peer::Source(addr::lan(3).into())
        ]
    );
}

#[test]
fn two_clients_behind_one_masquerading_nat() {
    let mut config = WorldConfig::new(6);
    config.router.masquerade = true;
    let mut world = World::new(config);
    // identical clients: same LAN, same addresses, same FakeTCP port
    let a = world.add_client(|c| c.port = 50000);
    let b = world.add_client(|c| c.port = 50000);
    let pc_a = world.add_lan_host(a, HostConfig::lan("pc-a", addr::lan(2)));
    let pc_b = world.add_lan_host(b, HostConfig::lan("pc-b", addr::lan(2)));
    let far = world.add_internet_host(HostConfig::internet("far", addr::internet(2)));
    world.host_mut(far).udp_echo(7);
    world.run_until(
        |w| w.client(a).is_connected() && w.client(b).is_connected(),
        20_000,
    );
    let to = SocketAddr::from((addr::internet(2), 7));
    let (msg_a, msg_b) = (
        b"from behind the NAT: A".to_vec(),
        b"from behind the NAT: B".to_vec(),
    );
    world.host_mut(pc_a).udp_send(5000, to, &msg_a);
    world.host_mut(pc_b).udp_send(5000, to, &msg_b);
    world.run_until(
        |w| {
            [pc_a, pc_b]
                .iter()
                .all(|&h| w.host(h).payloads_on(5000).len() == 1)
        },
        20_000,
    );
    world.run_for(Duration::from_secs(1));
    assert_eq!(world.host(pc_a).payloads_on(5000), [&msg_a[..]]);
    assert_eq!(world.host(pc_b).payloads_on(5000), [&msg_b[..]]);
    let clients: BTreeSet<SocketAddr> = world.server().clients().collect();
    let expected = BTreeSet::from([
        SocketAddr::from((addr::ROUTER_OUTSIDE, 50000)),
        SocketAddr::from((addr::ROUTER_OUTSIDE, 50001)),
    ]);
    assert_eq!(
        clients, expected,
        "the server tells the clients apart by the NAT's port"
    );
}

#[test]
fn proxy_arp_gateway_nobody_owns() {
    let gateway = addr::lan(254);
    let mut b = Basic::with_client(WorldConfig::new(9), |c| c.publish = vec![gateway]);
    let mut cfg = HostConfig::lan("console", addr::lan(3));
    cfg.gateway = Some(gateway);
    let console = b.world.add_lan_host(b.client, cfg);
    connect(&mut b.world, b.client);
    let msg = payload(30, 64);
    let to = b.echo_addr();
    b.world.host_mut(console).udp_send(7000, to, &msg);
    b.world
        .run_until(|w| !w.host(console).payloads_on(7000).is_empty(), 20_000);
    assert_eq!(b.world.host(console).payloads_on(7000), [&msg[..]]);
    let replied = events_of(&b.world, Origin::Client(0)).iter().any(|e| {
        matches!(e, Event::ArpReplied { publish, requester } if *publish == gateway && *requester == addr::lan(3))
    });
    assert!(replied, "no ArpReplied for {gateway}");
}
