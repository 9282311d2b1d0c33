//! The body of the `pcapng_reader` fuzz target, shared with the test that replays its corpus

use crate::capture::{Capture, read_capture_bytes, read_pcapng};
use crate::compare::compare;
use crate::drive::{replay, replay_recorded};
use crate::recording::{Fed, Recording};
use crate::scenario;
use crate::summary::Summary;
use crate::{Role, seed_bytes};
use ikago_proto::ikago2::Psk;
use ikago_proto::{
    ClientConfig, DeviceConfig, DeviceRole, LinkType, Mac, MachineConfig, Method, ServerConfig,
};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::OnceLock;
use std::time::Duration;

/// Virtual time a fuzz input may span (keeps each run short: the machines' timers run through it)
const MAX_FUZZ_SPAN: Duration = Duration::from_secs(600);

fn device(
    name: &str,
    role: DeviceRole,
    net: u8,
    last: u8,
    gateway: Option<(u8, u8)>,
) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        role,
        link: LinkType::Ethernet,
        mac: Mac([2, 0, 0, 0, net, last]),
        addr: Some(Ipv4Addr::new(198, 18, net, last)),
        prefix_len: 24,
        gateway: gateway.map(|(n, l)| Ipv4Addr::new(198, 18, n, l)),
        gateway_mac: gateway.map(|(n, l)| Mac([2, 0, 0, 0, n, l])),
        ipv6: None,
    }
}

/// The password of the 02 scenario, which the fuzzed machines use
const PASSWORD: &str = "ikago-test-256";

/// The `ikago2` PSK of [`PASSWORD`] for port 18081, derived once per process: Argon2id takes
/// tens of milliseconds, which per input would leave the fuzzer a few runs a second
fn psk() -> Psk {
    static PSK: OnceLock<Psk> = OnceLock::new();
    PSK.get_or_init(|| Psk::derive(PASSWORD, 18081)).clone()
}

/// The client of `shared/captures` (lan0 198.18.11.1, wan0 198.18.12.2, server 198.18.12.1:18081)
fn client(method: Method) -> MachineConfig {
    let devices = vec![
        device("lan0", DeviceRole::Listen, 11, 1, None),
        device("wan0", DeviceRole::Upstream, 12, 2, Some((12, 1))),
    ];
    let server = SocketAddrV4::new(Ipv4Addr::new(198, 18, 12, 1), 18081).into();
    let mut c = ClientConfig::new(
        devices,
        vec!["198.18.11.2".parse().expect("valid address")],
        server,
    );
    c.method = method;
    c.password = PASSWORD.into();
    c.ikago2.psk = Some(psk());
    c.publish = vec![Ipv4Addr::new(198, 18, 11, 254)];
    c.rng_seed = seed_bytes(1);
    MachineConfig::Client(c)
}

/// The server of `shared/captures` (wan0 198.18.12.1:18081, dst0 198.18.13.1)
fn server(method: Method) -> MachineConfig {
    let devices = vec![
        device("dst0", DeviceRole::Upstream, 13, 1, Some((13, 2))),
        device("wan0", DeviceRole::Listen, 12, 1, None),
    ];
    let mut s = ServerConfig::new(devices, 18081);
    s.method = method;
    s.password = PASSWORD.into();
    s.ikago2.psk = Some(psk());
    s.rng_seed = seed_bytes(1);
    MachineConfig::Server(s)
}

/// The four machines a fuzz input is replayed through
fn machines() -> [(Role, MachineConfig); 4] {
    [
        (Role::Client, client(Method::Plain)),
        (Role::Client, client(Method::Aes256Gcm)),
        (Role::Server, server(Method::Plain)),
        (Role::Server, server(Method::Aes256Gcm)),
    ]
}

/// Parses `data` as pcapng; if it parses, replays it through the captures' client and server
/// (plain and AES-256-GCM with the 02 scenario's password) whose interfaces it names, then
/// summarises and compares the output with itself. A recording (see [`crate::recording`]) has its
/// scenario parsed and its inputs fed as recorded to the same machines. Must never panic.
pub fn pcapng_reader(data: &[u8]) {
    if let Ok(Capture::Recording(rec)) = read_capture_bytes(data) {
        recording(&rec);
    }
    let Ok(mut frames) = read_pcapng(data) else {
        return;
    };
    frames.sort_by_key(|f| f.time);
    if let Some(first) = frames.first().map(|f| f.time) {
        frames.retain(|f| f.time.saturating_sub(first) <= MAX_FUZZ_SPAN);
    }
    for (role, config) in machines() {
        for adapt in [true, false] {
            if let Ok(r) = replay(config.clone(), &frames, None, adapt) {
                let _ = Summary::new(&r, role, 18081, true).to_string();
                assert!(
                    compare(&r.output, &r.output, true).is_empty(),
                    "a replay's output equals itself"
                );
            }
        }
    }
}

/// The recording half of [`pcapng_reader`]
fn recording(rec: &Recording) {
    let _ = rec.describe();
    let _ = scenario::recorded_role(&rec.scenario)
        .and_then(|role| scenario::parse_recorded(&rec.scenario, role));
    let Some(start) = rec.inputs.first().map(Fed::time) else {
        return;
    };
    let within = rec
        .inputs
        .iter()
        .take_while(|i| i.time().saturating_sub(start) <= MAX_FUZZ_SPAN)
        .count();
    for (role, config) in machines() {
        if let Ok(r) = replay_recorded(config, &rec.inputs[..within], start) {
            let _ = Summary::new(&r, role, 18081, true).to_string();
        }
    }
}
