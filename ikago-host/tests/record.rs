//! The flight recorder end to end, without a network: a machine driven as the live runners drive
//! it (frames of a simulation capture, rewritten for its random ISNs and ports as its peers would
//! answer, and timer wake-ups a little after their deadlines), recorded with `--record`'s
//! recorder, then replayed by `ikago-replay FILE --expect FILE` byte for byte; the size bound and
//! a recording cut anywhere replay what is whole

use clap::Parser;
use ikago_config::{ClientSettings, RecordSettings, ServerSettings};
use ikago_host::record::{Recorded, Recorder};
use ikago_proto::{DeviceId, Input, MAX_FRAME_LEN, Machine, MachineConfig, Method, Output};
use ikago_replay::adapt::{Adapter, Sender};
use ikago_replay::capture::{Capture, read_capture_bytes};
use ikago_replay::cli::{Cli, load_scenario, read_capture, run};
use ikago_replay::recording::{Ending, StopReason};
use ikago_replay::scenario::{Options, to_json};
use ikago_replay::{Role, seed_bytes};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How late a live runner's timer fires after the machine's deadline, in this test
const LATE: Duration = Duration::from_micros(700);

fn data(folder: &str, role: Role) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ikago-replay/tests/data")
        .join(folder)
        .join(role.name())
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ikago-record-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What the live run transmitted, per device
struct Live {
    sent: Vec<(DeviceId, Vec<u8>)>,
    inputs: usize,
    /// The password, when the method needs one
    password: Option<String>,
}

/// Drives the machine of a simulation folder's `role` as a live runner would, recording to `out`
/// with the size bound `max_bytes`
fn record_live(folder: &str, role: Role, out: &Path, max_bytes: u64) -> Live {
    let dir = data(folder, role);
    let scenario = load_scenario(&dir.join("scenario.json"), role).unwrap();
    let frames = read_capture(&dir.join("capture.pcapng")).unwrap();
    let seed = seed_bytes(99);
    let devices = scenario.devices.clone();
    let (config, keys, common) = match &scenario.options {
        Options::Client(a) => {
            let s = ClientSettings::resolve(a).unwrap();
            let c = MachineConfig::Client(s.client_config(devices.clone(), seed));
            (c, s.machine_keys(), s.common.clone())
        }
        Options::Server(a) => {
            let s = ServerSettings::resolve(a).unwrap();
            let c = MachineConfig::Server(s.server_config(devices.clone(), seed));
            (c, s.machine_keys(), s.common.clone())
        }
    };
    let password = (common.method != Method::Plain).then_some(common.password);
    let (created, created_wall) = (Instant::now(), SystemTime::now());
    let names: Vec<String> = devices.iter().map(|d| d.name.clone()).collect();
    let json = to_json(
        role,
        &devices,
        created_wall.duration_since(UNIX_EPOCH).unwrap(),
        &seed,
        keys,
    );
    if let Some(p) = &password {
        assert!(!json.contains(p.as_str()), "the password is never written");
    }
    let mut recorder = Recorder::start(
        &RecordSettings {
            path: out.to_owned(),
            max_bytes,
        },
        &Recorded {
            application: "record test",
            devices: &names,
            scenario: &json,
            created,
            created_wall,
        },
    )
    .unwrap();
    let mut machine = Machine::new(config, created).unwrap();
    let mut adapter = Adapter::new(devices.iter().filter_map(|d| d.addr).collect());
    let mut buf = vec![0; MAX_FRAME_LEN];
    let mut live = Live {
        sent: Vec::new(),
        inputs: 0,
        password,
    };
    let mut drain = |machine: &mut Machine, recorder: &mut Recorder, adapter: &mut Adapter| loop {
        match machine.poll_output(&mut buf) {
            Output::Transmit(t) => {
                recorder.output(t.device, &buf[..t.len]);
                adapter.observe(Sender::Ours, &buf[..t.len]);
                live.sent.push((t.device, buf[..t.len].to_vec()));
            }
            Output::Stream(op) => panic!("a FakeTCP machine asked {op:?}"),
            Output::Event(_) => {}
            Output::Timeout(at) => return at,
        }
    };
    let mut deadline = drain(&mut machine, &mut recorder, &mut adapter);
    let start = frames[0].time;
    for f in &frames {
        let at = created + (f.time - start);
        while deadline + LATE < at {
            let input = Input::Timeout(deadline + LATE);
            recorder.input(input);
            machine.handle_input(input);
            live.inputs += 1;
            deadline = drain(&mut machine, &mut recorder, &mut adapter);
        }
        let i = devices.iter().position(|d| d.name == f.interface).unwrap();
        if f.data.get(6..12) == Some(&devices[i].mac.0[..]) {
            adapter.observe(Sender::Recorded, &f.data);
            continue;
        }
        let adapted = adapter.adapt(&f.data);
        let input = Input::Frame {
            now: at,
            device: DeviceId(i as u8),
            data: adapted.as_deref().unwrap_or(&f.data),
        };
        recorder.input(input);
        machine.handle_input(input);
        live.inputs += 1;
        deadline = drain(&mut machine, &mut recorder, &mut adapter);
    }
    drop(recorder);
    live
}

