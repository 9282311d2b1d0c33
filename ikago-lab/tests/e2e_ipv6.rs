//! Inner IPv6 end to end (root; skipped otherwise), with both runners: the LAN's IPv6 hosts
//! reach the destination through the IPv4 tunnel on the ikago2 wire, past the firewall that
//! blocks UDP and ICMPv6 (strict conntrack) in a dual-stack lab, one lab per runner for every
//! case:
//!
//! - host D, with an IPv6 address only, gets UDP echoes, a TCP echo, DNS and ping6; host B, whose
//!   IPv6 gateway only the client's proxy NDP answers for, gets its echo;
//! - host A, dual-stack, uses both families at once;
//! - the peer, a third Internet host, reaches the port the server mapped for host D (full cone);
//! - a datagram too big for the peer's link draws a Packet Too Big from the destination, which
//!   reaches host D translated: its kernel learns the path MTU;
//! - `--rule` drops the server's NAT66 ports with ip6tables and turns the client's IPv6
//!   forwarding off, all undone when SIGTERM stops them;
//! - an IPv6 source added to the config file is tunnelled after SIGHUP, without a new handshake.
//!
//! Every destination is a literal of the lab's plan ([`ikago_lab::addr`]), and every probe
//! refuses any other.

use ikago_lab::addr::*;
use ikago_lab::probe::{dns, ping, pmtu, tcp, udp};
use ikago_lab::{
    ClientSite, Daemon, FirewallPolicy, Host, Lab, Netns, Runner, TunnelOptions, stop,
};
use nix::sys::signal::Signal;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Wait for one probe answer through the tunnel
const WAIT: Duration = Duration::from_secs(2);
/// The ikago2 password of these tests
const PASSWORD: &str = "ipv6-lab";
/// The peer's port the oversize datagrams go to
const PEER_PORT: u16 = 9100;
/// The largest UDP payload in a 1280-byte IPv6 packet
const MIN_MTU_PAYLOAD: usize = 1232;

fn echo6() -> SocketAddr {
    SocketAddr::new(DESTINATION6.into(), ECHO_PORT)
}

fn dns6() -> SocketAddr {
    SocketAddr::new(DESTINATION6.into(), DNS_PORT)
}

/// The server and the main client tunnelling the LAN's IPv6 over ikago2 on a dual-stack lab
/// with the default (blocking) firewall
struct Tunnel<'a> {
    client: Daemon,
    server: Daemon,
    lab: &'a Lab,
}

impl<'a> Tunnel<'a> {
    fn up(lab: &'a Lab, runner: Runner) -> Self {
        let options = TunnelOptions::dual_stack(PASSWORD);
        let server = lab
            .start_ready_server(runner, &options)
            .expect("server starts");
        let client = lab
            .start_client(runner, ClientSite::Main, &options)
            .expect("client connects");
        Self {
            client,
            server,
            lab,
        }
    }

    fn ns(&self, host: Host) -> &Netns {
        self.lab.ns(host)
    }

    /// Stops both with SIGTERM, so that they take their firewall rules away
    fn stop(mut self) {
        for (name, daemon) in [("client", &mut self.client), ("server", &mut self.server)] {
            let status = stop(daemon).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(status.code(), Some(0), "{name} exits 0 on SIGTERM");
        }
    }
}

fn echoes(t: &Tunnel<'_>, host: Host, to: SocketAddr, size: usize) {
    udp::echo_retry(t.ns(host), to, size, WAIT, 2)
        .unwrap_or_else(|e| panic!("{host:?}: {size}-byte udp echo from {to}: {e}"));
}

/// A UDP socket of `host` bound to an ephemeral port of its IPv6 address `at`
fn udp6(ns: &Netns, at: Ipv6Addr) -> UdpSocket {
    let socket = ns
        .enter(|| UdpSocket::bind(SocketAddr::new(at.into(), 0)))
        .expect("enter")
        .expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    socket
}

fn ipv6_only_host_through_the_blocking_firewall(t: &Tunnel<'_>) {
    for size in [20, 1200, MIN_MTU_PAYLOAD] {
        echoes(t, Host::HostD, echo6(), size);
    }
    let d = t.ns(Host::HostD);
    tcp::echo(d, echo6(), b"tcp over ipv6\n", WAIT).expect("tcp echo from host D");
    let (ip, _) =
        dns::query_retry(d, dns6(), "echo.lab.test", WAIT, 2).expect("dns from host D over IPv6");
    assert_eq!(ip, DESTINATION);
    ping::through(d, DESTINATION6, Duration::from_millis(50)).expect("ping6 from host D");
    // host B's IPv6 gateway is answered for by the client's proxy NDP
    echoes(t, Host::HostB, echo6(), 100);
    let neigh = t
        .ns(Host::HostB)
        .ip(&["-6", "neigh", "show", &PUBLISHED_GATEWAY6.to_string()])
        .expect("neigh");
    assert!(
        neigh.contains("02:00:00:00:15:01"),
        "the client's lan0 answered for the gateway: {neigh}"
    );
}

