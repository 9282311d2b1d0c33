//! The monitor (`--monitor PORT`) as the engine thread sees it: a [`Feed`] that shows the
//! machine's events to an [`ikago_monitor::Recorder`] and publishes a snapshot once per second
//!
//! A server of several engines (`--threads`) has one monitor and one feed per engine
//! ([`Feed::shared`]): each engine leaves its snapshot on a board they share, and the monitor
//! serves the board's sum, so that `/`, `/metrics` and the dashboard show one server.
//!
//! The HTTP side runs on threads of its own ([`ikago_monitor::Monitor`]) and only ever reads the
//! latest published snapshot, so nothing the monitor does holds a lock across the packet loop:
//! the engine pays one comparison per wake-up, one `record` per event (events are per flow, not
//! per packet) and, with the monitor on, one [`Machine::stats`] per second. Engines wake for the
//! next snapshot as they wake for the machine's deadline: see [`Feed::wake_at`] and
//! [`Feed::next_publish`]. A config reload moves, starts or stops the monitor
//! ([`Feed::rebind`]); the recorder sees every event all along, so a monitor started late shows
//! the NAT table and peers of the whole run.

use ikago_monitor::{DeviceCounters, Monitor, MonitorError, Publisher, Recorder, Snapshot};
use ikago_proto::{Event, Machine};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Time between two snapshots
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// What an engine thread does for the monitor; publishing is a no-op when it is off
#[derive(Debug)]
pub struct Feed {
    recorder: Box<Recorder>,
    /// This engine's place on the board
    engine: usize,
    board: Arc<Mutex<Board>>,
    /// When this engine's next snapshot is due, while the monitor is on
    next_publish: Option<Instant>,
}

/// What the engines of one process share: the monitor while it is on, and each engine's latest
/// snapshot, which the monitor shows added up ([`Snapshot::absorb`]) as one server
#[derive(Debug)]
struct Board {
    on: Option<Serving>,
    parts: Vec<Option<Snapshot>>,
}

/// A monitor that is on
#[derive(Debug)]
struct Serving {
    /// Serves until dropped
    monitor: Monitor,
    publisher: Publisher,
}

impl Serving {
    fn new(monitor: Monitor) -> Self {
        Self {
            publisher: monitor.publisher(),
            monitor,
        }
    }
}

impl Board {
    fn local_addr(&self) -> Option<SocketAddr> {
        self.on.as_ref().map(|r| r.monitor.local_addr())
    }
}

impl Feed {
    /// Keeps `recorder` up to date and serves it on `monitor` (started already), if any; the
    /// first snapshot is due at `now`
    pub fn new(monitor: Option<Monitor>, recorder: Recorder, now: Instant) -> Self {
        let mut feeds = Self::shared(monitor, vec![recorder], now);
        feeds.remove(0)
    }

    /// One feed per engine of a server (one per recorder), all serving on `monitor` (started
    /// already), if any, the sum of their snapshots; each engine's first snapshot is due at `now`
    pub fn shared(monitor: Option<Monitor>, recorders: Vec<Recorder>, now: Instant) -> Vec<Self> {
        let next_publish = monitor.is_some().then_some(now);
        let board = Arc::new(Mutex::new(Board {
            on: monitor.map(Serving::new),
            parts: vec![None; recorders.len()],
        }));
        recorders
            .into_iter()
            .enumerate()
            .map(|(engine, recorder)| Self {
                recorder: Box::new(recorder),
                engine,
                board: board.clone(),
                next_publish,
            })
            .collect()
    }

    fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the monitor is on (as this engine last saw it)
    pub fn is_on(&self) -> bool {
        self.next_publish.is_some()
    }

