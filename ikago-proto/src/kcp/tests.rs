//! Cross-layer tests: real kcp-go traffic, two sessions over a lossy link, garbage, fuzz body

use super::arq::Segments;
use super::fec::{FEC_HEADER_LEN, FEC_OVERHEAD, FecDecoder, FecEncoder, FecHeader, ShardKind};
use super::rs::ReedSolomon;
use super::*;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Conversation id of the captured session (scenario.json `conv`: "38b7867a" in wire order)
const CAPTURED_CONV: u32 = 0x38b7_867a;

/// Which way a captured datagram went
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Client to server
    C2s,
    /// Server to client
    S2c,
}

/// The captured datagrams of captures/07 (see the fixture's header)
fn capture() -> Vec<(Dir, Vec<u8>)> {
    include_str!("testdata/captures07-kcp-datagrams.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (dir, hex) = l.split_once(' ').unwrap();
            let dir = if dir == "c2s" { Dir::C2s } else { Dir::S2c };
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (dir, bytes)
        })
        .collect()
}

/// The captured datagrams of one direction
fn one_way(dir: Dir) -> Vec<Vec<u8>> {
    capture()
        .into_iter()
        .filter(|(d, _)| *d == dir)
        .map(|(_, b)| b)
        .collect()
}

/// IPv4 total lengths of the inner packets, per direction (scenario.json `inner_ip_total_lengths`)
const INNER_LENGTHS: [usize; 8] = [84, 84, 84, 84, 84, 48, 228, 1028];

/// Checks that `p` is an IPv4 packet of `len` bytes carrying ICMP (first five) or UDP
fn assert_inner(p: &[u8], i: usize) {
    assert_eq!(p.len(), INNER_LENGTHS[i], "packet {i}");
    assert_eq!(p[0] >> 4, 4, "packet {i} is IPv4");
    assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
    assert_eq!(p[9], if i < 5 { 1 } else { 17 }, "packet {i} protocol");
}

#[test]
fn captured_datagrams_parse() {
    for dir in [Dir::C2s, Dir::S2c] {
        let (mut data, mut parity, mut acks) = (0, 0, 0);
        let mut pushes: Vec<(u32, Vec<u8>)> = Vec::new();
        for d in one_way(dir) {
            let h = FecHeader::parse(&d).unwrap();
            if h.kind == ShardKind::Parity {
                parity += 1;
                assert_eq!(peek_conv(&d, true), None);
                continue;
            }
            data += 1;
            let size = usize::from(u16::from_le_bytes([d[6], d[7]]));
            assert_eq!(size, d.len() - FEC_HEADER_LEN);
            assert_eq!(peek_conv(&d, true), Some(CAPTURED_CONV));
            for seg in Segments::new(&d[FEC_OVERHEAD..]) {
                let (h, payload) = seg.unwrap();
                assert_eq!(h.conv, CAPTURED_CONV);
                assert_eq!(h.len as usize, payload.len());
                match h.cmd {
                    81 => pushes.push((h.sn, payload.to_vec())),
                    82 => acks += 1,
                    cmd => panic!("unexpected command {cmd}"),
                }
            }
        }
        let expected = if dir == Dir::C2s { (16, 3) } else { (10, 3) };
        assert_eq!((data, parity), expected, "{dir:?}");
        assert_eq!(acks, 8, "{dir:?}");
        assert_eq!(pushes.len(), 8, "{dir:?}");
        for (i, (sn, p)) in pushes.iter().enumerate() {
            assert_eq!(*sn, i as u32);
            assert_inner(p, i);
        }
    }
}

#[test]
fn captured_groups_are_reproduced_by_our_encoder() {
    // proves the FEC framing and the Reed–Solomon code match kcp-go + klauspost on real traffic
    for dir in [Dir::C2s, Dir::S2c] {
        let captured = one_way(dir);
        let group: Vec<&Vec<u8>> = captured
            .iter()
            .filter(|d| FecHeader::parse(d).unwrap().seqid < 13)
            .collect();
        assert_eq!(group.len(), 13);
        let mut enc = FecEncoder::new(10, 3).unwrap();
        let mut ours = Vec::new();
        for d in &group[..10] {
            let mut fresh = d.to_vec();
            fresh[..FEC_OVERHEAD].fill(0);
            enc.encode(&mut fresh, |x| ours.push(x.to_vec()));
        }
        assert_eq!(ours.len(), 13);
        for (i, (a, b)) in ours.iter().zip(&group).enumerate() {
            assert_eq!(a, *b, "{dir:?} shard {i}");
        }
        // the parity also verifies against a bare recomputation with the codec
        let longest = group[..10].iter().map(|d| d.len()).max().unwrap();
        let region = longest - FEC_HEADER_LEN;
        let mut rows = vec![0u8; 13 * region];
        for (i, d) in group[..10].iter().enumerate() {
            rows[i * region..][..d.len() - FEC_HEADER_LEN].copy_from_slice(&d[FEC_HEADER_LEN..]);
        }
        ReedSolomon::new(10, 3)
            .unwrap()
            .encode(&mut rows, region, region)
            .unwrap();
        for p in 0..3 {
            assert_eq!(
                &rows[(10 + p) * region..][..region],
                &group[10 + p][FEC_HEADER_LEN..]
            );
        }
    }
}

