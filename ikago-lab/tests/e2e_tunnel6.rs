//! Outer IPv6 end to end (root; skipped otherwise), with both runners: the client reaches the
//! server at its IPv6 address (`-s [2001:db8:23::2]:18081`) in a dual-stack lab, past the
//! firewall that blocks UDP and ICMPv6 (strict conntrack). One lab per runner, its cases in turn:
//!
//! - ikago2 with AES-256-GCM: the IPv6-only host D and host A over IPv4 reach the destination's
//!   UDP echo, TCP echo, DNS and ping; dual-stack host A uses both families at once; the client
//!   says it tunnels over IPv6; `check client` names the way to the IPv6 server and completes a
//!   handshake with it;
//!   `--rule` puts the IPv6 drop rules in ip6tables chains (the client's for the server's
//!   `[addr]:port`, the server's for its port) and SIGTERM takes them away again, both
//!   processes exiting 0;
//! - KCP (ikago wire, AES-256-GCM) over the IPv6 tunnel: host A's UDP and TCP echoes;
//! - `--mode tcp` to the server's IPv6 address: host D's and host A's echoes;
//! - a failover list of both families: the client drops both servers' segments (ip6tables and
//!   iptables), and when the IPv6 server is killed host A's echoes come back through the second
//!   server over IPv4 within 5 s;
//! - the firewall's link toward the clients narrowed to 1280 bytes: the server's frames of the
//!   destination's full-size TCP segments draw a Packet Too Big from the firewall, which lowers
//!   the server's frame size toward the client (it says so), and the downloads of host A (IPv4)
//!   and host D (IPv6) complete;
//! - the server's devices without IPv4 (an IPv6-only server): its start log says so, host D's
//!   UDP and TCP echoes cross, host A's IPv4 is dropped and counted (`no_ipv4`).
//!
//! Every destination is a literal of the lab's plan ([`ikago_lab::addr`]), and every probe
//! refuses any other.

use ikago_lab::addr::*;
use ikago_lab::probe::udp::Direction;
use ikago_lab::probe::{dns, ping, tcp, udp};
use ikago_lab::runner::CONNECTED;
use ikago_lab::{
    CONNECT_TIMEOUT, ClientSite, Daemon, FirewallPolicy, Host, Lab, Runner, ServerSite,
    TunnelOptions, stop,
};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Wait for one probe answer through the tunnel
const WAIT: Duration = Duration::from_secs(2);
/// The password of these tests
const PASSWORD: &str = "outer-ipv6-lab";
/// The largest UDP payload in a 1280-byte IPv6 packet
const MIN_MTU_PAYLOAD: usize = 1232;
/// How soon after the active server is killed the echoes must come back through the other
const FAILOVER_LIMIT: Duration = Duration::from_secs(5);
/// The MTU of the narrowed link between the firewall and the clients
const NARROW_MTU: u16 = 1280;
/// Bytes each LAN host downloads over the narrowed link
const DOWNLOAD: u64 = 1024 * 1024;

fn at(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

/// The server and the main client of `options` on `lab`, the client connected
fn tunnel(lab: &Lab, runner: Runner, options: &TunnelOptions) -> (Daemon, Daemon) {
    let server = lab.start_server(runner, options).expect("server starts");
    let client = lab
        .spawn_client(runner, ClientSite::Main, options)
        .expect("client starts");
    if let Err(e) = client.wait_for_line(CONNECTED, 0, CONNECT_TIMEOUT) {
        panic!("client: {e}: {:#?}", client.lines());
    }
    (server, client)
}

/// Stops both with SIGTERM; each must exit 0
fn stop_both(server: &mut Daemon, client: &mut Daemon) {
    for (name, daemon) in [("client", client), ("server", server)] {
        let status = stop(daemon).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status.code(), Some(0), "{name} exits 0 on SIGTERM");
    }
}

fn echoes(lab: &Lab, host: Host, to: SocketAddr, size: usize) {
    udp::echo_retry(lab.ns(host), to, size, WAIT, 2)
        .unwrap_or_else(|e| panic!("{host:?}: {size}-byte udp echo from {to}: {e}"));
}

fn resolves(lab: &Lab, host: Host, server: SocketAddr) {
    let ns = lab.ns(host);
    let (ip, _) = dns::query_retry(ns, server, "echo.lab.test", WAIT, 2)
        .unwrap_or_else(|e| panic!("{host:?}: dns from {server}: {e}"));
    assert_eq!(ip, DESTINATION);
}

