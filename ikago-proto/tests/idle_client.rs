//! What an idle client costs the server in memory: the heap the server holds after many
//! handshakes, counted by an instrumented global allocator (this file holds one test so that
//! nothing else allocates meanwhile)

use etherparse::PacketBuilder;
use ikago_proto::wire::{ethernet, ipv4, tcp};
use ikago_proto::*;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::net::Ipv4Addr;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes one idle client may cost the server
const BUDGET: isize = 16 * 1024;
/// Clients connected for the measurement
const CLIENTS: usize = 1000;

fn dev(name: &str, role: DeviceRole, addr: [u8; 4], gw: Option<[u8; 4]>) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        role,
        link: LinkType::Ethernet,
        mac: Mac([2, 0, 0, 0, addr[2], addr[3]]),
        addr: Ipv4Addr::from(addr),
        prefix_len: 24,
        gateway: gw.map(Ipv4Addr::from),
        gateway_mac: gw.map(|g| Mac([2, 0, 0, 0, g[2], g[3]])),
    }
}

/// A segment from client `i` (198.18.16.1 on, port 40000) to the server's tunnel port
fn segment(i: usize, seq: u32, ack: Option<u32>) -> Vec<u8> {
    let src = [198, 18, 16 + (i / 250) as u8, 1 + (i % 250) as u8];
    let b = PacketBuilder::ethernet2([2, 0, 1, 0, 0, 1], [2, 0, 0, 0, 12, 1])
        .ipv4(src, [198, 18, 12, 1], 64)
        .tcp(40000, 18081, seq, 64240);
    let b = match ack {
        Some(a) => b.ack(a),
        None => b.syn(),
    };
    let mut f = Vec::new();
    b.write(&mut f, &[]).expect("writes to a Vec");
    f
}

/// Connects client `i` by a SYN and the ACK of the server's SYN+ACK
fn connect(server: &mut Server, i: usize, now: Instant, buf: &mut [u8]) {
    let syn = segment(i, 1000, None);
    server.handle_input(Input::Frame {
        now,
        device: DeviceId(0),
        data: &syn,
    });
    let mut isn = None;
    loop {
        match server.poll_output(buf) {
            Output::Transmit(t) => {
                let p = ipv4::Packet::parse(&buf[ethernet::HEADER_LEN..t.len]).expect("IPv4");
                let s = tcp::Segment::parse(p.payload(), p.src(), p.dst()).expect("TCP");
                isn = Some(s.seq());
            }
            Output::Event(_) => {}
            Output::Timeout(_) => break,
        }
    }
    let ack = segment(i, 1001, Some(isn.expect("a SYN+ACK").wrapping_add(1)));
    server.handle_input(Input::Frame {
        now,
        device: DeviceId(0),
        data: &ack,
    });
    while !matches!(server.poll_output(buf), Output::Timeout(_)) {}
}

#[test]
fn an_idle_client_costs_the_server_at_most_16_kib() {
    let now = Instant::now();
    let mut s = ServerConfig::new(
        vec![
            dev("wan0", DeviceRole::Listen, [198, 18, 12, 1], None),
            dev(
                "dst0",
                DeviceRole::Upstream,
                [198, 18, 13, 1],
                Some([198, 18, 13, 2]),
            ),
        ],
        18081,
    );
    s.max_clients = CLIENTS;
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let mut server = Server::new(s, now).expect("valid server");
    // one client first, so that what every server holds anyway is not counted
    connect(&mut server, 0, now, &mut buf);
    let region = Region::new(ALLOCATOR);
    for i in 1..CLIENTS {
        connect(&mut server, i, now, &mut buf);
    }
    let c = region.change();
    let held = c.bytes_allocated as isize - c.bytes_deallocated as isize + c.bytes_reallocated;
    assert_eq!(server.stats().peers.len(), CLIENTS);
    assert_eq!(server.stats().drops.total(), 0);
    let per_client = held / (CLIENTS as isize - 1);
    println!("an idle client costs the server {per_client} bytes of heap");
    assert!(per_client > 0, "clients are kept somewhere");
    assert!(per_client <= BUDGET, "{per_client} bytes per idle client");
}