fn dual_stack_host_uses_both_at_once(t: &Tunnel<'_>) {
    let a = t.ns(Host::HostA);
    let echo4 = SocketAddr::new(DESTINATION.into(), ECHO_PORT);
    std::thread::scope(|scope| {
        let v6 = scope.spawn(|| {
            for _ in 0..20 {
                udp::echo_retry(a, echo6(), 600, WAIT, 2).expect("IPv6 echo");
            }
        });
        for _ in 0..20 {
            udp::echo_retry(a, echo4, 600, WAIT, 2).expect("IPv4 echo");
        }
        v6.join().expect("the IPv6 echoes");
    });
    tcp::echo(a, echo6(), b"six\n", WAIT).expect("tcp over IPv6");
    tcp::echo(a, echo4, b"four\n", WAIT).expect("tcp over IPv4");
}

fn a_third_host_reaches_the_mapped_ipv6_port(t: &Tunnel<'_>) {
    let far = udp6(t.ns(Host::Destination), DESTINATION6);
    let far_at = far.local_addr().expect("addr");
    let near = udp6(t.ns(Host::HostD), HOST_D6);
    let mut buf = [0u8; 64];
    // host D opens the mapping; the destination sees the server's NAT66 address and port
    let mapped = (0..10)
        .find_map(|_| {
            near.send_to(b"open", far_at).expect("send");
            far.recv_from(&mut buf).ok().map(|(_, from)| from)
        })
        .expect("the destination hears host D through the tunnel");
    assert_eq!(
        mapped.ip(),
        IpAddr::from(SERVER_DST6),
        "NAT66 onto the server's address"
    );
    // the peer, which host D never sent to, reaches host D through that mapping
    let peer = udp6(t.ns(Host::Peer), PEER6);
    let peer_at = peer.local_addr().expect("addr");
    let start = Instant::now();
    let from = loop {
        peer.send_to(b"from the peer", mapped).expect("send");
        if let Ok((n, from)) = near.recv_from(&mut buf) {
            assert_eq!(&buf[..n], b"from the peer");
            break from;
        }
        assert!(
            start.elapsed() < 3 * WAIT,
            "the peer's datagram to {mapped} never reached host D"
        );
    };
    assert_eq!(from, peer_at, "host D sees the peer as it is");
}

fn a_packet_too_big_reaches_the_lan_host_translated(t: &Tunnel<'_>) {
    let d = t.ns(Host::HostD);
    // the path works, and host D knows of no smaller MTU toward the peer
    echoes(t, Host::HostD, echo6(), 100);
    assert_eq!(pmtu::cached(d, PEER6.into()).expect("route"), None);
    let peer = SocketAddr::new(PEER6.into(), PEER_PORT);
    let mtu = pmtu::learn(d, peer, 1300, 3 * WAIT).expect("a Packet Too Big reaches host D");
    assert_eq!(mtu, PEER_LINK_MTU);
}

/// `--rule` with IPv6: the server drops its NAT66 ports in an ip6tables chain, the client with
/// IPv6 sources turns IPv6 forwarding off; after SIGTERM both exit 0 and everything is as before
fn sigterm_removes_the_ipv6_rules(lab: &Lab, runner: Runner) {
    lab.set_direct_routing(true).expect("forwarding on");
    let forwarding = || {
        lab.ns(Host::Client)
            .read_sysctl("net.ipv6.conf.all.forwarding")
            .expect("sysctl")
    };
    let before = [Host::Client, Host::Server].map(|h| lab.firewall_rules(h).expect("rules"));
    let options = TunnelOptions::dual_stack(PASSWORD);
    let mut server = lab
        .start_ready_server(runner, &options)
        .expect("server starts");
    let mut client = lab
        .start_client(runner, ClientSite::Main, &options)
        .expect("client connects");
    let during = lab.firewall_rules(Host::Server).expect("rules");
    let nat66 = format!("-d {SERVER_DST6}/128 -p udp -m udp --dport 49152:65535 -j DROP");
    assert!(
        during.iter().any(|r| r.contains(&nat66)),
        "the NAT66 ports are dropped: {during:#?}"
    );
    assert_eq!(forwarding(), "0", "the client turned IPv6 forwarding off");
    for (name, daemon) in [("client", &mut client), ("server", &mut server)] {
        let status = stop(daemon).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status.code(), Some(0), "{name} exits 0 on SIGTERM");
    }
    let after = [Host::Client, Host::Server].map(|h| lab.firewall_rules(h).expect("rules"));
    assert_eq!(after, before, "no firewall rule is left behind");
    assert_eq!(forwarding(), "1", "IPv6 forwarding is restored");
    lab.set_direct_routing(false).expect("forwarding off");
}

