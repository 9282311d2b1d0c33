//! The ikago2 wire end to end: its handshake under loss and reordering, through a masquerading
//! strict firewall; replayed, truncated and forged records; rekeying under traffic; a server
//! restart mid-session; a wrong password; probes of an ikago2-only server; and a Go-compatible
//! client beside an ikago2 client on one server

mod common;

use common::{Basic, ECHO_PORT, connect, exchange, payload};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use ikago_proto::ikago2::Rekey;
use ikago_proto::{DropReason, Protocol, Stats};
use ikago_sim::{Direction, HostConfig, HostId, LinkConfig, World, WorldConfig, addr};
use std::net::SocketAddrV4;
use std::time::Duration;

/// A World whose server accepts `protocol` (`None`: both) and whose first client speaks ikago2
fn world(seed: u64, protocol: Option<Protocol>) -> Basic {
    let mut config = WorldConfig::new(seed);
    config.server.protocol = protocol;
    config.capture = true;
    Basic::with_client(config, |c| c.protocol = Protocol::Ikago2)
}

/// Sends `n` echoes from `host` (port `port`) and runs until each came back, sending again
/// what a lossy link lost; panics when one never does
fn echoes(world: &mut World, host: HostId, port: u16, to: SocketAddrV4, n: u8) {
    for i in 0..n {
        let want = world.host(host).payloads_on(port).len() + 1;
        let mut tries = 0;
        while world.host(host).payloads_on(port).len() < want {
            tries += 1;
            assert!(tries < 60, "echo {i} never came back");
            world.host_mut(host).udp_send(port, to, &payload(i, 200));
            let until = world.now() + Duration::from_millis(500);
            world.run_until(
                |w| w.host(host).payloads_on(port).len() >= want || w.now() >= until,
                1_000_000,
            );
        }
    }
}

/// The TCP payload and header facts of a frame to the server's tunnel port
struct Seg {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    seq: u32,
    ack: u32,
    payload: Vec<u8>,
}

fn tunnel_segment(frame: &[u8]) -> Option<Seg> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let etherparse::NetSlice::Ipv4(ip) = p.net? else {
        return None;
    };
    let TransportSlice::Tcp(t) = p.transport? else {
        return None;
    };
    (t.destination_port() == addr::SERVER_PORT).then(|| Seg {
        src: ip.header().source(),
        dst: ip.header().destination(),
        sport: t.source_port(),
        seq: t.sequence_number(),
        ack: t.acknowledgment_number(),
        payload: t.payload().to_vec(),
    })
}

/// The data frames the server received from clients so far
fn data_frames_in(world: &World) -> Vec<Vec<u8>> {
    let tap = world.capture().tap("server.wan").expect("capture on");
    tap.frames
        .iter()
        .filter(|f| f.direction == Direction::In)
        .filter(|f| tunnel_segment(&f.data).is_some_and(|s| !s.payload.is_empty()))
        .map(|f| f.data.clone())
        .collect()
}

/// TCP segments the server sent on its WAN device so far (to `to` only, when given)
fn frames_out(world: &World, to: Option<[u8; 4]>) -> usize {
    let tap = world.capture().tap("server.wan").expect("capture on");
    tap.frames
        .iter()
        .filter(|f| f.direction == Direction::Out)
        .filter(|f| {
            SlicedPacket::from_ethernet(&f.data)
                .ok()
                .and_then(|p| p.transport)
                .is_some_and(|t| matches!(t, TransportSlice::Tcp(_)))
        })
        .filter(|f| to.is_none_or(|ip| f.data[30..34] == ip))
        .count()
}

/// A frame to the server as the router forwards it, with `payload` after a PSH+ACK header
fn rebuilt(s: &Seg, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(
        addr::mac(addr::TAG_SERVER_WAN, addr::ROUTER_OUTSIDE),
        addr::mac(addr::TAG_SERVER_WAN, addr::SERVER_WAN),
    )
    .ipv4(s.src, s.dst, 63)
    .tcp(s.sport, addr::SERVER_PORT, s.seq, 64240)
    .psh()
    .ack(s.ack);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).expect("a Vec grows");
    out
}

