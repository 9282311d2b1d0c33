//! Our own regression captures, recorded from the simulation (`scripts/record-sim-captures.sh`):
//! each `tests/data/sim-*/{client,server}` folder is replayed as the binary does with `--expect`,
//! and must reproduce the recorded machine's output exactly, timestamps included

mod common;

use clap::Parser;
use ikago_replay::cli::{Cli, run};
use std::path::PathBuf;

/// Every `sim-*/<role>` folder
fn folders() -> Vec<(String, PathBuf)> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&data)
        .expect("tests/data exists")
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("sim-") {
            continue;
        }
        for role in ["client", "server"] {
            let dir = entry.path().join(role);
            if dir.is_dir() {
                out.push((role.to_owned(), dir));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_sim_capture_replays_to_its_expected_output() {
    let folders = folders();
    assert!(
        folders.len() >= 8,
        "the sim captures are missing: run scripts/record-sim-captures.sh"
    );
    for (role, dir) in folders {
        let capture = dir.join("capture.pcapng");
        let expected = dir.join("expected.pcapng");
        let args = [
            "ikago-replay",
            &role,
            capture.to_str().unwrap(),
            "--expect",
            expected.to_str().unwrap(),
        ];
        let outcome =
            run(Cli::try_parse_from(args).expect("valid command line")).expect("the replay runs");
        assert!(outcome.expected.is_some_and(|n| n > 0), "{}", dir.display());
        if let Some(diff) = outcome.diff {
            panic!(
                "{} differs from its recording:\n{diff}\n{}",
                dir.display(),
                outcome.summary
            );
        }
    }
}

#[test]
fn the_recordings_cover_the_features() {
    let summary = |folder: &str, role: &str| {
        let dir = common::data(folder).join(role);
        let capture = dir.join("capture.pcapng");
        run(Cli::try_parse_from(["ikago-replay", role, capture.to_str().unwrap(), "-v"]).unwrap())
            .unwrap()
            .summary
    };
    let mixed = summary("sim-chacha-mixed", "client");
    assert!(
        mixed.contains("Connected 1") && mixed.contains("ICMP 3  UDP 4  TCP"),
        "{mixed}"
    );
    let sent = common::capture("sim-aes128-fragments/client", "expected.pcapng");
    let is_fragment =
        |d: &[u8]| d.len() > 34 && d[12..14] == [8, 0] && (d[20] & 0x3f != 0 || d[21] != 0);
    let fragments = sent
        .iter()
        .filter(|f| f.interface == "client0.wan" && is_fragment(&f.data))
        .count();
    assert!(
        fragments > 10,
        "tunnel frames above the 576-byte MTU leave as IPv4 fragments"
    );
    let frags = summary("sim-aes128-fragments", "server");
    assert!(
        frags.contains("handshakes 1") && !frags.contains("fragment_"),
        "fragmented frames reassembled:\n{frags}"
    );
    assert!(
        frags.contains("too_big="),
        "DF packets above the fragment size answered with ICMP:\n{frags}"
    );
    let nat = summary("sim-plain-nat", "server");
    assert_eq!(
        nat.matches("NatMapped {").count(),
        4,
        "two hosts, one UDP and one ICMP flow each:\n{nat}"
    );
    let publish = summary("sim-xchacha-publish", "client");
    assert!(
        publish.contains("ArpReplied { publish: 198.18.11.254"),
        "{publish}"
    );
}
