//! End-to-end scenarios shared by both runners' test files: each builds its own lab (the basic
//! cases of a plain tunnel share one), starts IkaGo in it, and proves delivery through the
//! firewall that blocks UDP and ICMP

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ikago_lab::addr::*;
use ikago_lab::browser::{self, Chromium};
use ikago_lab::probe::udp::{Direction, StreamSpec};
use ikago_lab::probe::{dns, http, ping, raw, tcp, udp};
use ikago_lab::runner::{CONNECTED, SERVER_READY};
use ikago_lab::unprivileged::{Grant, NOBODY, Unprivileged, effective_uid};
use ikago_lab::{
    Blocking, CONNECT_TIMEOUT, ClientSite, Daemon, FirewallPolicy, Host, Lab, Netns, Runner,
    STOP_TIMEOUT, ServerSite, TunnelOptions, stop,
};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// Generates one `#[test]` per scenario for `$runner`, each skipped (and passing) without root
macro_rules! lab_tests {
    ($runner:expr => $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                if ikago_lab::require_root() {
                    common::$name($runner);
                }
            }
        )+
    };
}
pub(crate) use lab_tests;

/// Wait for one probe answer through the tunnel
const WAIT: Duration = Duration::from_secs(2);
/// Wait for a probe that must fail
const BLOCKED_WAIT: Duration = Duration::from_millis(800);
/// The wrong-password and restart deadlines
const RECOVERY: Duration = Duration::from_secs(10);
/// How soon after the active server is killed the echoes must come back through the other
const FAILOVER_LIMIT: Duration = Duration::from_secs(5);
/// How soon after a SIGHUP a newly configured source must get its echoes
const RELOAD_LIMIT: Duration = Duration::from_secs(5);
/// How long a client with a wrong password may take, once its LAN host sends, to say so (the
/// server too)
const UNOPENABLE_LIMIT: Duration = Duration::from_secs(10);
/// How long a client that starts during a SYN flood may take to get its first echo
const NEWCOMER_LIMIT: Duration = Duration::from_secs(15);
/// Size of the TCP transfers, each way
const TCP_BYTES: u64 = 10 * 1024 * 1024;
/// The one-way UDP stream: 20 MiB in 1200-byte datagrams at 40 Mbit/s (about 4 s)
const STREAM: StreamSpec = StreamSpec {
    bytes: 20 * 1024 * 1024,
    datagram: 1200,
    rate_bps: 40_000_000,
};

/// A lab with a server and the main client running; drops the processes before the lab
pub(crate) struct Tunnel {
    pub(crate) client: Daemon,
    pub(crate) server: Daemon,
    pub(crate) lab: Lab,
}

impl Tunnel {
    /// Builds a lab with `policy` and brings the tunnel up with `options`
    pub(crate) fn up(runner: Runner, policy: FirewallPolicy, options: &TunnelOptions) -> Self {
        Self::start(Lab::build(policy).expect("lab builds"), runner, options)
    }

    /// As [`Self::up`], with no other lab of this process beside it: for throughput bounds
    pub(crate) fn up_alone(
        runner: Runner,
        policy: FirewallPolicy,
        options: &TunnelOptions,
    ) -> Self {
        Self::start(
            Lab::build_alone(policy).expect("lab builds"),
            runner,
            options,
        )
    }

    /// Brings the tunnel up in `lab` with `options`
    fn start(lab: Lab, runner: Runner, options: &TunnelOptions) -> Self {
        let server = lab
            .start_ready_server(runner, options)
            .expect("server starts");
        let client = lab
            .start_client(runner, ClientSite::Main, options)
            .expect("client connects");
        Self {
            client,
            server,
            lab,
        }
    }

    /// A plain tunnel behind the default (blocking) firewall
    pub(crate) fn plain(runner: Runner) -> Self {
        Self::up(runner, FirewallPolicy::default(), &TunnelOptions::default())
    }

    pub(crate) fn ns(&self, host: Host) -> &Netns {
        self.lab.ns(host)
    }
}

fn echo_addr() -> SocketAddrV4 {
    SocketAddrV4::new(DESTINATION, ECHO_PORT)
}

fn dns_addr() -> SocketAddrV4 {
    SocketAddrV4::new(DESTINATION, DNS_PORT)
}

fn bulk_addr() -> SocketAddrV4 {
    SocketAddrV4::new(DESTINATION, BULK_PORT)
}

/// Resolves a name from `host` through the tunnel (one retry after a lost datagram)
fn resolves(t: &Tunnel, host: Host) {
    let ns = t.ns(host);
    let answer = dns::query_retry(ns, dns_addr(), "echo.lab.test", WAIT, 2)
        .unwrap_or_else(|e| panic!("{host:?}: dns through the tunnel: {e}"));
    assert_eq!(answer.0, DESTINATION);
}

fn echoes(t: &Tunnel, host: Host, size: usize) {
    udp::echo_retry(t.ns(host), echo_addr(), size, WAIT, 2)
        .unwrap_or_else(|e| panic!("{host:?}: {size}-byte udp echo through the tunnel: {e}"));
}

fn pings(t: &Tunnel, host: Host) {
    ping::through(t.ns(host), DESTINATION, Duration::from_millis(100))
        .unwrap_or_else(|e| panic!("{host:?}: {e}"));
}

fn stream(t: &Tunnel, direction: Direction) {
    let report = udp::stream(
        t.ns(Host::HostA),
        t.ns(Host::Destination),
        bulk_addr(),
        STREAM,
        direction,
    )
    .expect("stream runs");
    println!("{direction:?}: {report:?}");
    assert!(
        report.delivered() >= 0.9,
        "{direction:?}: {:.1}% delivered: {report:?}",
        report.delivered() * 100.0
    );
    assert!(
        report.delivered_last_tenth() >= 0.8,
        "{direction:?}: the stream stalled: {report:?}"
    );
}

/// One plain tunnel behind the blocking firewall for the basic cases, in turn: DNS is blocked
/// on the direct path and host A's goes through the tunnel; host B's through proxy ARP; UDP
/// echoes; ping; 10 MiB of TCP and 20 MiB of UDP each way; then a second client machine beside
/// the first
pub(crate) fn plain_tunnel_carries_everything(runner: Runner) {
    let t = dns_from_host_a(runner);
    dns_from_host_b_by_proxy_arp(&t);
    udp_echo_20_1300_1472(&t);
    ping_through_the_tunnel(&t);
    tcp_10mb_each_way(&t);
    udp_stream_20mb_one_way(&t);
    two_client_machines(&t, runner);
}

fn dns_from_host_a(runner: Runner) -> Tunnel {
    // alone: the 20 MiB streams have a delivery bound
    let lab = Lab::build_alone(FirewallPolicy::default()).expect("lab builds");
    // Direct, with kernel forwarding: the firewall blocks DNS
    lab.set_direct_routing(true).expect("forwarding on");
    assert!(
        dns::query(
            lab.ns(Host::HostA),
            dns_addr(),
            "echo.lab.test",
            BLOCKED_WAIT
        )
        .is_err(),
        "direct dns must be blocked"
    );
    lab.set_direct_routing(false).expect("forwarding off");
    let options = TunnelOptions::default();
    let server = lab
        .start_ready_server(runner, &options)
        .expect("server starts");
    let client = lab
        .start_client(runner, ClientSite::Main, &options)
        .expect("client connects");
    let t = Tunnel {
        client,
        server,
        lab,
    };
    resolves(&t, Host::HostA);
    t
}

