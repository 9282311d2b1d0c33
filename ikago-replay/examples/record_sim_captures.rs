//! Records regression captures of our own machines from the simulation (ikago-sim)
//!
//! `cargo run -p ikago-replay --example record_sim_captures [OUT_DIR]` (default
//! `ikago-replay/tests/data`), or `scripts/record-sim-captures.sh`. Each scenario becomes
//! `sim-<name>/client/` and `sim-<name>/server/`, each with:
//! - `capture.pcapng`: every frame on the machine's two devices (both taps, merged by time);
//! - `expected.pcapng`: what the machine transmitted (the taps' outgoing frames, less the ARP
//!   replies of the simulated kernel for the device's own address, which no machine sends);
//! - `scenario.json`: the devices, options, `start` (0: the World's creation) and `seed`.
//!
//! `ikago-replay client sim-<name>/client/capture.pcapng --expect sim-<name>/client/expected.pcapng`
//! must then match exactly; `tests/sim_captures.rs` checks it for every folder.

use ikago_proto::{ClientConfig, DeviceConfig, Method, ServerConfig};
use ikago_replay::capture::{Frame, merge, write_pcapng};
use ikago_replay::scenario::interfaces_json;
use ikago_replay::seed_bytes;
use ikago_sim::{Capture, Direction, HostConfig, Transfer, World, WorldConfig, addr};
use serde_json::{Value, json};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Seeds of the machines' random generators (kept in each scenario.json)
const CLIENT_SEED: u64 = 1;
const SERVER_SEED: u64 = 2;
/// How long each scenario runs, in virtual time
const RUN_FOR: Duration = Duration::from_secs(12);

/// One recorded scenario: a name, the methods and sizes, and the traffic
struct Recording {
    name: &'static str,
    method: Method,
    /// Client: (mtu, fragment); server: (mtu, fragment)
    client_sizes: (u16, u16),
    server_sizes: (u16, u16),
    /// Published address (proxy ARP); the LAN hosts then use it as their gateway
    publish: Option<Ipv4Addr>,
    /// LAN hosts (last octets)
    lan_hosts: &'static [u8],
    /// What the LAN hosts do
    traffic: fn(&mut World, &[ikago_sim::HostId], ikago_sim::HostId),
}

const ECHO: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 2);

/// UDP echo of three sizes, three pings, a DNS query and a TCP transfer each way
fn mixed(w: &mut World, lan: &[ikago_sim::HostId], _: ikago_sim::HostId) {
    let pc = lan[0];
    for (i, size) in [20usize, 600, 1400].into_iter().enumerate() {
        w.host_mut(pc).udp_send(
            40007,
            SocketAddrV4::new(ECHO, 7),
            &vec![b'a' + i as u8; size],
        );
        w.run_for(Duration::from_millis(200));
    }
    for seq in 0..3 {
        w.host_mut(pc).ping(ECHO, 0x0b04, seq, &[0x42; 56]);
        w.run_for(Duration::from_millis(300));
    }
    w.host_mut(pc)
        .dns_query(40053, ECHO, 0x1234, "echo.lab.test");
    w.run_for(Duration::from_millis(200));
    let transfer = Transfer {
        send_seed: 7,
        send_len: 6000,
        expect_seed: 8,
        expect_len: 5000,
    };
    w.host_mut(pc)
        .tcp_connect(40101, SocketAddrV4::new(ECHO, 8000), transfer);
}

/// Two LAN hosts sending from the same port and pinging with the same id: the NAT keeps them apart
fn nat(w: &mut World, lan: &[ikago_sim::HostId], _: ikago_sim::HostId) {
    for round in 0..2u16 {
        for &h in lan {
            w.host_mut(h).udp_send(
                5000,
                SocketAddrV4::new(ECHO, 7),
                format!("round {round}").as_bytes(),
            );
            w.host_mut(h).ping(ECHO, 77, round, b"same id");
        }
        w.run_for(Duration::from_millis(500));
    }
}

/// Pings and a UDP datagram through a published gateway address
fn published(w: &mut World, lan: &[ikago_sim::HostId], _: ikago_sim::HostId) {
    for seq in 0..3 {
        w.host_mut(lan[0]).ping(ECHO, 9, seq, &[7; 32]);
        w.run_for(Duration::from_millis(400));
    }
    w.host_mut(lan[0]).udp_send(
        6000,
        SocketAddrV4::new(ECHO, 7),
        b"through the published gateway",
    );
}

const RECORDINGS: &[Recording] = &[
    Recording {
        name: "chacha-mixed",
        method: Method::ChaCha20Poly1305,
        client_sizes: (1500, 1500),
        server_sizes: (1500, 1500),
        publish: None,
        lan_hosts: &[2],
        traffic: mixed,
    },
    Recording {
        name: "aes128-fragments",
        method: Method::Aes128Gcm,
        client_sizes: (576, 1000),
        server_sizes: (700, 576),
        publish: None,
        lan_hosts: &[2],
        traffic: mixed,
    },
    Recording {
        name: "plain-nat",
        method: Method::Plain,
        client_sizes: (1500, 1500),
        server_sizes: (1500, 1500),
        publish: None,
        lan_hosts: &[2, 3],
        traffic: nat,
    },
    Recording {
        name: "xchacha-publish",
        method: Method::XChaCha20Poly1305,
        client_sizes: (1500, 1500),
        server_sizes: (1500, 1500),
        publish: Some(Ipv4Addr::new(198, 18, 11, 254)),
        lan_hosts: &[2],
        traffic: published,
    },
];

