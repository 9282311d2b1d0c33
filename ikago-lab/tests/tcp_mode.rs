//! `--mode tcp` end to end (root; skipped otherwise): the tunnel in a kernel TCP connection
//! through the lab's firewall that blocks UDP and ICMP, with both runners: DNS, UDP echoes, ping
//! and TCP transfers (and DNS, UDP and ping with `ikago2` records in the stream); the client reconnecting after the server restarts; and a capture of every
//! leg (`dumpcap`) that the replay runner reassembles and replays, every inner packet recovered
//!
//! With `IKAGO_LAB_TCP_CAPTURE=DIR` the sync runner's capture is kept in DIR
//! (`client-lan.pcapng`, `client-wan.pcapng`, `server-wan.pcapng`, `server-dst.pcapng`): that is
//! how `ikago-replay/tests/data/20-tcp-plain-lab` was made.

use ikago_lab::addr::{BULK_PORT, DESTINATION, DNS_PORT, ECHO_PORT};
use ikago_lab::probe::udp::Direction;
use ikago_lab::probe::{dns, ping, tcp, udp};
use ikago_lab::{ClientSite, Daemon, FirewallPolicy, Host, Lab, Runner, TunnelOptions, stop};
use ikago_replay::capture::{Frame, merge};
use ikago_replay::cli::read_capture;
use ikago_replay::drive::replay;
use ikago_replay::scenario::{Options, parse};
use ikago_replay::{Role, prepare};
use nix::sys::signal::Signal;
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Wait for one probe answer through the tunnel
const WAIT: Duration = Duration::from_secs(2);
/// How soon after the server restarts the client's echoes must come back
const RECOVERY: Duration = Duration::from_secs(10);
/// Size of the TCP transfers, each way
const TCP_BYTES: u64 = 10 * 1024 * 1024;

/// Plain, `--mode tcp`
fn tcp_mode() -> TunnelOptions {
    TunnelOptions {
        extra: vec!["--mode".into(), "tcp".into()],
        ..TunnelOptions::default()
    }
}

/// `ikago2` with aes-256-gcm, `--mode tcp`
fn ikago2_tcp_mode() -> TunnelOptions {
    TunnelOptions {
        method: "aes-256-gcm".into(),
        password: Some("lab ikago2 stream".into()),
        protocol: Some("ikago2"),
        ..tcp_mode()
    }
}

fn echo_addr() -> SocketAddrV4 {
    SocketAddrV4::new(DESTINATION, ECHO_PORT)
}

/// DNS, UDP echoes of 20, 1300 and 1472 bytes and 5 pings from host A
fn small_traffic(lab: &Lab) {
    let a = lab.ns(Host::HostA);
    let dns_addr = SocketAddrV4::new(DESTINATION, DNS_PORT);
    let answer =
        dns::query_retry(a, dns_addr, "echo.lab.test", WAIT, 2).expect("dns through the tunnel");
    assert_eq!(answer.0, DESTINATION);
    for size in [20, 1300, 1472] {
        udp::echo_retry(a, echo_addr(), size, WAIT, 2)
            .unwrap_or_else(|e| panic!("{size}-byte udp echo through the tunnel: {e}"));
    }
    let pings = ping::ping(a, DESTINATION, 5, Duration::from_millis(100), WAIT).expect("ping runs");
    assert!(pings.received() >= 4, "{pings:?}");
}

fn carries_everything(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let server = lab
        .start_ready_server(runner, &tcp_mode())
        .expect("server starts");
    let client = lab
        .start_client(runner, ClientSite::Main, &tcp_mode())
        .expect("client connects");
    small_traffic(&lab);
    // a port for each direction: the upload's connection may still hold its port (closing
    // through the tunnel) when the download's listener binds
    for (direction, port) in [
        (Direction::Upload, BULK_PORT),
        (Direction::Download, BULK_PORT + 1),
    ] {
        let took = tcp::transfer(
            lab.ns(Host::HostA),
            lab.ns(Host::Destination),
            SocketAddrV4::new(DESTINATION, port),
            TCP_BYTES,
            direction,
        )
        .unwrap_or_else(|e| panic!("{direction:?} 10 MiB: {e}"));
        let mbit = TCP_BYTES as f64 * 8.0 / took.as_secs_f64() / 1e6;
        println!(
            "{} tcp mode: {direction:?} 10 MiB in {took:?} ({mbit:.0} Mbit/s)",
            runner.name()
        );
    }
    let lines = client.lines().join("\n");
    assert!(lines.contains("Use standard TCP"), "{lines}");
    let served = server.lines().join("\n");
    assert!(served.contains("Connect from client"), "{served}");
}

/// `ikago2` records in the stream: DNS, UDP and ping through the firewall that blocks UDP and
/// ICMP
fn carries_ikago2(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let server = lab
        .start_ready_server(runner, &ikago2_tcp_mode())
        .expect("server starts");
    let client = lab
        .start_client(runner, ClientSite::Main, &ikago2_tcp_mode())
        .expect("client connects");
    small_traffic(&lab);
    let lines = client.lines().join("\n");
    assert!(lines.contains("Use standard TCP"), "{lines}");
    let served = server.lines().join("\n");
    assert!(served.contains("Connect from client"), "{served}");
}

