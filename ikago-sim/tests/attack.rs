//! Attacks from a spoofer past the firewall: a SYN flood that must not lock clients out, blind
//! SYNs and RSTs on a live connection, a client that really restarted on the same 4-tuple, a
//! wrong password, and corruption on the plain method

mod common;

use common::{Basic, connect, events_of, exchange, payload};
use etherparse::PacketBuilder;
use ikago_proto::{DropReason, Event, Method};
use ikago_sim::{Origin, WorldConfig, addr};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// TCP flags of a spoofed segment
#[derive(Clone, Copy)]
enum Kind {
    Syn,
    Rst,
    Data { ack: u32 },
}

/// A TCP frame from `src` to the server, as the router would forward it
fn segment(src: SocketAddr, seq: u32, kind: Kind, payload: &[u8]) -> Vec<u8> {
    let SocketAddr::V4(src) = src else {
        panic!("an IPv4 tunnel address: {src}")
    };
    let b = PacketBuilder::ethernet2(
        addr::mac(addr::TAG_SERVER_WAN, addr::ROUTER_OUTSIDE),
        addr::mac(addr::TAG_SERVER_WAN, addr::SERVER_WAN),
    )
    .ipv4(src.ip().octets(), addr::SERVER_WAN.octets(), 63)
    .tcp(src.port(), addr::SERVER_PORT, seq, 64240);
    let b = match kind {
        Kind::Syn => b.syn(),
        Kind::Rst => b.rst(),
        Kind::Data { ack } => b.psh().ack(ack),
    };
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("a Vec grows");
    out
}

/// A random source in the clients' WAN subnet (198.18.12.0/24)
fn spoofed(rng: &mut ChaCha8Rng) -> SocketAddrV4 {
    let r = rng.next_u32();
    let ip = Ipv4Addr::new(198, 18, 12, 2 + (r % 250) as u8);
    SocketAddrV4::new(ip, 1024 + (r >> 16) as u16 % 64000)
}

#[test]
fn a_syn_flood_neither_drops_a_live_client_nor_keeps_a_new_one_out() {
    let mut b = Basic::new(WorldConfig::new(21));
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"before");
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut newcomer = None;
    // 100,000 spoofed SYNs over 10 s, 1,000 every 100 ms
    for round in 0..100u32 {
        for _ in 0..1000 {
            let frame = segment(spoofed(&mut rng).into(), rng.next_u32(), Kind::Syn, &[]);
            b.world.inject_server_wan(&frame);
        }
        b.world.run_for(Duration::from_millis(100));
        if round == 30 {
            assert_eq!(
                b.world.server().half_open(),
                256,
                "the half-open table is full: the newcomer needs a cookie"
            );
            let c = b.world.add_client(|_| {});
            let h = b
                .world
                .add_lan_host(c, ikago_sim::HostConfig::lan("pc2", addr::lan(3)));
            newcomer = Some((c, h));
        }
        if round % 10 == 9 {
            // the live client's echo comes back in the middle of the flood
            exchange(&mut b.world, b.pc, 5000, to, &payload(round as u8, 64));
        }
        assert!(b.world.server().half_open() <= 256);
    }
    let (c, h) = newcomer.expect("added in round 30");
    assert!(
        b.world.client(c).is_connected(),
        "the new client connected during the flood\n{}",
        b.world.summary()
    );
    exchange(&mut b.world, h, 6000, to, b"newcomer");
    let stats = b.world.server().stats();
    println!(
        "measured: {} handshakes, drops {}",
        stats.handshakes, stats.drops
    );
    assert_eq!(stats.drops.get(DropReason::TooManyClients), 0);
    assert_eq!(b.world.server().clients().count(), 2);
    // the half-open entries expire within seconds
    b.world.run_for(Duration::from_secs(7));
    assert_eq!(b.world.server().half_open(), 0);
}

#[test]
fn syns_beyond_the_budget_are_not_answered() {
    let mut b = Basic::new(WorldConfig::new(22));
    connect(&mut b.world, b.client);
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let before = b.world.server().stats().tunnel_tx.packets;
    for _ in 0..30_000 {
        let frame = segment(spoofed(&mut rng).into(), rng.next_u32(), Kind::Syn, &[]);
        b.world.inject_server_wan(&frame);
    }
    b.world.run_for(Duration::from_millis(10));
    let stats = b.world.server().stats();
    let answered = stats.tunnel_tx.packets - before;
    assert_eq!(stats.drops.get(DropReason::SynRate), 10_000);
    assert_eq!(answered, 20_000, "one SYN+ACK per SYN within the budget");
    // the budget comes back the next second, and the live client never noticed
    b.world.run_for(Duration::from_secs(1));
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"after");
    assert_eq!(b.world.server().stats().handshakes, 1);
}