fn dns_from_host_b_by_proxy_arp(t: &Tunnel) {
    resolves(t, Host::HostB);
    let neigh = t
        .ns(Host::HostB)
        .ip(&["neigh", "show", &PUBLISHED_GATEWAY.to_string()])
        .expect("neigh");
    assert!(
        neigh.contains("02:00:00:00:15:01"),
        "the client's lan0 answered for the gateway: {neigh}"
    );
}

fn udp_echo_20_1300_1472(t: &Tunnel) {
    for size in [20, 1300, 1472] {
        echoes(t, Host::HostA, size);
    }
}

fn ping_through_the_tunnel(t: &Tunnel) {
    pings(t, Host::HostA);
}

fn tcp_10mb_each_way(t: &Tunnel) {
    for direction in [Direction::Upload, Direction::Download] {
        let took = tcp::transfer(
            t.ns(Host::HostA),
            t.ns(Host::Destination),
            bulk_addr(),
            TCP_BYTES,
            direction,
        )
        .unwrap_or_else(|e| panic!("{direction:?} 10 MiB: {e}"));
        println!("{direction:?} 10 MiB in {took:?}");
    }
}

fn udp_stream_20mb_one_way(t: &Tunnel) {
    stream(t, Direction::Upload);
    stream(t, Direction::Download);
}

pub(crate) fn behind_masquerade(runner: Runner) {
    let t = Tunnel::up_alone(
        runner,
        FirewallPolicy::masquerading(),
        &TunnelOptions::default(),
    );
    resolves(&t, Host::HostA);
    echoes(&t, Host::HostA, 1472);
    pings(&t, Host::HostA);
    stream(&t, Direction::Upload);
    stream(&t, Direction::Download);
}

fn two_client_machines(t: &Tunnel, runner: Runner) {
    let _second = t
        .lab
        .start_client(runner, ClientSite::Second, &TunnelOptions::default())
        .expect("second client connects");
    for host in [Host::HostA, Host::HostC, Host::HostB] {
        resolves(t, host);
        echoes(t, host, 1300);
    }
    pings(t, Host::HostC);
}

pub(crate) fn every_method(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    for method in [
        "plain",
        "aes-128-gcm",
        "aes-192-gcm",
        "aes-256-gcm",
        "chacha20-poly1305",
        "xchacha20-poly1305",
    ] {
        let options = match method {
            "plain" => TunnelOptions::default(),
            _ => TunnelOptions::encrypted(method, &format!("pw-{method}")),
        };
        let server = lab
            .start_ready_server(runner, &options)
            .expect("server starts");
        let client = lab
            .start_client(runner, ClientSite::Main, &options)
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        udp::echo_retry(lab.ns(Host::HostA), echo_addr(), 1472, WAIT, 2)
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        dns::query(lab.ns(Host::HostA), dns_addr(), "echo.lab.test", WAIT)
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        // Killed, not stopped: a clean exit is `sigterm_exits_0_and_removes_rules`'s concern
        drop((client, server));
    }
}

pub(crate) fn wrong_password_gets_nothing(runner: Runner) {
    let options = TunnelOptions::encrypted("aes-256-gcm", "the-right-one");
    let t = Tunnel::up(runner, FirewallPolicy::default(), &options);
    let wrong = TunnelOptions::encrypted("aes-256-gcm", "a-wrong-one");
    let intruder = t
        .lab
        .spawn_client(runner, ClientSite::Second, &wrong)
        .expect("client starts");
    intruder
        .wait_for_line(CONNECTED, 0, CONNECT_TIMEOUT)
        .expect("the handshake itself needs no password");
    let c = t.ns(Host::HostC);
    assert!(
        dns::query(c, dns_addr(), "echo.lab.test", BLOCKED_WAIT).is_err(),
        "a wrong password gets nothing through"
    );
    // host C keeps trying until both ends have said what is wrong
    let client_says = "Server replies cannot be opened: wrong password or method?";
    let server_says = format!("Payloads from client {CLIENT2_WAN}:");
    let said = |d: &Daemon, needle: &str| d.lines().into_iter().find(|l| l.contains(needle));
    let start = Instant::now();
    let (client_line, server_line) = loop {
        if let (Some(c), Some(s)) = (said(&intruder, client_says), said(&t.server, &server_says)) {
            break (c, s);
        }
        assert!(
            start.elapsed() < UNOPENABLE_LIMIT,
            "both ends say so within {UNOPENABLE_LIMIT:?}: client {:#?}\nserver {:#?}",
            intruder.lines(),
            t.server.lines()
        );
        assert!(
            udp::echo(c, echo_addr(), 100, Duration::from_millis(300)).is_err(),
            "a wrong password gets nothing through"
        );
    };
    println!(
        "after {:?}: client: {client_line}\nserver: {server_line}",
        start.elapsed()
    );
    assert!(
        server_line.contains("cannot be opened: wrong password or method?"),
        "{server_line}"
    );
    for line in intruder.lines().iter().chain(&t.server.lines()) {
        assert!(
            !line.contains("the-right-one") && !line.contains("a-wrong-one"),
            "no password in the log: {line}"
        );
    }
    // The others are still served
    resolves(&t, Host::HostA);
    echoes(&t, Host::HostA, 1300);
    drop(intruder);
}

/// A spoofed SYN flood at the tunnel port from the clients' subnet, passed by the firewall: a
/// client that starts during it gets its echoes within [`NEWCOMER_LIMIT`], the live client keeps
/// working, and the server's log stays short
pub(crate) fn syn_flood_locks_nobody_out(runner: Runner) {
    let t = Tunnel::plain(runner);
    echoes(&t, Host::HostA, 100);
    let logged_before = t.server.line_count();
    let flood = raw::SynFlood {
        target: SocketAddrV4::new(SERVER_WAN, TUNNEL_PORT),
        // the clients' subnet, clear of the real clients' addresses
        first_source: Ipv4Addr::new(198, 18, 22, 10),
        hosts: 240,
        count: 20_000,
        duration: Duration::from_secs(8),
        seed: u64::from(std::process::id()),
    };
    std::thread::scope(|scope| {
        let attack = scope.spawn(|| flood.send(t.ns(Host::Client2)));
        std::thread::sleep(Duration::from_secs(1));
        let started = Instant::now();
        let newcomer = t
            .lab
            .spawn_client(runner, ClientSite::Second, &TunnelOptions::default())
            .expect("the new client starts");
        echoes(&t, Host::HostA, 100);
        let c = t.ns(Host::HostC);
        while udp::echo(c, echo_addr(), 100, Duration::from_millis(500)).is_err() {
            assert!(
                started.elapsed() < NEWCOMER_LIMIT,
                "no echo for the new client within {NEWCOMER_LIMIT:?}: client {:#?}\nserver {:#?}",
                newcomer.lines(),
                t.server.lines()
            );
        }
        let during = !attack.is_finished();
        println!(
            "the new client's first echo came back {:?} after it started ({} the flood)",
            started.elapsed(),
            if during { "during" } else { "after" }
        );
        let report = attack
            .join()
            .expect("the flood thread")
            .expect("the flood is sent");
        println!("flood: {report:?}");
        assert_eq!(report.sent, flood.count);
        echoes(&t, Host::HostA, 100);
        echoes(&t, Host::HostC, 100);
        let server = t.server.lines();
        println!(
            "the server logged {} lines meanwhile",
            server.len() - logged_before
        );
        assert!(
            server.len() - logged_before < 200,
            "the flood drew {} log lines: {:#?}",
            server.len() - logged_before,
            &server[logged_before..]
        );
        drop(newcomer);
    });
}

