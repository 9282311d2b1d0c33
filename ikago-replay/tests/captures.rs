//! The Go original's captures (shared/captures, copied to tests/data) replayed through our Server
//! and our Client, and decoded at the wire level

mod common;

use common::*;
use ikago_proto::Method;
use ikago_replay::Role;
use ikago_replay::capture::write_pcapng;
use ikago_replay::decode::TunnelDecoder;
use serde_json::Value;
use std::net::Ipv4Addr;

const SCENARIOS: [&str; 4] = [
    "01-faketcp-plain",
    "02-faketcp-aes-256-gcm",
    "03-faketcp-chacha20-poly1305",
    "10-faketcp-publish-arp",
];
const SOURCE_MAC: [u8; 6] = [2, 0, 0, 0, 0x11, 2];
const CLIENT_LAN_MAC: [u8; 6] = [2, 0, 0, 0, 0x11, 1];
const CLIENT_WAN: Ipv4Addr = Ipv4Addr::new(198, 18, 12, 2);
const NAT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 1);
const TUNNEL_PORT: u16 = 18081;

/// The IPv4 packets the source sent on client-lan
fn sent_by_source(scenario: &str) -> Vec<Vec<u8>> {
    ipv4_packets(&capture(scenario, "client-lan.pcapng"), "lan0", |f| {
        src_mac(f) == SOURCE_MAC
    })
}

/// The IPv4 packets the Go client wrote to the source on client-lan
fn received_by_source(scenario: &str) -> Vec<Vec<u8>> {
    ipv4_packets(&capture(scenario, "client-lan.pcapng"), "lan0", |f| {
        src_mac(f) == CLIENT_LAN_MAC
    })
}

#[test]
fn server_nats_every_inner_packet_toward_the_destination() {
    for s in SCENARIOS {
        let (_, r) = run(s, Role::Server, 0);
        let ours: Vec<_> = ipv4_packets(&r.output, "dst0", |_| true)
            .iter()
            .map(|p| inner(p))
            .collect();
        let theirs: Vec<_> = sent_by_source(s).iter().map(|p| inner(p)).collect();
        assert!(!theirs.is_empty());
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{s}: packets toward the destination"
        );
        for (o, t) in ours.iter().zip(&theirs) {
            assert_eq!(
                (o.protocol, o.dst, o.tcp_flags),
                (t.protocol, t.dst, t.tcp_flags),
                "{s}"
            );
            assert_eq!(o.payload, t.payload, "{s}: payload");
            assert_eq!(o.src, NAT_ADDR, "{s}: source rewritten to the NAT address");
            if o.protocol == 1 {
                assert_eq!(o.sport, t.sport, "{s}: ICMP type");
            } else {
                assert_eq!(o.dport, t.dport, "{s}: destination port");
            }
        }
    }
}

/// The Go client's KCP capture (FEC 10+3, plain): our server opens the kcp-go session from the
/// client's first data shard, forwards every inner packet and returns every reply through KCP
#[test]
fn server_speaks_kcp_with_fec_to_the_go_client() {
    let s = "07-faketcp-kcp-plain";
    let (_, r) = run(s, Role::Server, 0);
    let ours: Vec<_> = ipv4_packets(&r.output, "dst0", |_| true)
        .iter()
        .map(|p| inner(p))
        .collect();
    let theirs: Vec<_> = sent_by_source(s).iter().map(|p| inner(p)).collect();
    assert_eq!(
        theirs.len(),
        8,
        "5 pings and 3 UDP datagrams in the capture"
    );
    assert_eq!(ours.len(), theirs.len(), "packets toward the destination");
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(
            (o.protocol, o.dst, &o.payload),
            (t.protocol, t.dst, &t.payload)
        );
        assert_eq!(o.src, NAT_ADDR);
    }
    assert_eq!(r.stats.peers.len(), 1);
    assert_eq!(
        r.stats.peers[0].r#in.packets, 8,
        "every reply went back through KCP"
    );
    let kcp = r.stats.kcp.expect("KCP counters");
    assert_eq!(
        kcp.datagrams_rejected, 0,
        "every kcp-go datagram was understood"
    );
}

/// The same capture from the client side: our client takes over the Go client's conversation
/// id, so the Go server's kcp-go datagrams (FEC shards, ACKs, pushes) are ours. Every reply
/// reaches the source: the 5 ping replies byte for byte as the Go client wrote them, and the 3
/// UDP echoes, which the Go client could not write to the LAN
#[test]
fn client_speaks_kcp_with_fec_to_the_go_server() {
    let s = "07-faketcp-kcp-plain";
    let (_, r) = run(s, Role::Client, 0);
    let written = ipv4_packets(&r.output, "lan0", |_| true);
    let go_wrote = received_by_source(s);
    assert_eq!(
        go_wrote.len(),
        5,
        "the Go client wrote the ping replies only"
    );
    assert_eq!(written.len(), 8, "every reply reached the source");
    assert_eq!(written[..5], go_wrote[..], "ping replies, byte for byte");
    let udp_sent: Vec<_> = sent_by_source(s)
        .iter()
        .map(|p| inner(p))
        .filter(|i| i.protocol == 17)
        .collect();
    assert_eq!(udp_sent.len(), 3);
    for (echo, sent) in written[5..].iter().map(|p| inner(p)).zip(&udp_sent) {
        assert_eq!(
            (
                echo.protocol,
                echo.src,
                echo.dst,
                echo.sport,
                echo.dport,
                &echo.payload
            ),
            (
                17,
                sent.dst,
                sent.src,
                sent.dport,
                sent.sport,
                &sent.payload
            ),
            "a UDP echo back to the source"
        );
    }
    let kcp = r.stats.kcp.expect("KCP counters");
    assert_eq!(
        kcp.datagrams_rejected, 0,
        "every kcp-go datagram of the Go server was understood"
    );
}

