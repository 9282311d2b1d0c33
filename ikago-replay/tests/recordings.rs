//! Regression recordings: every `tests/data/recordings/NAME.pcapng`, recorded by a live runner with
//! `--record`, replays alone and sends exactly its expected output: `NAME.expected.pcapng` when
//! there is one (the output after a fix), else what the live machine sent (`ikago-replay
//! NAME.pcapng --expect NAME.pcapng` exits 0). The password of an encrypted session is in
//! `NAME.password` beside it (a test password: recordings never hold one).
//!
//! The lab sessions `lab-{sync,async}-{client,server}` come from `ikago-lab/tests/record.rs`. To
//! turn a field problem into a test, put its recording here (see the README).

use std::path::PathBuf;
use std::process::Command;

/// Every recording with its password, if it has one
fn recordings() -> Vec<(PathBuf, Option<String>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/recordings");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .expect("the recordings folder")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".pcapng") && !name.ends_with(".expected.pcapng")
        })
        .map(|p| {
            let password = std::fs::read_to_string(p.with_extension("password")).ok();
            (p, password.map(|s| s.trim().to_owned()))
        })
        .collect();
    found.sort();
    found
}

/// Runs the binary with `IKAGO_PASSWORD` set to `password` (unset without)
fn replay(args: &[&str], password: Option<&str>) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ikago-replay"));
    c.args(args).env_remove("IKAGO_PASSWORD");
    if let Some(p) = password {
        c.env("IKAGO_PASSWORD", p);
    }
    let out = c.output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn every_recording_replays_byte_for_byte() {
    let all = recordings();
    assert!(all.len() >= 4, "the lab's recordings are there: {all:?}");
    for (file, password) in &all {
        let f = file.to_str().unwrap();
        let fixed = file.with_extension("expected.pcapng");
        let expected = if fixed.is_file() { &fixed } else { file };
        let e = expected.to_str().unwrap();
        let (code, out, err) = replay(&[f, "--expect", e], password.as_deref());
        assert_eq!(code, 0, "{f}:\n{out}{err}");
        assert!(out.contains("output matches the expected capture"), "{out}");
        if password.is_some() {
            let (code, _, err) = replay(&[f, "--expect", f], None);
            assert_eq!(code, 2, "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(
                err.contains(
                    "recordings never hold the password: give it with --password or IKAGO_PASSWORD"
                ),
                "{err}"
            );
        }
    }
}

#[test]
fn a_recording_names_its_role_and_refuses_another() {
    let (file, password) = recordings()
        .into_iter()
        .find(|(p, _)| p.to_string_lossy().ends_with("-server.pcapng"))
        .expect("a server's recording");
    let f = file.to_str().unwrap();
    let (code, out, err) = replay(&["server", f, "--expect", f], password.as_deref());
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = replay(&["client", f], password.as_deref());
    assert_eq!(code, 2);
    assert!(
        err.contains("the scenario is a server's, not a client's"),
        "{err}"
    );
    let other = file.with_file_name("lab-sync-client.pcapng");
    let (code, _, err) = replay(&[f, other.to_str().unwrap()], password.as_deref());
    assert_eq!(code, 2);
    assert!(
        err.contains("is a recording: it is replayed alone"),
        "{err}"
    );
    let (code, _, err) = replay(&["--scenario", f, f], password.as_deref());
    assert_eq!(code, 2);
    assert!(err.contains("it carries its scenario"), "{err}");
}