pub(crate) fn recovers_after_server_restart(runner: Runner) {
    let Tunnel {
        client,
        server,
        lab,
    } = Tunnel::plain(runner);
    let a = lab.ns(Host::HostA);
    udp::echo_retry(a, echo_addr(), 100, WAIT, 2).expect("echo before the restart");
    drop(server); // SIGKILL
    let _server = lab
        .start_server(runner, &TunnelOptions::default())
        .expect("server restarts");
    let restarted = Instant::now();
    while udp::echo(a, echo_addr(), 100, Duration::from_millis(300)).is_err() {
        assert!(
            restarted.elapsed() < RECOVERY,
            "no recovery within {RECOVERY:?}: {:#?}",
            client.lines()
        );
    }
    println!("recovered {:?} after the restart", restarted.elapsed());
}

/// Two servers, the client given both (`-s A:P,B:P`): the first carries host A's echoes; killed,
/// the echoes resume through the second within [`FAILOVER_LIMIT`], the client says `Switch from
/// server A to B` and its `/metrics` names the second as active, with one switch
pub(crate) fn fails_over_to_the_second_server(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let options = TunnelOptions {
        servers: vec![ServerSite::Main, ServerSite::Second],
        extra: vec!["--monitor".into(), MONITOR_PORT.to_string()],
        ..TunnelOptions::default()
    };
    // both capturing, so that a slow start of the first is no reason to begin with the second
    // (which runs until the end of the test)
    let [first, _second] = [ServerSite::Main, ServerSite::Second].map(|site| {
        lab.start_ready_server_at(runner, site, &options)
            .unwrap_or_else(|e| panic!("the {site:?} server: {e}"))
    });
    let client = lab
        .start_client(runner, ClientSite::Main, &options)
        .expect("client connects");
    let [a_server, b_server] = [ServerSite::Main, ServerSite::Second]
        .map(|s| SocketAddrV4::new(s.addr(), TUNNEL_PORT).to_string());
    assert!(
        client
            .lines()
            .iter()
            .any(|l| l.contains(CONNECTED) && l.contains(&a_server)),
        "the first server is preferred: {:#?}",
        client.lines()
    );
    let (c, a) = (lab.ns(Host::Client), lab.ns(Host::HostA));
    udp::echo_retry(a, echo_addr(), 100, WAIT, 2).expect("echo through the first server");
    let active = |server: &str| format!("ikago_active_server{{server=\"{server}\"}}");
    metrics_until(c, "the first server is active", |m| {
        m.get(&active(&a_server)) == Some(&1.0)
            && m.get("ikago_server_switches_total") == Some(&0.0)
    });

    drop(first); // SIGKILL, by its pid's process group
    let killed = Instant::now();
    while udp::echo(a, echo_addr(), 100, Duration::from_millis(300)).is_err() {
        assert!(
            killed.elapsed() < FAILOVER_LIMIT,
            "no echo through the second server within {FAILOVER_LIMIT:?}: {:#?}",
            client.lines()
        );
    }
    println!(
        "echoes resumed {:?} after the first server was killed",
        killed.elapsed()
    );
    let switch = format!("Switch from server {a_server} to {b_server}");
    client
        .wait_for_line(&switch, 0, WAIT)
        .expect("the client logs the switch");
    metrics_until(c, "the second server is active", |m| {
        m.get(&active(&b_server)) == Some(&1.0)
            && !m.contains_key(&active(&a_server))
            && m.get("ikago_server_switches_total") == Some(&1.0)
    });
    udp::echo_retry(a, echo_addr(), 1300, WAIT, 2).expect("echo through the second server");
}

/// The reload test's password
const FIRST_PASSWORD: &str = "reload-pw-first";
/// The password a reload logs as needing a restart
const SECOND_PASSWORD: &str = "reload-pw-second";

/// A config file of a test's own, removed when dropped
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(name: &str) -> Self {
        Self(std::env::temp_dir().join(format!("ikago-lab-{name}-{}.json", std::process::id())))
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.0, text).expect("the config file is written");
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The reload test's client config: these sources, published gateway and monitor, or not
fn reload_config(sources: &[Ipv4Addr], extra: bool, password: &str) -> String {
    let mut config = json!({
        "sources": sources.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "server": format!("{SERVER_WAN}:{TUNNEL_PORT}"),
        "method": "aes-256-gcm",
        "password": password,
        // the server speaks the Go-compatible wire (`TunnelOptions::encrypted`)
        "protocol": "ikago",
        "listen-devices": "lan0",
        "upstream-device": "wan0",
        "rule": true
    });
    if extra {
        config["publish"] = PUBLISHED_GATEWAY.to_string().into();
        config["monitor"] = MONITOR_PORT.into();
    }
    format!("# the lab's client\n{config:#}\n")
}

/// Sends SIGHUP to `client` and waits for its line containing `needle`; returns the lines
/// printed from the signal on
fn reload(client: &Daemon, needle: &str) -> Vec<String> {
    let since = client.line_count();
    client.signal(Signal::SIGHUP).expect("SIGHUP");
    client
        .wait_for_line(needle, since, WAIT)
        .unwrap_or_else(|e| panic!("{e}: {:#?}", &client.lines()[since..]));
    // what the loop logs after the line waited for
    std::thread::sleep(Duration::from_millis(200));
    client.lines().split_off(since)
}

/// Echoes from `host` until one comes back, at most [`RELOAD_LIMIT`]; returns how long it took
fn echoes_within_reload_limit(t: &Lab, host: Host, client: &Daemon) -> Duration {
    let start = Instant::now();
    while udp::echo(t.ns(host), echo_addr(), 100, Duration::from_millis(300)).is_err() {
        assert!(
            start.elapsed() < RELOAD_LIMIT,
            "{host:?}: no echo within {RELOAD_LIMIT:?} of the reload: {:#?}",
            client.lines()
        );
    }
    start.elapsed()
}