fn pings(lab: &Lab, host: Host, to: IpAddr) {
    ping::through(lab.ns(host), to, Duration::from_millis(50))
        .unwrap_or_else(|e| panic!("{host:?}: {e}"));
}

/// The rules of `host` that name the server's IPv6 tunnel address
fn tunnel6_rules(lab: &Lab, host: Host) -> Vec<String> {
    let server = format!("{SERVER_WAN6}/128");
    let rules = lab.firewall_rules(host).expect("rules");
    rules.into_iter().filter(|r| r.contains(&server)).collect()
}

/// ikago2 with AES-256-GCM over the IPv6 tunnel: both families of LAN hosts, the start log,
/// the `--rule` rules and their removal on SIGTERM
fn ikago2_over_ipv6(lab: &Lab, runner: Runner) {
    let before = [Host::Client, Host::Server].map(|h| lab.firewall_rules(h).expect("rules"));
    let options = TunnelOptions {
        method: "aes-256-gcm".into(),
        tunnel6: true,
        ..TunnelOptions::dual_stack(PASSWORD)
    };
    let (mut server, mut client) = tunnel(lab, runner, &options);
    let to_server = format!("to [{SERVER_WAN6}]:{TUNNEL_PORT} (tunnel over IPv6)");
    client
        .wait_for_line(&to_server, 0, WAIT)
        .unwrap_or_else(|e| panic!("{e}: {:#?}", client.lines()));
    let (echo4, echo6) = (at(DESTINATION, ECHO_PORT), at(DESTINATION6, ECHO_PORT));
    // host D: IPv6 only
    for size in [20, 1200, MIN_MTU_PAYLOAD] {
        echoes(lab, Host::HostD, echo6, size);
    }
    let d = lab.ns(Host::HostD);
    tcp::echo(d, echo6, b"tcp in ipv6 over ipv6\n", WAIT).expect("tcp echo from host D");
    resolves(lab, Host::HostD, at(DESTINATION6, DNS_PORT));
    pings(lab, Host::HostD, DESTINATION6.into());
    // host A over IPv4, then both families at once
    for size in [20, 1300, 1472] {
        echoes(lab, Host::HostA, echo4, size);
    }
    let a = lab.ns(Host::HostA);
    tcp::echo(a, echo4, b"tcp in ipv4 over ipv6\n", WAIT).expect("tcp echo from host A");
    resolves(lab, Host::HostA, at(DESTINATION, DNS_PORT));
    pings(lab, Host::HostA, DESTINATION.into());
    std::thread::scope(|scope| {
        let v6 = scope.spawn(|| {
            for _ in 0..10 {
                udp::echo_retry(a, echo6, 600, WAIT, 2).expect("IPv6 echo");
            }
        });
        for _ in 0..10 {
            udp::echo_retry(a, echo4, 600, WAIT, 2).expect("IPv4 echo");
        }
        v6.join().expect("the IPv6 echoes");
    });
    // `check client` against the IPv6 server, beside the running client
    let binary = runner.binary().expect("the runner's binary");
    let mut args = vec!["check".to_owned()];
    args.extend(options.client_args(ClientSite::Main));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab
        .ns(Host::Client)
        .attempt(&binary, &args)
        .expect("check runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let answered = format!("the server [{SERVER_WAN6}]:{TUNNEL_PORT} answered a FakeTCP handshake");
    let way = format!(
        "tunnel: over IPv6 to [{SERVER_WAN6}]:{TUNNEL_PORT} from {CLIENT_WAN6} on wan0, through \
         router {FIREWALL_INSIDE6}"
    );
    for finding in [answered, way] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(&finding)),
            "check says `{finding}`:\n{text}"
        );
    }
    // --rule: the IPv6 tunnel's drop rules, in ip6tables chains of their own
    let client_rules = tunnel6_rules(lab, Host::Client);
    let sport = format!("--sport {TUNNEL_PORT}");
    assert!(
        client_rules.iter().any(|r| r.contains(&sport)
            && r.contains(&format!("-d {CLIENT_WAN6}/128"))
            && r.contains("-j DROP")),
        "the client drops the server's segments: {client_rules:#?}"
    );
    let server_rules = tunnel6_rules(lab, Host::Server);
    let dport = format!("--dport {TUNNEL_PORT} -j DROP");
    assert!(
        server_rules
            .iter()
            .any(|r| r.contains(&format!("-d {SERVER_WAN6}/128")) && r.contains(&dport)),
        "the server drops the tunnel port on its IPv6 address: {server_rules:#?}"
    );
    stop_both(&mut server, &mut client);
    let after = [Host::Client, Host::Server].map(|h| lab.firewall_rules(h).expect("rules"));
    assert_eq!(after, before, "no firewall rule is left behind");
}

