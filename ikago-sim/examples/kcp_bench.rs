//! KCP against plain FakeTCP over a lossy link: goodput, delivery and latency percentiles of a
//! paced UDP flow at 0%, 5% and 20% random loss each way with 30 ms one-way delay, in virtual
//! time (deterministic: the same seed gives the same table)
//!
//! `cargo run --release -p ikago-sim --example kcp_bench`

use ikago_proto::KcpTuning;
use ikago_sim::{HostConfig, LinkConfig, RouterConfig, World, WorldConfig, addr};
use std::net::SocketAddrV4;
use std::time::Duration;

const SINK: u16 = 9000;
/// Datagrams per run, and their spacing: 200 a second of 1000 bytes (1.6 Mbit/s)
const DATAGRAMS: u32 = 1000;
const PACE: Duration = Duration::from_millis(5);
const PAYLOAD: usize = 1000;

/// One row: delivered fraction, goodput over the sending time, p50 and p99 latency
fn run(loss: f64, kcp: Option<KcpTuning>) -> (f64, f64, Duration, Duration) {
    let mut config = WorldConfig::new(7);
    config.router = RouterConfig {
        link: LinkConfig {
            loss,
            delay: Duration::from_millis(30),
            ..LinkConfig::clean()
        },
        ..RouterConfig::firewall()
    };
    config.server.kcp = kcp;
    let mut w = World::new(config);
    let client = w.add_client(|c| c.kcp = kcp);
    let pc = w.add_lan_host(client, HostConfig::lan("pc", addr::lan(2)));
    let far = w.add_internet_host(HostConfig::internet("far", addr::internet(2)));
    w.host_mut(far).udp_bind(SINK);
    w.run_until(|w| w.client(client).is_connected(), 1_000_000);
    let to = SocketAddrV4::new(w.host(far).config().addr.expect("an IPv4 host"), SINK);
    let mut sent = Vec::new();
    for i in 0..DATAGRAMS {
        let mut payload = i.to_be_bytes().to_vec();
        payload.resize(PAYLOAD, 0x5a);
        sent.push(w.now());
        w.host_mut(pc).udp_send(5000, to, &payload);
        w.run_for(PACE);
    }
    let span = PACE * DATAGRAMS;
    let end = w.now() + Duration::from_secs(60);
    while w.now() < end && w.host(far).payloads_on(SINK).len() < DATAGRAMS as usize {
        w.run_for(Duration::from_millis(100));
    }
    let got = w
        .host(far)
        .datagrams()
        .iter()
        .filter(|d| d.port == SINK)
        .collect::<Vec<_>>();
    let mut latency: Vec<Duration> = got
        .iter()
        .map(|d| {
            d.at - sent[u32::from_be_bytes(d.payload[..4].try_into().expect("4 bytes")) as usize]
        })
        .collect();
    latency.sort();
    let pct = |p: f64| {
        latency
            .get(((latency.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let delivered = got.len() as f64 / f64::from(DATAGRAMS);
    let goodput = (got.len() * PAYLOAD * 8) as f64 / span.as_secs_f64() / 1e3;
    (delivered, goodput, pct(0.5), pct(0.99))
}

fn main() {
    let fast = KcpTuning {
        nodelay: true,
        interval_ms: 10,
        resend: 2,
        nc: true,
        ..KcpTuning::default()
    };
    println!(
        "paced UDP flow: {DATAGRAMS} datagrams of {PAYLOAD} bytes, one every {PACE:?}; 30 ms one way"
    );
    println!(
        "{:<24} {:>5} {:>10} {:>14} {:>10} {:>10}",
        "tunnel", "loss", "delivered", "goodput kbit/s", "p50", "p99"
    );
    for loss in [0.0, 0.05, 0.20] {
        for (name, kcp) in [
            ("plain FakeTCP", None),
            ("KCP, original defaults", Some(KcpTuning::default())),
            ("KCP, fast profile", Some(fast)),
        ] {
            let (delivered, goodput, p50, p99) = run(loss, kcp);
            println!(
                "{name:<24} {:>4.0}% {:>9.1}% {goodput:>14.0} {:>10} {:>10}",
                loss * 100.0,
                delivered * 100.0,
                format!("{:.1?}", p50),
                format!("{:.1?}", p99)
            );
        }
    }
}