/// Feeds captured datagrams to a fresh session and returns the messages it delivers
fn receive_captured(datagrams: &[&Vec<u8>]) -> (Vec<Vec<u8>>, KcpStats) {
    let t0 = Instant::now();
    let mut s = KcpSession::new(CAPTURED_CONV, &KcpTuning::default(), t0).unwrap();
    let mut out = vec![0u8; 65536];
    let mut messages = Vec::new();
    for (i, d) in datagrams.iter().enumerate() {
        s.handle_datagram(t0 + Duration::from_millis(i as u64), d)
            .unwrap();
        while let Some(n) = s.recv(&mut out) {
            messages.push(out[..n].to_vec());
        }
    }
    (messages, s.stats())
}

#[test]
fn captured_streams_are_received_by_our_session() {
    for dir in [Dir::C2s, Dir::S2c] {
        let captured = one_way(dir);
        let all: Vec<&Vec<u8>> = captured.iter().collect();
        let (messages, stats) = receive_captured(&all);
        assert_eq!(messages.len(), 8, "{dir:?}");
        for (i, m) in messages.iter().enumerate() {
            assert_inner(m, i);
        }
        assert_eq!(stats.fec_recovered, 0);
        assert_eq!(stats.datagrams_rejected, 0);
    }
}

#[test]
fn captured_losses_are_rebuilt_from_kcp_go_parity() {
    let captured = one_way(Dir::S2c);
    let seqid = |d: &Vec<u8>| FecHeader::parse(d).unwrap().seqid;
    // drop three data shards of the complete group, among them the 1028-byte UDP reply's
    let kept: Vec<&Vec<u8>> = captured
        .iter()
        .filter(|d| ![2, 6, 9].contains(&seqid(d)))
        .collect();
    let (messages, stats) = receive_captured(&kept);
    assert_eq!(messages.len(), 8);
    for (i, m) in messages.iter().enumerate() {
        assert_inner(m, i);
    }
    assert_eq!(stats.fec_recovered, 3);
    // the decoder alone gives back the dropped shards byte for byte
    let mut dec = FecDecoder::new(10, 3).unwrap();
    let mut rebuilt = Vec::new();
    for d in &kept {
        dec.decode(0, FecHeader::parse(d).unwrap(), d, |r| {
            rebuilt.push(r.to_vec())
        })
        .unwrap();
    }
    let dropped: Vec<Vec<u8>> = captured
        .iter()
        .filter(|d| [2, 6, 9].contains(&seqid(d)))
        .map(|d| d[FEC_OVERHEAD..].to_vec())
        .collect();
    assert_eq!(rebuilt, dropped);
}

/// One direction of the virtual link: seeded loss, 30 ms delay plus random jitter (which
/// reorders datagrams sent closer together than the jitter)
struct Wire {
    /// Loss and jitter source
    rng: ChaCha8Rng,
    /// Loss probability
    loss: f64,
    /// Largest extra delay
    jitter: Duration,
    /// Datagrams on the way: arrival, tie-breaker, bytes
    queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    /// Datagrams offered
    sent: u64,
    /// Datagrams lost
    lost: u64,
}

impl Wire {
    /// A wire with loss probability `loss` and up to `jitter` of extra delay
    fn new(seed: u64, loss: f64, jitter: Duration) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            loss,
            jitter,
            queue: BinaryHeap::new(),
            sent: 0,
            lost: 0,
        }
    }

    /// Offers a datagram at `now`
    fn send(&mut self, now: Instant, d: &[u8]) {
        self.sent += 1;
        if f64::from(self.rng.next_u32()) / f64::from(u32::MAX) < self.loss {
            self.lost += 1;
            return;
        }
        let jitter = self
            .jitter
            .mul_f64(f64::from(self.rng.next_u32()) / f64::from(u32::MAX));
        let at = now + Duration::from_millis(30) + jitter;
        self.queue.push(Reverse((at, self.sent, d.to_vec())));
    }

    /// When the next datagram arrives
    fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next datagram that has arrived by `now`
    fn arrived(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_at()? <= now {
            self.queue.pop().map(|Reverse((_, _, d))| d)
        } else {
            None
        }
    }
}

