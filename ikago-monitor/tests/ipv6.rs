//! IPv6 in the monitor: a client's IPv6 sources and remotes and a server's NAT66 mappings
//! appear in the original's JSON (`/`), the dashboard's API and `/metrics`, beside IPv4 ones

mod common;

use common::*;
use ikago_monitor::{Role, Snapshot, json, prometheus};
use ikago_proto::{Event, Peer, Stats};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const SOURCE6: &str = "fd00:21::4";
const REMOTE6: &str = "2001:db8:24::2";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A client with an IPv4 and an IPv6 source, and a remote of each family
fn client(t0: Instant) -> Snapshot {
    let mut s = Stats::default();
    s.peers = vec![
        peer(
            Peer::Source(Ipv4Addr::new(198, 18, 21, 2).into()),
            counter(4, 400),
            counter(2, 200),
            1,
            5,
            t0,
        ),
        peer(
            Peer::Source(ip(SOURCE6)),
            counter(6, 900),
            counter(3, 450),
            2,
            8,
            t0,
        ),
    ];
    s.remotes = vec![
        peer(
            Peer::Remote(Ipv4Addr::new(198, 18, 24, 2).into()),
            counter(4, 400),
            counter(2, 200),
            1,
            5,
            t0,
        ),
        peer(
            Peer::Remote(ip(REMOTE6)),
            counter(6, 900),
            counter(3, 450),
            2,
            8,
            t0,
        ),
    ];
    recorder(Role::Client, t0).snapshot(s, t0 + Duration::from_secs(10))
}

/// A server with an IPv4 mapping and two NAT66 ones (UDP and ICMPv6 echo)
fn server(t0: Instant) -> Snapshot {
    let mut r = recorder(Role::Server, t0);
    let client = SocketAddr::from((Ipv4Addr::new(198, 18, 22, 2), 50_000));
    let v4 = |a: [u8; 4], port| SocketAddr::from((Ipv4Addr::from(a), port));
    let v6 = |a: &str, port| SocketAddr::new(ip(a), port);
    for (protocol, inner, public) in [
        (17, v4([198, 18, 21, 2], 5000), v4([198, 18, 24, 1], 50_001)),
        (17, v6(SOURCE6, 5000), v6("2001:db8:24::1", 50_003)),
        (58, v6(SOURCE6, 7), v6("2001:db8:24::1", 7)),
    ] {
        let mapped = Event::NatMapped {
            client,
            protocol,
            inner,
            public,
        };
        r.record(&mapped, t0 + Duration::from_secs(2));
    }
    let mut s = Stats::default();
    s.nat_mappings = 3;
    r.snapshot(s, t0 + Duration::from_secs(10))
}

#[test]
fn original_json_lists_ipv6_sources_and_remotes() {
    let v: Value = serde_json::from_str(&json::original(&client(Instant::now()))).unwrap();
    let monitor = &v["monitor"];
    for (side, node, size) in [
        ("local", SOURCE6, 900),
        ("local", "198.18.21.2", 400),
        ("remote", REMOTE6, 900),
        ("remote", "198.18.24.2", 400),
    ] {
        assert_eq!(
            monitor[side]["out"][node]["size"], size,
            "{side} {node}: {v}"
        );
    }
    assert_eq!(monitor["local"]["in"][SOURCE6]["count"], 3);
}

#[test]
fn the_api_lists_ipv6_peers_and_nat66_mappings() {
    let t0 = Instant::now();
    let v: Value = serde_json::from_str(&json::api(&client(t0))).unwrap();
    let ids: Vec<&str> = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&SOURCE6), "{ids:?}");
    let v: Value = serde_json::from_str(&json::api(&server(t0))).unwrap();
    let entries: Vec<(String, String, String)> = v["nat"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_owned();
            (s("protocol"), s("inner"), s("public"))
        })
        .collect();
    for expected in [
        ("UDP", "198.18.21.2:5000", "198.18.24.1:50001"),
        ("UDP", "[fd00:21::4]:5000", "[2001:db8:24::1]:50003"),
        ("ICMPv6", "[fd00:21::4]:7", "[2001:db8:24::1]:7"),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(entries.contains(&expected), "{expected:?} in {entries:?}");
    }
}

#[test]
fn dns_and_the_api_list_aaaa_records_beside_a_records() {
    let t0 = Instant::now();
    let mut r = recorder(Role::Client, t0);
    for (name, ip) in [
        ("four.test", "198.18.24.53"),
        ("six.test", "2001:db8:24::53"),
        ("six.test", "2001:db8:24::54"),
    ] {
        let event = Event::DnsRecord {
            name: name.into(),
            ip: ip.parse().unwrap(),
        };
        r.record(&event, t0 + Duration::from_secs(1));
    }
    let snapshot = r.snapshot(Stats::default(), t0 + Duration::from_secs(2));
    let dns: Value = serde_json::from_str(&json::dns(&snapshot)).unwrap();
    assert_eq!(
        dns,
        serde_json::json!([
            {"ip": "198.18.24.53", "name": "four.test"},
            {"ip": "2001:db8:24::53", "name": "six.test"},
            {"ip": "2001:db8:24::54", "name": "six.test"},
        ])
    );
    let api: Value = serde_json::from_str(&json::api(&snapshot)).unwrap();
    let newest_first: Vec<&Value> = dns.as_array().unwrap().iter().rev().collect();
    assert_eq!(
        api["dns"].as_array().unwrap().iter().collect::<Vec<_>>(),
        newest_first
    );
}

#[test]
fn metrics_label_ipv6_sources_and_parse() {
    let text = prometheus::render(&client(Instant::now()));
    let f = parse_metrics(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let src = |ip, dir| [("source", ip), ("direction", dir)];
    let bytes = &f["ikago_source_bytes_total"];
    assert_eq!(bytes.value(&src(SOURCE6, "out")), Some(900.0));
    assert_eq!(bytes.value(&src(SOURCE6, "in")), Some(450.0));
    assert_eq!(bytes.value(&src("198.18.21.2", "out")), Some(400.0));
}
