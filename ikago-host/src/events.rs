//! The machines' events as log lines in the original's words (reference §11), rate-limited
//!
//! An attacker can make a machine report the same kind of event at packet rate (spoofed
//! handshakes, say), so each kind of line gets [`BURST`] lines per [`WINDOW`]; the rest are only
//! counted, and once the window is over one line says how many of that kind were left out. The
//! count is reported with the next line of any kind, or by [`flush`] at exit. A suppressed event
//! costs a counter increment: its line is never formatted.

use ikago_monitor::Role;
use ikago_proto::{DropReason, Event, PeerLostReason};
use log::Level;
use log::kv::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines of one kind logged per window; the rest are counted
pub const BURST: u32 = 5;
/// The window of [`BURST`]
pub const WINDOW: Duration = Duration::from_secs(1);

/// The budget of the process's log, which is process-wide too
static LIMITER: Mutex<Limiter> = Mutex::new(Limiter::new());

/// Logs one event of a `role` machine: connections at info, per-flow detail (NAT, ARP, retries)
/// at verbose; a kind of line over its budget is counted instead
pub fn log(role: Role, e: &Event) {
    let mut limiter = LIMITER.lock().unwrap_or_else(|p| p.into_inner());
    let (kind, level) = kind(role, e);
    if limiter.admit(kind, level, Instant::now(), &mut emit) {
        let (level, line) = line(role, e);
        crate::logging::with_fields(level, &line, &fields(e));
    }
}

/// Reports every count of suppressed lines not reported yet (at exit)
pub fn flush() {
    LIMITER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .flush_all(&mut emit);
}

/// Writes a line about suppressed lines
fn emit(level: Level, line: &str) {
    log::log!(level, "{line}");
}

/// What lines are counted together: one per event kind, and drops per reason (the machine
/// reports each reason at most once per second already)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Lines starting with these words
    Line(&'static str),
    /// `Drop N packet(s): reason`
    Drop(DropReason),
}

/// The budget of each kind of line
#[derive(Debug)]
struct Limiter {
    slots: Vec<Slot>,
}

/// One kind's window
#[derive(Debug)]
struct Slot {
    kind: Kind,
    level: Level,
    /// When the window began
    since: Instant,
    /// Lines logged in it
    logged: u32,
    /// Lines counted instead, not reported yet
    suppressed: u64,
}

impl Slot {
    /// The line that reports the suppressed count, which it then clears
    fn report(&mut self, emit: &mut impl FnMut(Level, &str)) {
        if self.suppressed > 0 {
            let what = match self.kind {
                Kind::Line(words) => words.to_owned(),
                Kind::Drop(r) => format!("Drop packet(s): {}", r.label()),
            };
            let s = if self.suppressed == 1 { "" } else { "s" };
            emit(
                self.level,
                &format!("Suppressed {} more \"{what}\" line{s}", self.suppressed),
            );
            self.suppressed = 0;
        }
    }
}

impl Limiter {
    const fn new() -> Self {
        Self { slots: Vec::new() }
    }

    /// Whether a line of `kind` at `now` may be logged; reports, through `emit`, the counts of
    /// every kind whose window is over (this kind's first, before its line)
    fn admit(
        &mut self,
        kind: Kind,
        level: Level,
        now: Instant,
        emit: &mut impl FnMut(Level, &str),
    ) -> bool {
        for slot in &mut self.slots {
            if now.saturating_duration_since(slot.since) >= WINDOW {
                slot.report(emit);
                if slot.kind == kind {
                    slot.since = now;
                    slot.logged = 0;
                }
            }
        }
        let slot = match self.slots.iter_mut().position(|s| s.kind == kind) {
            Some(i) => &mut self.slots[i],
            None => {
                self.slots.push(Slot {
                    kind,
                    level,
                    since: now,
                    logged: 0,
                    suppressed: 0,
                });
                self.slots.last_mut().expect("just pushed")
            }
        };
        if slot.logged < BURST {
            slot.logged += 1;
            true
        } else {
            slot.suppressed += 1;
            false
        }
    }

    /// Reports every count not reported yet
    fn flush_all(&mut self, emit: &mut impl FnMut(Level, &str)) {
        for slot in &mut self.slots {
            slot.report(emit);
        }
    }
}

