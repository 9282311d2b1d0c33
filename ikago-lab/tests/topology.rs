//! The lab itself, without IkaGo: addressing, the firewall's blocking and strictness, the
//! variants, the services, and teardown even on panic

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::time::Duration;

use ikago_lab::addr::*;
use ikago_lab::probe::{dns, ping, pmtu, raw, tcp, udp};
use ikago_lab::{
    Blocking, Daemon, FirewallPolicy, Host, Lab, namespaces_with_prefix, require_root,
};

const SHORT: Duration = Duration::from_millis(700);

fn echo() -> SocketAddrV4 {
    SocketAddrV4::new(DESTINATION, ECHO_PORT)
}

fn dns_server() -> SocketAddrV4 {
    SocketAddrV4::new(DESTINATION, DNS_PORT)
}

/// The IPv4 lab on one build, in turn: the blocking firewall and its opening, strict conntrack,
/// a spoofed SYN flood, the destination's services, then the masquerade, shaped and lossy
/// variants (each from the default policy with kernel forwarding off)
#[test]
fn the_firewall_its_variants_and_the_services() {
    if !require_root() {
        return;
    }
    let mut lab = Lab::build(FirewallPolicy::default()).expect("lab");
    firewall_blocks_udp_and_icmp_from_the_clients_but_not_tcp(&mut lab);
    let sections: [fn(&mut Lab); 6] = [
        firewall_conntrack_is_strict,
        a_spoofed_syn_flood_crosses_the_firewall_bounded,
        destination_services_answer,
        masquerade_hides_the_client_side,
        shaped_variant_slows_udp_but_not_tcp,
        loss_variant_drops_at_random,
    ];
    for section in sections {
        lab.set_policy(FirewallPolicy::default())
            .expect("default policy");
        lab.set_direct_routing(false).expect("forwarding off");
        section(&mut lab);
    }
}

fn firewall_blocks_udp_and_icmp_from_the_clients_but_not_tcp(lab: &mut Lab) {
    lab.set_direct_routing(true).expect("forwarding on");
    for host in [Host::HostA, Host::Client, Host::HostC] {
        let ns = lab.ns(host);
        tcp::echo(ns, echo(), b"tcp passes\n", Duration::from_secs(3))
            .expect("tcp crosses the firewall");
        assert!(
            udp::echo(ns, echo(), 20, SHORT).is_err(),
            "{host:?}: udp must be blocked"
        );
        assert!(
            dns::query(ns, dns_server(), "echo.lab.test", SHORT).is_err(),
            "{host:?}: dns blocked"
        );
        let pings = ping::ping(
            ns,
            DESTINATION,
            2,
            Duration::from_millis(200),
            Duration::from_secs(1),
        )
        .expect("ping");
        assert_eq!(pings.received(), 0, "{host:?}: icmp must be blocked");
    }
    // Host B's gateway is nobody's: without the client's proxy ARP it reaches nothing
    assert!(tcp::echo(lab.ns(Host::HostB), echo(), b"x\n", SHORT).is_err());

    lab.set_policy(FirewallPolicy::open()).expect("open");
    let a = lab.ns(Host::HostA);
    udp::echo(a, echo(), 1472, SHORT).expect("udp passes an open firewall");
    let (ip, _) =
        dns::query(a, dns_server(), "echo.lab.test", SHORT).expect("dns passes an open firewall");
    assert_eq!(ip, DESTINATION);
    let pings = ping::ping(
        a,
        DESTINATION,
        2,
        Duration::from_millis(200),
        Duration::from_secs(1),
    )
    .expect("ping");
    assert_eq!(pings.received(), 2);
}

fn firewall_conntrack_is_strict(lab: &mut Lab) {
    let fw = lab.ns(Host::Firewall);
    assert_eq!(
        fw.read_sysctl("net.netfilter.nf_conntrack_tcp_loose")
            .expect("sysctl"),
        "0"
    );
    let before = FirewallPolicy::invalid_drops(fw).expect("counters");
    let from = SocketAddrV4::new(CLIENT_WAN, 40_000);
    raw::lone_ack(
        lab.ns(Host::Client),
        from,
        SocketAddrV4::new(SERVER_WAN, TUNNEL_PORT),
    )
    .expect("send");
    let after = FirewallPolicy::invalid_drops(fw).expect("counters");
    assert_eq!(
        after,
        before + 1,
        "a mid-stream ACK with no connection is INVALID and dropped"
    );
}

