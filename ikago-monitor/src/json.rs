//! JSON bodies: the original's `/` and `/dns` (reference §10), and the dashboard's
//! `/api/snapshot`

use crate::snapshot::{DnsRecord, Role, Snapshot};
use ikago_proto::{Counter, DropReason, PeerStats};
use serde::Serialize;
use std::collections::BTreeMap;

/// One node of the original: `{"count","size","appear","lastSeen"}`
#[derive(Serialize)]
struct Indicator {
    count: u64,
    size: u64,
    appear: u64,
    #[serde(rename = "lastSeen")]
    last_seen: u64,
}

/// Nodes by address, in Go's order (sorted keys)
type Nodes = BTreeMap<String, Indicator>;

#[derive(Serialize)]
struct Directions<T> {
    r#in: T,
    out: T,
}

#[derive(Serialize)]
struct Traffic {
    local: Directions<Nodes>,
    remote: Directions<Option<Nodes>>,
}

#[derive(Serialize)]
struct Original<'a> {
    name: &'static str,
    version: &'a str,
    time: u64,
    monitor: Traffic,
    #[serde(skip_serializing_if = "Option::is_none")]
    ping: Option<i64>,
}

/// The original's stats (`GET /`), field for field
///
/// Nodes are source IPs (client) or client `ip:port` (server); remote nodes are the remote IPs
/// the client saw (the server's are `null`, as the original's). A node is listed in a direction
/// once it has a packet in that direction. `appear` and `lastSeen` are Unix seconds of when the
/// node was first and last seen in either direction. `time` is the uptime in whole seconds;
/// `ping` (client only) is [`Snapshot::ping`] in the original's units.
pub fn original(s: &Snapshot) -> String {
    let local = nodes(s, &s.stats.peers);
    let (remote, ping) = match s.role {
        Role::Client => {
            let r = nodes(s, &s.stats.remotes);
            let remote = Directions {
                r#in: Some(r.r#in),
                out: Some(r.out),
            };
            (remote, Some(s.ping().original()))
        }
        Role::Server => (
            Directions {
                r#in: None,
                out: None,
            },
            None,
        ),
    };
    let body = Original {
        name: s.role.original_name(),
        version: &s.version,
        time: s.uptime().as_secs(),
        monitor: Traffic { local, remote },
        ping,
    };
    serde_json::to_string(&body).expect("plain data serializes")
}

fn nodes(s: &Snapshot, peers: &[PeerStats]) -> Directions<Nodes> {
    let mut d = Directions {
        r#in: Nodes::new(),
        out: Nodes::new(),
    };
    for p in peers {
        let indicator = |c: Counter| Indicator {
            count: c.packets,
            size: c.bytes,
            appear: s.unix_secs(p.first_seen),
            last_seen: s.unix_secs(p.last_seen),
        };
        if p.r#in.packets > 0 {
            d.r#in.insert(p.peer.to_string(), indicator(p.r#in));
        }
        if p.out.packets > 0 {
            d.out.insert(p.peer.to_string(), indicator(p.out));
        }
    }
    d
}

#[derive(Serialize)]
struct Dns<'a> {
    ip: String,
    name: &'a str,
}

impl<'a> From<&'a DnsRecord> for Dns<'a> {
    fn from(r: &'a DnsRecord) -> Self {
        Self {
            ip: r.ip.to_string(),
            name: &r.name,
        }
    }
}

/// The learned DNS names (`GET /dns`): `[{"ip":"1.2.3.4","name":"example.com"},…]`, oldest
/// first; the addresses of A and AAAA records alike (`"2001:db8::1"`)
pub fn dns(s: &Snapshot) -> String {
    let list: Vec<Dns<'_>> = s.dns.iter().map(Dns::from).collect();
    serde_json::to_string(&list).expect("plain data serializes")
}

#[derive(Serialize)]
struct Count {
    packets: u64,
    bytes: u64,
}

impl From<Counter> for Count {
    fn from(c: Counter) -> Self {
        Self {
            packets: c.packets,
            bytes: c.bytes,
        }
    }
}

#[derive(Serialize)]
struct Peer {
    id: String,
    out: Count,
    r#in: Count,
    first_seen: u64,
    last_seen: u64,
    protocol: Option<&'static str>,
}

#[derive(Serialize)]
struct Drop {
    reason: &'static str,
    count: u64,
}

#[derive(Serialize)]
struct Mapping {
    protocol: String,
    client: String,
    inner: String,
    public: String,
    age: u64,
}

#[derive(Serialize)]
struct Nat {
    in_use: usize,
    capacity: usize,
    entries: Vec<Mapping>,
}

#[derive(Serialize)]
struct Kcp {
    retransmissions: u64,
    timeouts: u64,
    fec_recovered: u64,
    fec_errors: u64,
    srtt_ms: f64,
    rto_ms: f64,
    cwnd: u32,
    in_flight: u32,
    wait_snd: usize,
}