/// The kind of the line of a `role` machine's event, and its level
fn kind(role: Role, e: &Event) -> (Kind, Level) {
    let (words, level) = match e {
        Event::Connecting { retry: 0, .. } => ("Connect to server", Level::Info),
        Event::Connecting { .. } => ("Send TCP SYN to server again", Level::Debug),
        Event::Connected { .. } => ("Connected to server", Level::Info),
        Event::PeerLost {
            reason: PeerLostReason::Reset,
            ..
        } => ("Receive TCP RST from server", Level::Error),
        Event::PeerLost {
            reason: PeerLostReason::Timeout,
            ..
        } => ("Cannot receive response from server", Level::Error),
        Event::PeerLost {
            reason: PeerLostReason::Closed,
            ..
        } => ("Connection to server is closed", Level::Error),
        Event::ServerSwitched { .. } => ("Switch to server", Level::Warn),
        Event::ClientConnected { .. } => ("Connect from client", Level::Info),
        Event::ClientExpired { .. } | Event::ClientDisconnected { .. } => {
            ("Disconnect from client", Level::Info)
        }
        Event::SourceJoined { .. } => ("Device joined the network", Level::Info),
        Event::ArpReplied { .. } => ("Reply an ARP request", Level::Debug),
        Event::NdpReplied { requester, .. } if requester.is_unspecified() => {
            ("Defend a published address", Level::Warn)
        }
        Event::NdpReplied { .. } => ("Reply a neighbour solicitation", Level::Debug),
        Event::NeighborResolved { .. } => ("Resolve", Level::Debug),
        Event::NatMapped { .. } => ("NAT", Level::Debug),
        Event::NatExpired { .. } => ("Recycle NAT", Level::Debug),
        Event::Unopenable { .. } => match role {
            Role::Client => ("Server replies cannot be opened", Level::Error),
            Role::Server => ("Payloads from client cannot be opened", Level::Warn),
        },
        Event::PathMtuLowered { .. } => ("Lower the frame size", Level::Info),
        Event::Dropped { reason, .. } => return (Kind::Drop(*reason), Level::Warn),
        _ => ("Other event", Level::Debug),
    };
    (Kind::Line(words), level)
}

/// The level and text of the line of a `role` machine's event; none holds a secret
pub fn line(role: Role, e: &Event) -> (Level, String) {
    let text = match e {
        Event::Connecting { server, retry: 0 } => format!("Connect to server {server}"),
        Event::Connecting { server, retry } => {
            format!("Send TCP SYN to server {server} again (retry {retry})")
        }
        Event::Connected { server, rtt } => {
            format!("Connected to server {server} in {} ms", rtt.as_millis())
        }
        Event::PeerLost {
            server,
            reason: PeerLostReason::Reset,
        } => format!("Receive TCP RST from server {server}, reconnecting"),
        Event::PeerLost {
            server,
            reason: PeerLostReason::Timeout,
        } => format!("Cannot receive response from server {server}, is your network down?"),
        Event::PeerLost {
            server,
            reason: PeerLostReason::Closed,
        } => format!("Connection to server {server} is closed, reconnecting"),
        Event::ServerSwitched { from, to } => format!("Switch from server {from} to {to}"),
        Event::ClientConnected { client } => format!("Connect from client {client}"),
        Event::ClientExpired { client } => format!("Disconnect from client {client} (silent)"),
        Event::ClientDisconnected { client } => format!("Disconnect from client {client}"),
        Event::SourceJoined { ip, mac, device } => {
            format!("Device {ip} [{mac}] joined the network on {device}")
        }
        Event::ArpReplied { publish, requester } => {
            format!("Reply an ARP request for {publish} from {requester}")
        }
        Event::NdpReplied { publish, requester } if requester.is_unspecified() => format!(
            "Defend published address {publish}: a LAN device probed for it (duplicate address \
             detection) and is told it is in use"
        ),
        Event::NdpReplied { publish, requester } => {
            format!("Reply a neighbour solicitation for {publish} from {requester}")
        }
        Event::NeighborResolved { ip, mac } => format!("Resolve {ip} at [{mac}]"),
        Event::NatMapped {
            inner,
            public,
            protocol,
            ..
        } => format!("NAT {inner} -> {public} ({})", protocol_name(*protocol)),
        Event::NatExpired { public, protocol } => {
            format!("Recycle NAT {public} ({})", protocol_name(*protocol))
        }
        Event::Unopenable { peer, packets } => match role {
            Role::Client => format!(
                "Server replies cannot be opened: wrong password or method? ({packets} \
                 packet(s) with server {peer} got no reply that opens)"
            ),
            Role::Server => format!(
                "Payloads from client {peer} cannot be opened: wrong password or method? \
                 ({packets} packet(s))"
            ),
        },
        Event::PathMtuLowered { peer, mtu } => format!(
            "Lower the frame size toward {peer} to {mtu} Bytes (ICMPv6 Packet Too Big): larger \
             frames leave in IPv6 fragments"
        ),
        Event::Dropped { reason, count } => {
            format!("Drop {count} packet(s): {}", reason.label())
        }
        other => format!("{other:?}"),
    };
    (kind(role, e).1, text)
}