fn a_spoofed_syn_flood_crosses_the_firewall_bounded(lab: &mut Lab) {
    let server = lab.ns(Host::Server);
    let port = TUNNEL_PORT.to_string();
    let rule = ["INPUT", "-p", "tcp", "--syn", "--dport", &port];
    server
        .exec("iptables", &[&["-A"][..], &rule].concat())
        .expect("a counting rule");
    let flood = raw::SynFlood {
        target: SocketAddrV4::new(SERVER_WAN, TUNNEL_PORT),
        first_source: Ipv4Addr::new(198, 18, 22, 10),
        hosts: 240,
        count: 2000,
        duration: Duration::from_millis(500),
        seed: 1,
    };
    let report = flood.send(lab.ns(Host::Client2)).expect("flood");
    assert_eq!(report.sent, 2000);
    assert!(
        report.elapsed >= Duration::from_millis(450) && report.elapsed < Duration::from_secs(5),
        "paced over about half a second: {report:?}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let listing = server
        .exec("iptables", &["-L", "INPUT", "-v", "-n", "-x"])
        .expect("counters");
    let arrived: u64 = listing
        .lines()
        .find(|l| l.contains(&format!("dpt:{port}")))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("the rule's packet count");
    assert_eq!(
        arrived, 2000,
        "every spoofed SYN reached the server:\n{listing}"
    );
}

fn destination_services_answer(lab: &mut Lab) {
    let dst = lab.ns(Host::Destination);
    let (ip, _) = dns::query(dst, dns_server(), "anything.lab.test", SHORT).expect("dns");
    assert_eq!(ip, DESTINATION);
    for size in [20, 1300, 1472] {
        udp::echo(dst, echo(), size, SHORT).expect("udp echo");
    }
    tcp::echo(dst, echo(), b"hello\n", SHORT).expect("tcp echo");
    // The server machine has the destination on-link: iperf3 works and its report parses
    let report = ikago_lab::probe::iperf::udp(
        lab.ns(Host::Server),
        DESTINATION,
        10_000_000,
        1200,
        Duration::from_secs(1),
    )
    .expect("iperf3");
    assert!(report.packets > 0 && report.loss() < 0.5, "{report:?}");
}

fn masquerade_hides_the_client_side(lab: &mut Lab) {
    lab.set_policy(FirewallPolicy::masquerading())
        .expect("masquerade");
    let listener = lab
        .ns(Host::Server)
        .enter(|| TcpListener::bind((SERVER_WAN, 9000)))
        .expect("enter")
        .expect("listen");
    let _conn = tcp::connect(
        lab.ns(Host::Client),
        SocketAddrV4::new(SERVER_WAN, 9000),
        SHORT,
    )
    .expect("connect");
    let (_, peer) = listener.accept().expect("accept");
    assert_eq!(
        peer.ip(),
        FIREWALL_OUTSIDE,
        "the server sees the firewall, not the client"
    );
}

fn shaped_variant_slows_udp_but_not_tcp(lab: &mut Lab) {
    let policy = FirewallPolicy {
        blocking: Blocking::ShapeUdp { kbit: 1000 },
        ..FirewallPolicy::default()
    };
    lab.set_policy(policy).expect("shaped");
    lab.set_direct_routing(true).expect("forwarding on");
    let (a, dst) = (lab.ns(Host::HostA), lab.ns(Host::Destination));
    let at = SocketAddrV4::new(DESTINATION, BULK_PORT);
    let spec = udp::StreamSpec {
        bytes: 1_000_000,
        datagram: 1000,
        rate_bps: 10_000_000,
    };
    let report = udp::stream(a, dst, at, spec, udp::Direction::Upload).expect("stream");
    assert!(report.received > 0, "shaped, not blocked");
    assert!(
        report.delivered() < 0.5,
        "10 Mbit/s offered into 1 Mbit/s: {report:?}"
    );
    let took = tcp::transfer(a, dst, at, 2_000_000, udp::Direction::Upload).expect("tcp");
    assert!(
        took < Duration::from_secs(4),
        "tcp is not shaped (2 MB took {took:?})"
    );
}

fn loss_variant_drops_at_random(lab: &mut Lab) {
    let policy = FirewallPolicy {
        blocking: Blocking::Open,
        loss: Some(0.2),
        ..FirewallPolicy::default()
    };
    lab.set_policy(policy).expect("lossy");
    lab.set_direct_routing(true).expect("forwarding on");
    let pings = ping::ping(
        lab.ns(Host::HostA),
        DESTINATION,
        100,
        Duration::from_millis(5),
        Duration::from_secs(1),
    )
    .expect("ping");
    // Each way 20%: about 64 of 100 come back
    assert!(
        (30..=90).contains(&pings.received()),
        "{} of 100",
        pings.received()
    );
}

#[test]
fn teardown_removes_everything_even_after_a_panic() {
    if !require_root() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let lab = Lab::build(FirewallPolicy::default()).expect("lab");
        let sleeper =
            Daemon::spawn(lab.ns(Host::Destination), "sleeper", "sleep", &["60"]).expect("spawn");
        tx.send((lab.id().to_owned(), sleeper.pid())).expect("send");
        panic!("a failing test");
    })
    .join();
    assert!(outcome.is_err());
    let (id, pid) = rx.recv().expect("the lab was built");
    assert!(
        namespaces_with_prefix(&id).is_empty(),
        "namespaces of {id} remain"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} remains"
    );
}