/// The client's config file changed under it, then SIGHUP: host B, added to the sources with its
/// gateway published, gets its echoes; the monitor starts; a new password is logged as needing
/// a restart and not applied (host A's echoes still open at the server); there is no new
/// handshake. A file that no longer parses is one error line, and the tunnel runs on as it
/// was. Host B taken out of the sources again gets nothing more.
pub(crate) fn sighup_reloads_the_config(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let _server = lab
        .start_ready_server(
            runner,
            &TunnelOptions::encrypted("aes-256-gcm", FIRST_PASSWORD),
        )
        .expect("server starts");
    let file = ConfigFile::new(&format!("reload-{}", runner.name()));
    file.write(&reload_config(&[HOST_A], false, FIRST_PASSWORD));
    let args = ["client", "-c", file.path(), "-v"].map(String::from);
    let client = lab
        .spawn_runner(runner, Host::Client, "client", &args)
        .expect("client starts");
    client
        .wait_for_line(CONNECTED, 0, CONNECT_TIMEOUT)
        .expect("client connects");
    let (a, b, c) = (Host::HostA, Host::HostB, lab.ns(Host::Client));
    udp::echo_retry(lab.ns(a), echo_addr(), 100, WAIT, 2).expect("host A's echo");
    assert!(
        udp::echo(lab.ns(b), echo_addr(), 100, BLOCKED_WAIT).is_err(),
        "host B is no source yet"
    );
    assert!(
        http::get(c, monitor_addr(), "/metrics", BLOCKED_WAIT).is_err(),
        "no monitor yet"
    );

    // host B and its gateway, the monitor, and a password that only a restart would apply
    file.write(&reload_config(&[HOST_A, HOST_B], true, SECOND_PASSWORD));
    let lines = reload(&client, "password changed: restart to apply");
    println!("after the reload: {lines:#?}");
    let took = echoes_within_reload_limit(&lab, b, &client);
    println!("host B's first echo {took:?} after the reload");
    udp::echo_retry(lab.ns(a), echo_addr(), 1300, WAIT, 2)
        .expect("host A's echo: the password was not applied");
    let m = http::wait_ok(c, monitor_addr(), "/metrics", MONITOR_READY).expect("the monitor");
    assert!(m.body.contains("ikago_handshakes_total 1"), "{}", m.body);

    // a file that no longer parses: one line, the running config is kept
    file.write("{ \"sources\": [");
    let lines = reload(&client, "Cannot reload the config");
    let errors: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("Cannot reload"))
        .collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    udp::echo_retry(lab.ns(a), echo_addr(), 100, WAIT, 2).expect("host A's echo, still");
    udp::echo_retry(lab.ns(b), echo_addr(), 100, WAIT, 2).expect("host B's echo, still");

    // host B no longer a source, the password back to the one in force: nothing to restart
    file.write(&reload_config(&[HOST_A], true, FIRST_PASSWORD));
    let lines = reload(&client, &format!("Proxy {HOST_A} through"));
    assert!(
        !lines.iter().any(|l| l.contains("restart to apply")),
        "{lines:#?}"
    );
    assert!(
        udp::echo(lab.ns(b), echo_addr(), 100, BLOCKED_WAIT).is_err(),
        "host B is no longer tunnelled"
    );
    udp::echo_retry(lab.ns(a), echo_addr(), 100, WAIT, 2).expect("host A's echo");

    let all = client.lines();
    let connected = all.iter().filter(|l| l.contains(CONNECTED)).count();
    assert_eq!(connected, 1, "no new handshake: {all:#?}");
    assert!(
        all.iter()
            .all(|l| !l.contains(FIRST_PASSWORD) && !l.contains(SECOND_PASSWORD)),
        "no password in the log: {all:#?}"
    );
}

/// A second server on the tunnel port of a running one: one `error:` line naming the port and
/// the first server, exit code 2 before any rule, and the first one keeps serving
pub(crate) fn second_server_on_the_port_exits_2(runner: Runner) {
    let t = Tunnel::plain(runner);
    let rules = t.lab.firewall_rules(Host::Server).expect("rules");
    let mut second = t
        .lab
        .start_server(runner, &TunnelOptions::default())
        .expect("the second server starts");
    let status = second
        .wait_exit(STOP_TIMEOUT)
        .expect("the second server exits at once");
    let lines = second.lines();
    assert_eq!(status.code(), Some(2), "{lines:#?}");
    let binary = runner.binary().expect("the runner's binary");
    let name = Path::new(&binary)
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a file name");
    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("error")).collect();
    let want = format!(
        "error: tunnel port {TUNNEL_PORT} is in use by {name} (pid {})",
        t.server.pid()
    );
    assert_eq!(errors, [&want], "{lines:#?}");
    assert_eq!(
        t.lab.firewall_rules(Host::Server).expect("rules"),
        rules,
        "the second server touched no rule"
    );
    echoes(&t, Host::HostA, 100);
}

pub(crate) fn sigterm_exits_0_and_removes_rules(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let before = [Host::Client, Host::Server].map(|h| lab.firewall_rules(h).expect("rules"));
    let options = TunnelOptions::default();
    let mut server = lab
        .start_ready_server(runner, &options)
        .expect("server starts");
    let mut client = lab
        .start_client(runner, ClientSite::Main, &options)
        .expect("client connects");
    udp::echo_retry(lab.ns(Host::HostA), echo_addr(), 100, WAIT, 2).expect("echo");
    let during = lab.firewall_rules(Host::Client).expect("rules");
    assert_ne!(during, before[0], "--rule installs rules on the client");
    for (name, daemon) in [("client", &mut client), ("server", &mut server)] {
        let status = stop(daemon).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status.code(), Some(0), "{name} exits 0 on SIGTERM");
    }
    let after = [Host::Client, Host::Server].map(|h| lab.firewall_rules(h).expect("rules"));
    assert_eq!(after, before, "no firewall rule is left behind");
}

/// A service manager's notification socket: a path (an abstract name would stay in this
/// namespace), removed when dropped
struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(runner: Runner, role: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "ikago-lab-notify-{}-{}-{role}",
            std::process::id(),
            runner.name()
        ));
        let _ = std::fs::remove_file(&path);
        let socket = std::os::unix::net::UnixDatagram::bind(&path).expect("a notify socket");
        socket
            .set_read_timeout(Some(CONNECT_TIMEOUT))
            .expect("a read timeout");
        Self { socket, path }
    }

    /// The next message
    fn next(&self) -> String {
        let mut buf = [0u8; 512];
        let n = self.socket.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Starts the `role` command line of `runner` in `ns` with `NOTIFY_SOCKET` naming this socket
    fn spawn(&self, ns: &Netns, runner: Runner, role: &str, args: &[String]) -> Daemon {
        let variable = format!("NOTIFY_SOCKET={}", self.path.display());
        let binary = runner.binary().expect("the runner's binary");
        let args: Vec<&str> = [variable.as_str(), binary.as_str()]
            .into_iter()
            .chain(args.iter().map(String::as_str))
            .collect();
        Daemon::spawn(ns, &format!("{}-{role}", runner.name()), "env", &args)
            .expect("the runner starts")
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Started with `NOTIFY_SOCKET`, as by a `Type=notify` unit: the server is ready once it runs,
/// the client once its handshake completed; status lines follow the tunnel, and both say when
/// they stop
pub(crate) fn tells_the_service_manager(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let options = TunnelOptions::default();
    let server_manager = NotifySocket::bind(runner, "server");
    let mut server = server_manager.spawn(
        lab.ns(Host::Server),
        runner,
        "server",
        &options.server_args(),
    );
    assert_eq!(
        server_manager.next(),
        format!("READY=1\nSTATUS=Proxy from :{TUNNEL_PORT}, 0 clients")
    );
    let client_manager = NotifySocket::bind(runner, "client");
    let mut client = client_manager.spawn(
        lab.ns(Host::Client),
        runner,
        "client",
        &options.client_args(ClientSite::Main),
    );
    let server_addr = format!("{SERVER_WAN}:{TUNNEL_PORT}");
    assert_eq!(
        client_manager.next(),
        format!("STATUS=Connecting to server {server_addr}")
    );
    let ready = client_manager.next();
    assert!(
        ready.starts_with(&format!(
            "READY=1\nSTATUS=Connected to server {server_addr} ("
        )),
        "{ready}"
    );
    // ready means the tunnel works
    udp::echo_retry(lab.ns(Host::HostA), echo_addr(), 100, WAIT, 2).expect("echo");
    assert_eq!(
        server_manager.next(),
        format!("STATUS=Proxy from :{TUNNEL_PORT}, 1 client")
    );
    for (name, daemon, manager) in [
        ("client", &mut client, &client_manager),
        ("server", &mut server, &server_manager),
    ] {
        let status = stop(daemon).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status.code(), Some(0), "{name} exits 0 on SIGTERM");
        assert_eq!(manager.next(), "STOPPING=1\nSTATUS=Shutting down", "{name}");
    }
}

pub(crate) fn shaped_udp_variant(runner: Runner) {
    let policy = FirewallPolicy {
        blocking: Blocking::ShapeUdp { kbit: 1000 },
        ..FirewallPolicy::default()
    };
    let t = Tunnel::up_alone(runner, policy, &TunnelOptions::default());
    let spec = StreamSpec {
        bytes: 4 * 1024 * 1024,
        datagram: 1200,
        rate_bps: 16_000_000,
    };
    let report = udp::stream(
        t.ns(Host::HostA),
        t.ns(Host::Destination),
        bulk_addr(),
        spec,
        Direction::Upload,
    )
    .expect("stream");
    assert!(
        report.delivered() >= 0.9,
        "16 Mbit/s of UDP through a 1 Mbit/s UDP shaper: {report:?}"
    );
    // Right after a burst a shaped queue may drop the next setup packet: retried once
    echoes(&t, Host::HostA, 1472);
}

pub(crate) fn lossy_variant(runner: Runner) {
    let policy = FirewallPolicy {
        loss: Some(0.02),
        ..FirewallPolicy::default()
    };
    let t = Tunnel::up(runner, policy, &TunnelOptions::default());
    let answered = (0..50)
        .filter(|_| {
            udp::echo(
                t.ns(Host::HostA),
                echo_addr(),
                500,
                Duration::from_millis(500),
            )
            .is_ok()
        })
        .count();
    assert!(
        answered >= 40,
        "{answered} of 50 echoes with 2% loss each way"
    );
    let took = tcp::transfer(
        t.ns(Host::HostA),
        t.ns(Host::Destination),
        bulk_addr(),
        2 * 1024 * 1024,
        Direction::Download,
    )
    .expect("tcp recovers from loss inside the tunnel");
    println!("2 MiB download with 2% loss in {took:?}");
}

/// How long a runner's monitor gets to answer its first snapshot
const MONITOR_READY: Duration = Duration::from_secs(5);
/// How long after the handshake `ping` may still be −1: a keepalive interval (5 s) and a
/// snapshot period (1 s) at most
const PING_READY: Duration = Duration::from_secs(7);
/// When, after the handshake, `ping` must still be fresh: past the 7 s after which the
/// handshake's sample alone would be stale, so only the keepalive answers keep it fresh
const PING_REFRESHED: Duration = Duration::from_secs(9);
/// How long the next snapshot may take to show new traffic (one period, with margin)
const SNAPSHOT_WAIT: Duration = Duration::from_secs(4);
/// Virtual time a Chromium run gives the dashboard (it polls once per virtual second)
const BROWSER_BUDGET: Duration = Duration::from_secs(4);
/// Virtual time of the screenshot: Chromium has no flag to wait in real time, and virtual time
/// runs ahead between polls (a poll takes a few real milliseconds), so that the charts get
/// several real snapshots (1 s apart) it takes this many polls, about 4 s of real time here
const SCREENSHOT_BUDGET: Duration = Duration::from_secs(1200);

/// Every runner's monitor, on its own loopback (the default `--monitor-address`)
fn monitor_addr() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, MONITOR_PORT)
}

