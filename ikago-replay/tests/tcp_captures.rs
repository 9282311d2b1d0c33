//! `tcp` mode captures: `tests/data/20-tcp-plain-lab`, our runners in `--mode tcp` captured on
//! every leg of the lab (`ikago-lab/tests/tcp_mode.rs` with `IKAGO_LAB_TCP_CAPTURE`), replayed
//! through our client and server from the reassembled TCP streams

mod common;

use common::*;
use ikago_proto::Transport;
use ikago_replay::Role;
use ikago_replay::stream::{End, Kind, reassemble};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

const S: &str = "20-tcp-plain-lab";
const HOST_A_MAC: [u8; 6] = [2, 0, 0, 0, 0x15, 2];
const CLIENT_LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0x15, 1];
const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 23, 2)), 18081);
const NAT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 24, 1);

/// The IPv4 packets host A sent on lan0 to a remote host (through the tunnel)
fn sent_by_host_a() -> Vec<Vec<u8>> {
    ipv4_packets(&capture(S, "client-lan.pcapng"), "lan0", |f| {
        src_mac(f) == HOST_A_MAC
    })
    .into_iter()
    .filter(|p| p[16..19] != [198, 18, 21])
    .collect()
}

/// The IPv4 packets the recorded client wrote to host A
fn written_to_host_a() -> Vec<Vec<u8>> {
    ipv4_packets(&capture(S, "client-lan.pcapng"), "lan0", |f| {
        src_mac(f) == CLIENT_LAN_MAC
    })
}

#[test]
fn the_scenario_is_tcp_mode() {
    let (p, _) = run(S, Role::Server, 0);
    let ikago_proto::MachineConfig::Server(c) = &p.config else {
        panic!("a server")
    };
    assert_eq!(c.transport, Transport::Tcp);
}

#[test]
fn the_streams_hold_every_inner_packet() {
    let frames = capture(S, "client-wan.pcapng");
    let locals = [Ipv4Addr::new(198, 18, 22, 2)];
    let reports = reassemble(
        frames.iter().map(|f| (f.time, &f.data[..])),
        End::Client { server: SERVER },
        &locals,
    );
    assert!(matches!(reports[0].kind, Kind::Opened(peer) if SocketAddr::V4(peer) == SERVER));
    let stream: Vec<u8> = reports
        .iter()
        .filter_map(|r| match &r.kind {
            Kind::Data(d) => Some(&d[..]),
            _ => None,
        })
        .flatten()
        .copied()
        .collect();
    // the server's stream is the packets the client wrote to host A, back to back
    assert_eq!(stream, written_to_host_a().concat());
}

#[test]
fn server_nats_every_inner_packet_toward_the_destination() {
    let (_, r) = run(S, Role::Server, 0);
    let ours: Vec<_> = ipv4_packets(&r.output, "dst0", |_| true)
        .iter()
        .map(|p| inner(p))
        .collect();
    let theirs: Vec<_> = sent_by_host_a().iter().map(|p| inner(p)).collect();
    assert!(theirs.len() >= 9, "{} packets from host A", theirs.len());
    assert_eq!(ours.len(), theirs.len(), "packets toward the destination");
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(
            (o.protocol, o.dst, &o.payload),
            (t.protocol, t.dst, &t.payload)
        );
        assert_eq!(o.src, NAT_ADDR);
    }
    // one client connection, closed when the client stopped at the end
    let events: Vec<_> = r.events.iter().map(|(_, e)| e).collect();
    let connected =
        |e: &&ikago_proto::Event| matches!(e, ikago_proto::Event::ClientConnected { .. });
    let gone = |e: &&ikago_proto::Event| matches!(e, ikago_proto::Event::ClientDisconnected { .. });
    assert_eq!(
        events.iter().filter(|e| connected(e)).count(),
        1,
        "{events:?}"
    );
    assert_eq!(events.iter().filter(|e| gone(e)).count(), 1, "{events:?}");
    assert!(r.stats.peers.is_empty());
    assert_eq!(
        r.stats.drops.total(),
        r.stats.drops.get(ikago_proto::DropReason::NotForUs)
    );
    // every reply went back into the client's connection, as records of the original's framing
    let written: Vec<u8> = r.stream_written.iter().flat_map(|w| w.2.clone()).collect();
    assert_eq!(r.stream_written.len(), theirs.len(), "one reply per packet");
    assert!(written.len() > 3000);
}

#[test]
fn client_writes_every_reply_to_the_lan() {
    let (_, r) = run(S, Role::Client, 0);
    let ours = ipv4_packets(&r.output, "lan0", |_| true);
    assert_eq!(ours, written_to_host_a(), "byte for byte");
    // and it wrote what host A sent into its connection
    let written: Vec<u8> = r.stream_written.iter().flat_map(|w| w.2.clone()).collect();
    assert_eq!(written, sent_by_host_a().concat());
}

#[test]
fn replays_are_deterministic() {
    for role in [Role::Client, Role::Server] {
        let (_, a) = run(S, role, 3);
        let (_, b) = run(S, role, 3);
        assert_eq!(a.output.len(), b.output.len());
        for (x, y) in a.output.iter().zip(&b.output) {
            assert_eq!((x.time, &x.data), (y.time, &y.data));
        }
        assert_eq!(a.stream_written, b.stream_written);
    }
}
