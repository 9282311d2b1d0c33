//! `/metrics` through a strict parser of the Prometheus text format (and `promtool` when
//! installed)

mod common;

use common::*;
use ikago_monitor::{Monitor, Role, prometheus};
use ikago_proto::DropReason;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

fn families(text: &str) -> BTreeMap<String, Family> {
    parse_metrics(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn value(f: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let family = f.get(name).unwrap_or_else(|| panic!("no family {name}"));
    family
        .value(labels)
        .unwrap_or_else(|| panic!("no {name}{labels:?}"))
}

/// Every drop reason is exported, zeros included
fn check_drops(f: &BTreeMap<String, Family>) {
    let drops = &f["ikago_drops_total"];
    assert_eq!(drops.kind, "counter");
    assert_eq!(drops.samples.len(), DropReason::COUNT);
    for &r in DropReason::ALL {
        assert!(
            drops.value(&[("reason", r.label())]).is_some(),
            "{}",
            r.label()
        );
    }
}

#[test]
fn client_metrics_parse_and_carry_the_counters() {
    let t0 = Instant::now();
    let f = families(&prometheus::render(&client_snapshot(t0)));
    assert_eq!(
        value(
            &f,
            "ikago_info",
            &[("role", "client"), ("version", "1.2.3")]
        ),
        1.0
    );
    assert_eq!(value(&f, "ikago_uptime_seconds", &[]), 10.5);
    for (family, out, r#in) in [
        ("ikago_tunnel_packets_total", 30.0, 20.0),
        ("ikago_tunnel_bytes_total", 4000.0, 3000.0),
        ("ikago_inner_packets_total", 13.0, 5.0),
        ("ikago_inner_bytes_total", 1180.0, 700.0),
        ("ikago_local_packets_total", 5.0, 13.0),
        ("ikago_local_bytes_total", 700.0, 1180.0),
    ] {
        assert_eq!(value(&f, family, &[("direction", "out")]), out, "{family}");
        assert_eq!(value(&f, family, &[("direction", "in")]), r#in, "{family}");
    }
    let src = |ip, dir| [("source", ip), ("direction", dir)];
    assert_eq!(
        value(&f, "ikago_source_packets_total", &src("10.6.0.2", "out")),
        10.0
    );
    assert_eq!(
        value(&f, "ikago_source_bytes_total", &src("10.6.0.2", "in")),
        700.0
    );
    assert_eq!(
        value(&f, "ikago_source_bytes_total", &src("10.6.0.3", "out")),
        180.0
    );
    assert_eq!(
        value(&f, "ikago_source_packets_total", &src("10.6.0.3", "in")),
        0.0
    );
    check_drops(&f);
    assert_eq!(
        value(&f, "ikago_drops_total", &[("reason", "no_route")]),
        2.0
    );
    assert_eq!(
        value(&f, "ikago_drops_total", &[("reason", "malformed")]),
        1.0
    );
    assert_eq!(value(&f, "ikago_handshakes_total", &[]), 2.0);
    assert_eq!(value(&f, "ikago_mode", &[("mode", "faketcp")]), 1.0);
    assert_eq!(value(&f, "ikago_reconnects_total", &[]), 1.0);
    assert_eq!(value(&f, "ikago_unopenable_peers", &[]), 0.0);
    assert_eq!(f["ikago_unopenable_peers"].kind, "gauge");
    assert_eq!(value(&f, "ikago_rtt_seconds", &[]), 0.0236);
    assert_eq!(value(&f, "ikago_rtt_age_seconds", &[]), 0.0);
    assert_eq!(f["ikago_rtt_seconds"].kind, "gauge");
    // server-only and KCP families stay out
    assert!(!f.contains_key("ikago_nat_mappings"));
    assert!(!f.contains_key("ikago_client_packets_total"));
    assert!(!f.keys().any(|k| k.starts_with("ikago_kcp_")));
}

#[test]
fn server_metrics_parse_and_carry_nat_and_kcp() {
    let t0 = Instant::now();
    let f = families(&prometheus::render(&server_snapshot(t0)));
    assert_eq!(
        value(
            &f,
            "ikago_info",
            &[("role", "server"), ("version", "1.2.3")]
        ),
        1.0
    );
    let cl = |a, dir| [("client", a), ("direction", dir)];
    assert_eq!(
        value(
            &f,
            "ikago_client_packets_total",
            &cl("198.51.100.7:50000", "out")
        ),
        12.0
    );
    assert_eq!(
        value(
            &f,
            "ikago_client_bytes_total",
            &cl("198.51.100.7:50000", "in")
        ),
        1100.0
    );
    assert_eq!(
        value(
            &f,
            "ikago_client_bytes_total",
            &cl("198.51.100.8:61000", "out")
        ),
        120.0
    );
    check_drops(&f);
    assert_eq!(
        value(&f, "ikago_drops_total", &[("reason", "no_nat_mapping")]),
        1.0
    );
    assert_eq!(value(&f, "ikago_unopenable_peers", &[]), 1.0);
    assert_eq!(value(&f, "ikago_nat_mappings", &[]), 3.0);
    assert_eq!(value(&f, "ikago_nat_capacity", &[]), 98304.0);
    assert_eq!(value(&f, "ikago_kcp_retransmissions_total", &[]), 4.0);
    assert_eq!(value(&f, "ikago_kcp_timeouts_total", &[]), 1.0);
    assert_eq!(value(&f, "ikago_kcp_fec_recovered_total", &[]), 2.0);
    assert_eq!(value(&f, "ikago_kcp_fec_errors_total", &[]), 0.0);
    assert_eq!(value(&f, "ikago_kcp_srtt_seconds", &[]), 0.031);
    assert_eq!(value(&f, "ikago_kcp_rto_seconds", &[]), 0.2);
    assert_eq!(value(&f, "ikago_kcp_cwnd_segments", &[]), 16.0);
    assert_eq!(value(&f, "ikago_kcp_in_flight_segments", &[]), 3.0);
    assert_eq!(value(&f, "ikago_kcp_queued_segments", &[]), 5.0);
    assert!(!f.contains_key("ikago_rtt_seconds"));
    assert!(!f.contains_key("ikago_reconnects_total"));
    assert!(!f.contains_key("ikago_source_packets_total"));
}

#[test]
fn label_values_are_escaped() {
    let t0 = Instant::now();
    let stats = client_stats(t0);
    let version = "1.0 \"quoted\" \\ back\nslash";
    let snap =
        ikago_monitor::Recorder::new(Role::Client, version, t0, start_wall()).snapshot(stats, t0);
    let text = prometheus::render(&snap);
    assert!(
        text.contains(r#"version="1.0 \"quoted\" \\ back\nslash""#),
        "{text}"
    );
    let f = families(&text);
    assert_eq!(
        value(
            &f,
            "ikago_info",
            &[("role", "client"), ("version", version)]
        ),
        1.0
    );
}

#[test]
fn served_metrics_parse_with_the_right_content_type() {
    let monitor = Monitor::start("127.0.0.1:0".parse().unwrap()).unwrap();
    monitor.publisher().publish(server_snapshot(Instant::now()));
    let r = get(monitor.local_addr(), "/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    families(r.text());
}

/// Runs `promtool check metrics` on `text`, if promtool is installed
fn promtool(text: &str) -> Option<Output> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(text.as_bytes())
        .expect("promtool reads its input");
    drop(stdin);
    Some(child.wait_with_output().expect("promtool runs"))
}

/// Prometheus's own parser and linter, when installed (Debian's `prometheus` ships `promtool`)
#[test]
fn promtool_accepts_the_metrics() {
    let t0 = Instant::now();
    for snap in [client_snapshot(t0), server_snapshot(t0)] {
        let text = prometheus::render(&snap);
        let Some(out) = promtool(&text) else {
            eprintln!("SKIPPED: promtool not found (apt-get install prometheus to run this check)");
            return;
        };
        assert!(
            out.status.success(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn device_counters_show_where_frames_died() {
    let t0 = Instant::now();
    let mut s = server_snapshot(t0);
    assert!(
        !prometheus::render(&s).contains("ikago_capture"),
        "no families before the runner sets them"
    );
    s.devices = vec![
        ikago_monitor::DeviceCounters {
            device: "wan0".into(),
            captured: 1000,
            capture_dropped: 7,
            interface_dropped: 2,
            injected: 990,
            inject_failed: 3,
            inject_short: 1,
        },
        ikago_monitor::DeviceCounters {
            device: "dst0".into(),
            ..Default::default()
        },
    ]
    .into();
    let text = prometheus::render(&s);
    let f = families(&text);
    let wan = [("device", "wan0")];
    assert_eq!(value(&f, "ikago_capture_frames_total", &wan), 1000.0);
    let place = |p| [("device", "wan0"), ("where", p)];
    assert_eq!(
        value(&f, "ikago_capture_drops_total", &place("buffer")),
        7.0
    );
    assert_eq!(
        value(&f, "ikago_capture_drops_total", &place("interface")),
        2.0
    );
    assert_eq!(value(&f, "ikago_inject_frames_total", &wan), 990.0);
    assert_eq!(value(&f, "ikago_inject_failures_total", &wan), 3.0);
    assert_eq!(value(&f, "ikago_inject_short_batches_total", &wan), 1.0);
    assert_eq!(
        value(&f, "ikago_inject_failures_total", &[("device", "dst0")]),
        0.0
    );
    for name in ["ikago_capture_frames_total", "ikago_inject_failures_total"] {
        assert_eq!(f[name].kind, "counter");
    }
    let api: serde_json::Value = serde_json::from_str(&ikago_monitor::json::api(&s)).unwrap();
    assert_eq!(api["devices"][0]["capture_dropped"], 7);
    assert_eq!(api["devices"][1]["device"], "dst0");
}
