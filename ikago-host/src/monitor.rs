//! The monitor (`--monitor PORT`) as the engine thread sees it: a [`Feed`] that shows the
//! machine's events to an [`ikago_monitor::Recorder`] and publishes a snapshot once per second
//!
//! The HTTP side runs on threads of its own ([`ikago_monitor::Monitor`]) and only ever reads the
//! latest published snapshot, so nothing the monitor does holds a lock across the packet loop:
//! the engine pays one comparison per wake-up, one `record` per event (events are per flow, not
//! per packet) and, with the monitor on, one [`Machine::stats`] per second. Engines wake for the
//! next snapshot as they wake for the machine's deadline: see [`Feed::wake_at`] and
//! [`Feed::next_publish`]. A config reload moves, starts or stops the monitor
//! ([`Feed::rebind`]); the recorder sees every event all along, so a monitor started late shows
//! the NAT table and peers of the whole run.

use ikago_monitor::{DeviceCounters, Monitor, MonitorError, Publisher, Recorder};
use ikago_proto::{Event, Machine};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Time between two snapshots
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// What the engine thread does for the monitor; publishing is a no-op when it is off
#[derive(Debug)]
pub struct Feed {
    recorder: Box<Recorder>,
    on: Option<Box<Serving>>,
}

/// A monitor that is on
#[derive(Debug)]
struct Serving {
    /// Serves until dropped
    monitor: Monitor,
    publisher: Publisher,
    next_publish: Instant,
}

impl Serving {
    fn new(monitor: Monitor, now: Instant) -> Box<Self> {
        Box::new(Self {
            publisher: monitor.publisher(),
            monitor,
            next_publish: now,
        })
    }
}

impl Feed {
    /// Keeps `recorder` up to date and serves it on `monitor` (started already), if any; the
    /// first snapshot is due at `now`
    pub fn new(monitor: Option<Monitor>, recorder: Recorder, now: Instant) -> Self {
        Self {
            recorder: Box::new(recorder),
            on: monitor.map(|m| Serving::new(m, now)),
        }
    }

    /// Whether the monitor is on
    pub fn is_on(&self) -> bool {
        self.on.is_some()
    }

    /// The address the monitor listens on, when it is on
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.on.as_ref().map(|r| r.monitor.local_addr())
    }

    /// Moves the monitor to `addr`, starts it there, or stops it (`None`); nothing happens when
    /// it listens there already. The old socket is closed first, so the same port may be taken
    /// on another address; if `addr` cannot be bound, the monitor goes back to where it was
    /// (when it can) and the error is returned. The first snapshot is due at `now`.
    pub fn rebind(&mut self, addr: Option<SocketAddr>, now: Instant) -> Result<(), MonitorError> {
        let old = self.local_addr();
        if addr == old {
            return Ok(());
        }
        self.on = None;
        let Some(addr) = addr else { return Ok(()) };
        match Monitor::start(addr) {
            Ok(m) => {
                self.on = Some(Serving::new(m, now));
                Ok(())
            }
            Err(e) => {
                self.on = old
                    .and_then(|a| Monitor::start(a).ok())
                    .map(|m| Serving::new(m, now));
                Err(e)
            }
        }
    }

    /// Shows an event from the machine's output to the recorder (the hook of
    /// [`drain`](crate::machine::drain)); `now` is the instant of the input that produced it
    #[inline]
    pub fn record(&mut self, event: &Event, now: Instant) {
        self.recorder.record(event, now);
    }

    /// When the next snapshot is due, when the monitor is on
    pub fn next_publish(&self) -> Option<Instant> {
        self.on.as_ref().map(|r| r.next_publish)
    }

    /// When the engine must wake up: the machine's `deadline`, or the next snapshot if earlier
    #[inline]
    pub fn wake_at(&self, deadline: Instant) -> Instant {
        match &self.on {
            Some(r) => deadline.min(r.next_publish),
            None => deadline,
        }
    }

    /// Publishes a snapshot of `machine`, with the runner's `devices` counters, if one is due at
    /// `now`; returns whether it did (the next one is then due [`PUBLISH_INTERVAL`] later)
    #[inline]
    pub fn publish_due(
        &mut self,
        machine: &Machine,
        now: Instant,
        devices: impl FnOnce() -> Vec<DeviceCounters>,
    ) -> bool {
        match &mut self.on {
            Some(r) if now >= r.next_publish => {
                publish(r, &mut self.recorder, machine, now, devices());
                true
            }
            _ => false,
        }
    }
}

#[cold]
fn publish(
    on: &mut Serving,
    recorder: &mut Recorder,
    machine: &Machine,
    now: Instant,
    devices: Vec<DeviceCounters>,
) {
    let mut snapshot = recorder.snapshot(machine.stats(), now);
    snapshot.devices = devices.into();
    on.publisher.publish(snapshot);
    on.next_publish = now + PUBLISH_INTERVAL;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikago_monitor::Role;
    use ikago_proto::{Client, ClientConfig, DeviceConfig, DeviceRole, LinkType, Mac};
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
    use std::time::SystemTime;

    fn device(name: &str, role: DeviceRole, addr: [u8; 4]) -> DeviceConfig {
        DeviceConfig {
            name: name.into(),
            role,
            link: LinkType::Ethernet,
            mac: Mac([2, 0, 0, 0, 0, addr[3]]),
            addr: addr.into(),
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
        let server = SocketAddrV4::new(Ipv4Addr::new(198, 18, 23, 2), 18081);
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
            ip: Ipv4Addr::new(198, 18, 24, 2),
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
}
