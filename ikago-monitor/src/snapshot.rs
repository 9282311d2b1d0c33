//! What the monitor serves: a [`Snapshot`] built once per second by the engine thread's
//! [`Recorder`]

use ikago_proto::{Event, Stats};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Keepalive probe interval of the core's default tuning (`TcpTuning::keepalive`)
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// How late the next RTT sample may be, past the probe interval, before `ping` reports it stale
///
/// The original pinged every second and reported −2 when no reply came within 2 s of the last
/// one. Our samples come from the client's keepalive probes (every [`DEFAULT_PROBE_INTERVAL`]
/// by default, answered by our server and timed with TCP timestamps), so the same 2 s of grace
/// is counted from when the next sample is due: see [`Snapshot::ping`].
pub const STALE_GRACE: Duration = Duration::from_secs(2);

/// DNS records kept; when full, the least recently confirmed one is forgotten
pub const DNS_CAP: usize = 1024;

/// NAT mappings kept for the table; mappings made while it is full are counted in
/// [`Stats::nat_mappings`] but not listed
pub const NAT_TABLE_CAP: usize = 1024;

/// Which machine the runner drives
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The LAN side: sources, remotes and `ping`
    Client,
    /// The public side: clients and the NAT
    Server,
}

impl Role {
    /// `"IkaGo-client"` or `"IkaGo-server"`, the `name` of the original's JSON
    pub fn original_name(self) -> &'static str {
        match self {
            Self::Client => "IkaGo-client",
            Self::Server => "IkaGo-server",
        }
    }

    /// `"client"` or `"server"`
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Server => "server",
        }
    }
}

/// A name learned from a DNS answer in the return path (client only)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// The name asked for
    pub name: String,
    /// One address of its A or AAAA records
    pub ip: IpAddr,
}

/// One mapping of the server's NAT
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatEntry {
    /// IP protocol number (1 ICMP, 6 TCP, 17 UDP, 58 ICMPv6)
    pub protocol: u8,
    /// The client that owns it
    pub client: SocketAddr,
    /// The inner source address and port (ICMP id); IPv6 for a NAT66 mapping
    pub inner: SocketAddr,
    /// The public address and port (ICMP id)
    pub public: SocketAddr,
    /// When it was made
    pub since: Instant,
}

/// The RTT to the server as the original's `ping` reports it
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ping {
    /// No sample yet: the server never answered (−1)
    Never,
    /// No fresh sample within [`STALE_GRACE`] after the next one was due (−2)
    Stale,
    /// The latest sample
    Fresh(Duration),
}

