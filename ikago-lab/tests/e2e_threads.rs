//! A server of two engines (`--threads 2`) end to end, with both runners (root; skipped
//! otherwise): four clients whose tunnel addresses hash to both engines
//! ([`ikago_proto::Shard::of`]) carry UDP echoes, TCP echoes and pings from their own LAN
//! sources through the firewall that blocks UDP and ICMP (strict conntrack); the one monitor
//! shows one server (every client, the whole NAT pool, no segment at the wrong engine); a SIGHUP
//! is answered once; SIGTERM stops both engines, exit code 0, every rule removed.

use ikago_lab::addr::{
    CLIENT_WAN, CLIENT2_WAN, DESTINATION, ECHO_PORT, HOST_A, HOST_B, HOST_C, MONITOR_PORT,
    PUBLISHED_GATEWAY, SERVER_WAN, TUNNEL_PORT,
};
use ikago_lab::probe::http;
use ikago_lab::runner::CONNECTED;
use ikago_lab::{
    CONNECT_TIMEOUT, Daemon, FirewallPolicy, Host, Lab, LabError, Netns, Runner, TunnelOptions,
    stop,
};
use ikago_proto::{NatConfig, Shard};
use nix::sys::signal::Signal;
use serde_json::Value;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Engines of the server under test
const ENGINES: u16 = 2;
/// A second address of host C, the source of the fourth client
const HOST_C2: Ipv4Addr = Ipv4Addr::new(198, 18, 25, 3);
/// Wait for one probe answer through the tunnel
const WAIT: Duration = Duration::from_secs(2);
/// How long the monitor may take to show what the tunnel carried
const SNAPSHOT_WAIT: Duration = Duration::from_secs(5);
/// Tries of a UDP probe, which a lost datagram may fail once
const TRIES: u32 = 3;

#[test]
fn sync_server_of_two_engines() {
    if ikago_lab::require_root() {
        two_engines(Runner::Sync);
    }
}

#[test]
fn async_server_of_two_engines() {
    if ikago_lab::require_root() {
        two_engines(Runner::Async);
    }
}

/// A client of the test: where it runs, the LAN source it tunnels, and its fixed tunnel port
struct Site {
    machine: Host,
    wan: Ipv4Addr,
    lan: Host,
    source: Ipv4Addr,
    port: u16,
}

impl Site {
    /// The client's tunnel address, as the server sees it
    fn tunnel(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.wan, self.port)
    }

    fn args(&self) -> Vec<String> {
        let mut args = [
            "client",
            "-r",
            &self.source.to_string(),
            "-s",
            &SocketAddrV4::new(SERVER_WAN, TUNNEL_PORT).to_string(),
            "-p",
            &self.port.to_string(),
            "--listen-devices",
            "lan0",
            "--upstream-device",
            "wan0",
            "--rule",
            "-v",
        ]
        .map(String::from)
        .to_vec();
        if self.source == HOST_B {
            args.extend(["--publish".into(), PUBLISHED_GATEWAY.to_string()]);
        }
        args
    }
}

/// The first port from `from` on at which a client at `wan` belongs to engine `engine`
fn port_of(wan: Ipv4Addr, engine: u16, from: u16) -> u16 {
    (from..)
        .find(|&p| Shard::of(SocketAddrV4::new(wan, p).into(), ENGINES) == engine)
        .expect("every engine owns some port")
}

/// Two clients on each client machine, one per engine on each
fn sites() -> Vec<Site> {
    let site = |machine, wan, lan, source, engine| Site {
        machine,
        wan,
        lan,
        source,
        port: port_of(wan, engine, 40000),
    };
    vec![
        site(Host::Client, CLIENT_WAN, Host::HostA, HOST_A, 0),
        site(Host::Client, CLIENT_WAN, Host::HostB, HOST_B, 1),
        site(Host::Client2, CLIENT2_WAN, Host::HostC, HOST_C, 0),
        site(Host::Client2, CLIENT2_WAN, Host::HostC, HOST_C2, 1),
    ]
}