/// `GET path` from the monitor of the runner in `ns`, which must answer 200
fn fetch(ns: &Netns, path: &str) -> http::Reply {
    let reply = http::get(ns, monitor_addr(), path, WAIT)
        .unwrap_or_else(|e| panic!("GET {path} from the monitor in {}: {e}", ns.name()));
    assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
    reply
}

fn fetch_json(ns: &Netns, path: &str) -> Value {
    fetch(ns, path)
        .json()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// Polls the JSON at `path` until `check` holds, at most `timeout`
fn json_until(
    ns: &Netns,
    path: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let doc = fetch_json(ns, path);
        if check(&doc) {
            return doc;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?} at GET {path}: {doc:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Prometheus samples of `/metrics`, keyed by name and labels as written
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("`name{labels} value`");
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("a number in {l:?}"));
            (key.to_owned(), value)
        })
        .collect()
}

/// Polls `/metrics` of the runner in `ns` until `check` holds of its samples, at most
/// [`SNAPSHOT_WAIT`]
fn metrics_until(ns: &Netns, what: &str, check: impl Fn(&BTreeMap<String, f64>) -> bool) {
    let deadline = Instant::now() + SNAPSHOT_WAIT;
    loop {
        let m = samples(&fetch(ns, "/metrics").body);
        if check(&m) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {SNAPSHOT_WAIT:?}: {m:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `count` of `node` in `monitor.<side>.<dir>` of the original's JSON, 0 when absent
fn count(doc: &Value, side: &str, dir: &str, node: &str) -> u64 {
    doc["monitor"][side][dir][node]["count"]
        .as_u64()
        .unwrap_or(0)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// `/` has the original's shape: `name`, `version`, `time`, `monitor.{local,remote}.{in,out}`
/// of nodes `{count, size, appear, lastSeen}` (the server's remote nodes are null), and on the
/// client `ping`
fn original_shape(doc: &Value, client: bool) {
    let keys: Vec<&str> = doc
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec!["monitor", "name", "time", "version"];
    if client {
        want.push("ping");
    }
    want.sort_unstable();
    assert_eq!(keys, want, "{doc:#}");
    let name = if client {
        "IkaGo-client"
    } else {
        "IkaGo-server"
    };
    assert_eq!(doc["name"], name);
    assert!(doc["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(doc["time"].is_u64(), "uptime in seconds: {doc:#}");
    let now = unix_now();
    for side in ["local", "remote"] {
        for dir in ["in", "out"] {
            let nodes = &doc["monitor"][side][dir];
            if side == "remote" && !client {
                assert!(nodes.is_null(), "the server's remote nodes are null");
                continue;
            }
            for (id, node) in nodes.as_object().expect("nodes by address") {
                let field = |k: &str| {
                    node[k]
                        .as_u64()
                        .unwrap_or_else(|| panic!("{side}.{dir}.{id}.{k}: {node}"))
                };
                assert_eq!(node.as_object().map(|o| o.len()), Some(4), "{node}");
                let (count, size) = (field("count"), field("size"));
                let (appear, last) = (field("appear"), field("lastSeen"));
                assert!(count > 0 && size >= count * 20, "{side}.{dir}.{id}: {node}");
                assert!(
                    appear <= last && last <= now + 1 && now < appear + 300,
                    "{side}.{dir}.{id}: Unix seconds near {now}: {node}"
                );
            }
        }
    }
}

/// The name, resolved through the tunnel, is listed by `/dns`
fn dns_lists(doc: &Value, name: &str, ip: Ipv4Addr) -> bool {
    doc.as_array().expect("a list").iter().any(|r| {
        r["ip"] == ip.to_string()
            && r["name"].as_str().map(|n| n.trim_end_matches('.')) == Some(name)
    })
}

/// Where the dashboard's screenshot goes: `target/artifacts/lab-dashboard.png`
fn screenshot_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("artifacts").join("lab-dashboard.png")
}

/// UDP and DNS from host A, then the client's next snapshot that shows them
fn more_traffic(t: &Tunnel, before: &Value) -> Value {
    let a = HOST_A.to_string();
    let (out, r#in) = (
        count(before, "local", "out", &a),
        count(before, "local", "in", &a),
    );
    echoes(t, Host::HostA, 1300);
    echoes(t, Host::HostA, 20);
    resolves(t, Host::HostA);
    json_until(
        t.ns(Host::Client),
        "/",
        SNAPSHOT_WAIT,
        "host A's counts rise",
        |d| count(d, "local", "out", &a) > out && count(d, "local", "in", &a) > r#in,
    )
}

pub(crate) fn monitor_end_to_end(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let options = TunnelOptions {
        extra: vec!["--monitor".into(), MONITOR_PORT.to_string()],
        ..TunnelOptions::default()
    };
    let server = lab
        .start_ready_server(runner, &options)
        .expect("server starts");
    // readiness: a monitor answers 200 once the engine published its first snapshot
    http::wait_ok(lab.ns(Host::Server), monitor_addr(), "/", MONITOR_READY)
        .expect("the server's monitor answers");
    let client = lab
        .start_client(runner, ClientSite::Main, &options)
        .expect("client connects");
    let connected = Instant::now();
    let t = Tunnel {
        client,
        server,
        lab,
    };
    let (c, s) = (t.ns(Host::Client), t.ns(Host::Server));
    let listening = format!("Monitor on http://127.0.0.1:{MONITOR_PORT}/");
    for daemon in [&t.client, &t.server] {
        daemon
            .wait_for_line(&listening, 0, WAIT)
            .expect("the monitor's startup line");
    }

    // ping: a number of milliseconds once the server answered, before the first keepalive
    // interval and a snapshot period are over
    let doc = json_until(
        c,
        "/",
        PING_READY.saturating_sub(connected.elapsed()),
        "ping ≥ 0",
        |d| d["ping"].as_i64().is_some_and(|p| p >= 0),
    );
    assert!(doc["ping"].as_i64() < Some(1000), "a lab RTT: {doc:#}");

    // traffic from host A: DNS, UDP echoes, pings
    resolves(&t, Host::HostA);
    for size in [20, 1300, 1472] {
        echoes(&t, Host::HostA, size);
    }
    pings(&t, Host::HostA);
    let a = HOST_A.to_string();
    let dst = DESTINATION.to_string();
    let doc = json_until(c, "/", SNAPSHOT_WAIT, "host A in both directions", |d| {
        // 1 DNS + 3 echoes + at least 9 pings, each way
        count(d, "local", "out", &a) >= 13 && count(d, "local", "in", &a) >= 13
    });
    original_shape(&doc, true);
    for dir in ["out", "in"] {
        assert!(
            count(&doc, "remote", dir, &dst) >= 13,
            "the destination is a remote node ({dir}): {doc:#}"
        );
    }
    let doc = more_traffic(&t, &doc);
    original_shape(&doc, true);

    // /dns: the name host A resolved, from the answer that came back through the tunnel
    let names = json_until(c, "/dns", SNAPSHOT_WAIT, "echo.lab.test in /dns", |d| {
        dns_lists(d, "echo.lab.test", DESTINATION)
    });
    println!("client /dns: {names}");

    // /metrics: per-source counters and the drops by reason
    let reply = fetch(c, "/metrics");
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{reply:?}"
    );
    let m = samples(&reply.body);
    for unit in ["packets", "bytes"] {
        for dir in ["out", "in"] {
            let key = format!("ikago_source_{unit}_total{{source=\"{a}\",direction=\"{dir}\"}}");
            assert!(
                m.get(&key).is_some_and(|&v| v > 0.0),
                "{key} > 0 in:\n{}",
                reply.body
            );
        }
    }
    let drops = m
        .keys()
        .filter(|k| k.starts_with("ikago_drops_total{reason=\""))
        .count();
    assert!(drops >= 5, "a drops line per reason:\n{}", reply.body);
    assert!(reply.body.contains("# TYPE ikago_drops_total counter"));
    assert!(m.get("ikago_handshakes_total").is_some_and(|&v| v >= 1.0));
    // the runner's own counters per device: frames captured and injected on both legs, and the
    // places they could die, zero on this quiet path
    for device in ["lan0", "wan0"] {
        for family in ["ikago_capture_frames_total", "ikago_inject_frames_total"] {
            let key = format!("{family}{{device=\"{device}\"}}");
            assert!(
                m.get(&key).is_some_and(|&v| v >= 13.0),
                "{key} >= 13 in:\n{}",
                reply.body
            );
        }
        for key in [
            format!("ikago_capture_drops_total{{device=\"{device}\",where=\"buffer\"}}"),
            format!("ikago_inject_failures_total{{device=\"{device}\"}}"),
        ] {
            assert_eq!(m.get(&key), Some(&0.0), "{key} in:\n{}", reply.body);
        }
    }

    // the server: its client as a local node, and the NAT mappings host A's traffic made
    let doc = fetch_json(s, "/");
    original_shape(&doc, false);
    let client_node = format!("{CLIENT_WAN}:");
    let clients = doc["monitor"]["local"]["out"].as_object().expect("nodes");
    assert!(
        clients
            .iter()
            .any(|(id, n)| id.starts_with(&client_node) && n["count"].as_u64() >= Some(13)),
        "the client is a node of the server: {doc:#}"
    );
    let reply = fetch(s, "/metrics");
    let m = samples(&reply.body);
    assert!(
        m.get("ikago_nat_mappings").is_some_and(|&v| v > 0.0),
        "NAT mappings in use:\n{}",
        reply.body
    );
    let api = fetch_json(s, "/api/snapshot");
    let inner = format!("{a}:");
    let entries = api["nat"]["entries"].as_array().expect("the NAT table");
    for protocol in ["UDP", "ICMP"] {
        assert!(
            entries.iter().any(|e| e["protocol"] == protocol
                && e["inner"].as_str().is_some_and(|i| i.starts_with(&inner))),
            "a {protocol} mapping of host A: {api:#}"
        );
    }

    // loopback only by default: host A cannot reach the client's monitor on the LAN
    let lan = SocketAddrV4::new(CLIENT_LAN, MONITOR_PORT);
    assert!(
        http::get(t.ns(Host::HostA), lan, "/", BLOCKED_WAIT).is_err(),
        "the monitor must not answer on {lan}"
    );

    monitor_port_in_use(&t, runner, &options);
    dashboard(&t);

    // still fresh after the handshake's sample would have gone stale: keepalive answers
    // refresh it
    if let Some(left) = PING_REFRESHED.checked_sub(connected.elapsed()) {
        std::thread::sleep(left);
    }
    let doc = fetch_json(c, "/");
    assert!(
        doc["ping"].as_i64().is_some_and(|p| p >= 0),
        "ping is fresh {:?} after the handshake: {doc:#}",
        connected.elapsed()
    );
    let m = samples(&fetch(c, "/metrics").body);
    let age = m["ikago_rtt_age_seconds"];
    assert!(
        (0.0..=7.0).contains(&age),
        "the RTT was measured {age} s ago"
    );
}

/// A second runner with the same monitor port in the same namespace: one `error:` line and
/// exit code 2 before it sets anything up
fn monitor_port_in_use(t: &Tunnel, runner: Runner, options: &TunnelOptions) {
    let rules = t.lab.firewall_rules(Host::Client).expect("rules");
    let mut second = t
        .lab
        .spawn_client(runner, ClientSite::Main, options)
        .expect("the second client starts");
    let status = second
        .wait_exit(STOP_TIMEOUT)
        .expect("the second client exits at once");
    let lines = second.lines();
    assert_eq!(status.code(), Some(2), "{lines:#?}");
    let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("error")).collect();
    let want = format!(
        "error: cannot start the monitor on 127.0.0.1:{MONITOR_PORT}: the address is already in use"
    );
    assert_eq!(errors, [&want], "{lines:#?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("Connect to server") || l.contains("Listen on")),
        "nothing after the monitor's port: {lines:#?}"
    );
    let after = t.lab.firewall_rules(Host::Client).expect("rules");
    assert_eq!(after, rules, "the second client touched no rule");
}

/// The dashboard in headless Chromium inside the client's namespace: host A with rising
/// counters, and a screenshot
fn dashboard(t: &Tunnel) {
    let Some(chromium) = Chromium::find() else {
        let msg = "SKIPPED the dashboard part: no chromium binary (apt-get install chromium, or \
                   set IKAGO_CHROMIUM)";
        println!("{msg}");
        eprintln!("{msg}");
        return;
    };
    let c = t.ns(Host::Client);
    let url = format!("http://127.0.0.1:{MONITOR_PORT}/dashboard");
    let a = HOST_A.to_string();
    let dump = || {
        chromium
            .dump_dom(c, &url, BROWSER_BUDGET)
            .unwrap_or_else(|e| panic!("chromium on {url}: {e}"))
    };
    let attribute = |dom: &str, name: &str| {
        browser::peer_attribute(dom, &a, name)
            .unwrap_or_else(|| panic!("{name} of host A's card in:\n{dom}"))
    };
    let first = dump();
    assert!(first.contains("IkaGo-client"), "{first}");
    assert!(
        browser::dashboard_updates(&first) >= Some(1),
        "a snapshot applied:\n{first}"
    );
    let (bytes, packets) = (
        attribute(&first, "data-bytes-out"),
        attribute(&first, "data-packets-in"),
    );
    assert!(bytes > 0 && packets > 0, "host A's counters:\n{first}");

    more_traffic(t, &fetch_json(c, "/"));
    let second = dump();
    let (bytes_after, packets_after) = (
        attribute(&second, "data-bytes-out"),
        attribute(&second, "data-packets-in"),
    );
    assert!(
        bytes_after > bytes && packets_after > packets,
        "host A's counters rise: {bytes} B out, {packets} packets in, then {bytes_after} and \
         {packets_after}"
    );
    assert!(second.contains(" ms</b>"), "the RTT is shown:\n{second}");

    // the screenshot, while host A keeps sending, so that the charts show a throughput
    let png = screenshot_path();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let _ = udp::echo(t.ns(Host::HostA), echo_addr(), 1200, BLOCKED_WAIT);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let shot = chromium.screenshot(c, &url, &png, SCREENSHOT_BUDGET);
        done.store(true, Ordering::Relaxed);
        shot.unwrap_or_else(|e| panic!("screenshot of {url}: {e}"));
    });
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "a real screenshot: {size} bytes");
    println!("dashboard screenshot: {}", png.display());
}

/// Both ends as `nobody` with CAP_NET_RAW and CAP_NET_ADMIN, `--rule` included: the server's by
/// ambient capabilities (as systemd's `AmbientCapabilities=` gives them), the client's by file
/// capabilities on its binary. The tunnel carries UDP echoes, the rules are there while they run
/// and gone after SIGTERM; without the capabilities each says which one it lacks and exits 2
/// before touching anything.
pub(crate) fn unprivileged_with_capabilities(runner: Runner) {
    // first: it may build the binary, which the lab's watchdog would count
    let copies = Unprivileged::prepare(runner).expect("copies of the binary");
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let hosts = [Host::Client, Host::Server];
    let before = hosts.map(|h| lab.firewall_rules(h).expect("rules"));
    let options = TunnelOptions::default();

    // missing capabilities: one line each, exit 2, no rule touched
    for (grant, want) in [
        (
            Grant::Nothing,
            "error: capturing needs CAP_NET_RAW and --rule CAP_NET_ADMIN, which this process \
             lacks: run as root, or grant them with `sudo setcap cap_net_raw,cap_net_admin+ep",
        ),
        (
            Grant::AmbientRawOnly,
            "error: --rule needs CAP_NET_ADMIN, which this process lacks: run as root, or grant \
             it with `sudo setcap cap_net_raw,cap_net_admin+ep",
        ),
    ] {
        let mut refused = copies
            .spawn(
                lab.ns(Host::Server),
                "refused",
                grant,
                &options.server_args(),
            )
            .expect("the server starts");
        let status = refused.wait_exit(STOP_TIMEOUT).expect("it exits at once");
        let lines = refused.lines();
        assert_eq!(status.code(), Some(2), "{grant:?}: {lines:#?}");
        let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{grant:?}: {lines:#?}");
        let binary = copies.binary(grant);
        assert!(
            errors[0].starts_with(want) && errors[0].contains(&*binary.to_string_lossy()),
            "{grant:?}: {}",
            errors[0]
        );
        assert_eq!(lab.firewall_rules(Host::Server).expect("rules"), before[1]);
    }

    // what --rule changes besides the rules: forwarding (a sysctl) and GRO (ethtool, a child)
    let c = lab.ns(Host::Client);
    c.sysctl("net.ipv4.ip_forward", "1").expect("forwarding on");
    c.exec("ethtool", &["-K", "wan0", "gro", "on"])
        .expect("GRO on");
    let mut server = copies
        .spawn(
            lab.ns(Host::Server),
            &format!("{}-server-nobody", runner.name()),
            Grant::Ambient,
            &options.server_args(),
        )
        .expect("the server starts");
    server
        .wait_for_line(SERVER_READY, 0, CONNECT_TIMEOUT)
        .expect("the server is ready");
    let mut client = copies
        .spawn(
            lab.ns(Host::Client),
            &format!("{}-client-nobody", runner.name()),
            Grant::File,
            &options.client_args(ClientSite::Main),
        )
        .expect("the client starts");
    client
        .wait_for_line(CONNECTED, 0, CONNECT_TIMEOUT)
        .unwrap_or_else(|e| {
            panic!(
                "{e}: client {:#?}\nserver {:#?}",
                client.lines(),
                server.lines()
            )
        });
    for daemon in [&client, &server] {
        assert_eq!(
            effective_uid(daemon.pid()).expect("uid"),
            NOBODY,
            "the runner itself runs as nobody"
        );
    }
    udp::echo_retry(lab.ns(Host::HostA), echo_addr(), 1300, WAIT, 2)
        .expect("a UDP echo through the tunnel of two unprivileged runners");
    assert_eq!(c.read_sysctl("net.ipv4.ip_forward").expect("sysctl"), "0");
    assert_eq!(gro(c, "wan0"), "off", "the client turned GRO off");
    let during = hosts.map(|h| lab.firewall_rules(h).expect("rules"));
    for (host, (during, before)) in hosts.iter().zip(during.iter().zip(&before)) {
        assert!(
            during.len() > before.len() && during.iter().any(|r| r.contains("IKAGO-")),
            "{host:?}: --rule installed its chain: {during:#?}"
        );
    }
    for (name, daemon) in [("client", &mut client), ("server", &mut server)] {
        let status = stop(daemon).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status.code(), Some(0), "{name}: {:#?}", daemon.lines());
    }
    let after = hosts.map(|h| lab.firewall_rules(h).expect("rules"));
    assert_eq!(after, before, "no firewall rule is left behind");
    assert_eq!(
        c.read_sysctl("net.ipv4.ip_forward").expect("sysctl"),
        "1",
        "forwarding is back on"
    );
    assert_eq!(gro(c, "wan0"), "on", "GRO is back on");
}

/// `on` or `off`: the GRO state of `device` in `ns` from `ethtool -k`
fn gro(ns: &Netns, device: &str) -> String {
    let features = ns.exec("ethtool", &["-k", device]).expect("ethtool -k");
    features
        .lines()
        .find_map(|l| l.strip_prefix("generic-receive-offload:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("no GRO line in {features}"))
        .to_owned()
}

/// What a bulk TCP transfer through ikago2 moves each way
const IKAGO2_TCP_BYTES: u64 = 2 * 1024 * 1024;

/// ikago2 options with the monitor on (the drop counters are read from `/metrics`)
fn ikago2_monitored(password: &str) -> TunnelOptions {
    let mut options = TunnelOptions::ikago2(password);
    options.extra = vec!["--monitor".into(), MONITOR_PORT.to_string()];
    options
}

/// The value of the sample `key` in the `/metrics` of the runner in `ns`, 0 when absent
fn metric(ns: &Netns, key: &str) -> f64 {
    samples(&fetch(ns, "/metrics").body)
        .get(key)
        .copied()
        .unwrap_or(0.0)
}

/// ikago2 over FakeTCP through the blocking firewall, with a server that answers only ikago2:
/// DNS, UDP echoes of three sizes, ping and TCP each way from host A; both ends say ikago2
pub(crate) fn ikago2_through_the_firewall(runner: Runner) {
    let t = Tunnel::up(
        runner,
        FirewallPolicy::default(),
        &ikago2_monitored("lab-ikago2"),
    );
    resolves(&t, Host::HostA);
    for size in [20, 1300, 1472] {
        echoes(&t, Host::HostA, size);
    }
    pings(&t, Host::HostA);
    for direction in [Direction::Upload, Direction::Download] {
        let took = tcp::transfer(
            t.ns(Host::HostA),
            t.ns(Host::Destination),
            bulk_addr(),
            IKAGO2_TCP_BYTES,
            direction,
        )
        .unwrap_or_else(|e| panic!("{direction:?} over ikago2: {e}"));
        println!("{direction:?} {IKAGO2_TCP_BYTES} bytes over ikago2 in {took:?}");
    }
    let client = samples(&fetch(t.ns(Host::Client), "/metrics").body);
    assert_eq!(
        client.get("ikago_protocol{protocol=\"ikago2\"}"),
        Some(&1.0)
    );
    let server = fetch(t.ns(Host::Server), "/metrics").body;
    assert!(
        server.contains(&format!("ikago_protocol{{client=\"{CLIENT_WAN}:"))
            && server.contains("protocol=\"ikago2\"} 1"),
        "the server names the client's wire: {server}"
    );
}

/// A replay attack from another namespace: host A's tunnel segments, captured on the firewall's
/// outside device and sent again from there, open nothing (the destination sees no packet
/// again) and are counted as replayed by the server
pub(crate) fn ikago2_replay_attack_is_counted(runner: Runner) {
    let t = Tunnel::up(
        runner,
        FirewallPolicy::default(),
        &ikago2_monitored("lab-replay"),
    );
    let a = t.ns(Host::HostA);
    let server = SocketAddrV4::new(SERVER_WAN, TUNNEL_PORT);
    let captured = raw::capture_to(
        t.ns(Host::Firewall),
        "out0",
        server,
        Duration::from_secs(3),
        || {
            for size in [100, 600, 1300] {
                udp::echo_retry(a, echo_addr(), size, WAIT, 2).expect("echo while captured");
            }
        },
    )
    .expect("capture on the firewall");
    assert!(captured.len() >= 3, "{} segments captured", captured.len());
    let sns = t.ns(Host::Server);
    let replayed = "ikago_drops_total{reason=\"replayed\"}";
    let opened = "ikago_inner_packets_total{direction=\"in\"}";
    let before = (metric(sns, replayed), metric(sns, opened));
    raw::replay(t.ns(Host::Firewall), &captured).expect("replay from the firewall");
    let want = before.0 + captured.len() as f64;
    metrics_until(sns, "every replayed segment counted", |m| {
        m.get(replayed).copied().unwrap_or(0.0) >= want
    });
    assert_eq!(metric(sns, opened), before.1, "nothing replayed was opened");
    println!(
        "{} segments replayed, {} records refused",
        captured.len(),
        metric(sns, replayed) - before.0
    );
    // the session is unharmed
    echoes(&t, Host::HostA, 1300);
}

/// A port probe of an ikago2-only server from the second client machine: a TCP connect to the
/// tunnel port gets no answer at all (it times out, where a closed port of the same host is
/// refused at once), and the server counts the SYN as unproven
pub(crate) fn ikago2_only_server_ignores_probes(runner: Runner) {
    let t = Tunnel::up(
        runner,
        FirewallPolicy::default(),
        &ikago2_monitored("lab-probe"),
    );
    let prober = t.ns(Host::Client2);
    let closed = tcp::connect(
        prober,
        SocketAddrV4::new(SERVER_WAN, TUNNEL_PORT + 1),
        Duration::from_secs(2),
    )
    .expect_err("nothing listens there");
    assert!(
        closed.to_string().contains("refused"),
        "a closed port answers with a RST: {closed}"
    );
    let start = Instant::now();
    let probe = tcp::connect(
        prober,
        SocketAddrV4::new(SERVER_WAN, TUNNEL_PORT),
        Duration::from_secs(2),
    )
    .expect_err("the tunnel port must not accept");
    assert!(
        !probe.to_string().contains("refused") && start.elapsed() >= Duration::from_secs(2),
        "no SYN+ACK and no RST: {probe} after {:?}",
        start.elapsed()
    );
    metrics_until(t.ns(Host::Server), "the probe counted", |m| {
        m.get("ikago_drops_total{reason=\"syn_unproven\"}")
            .is_some_and(|&n| n >= 1.0)
    });
    // the real client is still served
    echoes(&t, Host::HostA, 1300);
}

/// A Go-compatible client (`--protocol ikago`) and an ikago2 client on one default server at
/// once, both carrying DNS and UDP; the server names each one's wire
pub(crate) fn compat_and_ikago2_clients_on_one_server(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let mut server_options = TunnelOptions::encrypted("aes-256-gcm", "lab-both");
    server_options.protocol = None;
    server_options.extra = vec!["--monitor".into(), MONITOR_PORT.to_string()];
    let _server = lab
        .start_ready_server(runner, &server_options)
        .expect("server starts");
    let compat = TunnelOptions::encrypted("aes-256-gcm", "lab-both");
    let _go = lab
        .start_client(runner, ClientSite::Main, &compat)
        .expect("compatible client connects");
    let ours = TunnelOptions::ikago2("lab-both");
    let _ikago2 = lab
        .start_client(runner, ClientSite::Second, &ours)
        .expect("ikago2 client connects");
    for host in [Host::HostA, Host::HostC] {
        let ns = lab.ns(host);
        dns::query_retry(ns, dns_addr(), "echo.lab.test", WAIT, 2)
            .unwrap_or_else(|e| panic!("{host:?}: dns: {e}"));
        udp::echo_retry(ns, echo_addr(), 1300, WAIT, 2)
            .unwrap_or_else(|e| panic!("{host:?}: echo: {e}"));
    }
    metrics_until(lab.ns(Host::Server), "both wires named", |m| {
        let wire = |client: Ipv4Addr, protocol: &str| {
            m.iter().any(|(k, &v)| {
                k.starts_with(&format!("ikago_protocol{{client=\"{client}:"))
                    && k.ends_with(&format!("protocol=\"{protocol}\"}}"))
                    && v == 1.0
            })
        };
        wire(CLIENT_WAN, "ikago") && wire(CLIENT2_WAN, "ikago2")
    });
}
