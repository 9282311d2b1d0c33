//! The server's full-cone NAT: any Internet host reaches a mapped port, and idle mappings expire

mod common;

use common::{Basic, connect, events_of, exchange};
use ikago_proto::{DropReason, Event};
use ikago_sim::{HostConfig, Origin, World, WorldConfig, addr};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

/// UDP's IP protocol number
const UDP: u8 = 17;

/// The public address the server mapped the inner UDP source `inner` to
fn udp_mapping(world: &World, inner: SocketAddrV4) -> SocketAddrV4 {
    let found = world
        .events()
        .iter()
        .filter(|e| e.origin == Origin::Server)
        .find_map(|e| match e.event {
            Event::NatMapped {
                protocol: UDP,
                inner: i,
                public,
                ..
            } if i == SocketAddr::V4(inner) => match public {
                SocketAddr::V4(p) => Some(p),
                SocketAddr::V6(_) => None,
            },
            _ => None,
        });
    found.unwrap_or_else(|| panic!("{}no UDP mapping for {inner}", world.summary()))
}

#[test]
fn full_cone_third_host_reaches_the_mapped_port() {
    let mut b = Basic::new(WorldConfig::new(7));
    let y = b
        .world
        .add_internet_host(HostConfig::internet("y", addr::internet(3)));
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"open the mapping");
    let public = udp_mapping(&b.world, SocketAddrV4::new(addr::lan(2), 5000));
    assert_eq!(*public.ip(), addr::SERVER_PUBLIC);
    // a host the LAN host never talked to
    b.world
        .host_mut(y)
        .udp_send(9000, public, b"unsolicited, from y");
    b.world
        .run_until(|w| w.host(b.pc).datagrams().len() == 2, 20_000);
    b.world.run_for(Duration::from_secs(1));
    let got = b.world.host(b.pc).datagrams();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[1].from,
        SocketAddrV4::new(addr::internet(3), 9000).into()
    );
    assert_eq!(got[1].port, 5000);
    assert_eq!(got[1].payload, b"unsolicited, from y");
}

#[test]
fn idle_udp_mapping_expires() {
    let mut b = Basic::new(WorldConfig::new(13));
    let timeout = Duration::from_secs(120);
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"before the timeout");
    let public = udp_mapping(&b.world, SocketAddrV4::new(addr::lan(2), 5000));
    let expired = |w: &World| {
        events_of(w, Origin::Server)
            .iter()
            .any(|e| matches!(e, Event::NatExpired { protocol: UDP, public: p } if *p == SocketAddr::V4(public)))
    };
    b.world.run_for(timeout - Duration::from_secs(1));
    assert!(!expired(&b.world), "expired early");
    b.world.run_for(Duration::from_secs(2));
    assert!(
        expired(&b.world),
        "{}no NatExpired for {public}",
        b.world.summary()
    );
    assert!(
        b.world.client(b.client).is_connected(),
        "keepalives kept the tunnel up meanwhile"
    );
    let before = b.world.server().stats().drops.get(DropReason::NoNatMapping);
    b.world
        .host_mut(b.far)
        .udp_send(7, public, b"after the timeout");
    b.world.run_for(Duration::from_secs(1));
    assert_eq!(
        b.world.server().stats().drops.get(DropReason::NoNatMapping),
        before + 1
    );
    assert_eq!(
        b.world.host(b.pc).payloads_on(5000),
        [b"before the timeout"],
        "nothing delivered after the expiry"
    );
}