#[test]
fn server_answers_the_go_clients_syn_and_returns_every_reply() {
    for s in SCENARIOS {
        let (_, r) = run(s, Role::Server, 0);
        let syn_acks: Vec<_> = r
            .output
            .iter()
            .filter(|f| f.interface == "wan0")
            .filter_map(|f| TunnelDecoder::new(Method::Plain, "", TUNNEL_PORT).segment(f))
            .filter(|seg| seg.flags & 0x12 == 0x12)
            .collect();
        assert!(!syn_acks.is_empty(), "{s}: no SYN+ACK");
        let go_client_port = scenario_json(s)["tunnel"]["client_upstream_port"]
            .as_u64()
            .unwrap() as u16;
        for seg in &syn_acks {
            assert_eq!(*seg.dst.ip(), CLIENT_WAN);
            assert_eq!(seg.dst.port(), go_client_port);
            assert_eq!(seg.src.port(), TUNNEL_PORT);
        }
        assert_eq!(
            syn_acks[0].ack, 1,
            "{s}: the Go client's SYN has sequence number 0"
        );
        let replies = scenario_json(s)["verified"]["tunnel_server_to_client"]["inner_ipv4_packets"]
            .as_u64()
            .unwrap();
        assert_eq!(r.stats.peers.len(), 1, "{s}");
        assert_eq!(
            r.stats.peers[0].r#in.packets, replies,
            "{s}: replies tunnelled back"
        );
    }
}

#[test]
fn client_tunnels_exactly_what_the_source_sent_and_writes_back_what_it_received() {
    for s in SCENARIOS {
        let (p, r) = run(s, Role::Client, 0);
        let mut dec = TunnelDecoder::new(p.method, &p.password, TUNNEL_PORT);
        let segments: Vec<_> = r
            .output
            .iter()
            .filter(|f| f.interface == "wan0")
            .filter_map(|f| dec.segment(f))
            .collect();
        let tunnelled: Vec<Vec<u8>> = segments
            .iter()
            .filter(|seg| !seg.payload.is_empty())
            .map(|seg| {
                dec.open(&seg.payload)
                    .expect("our payloads open with the scenario's key")
            })
            .collect();
        assert_eq!(tunnelled, sent_by_source(s), "{s}: inner packets tunnelled");
        let written = ipv4_packets(&r.output, "lan0", |_| true);
        let expected = received_by_source(s);
        assert!(!expected.is_empty());
        assert_eq!(
            written, expected,
            "{s}: packets written to the LAN, byte for byte"
        );
    }
}

#[test]
fn client_answers_the_proxy_arp_request() {
    let s = "10-faketcp-publish-arp";
    let (_, r) = run(s, Role::Client, 0);
    let is_arp_reply = |d: &[u8]| d.len() >= 42 && d[12..14] == [8, 6] && d[20..22] == [0, 2];
    let ours: Vec<_> = r
        .output
        .iter()
        .filter(|f| f.interface == "lan0" && is_arp_reply(&f.data))
        .collect();
    assert_eq!(ours.len(), 1, "one proxy-ARP reply");
    let a = &ours[0].data;
    assert_eq!(a[0..6], SOURCE_MAC, "to the requester");
    assert_eq!(a[22..28], CLIENT_LAN_MAC, "sender MAC: the listen device's");
    assert_eq!(
        a[28..32],
        [198, 18, 11, 254],
        "sender IP: the published address"
    );
    assert_eq!(a[38..42], [198, 18, 11, 2], "target IP: the requester");
    let go = capture(s, "client-lan.pcapng");
    let go_reply = go
        .iter()
        .find(|f| src_mac(f) == CLIENT_LAN_MAC && is_arp_reply(&f.data))
        .unwrap();
    assert_eq!(a, &go_reply.data, "byte for byte the Go client's reply");
}

