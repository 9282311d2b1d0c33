//! The engine both runners drive: one machine, its devices' nonblocking captures, the batched
//! injection, the recorder and the monitor, advanced in turns
//!
//! A runner waits for whatever comes first (a capture fd turning readable, the machine's deadline
//! [`Engine::deadline`], the monitor's next snapshot [`Engine::next_publish`], a signal), then
//! does one turn: [`Engine::read`] for each readable device (every ready frame, up to [`BATCH`]
//! per device so that none starves), [`Engine::tick`] for the deadline, [`Engine::reload`] for a
//! SIGHUP, and always [`Engine::end_turn`], which sends every frame the turn produced (one
//! `sendmmsg` per device) and publishes the monitor's snapshot when due. No frame waits for a
//! later turn. With `--busy-poll`, [`Engine::spin`] keeps reading the devices for a while before
//! the runner sleeps. In `--mode tcp` the tunnel's connections ([`crate::stream`]) report to the
//! engine through a channel and ring [`Engine::stream_fd`], which the runner watches too; it then
//! calls [`Engine::read_streams`].
//!
//! The engine owns no thread and no wait: each instance is independent, so several can run on
//! as many threads.

use crate::app::{Outcome, Session, TunnelSockets};
use crate::capture::{drop_counters, refilter};
use crate::inject::{Injectors, Sink};
use crate::machine::drain;
use crate::monitor::Feed;
use crate::record::Recorder;
use crate::reload::{Reload, Reread};
use crate::shutdown::Signals;
use crate::stream::{StreamEvent, Streams};
use ikago_monitor::DeviceCounters;
use ikago_proto::{DeviceId, Input, Machine};
use pcap::{Active, Capture};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Frames read from one device in a turn before the others get theirs
pub const BATCH: usize = 64;
/// Tunnel connection events waiting for the engine before the connections' threads wait too
const STREAM_EVENTS: usize = 1024;

/// `--mode tcp`: the connections, their events, and the socket their threads ring
struct Tunnel {
    streams: Streams,
    events: Receiver<StreamEvent>,
    /// Readable when events wait (the bytes mean nothing)
    bell: UnixStream,
}

/// The machine and everything around it that a turn touches
pub struct Engine {
    machine: Machine,
    captures: Vec<Capture<Active>>,
    names: Vec<String>,
    inject: Injectors,
    monitor: Feed,
    reload: Reload,
    recorder: Recorder,
    deadline: Instant,
    busy_poll: Option<Duration>,
    result: Result<(), String>,
    /// The tunnel's connections (off in FakeTCP mode)
    streams: Streams,
    /// Their events, in `--mode tcp`
    tunnel: Option<(Receiver<StreamEvent>, UnixStream)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("devices", &self.names)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Takes the session's machine and devices (and hands back its signals), and lets the
    /// machine say what it has to say at start
    pub fn new(session: Session) -> (Self, Signals<Reread>) {
        let Session {
            machine,
            devices,
            signals,
            monitor,
            reload,
            recorder,
            busy_poll,
            sockets,
        } = session;
        let mut captures = Vec::with_capacity(devices.len());
        let mut sinks: Vec<Sink> = Vec::with_capacity(devices.len());
        let mut names = Vec::with_capacity(devices.len());
        for d in devices {
            captures.push(d.io.capture);
            sinks.push(d.io.inject);
            names.push(d.name);
        }
        let mut result = Ok(());
        let (streams, tunnel) = match start_tunnel(sockets) {
            Ok(Some(Tunnel {
                streams,
                events,
                bell,
            })) => (streams, Some((events, bell))),
            Ok(None) => (Streams::off(), None),
            Err(e) => {
                result = Err(format!("cannot start the tunnel connections: {e}"));
                (Streams::off(), None)
            }
        };
        let now = Instant::now();
        let mut engine = Self {
            machine,
            captures,
            inject: Injectors::new(sinks, names.clone()),
            names,
            monitor,
            reload,
            recorder,
            deadline: now,
            busy_poll,
            result,
            streams,
            tunnel,
        };
        engine.deadline = drain(
            &mut engine.machine,
            &mut engine.inject,
            &mut engine.streams,
            &mut engine.recorder,
            |e| engine.monitor.record(e, now),
        );
        engine.end_turn();
        (engine, signals)
    }

