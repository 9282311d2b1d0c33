//! Live interoperability with kcp-go: [`KcpSession`] against a real kcp-go v5 endpoint
//!
//! The peer is `interop/kcp-go-peer`, built here from Debian's packaged kcp-go sources
//! (`golang-go`, `golang-github-xtaci-kcp-dev`). Its datagrams travel over its standard input and
//! output, so no network is involved; this side loses 10% of them each way at random, plus one
//! burst of its own, and drives the session in real time, as a runner does. Both directions of session set-up are covered:
//! kcp-go's listener adopting our conversation, and our session serving kcp-go's dialer.
//!
//! Without Go or the kcp-go sources the tests print why and pass, unless `IKAGO_REQUIRE_KCP_GO`
//! is set (CI sets it, so a missing install step fails there).

use super::{KcpSession, KcpStats, KcpTuning};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where Debian installs the kcp-go sources (GOPATH layout)
const GOPATH: &str = "/usr/share/gocode";
/// Loss probability of each direction
const LOSS: f64 = 0.10;
/// Our datagrams (counted from the first) lost in one burst on top of [`LOSS`]
///
/// With FEC, random loss alone is mostly repaired by parity, so whether any segment of ours needs
/// retransmitting would depend on how the run's timing packs segments into groups. Twice the
/// 10+3 group size in a row always covers every shard of some group: its data segments come back
/// only by retransmission, whatever the timing. The burst starts after the opening datagrams, so
/// kcp-go's listener still adopts the conversation from our first data.
const BURST: Range<u64> = 20..46;
/// Messages exchanged per run
const COUNT: usize = 300;
/// Longest a run may take
const DEADLINE: Duration = Duration::from_secs(60);
/// Longest the drive loop sleeps between polls
const TICK: Duration = Duration::from_millis(2);

/// kcp's "fast" profile with the original's FEC defaults, or without FEC
fn tuning(fec: bool) -> KcpTuning {
    KcpTuning {
        nodelay: true,
        interval_ms: 10,
        resend: 2,
        nc: true,
        sndwnd: 128,
        rcvwnd: 128,
        datashard: if fec { 10 } else { 0 },
        parityshard: if fec { 3 } else { 0 },
        ..KcpTuning::default()
    }
}

/// The peer's command-line flags for `tuning`
fn peer_flags(tuning: &KcpTuning) -> Vec<String> {
    [
        ("ds", u32::from(tuning.datashard)),
        ("ps", u32::from(tuning.parityshard)),
        ("mtu", u32::from(tuning.mtu)),
        ("sndwnd", u32::from(tuning.sndwnd)),
        ("rcvwnd", u32::from(tuning.rcvwnd)),
        ("nodelay", u32::from(tuning.nodelay)),
        ("interval", tuning.interval_ms),
        ("resend", tuning.resend),
        ("nc", u32::from(tuning.nc)),
    ]
    .iter()
    .map(|(flag, value)| format!("-{flag}={value}"))
    .collect()
}

/// The built peer, or why there is none
fn peer_binary() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let sources = PathBuf::from(GOPATH).join("src/github.com/xtaci/kcp-go");
            if !sources.exists() {
                return Err(format!("{} is missing", sources.display()));
            }
            let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let out = manifest.join("../target/kcp-go");
            let binary = out.join("kcp-go-peer");
            let status = Command::new("go")
                .args(["build", "-o"])
                .arg(&binary)
                .arg(".")
                .current_dir(manifest.join("interop/kcp-go-peer"))
                .env("GO111MODULE", "off")
                .env("GOPATH", GOPATH)
                .env("GOCACHE", out.join("cache"))
                .env("GOFLAGS", "")
                .status()
                .map_err(|e| format!("cannot run go: {e}"))?;
            match status.success() {
                true => Ok(binary),
                false => Err(format!("go build of the kcp-go peer failed ({status})")),
            }
        })
        .clone()
}

/// The peer binary, or `None` (after saying why) when this machine cannot build it
fn peer_or_skip() -> Option<PathBuf> {
    match peer_binary() {
        Ok(binary) => Some(binary),
        Err(why) if std::env::var_os("IKAGO_REQUIRE_KCP_GO").is_none() => {
            println!(
                "skipped: kcp-go interop needs golang-go and golang-github-xtaci-kcp-dev: {why}"
            );
            None
        }
        Err(why) => panic!("IKAGO_REQUIRE_KCP_GO is set but the kcp-go peer is unavailable: {why}"),
    }
}