/// SIGHUP with host D added to the config file's sources: its IPv6 echoes come back within
/// 5 s, without a new handshake
fn sighup_adds_an_ipv6_source(lab: &Lab, runner: Runner) {
    let options = TunnelOptions::dual_stack(PASSWORD);
    let _server = lab
        .start_ready_server(runner, &options)
        .expect("server starts");
    let file = std::env::temp_dir().join(format!(
        "ikago-lab-reload6-{}-{}.json",
        std::process::id(),
        runner.name()
    ));
    let config = |sources: &[String]| {
        let config = serde_json::json!({
            "sources": sources,
            "server": format!("{SERVER_WAN}:{TUNNEL_PORT}"),
            "password": PASSWORD,
            "protocol": "ikago2",
            "listen-devices": "lan0",
            "upstream-device": "wan0",
            "rule": true
        });
        std::fs::write(&file, config.to_string()).expect("the config file is written");
    };
    config(&[HOST_A6.to_string()]);
    let path = file.to_str().expect("a UTF-8 path").to_owned();
    let args = ["client", "-c", &path, "-v"].map(String::from);
    let client = lab
        .spawn_runner(runner, Host::Client, "client", &args)
        .expect("client starts");
    client
        .wait_for_line(ikago_lab::runner::CONNECTED, 0, ikago_lab::CONNECT_TIMEOUT)
        .expect("client connects");
    let d = lab.ns(Host::HostD);
    udp::echo_retry(lab.ns(Host::HostA), echo6(), 100, WAIT, 2).expect("host A's echo");
    assert!(
        udp::echo(d, echo6(), 100, WAIT).is_err(),
        "host D is no source yet"
    );
    config(&[HOST_A6.to_string(), HOST_D6.to_string()]);
    let since = client.line_count();
    client.signal(Signal::SIGHUP).expect("SIGHUP");
    client
        .wait_for_line(&format!("{HOST_D6} through"), since, WAIT)
        .unwrap_or_else(|e| panic!("{e}: {:#?}", &client.lines()[since..]));
    let start = Instant::now();
    while udp::echo(d, echo6(), 100, Duration::from_millis(300)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no echo for host D within 5 s of the reload: {:#?}",
            client.lines()
        );
    }
    let restart = client.lines()[since..]
        .iter()
        .any(|l| l.contains("restart to apply"));
    assert!(!restart, "{:#?}", &client.lines()[since..]);
    assert_eq!(
        client
            .lines()
            .iter()
            .filter(|l| l.contains(ikago_lab::runner::CONNECTED))
            .count(),
        1,
        "no new handshake"
    );
    let _ = std::fs::remove_file(&file);
}

/// Every case on one dual-stack lab: those of a running tunnel first (the Packet Too Big before
/// anything else, while host D knows of no smaller MTU), then the ones that start their own
fn inner_ipv6(runner: Runner) {
    let lab = Lab::build_dual_stack(FirewallPolicy::default()).expect("lab builds");
    let t = Tunnel::up(&lab, runner);
    a_packet_too_big_reaches_the_lan_host_translated(&t);
    ipv6_only_host_through_the_blocking_firewall(&t);
    dual_stack_host_uses_both_at_once(&t);
    a_third_host_reaches_the_mapped_ipv6_port(&t);
    t.stop();
    sigterm_removes_the_ipv6_rules(&lab, runner);
    sighup_adds_an_ipv6_source(&lab, runner);
}

#[test]
fn inner_ipv6_sync() {
    if ikago_lab::require_root() {
        inner_ipv6(Runner::Sync);
    }
}

#[test]
fn inner_ipv6_async() {
    if ikago_lab::require_root() {
        inner_ipv6(Runner::Async);
    }
}