/// One side of the test: a session, the messages it sends and what it received
struct Side {
    /// The session
    session: KcpSession,
    /// Index of the next message to send
    next: usize,
    /// Index of the next message expected from the peer
    expected: usize,
    /// Latencies of the messages received, ms
    latencies: Vec<f64>,
}

/// Message `i` of a run: its index, then a pattern; mostly 40 to 1400 bytes, with some
/// multi-fragment ones of 1500 and 4000 bytes
fn message(i: usize, seed: u64) -> Vec<u8> {
    let len = match i % 25 {
        7 => 1500,
        19 => 4000,
        _ => 40 + (i.wrapping_mul(7919) ^ seed as usize) % 1360,
    };
    let mut m = vec![0u8; len];
    m[..4].copy_from_slice(&(i as u32).to_le_bytes());
    for (j, b) in m.iter_mut().enumerate().skip(4) {
        *b = (i + j) as u8;
    }
    m
}

/// What a link run uses
struct Run {
    /// Both sessions' tuning
    tuning: KcpTuning,
    /// Loss probability of each wire
    loss: f64,
    /// Largest extra delay on top of 30 ms
    jitter: Duration,
    /// Seed of the wires and the garbage
    seed: u64,
    /// Messages each way
    count: usize,
    /// Time between two messages of one side
    spacing: Duration,
    /// Mix a random datagram into the input after every real one
    garbage: bool,
}

/// What a run measured
#[derive(Debug)]
struct Report {
    /// Median message latency (from when the application had it), ms
    p50: f64,
    /// 99th percentile message latency, ms
    p99: f64,
    /// Data shards rebuilt by FEC, both sessions (kcp-go's counter: late shards included)
    fec_recovered: u64,
    /// Push segments that reached KCP first through FEC, both sessions
    fec_segments: u64,
    /// Segments retransmitted, both sessions
    retransmissions: u64,
    /// Of those, after a timeout
    timeouts: u64,
    /// Datagrams offered to the wires
    sent: u64,
    /// Datagrams the wires lost
    lost: u64,
    /// Garbage datagrams the sessions refused
    rejected: u64,
}

/// Runs two sessions exchanging messages both ways over lossy wires; a message refused for a
/// full send window waits in the application and is offered again
fn run_link(run: &Run) -> Report {
    let Run {
        tuning,
        loss,
        jitter,
        seed,
        count,
        spacing,
        garbage,
    } = *run;
    let t0 = Instant::now();
    let new_side = || Side {
        session: KcpSession::new(0x0102_0304, &tuning, t0).unwrap(),
        next: 0,
        expected: 0,
        latencies: Vec::new(),
    };
    let mut sides = [new_side(), new_side()];
    let mut wires = [
        Wire::new(seed, loss, jitter),
        Wire::new(seed + 1, loss, jitter),
    ];
    let mut junk = ChaCha8Rng::seed_from_u64(seed + 2);
    let mut buf = vec![0u8; 1500];
    let mut out = vec![0u8; 65536];
    let mut now = t0;
    while sides.iter().any(|s| s.expected < count) {
        assert!(
            now - t0 < Duration::from_secs(300),
            "stalled at loss {loss}"
        );
        for (to, wire) in wires.iter_mut().enumerate().map(|(i, w)| (1 - i, w)) {
            while let Some(d) = wire.arrived(now) {
                sides[to].session.handle_datagram(now, &d).unwrap();
                if garbage {
                    let g = garbage_datagram(&mut junk);
                    assert!(sides[to].session.handle_datagram(now, &g).is_err() || g[4] == 0xf2);
                }
            }
        }
        let mut blocked = [false; 2];
        for (side, blocked) in sides.iter_mut().zip(&mut blocked) {
            while side.next < count && t0 + spacing * side.next as u32 <= now {
                match side.session.send(now, &message(side.next, seed)) {
                    Ok(()) => side.next += 1,
                    Err(KcpError::WindowFull) => {
                        *blocked = true;
                        break;
                    }
                    Err(e) => panic!("send: {e}"),
                }
            }
            side.session.handle_timeout(now);
        }
        for (from, side) in sides.iter_mut().enumerate() {
            while let Some(n) = side.session.poll_datagram(&mut buf) {
                wires[from].send(now, &buf[..n]);
            }
            while let Some(n) = side.session.recv(&mut out) {
                let i = side.expected;
                assert_eq!(
                    &out[..n],
                    &message(i, seed)[..],
                    "message {i} out of order or damaged"
                );
                side.latencies
                    .push((now - (t0 + spacing * i as u32)).as_secs_f64() * 1e3);
                side.expected += 1;
            }
        }
        let app = sides
            .iter()
            .zip(blocked)
            .filter(|(s, blocked)| s.next < count && !blocked)
            .map(|(s, _)| t0 + spacing * s.next as u32);
        let next = sides
            .iter()
            .map(|s| s.session.poll_timeout())
            .chain(wires.iter().filter_map(Wire::next_at))
            .chain(app)
            .min()
            .unwrap();
        now = now.max(next);
    }
    let mut latencies: Vec<f64> = sides.iter().flat_map(|s| s.latencies.clone()).collect();
    latencies.sort_by(f64::total_cmp);
    let stats: Vec<KcpStats> = sides.iter().map(|s| s.session.stats()).collect();
    Report {
        p50: latencies[latencies.len() / 2],
        p99: latencies[latencies.len() * 99 / 100],
        fec_recovered: stats.iter().map(|s| s.fec_recovered).sum(),
        fec_segments: stats.iter().map(|s| s.fec_segments).sum(),
        retransmissions: stats.iter().map(|s| s.retransmissions).sum(),
        timeouts: stats.iter().map(|s| s.timeouts).sum(),
        sent: wires.iter().map(|w| w.sent).sum(),
        lost: wires.iter().map(|w| w.lost).sum(),
        rejected: stats.iter().map(|s| s.datagrams_rejected).sum(),
    }
}

