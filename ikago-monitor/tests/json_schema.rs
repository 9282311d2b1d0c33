//! The original's JSON (reference §10), compared field by field, from hand-made stats

mod common;

use common::*;
use ikago_monitor::{Role, json};
use ikago_proto::Stats;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Unix seconds `s` after the runner started
fn at(s: u64) -> u64 {
    START_UNIX + s
}

fn ind(count: u64, size: u64, appear: u64, last: u64) -> Value {
    json!({"count": count, "size": size, "appear": at(appear), "lastSeen": at(last)})
}

/// The shape of the original: exact key sets, integer types, null only where it may be
fn check_schema(v: &Value, role: Role) {
    let keys = sorted_keys(v);
    let want: &[&str] = match role {
        Role::Client => &["monitor", "name", "ping", "time", "version"],
        Role::Server => &["monitor", "name", "time", "version"],
    };
    assert_eq!(keys, want);
    assert_eq!(v["name"], role.original_name());
    assert!(v["version"].is_string());
    assert!(v["time"].is_u64());
    assert_eq!(sorted_keys(&v["monitor"]), ["local", "remote"]);
    for side in ["local", "remote"] {
        assert_eq!(sorted_keys(&v["monitor"][side]), ["in", "out"]);
        for dir in ["in", "out"] {
            let nodes = &v["monitor"][side][dir];
            if side == "remote" && role == Role::Server {
                assert!(nodes.is_null(), "the server's remote.{dir} is null");
                continue;
            }
            for (key, node) in nodes.as_object().expect("nodes are an object") {
                let fields = sorted_keys(node);
                assert_eq!(fields, ["appear", "count", "lastSeen", "size"], "{key}");
                for f in fields {
                    assert!(node[f].is_u64(), "{key}.{f} is a non-negative integer");
                }
                assert!(node["appear"].as_u64() <= node["lastSeen"].as_u64());
            }
        }
    }
    if role == Role::Client {
        let ping = v["ping"].as_i64().expect("ping is an integer");
        assert!(ping >= -2);
    }
}

fn sorted_keys(v: &Value) -> Vec<&str> {
    let map = v.as_object().unwrap_or_else(|| panic!("an object: {v}"));
    let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// Keys appear in the Go encoder's order: struct fields as declared, map keys sorted
fn check_order(text: &str, keys: &[&str]) {
    let pos: Vec<usize> = keys
        .iter()
        .map(|k| {
            text.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} in {text}"))
        })
        .collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "order of {keys:?} in {text}"
    );
}

#[test]
fn client_json_matches_the_original_field_by_field() {
    let t0 = Instant::now();
    let text = json::original(&client_snapshot(t0));
    let v: Value = serde_json::from_str(&text).unwrap();
    check_schema(&v, Role::Client);
    let expected = json!({
        "name": "IkaGo-client",
        "version": "1.2.3",
        "time": 10,
        "monitor": {
            "local": {
                // 10.6.0.3 never received anything: the original lists a node only once it has
                // a packet in that direction
                "in": {"10.6.0.2": ind(5, 700, 1, 9)},
                "out": {"10.6.0.2": ind(10, 1000, 1, 9), "10.6.0.3": ind(3, 180, 4, 6)},
            },
            "remote": {
                "in": {"1.1.1.1": ind(4, 500, 2, 8), "8.8.8.8": ind(1, 200, 3, 7)},
                "out": {"1.1.1.1": ind(7, 600, 2, 8), "8.8.8.8": ind(6, 580, 3, 7)},
            },
        },
        "ping": 23,
    });
    assert_eq!(v, expected);
    check_order(&text, &["name", "version", "time", "monitor", "ping"]);
    check_order(&text, &["local", "remote"]);
    check_order(&text, &["count", "size", "appear", "lastSeen"]);
}

#[test]
fn server_json_matches_the_original_field_by_field() {
    let t0 = Instant::now();
    let text = json::original(&server_snapshot(t0));
    let v: Value = serde_json::from_str(&text).unwrap();
    check_schema(&v, Role::Server);
    let expected = json!({
        "name": "IkaGo-server",
        "version": "1.2.3",
        "time": 10,
        "monitor": {
            "local": {
                "in": {"198.51.100.7:50000": ind(9, 1100, 1, 9)},
                "out": {
                    "198.51.100.7:50000": ind(12, 1500, 1, 9),
                    "198.51.100.8:61000": ind(2, 120, 5, 5),
                },
            },
            "remote": {"in": null, "out": null},
        },
    });
    assert_eq!(v, expected);
}

#[test]
fn a_fresh_client_has_empty_nodes_and_ping_minus_one() {
    let t0 = Instant::now();
    let s = recorder(Role::Client, t0).snapshot(Stats::default(), t0);
    let v: Value = serde_json::from_str(&json::original(&s)).unwrap();
    check_schema(&v, Role::Client);
    let empty = json!({"in": {}, "out": {}});
    assert_eq!(v["monitor"], json!({"local": empty, "remote": empty}));
    assert_eq!(v["ping"], -1);
    assert_eq!(v["time"], 0);
}

#[test]
fn ping_turns_minus_two_when_no_sample_comes() {
    let t0 = Instant::now();
    let mut r = recorder(Role::Client, t0);
    let stats = client_stats(t0);
    let ping = |r: &mut ikago_monitor::Recorder, s: u64| {
        let snap = r.snapshot(stats.clone(), t0 + Duration::from_secs(s));
        serde_json::from_str::<Value>(&json::original(&snap)).unwrap()["ping"].clone()
    };
    assert_eq!(ping(&mut r, 1), 23);
    // probes every 5 s, 2 s of grace: still fresh 7 s after the sample, stale after that
    assert_eq!(ping(&mut r, 8), 23);
    assert_eq!(ping(&mut r, 9), -2);
}

#[test]
fn dns_lists_names_as_the_original() {
    let t0 = Instant::now();
    let v: Value = serde_json::from_str(&json::dns(&client_snapshot(t0))).unwrap();
    let expected = json!([
        {"ip": "93.184.216.34", "name": "example.com"},
        {"ip": "1.1.1.1", "name": "one.one"},
    ]);
    assert_eq!(v, expected);
    let empty = json::dns(&server_snapshot(t0));
    assert_eq!(empty, "[]");
}

#[test]
fn ikago_web_totals_add_up() {
    // IkaGo-web sums `size` over local.out and local.in: no extra "total" node may be present
    let t0 = Instant::now();
    let v: Value = serde_json::from_str(&json::original(&client_snapshot(t0))).unwrap();
    let sum = |dir: &str| -> u64 {
        let nodes = v["monitor"]["local"][dir].as_object().unwrap();
        nodes.values().map(|n| n["size"].as_u64().unwrap()).sum()
    };
    assert_eq!(sum("out"), 1180);
    assert_eq!(sum("in"), 700);
}