impl Ping {
    /// The original's value: whole milliseconds, −1 never replied, −2 stale
    pub fn original(self) -> i64 {
        match self {
            Self::Never => -1,
            Self::Stale => -2,
            Self::Fresh(rtt) => i64::try_from(rtt.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// What the runner counted for one device's capture and injection: where frames die outside the
/// machine (the kernel's capture ring, the interface, the injection call)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceCounters {
    /// The interface name
    pub device: String,
    /// Frames the capture's filter passed (libpcap's `ps_recv`)
    pub captured: u64,
    /// Frames dropped because the capture ring was full (`ps_drop`)
    pub capture_dropped: u64,
    /// Frames the interface or its driver dropped (`ps_ifdrop`)
    pub interface_dropped: u64,
    /// Frames injected
    pub injected: u64,
    /// Frames the kernel refused to inject
    pub inject_failed: u64,
    /// Injection batches the kernel took only in part
    pub inject_short: u64,
}

impl DeviceCounters {
    /// Adds another engine's counters of the same device (`--threads`: each engine captures and
    /// injects on every device with handles of its own)
    pub fn absorb(&mut self, other: &Self) {
        let Self {
            device: _,
            captured,
            capture_dropped,
            interface_dropped,
            injected,
            inject_failed,
            inject_short,
        } = other;
        self.captured += captured;
        self.capture_dropped += capture_dropped;
        self.interface_dropped += interface_dropped;
        self.injected += injected;
        self.inject_failed += inject_failed;
        self.inject_short += inject_short;
    }
}

/// Everything the monitor shows, taken at one instant; immutable once published
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// Client or server
    pub role: Role,
    /// The runner's version, reported as `version`
    pub version: Arc<str>,
    /// When the runner started
    pub start: Instant,
    /// The wall-clock time of `start`: the anchor that turns instants into Unix seconds
    pub start_wall: SystemTime,
    /// When this snapshot was taken
    pub taken: Instant,
    /// The machine's counters at `taken`
    pub stats: Stats,
    /// When [`Stats::rtt`] last changed or the handshake measured it (client)
    pub rtt_refreshed: Option<Instant>,
    /// Interval of the keepalive probes that measure the RTT
    pub probe_interval: Duration,
    /// DNS records, oldest first (client)
    pub dns: Arc<[DnsRecord]>,
    /// NAT mappings by protocol and public address (server)
    pub nat: Arc<[NatEntry]>,
    /// The runner's capture and injection counters per device, in device order (empty until
    /// the runner sets them)
    pub devices: Arc<[DeviceCounters]>,
}

impl Snapshot {
    /// Time since the runner started, at `taken`
    pub fn uptime(&self) -> Duration {
        self.taken.saturating_duration_since(self.start)
    }

    /// `at` in Unix seconds, through the `start`/`start_wall` anchor
    pub fn unix_secs(&self, at: Instant) -> u64 {
        let wall = match at.checked_duration_since(self.start) {
            Some(after) => self.start_wall.checked_add(after),
            None => self.start_wall.checked_sub(self.start.duration_since(at)),
        };
        wall.and_then(|w| w.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    }

    /// Adds the snapshot of another engine of the same server (`--threads`), so that the monitor
    /// shows one server: counters add up ([`Stats::absorb`]), NAT mappings are listed together
    /// (by protocol and public address, at most [`NAT_TABLE_CAP`]), DNS records follow one
    /// another, device counters add up device by device; the later of the two instants stays
    pub fn absorb(&mut self, other: &Self) {
        self.stats.absorb(&other.stats);
        self.taken = self.taken.max(other.taken);
        self.rtt_refreshed = self.rtt_refreshed.max(other.rtt_refreshed);
        if !other.dns.is_empty() {
            self.dns = self.dns.iter().chain(other.dns.iter()).cloned().collect();
        }
        if !other.nat.is_empty() {
            let mut nat: Vec<NatEntry> = self.nat.iter().chain(other.nat.iter()).copied().collect();
            nat.sort_by_key(|e| (e.protocol, e.public));
            nat.truncate(NAT_TABLE_CAP);
            self.nat = nat.into();
        }
        if self.devices.is_empty() {
            self.devices = other.devices.clone();
        } else if !other.devices.is_empty() {
            let mut devices = self.devices.to_vec();
            for (mine, theirs) in devices.iter_mut().zip(other.devices.iter()) {
                mine.absorb(theirs);
            }
            self.devices = devices.into();
        }
    }

    /// The RTT at `taken`, in the original's terms
    ///
    /// - [`Ping::Never`] (−1) while [`Stats::rtt`] is `None`: the server never answered;
    /// - [`Ping::Stale`] (−2) when `taken − rtt_refreshed > probe_interval + STALE_GRACE`
    ///   (7 s with the defaults): the probe that was due got no answer in time;
    /// - [`Ping::Fresh`] otherwise, reported in whole milliseconds (truncated, as the original).
    ///
    /// [`Recorder`] dates a refresh at the snapshot that first shows the new sample, so the
    /// refresh lags the answer by at most one snapshot period (1 s): a healthy link shows
    /// refreshes 5 ± 1 s apart, within the 7 s bound.
    pub fn ping(&self) -> Ping {
        match (self.stats.rtt, self.rtt_refreshed) {
            (None, _) => Ping::Never,
            (Some(rtt), Some(at))
                if self.taken.saturating_duration_since(at)
                    <= self.probe_interval + STALE_GRACE =>
            {
                Ping::Fresh(rtt)
            }
            (Some(_), _) => Ping::Stale,
        }
    }
}

/// Builds snapshots on the engine thread: remembers what only events tell (DNS names, the NAT
/// table, when the RTT was refreshed) and adds it to [`Stats`]
#[derive(Debug)]
pub struct Recorder {
    role: Role,
    version: Arc<str>,
    start: Instant,
    start_wall: SystemTime,
    probe_interval: Duration,
    dns: VecDeque<DnsRecord>,
    nat: BTreeMap<(u8, SocketAddr), NatEntry>,
    /// Shared with the snapshots until the next change
    dns_view: Option<Arc<[DnsRecord]>>,
    nat_view: Option<Arc<[NatEntry]>>,
    last_rtt: Option<Duration>,
    rtt_refreshed: Option<Instant>,
}

impl Recorder {
    /// A recorder for a runner that started at `start`, which the wall clock read as
    /// `start_wall`; probes are assumed every [`DEFAULT_PROBE_INTERVAL`]
    pub fn new(role: Role, version: &str, start: Instant, start_wall: SystemTime) -> Self {
        Self {
            role,
            version: version.into(),
            start,
            start_wall,
            probe_interval: DEFAULT_PROBE_INTERVAL,
            dns: VecDeque::new(),
            nat: BTreeMap::new(),
            dns_view: None,
            nat_view: None,
            last_rtt: None,
            rtt_refreshed: None,
        }
    }

    /// Sets the keepalive interval the client was configured with (`TcpTuning::keepalive`)
    pub fn with_probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// Takes note of an event from `poll_output`, at `now`; events it does not use are ignored
    pub fn record(&mut self, event: &Event, now: Instant) {
        match event {
            Event::DnsRecord { name, ip } => self.record_dns(name, *ip),
            Event::NatMapped {
                client,
                protocol,
                inner,
                public,
            } => {
                let key = (*protocol, *public);
                if self.nat.len() < NAT_TABLE_CAP || self.nat.contains_key(&key) {
                    let entry = NatEntry {
                        protocol: *protocol,
                        client: *client,
                        inner: *inner,
                        public: *public,
                        since: now,
                    };
                    self.nat.insert(key, entry);
                    self.nat_view = None;
                }
            }
            Event::NatExpired { protocol, public } => {
                self.nat.remove(&(*protocol, *public));
                self.nat_view = None;
            }
            Event::Connected { rtt, .. } => {
                self.last_rtt = Some(*rtt);
                self.rtt_refreshed = Some(now);
            }
            _ => {}
        }
    }

    fn record_dns(&mut self, name: &str, ip: IpAddr) {
        if let Some(i) = self.dns.iter().position(|r| r.ip == ip) {
            self.dns.remove(i);
        } else if self.dns.len() == DNS_CAP {
            self.dns.pop_front();
        }
        self.dns.push_back(DnsRecord {
            name: name.to_owned(),
            ip,
        });
        self.dns_view = None;
    }

    /// A snapshot of `stats`, taken at `now`; call it once per second
    ///
    /// The RTT counts as refreshed at `now` when [`Stats::rtt`] differs from the previous
    /// snapshot's (or when [`Event::Connected`] reported it), so its age is known to the
    /// snapshot period. Two successive samples of exactly the same duration (nanoseconds in a
    /// live run) count as one.
    pub fn snapshot(&mut self, stats: Stats, now: Instant) -> Snapshot {
        if stats.rtt.is_some() && stats.rtt != self.last_rtt {
            self.rtt_refreshed = Some(now);
        }
        self.last_rtt = stats.rtt;
        let dns = self
            .dns_view
            .get_or_insert_with(|| self.dns.iter().cloned().collect())
            .clone();
        let nat = self
            .nat_view
            .get_or_insert_with(|| self.nat.values().copied().collect())
            .clone();
        Snapshot {
            role: self.role,
            version: self.version.clone(),
            start: self.start,
            start_wall: self.start_wall,
            taken: now,
            stats,
            rtt_refreshed: self.rtt_refreshed,
            probe_interval: self.probe_interval,
            dns,
            nat,
            devices: Arc::new([]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn recorder(start: Instant) -> Recorder {
        Recorder::new(
            Role::Client,
            "t",
            start,
            UNIX_EPOCH + Duration::from_secs(1_000),
        )
    }

    #[test]
    fn ping_is_never_then_fresh_then_stale() {
        let t0 = Instant::now();
        let mut r = recorder(t0);
        let mut stats = Stats::default();
        assert_eq!(r.snapshot(stats.clone(), t0).ping(), Ping::Never);
        stats.rtt = Some(Duration::from_millis(12));
        assert_eq!(r.snapshot(stats.clone(), t0).ping().original(), 12);
        // the same sample, 7 s later: still within interval + grace
        let s = r.snapshot(stats.clone(), t0 + Duration::from_secs(7));
        assert_eq!(s.ping(), Ping::Fresh(Duration::from_millis(12)));
        let s = r.snapshot(stats.clone(), t0 + Duration::from_millis(7001));
        assert_eq!(s.ping().original(), -2);
        // a new sample refreshes it
        stats.rtt = Some(Duration::from_millis(13));
        let s = r.snapshot(stats, t0 + Duration::from_secs(8));
        assert_eq!(s.ping().original(), 13);
    }

    #[test]
    fn handshake_refreshes_an_unchanged_rtt() {
        let t0 = Instant::now();
        let mut r = recorder(t0);
        let mut stats = Stats::default();
        stats.rtt = Some(Duration::from_millis(5));
        r.snapshot(stats.clone(), t0);
        let later = t0 + Duration::from_secs(30);
        assert_eq!(r.snapshot(stats.clone(), later).ping(), Ping::Stale);
        let server = SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 9));
        let rtt = Duration::from_millis(5);
        r.record(&Event::Connected { server, rtt }, later);
        assert_eq!(r.snapshot(stats, later).ping(), Ping::Fresh(rtt));
    }

    #[test]
    fn dns_is_bounded_and_keyed_by_address() {
        let t0 = Instant::now();
        let mut r = recorder(t0);
        for i in 0..DNS_CAP as u32 + 10 {
            // both families share the list: every third record an AAAA one
            let ip = if i % 3 == 2 {
                IpAddr::V6(Ipv6Addr::from(u128::from(i)))
            } else {
                IpAddr::V4(Ipv4Addr::from(i))
            };
            r.record(
                &Event::DnsRecord {
                    name: format!("n{i}"),
                    ip,
                },
                t0,
            );
        }
        let ip = IpAddr::V6(Ipv6Addr::from(20));
        let name = "renamed".to_owned();
        r.record(&Event::DnsRecord { name, ip }, t0);
        let s = r.snapshot(Stats::default(), t0);
        assert_eq!(s.dns.len(), DNS_CAP);
        assert_eq!(s.dns[0].ip, IpAddr::V4(Ipv4Addr::from(10)));
        assert_eq!(s.dns.last().map(|d| d.name.as_str()), Some("renamed"));
        assert_eq!(s.dns.iter().filter(|d| d.ip == ip).count(), 1);
    }

    #[test]
    fn nat_table_follows_events_within_its_cap() {
        let t0 = Instant::now();
        let mut r = recorder(t0);
        let client = SocketAddr::from((Ipv4Addr::new(198, 51, 100, 7), 50000));
        let map = |port: u16| Event::NatMapped {
            client,
            protocol: 17,
            inner: SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), port)),
            public: SocketAddr::from((Ipv4Addr::new(203, 0, 113, 1), port)),
        };
        for port in 0..NAT_TABLE_CAP as u16 + 5 {
            r.record(&map(port), t0);
        }
        assert_eq!(r.snapshot(Stats::default(), t0).nat.len(), NAT_TABLE_CAP);
        let public = SocketAddr::from((Ipv4Addr::new(203, 0, 113, 1), 3));
        r.record(
            &Event::NatExpired {
                protocol: 17,
                public,
            },
            t0,
        );
        let s = r.snapshot(Stats::default(), t0);
        assert_eq!(s.nat.len(), NAT_TABLE_CAP - 1);
        assert!(s.nat.iter().all(|e| e.public != public));
    }

    #[test]
    fn engines_snapshots_add_up_to_one_server() {
        let t0 = Instant::now();
        let server = |t: Instant| Recorder::new(Role::Server, "t", t, UNIX_EPOCH);
        let client = |port: u16| SocketAddr::from((Ipv4Addr::new(198, 18, 16, 2), port));
        let map = |port: u16| Event::NatMapped {
            client: client(40000),
            protocol: 17,
            inner: SocketAddr::from((Ipv4Addr::new(198, 18, 11, 2), port)),
            public: SocketAddr::from((Ipv4Addr::new(198, 18, 13, 1), port)),
        };
        let device = |captured: u64, injected: u64| DeviceCounters {
            device: "wan0".into(),
            captured,
            injected,
            capture_dropped: 1,
            ..DeviceCounters::default()
        };
        let (mut a, mut b) = (server(t0), server(t0));
        a.record(&map(30001), t0);
        b.record(&map(20001), t0);
        b.record(&map(40001), t0);
        let mut stats = Stats::default();
        stats.nat_mappings = 1;
        let mut one = a.snapshot(stats.clone(), t0);
        one.devices = vec![device(10, 20)].into();
        stats.nat_mappings = 2;
        let later = t0 + Duration::from_millis(400);
        let mut two = b.snapshot(stats, later);
        two.devices = vec![device(1, 2)].into();
        one.absorb(&two);
        assert_eq!(one.stats.nat_mappings, 3);
        assert_eq!(one.taken, later);
        let ports: Vec<u16> = one.nat.iter().map(|e| e.public.port()).collect();
        assert_eq!(ports, [20001, 30001, 40001]);
        assert_eq!(one.devices.len(), 1);
        assert_eq!((one.devices[0].captured, one.devices[0].injected), (11, 22));
        assert_eq!(one.devices[0].capture_dropped, 2);
        // the table stays within its cap
        let (mut c, mut d) = (server(t0), server(t0));
        for port in 0..NAT_TABLE_CAP as u16 {
            c.record(&map(port), t0);
            d.record(&map(port + 5000), t0);
        }
        let mut full = c.snapshot(Stats::default(), t0);
        full.absorb(&d.snapshot(Stats::default(), t0));
        assert_eq!(full.nat.len(), NAT_TABLE_CAP);
    }

    #[test]
    fn unix_seconds_follow_the_anchor() {
        let t0 = Instant::now();
        let s = recorder(t0).snapshot(Stats::default(), t0 + Duration::from_secs(3));
        assert_eq!(s.unix_secs(t0), 1_000);
        assert_eq!(s.unix_secs(t0 + Duration::from_millis(2500)), 1_002);
        assert_eq!(s.uptime(), Duration::from_secs(3));
    }
}
