//! The replay loop: captured frames and the machine's own deadlines in virtual time

use crate::adapt::{Adapter, Sender, recorded_conversation};
use crate::capture::Frame;
use crate::recording::Fed;
use crate::stream::{self, End, Kind, Report};
use ikago_proto::{
    ConfigError, ConnId, DeviceConfig, DeviceId, Event, Input, MAX_FRAME_LEN, Machine,
    MachineConfig, Output, Stats, StreamInput, StreamOp, Transport,
};
use std::time::{Duration, Instant};

/// Outputs one input may produce before the machine is considered stuck
const MAX_OUTPUTS_PER_INPUT: usize = 1_000_000;
/// Timeouts in a row at one instant before the machine is considered stuck
const MAX_TIMEOUTS_AT_ONE_INSTANT: usize = 64;
/// Longest virtual time replayed: beyond, a timestamp is more likely garbled than real, and the
/// machine's timers would take long to run through (a SYN every few seconds)
pub const MAX_SPAN: Duration = Duration::from_secs(7 * 86_400);

/// Frame counts of one device
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceCounts {
    /// Captured frames fed to the machine
    pub fed: u64,
    /// Captured frames the recorded machine sent itself (source MAC = the device's): not fed
    pub own: u64,
    /// Frames our machine transmitted
    pub out: u64,
}

/// Why a replay stopped early
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The core refused the configuration
    #[error("invalid machine configuration: {0}")]
    Config(#[from] ConfigError),
    /// A capture interface with no device of that name
    #[error("capture interface {name:?} is not in the scenario (interfaces: {known})")]
    UnknownInterface {
        /// The interface
        name: String,
        /// The devices there are
        known: String,
    },
    /// The machine never returned `Output::Timeout`, or asked for the same instant forever
    #[error("the machine made no progress at +{0:?} (core bug)")]
    Stuck(Duration),
    /// The machine transmitted on a device it does not have
    #[error("the machine transmitted on unknown device {0} (core bug)")]
    BadDevice(usize),
    /// The frames span more virtual time than [`MAX_SPAN`]
    #[error("the capture spans {0} s of virtual time, more than the {max} s replayed", max = MAX_SPAN.as_secs())]
    TooLong(u64),
}

/// Everything a replay produced
#[derive(Debug, Clone)]
pub struct Replay {
    /// The machine's devices, in [`DeviceId`] order
    pub devices: Vec<DeviceConfig>,
    /// Frame counts per device, in the same order
    pub counts: Vec<DeviceCounts>,
    /// Every frame the machine transmitted, stamped with the virtual time it was produced at
    pub output: Vec<Frame>,
    /// Every event, with its virtual time since the Unix epoch
    pub events: Vec<(Duration, Event)>,
    /// `tcp` mode: the bytes the machine wrote to its tunnel connections, in order
    pub stream_written: Vec<(Duration, ConnId, Vec<u8>)>,
    /// The machine's counters at the end
    pub stats: Stats,
    /// Peer frames rewritten by the adapter (see [`crate::adapt`]); `None` for a recording,
    /// whose inputs are fed as recorded
    pub adapted: Option<u64>,
    /// When the machine started (time since the Unix epoch)
    pub start: Duration,
}

/// Virtual time: an `Instant` base for the machine and the capture time it stands for
#[derive(Debug, Clone, Copy)]
struct Clock {
    base: Instant,
    start: Duration,
}

impl Clock {
    fn instant(self, t: Duration) -> Instant {
        self.base + t.saturating_sub(self.start)
    }
    fn stamp(self, at: Instant) -> Duration {
        self.start + at.saturating_duration_since(self.base)
    }
}