/// A random datagram; half of them carry a FEC data or parity flag to get past the header check
fn garbage_datagram(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let len = 7 + rng.next_u32() as usize % 1400;
    let mut g = vec![0u8; len];
    rng.fill_bytes(&mut g);
    match rng.next_u32() % 4 {
        0 => g[4..6].copy_from_slice(&[0xf1, 0]),
        1 => g[4..6].copy_from_slice(&[0xf2, 0]),
        _ => {}
    }
    g
}

/// kcp's "fast" profile (`nodelay 1, interval 10, resend 2, nc 1`) for comparison
fn fast_tuning() -> KcpTuning {
    KcpTuning {
        nodelay: true,
        interval_ms: 10,
        resend: 2,
        nc: true,
        ..KcpTuning::default()
    }
}

#[test]
fn lossy_link_delivers_every_message_once_in_order() {
    // 20 messages a second each way (40 to 4000 bytes, about 120 kbit/s), 30 ms one way
    let profiles = [("default", KcpTuning::default()), ("fast", fast_tuning())];
    for (name, tuning) in profiles {
        for jitter_ms in [20, 0] {
            for (i, loss) in [0.0, 0.05, 0.10, 0.20].into_iter().enumerate() {
                let r = run_link(&Run {
                    tuning,
                    loss,
                    jitter: Duration::from_millis(jitter_ms),
                    seed: 40 + i as u64 * 10,
                    count: 300,
                    spacing: Duration::from_millis(50),
                    garbage: false,
                });
                println!(
                    "kcp {name:>7} jitter {jitter_ms:>2} ms loss {:>2.0}%: p50 {:>5.0} ms, \
                     p99 {:>5.0} ms; datagrams {} ({} lost); fec rebuilt {} shards, {} \
                     segments first via fec; retransmitted {} ({} on timeout)",
                    loss * 100.0,
                    r.p50,
                    r.p99,
                    r.sent,
                    r.lost,
                    r.fec_recovered,
                    r.fec_segments,
                    r.retransmissions,
                    r.timeouts,
                );
                if loss > 0.0 {
                    assert!(r.fec_segments > 0, "{name} {loss}: fec recovered nothing");
                }
                if name == "fast" {
                    assert!(r.p99 < 1000.0, "{name} {loss}: {r:?}");
                }
            }
        }
    }
}

#[test]
fn garbage_never_breaks_a_working_session() {
    let r = run_link(&Run {
        tuning: KcpTuning::default(),
        loss: 0.05,
        jitter: Duration::from_millis(20),
        seed: 99,
        count: 150,
        spacing: Duration::from_millis(50),
        garbage: true,
    });
    assert!(r.rejected > 100, "{r:?}");
}

/// Runs both sessions' timers at `now` and carries every datagram across a lossless link
fn exchange(a: &mut KcpSession, b: &mut KcpSession, now: Instant) {
    /// Carries `from`'s datagrams to `to`
    fn carry(from: &mut KcpSession, to: &mut KcpSession, now: Instant) {
        let mut buf = [0u8; 1500];
        from.handle_timeout(now);
        while let Some(n) = from.poll_datagram(&mut buf) {
            assert!(n <= 1400);
            to.handle_datagram(now, &buf[..n]).unwrap();
        }
    }
    for _ in 0..2 {
        carry(a, b, now);
        carry(b, a, now);
    }
}

