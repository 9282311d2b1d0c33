//! `tcp` mode: the tunnel in kernel TCP connections that bypass the router (which blocks UDP and
//! ICMP), read in pieces of random size (parts of records, several records at once); UDP, a real
//! TCP connection and a ping from a LAN host, two clients, and a server restart

mod common;

use common::{Basic, connect, events_of, exchange, payload};
use ikago_proto::{Event, Method, PeerLostReason, Transport};
use ikago_sim::{HostConfig, Origin, Transfer, WorldConfig, addr};
use std::net::SocketAddr;
use std::time::Duration;

/// A World whose server and client run `tcp` mode (plain: the original's framing); reads of 1 to
/// `read_max` bytes
fn tcp_world(seed: u64, read_max: usize) -> Basic {
    let mut config = WorldConfig::new(seed);
    config.server.transport = Transport::Tcp;
    config.server.method = Method::Plain;
    config.server.password.clear();
    config.stream_read_max = read_max;
    config.capture = true;
    Basic::with_client(config, |c| c.transport = Transport::Tcp)
}

#[test]
fn udp_crosses_in_reads_of_every_size() {
    // 1-byte reads cut every record; 3 bytes cut the length field; 64 KiB reads join records
    for (seed, read_max) in [(1, 1), (2, 3), (3, 700), (4, 65_536)] {
        let mut b = tcp_world(seed, read_max);
        connect(&mut b.world, b.client);
        let to = b.echo_addr();
        let sent: Vec<Vec<u8>> = [20, 1300, 1472, 1, 600]
            .iter()
            .enumerate()
            .map(|(i, &n)| payload(i as u8, n))
            .collect();
        for p in &sent {
            b.world.host_mut(b.pc).udp_send(5000, to, p);
        }
        b.world.run_until(
            |w| w.host(b.pc).payloads_on(5000).len() == sent.len(),
            200_000,
        );
        assert_eq!(
            b.world.host(b.pc).payloads_on(5000),
            sent,
            "reads of 1-{read_max}"
        );
        let (c, s) = (b.world.client(b.client).stats(), b.world.server().stats());
        assert_eq!(c.transport, Transport::Tcp);
        assert_eq!(c.drops.total(), 0, "{}", c.drops);
        assert_eq!(s.drops.total(), 0, "{}", s.drops);
        assert_eq!(s.peers.len(), 1);
        assert!(
            b.world
                .capture()
                .taps
                .iter()
                .all(|t| !t.name.ends_with(".wan") || t.frames.is_empty()),
            "no tunnel frames on the WAN devices"
        );
    }
}

#[test]
fn tcp_and_ping_cross() {
    let mut b = tcp_world(5, 1000);
    connect(&mut b.world, b.client);
    let far = b.world.host(b.far).config().addr.expect("an IPv4 host");
    let up = Transfer {
        send_seed: 1,
        send_len: 256 * 1024,
        expect_seed: 2,
        expect_len: 256 * 1024,
    };
    let down = Transfer {
        send_seed: 2,
        send_len: 256 * 1024,
        expect_seed: 1,
        expect_len: 256 * 1024,
    };
    b.world.host_mut(b.far).tcp_listen(8080, down);
    b.world
        .host_mut(b.pc)
        .tcp_connect(40000, SocketAddr::from((far, 8080)), up);
    let took = b.world.run_until(
        |w| {
            let done = |h| w.host(h).tcp_streams().iter().all(|s| s.is_complete());
            done(b.pc) && done(b.far)
        },
        400_000,
    );
    println!("measured: 256 KiB each way over tcp mode in {took:?}");
    for seq in 0..3 {
        b.world.host_mut(b.pc).ping(far, 77, seq, b"ping");
    }
    b.world
        .run_until(|w| w.host(b.pc).echo_replies().len() == 3, 100_000);
}

#[test]
fn two_clients_share_the_server() {
    let mut b = tcp_world(6, 1500);
    let second = b.world.add_client(|c| c.transport = Transport::Tcp);
    let pc2 = b
        .world
        .add_lan_host(second, HostConfig::lan("pc2", addr::lan(3)));
    connect(&mut b.world, b.client);
    connect(&mut b.world, second);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"first");
    exchange(&mut b.world, pc2, 5001, to, b"second");
    assert_eq!(b.world.host(b.pc).payloads_on(5000), [b"first"]);
    assert_eq!(b.world.host(pc2).payloads_on(5001), [b"second"]);
    assert_eq!(b.world.server().stats().peers.len(), 2);
}

#[test]
fn a_server_restart_closes_and_the_client_reconnects() {
    let mut b = tcp_world(7, 1500);
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"before");
    b.world.restart_server(2);
    let client = b.client;
    let took = b
        .world
        .run_until(|w| w.client(client).stats().handshakes >= 2, 100_000);
    println!("measured: reconnected {took:?} after the server restart");
    assert!(
        took <= Duration::from_millis(1100),
        "one backoff (1 s): {took:?}"
    );
    let lost = events_of(&b.world, Origin::Client(0)).into_iter().any(|e| {
        e == Event::PeerLost {
            server: SocketAddr::from((addr::SERVER_WAN, addr::SERVER_PORT)),
            reason: PeerLostReason::Closed,
        }
    });
    assert!(lost, "{}", b.world.summary());
    exchange(&mut b.world, b.pc, 5000, to, b"after");
    assert_eq!(
        b.world.host(b.pc).payloads_on(5000),
        [&b"before"[..], &b"after"[..]]
    );
}

#[test]
fn a_stopped_server_refuses_and_the_client_backs_off() {
    let mut b = tcp_world(8, 1500);
    connect(&mut b.world, b.client);
    b.world.stop_server();
    b.world.restart_server(3);
    b.world.stop_server();
    b.world.run_for(Duration::from_secs(12));
    let attempts = events_of(&b.world, Origin::Client(0))
        .iter()
        .filter(|e| matches!(e, Event::Connecting { .. }))
        .count();
    // the first connect, then 1 s, 2 s, 4 s, 4 s after each refusal: 5 in 12 s
    assert_eq!(attempts, 5, "{}", b.world.summary());
    b.world.restart_server(4);
    let client = b.client;
    b.world
        .run_until(|w| w.client(client).is_connected(), 100_000);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"back");
}