fn reconnects_after_server_restart(runner: Runner) {
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let server = lab
        .start_ready_server(runner, &tcp_mode())
        .expect("server starts");
    let client = lab
        .start_client(runner, ClientSite::Main, &tcp_mode())
        .expect("client connects");
    let a = lab.ns(Host::HostA);
    udp::echo_retry(a, echo_addr(), 100, WAIT, 2).expect("echo before the restart");
    drop(server); // SIGKILL: the kernel closes the connection
    let _server = lab
        .start_server(runner, &tcp_mode())
        .expect("server restarts");
    let restarted = Instant::now();
    while udp::echo(a, echo_addr(), 100, Duration::from_millis(300)).is_err() {
        assert!(
            restarted.elapsed() < RECOVERY,
            "no recovery within {RECOVERY:?}: {:#?}",
            client.lines()
        );
    }
    println!(
        "{}: recovered {:?} after the restart",
        runner.name(),
        restarted.elapsed()
    );
    let lines = client.lines().join("\n");
    assert!(
        lines.contains("is closed, reconnecting"),
        "the client saw the connection close: {lines}"
    );
}

/// `dumpcap` on `device` in the namespace of `host`, writing `file`
fn dumpcap(lab: &Lab, host: Host, device: &str, file: &Path) -> Daemon {
    let d = Daemon::spawn(
        lab.ns(host),
        &format!("dumpcap-{device}"),
        "dumpcap",
        &[
            "-q",
            "-i",
            device,
            "-w",
            file.to_str().expect("a UTF-8 path"),
        ],
    )
    .expect("dumpcap starts");
    // dumpcap says nothing with -q: give it time to open the device
    std::thread::sleep(Duration::from_millis(500));
    d
}

/// The lab's facts in a capture folder's `scenario.json` (the format of shared/captures)
fn scenario() -> String {
    serde_json::json!({
        "scenario": "20-tcp-plain-lab",
        "description": "IkaGo-rs ikago-sync client and server in tcp mode (the original's framing, plain) through the lab's firewall that blocks UDP and ICMP: DNS, UDP echo (20/1300/1472-byte payloads), 5 pings from host A.",
        "producer": "ikago-lab tests/tcp_mode.rs with IKAGO_LAB_TCP_CAPTURE",
        "tunnel": {
            "mode": "tcp",
            "method": "plain",
            "password": null,
            "server_port": 18081,
            "command_lines": {
                "server": "ikago-server -p 18081 -listen-devices wan0 -upstream-device dst0 -mode tcp -method plain",
                "client": "ikago-client -r 198.18.21.2,198.18.21.3 -s 198.18.23.2:18081 -listen-devices lan0 -upstream-device wan0 -mode tcp -method plain -publish 198.18.21.254"
            }
        },
        "hosts": {
            "client": {
                "interfaces": {
                    "lan0": { "ip": "198.18.21.1/24", "mac": "02:00:00:00:15:01", "ikago_role": "listen device" },
                    "wan0": { "ip": "198.18.22.2/24", "mac": "02:00:00:00:16:02", "ikago_role": "upstream device" }
                },
                "default_gateway": "198.18.22.1"
            },
            "firewall": {
                "interfaces": {
                    "in0": { "ip": "198.18.22.1/24", "mac": "02:00:00:00:16:01" },
                    "out0": { "ip": "198.18.23.1/24", "mac": "02:00:00:00:17:01" }
                }
            },
            "server": {
                "interfaces": {
                    "wan0": { "ip": "198.18.23.2/24", "mac": "02:00:00:00:17:02", "ikago_role": "listen device" },
                    "dst0": { "ip": "198.18.24.1/24", "mac": "02:00:00:00:18:01", "ikago_role": "upstream device (NAT address 198.18.24.1)" }
                },
                "default_gateway": "198.18.24.2"
            },
            "destination": {
                "interfaces": {
                    "eth0": { "ip": "198.18.24.2/24", "mac": "02:00:00:00:18:02" }
                }
            }
        }
    })
    .to_string()
}

/// The IPv4 packets of `frames` on `interface` sent from `mac` (or not from it)
fn ipv4_from(frames: &[Frame], interface: &str, mac: [u8; 6], from: bool) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|f| f.interface == interface && f.data.get(12..14) == Some(&[8, 0][..]))
        .filter(|f| (f.data[6..12] == mac) == from)
        .map(|f| {
            let len = usize::from(u16::from_be_bytes([f.data[16], f.data[17]]));
            f.data[14..14 + len].to_vec()
        })
        .collect()
}