#[test]
fn large_messages_travel_whole() {
    let t0 = Instant::now();
    let tuning = KcpTuning::default();
    let mut a = KcpSession::new(77, &tuning, t0).unwrap();
    let mut b = KcpSession::new(77, &tuning, t0).unwrap();
    let largest = usize::from(tuning.rcvwnd) * tuning.mss();
    let mut out = vec![0u8; 65536];
    let mut now = t0;
    for size in [1500, 4000, largest] {
        let msg: Vec<u8> = (0..size).map(|i| (i * 31) as u8).collect();
        a.send(now, &msg).unwrap();
        let mut got = None;
        for _ in 0..100 {
            exchange(&mut a, &mut b, now);
            if let Some(n) = b.recv(&mut out) {
                got = Some(out[..n].to_vec());
                break;
            }
            now = a.poll_timeout().min(b.poll_timeout()).max(now);
        }
        assert_eq!(got.as_deref(), Some(&msg[..]), "{size}-byte message");
    }
    assert_eq!(
        a.send(now, &vec![0; largest + 1]),
        Err(KcpError::TooLarge {
            len: largest + 1,
            max: largest
        })
    );
}

#[test]
fn mutated_captured_datagrams_never_panic() {
    let captured = capture();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let t0 = Instant::now();
    let mut s = KcpSession::new(CAPTURED_CONV, &KcpTuning::default(), t0).unwrap();
    let mut buf = [0u8; 1500];
    let mut out = vec![0u8; 65536];
    for round in 0..20_000u64 {
        let (_, d) = &captured[rng.next_u32() as usize % captured.len()];
        let mut d = d.clone();
        for _ in 0..1 + rng.next_u32() % 4 {
            let at = rng.next_u32() as usize % d.len();
            d[at] = rng.next_u32() as u8;
        }
        d.truncate(1 + rng.next_u32() as usize % d.len());
        let now = t0 + Duration::from_millis(round);
        let _ = s.handle_datagram(now, &d);
        s.handle_timeout(now);
        while s.poll_datagram(&mut buf).is_some() {}
        while s.recv(&mut out).is_some() {}
    }
    assert!(s.stats().datagrams_rejected > 1000);
}

#[test]
fn fuzz_body_survives_random_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for _ in 0..300 {
        let mut data = vec![0u8; rng.next_u32() as usize % 4096];
        rng.fill_bytes(&mut data);
        fuzz_datagrams(&data);
    }
    fuzz_datagrams(&[]);
    fuzz_datagrams(&[8]);
}

#[test]
fn tuning_validation() {
    assert_eq!(KcpTuning::default().validate(), Ok(()));
    assert_eq!(KcpTuning::default().mss(), 1368);
    let t = |f: fn(&mut KcpTuning)| {
        let mut t = KcpTuning::default();
        f(&mut t);
        t.validate()
    };
    assert_eq!(t(|t| t.mtu = 49), Err(KcpConfigError::Mtu(49)));
    assert_eq!(t(|t| t.mtu = 1501), Err(KcpConfigError::Mtu(1501)));
    assert_eq!(t(|t| t.mtu = 50), Ok(()));
    assert_eq!(t(|t| t.sndwnd = 0), Err(KcpConfigError::SendWindow));
    assert_eq!(t(|t| t.rcvwnd = 0), Err(KcpConfigError::ReceiveWindow));
    assert_eq!(
        t(|t| (t.datashard, t.parityshard) = (200, 56)),
        Err(KcpConfigError::Shards(200, 56))
    );
    // as in kcp-go, a zero shard count turns FEC off rather than being an error
    assert_eq!(t(|t| (t.datashard, t.parityshard) = (0, 3)), Ok(()));
    assert!(
        !KcpTuning {
            datashard: 0,
            ..KcpTuning::default()
        }
        .fec()
    );
    assert_eq!(t(|t| t.interval_ms = 0), Ok(()));
    let no_parity = KcpTuning {
        parityshard: 0,
        ..KcpTuning::default()
    };
    assert!(!no_parity.fec());
    assert_eq!(no_parity.mss(), 1376);
    assert_eq!(
        KcpConfigError::Shards(200, 56).to_string(),
        "kcp data shards (200) plus parity shards (56) exceed 255"
    );
}

proptest::proptest! {
    #[test]
    fn fuzz_body_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..3000)) {
        fuzz_datagrams(&data);
    }
}
