//! `GET /metrics`: the Prometheus text exposition format 0.0.4, written by hand
//!
//! Every family has its `# HELP` and `# TYPE` lines before its samples; counters end in
//! `_total`; `direction` is `out` (toward the destinations: into the tunnel on the client, out of
//! it on the server) or `in` (back toward the sources). Role-specific families appear only for
//! their role, and the RTT and KCP families only once there is something to report.

use crate::snapshot::{Role, Snapshot};
use ikago_proto::{Counter, DropReason};
use std::fmt::{Display, Write};

/// The `Content-Type` of the format
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric type
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// Appends families to a string; a family's samples must follow its header
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.0.push_str(name);
        for (i, (k, v)) in labels.iter().enumerate() {
            self.0.push(if i == 0 { '{' } else { ',' });
            self.0.push_str(k);
            self.0.push_str("=\"");
            for c in v.chars() {
                match c {
                    '\\' => self.0.push_str("\\\\"),
                    '"' => self.0.push_str("\\\""),
                    '\n' => self.0.push_str("\\n"),
                    c => self.0.push(c),
                }
            }
            self.0.push('"');
        }
        if !labels.is_empty() {
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family of one unlabelled sample
    fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// `<prefix>_packets_total` and `<prefix>_bytes_total`, one sample per row and direction
    fn traffic(&mut self, prefix: &str, what: &str, rows: &[Row<'_>]) {
        for (unit, bytes) in [("packets", false), ("bytes", true)] {
            let name = format!("{prefix}_{unit}_total");
            let help = match bytes {
                false => format!("{what}, in packets"),
                true => format!("{what}, in bytes (IPv4 total length)"),
            };
            self.family(&name, Kind::Counter, &help);
            for row in rows {
                for (direction, c) in [("out", row.out), ("in", row.r#in)] {
                    let mut labels = row.labels.clone();
                    labels.push(("direction", direction));
                    self.sample(&name, &labels, if bytes { c.bytes } else { c.packets });
                }
            }
        }
    }
}

/// The labels and counters of one peer, or of the machine
struct Row<'a> {
    labels: Vec<(&'static str, &'a str)>,
    out: Counter,
    r#in: Counter,
}

impl<'a> Row<'a> {
    fn total(out: Counter, r#in: Counter) -> [Self; 1] {
        [Self {
            labels: Vec::new(),
            out,
            r#in,
        }]
    }
}

/// The runner's counters per device: captured, dropped before the machine saw them (the capture
/// ring full, or the interface), injected and refused
fn devices(e: &mut Exposition, s: &Snapshot) {
    let d = &s.devices;
    if d.is_empty() {
        return;
    }
    e.family(
        "ikago_capture_frames_total",
        Kind::Counter,
        "Frames the device's capture filter passed",
    );
    for c in d.iter() {
        e.sample(
            "ikago_capture_frames_total",
            &[("device", &c.device)],
            c.captured,
        );
    }
    e.family(
        "ikago_capture_drops_total",
        Kind::Counter,
        "Frames lost before the runner read them: its capture buffer was full (buffer) or the \
         interface dropped them (interface)",
    );
    for c in d.iter() {
        for (place, n) in [
            ("buffer", c.capture_dropped),
            ("interface", c.interface_dropped),
        ] {
            e.sample(
                "ikago_capture_drops_total",
                &[("device", &c.device), ("where", place)],
                n,
            );
        }
    }
    e.family(
        "ikago_inject_frames_total",
        Kind::Counter,
        "Frames injected on the device",
    );
    for c in d.iter() {
        e.sample(
            "ikago_inject_frames_total",
            &[("device", &c.device)],
            c.injected,
        );
    }
    e.family(
        "ikago_inject_failures_total",
        Kind::Counter,
        "Frames the kernel refused to inject on the device",
    );
    for c in d.iter() {
        e.sample(
            "ikago_inject_failures_total",
            &[("device", &c.device)],
            c.inject_failed,
        );
    }
    e.family(
        "ikago_inject_short_batches_total",
        Kind::Counter,
        "Injection batches the kernel took only in part (the rest followed in further calls)",
    );
    for c in d.iter() {
        e.sample(
            "ikago_inject_short_batches_total",
            &[("device", &c.device)],
            c.inject_short,
        );
    }
}

/// The metrics of `s`
pub fn render(s: &Snapshot) -> String {
    let st = &s.stats;
    let mut e = Exposition(String::with_capacity(8 * 1024));
    e.family(
        "ikago_info",
        Kind::Gauge,
        "The role and version of this runner",
    );
    e.sample(
        "ikago_info",
        &[("role", s.role.label()), ("version", &s.version)],
        1,
    );
    let uptime = s.uptime().as_secs_f64();
    e.single(
        "ikago_uptime_seconds",
        Kind::Gauge,
        "Time since the runner started",
        uptime,
    );
    e.traffic(
        "ikago_tunnel",
        "FakeTCP frames sent (out) and accepted (in)",
        &Row::total(st.tunnel_tx, st.tunnel_rx),
    );
    e.traffic(
        "ikago_inner",
        "Inner packets sealed into (out) and opened from (in) the tunnel",
        &Row::total(st.inner_tx, st.inner_rx),
    );
    e.traffic(
        "ikago_local",
        "Packets written to (out) and taken from (in) the local side",
        &Row::total(st.local_tx, st.local_rx),
    );
    let (label, prefix, what) = match s.role {
        Role::Client => (
            "source",
            "ikago_source",
            "Inner packets per LAN source: sent into the tunnel (out) and delivered to it (in)",
        ),
        Role::Server => (
            "client",
            "ikago_client",
            "Inner packets per client: received from it (out) and sent to it (in)",
        ),
    };
    let ids: Vec<String> = st.peers.iter().map(|p| p.peer.to_string()).collect();
    let rows: Vec<Row<'_>> = ids
        .iter()
        .zip(&st.peers)
        .map(|(id, p)| Row {
            labels: vec![(label, id.as_str())],
            out: p.out,
            r#in: p.r#in,
        })
        .collect();
    e.traffic(prefix, what, &rows);
    let wires: Vec<(&str, &str)> = match s.role {
        Role::Client => st.protocol.map(|p| ("", p.name())).into_iter().collect(),
        Role::Server => ids
            .iter()
            .zip(&st.peers)
            .filter_map(|(id, p)| Some((id.as_str(), p.protocol?.name())))
            .collect(),
    };
    if !wires.is_empty() {
        e.family(
            "ikago_protocol",
            Kind::Gauge,
            "The wire spoken (1 for its name): the client's, or each client's on the server",
        );
        for (id, name) in wires {
            match s.role {
                Role::Client => e.sample("ikago_protocol", &[("protocol", name)], 1),
                Role::Server => {
                    e.sample("ikago_protocol", &[("client", id), ("protocol", name)], 1)
                }
            }
        }
    }
    e.family(
        "ikago_drops_total",
        Kind::Counter,
        "Frames or packets not forwarded, by reason",
    );
    for &r in DropReason::ALL {
        e.sample(
            "ikago_drops_total",
            &[("reason", r.label())],
            st.drops.get(r),
        );
    }
    devices(&mut e, s);
    e.single(
        "ikago_handshakes_total",
        Kind::Counter,
        "Handshakes completed (FakeTCP), or tunnel connections opened (tcp mode)",
        st.handshakes,
    );
    e.family(
        "ikago_mode",
        Kind::Gauge,
        "The transport (1 for the one in use): faketcp or tcp",
    );
    e.sample("ikago_mode", &[("mode", st.transport.name())], 1);
    e.single(
        "ikago_unopenable_peers",
        Kind::Gauge,
        "Peers whose tunnel payloads cannot be opened, from a wrong password or method (client: \
         the server, 0 or 1; server: clients)",
        st.unopenable,
    );
    match s.role {
        Role::Client => client(&mut e, s),
        Role::Server => {
            e.single(
                "ikago_nat_mappings",
                Kind::Gauge,
                "NAT mappings in use",
                st.nat_mappings,
            );
            e.single(
                "ikago_nat_capacity",
                Kind::Gauge,
                "Size of the NAT pools (TCP, UDP and ICMP)",
                st.nat_capacity,
            );
        }
    }
    if let Some(k) = st.kcp {
        let counters = [
            (
                "retransmissions",
                "KCP segments transmitted again",
                k.retransmissions,
            ),
            (
                "timeouts",
                "KCP retransmissions after a timeout",
                k.timeouts,
            ),
            (
                "fec_recovered",
                "Data shards rebuilt by FEC",
                k.fec_recovered,
            ),
            (
                "fec_errors",
                "Rebuilt shards that were invalid or refused",
                k.fec_errors,
            ),
        ];
        for (name, help, v) in counters {
            e.single(&format!("ikago_kcp_{name}_total"), Kind::Counter, help, v);
        }
        let seconds = [
            ("srtt", "KCP smoothed RTT", k.srtt),
            ("rto", "KCP retransmission timeout", k.rto),
        ];
        for (name, help, v) in seconds {
            let name = format!("ikago_kcp_{name}_seconds");
            e.single(&name, Kind::Gauge, help, v.as_secs_f64());
        }
        let segments = [
            ("cwnd", "KCP congestion window", k.cwnd as usize),
            (
                "in_flight",
                "KCP segments sent and not yet acknowledged",
                k.in_flight as usize,
            ),
            ("queued", "KCP segments queued or in flight", k.wait_snd),
        ];
        for (name, help, v) in segments {
            e.single(&format!("ikago_kcp_{name}_segments"), Kind::Gauge, help, v);
        }
    }
    e.0
}

fn client(e: &mut Exposition, s: &Snapshot) {
    e.single(
        "ikago_reconnects_total",
        Kind::Counter,
        "Times the server was lost and a new handshake began",
        s.stats.reconnects,
    );
    e.single(
        "ikago_server_switches_total",
        Kind::Counter,
        "Times the tunnel moved to another server (failover)",
        s.stats.server_switches,
    );
    if let Some(server) = s.stats.server {
        e.family(
            "ikago_active_server",
            Kind::Gauge,
            "The server in use (1 for its address)",
        );
        e.sample("ikago_active_server", &[("server", &server.to_string())], 1);
    }
    if let (Some(rtt), Some(at)) = (s.stats.rtt, s.rtt_refreshed) {
        e.single(
            "ikago_rtt_seconds",
            Kind::Gauge,
            "Latest RTT to the server (keepalive probes timed with TCP timestamps)",
            rtt.as_secs_f64(),
        );
        e.single(
            "ikago_rtt_age_seconds",
            Kind::Gauge,
            "Time since the RTT was last measured",
            s.taken.saturating_duration_since(at).as_secs_f64(),
        );
    }
}
