//! KCP with FEC under heavy loss: with 5%, 10% and 20% random loss each way and 30 ms one-way
//! delay on the WAN, every inner UDP datagram of a paced flow arrives exactly once and in order;
//! plain FakeTCP over the same link loses about as much as the link does. The test prints the
//! latency percentiles and how many segments FEC rebuilt versus how many were retransmitted.

mod common;

use common::{Basic, connect};
use ikago_proto::KcpTuning;
use ikago_sim::{LinkConfig, RouterConfig, WorldConfig};
use std::net::SocketAddrV4;
use std::time::Duration;

const SINK: u16 = 9000;
const DATAGRAMS: u32 = 200;
/// 20 datagrams a second, a game's or a voice call's rhythm
const PACE: Duration = Duration::from_millis(50);

/// A World whose WAN loses `loss` of the packets each way, 30 ms one way
fn lossy(seed: u64, loss: f64, kcp: Option<KcpTuning>) -> Basic {
    let mut config = WorldConfig::new(seed);
    config.router = RouterConfig {
        link: LinkConfig {
            loss,
            delay: Duration::from_millis(30),
            ..LinkConfig::clean()
        },
        ..RouterConfig::firewall()
    };
    config.server.kcp = kcp;
    let mut b = Basic::with_client(config, |c| c.kcp = kcp);
    b.world.host_mut(b.far).udp_bind(SINK);
    connect(&mut b.world, b.client);
    b
}

/// Sends the paced flow; returns each datagram's send time
fn send_flow(b: &mut Basic) -> Vec<Duration> {
    let to = SocketAddrV4::new(
        b.world.host(b.far).config().addr.expect("an IPv4 host"),
        SINK,
    );
    let mut sent = Vec::new();
    for i in 0..DATAGRAMS {
        let mut payload = i.to_be_bytes().to_vec();
        payload.resize(160, 0x5a);
        sent.push(b.world.now());
        b.world.host_mut(b.pc).udp_send(5000, to, &payload);
        b.world.run_for(PACE);
    }
    sent
}

/// Runs until every datagram arrived at the sink, or `limit` of virtual time passed
fn drain(b: &mut Basic, limit: Duration) {
    let end = b.world.now() + limit;
    while b.world.now() < end && b.world.host(b.far).payloads_on(SINK).len() < DATAGRAMS as usize {
        b.world.run_for(Duration::from_millis(100));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn kcp_delivers_every_datagram_once_and_in_order_under_loss() {
    // the original's defaults, and kcp's "fast" profile (nodelay, 10 ms interval, fast resend
    // after 2 ACKs, no congestion control), which users of lossy links should choose
    let fast = KcpTuning {
        nodelay: true,
        interval_ms: 10,
        resend: 2,
        nc: true,
        ..KcpTuning::default()
    };
    for (seed, loss, name, tuning) in [
        (51, 0.05, "default", KcpTuning::default()),
        (52, 0.10, "default", KcpTuning::default()),
        (53, 0.20, "default", KcpTuning::default()),
        (51, 0.05, "fast", fast),
        (52, 0.10, "fast", fast),
        (53, 0.20, "fast", fast),
    ] {
        let mut b = lossy(seed, loss, Some(tuning));
        let sent = send_flow(&mut b);
        // the original's default tuning backs its RTO off hard at 20% loss: late, but whole
        drain(&mut b, Duration::from_secs(120));
        let got = b
            .world
            .host(b.far)
            .datagrams()
            .iter()
            .filter(|d| d.port == SINK)
            .cloned()
            .collect::<Vec<_>>();
        let order: Vec<u32> = got
            .iter()
            .map(|d| u32::from_be_bytes(d.payload[..4].try_into().unwrap()))
            .collect();
        assert_eq!(
            order,
            (0..DATAGRAMS).collect::<Vec<_>>(),
            "loss {loss}: exactly once, in order\n{}",
            b.world.summary()
        );
        let mut latency: Vec<Duration> = got.iter().zip(&sent).map(|(d, s)| d.at - *s).collect();
        latency.sort();
        let client = b.world.client(b.client).stats().kcp.expect("KCP counters");
        let server = b.world.server().stats().kcp.expect("KCP counters");
        println!(
            "{name:>7} loss {:>3.0}%: p50 {:?} p99 {:?}; client->server: {} retransmitted, {} rebuilt by FEC at the server",
            loss * 100.0,
            percentile(&latency, 0.5),
            percentile(&latency, 0.99),
            client.retransmissions,
            server.fec_recovered,
        );
    }
}

#[test]
fn plain_faketcp_loses_what_the_link_loses() {
    let mut b = lossy(54, 0.10, None);
    send_flow(&mut b);
    drain(&mut b, Duration::from_secs(5));
    let got = b.world.host(b.far).payloads_on(SINK).len() as f64;
    let lost = 1.0 - got / f64::from(DATAGRAMS);
    assert!(
        (0.04..0.2).contains(&lost),
        "lost {lost:.2} of the datagrams at 10% link loss"
    );
}