fn server_drops(world: &World, reason: DropReason) -> u64 {
    world.server().stats().drops.get(reason)
}

fn protocols(stats: &Stats) -> Vec<Option<Protocol>> {
    stats.peers.iter().map(|p| p.protocol).collect()
}

#[test]
fn handshake_completes_under_loss_and_reordering_through_a_masquerading_strict_firewall() {
    let mut config = WorldConfig::new(71);
    config.server.protocol = Some(Protocol::Ikago2);
    config.router.masquerade = true;
    config.router.conntrack = true;
    let mut b = Basic::with_client(config, |c| c.protocol = Protocol::Ikago2);
    b.world.set_link(LinkConfig {
        loss: 0.2,
        reorder: 0.3,
        reorder_delay: Duration::from_millis(30),
        ..LinkConfig::clean()
    });
    b.world
        .run_until(|w| w.client(b.client).is_connected(), 5_000_000);
    assert_eq!(b.world.client(b.client).protocol(), Protocol::Ikago2);
    let to = b.echo_addr();
    echoes(&mut b.world, b.pc, 5000, to, 20);
    assert_eq!(
        protocols(&b.world.server().stats()),
        [Some(Protocol::Ikago2)]
    );
    assert_eq!(server_drops(&b.world, DropReason::Unauthenticated), 0);
}

#[test]
fn the_handshake_adds_one_round_trip() {
    let mut compat = Basic::new(WorldConfig::new(72));
    let fake_tcp = connect(&mut compat.world, compat.client);
    let mut b = world(72, None);
    let both = connect(&mut b.world, b.client);
    let rtt = compat
        .world
        .client(compat.client)
        .stats()
        .rtt
        .expect("measured");
    let extra = both.saturating_sub(fake_tcp);
    eprintln!("connect: compat {fake_tcp:?}, ikago2 {both:?} (rtt {rtt:?}, extra {extra:?})");
    assert!(
        extra >= rtt.mul_f64(0.9) && extra <= rtt.mul_f64(1.5),
        "{extra:?} vs {rtt:?}"
    );
}

#[test]
fn replayed_truncated_and_forged_records_have_no_effect_and_are_counted() {
    let mut b = world(73, Some(Protocol::Ikago2));
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    echoes(&mut b.world, b.pc, 5000, to, 5);
    let far = b.far;
    let heard = b.world.host(far).payloads_on(ECHO_PORT).len();
    let captured = data_frames_in(&b.world);
    assert!(captured.len() >= 6, "the initiation and five packets");
    let before = server_drops(&b.world, DropReason::Replayed);
    for f in &captured {
        b.world.inject_server_wan(f);
    }
    b.world.run_for(Duration::from_millis(200));
    // the initiation again is answered as before (no new session); every record is refused
    assert_eq!(
        server_drops(&b.world, DropReason::Replayed) - before,
        captured.len() as u64 - 1
    );
    assert_eq!(b.world.host(far).payloads_on(ECHO_PORT).len(), heard);
    let last = tunnel_segment(captured.last().expect("captured")).expect("a segment");
    let p = &last.payload;
    b.world
        .inject_server_wan(&rebuilt(&last, &p[..p.len() - 5]));
    // a fresh counter (a seen one is refused as a replay before the tag is checked) and a
    // flipped ciphertext bit
    let mut forged = p.clone();
    forged[6] ^= 0x01;
    forged[20] ^= 0x40;
    b.world.inject_server_wan(&rebuilt(&last, &forged));
    let mut future = p.clone();
    future[5] ^= 0x01; // a counter far ahead: the tag no longer matches
    b.world.inject_server_wan(&rebuilt(&last, &future));
    b.world.run_for(Duration::from_millis(200));
    assert_eq!(server_drops(&b.world, DropReason::BadRecord), 1);
    assert_eq!(server_drops(&b.world, DropReason::Unauthenticated), 2);
    assert_eq!(b.world.host(far).payloads_on(ECHO_PORT).len(), heard);
    // the session is unharmed
    echoes(&mut b.world, b.pc, 5000, to, 3);
}

