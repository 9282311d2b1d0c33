//! The per-packet path: a 1200-byte UDP payload from a LAN host, encapsulated by the client,
//! then decapsulated and NATed by the server, per method of the compatible wire and per record
//! cipher of ikago2 (rows `ikago2/...`), over ikago2 for inner IPv6 NATed onto the server's IPv6
//! address (rows `.../ipv6`, beside the same wire's IPv4 row), and through a tunnel over IPv6
//! (rows `.../tunnel6`: inner IPv4; `.../ipv6/tunnel6`: inner IPv6); beside raw AEAD sealing of
//! the same bytes for comparison

#![allow(missing_docs, reason = "criterion_group! generates undocumented items")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use ikago_proto::crypto::Cipher;
use ikago_proto::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

#[path = "common/scale.rs"]
mod scale;

use scale::Scaled;

const PAYLOAD: usize = 1200;

/// Every wire measured: the compatible one with each method, ikago2 with each record cipher
fn wires() -> Vec<(Protocol, Method)> {
    Method::ALL
        .into_iter()
        .map(|m| (Protocol::Ikago, m))
        .chain([
            (Protocol::Ikago2, Method::Aes256Gcm),
            (Protocol::Ikago2, Method::ChaCha20Poly1305),
        ])
        .collect()
}

/// The wires that carry inner IPv6: ikago2 with each record cipher
fn wires6() -> Vec<(Protocol, Method)> {
    wires()
        .into_iter()
        .filter(|w| w.0 == Protocol::Ikago2)
        .collect()
}

/// The row name of a wire
fn wire_name((protocol, method): (Protocol, Method)) -> String {
    match protocol {
        Protocol::Ikago => method.name().to_owned(),
        Protocol::Ikago2 => format!("ikago2/{}", method.name()),
    }
}

/// One row: a wire, the inner packet's family and the tunnel's
#[derive(Clone, Copy)]
struct Row {
    wire: (Protocol, Method),
    /// The LAN host's packet is IPv6
    inner6: bool,
    /// The tunnel runs over IPv6
    outer6: bool,
}

impl Row {
    /// The row name: the wire's, then `/ipv6` for inner IPv6 and `/tunnel6` over IPv6
    fn name(self) -> String {
        let mut name = wire_name(self.wire);
        if self.inner6 {
            name.push_str("/ipv6");
        }
        if self.outer6 {
            name.push_str("/tunnel6");
        }
        name
    }
}

/// The rows measured: every wire with IPv4 in an IPv4 tunnel; on the wires that carry inner
/// IPv6, each combination of inner and outer family
fn rows() -> Vec<Row> {
    let plain = wires().into_iter().map(|wire| Row {
        wire,
        inner6: false,
        outer6: false,
    });
    let families = wires6().into_iter().flat_map(|wire| {
        [(true, false), (false, true), (true, true)].map(|(inner6, outer6)| Row {
            wire,
            inner6,
            outer6,
        })
    });
    plain.chain(families).collect()
}

fn dev(name: &str, role: DeviceRole, net: u8, last: u8, gw: Option<u8>) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        role,
        link: LinkType::Ethernet,
        mac: Mac([2, 0, 0, 0, net, last]),
        addr: Some(Ipv4Addr::new(198, 18, net, last)),
        prefix_len: 24,
        gateway: gw.map(|g| Ipv4Addr::new(198, 18, net, g)),
        gateway_mac: gw.map(|g| Mac([2, 0, 0, 0, net, g])),
        ipv6: None,
    }
}

/// Drains a machine's output, returning the frames
fn drain(out: &mut dyn FnMut(&mut [u8]) -> Output, buf: &mut [u8]) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    loop {
        match out(buf) {
            Output::Transmit(t) => v.push(buf[..t.len].to_vec()),
            Output::Stream(_) | Output::Event(_) => {}
            Output::Timeout(_) => return v,
        }
    }
}

/// A connected client and server over IPv4, with the IPv4 LAN frame the benchmark sends
fn setup(wire: (Protocol, Method)) -> (Client, Server, Vec<u8>, Instant) {
    setup_row(Row {
        wire,
        inner6: false,
        outer6: false,
    })
}