/// A running kcp-go peer: datagrams in and out over its pipes, its report on standard error
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    datagrams: Receiver<Vec<u8>>,
    report: Option<JoinHandle<String>>,
}

impl Peer {
    fn spawn(binary: &PathBuf, args: &[String]) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the kcp-go peer starts");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (tx, datagrams) = mpsc::channel();
        std::thread::spawn(move || {
            let mut head = [0u8; 2];
            while stdout.read_exact(&mut head).is_ok() {
                let mut datagram = vec![0u8; usize::from(u16::from_be_bytes(head))];
                if stdout.read_exact(&mut datagram).is_err() || tx.send(datagram).is_err() {
                    break;
                }
            }
        });
        let stderr = BufReader::new(child.stderr.take().expect("piped"));
        let report = std::thread::spawn(move || {
            stderr
                .lines()
                .map_while(Result::ok)
                .last()
                .unwrap_or_default()
        });
        Self {
            stdin: child.stdin.take(),
            child,
            datagrams,
            report: Some(report),
        }
    }

    /// Hands `datagram` to kcp-go
    fn send(&mut self, datagram: &[u8]) {
        let stdin = self.stdin.as_mut().expect("the pipe is open until finish");
        let len = u16::try_from(datagram.len()).expect("datagrams fit the frame");
        // A peer that exited is reported by finish
        let _ = stdin
            .write_all(&len.to_be_bytes())
            .and_then(|()| stdin.write_all(datagram));
    }

    /// Whether the peer has exited
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Closes its input, waits for its exit and returns whether it succeeded, and its report
    fn finish(mut self) -> (bool, serde_json::Value) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the peer") {
                break status;
            }
            assert!(Instant::now() < deadline, "the kcp-go peer did not exit");
            std::thread::sleep(TICK);
        };
        let line = self.report.take().expect("once").join().expect("reader");
        let report =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer report {line:?}: {e}"));
        (status.success(), report)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Our own child, by pid; already gone is fine
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drives `session` against `peer` in real time with [`LOSS`] each way and our [`BURST`] until
/// `app` says done
///
/// `app` runs after every input: it reads what arrived and sends what it wants.
fn drive(
    session: &mut KcpSession,
    peer: &mut Peer,
    seed: u64,
    mut app: impl FnMut(&mut KcpSession, Instant, &mut Peer) -> bool,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut keep = move || f64::from(rng.next_u32()) / f64::from(u32::MAX) >= LOSS;
    let start = Instant::now();
    let mut buf = vec![0u8; 2048];
    let mut sent = 0u64;
    let mut arrived: Option<Vec<u8>> = None;
    loop {
        let now = Instant::now();
        assert!(
            now < start + DEADLINE,
            "no result within {DEADLINE:?}: {:?}",
            session.stats()
        );
        for datagram in arrived.take().into_iter().chain(peer.datagrams.try_iter()) {
            if keep() {
                // kcp-go sends nothing we refuse; a refusal would show in the counts below
                let _ = session.handle_datagram(now, &datagram);
            }
        }
        session.handle_timeout(now);
        let done = app(session, now, peer);
        while let Some(n) = session.poll_datagram(&mut buf) {
            let lost = BURST.contains(&sent) || !keep();
            sent += 1;
            if !lost {
                peer.send(&buf[..n]);
            }
        }
        if done {
            return;
        }
        let wait = session
            .poll_timeout()
            .saturating_duration_since(now)
            .min(TICK);
        match peer.datagrams.recv_timeout(wait) {
            Ok(datagram) => arrived = Some(datagram),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
    }
}

/// Test message `i`: its index, then a pattern; sizes cycle through small, typical and
/// full-segment packets
fn message(i: usize, mss: usize) -> Vec<u8> {
    let sizes = [20, 200, 1300, mss, 64];
    let mut m = vec![0u8; sizes[i % sizes.len()]];
    m[..4].copy_from_slice(&(i as u32).to_be_bytes());
    for (j, b) in m.iter_mut().enumerate().skip(4) {
        *b = (i + j) as u8;
    }
    m
}

/// Asserts that FEC and retransmission both did work on our side
fn assert_recovered(ours: &KcpStats, fec: bool) {
    assert_eq!(
        ours.datagrams_rejected, 0,
        "we refused kcp-go datagrams: {ours:?}"
    );
    assert!(
        ours.retransmissions > 0,
        "loss caused no retransmission: {ours:?}"
    );
    if fec {
        assert!(
            ours.fec_recovered > 0,
            "FEC rebuilt nothing of kcp-go's: {ours:?}"
        );
    }
}

/// Asserts that kcp-go took every datagram of ours, and every shard it rebuilt from our parity
fn assert_peer_accepted(report: &serde_json::Value) {
    assert_eq!(
        report["kcp_in_errors"], 0,
        "kcp-go refused datagrams: {report}"
    );
    assert_eq!(
        report["fec_errors"], 0,
        "kcp-go rebuilt invalid shards: {report}"
    );
}

/// Our session opens the conversation; kcp-go's listener (`ServeConn`) adopts it and echoes
///
/// The last message is larger than the mss: kcp-go receives it whole (its report's largest
/// message) and, as its `Write` does, echoes it back split into mss-sized messages.
fn kcp_go_listener_adopts_our_session(fec: bool) {
    let Some(binary) = peer_or_skip() else {
        return;
    };
    let tuning = tuning(fec);
    let mss = tuning.mss();
    let mut args = vec!["-mode=echo".to_owned()];
    args.extend(peer_flags(&tuning));
    let mut peer = Peer::spawn(&binary, &args);
    let mut session = KcpSession::new(0x1c0f_fee5, &tuning, Instant::now()).expect("tuning");
    let mut messages: Vec<Vec<u8>> = (0..COUNT).map(|i| message(i, mss)).collect();
    let big: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
    messages.push(big);
    // What comes back: each message, the big one in kcp-go's mss-sized pieces
    let mut expected: VecDeque<Vec<u8>> = messages
        .iter()
        .flat_map(|m| m.chunks(mss).map(<[u8]>::to_vec))
        .collect();
    let mut next = 0;
    let mut buf = vec![0u8; 65536];
    drive(&mut session, &mut peer, 7, |session, now, _| {
        while next < messages.len() && session.send(now, &messages[next]).is_ok() {
            next += 1;
        }
        while let Some(n) = session.recv(&mut buf) {
            let want = expected.pop_front().expect("no more echoes expected");
            assert_eq!(&buf[..n], &want[..], "echo out of order or changed");
        }
        expected.is_empty()
    });
    let ours = session.stats();
    let (ok, report) = peer.finish();
    println!("fec {fec}: ours {ours:?}\nkcp-go {report}");
    assert!(ok, "kcp-go peer failed: {report}");
    assert_eq!(report["messages"], messages.len(), "kcp-go messages");
    assert_eq!(report["largest"], 3000, "kcp-go got the big message whole");
    assert_peer_accepted(&report);
    assert_recovered(&ours, fec);
    if fec {
        assert!(
            report["fec_recovered"].as_u64() > Some(0),
            "kcp-go rebuilt nothing from our parity"
        );
    }
}

/// kcp-go dials (`NewConn3`) with a conversation id our session serves; we echo and kcp-go
/// checks every echo, in order
fn our_session_serves_kcp_go_dialer(fec: bool) {
    let Some(binary) = peer_or_skip() else {
        return;
    };
    let tuning = tuning(fec);
    let conv = 0x5eed_cafe;
    let mut args = vec![
        "-mode=dial".to_owned(),
        format!("-conv={conv}"),
        format!("-count={COUNT}"),
    ];
    args.extend(peer_flags(&tuning));
    let mut peer = Peer::spawn(&binary, &args);
    let mut session = KcpSession::new(conv, &tuning, Instant::now()).expect("tuning");
    let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
    let mut buf = vec![0u8; 65536];
    drive(&mut session, &mut peer, 11, |session, now, peer| {
        while let Some(n) = session.recv(&mut buf) {
            pending.push_back(buf[..n].to_vec());
        }
        while let Some(m) = pending.front() {
            if session.send(now, m).is_err() {
                break;
            }
            pending.pop_front();
        }
        peer.exited()
    });
    let ours = session.stats();
    let (ok, report) = peer.finish();
    println!("fec {fec}: ours {ours:?}\nkcp-go {report}");
    assert!(ok, "kcp-go peer failed: {report}");
    assert_eq!(report["messages"], COUNT, "echoes kcp-go checked");
    assert_peer_accepted(&report);
    assert_recovered(&ours, fec);
}

#[test]
fn kcp_go_listener_adopts_our_session_with_fec() {
    kcp_go_listener_adopts_our_session(true);
}

#[test]
fn kcp_go_listener_adopts_our_session_without_fec() {
    kcp_go_listener_adopts_our_session(false);
}

#[test]
fn our_session_serves_kcp_go_dialer_with_fec() {
    our_session_serves_kcp_go_dialer(true);
}

#[test]
fn our_session_serves_kcp_go_dialer_without_fec() {
    our_session_serves_kcp_go_dialer(false);
}