/// The fields of an event's line, which `--log-format json` writes apart from its text: `event`
/// (the kind, in snake case) and the event's own values (addresses as text, counts as numbers)
pub fn fields(e: &Event) -> Vec<(&'static str, Value<'_>)> {
    let (event, mut fields): (&str, Vec<(&str, Value<'_>)>) = match e {
        Event::Connecting { server, retry } => (
            "connecting",
            vec![
                ("server", Value::from_display(server)),
                ("retry", (*retry).into()),
            ],
        ),
        Event::Connected { server, rtt } => (
            "connected",
            vec![
                ("server", Value::from_display(server)),
                (
                    "rtt_ms",
                    u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX).into(),
                ),
            ],
        ),
        Event::PeerLost { server, reason } => (
            "peer_lost",
            vec![
                ("server", Value::from_display(server)),
                (
                    "reason",
                    match reason {
                        PeerLostReason::Reset => "reset",
                        PeerLostReason::Timeout => "timeout",
                        PeerLostReason::Closed => "closed",
                    }
                    .into(),
                ),
            ],
        ),
        Event::ServerSwitched { from, to } => (
            "server_switched",
            vec![
                ("from", Value::from_display(from)),
                ("to", Value::from_display(to)),
            ],
        ),
        Event::ClientConnected { client } => (
            "client_connected",
            vec![("client", Value::from_display(client))],
        ),
        Event::ClientExpired { client } => (
            "client_expired",
            vec![("client", Value::from_display(client))],
        ),
        Event::ClientDisconnected { client } => (
            "client_disconnected",
            vec![("client", Value::from_display(client))],
        ),
        Event::SourceJoined { ip, mac, device } => (
            "source_joined",
            vec![
                ("ip", Value::from_display(ip)),
                ("mac", Value::from_display(mac)),
                ("device", device.as_str().into()),
            ],
        ),
        Event::ArpReplied { publish, requester } => (
            "arp_replied",
            vec![
                ("publish", Value::from_display(publish)),
                ("requester", Value::from_display(requester)),
            ],
        ),
        Event::NdpReplied { publish, requester } => (
            "ndp_replied",
            vec![
                ("publish", Value::from_display(publish)),
                ("requester", Value::from_display(requester)),
            ],
        ),
        Event::NeighborResolved { ip, mac } => (
            "neighbor_resolved",
            vec![
                ("ip", Value::from_display(ip)),
                ("mac", Value::from_display(mac)),
            ],
        ),
        Event::NatMapped {
            client,
            protocol,
            inner,
            public,
        } => (
            "nat_mapped",
            vec![
                ("client", Value::from_display(client)),
                ("protocol", (*protocol).into()),
                ("inner", Value::from_display(inner)),
                ("public", Value::from_display(public)),
            ],
        ),
        Event::NatExpired { protocol, public } => (
            "nat_expired",
            vec![
                ("protocol", (*protocol).into()),
                ("public", Value::from_display(public)),
            ],
        ),
        Event::DnsRecord { name, ip } => (
            "dns_record",
            vec![
                ("name", name.as_str().into()),
                ("ip", Value::from_display(ip)),
            ],
        ),
        Event::Unopenable { peer, packets } => (
            "unopenable",
            vec![
                ("peer", Value::from_display(peer)),
                ("packets", (*packets).into()),
            ],
        ),
        Event::PathMtuLowered { peer, mtu } => (
            "path_mtu_lowered",
            vec![("peer", Value::from_display(peer)), ("mtu", (*mtu).into())],
        ),
        Event::Dropped { reason, count } => (
            "dropped",
            vec![
                ("reason", reason.label().into()),
                ("count", (*count).into()),
            ],
        ),
        _ => ("other", Vec::new()),
    };
    fields.insert(0, ("event", event.into()));
    fields
}