    /// How many devices there are
    pub fn devices(&self) -> usize {
        self.captures.len()
    }

    /// The capture fd of device `i`, to wait on
    pub fn capture_fd(&self, i: usize) -> BorrowedFd<'_> {
        self.captures[i].as_fd()
    }

    /// `--mode tcp`: readable when the tunnel's connections have news for
    /// [`Engine::read_streams`]
    pub fn stream_fd(&self) -> Option<BorrowedFd<'_>> {
        self.tunnel.as_ref().map(|(_, bell)| bell.as_fd())
    }

    /// Feeds the machine what happened on the tunnel's connections since the last call (at most
    /// what the bounded channel holds); returns how many events
    pub fn read_streams(&mut self) -> usize {
        let Some((events, bell)) = &mut self.tunnel else {
            return 0;
        };
        // the bytes only wake the runner: the channel says what happened
        let mut rung = [0u8; 256];
        while matches!(bell.read(&mut rung), Ok(n) if n > 0) {}
        let mut n = 0;
        while let Ok(event) = events.try_recv() {
            let now = Instant::now();
            let (conn, input) = event.input();
            self.machine.handle_input(Input::Stream {
                now,
                conn,
                event: input,
            });
            if let StreamEvent::Data { conn, buf, .. } = event {
                self.streams.recycle(conn, buf);
            }
            self.deadline = drain(
                &mut self.machine,
                &mut self.inject,
                &mut self.streams,
                &mut self.recorder,
                |e| self.monitor.record(e, now),
            );
            n += 1;
        }
        n
    }

    /// The name of device `i`
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// When the machine wants [`Engine::tick`]
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// When the monitor's next snapshot is due, when it is on
    pub fn next_publish(&self) -> Option<Instant> {
        self.monitor.next_publish()
    }

    /// When the runner must wake at the latest: the deadline, or the next snapshot if earlier
    pub fn wake_at(&self) -> Instant {
        self.monitor.wake_at(self.deadline)
    }

    /// Whether no failure stopped the engine
    pub fn running(&self) -> bool {
        self.result.is_ok()
    }

    /// Stops the engine with `reason` (a wait on a device failed)
    pub fn fail(&mut self, reason: String) {
        if self.result.is_ok() {
            self.result = Err(reason);
        }
    }

    /// Reads the frames ready on device `i` into the machine, at most [`BATCH`]; returns how
    /// many. One `pcap_dispatch`: it reads the ring's ready frames and stops at the first one the
    /// kernel still owns without a system call (only a ring found empty at once costs one
    /// `poll`). A capture error stops the engine.
    pub fn read(&mut self, i: usize) -> usize {
        let device = DeviceId(u8::try_from(i).expect("the core takes at most 255 devices"));
        let Self {
            machine,
            captures,
            inject,
            monitor,
            recorder,
            deadline,
            streams,
            ..
        } = self;
        let read = captures[i].dispatch(Some(BATCH), |p| {
            let now = Instant::now();
            let input = Input::Frame {
                now,
                device,
                data: p.data,
            };
            recorder.input(input);
            machine.handle_input(input);
            *deadline = drain(machine, inject, streams, recorder, |e| {
                monitor.record(e, now);
            });
        });
        read.unwrap_or_else(|e| {
            let reason = format!("capture on {} failed: {e}", self.names[i]);
            self.fail(reason);
            0
        })
    }

    /// Gives the machine its timeout if its deadline has passed at `now`
    pub fn tick(&mut self, now: Instant) {
        if now < self.deadline {
            return;
        }
        let input = Input::Timeout(now);
        self.recorder.input(input);
        self.machine.handle_input(input);
        self.deadline = drain(
            &mut self.machine,
            &mut self.inject,
            &mut self.streams,
            &mut self.recorder,
            |e| self.monitor.record(e, now),
        );
    }

    /// Applies a config read again (SIGHUP): the machine's live settings, the monitor, the
    /// recorder and the capture filters
    pub fn reload(&mut self, reread: Reread) {
        let now = Instant::now();
        let filters = self.reload.apply(
            reread,
            &mut self.machine,
            &mut self.monitor,
            &mut self.recorder,
            now,
        );
        for (device, filter) in filters {
            refilter(&mut self.captures[device], &self.names[device], &filter);
        }
    }

    /// Ends a turn: sends every queued frame and publishes the monitor's snapshot when due;
    /// returns whether it published
    pub fn end_turn(&mut self) -> bool {
        self.inject.flush();
        let Self {
            machine,
            captures,
            names,
            inject,
            monitor,
            ..
        } = self;
        monitor.publish_due(machine, Instant::now(), || {
            counters(captures, names, inject)
        })
    }

    /// With `--busy-poll`, reads every device again and again, yielding the core between rounds,
    /// until a frame comes, the budget is spent or the engine must wake anyway; returns whether
    /// frames came (the turn then ends with [`Engine::end_turn`]). Without, returns false at
    /// once.
    pub fn spin(&mut self) -> bool {
        let Some(budget) = self.busy_poll else {
            return false;
        };
        let until = (Instant::now() + budget).min(self.wake_at());
        while self.running() {
            let mut read = 0;
            for i in 0..self.devices() {
                read += self.read(i);
            }
            if read > 0 {
                return true;
            }
            if Instant::now() >= until {
                break;
            }
            // other tasks of the host (the game itself, say) may share this core: one that is
            // ready runs now, not after the budget (a spin that held the core took a 1 ms
            // budget's UDP echo p99 from 0.2 ms to 2.2 ms)
            std::thread::yield_now();
        }
        false
    }

    /// Stops: the machine's counters, the devices' and how the run ended
    pub fn finish(mut self) -> Outcome {
        self.inject.flush();
        self.streams.close_all();
        Outcome {
            stats: self.machine.stats(),
            devices: counters(&mut self.captures, &self.names, &self.inject),
            result: self.result,
        }
    }
}