/// The WAN link of the IPv6 tunnel: 2001:db8:12::`last`, its router the server (2001:db8:12::1)
/// with its MAC known, as the IPv4 side's gateway is
fn wan6(last: u16) -> Ipv6Link {
    let server = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 1);
    Ipv6Link {
        addr: Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, last),
        prefix_len: 64,
        gateway: (last != 1).then_some(server),
        gateway_mac: (last != 1).then_some(Mac([2, 0, 0, 0, 12, 1])),
    }
}

/// A connected client and server, with the LAN frame the benchmark sends: IPv6 from
/// fd00:11::2 NATed onto 2001:db8:13::1 when `inner6`, else IPv4; the tunnel from
/// [2001:db8:12::2] to [2001:db8:12::1]:18081 when `outer6`, else over IPv4
fn setup_row(row: Row) -> (Client, Server, Vec<u8>, Instant) {
    let (protocol, method) = row.wire;
    let now = Instant::now();
    let server_addr = if row.outer6 {
        SocketAddr::from((wan6(1).addr, 18081))
    } else {
        SocketAddr::from((Ipv4Addr::new(198, 18, 12, 1), 18081))
    };
    let mut client_wan = dev("wan0", DeviceRole::Upstream, 12, 2, Some(1));
    let mut server_wan = dev("wan0", DeviceRole::Listen, 12, 1, None);
    if row.outer6 {
        client_wan.ipv6 = Some(wan6(2));
        server_wan.ipv6 = Some(wan6(1));
    }
    let mut c = ClientConfig::new(
        vec![dev("lan0", DeviceRole::Listen, 11, 1, None), client_wan],
        vec!["198.18.11.2".parse().expect("valid")],
        server_addr,
    );
    c.method = method;
    c.password = "bench".into();
    c.protocol = protocol;
    c.sources6 = vec!["fd00:11::2".parse().expect("valid")];
    let mut upstream = dev("dst0", DeviceRole::Upstream, 13, 1, Some(2));
    upstream.ipv6 = Some(Ipv6Link {
        addr: Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 1),
        prefix_len: 64,
        gateway: Some(Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 2)),
        gateway_mac: Some(Mac([2, 0, 0, 0, 13, 2])),
    });
    let mut s = ServerConfig::new(vec![server_wan, upstream], 18081);
    s.method = method;
    s.password = "bench".into();
    let mut client = Client::new(c, now).expect("valid client");
    let mut server = Server::new(s, now).expect("valid server");
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    for _ in 0..3 {
        for f in drain(&mut |b| client.poll_output(b), &mut buf) {
            server.handle_input(Input::Frame {
                now,
                device: DeviceId(0),
                data: &f,
            });
        }
        for f in drain(&mut |b| server.poll_output(b), &mut buf) {
            client.handle_input(Input::Frame {
                now,
                device: DeviceId(1),
                data: &f,
            });
        }
    }
    assert!(client.is_connected());
    let mut frame = Vec::new();
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 11, 2], [2, 0, 0, 0, 11, 1]);
    let ip = if row.inner6 {
        let src = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 2);
        let dst = Ipv6Addr::new(0x2001, 0xdb8, 0x14, 0, 0, 0, 0, 2);
        eth.ipv6(src.octets(), dst.octets(), 64)
    } else {
        eth.ipv4([198, 18, 11, 2], [198, 18, 13, 2], 64)
    };
    ip.udp(40000, 7)
        .write(&mut frame, &[0x5a; PAYLOAD])
        .expect("writes to a Vec");
    (client, server, frame, now)
}