/// `TCP`, `UDP`, `ICMP` or the number
fn protocol_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        n => format!("protocol {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikago_proto::DropReason;
    use std::time::Duration;

    #[test]
    fn lines_users_expect() {
        let server = "1.2.3.4:18081".parse().unwrap();
        let e = Event::Connected {
            server,
            rtt: Duration::from_micros(12_400),
        };
        assert_eq!(
            line(Role::Client, &e),
            (
                Level::Info,
                "Connected to server 1.2.3.4:18081 in 12 ms".into()
            )
        );
        let e = Event::ClientConnected {
            client: "198.18.2.1:50000".parse().unwrap(),
        };
        assert_eq!(
            line(Role::Server, &e).1,
            "Connect from client 198.18.2.1:50000"
        );
        let e = Event::NatMapped {
            client: "198.18.2.1:50000".parse().unwrap(),
            protocol: 17,
            inner: "198.18.11.2:40000".parse().unwrap(),
            public: "198.18.13.1:49152".parse().unwrap(),
        };
        assert_eq!(
            line(Role::Server, &e),
            (
                Level::Debug,
                "NAT 198.18.11.2:40000 -> 198.18.13.1:49152 (UDP)".into()
            )
        );
        let e = Event::Dropped {
            reason: DropReason::DecryptFailed,
            count: 3,
        };
        assert_eq!(
            line(Role::Server, &e),
            (Level::Warn, "Drop 3 packet(s): decrypt_failed".into())
        );
        let publish = "fd00:21::fe".parse().unwrap();
        let e = Event::NdpReplied {
            publish,
            requester: "fd00:21::2".parse().unwrap(),
        };
        assert_eq!(
            line(Role::Client, &e),
            (
                Level::Debug,
                "Reply a neighbour solicitation for fd00:21::fe from fd00:21::2".into()
            )
        );
        let e = Event::NdpReplied {
            publish,
            requester: std::net::Ipv6Addr::UNSPECIFIED,
        };
        assert_eq!(
            line(Role::Client, &e),
            (
                Level::Warn,
                "Defend published address fd00:21::fe: a LAN device probed for it (duplicate \
                 address detection) and is told it is in use"
                    .into()
            )
        );
    }

    #[test]
    fn fields_name_the_event_and_its_values() {
        let shown = |e: &Event| -> Vec<(String, String)> {
            fields(e)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_string()))
                .collect()
        };
        let e = Event::Connected {
            server: "198.18.0.1:18081".parse().unwrap(),
            rtt: Duration::from_micros(12_400),
        };
        let f = fields(&e);
        assert_eq!(f[2].1.to_u64(), Some(12), "rtt_ms is a number");
        assert_eq!(
            shown(&e),
            [
                ("event".into(), "connected".into()),
                ("server".into(), "198.18.0.1:18081".into()),
                ("rtt_ms".into(), "12".into())
            ]
        );
        let e = Event::Dropped {
            reason: DropReason::DecryptFailed,
            count: 3,
        };
        assert_eq!(
            shown(&e),
            [
                ("event".into(), "dropped".into()),
                ("reason".into(), "decrypt_failed".into()),
                ("count".into(), "3".into())
            ]
        );
        let e = Event::PeerLost {
            server: "198.18.0.1:18081".parse().unwrap(),
            reason: PeerLostReason::Reset,
        };
        assert_eq!(shown(&e)[2], ("reason".into(), "reset".into()));
        let e = Event::PathMtuLowered {
            peer: "[2001:db8:22::2]:50000".parse().unwrap(),
            mtu: 1280,
        };
        assert_eq!(
            shown(&e),
            [
                ("event".into(), "path_mtu_lowered".into()),
                ("peer".into(), "[2001:db8:22::2]:50000".into()),
                ("mtu".into(), "1280".into())
            ]
        );
        assert_eq!(
            line(Role::Server, &e),
            (
                Level::Info,
                "Lower the frame size toward [2001:db8:22::2]:50000 to 1280 Bytes (ICMPv6 Packet \
                 Too Big): larger frames leave in IPv6 fragments"
                    .into()
            )
        );
    }

    #[test]
    fn unopenable_peers_say_why_on_either_side() {
        let e = Event::Unopenable {
            peer: "198.18.2.2:18081".parse().unwrap(),
            packets: 12,
        };
        assert_eq!(
            line(Role::Client, &e),
            (
                Level::Error,
                "Server replies cannot be opened: wrong password or method? (12 packet(s) with \
                 server 198.18.2.2:18081 got no reply that opens)"
                    .into()
            )
        );
        let e = Event::Unopenable {
            peer: "198.18.2.1:50000".parse().unwrap(),
            packets: 3,
        };
        assert_eq!(
            line(Role::Server, &e),
            (
                Level::Warn,
                "Payloads from client 198.18.2.1:50000 cannot be opened: wrong password or \
                 method? (3 packet(s))"
                    .into()
            )
        );
    }

    /// A limiter's decisions and report lines for `events` at their instants
    fn run(limiter: &mut Limiter, events: &[(Duration, &Event)], t0: Instant) -> Vec<String> {
        let mut out = Vec::new();
        for &(at, e) in events {
            let (k, level) = kind(Role::Server, e);
            let mut emit = |_: Level, l: &str| out.push(l.to_owned());
            if limiter.admit(k, level, t0 + at, &mut emit) {
                out.push(line(Role::Server, e).1);
            }
        }
        out
    }

    #[test]
    fn repeated_lines_are_counted_and_the_count_reported_later() {
        let t0 = Instant::now();
        let client = |i: u16| Event::ClientConnected {
            client: std::net::SocketAddr::from(([198, 18, 2, 1], 50000 + i)),
        };
        let flood: Vec<Event> = (0..100).map(client).collect();
        let mut limiter = Limiter::new();
        // 100 in the first half second: the first BURST logged
        let first: Vec<_> = flood
            .iter()
            .enumerate()
            .map(|(i, e)| (Duration::from_millis(5 * i as u64), e))
            .collect();
        let out = run(&mut limiter, &first, t0);
        assert_eq!(out.len(), BURST as usize);
        assert_eq!(out[0], "Connect from client 198.18.2.1:50000");
        // another kind has a budget of its own, and its line reports the count once the window
        // is over
        let drop = Event::Dropped {
            reason: DropReason::DecryptFailed,
            count: 7,
        };
        let out = run(&mut limiter, &[(Duration::from_millis(600), &drop)], t0);
        assert_eq!(out, ["Drop 7 packet(s): decrypt_failed"]);
        let out = run(&mut limiter, &[(Duration::from_millis(1200), &drop)], t0);
        assert_eq!(
            out,
            [
                "Suppressed 95 more \"Connect from client\" lines",
                "Drop 7 packet(s): decrypt_failed"
            ]
        );
        // a new window for the flooded kind
        let out = run(
            &mut limiter,
            &[(Duration::from_millis(1300), &flood[0])],
            t0,
        );
        assert_eq!(out, ["Connect from client 198.18.2.1:50000"]);
        let again: Vec<_> = (0..6)
            .map(|_| (Duration::from_millis(1400), &flood[1]))
            .collect();
        let out = run(&mut limiter, &again, t0);
        assert_eq!(
            out.len(),
            BURST as usize - 1,
            "one of the budget used already"
        );
        let mut out = Vec::new();
        limiter.flush_all(&mut |_, l| out.push(l.to_owned()));
        assert_eq!(out, ["Suppressed 2 more \"Connect from client\" lines"]);
        limiter.flush_all(&mut |_, l| panic!("reported twice: {l}"));
    }

    #[test]
    fn lines_within_the_budget_are_all_logged() {
        let t0 = Instant::now();
        let e = Event::ClientExpired {
            client: "198.18.2.1:50000".parse().unwrap(),
        };
        let events: Vec<_> = (0..50)
            .map(|i| (Duration::from_millis(1000 / u64::from(BURST) * i), &e))
            .collect();
        let mut limiter = Limiter::new();
        assert_eq!(run(&mut limiter, &events, t0).len(), 50);
        limiter.flush_all(&mut |_, l| panic!("nothing suppressed: {l}"));
    }
}
