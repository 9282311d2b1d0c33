//! Failover across servers: the client moves to a fallback server when its server stops, or
//! never answers, and returns to the preferred one when configured to

mod common;

use common::{Basic, connect, events_of, exchange, payload};
use ikago_proto::Event;
use ikago_sim::{Origin, WorldConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The first fallback server's tunnel address ([`ikago_sim::World::add_fallback_server`])
const FALLBACK: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 14, 3)), 443);

/// A World whose client has one fallback server, with `failback` if given
fn world(seed: u64, failback: Option<Duration>) -> Basic {
    let mut b = Basic::with_client(WorldConfig::new(seed), |c| {
        c.fallback = vec![FALLBACK];
        c.failback = failback;
    });
    assert_eq!(b.world.add_fallback_server(), FALLBACK);
    b
}

/// Sends a datagram every 200 ms until one is echoed; the time it took
fn until_echoed(b: &mut Basic, limit: Duration) -> Duration {
    let to = b.echo_addr();
    let start = b.world.now();
    let before = b.world.host(b.pc).payloads_on(5000).len();
    let mut n = 0u8;
    while b.world.host(b.pc).payloads_on(5000).len() == before {
        assert!(
            b.world.now() - start < limit,
            "no echo within {limit:?}\n{}",
            b.world.summary()
        );
        b.world.host_mut(b.pc).udp_send(5000, to, &payload(n, 48));
        n = n.wrapping_add(1);
        b.world.run_for(Duration::from_millis(200));
    }
    b.world.now() - start
}

fn switches(b: &Basic) -> Vec<(SocketAddr, SocketAddr)> {
    events_of(&b.world, Origin::Client(0))
        .into_iter()
        .filter_map(|e| match e {
            Event::ServerSwitched { from, to } => Some((from, to)),
            _ => None,
        })
        .collect()
}

#[test]
fn udp_resumes_through_the_fallback_when_the_server_stops() {
    let mut b = world(31, None);
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"before");
    b.world.stop_server();
    let took = until_echoed(&mut b, Duration::from_secs(5));
    println!("measured: UDP echo resumed {took:?} after the server stopped");
    let primary = b.world.client(b.client).stats();
    assert_eq!(switches(&b).len(), 1);
    assert_eq!(primary.server, Some(FALLBACK));
    assert_eq!(primary.server_switches, 1);
    assert_eq!(b.world.fallback_server(0).clients().count(), 1);
}

#[test]
fn a_server_that_never_answers_is_passed_over() {
    let mut b = world(32, None);
    b.world.stop_server();
    let took = connect(&mut b.world, b.client);
    println!("measured: connected to the fallback {took:?} after start");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(b.world.client(b.client).server_addr(), FALLBACK);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"through the fallback");
}

#[test]
fn failback_returns_to_the_preferred_server() {
    let mut b = world(33, Some(Duration::from_secs(10)));
    connect(&mut b.world, b.client);
    b.world.stop_server();
    until_echoed(&mut b, Duration::from_secs(5));
    b.world.restart_server(0x33);
    b.world.run_for(Duration::from_secs(11));
    let primary = b.world.client(b.client).server_addr();
    assert_ne!(primary, FALLBACK, "{}", b.world.summary());
    until_echoed(&mut b, Duration::from_secs(2));
    assert_eq!(switches(&b).len(), 2);
    assert_eq!(b.world.server().clients().count(), 1);
}

#[test]
fn one_server_never_switches() {
    let mut b = Basic::new(WorldConfig::new(34));
    connect(&mut b.world, b.client);
    b.world.stop_server();
    b.world.run_for(Duration::from_secs(30));
    assert!(switches(&b).is_empty());
    assert_eq!(b.world.client(b.client).stats().server_switches, 0);
}