fn path(c: &mut Criterion) {
    let mut g = c.benchmark_group("client_encap_server_decap_nat");
    g.throughput(Throughput::Elements(1));
    for row in rows() {
        let (mut client, mut server, frame, now) = setup_row(row);
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let mut buf2 = vec![0u8; MAX_FRAME_LEN];
        let mut acks = Vec::new();
        let method = row.name();
        g.bench_function(&method, |b| {
            b.iter(|| {
                client.handle_input(Input::Frame {
                    now,
                    device: DeviceId(0),
                    data: &frame,
                });
                while let Output::Transmit(t) = client.poll_output(&mut buf) {
                    server.handle_input(Input::Frame {
                        now,
                        device: DeviceId(0),
                        data: &buf[..t.len],
                    });
                    while let Output::Transmit(t) = server.poll_output(&mut buf2) {
                        if t.device == DeviceId(0) {
                            acks.push(buf2[..t.len].to_vec());
                        } else {
                            black_box(&buf2[..t.len]);
                        }
                    }
                }
                // the server's pure ACKs (one per 16 KiB) go back, or the client's window fills
                for a in acks.drain(..) {
                    client.handle_input(Input::Frame {
                        now,
                        device: DeviceId(1),
                        data: &a,
                    });
                }
            })
        });
        assert_eq!(server.stats().drops.total(), 0, "{method}");
        assert_eq!(client.stats().drops.total(), 0, "{method}");
    }
    g.finish();

    let mut g = c.benchmark_group("client_encap");
    g.throughput(Throughput::Elements(1));
    for wire in wires() {
        let (mut client, mut server, frame, now) = setup(wire);
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let mut sent = Vec::new();
        let method = wire_name(wire);
        g.bench_function(&method, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    // time a batch on the client alone, then let the server acknowledge it
                    let batch = left.min(256);
                    let start = Instant::now();
                    for _ in 0..batch {
                        client.handle_input(Input::Frame {
                            now,
                            device: DeviceId(0),
                            data: &frame,
                        });
                        while let Output::Transmit(t) = client.poll_output(&mut buf) {
                            sent.push(black_box(&buf[..t.len]).to_vec());
                        }
                    }
                    timed += start.elapsed();
                    left -= batch;
                    for f in sent.drain(..) {
                        server.handle_input(Input::Frame {
                            now,
                            device: DeviceId(0),
                            data: &f,
                        });
                    }
                    loop {
                        match server.poll_output(&mut buf) {
                            Output::Transmit(t) if t.device == DeviceId(0) => {
                                let ack = Input::Frame {
                                    now,
                                    device: DeviceId(1),
                                    data: &buf[..t.len],
                                };
                                client.handle_input(ack);
                            }
                            Output::Timeout(_) => break,
                            _ => {}
                        }
                    }
                }
                timed
            })
        });
        assert_eq!(client.stats().drops.total(), 0, "{method}");
    }
    g.finish();

    let mut g = c.benchmark_group("server_decap_nat");
    g.throughput(Throughput::Elements(1));
    for row in rows() {
        let (mut client, mut server, frame, now) = setup_row(row);
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let mut tunnel = Vec::new();
        let mut acks = Vec::new();
        let method = row.name();
        g.bench_function(&method, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    // a batch of fresh segments from the client (ikago2 refuses one seen
                    // before), then the server alone is timed on them
                    let batch = left.min(256);
                    for _ in 0..batch {
                        client.handle_input(Input::Frame {
                            now,
                            device: DeviceId(0),
                            data: &frame,
                        });
                        while let Output::Transmit(t) = client.poll_output(&mut buf) {
                            tunnel.push(buf[..t.len].to_vec());
                        }
                    }
                    let start = Instant::now();
                    for f in tunnel.drain(..) {
                        server.handle_input(Input::Frame {
                            now,
                            device: DeviceId(0),
                            data: black_box(&f),
                        });
                        loop {
                            match server.poll_output(&mut buf) {
                                Output::Transmit(t) if t.device == DeviceId(0) => {
                                    acks.push(buf[..t.len].to_vec());
                                }
                                Output::Transmit(t) => {
                                    black_box(&buf[..t.len]);
                                }
                                _ => break,
                            }
                        }
                    }
                    timed += start.elapsed();
                    left -= batch;
                    // the server's pure ACKs go back, or the client's window fills
                    for a in acks.drain(..) {
                        client.handle_input(Input::Frame {
                            now,
                            device: DeviceId(1),
                            data: &a,
                        });
                    }
                }
                timed
            })
        });
        assert_eq!(server.stats().drops.total(), 0, "{method}");
    }
    g.finish();

    let mut g = c.benchmark_group("raw_aead_seal_open");
    g.throughput(Throughput::Elements(1));
    let inner = vec![0x5au8; PAYLOAD + 28];
    for method in Method::ALL {
        let cipher = Cipher::new(method, "bench");
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut sealed = vec![0u8; inner.len() + method.overhead()];
        let mut opened = vec![0u8; inner.len()];
        g.bench_function(method.name(), |b| {
            b.iter(|| {
                let n = cipher.seal_from(&inner, &mut sealed, &mut rng);
                black_box(
                    cipher
                        .open_into(&sealed[..n], &mut opened)
                        .expect("own payload opens"),
                );
            })
        });
    }
    g.finish();
}