/// The IPv6 plane on the direct path (kernel forwarding on): TCP crosses the firewall from
/// the IPv6-only host D, a dual-stack host A and host C while UDP echo, DNS and ping6 are
/// blocked; a connection opened from the outside is not let in; opened, the firewall passes
/// everything, and a datagram too big for the peer's link draws a Packet Too Big that host D's
/// kernel learns from. The lab leaves nothing behind.
#[test]
fn dual_stack_plane_blocks_ipv6_udp_and_icmpv6_but_not_tcp() {
    if !require_root() {
        return;
    }
    let echo6 = SocketAddr::new(DESTINATION6.into(), ECHO_PORT);
    let dns6 = SocketAddr::new(DESTINATION6.into(), DNS_PORT);
    let mut lab = Lab::build_dual_stack(FirewallPolicy::default()).expect("lab");
    let id = lab.id().to_owned();
    lab.set_direct_routing(true).expect("forwarding on");
    for host in [Host::HostD, Host::HostA, Host::HostC] {
        let ns = lab.ns(host);
        tcp::echo(ns, echo6, b"tcp6 passes\n", Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("{host:?}: tcp over IPv6 crosses the firewall: {e}"));
        assert!(
            udp::echo(ns, echo6, 20, SHORT).is_err(),
            "{host:?}: IPv6 udp must be blocked"
        );
        assert!(
            dns::query(ns, dns6, "echo.lab.test", SHORT).is_err(),
            "{host:?}: dns over IPv6 blocked"
        );
        let pings = ping::ping(
            ns,
            DESTINATION6,
            2,
            Duration::from_millis(200),
            Duration::from_secs(1),
        )
        .expect("ping");
        assert_eq!(pings.received(), 0, "{host:?}: ICMPv6 echo must be blocked");
    }
    // dual-stack: host A's IPv4 goes on as before
    tcp::echo(lab.ns(Host::HostA), echo(), b"tcp4\n", SHORT).expect("host A over IPv4");
    // host B's IPv6 gateway is nobody's: without proxy NDP it reaches nothing
    assert!(tcp::echo(lab.ns(Host::HostB), echo6, b"x\n", SHORT).is_err());
    // strict: a connection from the Internet side to host D is not let in
    let listener = lab
        .ns(Host::HostD)
        .enter(|| TcpListener::bind((HOST_D6, 9000)))
        .expect("enter")
        .expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    assert!(
        tcp::connect(lab.ns(Host::Destination), (HOST_D6, 9000), SHORT).is_err(),
        "an inbound IPv6 connection crosses the firewall"
    );
    assert!(listener.accept().is_err(), "nothing was accepted");

    lab.set_policy(FirewallPolicy::open()).expect("open");
    let d = lab.ns(Host::HostD);
    udp::echo(d, echo6, 1232, SHORT).expect("udp passes an open firewall");
    let (ip, _) = dns::query(d, dns6, "echo.lab.test", SHORT).expect("dns over IPv6");
    assert_eq!(
        ip, DESTINATION,
        "dnsmasq answers A queries on its IPv6 address too"
    );
    let pings = ping::ping(
        d,
        DESTINATION6,
        2,
        Duration::from_millis(200),
        Duration::from_secs(1),
    )
    .expect("ping");
    assert_eq!(pings.received(), 2);
    // the peer's link is narrow: the destination answers with a Packet Too Big
    let peer = SocketAddr::new(PEER6.into(), 9);
    assert_eq!(pmtu::cached(d, PEER6.into()).expect("route"), None);
    let mtu = pmtu::learn(d, peer, 1300, Duration::from_secs(2)).expect("a Packet Too Big");
    assert_eq!(mtu, PEER_LINK_MTU);
    drop(lab);
    assert!(
        namespaces_with_prefix(&id).is_empty(),
        "namespaces of {id} remain"
    );
}
