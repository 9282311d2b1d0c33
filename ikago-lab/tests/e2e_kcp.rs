//! KCP with FEC through a lossy firewall, both runners (root; skipped otherwise): with 10%
//! random loss each way on the client's WAN leg, a UDP echo stream through KCP gets every
//! reply back, while plain FakeTCP loses about a fifth of the round trips (1 - 0.9²)

use ikago_lab::addr::{DESTINATION, ECHO_PORT};
use ikago_lab::probe::udp;
use ikago_lab::{ClientSite, FirewallPolicy, Host, Lab, Runner, TunnelOptions};
use std::net::SocketAddrV4;
use std::time::Duration;

/// Echo round trips per run
const ROUNDS: usize = 100;
/// kcp's "fast" profile: what a user of a lossy link should choose
const FAST: [&str; 5] = [
    "--kcp",
    "--kcp-nodelay",
    "--kcp-interval=10",
    "--kcp-resend=2",
    "--kcp-nc=1",
];

/// How many of `ROUNDS` echoes come back through a tunnel with `extra` options at 10% loss,
/// each waited for `timeout`; with `every`, the rounds stop at the first echo that does not come
/// back (one lost round fails the test: the rest would only wait out their timeouts)
fn answered(runner: Runner, extra: &[&str], timeout: Duration, every: bool) -> usize {
    let policy = FirewallPolicy {
        loss: Some(0.10),
        ..FirewallPolicy::default()
    };
    let options = TunnelOptions {
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..TunnelOptions::default()
    };
    let lab = Lab::build(policy).expect("lab builds");
    let _server = lab
        .start_ready_server(runner, &options)
        .expect("server starts");
    let _client = lab
        .start_client(runner, ClientSite::Main, &options)
        .expect("client connects");
    let to = SocketAddrV4::new(DESTINATION, ECHO_PORT);
    let rounds = (0..ROUNDS).map(|_| udp::echo(lab.ns(Host::HostA), to, 200, timeout).is_ok());
    if every {
        rounds.take_while(|&back| back).count()
    } else {
        rounds.filter(|&back| back).count()
    }
}

fn kcp_gets_every_reply(runner: Runner) {
    let kcp = answered(runner, &FAST, Duration::from_secs(3), true);
    let plain = answered(runner, &[], Duration::from_millis(500), false);
    println!(
        "{}: 10% loss each way: KCP {kcp}/{ROUNDS} replies in a row, plain FakeTCP {plain}/{ROUNDS}",
        runner.name()
    );
    assert_eq!(
        kcp,
        ROUNDS,
        "KCP lost round trip {} of {ROUNDS} (no echo within 3 s)",
        kcp + 1
    );
    assert!(
        plain < ROUNDS * 95 / 100,
        "plain FakeTCP lost less than expected: {plain}/{ROUNDS}"
    );
}

#[test]
fn kcp_through_10_percent_loss_sync() {
    if ikago_lab::require_root() {
        kcp_gets_every_reply(Runner::Sync);
    }
}

#[test]
fn kcp_through_10_percent_loss_async() {
    if ikago_lab::require_root() {
        kcp_gets_every_reply(Runner::Async);
    }
}
