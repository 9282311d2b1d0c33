//! Helpers shared by the integration tests: hand-made stats, a raw HTTP client and a strict
//! parser of the Prometheus text format 0.0.4

#![allow(dead_code, unreachable_pub)]

use ikago_monitor::{Recorder, Role, Snapshot};
use ikago_proto::{Counter, DropReason, Event, KcpStats, Peer, PeerStats, Stats};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The wall-clock time of the runner's start in these tests
pub const START_UNIX: u64 = 1_700_000_000;

pub fn counter(packets: u64, bytes: u64) -> Counter {
    Counter { packets, bytes }
}

pub fn peer(
    peer: Peer,
    out: Counter,
    r#in: Counter,
    first: u64,
    last: u64,
    t0: Instant,
) -> PeerStats {
    PeerStats {
        peer,
        out,
        r#in,
        first_seen: t0 + Duration::from_secs(first),
        last_seen: t0 + Duration::from_secs(last),
        protocol: None,
    }
}

pub fn recorder(role: Role, t0: Instant) -> Recorder {
    Recorder::new(
        role,
        "1.2.3",
        t0,
        UNIX_EPOCH + Duration::from_secs(START_UNIX),
    )
}

/// A client's counters: two sources (one never answered) and two remotes
pub fn client_stats(t0: Instant) -> Stats {
    let mut s = Stats::default();
    let src = |d| Peer::Source(Ipv4Addr::new(10, 6, 0, d).into());
    s.peers = vec![
        peer(src(2), counter(10, 1000), counter(5, 700), 1, 9, t0),
        peer(src(3), counter(3, 180), counter(0, 0), 4, 6, t0),
    ];
    let remote = |a, b, c, d| Peer::Remote(Ipv4Addr::new(a, b, c, d).into());
    s.remotes = vec![
        peer(
            remote(1, 1, 1, 1),
            counter(7, 600),
            counter(4, 500),
            2,
            8,
            t0,
        ),
        peer(
            remote(8, 8, 8, 8),
            counter(6, 580),
            counter(1, 200),
            3,
            7,
            t0,
        ),
    ];
    s.tunnel_tx = counter(30, 4000);
    s.tunnel_rx = counter(20, 3000);
    s.inner_tx = counter(13, 1180);
    s.inner_rx = counter(5, 700);
    s.local_tx = counter(5, 700);
    s.local_rx = counter(13, 1180);
    s.handshakes = 2;
    s.reconnects = 1;
    s.rtt = Some(Duration::from_micros(23_600));
    s.drops.add(DropReason::NoRoute);
    s.drops.add(DropReason::NoRoute);
    s.drops.add(DropReason::Malformed);
    s
}

/// A server's counters: two clients (one with a wrong password), NAT in use, KCP on
pub fn server_stats(t0: Instant) -> Stats {
    let mut s = Stats::default();
    let client = |d, port| Peer::Client(SocketAddr::from((Ipv4Addr::new(198, 51, 100, d), port)));
    s.peers = vec![
        peer(
            client(7, 50_000),
            counter(12, 1500),
            counter(9, 1100),
            1,
            9,
            t0,
        ),
        peer(client(8, 61_000), counter(2, 120), counter(0, 0), 5, 5, t0),
    ];
    s.tunnel_tx = counter(9, 1400);
    s.tunnel_rx = counter(14, 1900);
    s.handshakes = 2;
    s.nat_mappings = 3;
    s.nat_capacity = 16384 * 2 + 65536;
    s.drops.add(DropReason::NoNatMapping);
    s.drops.add(DropReason::DecryptFailed);
    s.unopenable = 1;
    s.kcp = Some(KcpStats {
        retransmissions: 4,
        timeouts: 1,
        fec_recovered: 2,
        srtt: Duration::from_millis(31),
        rto: Duration::from_millis(200),
        cwnd: 16,
        in_flight: 3,
        wait_snd: 5,
        ..KcpStats::default()
    });
    s
}