/// `ikago-replay ARGS...` in process: its exit code and what it printed
fn replay(args: &[&str]) -> (u8, String) {
    let cli =
        Cli::try_parse_from(std::iter::once("ikago-replay").chain(args.iter().copied())).unwrap();
    match run(cli) {
        Ok(o) => (
            o.exit_code(),
            format!("{}\n{}", o.summary, o.diff.unwrap_or_default()),
        ),
        Err(e) => (2, e.to_string()),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_recorded_session_replays_byte_for_byte() {
    let dir = tmp("round-trip");
    for (folder, role) in [
        ("sim-plain-nat", Role::Client),
        ("sim-plain-nat", Role::Server),
        ("sim-chacha-mixed", Role::Client),
        ("sim-aes128-fragments", Role::Server),
    ] {
        let file = dir.join(format!("{folder}-{}.pcapng", role.name()));
        let live = record_live(folder, role, &file, u64::MAX);
        let recorded = read_capture(&file).unwrap();
        assert_eq!(recorded.len(), live.sent.len(), "{folder} {role:?}");
        assert!(
            recorded
                .iter()
                .zip(&live.sent)
                .all(|(r, (_, l))| r.data == *l),
            "the file holds what the machine sent"
        );
        let Capture::Recording(rec) = read_capture_bytes(&std::fs::read(&file).unwrap()).unwrap()
        else {
            panic!("a recording")
        };
        assert_eq!(rec.inputs.len(), live.inputs);
        assert!(matches!(&rec.ending, Ending::Ended(e) if e.reason == StopReason::Closed));
        let mut args = vec![s(&file), "--expect", s(&file)];
        if let Some(password) = &live.password {
            let (code, out) = replay(&args);
            assert_eq!(code, 2, "{out}");
            assert!(
                out.contains("give it with --password or IKAGO_PASSWORD"),
                "{out}"
            );
            args.extend(["--password", password]);
        }
        let (code, out) = replay(&args);
        assert_eq!(code, 0, "{folder} {role:?}:\n{out}");
        assert!(
            out.starts_with(&format!("replayed {}", role.name())),
            "{out}"
        );
        // the machine really did something: a tunnel, and packets through it
        let (_, out) = replay(&args);
        assert!(
            out.contains("handshakes 1") || out.contains("ClientConnected"),
            "{out}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_size_bound_and_a_cut_file_replay_what_is_whole() {
    let dir = tmp("bounds");
    let whole = dir.join("whole.pcapng");
    let live = record_live("sim-plain-nat", Role::Client, &whole, u64::MAX);
    let bytes = std::fs::read(&whole).unwrap();
    // the file stops growing at the first input after 6 kB
    let bounded = dir.join("bounded.pcapng");
    record_live("sim-plain-nat", Role::Client, &bounded, 6000);
    let (code, out) = replay(&[s(&bounded), "--expect", s(&bounded)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the file reached --record-max-mb"), "{out}");
    let Capture::Recording(rec) = read_capture_bytes(&std::fs::read(&bounded).unwrap()).unwrap()
    else {
        panic!("a recording")
    };
    assert!(rec.inputs.len() < live.inputs && !rec.inputs.is_empty());
    // cut anywhere, as a killed recorder leaves it: what is whole replays and matches itself
    let cut = dir.join("cut.pcapng");
    let mut replayed = 0;
    for len in (0..bytes.len()).step_by(bytes.len() / 97 + 1) {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let (code, out) = replay(&[s(&cut), "--expect", s(&cut)]);
        assert!(code == 0 || code == 2, "{len}: {out}");
        assert!(!out.contains('\n') || code == 0, "{len}: one line: {out}");
        if code == 0 {
            assert!(out.contains("the file has no end block"), "{out}");
            replayed += 1;
        }
    }
    assert!(replayed > 80, "most cuts replay: {replayed}");
    std::fs::remove_dir_all(&dir).unwrap();
}
