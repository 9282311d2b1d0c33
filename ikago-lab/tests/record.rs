//! The flight recorder on live runners (root; skipped otherwise): a session through the lab's
//! blocking firewall with `--record` on the server and the client (DNS, UDP echoes, pings and an
//! idle time with keepalives), then `ikago-replay FILE --expect FILE` of each recording exits 0,
//! reproducing every frame the live machine sent
//!
//! With `IKAGO_LAB_RECORDINGS=DIR` the recordings are kept in DIR as `lab-<runner>-<role>.pcapng`
//! with their password beside them (`.password`): that is how `ikago-replay/tests/data/recordings`
//! was made.

use clap::Parser;
use ikago_lab::addr::{DESTINATION, DNS_PORT, ECHO_PORT};
use ikago_lab::probe::{dns, ping, udp};
use ikago_lab::{ClientSite, FirewallPolicy, Host, Lab, Runner, TunnelOptions, stop};
use ikago_replay::cli::{Cli, run};
use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Wait for one probe answer through the tunnel
const WAIT: Duration = Duration::from_secs(2);
/// A pause longer than the client's keepalive interval (5 s)
const IDLE: Duration = Duration::from_secs(6);

/// The session's wire, method and password, per runner: the Go-compatible wire with
/// AES-256-GCM on one, ikago2 with ChaCha20-Poly1305 records on the other
fn tunnel(runner: Runner) -> TunnelOptions {
    match runner {
        Runner::Sync => TunnelOptions::encrypted("aes-256-gcm", "lab-recording-sync"),
        Runner::Async => TunnelOptions {
            method: "chacha20-poly1305".into(),
            ..TunnelOptions::ikago2("lab-recording-async")
        },
    }
}

/// `options` recording to `file`
fn recording_to(options: &TunnelOptions, file: &Path) -> TunnelOptions {
    let mut o = options.clone();
    o.extra
        .extend(["--record".into(), file.to_string_lossy().into_owned()]);
    o
}

/// Records a short session of `runner`: DNS, UDP echoes of three sizes and pings from host A
fn record_session(runner: Runner, dir: &Path) -> [PathBuf; 2] {
    let options = tunnel(runner);
    let files = [dir.join("server.pcapng"), dir.join("client.pcapng")];
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let mut server = lab
        .start_ready_server(runner, &recording_to(&options, &files[0]))
        .expect("server starts");
    let mut client = lab
        .start_client(runner, ClientSite::Main, &recording_to(&options, &files[1]))
        .expect("client connects");
    let a = lab.ns(Host::HostA);
    let answer = dns::query(
        a,
        SocketAddrV4::new(DESTINATION, DNS_PORT),
        "echo.lab.test",
        WAIT,
    )
    .expect("dns through the tunnel");
    assert_eq!(answer.0, DESTINATION);
    for size in [20, 1300, 1472] {
        udp::echo_retry(a, SocketAddrV4::new(DESTINATION, ECHO_PORT), size, WAIT, 2)
            .unwrap_or_else(|e| panic!("{size}-byte udp echo through the tunnel: {e}"));
    }
    let pings = ping::ping(a, DESTINATION, 5, Duration::from_millis(100), WAIT).expect("ping runs");
    assert!(pings.received() >= 4, "{pings:?}");
    // idle past the client's keepalive interval: probes and their answers come from timers
    std::thread::sleep(IDLE);
    udp::echo_retry(a, SocketAddrV4::new(DESTINATION, ECHO_PORT), 100, WAIT, 2)
        .expect("udp echo after the idle time");
    for daemon in [&mut client, &mut server] {
        assert!(stop(daemon).expect("stops").success());
    }
    let lines = server.lines().join("\n") + &client.lines().join("\n");
    assert!(lines.contains("Record to"), "{lines}");
    files
}

/// `ikago-replay FILE --expect FILE --password PASSWORD`, in process: exit code and report
fn replay_itself(file: &Path, password: &str) -> (u8, String) {
    let file = file.to_str().expect("a UTF-8 path");
    let cli = Cli::try_parse_from([
        "ikago-replay",
        file,
        "--expect",
        file,
        "--password",
        password,
    ])
    .expect("the command line parses");
    match run(cli) {
        Ok(o) => (
            o.exit_code(),
            format!("{}\n{}", o.summary, o.diff.unwrap_or_default()),
        ),
        Err(e) => (2, e.to_string()),
    }
}

fn recorded_session_replays_byte_for_byte(runner: Runner) {
    let dir = std::env::temp_dir().join(format!(
        "ikago-lab-record-{}-{}",
        runner.name(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    let password = tunnel(runner).password.expect("an encrypted session");
    for (file, role) in record_session(runner, &dir)
        .iter()
        .zip(["server", "client"])
    {
        let (code, report) = replay_itself(file, &password);
        println!("{} {role}:\n{report}", runner.name());
        assert_eq!(code, 0, "{} {role}: {report}", runner.name());
        assert!(
            report.starts_with(&format!("replayed {role}: ")),
            "{report}"
        );
        assert!(report.contains("closed by the recorder"), "{report}");
        let (code, report) = replay_itself(file, "not the password");
        assert_eq!(code, 1, "another password, other bytes: {report}");
        if let Some(keep) = std::env::var_os("IKAGO_LAB_RECORDINGS") {
            let name = format!("lab-{}-{role}", runner.name());
            let keep = PathBuf::from(keep);
            std::fs::copy(file, keep.join(format!("{name}.pcapng"))).expect("kept");
            std::fs::write(keep.join(format!("{name}.password")), &password).expect("kept");
        }
    }
    std::fs::remove_dir_all(&dir).expect("removed");
}

#[test]
fn sync_session_replays_byte_for_byte() {
    if ikago_lab::require_root() {
        recorded_session_replays_byte_for_byte(Runner::Sync);
    }
}

#[test]
fn async_session_replays_byte_for_byte() {
    if ikago_lab::require_root() {
        recorded_session_replays_byte_for_byte(Runner::Async);
    }
}