fn two_engines(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let before = lab.firewall_rules(Host::Server).expect("rules");
    lab.ns(Host::HostC)
        .ip(&["addr", "add", &format!("{HOST_C2}/24"), "dev", "eth0"])
        .expect("a second address on host C");
    let mut args = TunnelOptions::default().server_args();
    let monitor = monitor();
    args.extend(
        [
            "--threads",
            "2",
            "--monitor",
            &monitor.port().to_string(),
            "--monitor-address",
            &monitor.ip().to_string(),
        ]
        .map(String::from),
    );
    let mut server = lab
        .spawn_runner(runner, Host::Server, "server", &args)
        .expect("server starts");
    server
        .wait_for_line("Run 2 engines", 0, CONNECT_TIMEOUT)
        .expect("the server says it runs two engines");
    let sites = sites();
    let shards: Vec<u16> = sites
        .iter()
        .map(|s| Shard::of(s.tunnel().into(), ENGINES))
        .collect();
    assert_eq!(shards, [0, 1, 0, 1], "the clients land on both engines");
    let clients: Vec<Daemon> = sites
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let name = format!("client{i}");
            let client = lab
                .spawn_runner(runner, s.machine, &name, &s.args())
                .expect("client starts");
            client
                .wait_for_line(CONNECTED, 0, CONNECT_TIMEOUT)
                .unwrap_or_else(|e| panic!("{name} at {}: {e}", s.tunnel()));
            client
        })
        .collect();

    for s in &sites {
        let ns = lab.ns(s.lan);
        let what = format!("from {} through {}", s.source, s.tunnel());
        udp_echo(ns, s.source).unwrap_or_else(|e| panic!("udp {what}: {e}"));
        tcp_echo(ns, s.source).unwrap_or_else(|e| panic!("tcp {what}: {e}"));
        ping(ns, s.source).unwrap_or_else(|e| panic!("ping {what}: {e}"));
    }

    // one monitor, one server: every client, the whole NAT pool, nothing at the wrong engine
    let s = lab.ns(Host::Server);
    let doc = snapshot_until(s, |d| peers(d).len() == sites.len());
    let mut expected: Vec<String> = sites.iter().map(|s| s.tunnel().to_string()).collect();
    expected.sort();
    let mut seen = peers(&doc);
    seen.sort();
    assert_eq!(seen, expected, "{doc:#}");
    let drops = |reason: &str| {
        doc["drops"]
            .as_array()
            .and_then(|d| d.iter().find(|r| r["reason"] == reason))
            .and_then(|r| r["count"].as_u64())
    };
    assert_eq!(drops("other_shard"), Some(0), "filters keep shares apart");
    let nat = NatConfig::default();
    let pool = [nat.tcp_ports, nat.udp_ports, nat.icmp_ids]
        .iter()
        .map(|r| r.clone().count())
        .sum::<usize>();
    let metrics = http::get(s, monitor, "/metrics", WAIT).expect("metrics");
    assert!(
        metrics.body.contains(&format!("ikago_nat_capacity {pool}")),
        "the engines' slices add up to the pool: {}",
        metrics.body
    );

    // a reload reaches both engines and is reported once
    let from = server.line_count();
    server.signal(Signal::SIGHUP).expect("sighup");
    server
        .wait_for_line("The config is unchanged", from, WAIT)
        .expect("the reload is answered");
    std::thread::sleep(Duration::from_millis(300));
    let answers = server.lines()[from..]
        .iter()
        .filter(|l| l.contains("The config is unchanged"))
        .count();
    assert_eq!(answers, 1, "one server answers");
    udp_echo(lab.ns(Host::HostA), HOST_A).expect("udp after the reload");

    // the exit summary adds both engines up: at least what the monitor showed
    let shown = doc["traffic"]["inner"]["out"]["packets"]
        .as_u64()
        .expect("inner packets out");
    let status = stop(&mut server).expect("the server stops");
    assert_eq!(status.code(), Some(0), "exit code 0 on SIGTERM");
    let summary = server
        .lines()
        .into_iter()
        .find_map(|l| {
            let rest = &l[l.find("; inner ")? + "; inner ".len()..];
            rest.split(' ').next()?.parse::<u64>().ok()
        })
        .expect("the exit summary");
    assert!(
        summary >= shown,
        "{summary} inner packets out, {shown} shown"
    );
    let after = lab.firewall_rules(Host::Server).expect("rules");
    assert_eq!(after, before, "no firewall rule is left behind");
    drop(clients);
}