/// NAT events for the server snapshot
pub fn nat_events() -> Vec<Event> {
    let client = SocketAddr::from((Ipv4Addr::new(198, 51, 100, 7), 50_000));
    let public = Ipv4Addr::new(203, 0, 113, 1);
    [(17, 53_000, 50_001), (6, 40_000, 50_002), (1, 7, 0)]
        .into_iter()
        .map(|(protocol, inner, port)| Event::NatMapped {
            client,
            protocol,
            inner: SocketAddr::from((Ipv4Addr::new(10, 6, 0, 2), inner)),
            public: SocketAddr::from((public, port)),
        })
        .collect()
}

/// A client snapshot taken 10.5 s after `t0`, with an RTT sampled then
pub fn client_snapshot(t0: Instant) -> Snapshot {
    let mut r = recorder(Role::Client, t0);
    let at = t0 + Duration::from_millis(10_500);
    for (name, ip) in [
        ("example.com", [93, 184, 216, 34]),
        ("one.one", [1, 1, 1, 1]),
    ] {
        let event = Event::DnsRecord {
            name: name.into(),
            ip: ip.into(),
        };
        r.record(&event, at);
    }
    r.snapshot(client_stats(t0), at)
}

/// A server snapshot taken 10.5 s after `t0`
pub fn server_snapshot(t0: Instant) -> Snapshot {
    let mut r = recorder(Role::Server, t0);
    for e in nat_events() {
        r.record(&e, t0 + Duration::from_secs(4));
    }
    r.snapshot(server_stats(t0), t0 + Duration::from_millis(10_500))
}

/// A response read whole from a raw socket
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names lower-cased
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a UTF-8 body")
    }
}

/// Sends `request` as is and reads the response until the server closes
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    try_exchange(addr, request).expect("an exchange with the monitor")
}

/// [`exchange`], when the server may also reset the connection
pub fn try_exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(parse_reply(&raw))
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
    )
}

pub fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).expect("an ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status = parts.next().unwrap().parse().expect("a status code");
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("a header line");
            (k.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect::<BTreeMap<_, _>>();
    let body = raw[end + 4..].to_vec();
    if let Some(len) = headers.get("content-length") {
        let len: usize = len.parse().unwrap();
        assert!(
            body.is_empty() || body.len() == len,
            "Content-Length {len}, body {}",
            body.len()
        );
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// One metric family of the text format
#[derive(Debug)]
pub struct Family {
    pub help: String,
    pub kind: String,
    pub samples: Vec<(BTreeMap<String, String>, f64)>,
}

impl Family {
    /// The value of the sample with exactly these labels
    pub fn value(&self, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|(l, _)| *l == want)
            .map(|(_, v)| *v)
    }
}

/// Parses the Prometheus text format 0.0.4 strictly: every line must parse; every sample must
/// follow the `# HELP` and `# TYPE` of its family, whose samples are contiguous; names, label
/// names, escapes and values must be valid; a label set appears once; counters are never
/// negative and end in `_total`. Only counters and gauges are expected here.
pub fn parse_metrics(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen: BTreeSet<(String, Vec<(String, String)>)> = BTreeSet::new();
    if !text.ends_with('\n') {
        return Err("the exposition must end with a line feed".into());
    }
    for (n, line) in text.lines().enumerate() {
        let err = |m: &str| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest
                .strip_prefix(' ')
                .ok_or_else(|| err("a comment needs a space"))?;
            let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            if keyword != "HELP" && keyword != "TYPE" {
                continue; // a plain comment
            }
            let (name, arg) = rest
                .split_once(' ')
                .ok_or_else(|| err("HELP/TYPE without text"))?;
            if !is_metric_name(name) {
                return Err(err("bad metric name"));
            }
            if current.as_deref() != Some(name) {
                if let Some(c) = current.take() {
                    closed.insert(c);
                }
                if closed.contains(name) {
                    return Err(err("family header after its samples ended"));
                }
                current = Some(name.to_owned());
            }
            let f = families.entry(name.to_owned()).or_insert_with(|| Family {
                help: String::new(),
                kind: String::new(),
                samples: Vec::new(),
            });
            if !f.samples.is_empty() {
                return Err(err("HELP/TYPE after samples"));
            }
            if keyword == "HELP" {
                if !f.help.is_empty() {
                    return Err(err("second HELP"));
                }
                check_escapes(arg, false).map_err(|m| err(&m))?;
                f.help = arg.to_owned();
            } else {
                if !f.kind.is_empty() {
                    return Err(err("second TYPE"));
                }
                if !["counter", "gauge"].contains(&arg) {
                    return Err(err("unexpected type"));
                }
                f.kind = arg.to_owned();
            }
            continue;
        }
        let (name, labels, rest) = parse_sample(line).map_err(|m| err(&m))?;
        if current.as_deref() != Some(name.as_str()) {
            return Err(err("sample outside its family's block"));
        }
        let f = families.get_mut(&name).expect("current family exists");
        if f.help.is_empty() || f.kind.is_empty() {
            return Err(err("sample without HELP and TYPE"));
        }
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or("")).ok_or_else(|| err("bad value"))?;
        if let Some(ts) = fields.next()
            && ts.parse::<i64>().is_err()
        {
            return Err(err("bad timestamp"));
        }
        if fields.next().is_some() {
            return Err(err("trailing fields"));
        }
        if f.kind == "counter" && (!name.ends_with("_total") || value < 0.0 || value.is_nan()) {
            return Err(err("a counter must end in _total and not be negative"));
        }
        let key = (
            name.clone(),
            labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        );
        if !seen.insert(key) {
            return Err(err("duplicate label set"));
        }
        f.samples.push((labels, value));
    }
    for (name, f) in &families {
        if f.help.is_empty() || f.kind.is_empty() {
            return Err(format!("{name}: HELP or TYPE missing"));
        }
    }
    Ok(families)
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && !s.starts_with("__")
}