#[test]
fn keys_move_on_under_traffic_both_ways() {
    let rekey = Rekey {
        after_messages: 4,
        ..Rekey::default()
    };
    let mut config = WorldConfig::new(74);
    config.server.ikago2.rekey = rekey;
    config.capture = true;
    let mut b = Basic::with_client(config, |c| {
        c.protocol = Protocol::Ikago2;
        c.ikago2.rekey = rekey;
    });
    connect(&mut b.world, b.client);
    let to = b.echo_addr();
    echoes(&mut b.world, b.pc, 5000, to, 30);
    // the phase byte of transport records (type 3) in both directions
    let tap = b.world.capture().tap("server.wan").expect("capture on");
    let phases = |dir| {
        tap.frames
            .iter()
            .filter(|f| f.direction == dir)
            .filter_map(|f| {
                let p = SlicedPacket::from_ethernet(&f.data).ok()?;
                let TransportSlice::Tcp(t) = p.transport? else {
                    return None;
                };
                let pl = t.payload();
                (pl.len() > 12 && pl[2] == 3).then(|| pl[3])
            })
            .max()
    };
    assert!(
        phases(Direction::In) >= Some(6),
        "{:?}",
        phases(Direction::In)
    );
    assert!(
        phases(Direction::Out) >= Some(6),
        "{:?}",
        phases(Direction::Out)
    );
}

#[test]
fn a_server_restart_mid_session_is_recovered_from() {
    for protocol in [None, Some(Protocol::Ikago2)] {
        let mut b = world(75, protocol);
        connect(&mut b.world, b.client);
        let to = b.echo_addr();
        echoes(&mut b.world, b.pc, 5000, to, 2);
        b.world.restart_server(76);
        // default server: its RST ends the old connection at once; ikago2-only: silence, and
        // the peer timeout
        b.world.host_mut(b.pc).udp_send(5000, to, b"lost");
        b.world
            .run_until(|w| w.client(b.client).stats().handshakes >= 2, 5_000_000);
        echoes(&mut b.world, b.pc, 5000, to, 2);
        assert_eq!(b.world.server().stats().peers.len(), 1, "{protocol:?}");
    }
}

#[test]
fn a_wrong_password_gets_no_session_and_no_answer_and_is_counted() {
    let mut config = WorldConfig::new(77);
    config.server.protocol = Some(Protocol::Ikago2);
    config.capture = true;
    let mut b = Basic::with_client(config, |c| {
        c.protocol = Protocol::Ikago2;
        c.password = "not-the-password".into();
        c.ikago2.psk = None;
    });
    b.world.run_for(Duration::from_secs(10));
    assert!(!b.world.client(b.client).is_connected());
    assert!(server_drops(&b.world, DropReason::SynUnproven) >= 3);
    assert_eq!(frames_out(&b.world, None), 0, "not even a SYN+ACK");
    // on a default server the SYN is answered, the initiation is not
    let mut config = WorldConfig::new(78);
    config.capture = true;
    let mut b = Basic::with_client(config, |c| {
        c.protocol = Protocol::Ikago2;
        c.password = "not-the-password".into();
        c.ikago2.psk = None;
    });
    b.world.run_for(Duration::from_secs(5));
    assert!(!b.world.client(b.client).is_connected());
    assert!(server_drops(&b.world, DropReason::DecryptFailed) >= 2);
    let tap = b.world.capture().tap("server.wan").expect("capture on");
    let answered = tap
        .frames
        .iter()
        .filter(|f| f.direction == Direction::Out)
        .any(|f| {
            SlicedPacket::from_ethernet(&f.data)
                .ok()
                .and_then(|p| p.transport)
                .is_some_and(|t| matches!(t, TransportSlice::Tcp(t) if !t.payload().is_empty()))
        });
    assert!(!answered, "no record came back");
}