/// Starts the tunnel's connections of `--mode tcp` (none in FakeTCP mode), their events sent to
/// a channel and announced on a socket pair
fn start_tunnel(sockets: TunnelSockets) -> std::io::Result<Option<Tunnel>> {
    if matches!(sockets, TunnelSockets::Off) {
        return Ok(None);
    }
    let (bell, ring) = UnixStream::pair()?;
    bell.set_nonblocking(true)?;
    ring.set_nonblocking(true)?;
    let (tx, events) = mpsc::sync_channel(STREAM_EVENTS);
    let streams = sockets.start(Arc::new(move |e| {
        if tx.send(e).is_err() {
            return false;
        }
        // a full socket is already readable: the engine will look
        let _ = (&ring).write(&[1]);
        true
    }))?;
    Ok(Some(Tunnel {
        streams,
        events,
        bell,
    }))
}

/// The capture and injection counters of every device
fn counters(
    captures: &mut [Capture<Active>],
    names: &[String],
    inject: &Injectors,
) -> Vec<DeviceCounters> {
    captures
        .iter_mut()
        .zip(names)
        .zip(inject.counters())
        .map(|((capture, name), sent)| {
            let c = drop_counters(capture);
            DeviceCounters {
                device: name.clone(),
                captured: c.received,
                capture_dropped: c.dropped,
                interface_dropped: c.if_dropped,
                injected: sent.sent,
                inject_failed: sent.failed,
                inject_short: sent.short,
            }
        })
        .collect()
}