/// Checks one decoded inner packet against an entry of scenario.json's `verified` section
fn check_verified(s: &str, ip: &[u8], v: &Value) {
    let i = inner(ip);
    let proto = match i.protocol {
        1 => "ICMP",
        6 => "TCP",
        17 => "UDP",
        _ => "?",
    };
    assert_eq!(v["proto"], proto, "{s}");
    assert_eq!(v["src"], i.src.to_string(), "{s}");
    assert_eq!(v["dst"], i.dst.to_string(), "{s}");
    assert_eq!(v["ip_len"], ip.len(), "{s}");
    match proto {
        "ICMP" => {
            assert_eq!(v["icmp_type"], i.sport, "{s}");
            assert_eq!(v["icmp_id"], i.dport, "{s}");
        }
        _ => {
            assert_eq!(
                (v["sport"].as_u64(), v["dport"].as_u64()),
                (Some(u64::from(i.sport)), Some(u64::from(i.dport))),
                "{s}"
            );
            let key = if proto == "UDP" {
                "udp_payload"
            } else {
                "tcp_payload"
            };
            assert_eq!(v[key], i.payload.len(), "{s}");
        }
    }
    if proto == "TCP" {
        assert_eq!(
            v["tcp_flags"],
            ikago_replay::decode::tcp_flags(i.tcp_flags),
            "{s}"
        );
    }
}

#[test]
fn every_tunnel_frame_of_client_wan_decodes_to_the_verified_inner_packets() {
    for s in SCENARIOS {
        let j = scenario_json(s);
        let method: Method = j["tunnel"]["method"].as_str().unwrap().parse().unwrap();
        let password = j["tunnel"]["password"].as_str().unwrap_or("");
        let mut dec = TunnelDecoder::new(method, password, TUNNEL_PORT);
        let (mut c2s, mut s2c, mut failed) = (Vec::new(), Vec::new(), 0);
        for f in capture(s, "client-wan.pcapng") {
            let Some(seg) = dec.segment(&f) else {
                continue;
            };
            if seg.payload.is_empty() {
                continue;
            }
            let Some(ip) = dec.open(&seg.payload) else {
                failed += 1;
                continue;
            };
            if seg.dst.port() == TUNNEL_PORT {
                c2s.push(ip)
            } else {
                s2c.push(ip)
            }
        }
        assert_eq!(failed, 0, "{s}: payloads that failed to open");
        for (dir, got) in [
            ("tunnel_client_to_server", &c2s),
            ("tunnel_server_to_client", &s2c),
        ] {
            let v = &j["verified"][dir];
            assert_eq!(v["payloads_decrypted_ok"], got.len(), "{s} {dir}");
            assert_eq!(v["inner_ipv4_packets"], got.len(), "{s} {dir}");
            let lens: Vec<usize> = got.iter().map(Vec::len).collect();
            assert_eq!(
                v["inner_ip_total_lengths"],
                serde_json::json!(lens),
                "{s} {dir}"
            );
            let listed = v["inner_packets"].as_array().unwrap();
            assert_eq!(listed.len(), got.len(), "{s} {dir}");
            for (ip, want) in got.iter().zip(listed) {
                check_verified(s, ip, want);
            }
            let mut by_proto = serde_json::Map::new();
            for ip in got.iter() {
                let name = match inner(ip).protocol {
                    1 => "ICMP",
                    6 => "TCP",
                    _ => "UDP",
                };
                let n = by_proto.get(name).and_then(Value::as_u64).unwrap_or(0);
                by_proto.insert(name.into(), (n + 1).into());
            }
            assert_eq!(
                v["inner_by_protocol"].as_object().unwrap(),
                &by_proto,
                "{s} {dir}"
            );
        }
        assert_eq!(
            c2s,
            sent_by_source(s),
            "{s}: the Go client tunnelled what the source sent"
        );
    }
}

#[test]
fn same_input_and_seed_give_byte_identical_output() {
    for s in ["02-faketcp-aes-256-gcm", "10-faketcp-publish-arp"] {
        for role in [Role::Client, Role::Server] {
            let bytes = |seed| {
                let (_, r) = run(s, role, seed);
                let names: Vec<String> = r.devices.iter().map(|d| d.name.clone()).collect();
                (write_pcapng(&names, &r.output), format!("{:?}", r.events))
            };
            let (a, b) = (bytes(7), bytes(7));
            assert_eq!(a, b, "{s} {role:?}: two runs with seed 7");
            assert_ne!(
                a.0,
                bytes(8).0,
                "{s} {role:?}: another seed draws other ISNs and nonces"
            );
        }
    }
}

#[test]
fn client_completes_the_handshake_with_one_ack() {
    let (p, r) = run("01-faketcp-plain", Role::Client, 0);
    let mut dec = TunnelDecoder::new(p.method, &p.password, TUNNEL_PORT);
    let segments: Vec<_> = r
        .output
        .iter()
        .filter(|f| f.interface == "wan0")
        .filter_map(|f| dec.segment(f))
        .collect();
    assert_eq!(segments[0].flags, 0x02, "the SYN");
    assert!(
        segments[1].flags == 0x10 && segments[1].payload.is_empty(),
        "the ACK completing the handshake"
    );
    assert_ne!(
        segments[2], segments[1],
        "the same pure ACK again (RFC 9293 sends one)"
    );
}
