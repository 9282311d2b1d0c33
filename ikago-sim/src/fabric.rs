//! The wires: segments as broadcast domains, frames in flight on the virtual clock, and what is
//! recorded on the way (capture, events, drops)
//!
//! A frame sent on a port reaches every other port of its segment after the segment latency
//! (plus any delay the sender adds, such as the WAN link's). Frames due at the same instant are
//! delivered in the order they were sent.

use crate::capture::{Capture, CapturedFrame, Direction, Tap};
use crate::drops::Drops;
use crate::router::Side;
use ikago_proto::{Event, StreamOp};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Index of a port (one device attached to one segment)
pub(crate) type PortId = usize;

/// What a port belongs to
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A host, by index
    Host(usize),
    /// A client's device: client index, device index
    Client(usize, usize),
    /// A server device, by index
    Server(usize),
    /// A side of the WAN router
    Router(Side),
    /// A side of the edge router
    Edge(Side),
    /// A station that only sends (a spoofer); what reaches it is discarded
    Spoofer,
    /// A fallback server's device: server index, device index
    Fallback(usize, usize),
}

/// Which machine reported an event
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client with this index (see [`ClientId`](crate::ClientId))
    Client(usize),
    /// The server (whichever instance ran at the time)
    Server,
    /// A fallback server, by the order it was added in
    Fallback(usize),
}

/// An event of a machine, stamped with the virtual time it came out
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Virtual time
    pub at: Duration,
    /// Which machine
    pub origin: Origin,
    /// The event
    pub event: Event,
}

#[derive(Debug)]
struct Port {
    segment: usize,
    owner: Owner,
    tap: Option<usize>,
}

/// A frame on its way to a port
#[derive(Debug)]
struct InFlight {
    at: Duration,
    seq: u64,
    to: PortId,
    frame: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    /// Reversed, so that the max-heap pops the earliest (then the first sent)
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Segments, ports, the clock and the records
#[derive(Debug)]
pub(crate) struct Fabric {
    /// The one real instant, taken when the World was created
    base: Instant,
    /// Virtual time since `base`
    pub(crate) now: Duration,
    latency: Duration,
    /// Ports of each segment
    segments: Vec<Vec<PortId>>,
    ports: Vec<Port>,
    queue: BinaryHeap<InFlight>,
    seq: u64,
    capturing: bool,
    pub(crate) capture: Capture,
    pub(crate) events: Vec<LoggedEvent>,
    pub(crate) drops: Drops,
    /// Tunnel connection operations of the machines (`tcp` mode), for the World to carry out;
    /// a write's bytes with it
    pub(crate) stream_ops: Vec<(Origin, StreamOp, Vec<u8>)>,
}

impl Fabric {
    /// An empty fabric whose segments deliver after `latency`
    pub(crate) fn new(base: Instant, latency: Duration, capturing: bool) -> Self {
        Self {
            base,
            now: Duration::ZERO,
            latency,
            segments: Vec::new(),
            ports: Vec::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            capturing,
            capture: Capture::default(),
            events: Vec::new(),
            drops: Drops::default(),
            stream_ops: Vec::new(),
        }
    }

    /// A new segment
    pub(crate) fn add_segment(&mut self) -> usize {
        self.segments.push(Vec::new());
        self.segments.len() - 1
    }

    /// Attaches a port to `segment`, captured under `tap` if named
    pub(crate) fn attach(&mut self, segment: usize, owner: Owner, tap: Option<String>) -> PortId {
        let tap = tap.map(|name| {
            self.capture.taps.push(Tap {
                name,
                frames: Vec::new(),
            });
            self.capture.taps.len() - 1
        });
        self.ports.push(Port {
            segment,
            owner,
            tap,
        });
        let id = self.ports.len() - 1;
        self.segments[segment].push(id);
        id
    }

    /// Who owns `port`
    pub(crate) fn owner(&self, port: PortId) -> Owner {
        self.ports[port].owner
    }

    fn record(&mut self, port: PortId, direction: Direction, frame: &[u8]) {
        if let (true, Some(t)) = (self.capturing, self.ports[port].tap) {
            self.capture.taps[t].frames.push(CapturedFrame {
                at: self.now,
                direction,
                data: frame.to_vec(),
            });
        }
    }

    /// Sends `frame` from `from` to the rest of its segment, `delay` from now plus the latency
    pub(crate) fn send(&mut self, from: PortId, frame: &[u8], delay: Duration) {
        self.record(from, Direction::Out, frame);
        let at = self.now + delay + self.latency;
        for i in 0..self.segments[self.ports[from].segment].len() {
            let to = self.segments[self.ports[from].segment][i];
            if to != from {
                self.seq += 1;
                self.queue.push(InFlight {
                    at,
                    seq: self.seq,
                    to,
                    frame: frame.to_vec(),
                });
            }
        }
    }

    /// When the next frame arrives
    pub(crate) fn next_at(&self) -> Option<Duration> {
        self.queue.peek().map(|f| f.at)
    }

    /// The next frame due by now, with its port
    pub(crate) fn pop_due(&mut self) -> Option<(PortId, Vec<u8>)> {
        if self.queue.peek()?.at > self.now {
            return None;
        }
        let f = self.queue.pop().expect("peeked");
        self.record(f.to, Direction::In, &f.frame);
        Some((f.to, f.frame))
    }

    /// The machines' clock: the base instant plus virtual time
    pub(crate) fn instant(&self) -> Instant {
        self.base + self.now
    }

    /// Virtual time of a machine's instant
    pub(crate) fn virtual_time(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.base)
    }

    /// Records a machine's event
    pub(crate) fn log(&mut self, origin: Origin, event: Event) {
        self.events.push(LoggedEvent {
            at: self.now,
            origin,
            event,
        });
    }
}