/// Feeds `frames` (merged, in time order) to a machine built from `config`
///
/// The machine starts at `start` (by default the first frame's time). Its deadlines that fall
/// between two frames are fed as timeouts at their virtual time, and the replay ends at the last
/// frame (deadlines at its instant included). Frames come before the deadlines of the same
/// instant, as in the simulation and in a runner that drains its captures first. Frames whose source MAC is their device's own were sent by the recorded machine: they
/// are counted, shown to the adapter, and not fed. With `adapt`, peer frames are rewritten for our
/// machine's ISNs and ports first, and a KCP client takes over the recorded conversation id
/// unless the configuration sets one.
pub fn replay(
    mut config: MachineConfig,
    frames: &[Frame],
    start: Option<Duration>,
    adapt: bool,
) -> Result<Replay, DriveError> {
    let devices = config.devices().to_vec();
    let ids = frames
        .iter()
        .map(|f| device_of(&devices, f))
        .collect::<Result<Vec<_>, _>>()?;
    let start = start
        .or_else(|| frames.first().map(|f| f.time))
        .unwrap_or_default();
    check_span(frames.iter().map(|f| f.time), start)?;
    if let MachineConfig::Client(c) = &mut config
        && adapt
        && c.kcp_conv.is_none()
    {
        c.kcp_conv = recorded_conversation(frames, c);
    }
    let tunnel = stream_tunnel(&config);
    let reports = match &tunnel {
        Some((end, on)) => {
            let locals: Vec<_> = devices.iter().filter_map(|d| d.addr).collect();
            let tunnel_frames = frames
                .iter()
                .zip(&ids)
                .filter(|(_, i)| on.contains(i))
                .map(|(f, _)| (f.time, &f.data[..]));
            stream::reassemble(tunnel_frames, *end, &locals)
        }
        None => Vec::new(),
    };
    let mut reports = reports.into_iter().peekable();
    let mut d = Driver::new(config, start)?;
    let clock = d.clock;
    let mut deadline = d.drain(clock.base)?;
    for (f, &i) in frames.iter().zip(&ids) {
        let at = clock.instant(f.time);
        d.run_timers(&mut deadline, |t| t < at)?;
        if let Some((end, on)) = &tunnel
            && on.contains(&i)
        {
            // the runner reads the connection, the machine never sees its frames
            if f.data.get(6..12) == Some(&devices[i].mac.0[..]) {
                d.counts[i].own += 1;
            }
            while let Some(r) = reports.next_if(|r| r.time <= f.time) {
                d.stream(*end, &r, at);
                deadline = d.drain(at)?;
            }
            continue;
        }
        if f.data.get(6..12) == Some(&devices[i].mac.0[..]) {
            d.counts[i].own += 1;
            d.adapter.observe(Sender::Recorded, &f.data);
            continue;
        }
        d.counts[i].fed += 1;
        let adapted = if adapt {
            d.adapter.adapt(&f.data)
        } else {
            None
        };
        let data = adapted.as_deref().unwrap_or(&f.data);
        d.machine.handle_input(Input::Frame {
            now: at,
            device: DeviceId(i as u8),
            data,
        });
        deadline = d.drain(at)?;
    }
    if let Some(end) = frames.last().map(|f| clock.instant(f.time)) {
        d.run_timers(&mut deadline, |t| t <= end)?;
    }
    Ok(d.finish(devices, start, adapt))
}

/// Feeds a recording's inputs (see [`crate::recording`]) exactly as the live machine was fed them:
/// each frame and each timer wake-up at its recorded time, in the recorded order, the outputs
/// drained after each, and nothing else (no adaptation, no deadlines of its own). The machine is
/// created at `start`, as the live one was; the replay ends after the last input.
pub fn replay_recorded(
    config: MachineConfig,
    inputs: &[Fed],
    start: Duration,
) -> Result<Replay, DriveError> {
    let devices = config.devices().to_vec();
    // each input's time, and for a frame its device and bytes
    let steps = inputs
        .iter()
        .map(|i| {
            Ok(match i {
                Fed::Frame(f) => (f.time, Some((device_of(&devices, f)?, &f.data[..]))),
                Fed::Timer(t) => (*t, None),
            })
        })
        .collect::<Result<Vec<_>, DriveError>>()?;
    check_span(steps.iter().map(|(t, _)| *t), start)?;
    let mut d = Driver::new(config, start)?;
    d.drain(d.clock.base)?;
    for (time, frame) in steps {
        let now = d.clock.instant(time);
        match frame {
            Some((i, data)) => {
                d.counts[i].fed += 1;
                d.machine.handle_input(Input::Frame {
                    now,
                    device: DeviceId(i as u8),
                    data,
                });
            }
            None => d.machine.handle_input(Input::Timeout(now)),
        }
        d.drain(now)?;
    }
    Ok(d.finish(devices, start, false))
}

/// In `tcp` mode, which end the machine is and the devices of its tunnel connections (the
/// client's upstream devices, the server's listen devices, either without the other role)
fn stream_tunnel(config: &MachineConfig) -> Option<(End, Vec<usize>)> {
    let (end, transport) = match config {
        MachineConfig::Client(c) => (End::Client { server: c.server }, c.transport),
        MachineConfig::Server(s) => (End::Server { port: s.port }, s.transport),
    };
    if transport != Transport::Tcp {
        return None;
    }
    let on = config
        .devices()
        .iter()
        .enumerate()
        .filter(|(_, d)| match end {
            End::Client { .. } => d.role.is_upstream() && !d.role.listens(),
            End::Server { .. } => d.role.listens() && !d.role.is_upstream(),
        })
        .map(|(i, _)| i)
        .collect();
    Some((end, on))
}