#[test]
fn an_ikago2_only_server_answers_no_probe() {
    let mut b = world(79, Some(Protocol::Ikago2));
    let prober = Seg {
        src: [198, 18, 12, 200],
        dst: addr::SERVER_WAN.octets(),
        sport: 40000,
        seq: 12345,
        ack: 0,
        payload: Vec::new(),
    };
    let syn = {
        let b = PacketBuilder::ethernet2(
            addr::mac(addr::TAG_SERVER_WAN, addr::ROUTER_OUTSIDE),
            addr::mac(addr::TAG_SERVER_WAN, addr::SERVER_WAN),
        )
        .ipv4(prober.src, prober.dst, 63)
        .tcp(prober.sport, addr::SERVER_PORT, prober.seq, 64240)
        .syn();
        let mut out = Vec::new();
        b.write(&mut out, &[]).expect("a Vec grows");
        out
    };
    b.world.inject_server_wan(&syn);
    b.world
        .inject_server_wan(&rebuilt(&prober, b"GET / HTTP/1.1\r\n\r\n"));
    b.world.inject_server_wan(&rebuilt(&prober, &[]));
    b.world.run_for(Duration::from_millis(500));
    assert_eq!(
        frames_out(&b.world, Some(prober.src)),
        0,
        "no SYN+ACK, no RST, no ACK"
    );
    assert_eq!(server_drops(&b.world, DropReason::SynUnproven), 1);
    assert_eq!(server_drops(&b.world, DropReason::UnknownPeer), 2);
    // a real client's SYN, replayed from the prober's address, is refused too
    connect(&mut b.world, b.client);
    let first_syn = b
        .world
        .capture()
        .tap("server.wan")
        .expect("capture on")
        .frames
        .iter()
        .find(|f| {
            f.direction == Direction::In
                && tunnel_segment(&f.data).is_some_and(|s| s.src != prober.src && s.ack == 0)
        })
        .map(|f| f.data.clone())
        .expect("the client's SYN");
    let s = tunnel_segment(&first_syn).expect("a segment");
    let mut replay = first_syn.clone();
    // the prober's address in place of the client's, checksums fixed
    replay[26..30].copy_from_slice(&prober.src);
    fix_checksums(&mut replay);
    b.world.inject_server_wan(&replay);
    b.world.run_for(Duration::from_millis(200));
    assert_eq!(
        frames_out(&b.world, Some(prober.src)),
        0,
        "the replayed SYN drew nothing"
    );
    assert_eq!(
        server_drops(&b.world, DropReason::Replayed),
        1,
        "{:x}: {}",
        s.seq,
        b.world.server().stats().drops
    );
}

/// The Internet checksum of `parts` (RFC 1071)
fn checksum(parts: &[&[u8]]) -> [u8; 2] {
    let mut sum = 0u32;
    for p in parts {
        for c in p.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    (!(sum as u16)).to_be_bytes()
}

/// Recomputes the IPv4 header and TCP checksums of an Ethernet frame (a 20-byte IPv4 header)
fn fix_checksums(frame: &mut [u8]) {
    frame[24..26].fill(0);
    let ip = checksum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&ip);
    frame[50..52].fill(0);
    let len = (frame.len() - 34) as u16;
    let pseudo = [&frame[26..34], &[0, 6], &len.to_be_bytes()[..]].concat();
    let tcp = checksum(&[&pseudo, &frame[34..]]);
    frame[50..52].copy_from_slice(&tcp);
}

#[test]
fn a_compatible_client_and_an_ikago2_client_share_one_server() {
    let mut b = world(80, None);
    let go = b.world.add_client(|c| c.protocol = Protocol::Ikago);
    let pc2 = b
        .world
        .add_lan_host(go, HostConfig::lan("pc2", addr::lan(3)));
    connect(&mut b.world, b.client);
    connect(&mut b.world, go);
    let to = b.echo_addr();
    for _ in 0..3 {
        exchange(&mut b.world, b.pc, 5000, to, b"from ikago2");
        exchange(&mut b.world, pc2, 5001, to, b"from the Go wire");
    }
    let mut p = protocols(&b.world.server().stats());
    p.sort();
    assert_eq!(p, [Some(Protocol::Ikago), Some(Protocol::Ikago2)]);
    assert_eq!(b.world.client(go).protocol(), Protocol::Ikago);
}
