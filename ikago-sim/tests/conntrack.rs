//! Through a strict conntrack middlebox (Linux `nf_conntrack_tcp_loose=0`, INVALID dropped): a
//! one-way flow needs ACKs that advance, the client must stay inside the server's advertised
//! window, and a reconnection on the same port must resynchronise the middlebox

mod common;

use common::{Basic, connect, exchange};
use ikago_proto::{Event, Method, TcpTuning};
use ikago_sim::{
    ConntrackInvalid, LinkConfig, Origin, RouterConfig, SimDrop, World, WorldConfig, stream_bytes,
};
use std::net::SocketAddrV4;
use std::time::Duration;

/// The seed of the World and of the flows' bytes
const SEED: u64 = 14;
/// The port the Internet host records the flows on
const SINK_PORT: u16 = 9999;
/// UDP payload of the flows (1428-byte inner packets)
const DATAGRAM: usize = 1400;

/// A connected World whose router runs strict conntrack, both machines tuned with `tuning`,
/// after `idle` of silence; plain method (debug-build AEAD would dominate the run time)
fn strict_world(idle: Duration, tuning: TcpTuning) -> Basic {
    let mut config = WorldConfig::new(SEED);
    config.router = RouterConfig {
        conntrack: true,
        ..RouterConfig::firewall()
    };
    config.server.method = Method::Plain;
    config.server.tcp = tuning;
    let mut b = Basic::with_client(config, |c| c.tcp = tuning);
    b.world.host_mut(b.far).udp_bind(SINK_PORT);
    connect(&mut b.world, b.client);
    b.world.run_for(idle);
    b
}

/// Sends `total` bytes of the seeded stream to the sink, one 1400-byte datagram every 100 µs,
/// then lets a second pass; returns the number of datagrams sent
fn send_one_way(b: &mut Basic, total: usize) -> usize {
    let to = SocketAddrV4::new(
        b.world.host(b.far).config().addr.expect("an IPv4 host"),
        SINK_PORT,
    );
    let (mut offset, mut count) = (0, 0);
    while offset < total {
        let len = DATAGRAM.min(total - offset);
        let data = stream_bytes(SEED, offset as u64, len);
        b.world.host_mut(b.pc).udp_send(5000, to, &data);
        b.world.run_for(Duration::from_micros(100));
        offset += len;
        count += 1;
    }
    b.world.run_for(Duration::from_secs(1));
    count
}

/// Asserts that the sink received exactly the stream of `total` bytes and that conntrack found
/// nothing INVALID
fn assert_arrived_whole(b: &Basic, total: usize, sent: usize) {
    let got = b.world.host(b.far).payloads_on(SINK_PORT);
    assert_eq!(got.len(), sent, "{}", b.world.summary());
    let joined = got.concat();
    assert!(
        joined == stream_bytes(SEED, 0, total),
        "the flow arrived altered"
    );
    assert_eq!(
        b.world.drops().conntrack_invalid(),
        0,
        "{}",
        b.world.summary()
    );
}

#[test]
fn ten_megabytes_one_way_through_strict_conntrack() {
    // after a keepalive exchange, so the flow starts on an established, idle connection
    let mut b = strict_world(Duration::from_secs(6), TcpTuning::default());
    let total = 10 << 20;
    let sent = send_one_way(&mut b, total);
    assert_arrived_whole(&b, total, sent);
    assert_eq!(
        b.world
            .drops()
            .get(SimDrop::Conntrack(ConntrackInvalid::SeqOverUpperBound)),
        0
    );
}

#[test]
fn without_delayed_acks_the_client_stays_inside_the_advertised_window() {
    // neither side sends a pure ACK: only the window the server advertised bounds the client
    let no_acks = TcpTuning {
        ack_bytes: u32::MAX,
        ack_delay: Duration::from_secs(3600),
        ..TcpTuning::default()
    };
    let mut b = strict_world(Duration::ZERO, no_acks);
    let total = 1 << 20;
    let sent = send_one_way(&mut b, total);
    assert_arrived_whole(&b, total, sent);
}

#[test]
fn reconnect_on_the_same_port_after_a_blackout() {
    let mut b = strict_world(Duration::ZERO, TcpTuning::default());
    let to = b.echo_addr();
    let port = b.world.client(b.client).local_addr().port();
    exchange(&mut b.world, b.pc, 5000, to, b"before");
    // everything on the link is lost until the client gives the server up
    b.world.set_link(LinkConfig {
        loss: 1.0,
        ..LinkConfig::clean()
    });
    let lost = |w: &World| {
        w.events()
            .iter()
            .any(|e| e.origin == Origin::Client(0) && matches!(e.event, Event::PeerLost { .. }))
    };
    b.world.run_until(lost, 100_000);
    b.world.set_link(LinkConfig::clean());
    // the middlebox still holds the old connection: the new SYN on the same port is ignored by
    // it, and the server's SYN+ACK resynchronises it
    let client = b.client;
    b.world
        .run_until(|w| w.client(client).is_connected(), 100_000);
    exchange(&mut b.world, b.pc, 5000, to, b"after");
    assert_eq!(
        b.world.host(b.pc).payloads_on(5000),
        [&b"before"[..], &b"after"[..]]
    );
    assert_eq!(b.world.client(client).local_addr().port(), port);
    assert_eq!(
        b.world.drops().conntrack_invalid(),
        0,
        "{}",
        b.world.summary()
    );
}

#[test]
fn fast_flow_right_after_the_handshake() {
    let mut b = strict_world(Duration::ZERO, TcpTuning::default());
    let total = 1 << 20;
    let sent = send_one_way(&mut b, total);
    assert_arrived_whole(&b, total, sent);
}