/// The index of the device a frame's interface names
fn device_of(devices: &[DeviceConfig], f: &Frame) -> Result<usize, DriveError> {
    devices
        .iter()
        .position(|d| d.name == f.interface)
        .ok_or_else(|| DriveError::UnknownInterface {
            name: f.interface.clone(),
            known: devices
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Refuses times spanning more than [`MAX_SPAN`] from `start`
fn check_span(times: impl Iterator<Item = Duration>, start: Duration) -> Result<(), DriveError> {
    let span = times
        .map(|t| t.saturating_sub(start))
        .max()
        .unwrap_or_default();
    if span > MAX_SPAN {
        return Err(DriveError::TooLong(span.as_secs()));
    }
    Ok(())
}

/// The state of one replay
struct Driver {
    machine: Machine,
    clock: Clock,
    buf: Vec<u8>,
    adapter: Adapter,
    counts: Vec<DeviceCounts>,
    output: Vec<Frame>,
    events: Vec<(Duration, Event)>,
    names: Vec<String>,
    /// The connections our client asked for, in order
    connects: Vec<ConnId>,
    stream_written: Vec<(Duration, ConnId, Vec<u8>)>,
}

impl Driver {
    /// A machine built from `config`, created at virtual time `start`
    fn new(config: MachineConfig, start: Duration) -> Result<Self, DriveError> {
        let clock = Clock {
            base: Instant::now(),
            start,
        };
        let devices = config.devices();
        Ok(Self {
            adapter: Adapter::new(devices.iter().filter_map(|d| d.addr).collect()),
            counts: vec![DeviceCounts::default(); devices.len()],
            names: devices.iter().map(|d| d.name.clone()).collect(),
            machine: Machine::new(config, clock.base)?,
            clock,
            buf: vec![0; MAX_FRAME_LEN],
            output: Vec::new(),
            events: Vec::new(),
            connects: Vec::new(),
            stream_written: Vec::new(),
        })
    }

    /// What the replay produced; `adapted` says whether peer frames went through the adapter
    fn finish(self, devices: Vec<DeviceConfig>, start: Duration, adapted: bool) -> Replay {
        Replay {
            stats: self.machine.stats(),
            adapted: adapted.then(|| self.adapter.adapted()),
            devices,
            counts: self.counts,
            output: self.output,
            events: self.events,
            stream_written: self.stream_written,
            start,
        }
    }

    /// Feeds a reassembled report at `at`: the capture's k-th connection is our client's k-th
    /// connect (ignored when it asked for fewer), or the server's connection k + 1
    fn stream(&mut self, end: End, r: &Report, at: Instant) {
        let conn = match end {
            End::Client { .. } => match self.connects.get(r.index) {
                Some(&c) => c,
                None => return,
            },
            End::Server { .. } => ConnId(r.index as u64 + 1),
        };
        let event = match &r.kind {
            Kind::Opened(peer) => StreamInput::Opened {
                peer: (*peer).into(),
            },
            Kind::Data(bytes) => StreamInput::Data(bytes),
            Kind::Closed => StreamInput::Closed,
        };
        self.machine.handle_input(Input::Stream {
            now: at,
            conn,
            event,
        });
    }

    /// Feeds the machine's deadlines at their virtual time while `due` holds for them
    fn run_timers(
        &mut self,
        deadline: &mut Instant,
        due: impl Fn(Instant) -> bool,
    ) -> Result<(), DriveError> {
        let mut repeats = 0;
        while due(*deadline) {
            let now = *deadline;
            self.machine.handle_input(Input::Timeout(now));
            *deadline = self.drain(now)?;
            repeats = if *deadline <= now { repeats + 1 } else { 0 };
            if repeats > MAX_TIMEOUTS_AT_ONE_INSTANT {
                return Err(DriveError::Stuck(now - self.clock.base));
            }
        }
        Ok(())
    }

    /// Collects the outputs due after an input at `now`; returns the next deadline
    fn drain(&mut self, now: Instant) -> Result<Instant, DriveError> {
        let time = self.clock.stamp(now);
        for _ in 0..MAX_OUTPUTS_PER_INPUT {
            match self.machine.poll_output(&mut self.buf) {
                Output::Transmit(t) => {
                    let (Some(data), Some(name)) =
                        (self.buf.get(..t.len), self.names.get(t.device.index()))
                    else {
                        return Err(DriveError::BadDevice(t.device.index()));
                    };
                    self.adapter.observe(Sender::Ours, data);
                    self.counts[t.device.index()].out += 1;
                    self.output.push(Frame {
                        interface: name.clone(),
                        time,
                        data: data.to_vec(),
                    });
                }
                Output::Stream(StreamOp::Connect { conn, .. }) => self.connects.push(conn),
                Output::Stream(StreamOp::Write { conn, len }) => {
                    let bytes = self.buf[..len].to_vec();
                    self.stream_written.push((time, conn, bytes));
                }
                Output::Stream(StreamOp::Close { .. }) => {}
                Output::Event(e) => self.events.push((time, e)),
                Output::Timeout(at) => return Ok(at),
            }
        }
        Err(DriveError::Stuck(time.saturating_sub(self.clock.start)))
    }
}