/// KCP on the ikago wire with AES-256-GCM over the IPv6 tunnel
fn kcp_over_ipv6(lab: &Lab, runner: Runner) {
    let options = TunnelOptions {
        tunnel6: true,
        extra: vec!["--kcp".into()],
        ..TunnelOptions::encrypted("aes-256-gcm", PASSWORD)
    };
    let (mut server, mut client) = tunnel(lab, runner, &options);
    let echo4 = at(DESTINATION, ECHO_PORT);
    for size in [20, 1200] {
        echoes(lab, Host::HostA, echo4, size);
    }
    tcp::echo(lab.ns(Host::HostA), echo4, b"kcp over ipv6\n", WAIT).expect("tcp echo over KCP");
    stop_both(&mut server, &mut client);
}

/// `--mode tcp` over IPv6: a kernel TCP connection to the server's IPv6 address, carrying the
/// records of host D (IPv6) and host A (IPv4)
fn tcp_mode_over_ipv6(lab: &Lab, runner: Runner) {
    let options = TunnelOptions {
        tunnel6: true,
        extra: vec!["--mode".into(), "tcp".into()],
        ..TunnelOptions::dual_stack(PASSWORD)
    };
    let (mut server, mut client) = tunnel(lab, runner, &options);
    echoes(lab, Host::HostD, at(DESTINATION6, ECHO_PORT), 1200);
    let echo4 = at(DESTINATION, ECHO_PORT);
    echoes(lab, Host::HostA, echo4, 1200);
    tcp::echo(lab.ns(Host::HostA), echo4, b"tcp mode over ipv6\n", WAIT)
        .expect("tcp echo in tcp mode");
    stop_both(&mut server, &mut client);
}

/// A failover list of both families, `-s [SERVER_WAN6]:P,SERVER2_WAN:P`: the client begins
/// over IPv6 with the first server, with `--rule` drops for both servers (ip6tables and
/// iptables), and when the first is killed its LAN host's echoes come back through the second
/// server over IPv4
fn fails_over_from_ipv6_to_ipv4(lab: &Lab, runner: Runner) {
    let options = TunnelOptions::ikago2(PASSWORD);
    // both capturing with their rules in, so that neither kernel resets the first SYN (the
    // second runs until the end of the test)
    let [first, _second] = [ServerSite::Main, ServerSite::Second].map(|site| {
        lab.start_ready_server_at(runner, site, &options)
            .unwrap_or_else(|e| panic!("the {site:?} server: {e}"))
    });
    let (v6, v4) = (
        at(SERVER_WAN6, TUNNEL_PORT).to_string(),
        at(SERVER2_WAN, TUNNEL_PORT).to_string(),
    );
    let mut args = options.client_args(ClientSite::Main);
    let servers = args.iter().position(|a| a == "-s").expect("-s") + 1;
    args[servers] = format!("{v6},{v4}");
    let client = lab
        .spawn_runner(runner, Host::Client, "client", &args)
        .expect("client starts");
    let connected = format!("{CONNECTED} {v6}");
    if let Err(e) = client.wait_for_line(&connected, 0, CONNECT_TIMEOUT) {
        panic!("client: {e}: {:#?}", client.lines());
    }
    let rules = lab.firewall_rules(Host::Client).expect("rules");
    for server in [
        format!("-s {SERVER_WAN6}/128"),
        format!("-s {SERVER2_WAN}/32"),
    ] {
        assert!(
            rules
                .iter()
                .any(|r| r.contains(&server) && r.contains("-j DROP")),
            "the client drops {server}'s segments: {rules:#?}"
        );
    }
    let (a, echo4) = (lab.ns(Host::HostA), at(DESTINATION, ECHO_PORT));
    udp::echo_retry(a, echo4, 100, WAIT, 2).expect("echo through the first server");
    drop(first); // SIGKILL
    let killed = Instant::now();
    while udp::echo(a, echo4, 100, Duration::from_millis(300)).is_err() {
        assert!(
            killed.elapsed() < FAILOVER_LIMIT,
            "no echo through the second server within {FAILOVER_LIMIT:?}: {:#?}",
            client.lines()
        );
    }
    client
        .wait_for_line(&format!("Switch from server {v6} to {v4}"), 0, WAIT)
        .unwrap_or_else(|e| panic!("{e}: {:#?}", client.lines()));
}

