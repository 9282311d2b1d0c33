//! The monitor (`--monitor PORT`) as the engine thread sees it: a [`Feed`] that shows the
//! machine's events to an [`ikago_monitor::Recorder`] and publishes a snapshot once per second
//!
//! The HTTP side runs on threads of its own ([`ikago_monitor::Monitor`]) and only ever reads the
//! latest published snapshot, so nothing the monitor does holds a lock across the packet loop:
//! the engine pays one comparison per wake-up, one `record` per event (events are per flow, not
//! per packet) and one [`Machine::stats`] per second. Engines wake for the next snapshot as they
//! wake for the machine's deadline: see [`Feed::wake_at`] and [`Feed::next_publish`].

use ikago_monitor::{Monitor, Publisher, Recorder};
use ikago_proto::{Event, Machine};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Time between two snapshots
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// What the engine thread does for the monitor; every method is a no-op when it is off
#[derive(Debug, Default)]
pub struct Feed {
    on: Option<Box<Running>>,
}

/// A monitor that is on
#[derive(Debug)]
struct Running {
    /// Serves until dropped with the feed
    monitor: Monitor,
    publisher: Publisher,
    recorder: Recorder,
    next_publish: Instant,
}

impl Feed {
    /// No monitor
    pub fn off() -> Self {
        Self::default()
    }

    /// Feeds `monitor` (started already) from `recorder`; the first snapshot is due at `now`
    pub fn new(monitor: Monitor, recorder: Recorder, now: Instant) -> Self {
        Self {
            on: Some(Box::new(Running {
                publisher: monitor.publisher(),
                monitor,
                recorder,
                next_publish: now,
            })),
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

    /// Shows an event from the machine's output to the recorder (the hook of
    /// [`drain`](crate::machine::drain)); `now` is the instant of the input that produced it
    #[inline]
    pub fn record(&mut self, event: &Event, now: Instant) {
        if let Some(r) = &mut self.on {
            r.recorder.record(event, now);
        }
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

    /// Publishes a snapshot of `machine` if one is due at `now`; returns whether it did (the
    /// next one is then due [`PUBLISH_INTERVAL`] later)
    #[inline]
    pub fn publish_due(&mut self, machine: &Machine, now: Instant) -> bool {
        match &mut self.on {
            Some(r) if now >= r.next_publish => {
                r.publish(machine, now);
                true
            }
            _ => false,
        }
    }
}

impl Running {
    #[cold]
    fn publish(&mut self, machine: &Machine, now: Instant) {
        let snapshot = self.recorder.snapshot(machine.stats(), now);
        self.publisher.publish(snapshot);
        self.next_publish = now + PUBLISH_INTERVAL;
    }
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

    #[test]
    fn off_does_nothing() {
        let t0 = Instant::now();
        let mut feed = Feed::off();
        let machine = client(t0);
        assert!(!feed.is_on() && feed.local_addr().is_none());
        assert_eq!(feed.next_publish(), None);
        let later = t0 + Duration::from_secs(30);
        assert_eq!(feed.wake_at(later), later);
        let event = Event::DnsRecord {
            name: "x.test".into(),
            ip: Ipv4Addr::new(198, 18, 24, 2),
        };
        feed.record(&event, t0);
        assert!(!feed.publish_due(&machine, later));
    }

    #[test]
    fn publishes_once_per_interval_with_the_events_seen() {
        let t0 = Instant::now();
        let monitor = Monitor::start("127.0.0.1:0".parse().unwrap()).unwrap();
        let recorder = Recorder::new(Role::Client, "t", t0, SystemTime::now());
        let mut feed = Feed::new(monitor, recorder, t0);
        let addr = feed.local_addr().expect("on");
        let machine = client(t0);
        assert!(
            get(addr, "/").starts_with("HTTP/1.1 503"),
            "nothing before the first"
        );

        // the first snapshot is due at once, and the engine wakes for it
        let far = t0 + Duration::from_secs(5);
        assert_eq!(feed.wake_at(far), t0);
        assert!(feed.publish_due(&machine, t0));
        assert_eq!(feed.next_publish(), Some(t0 + PUBLISH_INTERVAL));
        assert_eq!(feed.wake_at(far), t0 + PUBLISH_INTERVAL);
        let soon = t0 + Duration::from_millis(300);
        assert_eq!(feed.wake_at(soon), soon, "an earlier deadline first");
        let reply = get(addr, "/");
        assert!(reply.contains("\"name\":\"IkaGo-client\""), "{reply}");

        // events reach the next snapshot, not before it is due
        let event = Event::DnsRecord {
            name: "echo.lab.test".into(),
            ip: Ipv4Addr::new(198, 18, 24, 2),
        };
        feed.record(&event, soon);
        assert!(!feed.publish_due(&machine, t0 + Duration::from_millis(999)));
        assert!(!get(addr, "/dns").contains("echo.lab.test"));
        assert!(feed.publish_due(&machine, t0 + PUBLISH_INTERVAL));
        let reply = get(addr, "/dns");
        assert!(
            reply.ends_with(r#"[{"ip":"198.18.24.2","name":"echo.lab.test"}]"#),
            "{reply}"
        );
        // late wake-ups do not pile snapshots up: the next is an interval after the last
        let late = t0 + Duration::from_millis(3500);
        assert!(feed.publish_due(&machine, late));
        assert_eq!(feed.next_publish(), Some(late + PUBLISH_INTERVAL));
    }
}