/// Only `\\`, `\n` (and `\"` inside label values) may be escaped
fn check_escapes(s: &str, quotes: bool) -> Result<(), String> {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\\' | 'n') => {}
                Some('"') if quotes => {}
                other => return Err(format!("bad escape \\{other:?}")),
            }
        } else if c == '"' && quotes {
            return Err("unescaped quote".into());
        }
    }
    Ok(())
}

type Labels = BTreeMap<String, String>;

fn parse_sample(line: &str) -> Result<(String, Labels, &str), String> {
    let end = line.find(['{', ' ']).ok_or("a sample needs a value")?;
    let name = &line[..end];
    if !is_metric_name(name) {
        return Err("bad metric name".into());
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[end..];
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = r.strip_prefix('}') {
                r = after;
                break;
            }
            let eq = r.find('=').ok_or("label without '='")?;
            let key = &r[..eq];
            if !is_label_name(key) {
                return Err(format!("bad label name {key:?}"));
            }
            r = r[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value must be quoted")?;
            let mut value = String::new();
            let mut chars = r.char_indices();
            let close = loop {
                match chars.next() {
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        _ => return Err("bad escape in a label value".into()),
                    },
                    Some((_, '\n')) | None => return Err("unterminated label value".into()),
                    Some((_, c)) => value.push(c),
                }
            };
            if labels.insert(key.to_owned(), value).is_some() {
                return Err("label repeated".into());
            }
            r = &r[close + 1..];
            if let Some(after) = r.strip_prefix(',') {
                r = after;
            } else if !r.starts_with('}') {
                return Err("expected ',' or '}'".into());
            }
        }
        rest = r;
    }
    let rest = rest.strip_prefix(' ').ok_or("one space before the value")?;
    Ok((name.to_owned(), labels, rest))
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ if s.is_empty()
            || s.contains(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E') =>
        {
            None
        }
        _ => s.parse().ok(),
    }
}

/// `SystemTime` of `START_UNIX`, for tests that build their own recorders
pub fn start_wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(START_UNIX)
}