#[derive(Serialize)]
struct Api<'a> {
    role: &'static str,
    mode: &'static str,
    name: &'static str,
    version: &'a str,
    uptime: f64,
    ping: Option<i64>,
    rtt_ms: Option<f64>,
    handshakes: u64,
    reconnects: u64,
    server: Option<String>,
    protocol: Option<&'static str>,
    server_switches: u64,
    unopenable: usize,
    traffic: BTreeMap<&'static str, Directions<Count>>,
    peers: Vec<Peer>,
    drops: Vec<Drop>,
    devices: Vec<Device<'a>>,
    nat: Nat,
    kcp: Option<Kcp>,
    dns: Vec<Dns<'a>>,
}

/// One device's capture and injection counters
#[derive(Serialize)]
struct Device<'a> {
    device: &'a str,
    captured: u64,
    capture_dropped: u64,
    interface_dropped: u64,
    injected: u64,
    inject_failed: u64,
    inject_short: u64,
}

/// The dashboard's view (`GET /api/snapshot`)
///
/// `uptime` (seconds, fractional) is when the snapshot was taken: the dashboard divides counter
/// deltas by its deltas. `mode` is the transport (`faketcp` or `tcp`). `ping` and `rtt_ms` are
/// `null` on the server, and so is `server` (the client's server in use; `server_switches`
/// counts its failovers). `protocol` is the client's wire (`ikago` or `ikago2`), and each
/// server peer's once its first payload told. `unopenable` counts the peers whose payloads
/// cannot be opened (wrong password or method). `devices` holds the runner's capture and
/// injection counters per device (frames captured, dropped by the full capture buffer or the
/// interface, injected, refused by the kernel, short batches). `dns` lists the names learned
/// from DNS answers (client), newest first, with the address of an A or AAAA record each.
pub fn api(s: &Snapshot) -> String {
    let st = &s.stats;
    let client = s.role == Role::Client;
    let dir = |out: Counter, r#in: Counter| Directions {
        r#in: r#in.into(),
        out: out.into(),
    };
    let traffic = BTreeMap::from([
        ("tunnel", dir(st.tunnel_tx, st.tunnel_rx)),
        ("inner", dir(st.inner_tx, st.inner_rx)),
        ("local", dir(st.local_tx, st.local_rx)),
    ]);
    let peers = st
        .peers
        .iter()
        .map(|p| Peer {
            id: p.peer.to_string(),
            out: p.out.into(),
            r#in: p.r#in.into(),
            first_seen: s.unix_secs(p.first_seen),
            last_seen: s.unix_secs(p.last_seen),
            protocol: p.protocol.map(|p| p.name()),
        })
        .collect();
    let drops = DropReason::ALL
        .iter()
        .map(|&r| Drop {
            reason: r.label(),
            count: st.drops.get(r),
        })
        .collect();
    let entries = s
        .nat
        .iter()
        .map(|e| Mapping {
            protocol: protocol_name(e.protocol),
            client: e.client.to_string(),
            inner: e.inner.to_string(),
            public: e.public.to_string(),
            age: s.taken.saturating_duration_since(e.since).as_secs(),
        })
        .collect();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let body = Api {
        role: s.role.label(),
        mode: st.transport.name(),
        name: s.role.original_name(),
        version: &s.version,
        uptime: s.uptime().as_secs_f64(),
        ping: client.then(|| s.ping().original()),
        rtt_ms: st.rtt.filter(|_| client).map(ms),
        handshakes: st.handshakes,
        reconnects: st.reconnects,
        server: st.server.map(|a| a.to_string()),
        protocol: st.protocol.map(|p| p.name()),
        server_switches: st.server_switches,
        unopenable: st.unopenable,
        traffic,
        peers,
        drops,
        devices: s
            .devices
            .iter()
            .map(|d| Device {
                device: &d.device,
                captured: d.captured,
                capture_dropped: d.capture_dropped,
                interface_dropped: d.interface_dropped,
                injected: d.injected,
                inject_failed: d.inject_failed,
                inject_short: d.inject_short,
            })
            .collect(),
        nat: Nat {
            in_use: st.nat_mappings,
            capacity: st.nat_capacity,
            entries,
        },
        kcp: st.kcp.map(|k| Kcp {
            retransmissions: k.retransmissions,
            timeouts: k.timeouts,
            fec_recovered: k.fec_recovered,
            fec_errors: k.fec_errors,
            srtt_ms: ms(k.srtt),
            rto_ms: ms(k.rto),
            cwnd: k.cwnd,
            in_flight: k.in_flight,
            wait_snd: k.wait_snd,
        }),
        dns: s.dns.iter().rev().map(Dns::from).collect(),
    };
    serde_json::to_string(&body).expect("plain data serializes")
}

/// `ICMP`, `TCP`, `UDP`, `ICMPv6`, or the protocol number
fn protocol_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        n => n.to_string(),
    }
}