/// SYNs from 65,536 spoofed sources, as frames to the server's listen device
fn spoofed_syns() -> Vec<Vec<u8>> {
    (0..65_536u32)
        .map(|i| {
            let mut f = Vec::new();
            PacketBuilder::ethernet2([2, 0, 0, 0, 12, 2], [2, 0, 0, 0, 12, 1])
                .ipv4([198, 18, 12, 2 + (i >> 12) as u8], [198, 18, 12, 1], 64)
                .tcp(
                    1024 + (i & 0xfff) as u16,
                    18081,
                    i.wrapping_mul(2_654_435_761),
                    64240,
                )
                .syn()
                .write(&mut f, &[])
                .expect("writes to a Vec");
            f
        })
        .collect()
}

/// What a SYN flood costs the server: each SYN answered (a half-open entry, then cookies once
/// the table is full) at the budget's rate, and each SYN beyond the budget
fn syn_flood(c: &mut Criterion) {
    let mut g = c.benchmark_group("server_syn_flood");
    g.throughput(Throughput::Elements(1));
    let syns = spoofed_syns();
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    for (name, step) in [
        ("answered", Duration::from_micros(50)),
        ("over_budget", Duration::ZERO),
    ] {
        let (_, mut server, _, t0) = setup((Protocol::Ikago, Method::Aes256Gcm));
        let mut now = t0;
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                now += step;
                server.handle_input(Input::Frame {
                    now,
                    device: DeviceId(0),
                    data: &syns[i % syns.len()],
                });
                i += 1;
                while let Output::Transmit(t) = server.poll_output(&mut buf) {
                    black_box(&buf[..t.len]);
                }
            })
        });
        let drops = server.stats().drops;
        println!("{name}: {i} SYNs, server drops {drops}");
    }
    g.finish();
}

/// Per-packet cost of a server with many clients and flows against one with a single client:
/// tunnel frames to the NAT, and those plus the Internet's replies sealed back
fn server_scale(c: &mut Criterion) {
    let mut g = c.benchmark_group("server_scale");
    g.throughput(Throughput::Elements(1));
    for (clients, flows) in [(1, 1), (1, 50), (1000, 50)] {
        let ids: Vec<usize> = (0..clients).collect();
        let config = scale::server_config(clients, Shard::WHOLE);
        let mut s = Scaled::new(config, &ids, flows);
        let mut i = 0;
        g.bench_function(format!("{clients}x{flows}/request"), |b| {
            b.iter(|| {
                s.request(i);
                i += 1;
            })
        });
        g.bench_function(format!("{clients}x{flows}/round_trip"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    // a batch leaves every client's window far from full
                    let batch = left.min(16_384);
                    let start = Instant::now();
                    for _ in 0..batch {
                        s.request(i);
                        s.reply(i);
                        i += 1;
                    }
                    timed += start.elapsed();
                    left -= batch;
                    s.acknowledge();
                }
                timed
            })
        });
        assert_eq!(s.drops(), 0, "{clients}x{flows}");
        println!("{clients}x{flows}: {} packets fed", s.fed);
    }
    g.finish();
}

/// Packets per second of a server of 1, then 2 engines on as many threads (`--threads`), each
/// engine with its shard of 1,000 clients x 50 flows and its own pre-generated frames
fn server_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("server_threads");
    g.throughput(Throughput::Elements(1));
    let (clients, flows) = (1000, 50);
    for n in [1u16, 2] {
        let mut engines: Vec<Scaled> = (0..n)
            .map(|k| {
                let shard = Shard::new(k, n).expect("a valid shard");
                let ids: Vec<usize> = (0..clients)
                    .filter(|&i| shard.owns(scale::client_peer(i)))
                    .collect();
                Scaled::new(scale::server_config(clients, shard), &ids, flows)
            })
            .collect();
        g.bench_function(n.to_string(), |b| {
            b.iter_custom(|iters| {
                // each engine takes its share of the packets on its own thread
                let share = iters.div_ceil(u64::from(n));
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for e in &mut engines {
                        scope.spawn(move || {
                            for i in 0..share {
                                e.request(i as usize);
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
        for e in &engines {
            assert_eq!(e.drops(), 0, "{n} engines");
        }
    }
    g.finish();
}

criterion_group!(benches, path, syn_flood, server_scale, server_threads);
criterion_main!(benches);
