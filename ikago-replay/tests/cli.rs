//! The `ikago-replay` binary: help, output, `--expect`, and exit codes on bad input

mod common;

use common::data;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the binary; returns the exit code, stdout and stderr
fn replay(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ikago-replay"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A fresh temporary folder for one test
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ikago-replay-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn one_line_error(code: i32, stderr: &str, starts: &str) {
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(starts), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_documents_the_replay() {
    let (code, out, _) = replay(&["--help"]);
    assert_eq!(code, 0);
    for word in [
        "ikago-replay [OPTIONS] CAPTURE.pcapng",
        "ikago-replay client",
        "ikago-replay server",
        "ROLE",
        "mergecap",
        "RECORDINGS",
        "IKAGO_PASSWORD",
        "SCENARIO",
        "\"interfaces\"",
        "gateway-mac",
        "TIME",
        "ADAPTATION",
        "EXIT CODES",
        "--seed",
    ] {
        assert!(out.contains(word), "--help lacks {word}");
    }
    let (code, out, _) = replay(&["server", "--help"]);
    assert_eq!(code, 0);
    for word in [
        "--scenario",
        "--seed",
        "--output",
        "--expect",
        "--verbatim",
        "--method",
        "--password",
        "--kcp-sndwnd",
        "--port",
    ] {
        assert!(out.contains(word), "server --help lacks {word}");
    }
    let (_, out, _) = replay(&["client", "--help"]);
    for word in ["--sources", "--server", "--publish", "-r", "-s"] {
        assert!(out.contains(word), "client --help lacks {word}");
    }
}

#[test]
fn output_then_expect_matches_and_another_capture_differs() {
    let dir = tmp("expect");
    let d = data("01-faketcp-plain");
    let (wan, dst) = (d.join("server-wan.pcapng"), d.join("server-dst.pcapng"));
    let out = dir.join("out.pcapng");
    let (code, stdout, stderr) =
        replay(&["server", s(&wan), s(&dst), "-o", s(&out), "--seed", "3"]);
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "frames per device",
        "dst0",
        "wan0",
        "inner packets per client",
        "198.18.13.2",
        "events",
        "drops:",
    ] {
        assert!(stdout.contains(line), "summary lacks {line}:\n{stdout}");
    }
    let (code, stdout, _) = replay(&[
        "server",
        s(&wan),
        s(&dst),
        "--seed",
        "3",
        "--expect",
        s(&out),
    ]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("output matches the expected capture"),
        "{stdout}"
    );
    let (code, stdout, _) = replay(&[
        "server",
        s(&wan),
        s(&dst),
        "--seed",
        "4",
        "--expect",
        s(&out),
        "--max-diffs",
        "2",
    ]);
    assert_eq!(code, 1, "another seed draws another ISN");
    assert!(
        stdout.contains("output differs from the expected capture"),
        "{stdout}"
    );
    assert!(stdout.contains("first differing byte"), "{stdout}");
    let (code, _, _) = replay(&["server", s(&wan), s(&dst), "--expect", s(&wan)]);
    assert_eq!(code, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_captures_are_one_line_and_exit_2() {
    let dir = tmp("bad-captures");
    let d = data("01-faketcp-plain");
    let good = std::fs::read(d.join("server-wan.pcapng")).unwrap();
    let scenario = d.join("scenario.json");
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "truncated.pcapng",
            good[..good.len() / 2].to_vec(),
            "truncated at byte",
        ),
        (
            "garbled.pcapng",
            b"\x0a\x0d\x0d\x0agarbage that is no pcapng".to_vec(),
            "garbled block at byte 0",
        ),
        (
            "classic.pcap",
            [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0].to_vec(),
            "classic pcap is not supported",
        ),
        ("empty.pcapng", Vec::new(), "empty file"),
        (
            "middle.pcapng",
            [&good[..200], &[0xff; 64][..], &good[200..]].concat(),
            "capture",
        ),
    ];
    for (name, bytes, what) in cases {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        let (code, _, err) = replay(&["server", "--scenario", s(&scenario), s(&p)]);
        one_line_error(code, &err, &format!("ikago-replay: capture {}: ", s(&p)));
        assert!(err.contains(what), "{err}");
    }
    let (code, _, err) = replay(&[
        "server",
        "--scenario",
        s(&scenario),
        s(&dir.join("missing.pcapng")),
    ]);
    one_line_error(code, &err, "ikago-replay: cannot read");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_scenarios_and_options_are_one_line_and_exit_2() {
    let dir = tmp("bad-scenarios");
    let d = data("01-faketcp-plain");
    let wan = d.join("server-wan.pcapng");
    let iface =
        r#""wan0": {"role": "listen", "mac": "02:00:00:00:12:01", "address": "198.18.12.1/24"}"#;
    let dst = r#""dst0": {"role": "upstream", "mac": "02:00:00:00:13:01", "address": "198.18.13.1/24", "gateway": "198.18.13.2"}"#;
    let cases = [
        ("{ \"interfaces\": ", "scenario"),
        (
            r#"{"interfaces": {"wan0": {"role": "listen", "mac": "02:00:00:00:12:01", "address": "x"}}}"#,
            "invalid address",
        ),
        (
            &format!(r#"{{"interfaces": {{{iface}, {dst}}}}}"#),
            "server port must be given with -p",
        ),
        (
            &format!(
                r#"{{"interfaces": {{{iface}, {dst}}}, "port": 18081, "kcp": true, "kcp-tuning": {{"mtu": 20}}}}"#
            ),
            "kcp-mtu 20 out of range (50-1500)",
        ),
        (
            &format!(
                r#"{{"interfaces": {{{iface}, {dst}}}, "port": 18081, "method": "aes-256-gcm"}}"#
            ),
            "method aes-256-gcm needs a password",
        ),
        (
            &format!(r#"{{"interfaces": {{{dst}}}, "port": 18081}}"#),
            "capture interface \"wan0\" is not in the scenario",
        ),
        (
            &format!(r#"{{"interfaces": {{{iface}}}, "port": 18081}}"#),
            "invalid machine configuration: no upstream device",
        ),
    ];
    for (i, (text, what)) in cases.iter().enumerate() {
        let p = dir.join(format!("s{i}.json"));
        std::fs::write(&p, text).unwrap();
        let (code, _, err) = replay(&["server", "--scenario", s(&p), s(&wan)]);
        one_line_error(code, &err, "ikago-replay: ");
        assert!(err.contains(what), "{text}: {err}");
    }
    let good = dir.join("good.json");
    std::fs::write(
        &good,
        format!(r#"{{"interfaces": {{{iface}, {dst}}}, "port": 18081}}"#),
    )
    .unwrap();
    let (code, _, err) = replay(&[
        "server",
        "--scenario",
        s(&good),
        s(&wan),
        "--method",
        "rot13",
    ]);
    one_line_error(code, &err, "ikago-replay: unknown method \"rot13\"");
    let (code, _, err) = replay(&["server", "--scenario", s(&good), s(&wan)]);
    assert_eq!(code, 0, "{err}");
    let lone = dir.join("lone.pcapng");
    std::fs::copy(&wan, &lone).unwrap();
    let (code, _, err) = replay(&["server", s(&lone)]);
    one_line_error(code, &err, "ikago-replay: no scenario");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn command_line_options_override_the_scenario() {
    let d = data("02-faketcp-aes-256-gcm");
    let (wan, dst) = (d.join("server-wan.pcapng"), d.join("server-dst.pcapng"));
    let (code, out, err) = replay(&["server", s(&wan), s(&dst), "--password", "wrong"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("decrypt_failed="),
        "a wrong password makes every payload fail:\n{out}"
    );
    let (_, out, _) = replay(&["server", s(&wan), s(&dst)]);
    assert!(!out.contains("decrypt_failed"), "{out}");
}

#[test]
fn one_merged_capture_needs_no_role() {
    let dir = tmp("merged");
    let d = data("01-faketcp-plain");
    // client.pcapng and server.pcapng are mergecap's merges of the per-interface captures
    for (file, role, separate) in [
        (
            "client.pcapng",
            "client",
            ["client-lan.pcapng", "client-wan.pcapng"],
        ),
        (
            "server.pcapng",
            "server",
            ["server-wan.pcapng", "server-dst.pcapng"],
        ),
    ] {
        let merged = d.join(file);
        let out = dir.join(format!("{role}-out.pcapng"));
        let (code, stdout, stderr) = replay(&[s(&merged), "-o", s(&out)]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.starts_with(&format!("replayed {role}: ")),
            "{stdout}"
        );
        let (code, stdout, _) = replay(&[s(&merged), "--expect", s(&out)]);
        assert_eq!(code, 0, "{stdout}");
        assert!(stdout.contains("output matches the expected capture"));
        let (a, b) = (d.join(separate[0]), d.join(separate[1]));
        let (code, stdout, _) = replay(&[role, s(&a), s(&b), "--expect", s(&out)]);
        assert_eq!(code, 0, "the merge replays as its parts:\n{stdout}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_role_comes_from_the_scenario_or_the_flag() {
    let dir = tmp("roles");
    let sim = data("sim-plain-nat");
    for role in ["client", "server"] {
        let (capture, expected) = (
            sim.join(role).join("capture.pcapng"),
            sim.join(role).join("expected.pcapng"),
        );
        let (code, stdout, stderr) = replay(&[s(&capture), "--expect", s(&expected)]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stdout.starts_with(&format!("replayed {role}: ")),
            "{stdout}"
        );
    }
    let d = data("01-faketcp-plain");
    // wan0 is on the client and on the server alike
    let (code, _, err) = replay(&[s(&d.join("server-wan.pcapng"))]);
    one_line_error(code, &err, "ikago-replay: cannot tell whether the captures");
    assert!(err.contains("`ikago-replay server ...`"), "{err}");
    let iface =
        r#""wan0": {"role": "listen", "mac": "02:00:00:00:12:01", "address": "198.18.12.1/24"}"#;
    let dst = r#""dst0": {"role": "upstream", "mac": "02:00:00:00:13:01", "address": "198.18.13.1/24", "gateway": "198.18.13.2"}"#;
    let wan = d.join("server-wan.pcapng");
    let cases = [
        (
            format!(r#"{{"interfaces": {{{iface}, {dst}}}}}"#),
            "cannot tell whether",
        ),
        (
            format!(r#"{{"role": "server", "interfaces": {{{iface}, {dst}}}}}"#),
            "server port must be given with -p",
        ),
        (
            format!(r#"{{"role": "router", "interfaces": {{{iface}, {dst}}}}}"#),
            "role: unknown role \"router\" (expected client or server)",
        ),
    ];
    for (i, (text, what)) in cases.iter().enumerate() {
        let p = dir.join(format!("s{i}.json"));
        std::fs::write(&p, text).unwrap();
        let (code, _, err) = replay(&["--scenario", s(&p), s(&wan)]);
        one_line_error(code, &err, "ikago-replay: ");
        assert!(err.contains(what), "{text}: {err}");
    }
    let p = dir.join("server.json");
    std::fs::write(
        &p,
        format!(r#"{{"role": "server", "port": 18081, "interfaces": {{{iface}, {dst}}}}}"#),
    )
    .unwrap();
    let (code, _, err) = replay(&["--scenario", s(&p), s(&wan)]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = replay(&["client", "--scenario", s(&p), s(&wan)]);
    one_line_error(code, &err, "ikago-replay: scenario");
    assert!(
        err.contains("the scenario is a server's, not a client's"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