/// The firewall's link toward the clients at 1280 bytes: full-size segments from the
/// destination to host A and host D cross it all the same
fn big_replies_cross_a_narrow_link(lab: &Lab, runner: Runner) {
    lab.narrow_inside_link(NARROW_MTU).expect("narrow link");
    let options = TunnelOptions {
        tunnel6: true,
        ..TunnelOptions::dual_stack(PASSWORD)
    };
    let (server, _client) = tunnel(lab, runner, &options);
    let dst = lab.ns(Host::Destination);
    for (host, to) in [
        (Host::HostA, at(DESTINATION, BULK_PORT)),
        (Host::HostD, at(DESTINATION6, BULK_PORT)),
    ] {
        let took = tcp::transfer(lab.ns(host), dst, to, DOWNLOAD, Direction::Download)
            .unwrap_or_else(|e| panic!("{host:?}: download from {to}: {e}"));
        println!(
            "{}: {host:?} downloaded {DOWNLOAD} bytes in {took:?}",
            runner.name()
        );
    }
    let lowered = format!("Lower the frame size toward [{CLIENT_WAN6}]:");
    server
        .wait_for_line(&lowered, 0, WAIT)
        .unwrap_or_else(|e| panic!("{e}: {:#?}", server.lines()));
}

/// The server's devices without their IPv4 addresses (last: the lab keeps them so): the server
/// runs on IPv6 alone, host D's IPv6 crosses, host A's IPv4 is dropped and counted (`no_ipv4`)
fn an_ipv6_only_server(lab: &Lab, runner: Runner) {
    for dev in ["wan0", "dst0"] {
        lab.ns(Host::Server)
            .ip(&["-4", "addr", "flush", "dev", dev])
            .expect("IPv4 addresses removed");
    }
    let options = TunnelOptions {
        tunnel6: true,
        ..TunnelOptions::dual_stack(PASSWORD)
    };
    let (server, _client) = tunnel(lab, runner, &options);
    for (starts, ends) in [
        (
            "Take tunnels on ",
            format!("[{SERVER_WAN6}]:{TUNNEL_PORT} (IPv6)"),
        ),
        ("Route upstream from dst0 ", "IPv6 only".to_owned()),
    ] {
        let line = server
            .wait_for_line(starts, 0, WAIT)
            .unwrap_or_else(|e| panic!("{e}: {:#?}", server.lines()));
        assert!(line.ends_with(&ends), "{line}");
    }
    // the link toward the clients is still narrowed: sizes that fit it at once
    let echo6 = at(DESTINATION6, ECHO_PORT);
    for size in [20, 600] {
        echoes(lab, Host::HostD, echo6, size);
    }
    tcp::echo(lab.ns(Host::HostD), echo6, b"ipv6 only\n", WAIT).expect("tcp echo from host D");
    let echo4 = at(DESTINATION, ECHO_PORT);
    assert!(udp::echo(lab.ns(Host::HostA), echo4, 100, WAIT).is_err());
    server
        .wait_for_line("no_ipv4", 0, WAIT)
        .unwrap_or_else(|e| panic!("{e}: {:#?}", server.lines()));
}

fn outer_ipv6(runner: Runner) {
    let lab = Lab::build_dual_stack(FirewallPolicy::default()).expect("lab builds");
    ikago2_over_ipv6(&lab, runner);
    kcp_over_ipv6(&lab, runner);
    tcp_mode_over_ipv6(&lab, runner);
    fails_over_from_ipv6_to_ipv4(&lab, runner);
    big_replies_cross_a_narrow_link(&lab, runner);
    an_ipv6_only_server(&lab, runner);
}

#[test]
fn outer_ipv6_sync() {
    if ikago_lab::require_root() {
        outer_ipv6(Runner::Sync);
    }
}

#[test]
fn outer_ipv6_async() {
    if ikago_lab::require_root() {
        outer_ipv6(Runner::Async);
    }
}