/// Where the server's monitor listens: its lab address, which the probes may reach
fn monitor() -> SocketAddrV4 {
    SocketAddrV4::new(SERVER_WAN, MONITOR_PORT)
}

fn echo_addr() -> SocketAddrV4 {
    SocketAddrV4::new(DESTINATION, ECHO_PORT)
}

/// The clients the server's snapshot lists
fn peers(doc: &Value) -> Vec<String> {
    doc["peers"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| p["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `/api/snapshot` of the monitor in `ns`, once `check` holds (or the last one, after
/// [`SNAPSHOT_WAIT`])
fn snapshot_until(ns: &Netns, check: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let doc = http::get(ns, monitor(), "/api/snapshot", WAIT)
            .and_then(|r| r.json())
            .expect("the monitor answers");
        if check(&doc) || start.elapsed() > SNAPSHOT_WAIT {
            return doc;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An I/O error while doing `what`
fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> LabError {
    move |source| LabError::Io {
        what: what.into(),
        source,
    }
}

/// A UDP echo from `source` in `ns` (a lost datagram is tried again)
fn udp_echo(ns: &Netns, source: Ipv4Addr) -> Result<(), LabError> {
    let socket = ns
        .enter(|| UdpSocket::bind(SocketAddrV4::new(source, 0)))?
        .map_err(io("bind udp socket"))?;
    socket
        .set_read_timeout(Some(WAIT))
        .map_err(io("set timeout"))?;
    let payload: Vec<u8> = (0..1300).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; 2048];
    for _ in 0..TRIES {
        socket.send_to(&payload, echo_addr()).map_err(io("send"))?;
        if let Ok((n, _)) = socket.recv_from(&mut back)
            && back[..n] == payload[..]
        {
            return Ok(());
        }
    }
    Err(LabError::Check(format!("no udp echo in {TRIES} tries")))
}

/// A TCP echo from `source` in `ns`
fn tcp_echo(ns: &Netns, source: Ipv4Addr) -> Result<(), LabError> {
    let mut stream: TcpStream = ns
        .enter(|| -> std::io::Result<TcpStream> {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            socket.bind(&SockAddr::from(SocketAddrV4::new(source, 0)))?;
            socket.connect_timeout(&SockAddr::from(echo_addr()), WAIT * 2)?;
            Ok(socket.into())
        })?
        .map_err(io("tcp connect"))?;
    stream
        .set_read_timeout(Some(WAIT))
        .map_err(io("set timeout"))?;
    let line = b"two engines, one server\n";
    stream.write_all(line).map_err(io("write"))?;
    let mut back = vec![0u8; line.len()];
    stream.read_exact(&mut back).map_err(io("read"))?;
    match back == line {
        true => Ok(()),
        false => Err(LabError::Check("the tcp echo differs".into())),
    }
}

/// Three pings from `source` in `ns`, at least one answered
fn ping(ns: &Netns, source: Ipv4Addr) -> Result<(), LabError> {
    let out = ns.attempt(
        "ping",
        &[
            "-n",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-I",
            &source.to_string(),
            &DESTINATION.to_string(),
        ],
    )?;
    match out.status.success() {
        true => Ok(()),
        false => Err(LabError::Check(format!(
            "no ping reply: {}",
            String::from_utf8_lossy(&out.stdout)
        ))),
    }
}