/// The frames of a machine's taps: all of them (the capture) and those it sent (expected)
fn split(capture: &Capture, devices: &[DeviceConfig]) -> (Vec<Frame>, Vec<Frame>) {
    let (mut all, mut sent) = (Vec::new(), Vec::new());
    for d in devices {
        let tap = capture
            .tap(&d.name)
            .expect("every machine device is tapped");
        let frame = |c: &ikago_sim::CapturedFrame| Frame {
            interface: d.name.clone(),
            time: c.at,
            data: c.data.clone(),
        };
        all.push(tap.frames.iter().map(frame).collect());
        let kernel_arp = |data: &[u8]| {
            data.len() >= 42
                && data[12..14] == [8, 6]
                && data[20..22] == [0, 2]
                && d.addr.is_some_and(|a| data[28..32] == a.octets())
        };
        sent.push(
            tap.frames
                .iter()
                .filter(|c| c.direction == Direction::Out && !kernel_arp(&c.data))
                .map(frame)
                .collect(),
        );
    }
    (merge(all), merge(sent))
}

fn write_machine(dir: &Path, devices: &[DeviceConfig], capture: &Capture, scenario: Value) {
    std::fs::create_dir_all(dir).expect("the output folder can be created");
    let (all, sent) = split(capture, devices);
    let names: Vec<String> = devices.iter().map(|d| d.name.clone()).collect();
    std::fs::write(dir.join("capture.pcapng"), write_pcapng(&names, &all)).expect("write capture");
    std::fs::write(dir.join("expected.pcapng"), write_pcapng(&names, &sent))
        .expect("write expected");
    let text = format!(
        "# recorded by examples/record_sim_captures.rs; replay: ikago-replay <role> capture.pcapng --expect expected.pcapng\n{}\n",
        serde_json::to_string_pretty(&scenario).expect("json")
    );
    std::fs::write(dir.join("scenario.json"), text).expect("write scenario");
    println!(
        "{}: {} frames, {} sent by the machine",
        dir.display(),
        all.len(),
        sent.len()
    );
}

fn record(out: &Path, r: &Recording) {
    let mut config = WorldConfig::new(1);
    config.capture = true;
    config.server.method = r.method;
    config.server.password = format!("sim-{}", r.name);
    (config.server.mtu, config.server.fragment) = r.server_sizes;
    config.server.rng_seed = seed_bytes(SERVER_SEED);
    let server: ServerConfig = config.server.clone();
    let mut w = World::new(config);
    let mut client: Option<ClientConfig> = None;
    let c = w.add_client(|cfg| {
        (cfg.mtu, cfg.fragment) = r.client_sizes;
        cfg.publish = r.publish.into_iter().collect();
        cfg.rng_seed = seed_bytes(CLIENT_SEED);
        client = Some(cfg.clone());
    });
    let client = client.expect("add_client configures the client");
    let lan: Vec<_> = r
        .lan_hosts
        .iter()
        .map(|&n| {
            let mut h = HostConfig::lan(&format!("pc{n}"), addr::lan(n));
            if r.publish.is_some() {
                h.gateway = r.publish;
            }
            w.add_lan_host(c, h)
        })
        .collect();
    let echo = w.add_internet_host(HostConfig::internet("echo", ECHO));
    w.host_mut(echo).udp_echo(7);
    w.host_mut(echo).dns_server(&[("echo.lab.test", ECHO)]);
    w.host_mut(echo).tcp_listen(
        8000,
        Transfer {
            send_seed: 8,
            send_len: 5000,
            expect_seed: 7,
            expect_len: 6000,
        },
    );
    w.run_for(Duration::from_millis(500));
    (r.traffic)(&mut w, &lan, echo);
    w.run_for(RUN_FOR);
    let folder = out.join(format!("sim-{}", r.name));
    let sources: Vec<String> = client.sources.iter().map(|s| s.to_string()).collect();
    let mut client_options = json!({
        "interfaces": interfaces_json(&client.devices),
        "start": "0",
        "seed": CLIENT_SEED,
        "sources": sources,
        "server": client.server.to_string(),
        "method": client.method.name(),
        "password": client.password,
        "mtu": client.mtu,
        "fragment": client.fragment,
    });
    if let Some(p) = r.publish {
        client_options["publish"] = json!(p.to_string());
    }
    write_machine(
        &folder.join("client"),
        &client.devices,
        w.capture(),
        client_options,
    );
    let server_options = json!({
        "interfaces": interfaces_json(&server.devices),
        "start": "0",
        "seed": SERVER_SEED,
        "port": server.port,
        "method": server.method.name(),
        "password": server.password,
        "mtu": server.mtu,
        "fragment": server.fragment,
    });
    write_machine(
        &folder.join("server"),
        &server.devices,
        w.capture(),
        server_options,
    );
}

fn main() {
    let out = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data"),
        PathBuf::from,
    );
    for r in RECORDINGS {
        record(&out, r);
    }
}
