//! `/dashboard` in headless Chromium, against a monitor fed rising snapshots
//!
//! Needs a Chromium binary (Debian: `apt-get install chromium`); set `IKAGO_CHROMIUM` to use
//! another one. Without one the test says SKIPPED and passes. The screenshot is saved as
//! `target/artifacts/dashboard.png`.

mod common;

use common::*;
use ikago_monitor::{Monitor, Publisher, Recorder, Role};
use ikago_proto::{DropReason, Event, Peer, Protocol, Stats};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Longest a Chromium run may take
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Real time between two snapshots (each is one second of snapshot time later)
const STEP: Duration = Duration::from_millis(25);

fn chromium() -> Option<String> {
    let candidates = std::env::var("IKAGO_CHROMIUM").into_iter().chain(
        [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "chrome-headless-shell",
        ]
        .map(String::from),
    );
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Runs headless Chromium on `url` with `extra` arguments, killing it after [`BROWSER_TIMEOUT`]
fn run(browser: &str, profile: &Path, extra: &[&str], url: &str) -> Output {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let t = Instant::now();
    while child.try_wait().expect("wait for chromium").is_none() {
        if t.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("chromium's output");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Publishes one snapshot per `step` of real time, each one second of snapshot time after the
/// previous: `stats(recorder, n, now)` makes the `n`th
fn feed<F>(publisher: Publisher, role: Role, stop: Arc<AtomicBool>, stats: F) -> JoinHandle<()>
where
    F: Fn(&mut Recorder, u64, Instant) -> Stats + Send + 'static,
{
    thread::spawn(move || {
        let t0 = Instant::now();
        let mut r = recorder(role, t0);
        let mut n: u64 = 1;
        while !stop.load(Ordering::Acquire) {
            let now = t0 + Duration::from_secs(n);
            let s = stats(&mut r, n, t0);
            publisher.publish(r.snapshot(s, now));
            n += 1;
            thread::sleep(STEP);
        }
    })
}

/// Bytes after `n` seconds of a rate that swings between 0.5 and 1.5 times `base` bytes/s
fn wave(n: u64, base: u64) -> u64 {
    let rate = |k: u64| base as f64 * (1.0 + 0.5 * (k as f64 / 4.0).sin());
    (1..=n).map(rate).sum::<f64>() as u64
}

/// A client whose source 10.6.0.2 sends about 1 Mbit/s and receives about 2 Mbit/s
fn client(r: &mut Recorder, n: u64, t0: Instant) -> Stats {
    let now = t0 + Duration::from_secs(n);
    if n == 1 {
        let dns = Event::DnsRecord {
            name: "example.com".into(),
            ip: Ipv4Addr::new(93, 184, 216, 34).into(),
        };
        r.record(&dns, now);
        let dns6 = Event::DnsRecord {
            name: "six.example".into(),
            ip: "2001:db8:24::53".parse().unwrap(),
        };
        r.record(&dns6, now);
        let server = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 18081));
        let rtt = Duration::from_millis(23);
        r.record(&Event::Connected { server, rtt }, now);
    }
    let mut s = Stats::default();
    let (out, r#in) = (
        counter(n * 100, wave(n, 125_000)),
        counter(n * 180, wave(n, 250_000)),
    );
    let src = Peer::Source(Ipv4Addr::new(10, 6, 0, 2).into());
    let src6 = Peer::Source("fd00:21::4".parse().unwrap());
    s.peers = vec![
        peer(src, out, r#in, 0, n, t0),
        peer(
            src6,
            counter(n * 10, n * 1000),
            counter(n * 20, n * 2000),
            0,
            n,
            t0,
        ),
    ];
    let remote = Peer::Remote(Ipv4Addr::new(93, 184, 216, 34).into());
    s.remotes = vec![peer(remote, out, r#in, 0, n, t0)];
    s.tunnel_tx = counter(n * 110, wave(n, 140_000));
    s.tunnel_rx = counter(n * 190, wave(n, 270_000));
    s.handshakes = 1;
    s.protocol = Some(Protocol::Ikago2);
    s.rtt = Some(Duration::from_micros(23_400 + (n % 7) * 300));
    for _ in 0..n % 5 {
        s.drops.add(DropReason::NoRoute);
    }
    s.drops.add(DropReason::Malformed);
    s
}

/// A server with two clients, a few NAT mappings and KCP
fn server(r: &mut Recorder, n: u64, t0: Instant) -> Stats {
    if n == 1 {
        for e in nat_events() {
            r.record(&e, t0);
        }
        let nat66 = Event::NatMapped {
            client: SocketAddr::from((Ipv4Addr::new(198, 51, 100, 7), 50_000)),
            protocol: 58,
            inner: "[fd00:21::4]:7".parse().unwrap(),
            public: "[2001:db8:24::1]:7".parse().unwrap(),
        };
        r.record(&nat66, t0);
    }
    let mut s = server_stats(t0);
    for (i, p) in s.peers.iter_mut().enumerate() {
        let k = i as u64 + 1;
        p.out = counter(n * 90 * k, wave(n, 60_000 * k));
        p.r#in = counter(n * 150 * k, wave(n + 7 * k, 190_000 * k));
        p.last_seen = t0 + Duration::from_secs(n);
        p.protocol = Some([Protocol::Ikago2, Protocol::Ikago][i % 2]);
    }
    s.tunnel_rx = counter(n * 250, wave(n, 260_000));
    s.tunnel_tx = counter(n * 400, wave(n + 3, 600_000));
    s
}

/// The value of attribute `name` on the element that carries `data-peer="peer"`
fn attribute(dom: &str, peer: &str, name: &str) -> Option<u64> {
    let at = dom.find(&format!("data-peer=\"{peer}\""))?;
    let tag_end = at + dom[at..].find('>')?;
    let tag = &dom[dom[..at].rfind('<')?..tag_end];
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    tag[start..].split('"').next()?.parse().ok()
}

fn updates(dom: &str) -> u64 {
    let key = "data-updates=\"";
    let start = dom.find(key).expect("the body counts its updates") + key.len();
    dom[start..].split('"').next().unwrap().parse().unwrap()
}

fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("artifacts")
}

/// A fresh Chromium profile directory for one run
fn profile(name: &str) -> PathBuf {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("ikago-monitor-{name}-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Saves a screenshot of `url` as `target/artifacts/<name>` after a few polls
fn screenshot(browser: &str, url: &str, name: &str) -> PathBuf {
    let dir = artifacts();
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(name);
    let _ = std::fs::remove_file(&png);
    let shot = format!("--screenshot={}", png.display());
    let profile = profile(name);
    run(
        browser,
        &profile,
        &[&shot, "--virtual-time-budget=30000"],
        url,
    );
    let _ = std::fs::remove_dir_all(&profile);
    let image = std::fs::read(&png).expect("a screenshot");
    assert!(
        image.starts_with(b"\x89PNG\r\n\x1a\n") && image.len() > 10_000,
        "a real PNG"
    );
    eprintln!("screenshot: {}", png.display());
    png
}

/// The DOM of `url` after `--virtual-time-budget=4000` (a few polls)
fn dump(browser: &str, url: &str) -> String {
    let profile = profile("dump");
    let out = run(
        browser,
        &profile,
        &["--dump-dom", "--virtual-time-budget=4000"],
        url,
    );
    let _ = std::fs::remove_dir_all(&profile);
    String::from_utf8(out.stdout).expect("a UTF-8 DOM")
}

#[test]
fn dashboard_shows_the_source_and_rising_counters() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium binary (apt-get install chromium, or set IKAGO_CHROMIUM)");
        return;
    };
    let monitor = Monitor::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}/dashboard", monitor.local_addr());
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed(monitor.publisher(), Role::Client, stop.clone(), client);

    let first = dump(&browser, &url);
    assert!(
        first.contains("data-peer=\"10.6.0.2\""),
        "the source is shown:\n{first}"
    );
    assert!(first.contains("IkaGo-client"), "{first}");
    assert!(updates(&first) >= 1, "the page applied a snapshot");
    let bytes_before = attribute(&first, "10.6.0.2", "data-bytes-out").expect("a byte count");
    assert!(bytes_before > 0);

    thread::sleep(Duration::from_millis(1500));
    let second = dump(&browser, &url);
    let bytes_after = attribute(&second, "10.6.0.2", "data-bytes-out").unwrap();
    let ipv6_source = attribute(&second, "fd00:21::4", "data-bytes-in");
    assert!(
        ipv6_source.is_some_and(|b| b > 0),
        "the IPv6 source's card:\n{second}"
    );
    let packets_after = attribute(&second, "10.6.0.2", "data-packets-in").unwrap();
    assert!(
        bytes_after > bytes_before,
        "counters rise: {bytes_before} then {bytes_after}"
    );
    assert!(packets_after > 0);
    // more than one snapshot reached this page: it shows a throughput, the RTT and the drops
    assert!(updates(&second) >= 2, "several polls in one page");
    assert!(
        second.contains("Mbit/s"),
        "a throughput in Mbit/s:\n{second}"
    );
    assert!(second.contains(" ms</b>"), "the RTT:\n{second}");
    assert!(
        second.contains(r#"<b id="protocol">ikago2</b>"#),
        "the wire in use:\n{second}"
    );
    assert!(
        second.contains("malformed"),
        "the drops by reason:\n{second}"
    );
    assert!(
        second.contains(r#"<section id="dns-box">"#)
            && second.contains("<td>six.example</td><td>2001:db8:24::53</td>")
            && second.contains("<td>example.com</td><td>93.184.216.34</td>"),
        "the names learned from A and AAAA records:\n{second}"
    );
    assert!(
        second.contains(r#"<div id="unopenable" role="alert" hidden="">"#),
        "no warning while the server's replies open:\n{second}"
    );

    screenshot(&browser, &url, "dashboard.png");
    stop.store(true, Ordering::Release);
    feeder.join().unwrap();
}

#[test]
fn dashboard_shows_clients_the_nat_table_and_kcp_on_the_server() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium binary (apt-get install chromium, or set IKAGO_CHROMIUM)");
        return;
    };
    let monitor = Monitor::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let url = format!("http://{}/dashboard", monitor.local_addr());
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = feed(monitor.publisher(), Role::Server, stop.clone(), server);

    let dom = dump(&browser, &url);
    assert!(dom.contains("IkaGo-server"), "{dom}");
    for client in ["198.51.100.7:50000", "198.51.100.8:61000"] {
        let bytes = attribute(&dom, client, "data-bytes-in").expect("the client is shown");
        assert!(bytes > 0);
    }
    for wire in ["ikago2", "ikago"] {
        assert!(
            dom.contains(&format!(r#"<small class="protocol"> {wire} </small>"#)),
            "each client's wire ({wire}):\n{dom}"
        );
    }
    assert!(dom.contains("3 of 98304 in use"), "the NAT usage:\n{dom}");
    assert!(
        dom.contains("<td>ICMPv6</td><td>198.51.100.7:50000</td><td>[fd00:21::4]:7</td><td>[2001:db8:24::1]:7</td>"),
        "the NAT table lists the NAT66 mapping:\n{dom}"
    );
    for public in ["203.0.113.1:50001", "203.0.113.1:50002", "203.0.113.1:0"] {
        assert!(
            dom.contains(&format!("<td>{public}</td>")),
            "the NAT table lists {public}"
        );
    }
    assert!(dom.contains("retransmissions"), "the KCP counters:\n{dom}");
    assert!(
        dom.contains(r#"<section id="dns-box" hidden="">"#),
        "no DNS names on the server:\n{dom}"
    );
    assert!(dom.contains("no nat mapping"), "the drops:\n{dom}");
    assert!(
        dom.contains(
            r#"<div id="unopenable" role="alert">1 client sends payloads that cannot be opened: wrong password or method?</div>"#
        ),
        "the warning about the client with a wrong password:\n{dom}"
    );

    screenshot(&browser, &url, "dashboard-server.png");
    stop.store(true, Ordering::Release);
    feeder.join().unwrap();
}
