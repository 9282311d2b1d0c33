//! Helpers shared by the replay tests: loading the capture folders and reading packets back

#![allow(dead_code, unreachable_pub)]

use ikago_config::{ClientArgs, ServerArgs};
use ikago_replay::capture::{Frame, merge};
use ikago_replay::cli::{load_scenario, read_capture};
use ikago_replay::decode::Defragmenter;
use ikago_replay::drive::{Replay, replay};
use ikago_replay::scenario::Options;
use ikago_replay::{Prepared, Role, prepare};
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The folder of a copied capture scenario
pub fn data(scenario: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(scenario)
}

/// The frames of one capture file of a scenario
pub fn capture(scenario: &str, file: &str) -> Vec<Frame> {
    read_capture(&data(scenario).join(file)).expect("the copied captures read")
}

/// The capture files a role is fed with
pub fn files(role: Role) -> [&'static str; 2] {
    match role {
        Role::Client => ["client-lan.pcapng", "client-wan.pcapng"],
        Role::Server => ["server-wan.pcapng", "server-dst.pcapng"],
    }
}

/// Replays a scenario folder's captures for `role` with its scenario.json and no other options
pub fn run(scenario: &str, role: Role, seed: u64) -> (Prepared, Replay) {
    let s = load_scenario(&data(scenario).join("scenario.json"), role).expect("scenario.json maps");
    let cli = match role {
        Role::Client => Options::Client(ClientArgs::default()),
        Role::Server => Options::Server(ServerArgs::default()),
    };
    let p = prepare(cli, &s, Some(seed)).expect("the scenario's options are valid");
    let frames = merge(files(role).iter().map(|f| capture(scenario, f)).collect());
    let r = replay(p.config.clone(), &frames, p.start, true).expect("the replay runs");
    (p, r)
}

/// The scenario.json of a folder as JSON
pub fn scenario_json(scenario: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(data(scenario).join("scenario.json")).unwrap()).unwrap()
}

/// The source MAC of a frame
pub fn src_mac(f: &Frame) -> [u8; 6] {
    f.data[6..12].try_into().unwrap()
}

/// The IPv4 packets (reassembled, Ethernet padding cut) of frames on `interface` passing `keep`
pub fn ipv4_packets(
    frames: &[Frame],
    interface: &str,
    keep: impl Fn(&Frame) -> bool,
) -> Vec<Vec<u8>> {
    let mut d = Defragmenter::default();
    frames
        .iter()
        .filter(|f| {
            f.interface == interface && f.data.len() > 14 && f.data[12..14] == [8, 0] && keep(f)
        })
        .filter_map(|f| d.push(f.time, &f.data[14..]).map(<[u8]>::to_vec))
        .collect()
}

/// An inner packet's protocol, addresses, ports (ICMP: type and id) and transport payload
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inner {
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub payload: Vec<u8>,
}

/// Parses an IPv4 packet with etherparse
pub fn inner(ip: &[u8]) -> Inner {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    let p = SlicedPacket::from_ip(ip).expect("a valid IPv4 packet");
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        panic!("not IPv4")
    };
    let (src, dst) = (v4.header().source_addr(), v4.header().destination_addr());
    let protocol = v4.header().protocol().0;
    let (sport, dport, tcp_flags, payload) = match &p.transport {
        Some(TransportSlice::Udp(u)) => (
            u.source_port(),
            u.destination_port(),
            0,
            u.payload().to_vec(),
        ),
        Some(TransportSlice::Tcp(t)) => (
            t.source_port(),
            t.destination_port(),
            t.slice()[13],
            t.payload().to_vec(),
        ),
        Some(TransportSlice::Icmpv4(i)) => (
            u16::from(i.type_u8()),
            u16::from_be_bytes([i.bytes5to8()[0], i.bytes5to8()[1]]),
            0,
            i.payload().to_vec(),
        ),
        _ => panic!("unexpected transport in {ip:02x?}"),
    };
    Inner {
        protocol,
        src,
        dst,
        sport,
        dport,
        tcp_flags,
        payload,
    }
}