    /// The address the monitor listens on, when it is on
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.board().local_addr()
    }

    /// Moves the monitor to `addr`, starts it there, or stops it (`None`); nothing happens when
    /// it listens there already (another engine of the server may have moved it). The old
    /// socket is closed first, so the same port may be taken on another address; if `addr`
    /// cannot be bound, the monitor goes back to where it was (when it can) and the error is
    /// returned. This engine's first snapshot is due at `now`.
    pub fn rebind(&mut self, addr: Option<SocketAddr>, now: Instant) -> Result<(), MonitorError> {
        let mut board = self.board.lock().unwrap_or_else(|p| p.into_inner());
        let old = board.local_addr();
        let result = if addr == old {
            Ok(())
        } else {
            board.on = None;
            match addr.map(Monitor::start).transpose() {
                Ok(m) => {
                    board.on = m.map(Serving::new);
                    Ok(())
                }
                Err(e) => {
                    board.on = old.and_then(|a| Monitor::start(a).ok()).map(Serving::new);
                    Err(e)
                }
            }
        };
        let on = board.on.is_some();
        drop(board);
        self.next_publish = match (on, self.next_publish) {
            (false, _) => None,
            (true, Some(due)) if addr == old => Some(due),
            (true, _) => Some(now),
        };
        result
    }

    /// Shows an event from the machine's output to the recorder (the hook of
    /// [`drain`](crate::machine::drain)); `now` is the instant of the input that produced it
    #[inline]
    pub fn record(&mut self, event: &Event, now: Instant) {
        self.recorder.record(event, now);
    }

    /// When the next snapshot is due, when the monitor is on
    pub fn next_publish(&self) -> Option<Instant> {
        self.next_publish
    }

    /// When the engine must wake up: the machine's `deadline`, or the next snapshot if earlier
    #[inline]
    pub fn wake_at(&self, deadline: Instant) -> Instant {
        match self.next_publish {
            Some(due) => deadline.min(due),
            None => deadline,
        }
    }

    /// Publishes a snapshot of `machine`, with the runner's `devices` counters, if one is due at
    /// `now`; returns whether it did (the next one is then due [`PUBLISH_INTERVAL`] later). With
    /// several engines, the monitor shows the sum of every engine's latest snapshot.
    #[inline]
    pub fn publish_due(
        &mut self,
        machine: &Machine,
        now: Instant,
        devices: impl FnOnce() -> Vec<DeviceCounters>,
    ) -> bool {
        match self.next_publish {
            Some(due) if now >= due => {
                self.publish(machine, now, devices());
                true
            }
            _ => false,
        }
    }

    #[cold]
    fn publish(&mut self, machine: &Machine, now: Instant, devices: Vec<DeviceCounters>) {
        let mut snapshot = self.recorder.snapshot(machine.stats(), now);
        snapshot.devices = devices.into();
        self.next_publish = Some(now + PUBLISH_INTERVAL);
        let mut board = self.board.lock().unwrap_or_else(|p| p.into_inner());
        board.parts[self.engine] = Some(snapshot);
        let Some(on) = &board.on else { return };
        let mut parts = board.parts.iter().flatten();
        if let Some(first) = parts.next() {
            let mut sum = first.clone();
            for part in parts {
                sum.absorb(part);
            }
            on.publisher.publish(sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikago_monitor::Role;
    use ikago_proto::{
        Client, ClientConfig, DeviceConfig, DeviceRole, LinkType, Mac, Server, ServerConfig, Shard,
    };
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddr, TcpStream};
    use std::time::SystemTime;

    fn device(name: &str, role: DeviceRole, addr: [u8; 4]) -> DeviceConfig {
        DeviceConfig {
            name: name.into(),
            role,
            link: LinkType::Ethernet,
            mac: Mac([2, 0, 0, 0, 0, addr[3]]),
            addr: Some(addr.into()),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(addr[0], addr[1], addr[2], 254)),
            gateway_mac: None,
            ipv6: None,
        }
    }

    fn client(now: Instant) -> Machine {
        let devices = vec![
            device("lan0", DeviceRole::Listen, [198, 18, 21, 1]),
            device("wan0", DeviceRole::Upstream, [198, 18, 22, 2]),
        ];
        let server = SocketAddr::from((Ipv4Addr::new(198, 18, 23, 2), 18081));
        let config = ClientConfig::new(devices, vec!["198.18.21.2".parse().unwrap()], server);
        Client::new(config, now).unwrap().into()
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        reply
    }

    fn recorder(t0: Instant) -> Recorder {
        Recorder::new(Role::Client, "t", t0, SystemTime::now())
    }

    fn dns_event() -> Event {
        Event::DnsRecord {
            name: "echo.lab.test".into(),
            ip: Ipv4Addr::new(198, 18, 24, 2).into(),
        }
    }

    #[test]
    fn off_publishes_nothing() {
        let t0 = Instant::now();
        let mut feed = Feed::new(None, recorder(t0), t0);
        let machine = client(t0);
        assert!(!feed.is_on() && feed.local_addr().is_none());
        assert_eq!(feed.next_publish(), None);
        let later = t0 + Duration::from_secs(30);
        assert_eq!(feed.wake_at(later), later);
        feed.record(&dns_event(), t0);
        assert!(!feed.publish_due(&machine, later, Vec::new));
    }

    #[test]
    fn rebinding_starts_moves_and_stops_the_monitor() {
        let t0 = Instant::now();
        let machine = client(t0);
        let mut feed = Feed::new(None, recorder(t0), t0);
        // seen while off, shown once on
        feed.record(&dns_event(), t0);
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        feed.rebind(Some(any_port), t0).expect("binds");
        let first = feed.local_addr().expect("on");
        assert_eq!(feed.next_publish(), Some(t0), "a snapshot at once");
        assert!(feed.publish_due(&machine, t0, Vec::new));
        assert!(get(first, "/dns").contains("echo.lab.test"));

        feed.rebind(Some(first), t0).expect("already there");
        assert_eq!(feed.local_addr(), Some(first));
        feed.rebind(Some(any_port), t0).expect("moves");
        let second = feed.local_addr().expect("on");
        assert_ne!(second, first);
        assert!(TcpStream::connect(first).is_err(), "the old port is closed");
        assert!(feed.publish_due(&machine, t0, Vec::new));
        assert!(get(second, "/").contains("IkaGo-client"));

        // a port held by another: an error, and the monitor stays where it was
        let taken = std::net::TcpListener::bind(any_port).unwrap();
        let busy = taken.local_addr().unwrap();
        assert!(feed.rebind(Some(busy), t0).is_err());
        let back = feed.local_addr().expect("still on");
        assert_eq!(back, second);
        assert!(feed.publish_due(&machine, t0, Vec::new));
        assert!(get(back, "/").contains("IkaGo-client"));

        feed.rebind(None, t0).expect("stops");
        assert!(!feed.is_on());
        assert!(TcpStream::connect(second).is_err(), "closed");
        assert!(!feed.publish_due(&machine, t0 + Duration::from_secs(5), Vec::new));
    }

    #[test]
    fn publishes_once_per_interval_with_the_events_seen() {
        let t0 = Instant::now();
        let monitor = Monitor::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut feed = Feed::new(Some(monitor), recorder(t0), t0);
        let addr = feed.local_addr().expect("on");
        let machine = client(t0);
        assert!(
            get(addr, "/").starts_with("HTTP/1.1 503"),
            "nothing before the first"
        );

        // the first snapshot is due at once, and the engine wakes for it
        let far = t0 + Duration::from_secs(5);
        assert_eq!(feed.wake_at(far), t0);
        assert!(feed.publish_due(&machine, t0, Vec::new));
        assert_eq!(feed.next_publish(), Some(t0 + PUBLISH_INTERVAL));
        assert_eq!(feed.wake_at(far), t0 + PUBLISH_INTERVAL);
        let soon = t0 + Duration::from_millis(300);
        assert_eq!(feed.wake_at(soon), soon, "an earlier deadline first");
        let reply = get(addr, "/");
        assert!(reply.contains("\"name\":\"IkaGo-client\""), "{reply}");

        // events reach the next snapshot, not before it is due
        feed.record(&dns_event(), soon);
        assert!(!feed.publish_due(&machine, t0 + Duration::from_millis(999), Vec::new));
        assert!(!get(addr, "/dns").contains("echo.lab.test"));
        assert!(feed.publish_due(&machine, t0 + PUBLISH_INTERVAL, Vec::new));
        let reply = get(addr, "/dns");
        assert!(
            reply.ends_with(r#"[{"ip":"198.18.24.2","name":"echo.lab.test"}]"#),
            "{reply}"
        );
        // late wake-ups do not pile snapshots up: the next is an interval after the last
        let late = t0 + Duration::from_millis(3500);
        assert!(feed.publish_due(&machine, late, Vec::new));
        assert_eq!(feed.next_publish(), Some(late + PUBLISH_INTERVAL));
    }

    /// Engine `index` of a server of `count`, on the lab's two devices
    fn engine(index: u16, count: u16, now: Instant) -> Machine {
        let devices = vec![
            device("wan0", DeviceRole::Listen, [198, 18, 22, 1]),
            device("dst0", DeviceRole::Upstream, [198, 18, 23, 1]),
        ];
        let mut config = ServerConfig::new(devices, 18081);
        config.shard = Shard::new(index, count).unwrap();
        Server::new(config, now).unwrap().into()
    }

    #[test]
    fn engines_show_as_one_server() {
        let t0 = Instant::now();
        let monitor = Monitor::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let server = || Recorder::new(Role::Server, "t", t0, SystemTime::now());
        let mut feeds = Feed::shared(Some(monitor), vec![server(), server()], t0);
        let addr = feeds[0].local_addr().expect("on");
        assert_eq!(feeds[1].local_addr(), Some(addr), "one monitor");
        let (a, b) = (engine(0, 2, t0), engine(1, 2, t0));
        let whole = engine(0, 1, t0).stats().nat_capacity;
        let wan = |captured| {
            move || {
                vec![DeviceCounters {
                    device: "wan0".into(),
                    captured,
                    ..DeviceCounters::default()
                }]
            }
        };
        assert!(feeds[0].publish_due(&a, t0, wan(3)));
        let capacity = format!("ikago_nat_capacity {}", a.stats().nat_capacity);
        assert!(get(addr, "/metrics").contains(&capacity));
        assert!(feeds[1].publish_due(&b, t0, wan(4)));
        let metrics = get(addr, "/metrics");
        assert!(
            metrics.contains(&format!("ikago_nat_capacity {whole}")),
            "the slices add up to the whole pool: {metrics}"
        );
        assert!(
            metrics.contains("ikago_capture_frames_total{device=\"wan0\"} 7"),
            "{metrics}"
        );

        // a reload moves the one monitor; the engine that comes second finds it moved
        let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let later = t0 + Duration::from_secs(3);
        feeds[0].rebind(Some(any_port), later).expect("moves");
        let moved = feeds[0].local_addr().expect("on");
        assert_ne!(moved, addr);
        feeds[1].rebind(Some(moved), later).expect("already there");
        assert_eq!(feeds[1].local_addr(), Some(moved));
        feeds[1].rebind(None, later).expect("stops");
        assert!(!feeds[1].is_on() && feeds[0].is_on());
        feeds[0].rebind(None, later).expect("stopped already");
        assert!(!feeds[0].is_on());
        assert!(!feeds[0].publish_due(&a, later, wan(1)));
    }
}
