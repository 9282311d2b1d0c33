//! Recovery: the handshake over a lossy, reordering link, and a server restart while the client
//! is idle and while it sends

mod common;

use common::{Basic, connect, events_of, exchange, payload};
use ikago_proto::Event;
use ikago_sim::{LinkConfig, Origin, WorldConfig};
use std::time::Duration;

#[test]
fn handshake_survives_loss_and_reordering() {
    let lossy = LinkConfig {
        loss: 0.05,
        duplicate: 0.01,
        reorder: 0.3,
        reorder_delay: Duration::from_millis(30),
        ..LinkConfig::clean()
    };
    let mut retried = 0;
    let mut slowest = Duration::ZERO;
    for seed in 0..64 {
        let mut config = WorldConfig::new(seed);
        config.router.link = lossy;
        let mut b = Basic::new(config);
        let took = connect(&mut b.world, b.client);
        let retries = events_of(&b.world, Origin::Client(0))
            .iter()
            .filter(|e| matches!(e, Event::Connecting { retry, .. } if *retry > 0))
            .count();
        if retries > 0 {
            retried += 1;
            assert!(
                took >= Duration::from_secs(1),
                "a retransmission waits for the RTO"
            );
        }
        slowest = slowest.max(took);
        // the tunnel works once up (FakeTCP does not retransmit inner packets: a clean link)
        b.world.set_link(LinkConfig::clean());
        let to = b.echo_addr();
        let sent: Vec<Vec<u8>> = (1..=3u8)
            .map(|n| payload(n, 100 * usize::from(n)))
            .collect();
        for p in &sent {
            exchange(&mut b.world, b.pc, 5000, to, p);
        }
        let got = b.world.host(b.pc).payloads_on(5000);
        assert_eq!(got, sent, "seed {seed}");
    }
    println!("measured: {retried}/64 handshakes needed a retransmission; slowest {slowest:?}");
    assert!(
        retried > 0,
        "no seed lost a handshake packet: the scenario proves nothing"
    );
    assert!(slowest < Duration::from_secs(8), "{slowest:?}");
}

/// Runs until the client has completed `n` handshakes; returns the virtual time it took
fn until_handshakes(b: &mut Basic, n: u64) -> Duration {
    let client = b.client;
    b.world
        .run_until(|w| w.client(client).stats().handshakes >= n, 100_000)
}

#[test]
fn client_recovers_from_a_server_restart_while_idle() {
    let mut b = Basic::new(WorldConfig::new(11));
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"before");
    b.world.run_for(Duration::from_secs(2));
    b.world.restart_server(2);
    let recovery = until_handshakes(&mut b, 2);
    println!("measured: idle client reconnected {recovery:?} after the server restart");
    assert!(recovery < Duration::from_secs(10), "{recovery:?}");
    let lost = events_of(&b.world, Origin::Client(0))
        .iter()
        .any(|e| matches!(e, Event::PeerLost { .. }));
    assert!(lost, "{}", b.world.summary());
    exchange(&mut b.world, b.pc, 5000, to, b"after");
    assert_eq!(
        b.world.host(b.pc).payloads_on(5000),
        [&b"before"[..], &b"after"[..]]
    );
    assert_eq!(
        b.world.server().stats().handshakes,
        1,
        "the new server saw one handshake"
    );
}

#[test]
fn client_recovers_from_a_server_restart_under_traffic() {
    let mut b = Basic::new(WorldConfig::new(12));
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"before");
    b.world.restart_server(0xbeef);
    let start = b.world.now();
    // one datagram a second until one is answered
    let mut sent = 0u8;
    while b.world.host(b.pc).payloads_on(5000).len() < 2 {
        assert!(
            b.world.now() - start < Duration::from_secs(10),
            "no answer 10 s after the restart\n{}",
            b.world.summary()
        );
        b.world
            .host_mut(b.pc)
            .udp_send(5000, to, &payload(sent, 32));
        sent += 1;
        for _ in 0..10 {
            b.world.run_for(Duration::from_millis(100));
            if b.world.host(b.pc).payloads_on(5000).len() >= 2 {
                break;
            }
        }
    }
    let recovery = b.world.now() - start;
    let reconnected = b
        .world
        .events()
        .iter()
        .filter(|e| e.origin == Origin::Client(0) && e.at >= start)
        .find(|e| matches!(e.event, Event::Connected { .. }))
        .map(|e| e.at - start);
    println!(
        "measured: reconnected {reconnected:?}, first answer within {recovery:?} after the server restart ({sent} datagrams sent)"
    );
    assert!(
        reconnected.is_some_and(|t| t < Duration::from_millis(100)),
        "{reconnected:?}"
    );
    assert!(recovery < Duration::from_secs(10), "{recovery:?}");
    let got = b.world.host(b.pc).payloads_on(5000);
    assert_eq!(got[1], payload(sent - 1, 32));
}