/// The capture in `dir` replayed as `role`: the machine's output frames
fn replayed(dir: &Path, role: Role, files: [&str; 2]) -> Vec<Frame> {
    let s = parse(&scenario(), role, |_| None).expect("the scenario parses");
    let options = match role {
        Role::Client => Options::Client(Default::default()),
        Role::Server => Options::Server(Default::default()),
    };
    let p = prepare(options, &s, Some(0)).expect("the scenario's options are valid");
    let frames = merge(
        files
            .iter()
            .map(|f| read_capture(&dir.join(f)).expect("the capture reads"))
            .collect(),
    );
    replay(p.config, &frames, p.start, true)
        .expect("the replay runs")
        .output
}

/// Captures a small session on every leg, then replays the client's and the server's legs
fn capture_replays(runner: Runner) {
    let dir = std::env::temp_dir().join(format!(
        "ikago-lab-tcp-{}-{}",
        runner.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let mut dumps = [
        (Host::Client, "lan0", "client-lan.pcapng"),
        (Host::Client, "wan0", "client-wan.pcapng"),
        (Host::Server, "wan0", "server-wan.pcapng"),
        (Host::Server, "dst0", "server-dst.pcapng"),
    ]
    .map(|(host, device, file)| dumpcap(&lab, host, device, &dir.join(file)));
    // the capture on each runner's own devices must see what the runner sends: the qdisc
    // layer kept (the lab's veth devices would bypass it, out of dumpcap's sight)
    let options = TunnelOptions {
        extra: vec!["--mode".into(), "tcp".into(), "--qdisc-bypass=false".into()],
        ..TunnelOptions::default()
    };
    let mut server = lab
        .start_ready_server(runner, &options)
        .expect("server starts");
    let mut client = lab
        .start_client(runner, ClientSite::Main, &options)
        .expect("client connects");
    small_traffic(&lab);
    for daemon in [&mut client, &mut server] {
        assert!(stop(daemon).expect("stops").success());
    }
    std::thread::sleep(Duration::from_millis(500));
    for d in &mut dumps {
        d.signal(Signal::SIGINT).expect("dumpcap stops");
        d.wait_exit(Duration::from_secs(5)).expect("dumpcap exits");
    }
    let all = |files: [&str; 2]| {
        merge(
            files
                .iter()
                .map(|f| read_capture(&dir.join(f)).expect("the capture reads"))
                .collect(),
        )
    };
    // the client: every packet the recorded client wrote to host A, written again
    let files = ["client-lan.pcapng", "client-wan.pcapng"];
    let lan_mac = [2, 0, 0, 0, 0x15, 1];
    let recorded = ipv4_from(&all(files), "lan0", lan_mac, true);
    let ours = ipv4_from(&replayed(&dir, Role::Client, files), "lan0", lan_mac, true);
    assert!(recorded.len() >= 9, "{} packets to host A", recorded.len());
    assert_eq!(ours, recorded, "the client's packets to host A");
    // the server: every packet the recorded server sent toward the destination, sent again
    // (NAT ports and ICMP ids are drawn: compared without them)
    let files = ["server-wan.pcapng", "server-dst.pcapng"];
    let dst_mac = [2, 0, 0, 0, 0x18, 1];
    let key = |p: &Vec<u8>| (p[9], p[16..20].to_vec(), p.len());
    let recorded: Vec<_> = ipv4_from(&all(files), "dst0", dst_mac, true)
        .iter()
        .map(key)
        .collect();
    let ours: Vec<_> = ipv4_from(&replayed(&dir, Role::Server, files), "dst0", dst_mac, true)
        .iter()
        .map(key)
        .collect();
    assert!(
        recorded.len() >= 9,
        "{} packets to the destination",
        recorded.len()
    );
    assert_eq!(
        ours, recorded,
        "the server's packets toward the destination"
    );
    if let Some(keep) = std::env::var_os("IKAGO_LAB_TCP_CAPTURE").filter(|_| runner == Runner::Sync)
    {
        let keep = PathBuf::from(keep);
        for f in [
            "client-lan.pcapng",
            "client-wan.pcapng",
            "server-wan.pcapng",
            "server-dst.pcapng",
        ] {
            std::fs::copy(dir.join(f), keep.join(f)).expect("kept");
        }
        std::fs::write(keep.join("scenario.json"), scenario()).expect("kept");
    }
    std::fs::remove_dir_all(&dir).expect("removed");
}

macro_rules! tests {
    ($($name:ident => $f:ident($runner:expr),)+) => {
        $(
            #[test]
            fn $name() {
                if ikago_lab::require_root() {
                    $f($runner);
                }
            }
        )+
    };
}

tests! {
    sync_tcp_mode_carries_everything => carries_everything(Runner::Sync),
    async_tcp_mode_carries_everything => carries_everything(Runner::Async),
    sync_tcp_mode_carries_ikago2 => carries_ikago2(Runner::Sync),
    async_tcp_mode_carries_ikago2 => carries_ikago2(Runner::Async),
    sync_tcp_mode_reconnects_after_server_restart => reconnects_after_server_restart(Runner::Sync),
    async_tcp_mode_reconnects_after_server_restart => reconnects_after_server_restart(Runner::Async),
    sync_tcp_mode_capture_replays => capture_replays(Runner::Sync),
    async_tcp_mode_capture_replays => capture_replays(Runner::Async),
}