#[test]
fn blind_syns_and_rsts_on_the_live_tuple_change_nothing() {
    let mut b = Basic::new(WorldConfig::new(23));
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"before");
    let tuple = b.world.client(b.client).local_addr();
    let mut rng = ChaCha8Rng::seed_from_u64(23);
    for _ in 0..10 {
        for _ in 0..1000 {
            let kind = if rng.next_u32() % 2 == 0 {
                Kind::Syn
            } else {
                Kind::Rst
            };
            b.world
                .inject_server_wan(&segment(tuple, rng.next_u32(), kind, &[]));
        }
        b.world.run_for(Duration::from_millis(200));
    }
    exchange(&mut b.world, b.pc, 5000, to, b"after");
    let stats = b.world.server().stats();
    println!("measured: server drops {}", stats.drops);
    assert_eq!(stats.handshakes, 1, "no handshake re-run");
    let connects = events_of(&b.world, Origin::Server)
        .iter()
        .filter(|e| matches!(e, Event::ClientConnected { .. }))
        .count();
    assert_eq!(connects, 1);
    let lost = events_of(&b.world, Origin::Client(0))
        .iter()
        .any(|e| matches!(e, Event::PeerLost { .. }));
    assert!(!lost, "{}", b.world.summary());
    // challenge ACKs answered some, at a bounded rate; RSTs far off were ignored
    let challenged = stats.drops.get(DropReason::Challenged);
    assert!(challenged > 0 && challenged <= 100 * 3, "{challenged}");
    assert!(stats.drops.get(DropReason::BadReset) > 0);
}

#[test]
fn a_client_restarted_on_the_same_tuple_recovers_at_once() {
    let mut b = Basic::with_client(WorldConfig::new(24), |c| c.port = 40000);
    let rtt = connect(&mut b.world, b.client);
    let to = b.echo_addr();
    exchange(&mut b.world, b.pc, 5000, to, b"before");
    b.world.run_for(Duration::from_millis(100));
    b.world.restart_client(b.client, 0x5eed);
    let took = connect(&mut b.world, b.client);
    // SYN and challenge ACK, then RST, the SYN again and SYN+ACK: one round trip more than a
    // first handshake, no timer
    println!("measured: the restarted client reconnected in {took:?} (round trip {rtt:?})");
    assert!(took <= rtt * 2 + Duration::from_millis(1), "{took:?}");
    exchange(&mut b.world, b.pc, 5000, to, b"after");
    assert_eq!(b.world.server().stats().handshakes, 2);
    assert_eq!(b.world.server().clients().count(), 1);
}

#[test]
fn a_wrong_password_is_reported_on_both_ends() {
    let mut b = Basic::with_client(WorldConfig::new(25), |c| c.password = "wrong".into());
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    for n in 0..20u8 {
        b.world.host_mut(b.pc).udp_send(5000, to, &payload(n, 64));
        b.world.run_for(Duration::from_millis(500));
    }
    assert!(b.world.host(b.pc).payloads_on(5000).is_empty());
    let reported = |origin| {
        events_of(&b.world, origin)
            .iter()
            .filter(|e| matches!(e, Event::Unopenable { .. }))
            .count()
    };
    assert_eq!(reported(Origin::Client(0)), 1, "{}", b.world.summary());
    assert_eq!(reported(Origin::Server), 1, "{}", b.world.summary());
    assert_eq!(b.world.client(b.client).stats().unopenable, 1);
    assert_eq!(b.world.server().stats().unopenable, 1);
}

#[test]
fn a_right_password_reports_nothing() {
    let mut b = Basic::new(WorldConfig::new(26));
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    for n in 0..20u8 {
        exchange(&mut b.world, b.pc, 5000, to, &payload(n, 64));
        b.world.run_for(Duration::from_millis(500));
    }
    assert!(
        !b.world
            .events()
            .iter()
            .any(|e| matches!(e.event, Event::Unopenable { .. }))
    );
    assert_eq!(b.world.server().stats().unopenable, 0);
}

#[test]
fn plain_drops_a_corrupted_segment_and_forwards_an_intact_one() {
    let mut config = WorldConfig::new(27);
    config.server.method = Method::Plain;
    config.server.password.clear();
    let mut b = Basic::new(config);
    connect(&mut b.world, b.client);
    let tuple = b.world.client(b.client).local_addr();
    let far = b.echo_addr();
    // an inner UDP datagram from the LAN host to the echo service, spoofed on the live tuple
    let inner = {
        let u =
            PacketBuilder::ipv4(addr::lan(2).octets(), far.ip().octets(), 64).udp(5000, far.port());
        let mut v = Vec::new();
        u.write(&mut v, b"spoofed").unwrap();
        v
    };
    let mut corrupted = segment(tuple, 7, Kind::Data { ack: 0 }, &inner);
    corrupted[14 + 20 + 16] ^= 0x55;
    b.world.inject_server_wan(&corrupted);
    b.world.run_for(Duration::from_millis(10));
    let stats = b.world.server().stats();
    assert_eq!(stats.drops.get(DropReason::BadChecksum), 1);
    assert_eq!(stats.inner_rx.packets, 0);
    // the same segment intact is forwarded
    b.world
        .inject_server_wan(&segment(tuple, 7, Kind::Data { ack: 0 }, &inner));
    b.world.run_for(Duration::from_millis(10));
    assert_eq!(b.world.server().stats().inner_rx.packets, 1);
}
