//! The flight recorder (`--record FILE`): every input the machine is fed and every frame it
//! transmits, with its scenario, in one pcapng file that `ikago-replay FILE` replays byte for byte
//!
//! The file's format is [`ikago_replay::recording`]'s: the recorder encodes its blocks with that
//! module, so what it writes is what the replay reads. The engine calls [`Recorder::input`] just
//! before each `handle_input` and [`Recorder::output`] for each frame it injects; frames
//! transmitted after an input are stamped with that input's `now`, as the replay stamps its own.
//!
//! The engine never waits for the disk. It copies each frame into a buffer from a fixed pool and
//! hands it through a bounded queue to a writer thread, which owns the file, writes the block and
//! gives the buffer back: no allocation in the steady state (a buffer holds a full Ethernet frame;
//! one that meets a bigger frame grows once and keeps its size), and a `try_send` that cannot
//! block. When the pool or the queue runs dry, the disk is slower than the traffic: the recorder
//! stops there, since a recording with a gap cannot be replayed past it. When the file reaches
//! `--record-max-mb` the writer stops before the next input. Either way the tunnel goes on, one log
//! line says so, the end block tells the replay how many groups are whole, and the entries that
//! were not recorded are counted.

use ikago_config::RecordSettings;
use ikago_proto::{DeviceId, Input};
use ikago_replay::recording::{
    Direction, End, StopReason, encode_end, encode_frame, encode_interface, encode_scenario,
    encode_section_header, encode_timer,
};
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Buffers in the pool: frames that may wait for the writer
const POOL: usize = 8192;
/// Entries that may wait for the writer (frames and timer wake-ups)
const QUEUE: usize = POOL + 4096;
/// Bytes each buffer holds from the start: a full Ethernet frame at any MTU up to 2034
const BUFFER_BYTES: usize = 2048;
/// Bytes the writer gathers before a write to the file (fewer system calls under load)
const WRITE_BUFFER: usize = 1 << 20;

/// What the recorder needs to know about the machine when it starts
#[derive(Debug, Clone)]
pub struct Recorded<'a> {
    /// The program, for the section header (`ikago-sync 0.1.0`)
    pub application: &'a str,
    /// The device names, in device order
    pub devices: &'a [String],
    /// The scenario's JSON (without the password)
    pub scenario: &'a str,
    /// When the machine was created (the `now` given to its constructor)
    pub created: Instant,
    /// The wall-clock time of that instant
    pub created_wall: SystemTime,
}

/// The flight recorder of one run; every method is a no-op when it is off
#[derive(Debug, Default)]
pub struct Recorder {
    on: Option<Box<Running>>,
}

/// A recorder that is on: the engine's side
#[derive(Debug)]
struct Running {
    queue: SyncSender<Entry>,
    free: Receiver<Vec<u8>>,
    /// Set by the writer when it stops writing (size bound, write error)
    writer_stopped: Arc<AtomicBool>,
    created: Instant,
    /// The latest input's time since creation: it stamps the frames transmitted after it
    now: Duration,
    /// The current group: 0 at creation, one more at each input
    group: u64,
    /// The first group that is not whole, once the engine's side stopped recording
    stopped_at: Option<u64>,
    /// Why it stopped (`Closed` when it stopped because the writer did)
    reason: StopReason,
    /// Inputs and frames not handed to the writer
    not_recorded: u64,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
}

/// What the writer thread receives
#[derive(Debug)]
enum Entry {
    /// A frame in `buf`, fed to the machine or transmitted by it
    Frame {
        device: u32,
        at: Duration,
        direction: Direction,
        buf: Vec<u8>,
    },
    /// A timer wake-up
    Timer { at: Duration },
    /// The run is over: the engine side's account, for the end block
    Close {
        whole_groups: u64,
        reason: StopReason,
        not_recorded: u64,
    },
}

impl Entry {
    /// Whether it is an input, which opens a group
    fn opens_group(&self) -> bool {
        matches!(
            self,
            Self::Timer { .. }
                | Self::Frame {
                    direction: Direction::Inbound,
                    ..
                }
        )
    }
}

/// Why the recorder could not start
#[derive(Debug, thiserror::Error)]
#[error("cannot record to {path}: {source}")]
pub struct RecordError {
    path: PathBuf,
    source: std::io::Error,
}

impl Recorder {
    /// No recording
    pub fn off() -> Self {
        Self::default()
    }

    /// Creates the file of `settings` and writes its header, devices and scenario, then starts
    /// the writer thread
    pub fn start(settings: &RecordSettings, machine: &Recorded<'_>) -> Result<Self, RecordError> {
        let err = |source| RecordError {
            path: settings.path.clone(),
            source,
        };
        // only its owner may read it: it holds the LAN's traffic in the clear and the seed
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&settings.path)
            .map_err(err)?;
        Self::with_sink(
            BufWriter::with_capacity(WRITE_BUFFER, file),
            &settings.path,
            settings.max_bytes,
            machine,
        )
        .map_err(err)
    }

    /// [`Self::start`] over any byte sink (named `path` in the log)
    fn with_sink(
        mut sink: impl Write + Send + 'static,
        path: &Path,
        max_bytes: u64,
        machine: &Recorded<'_>,
    ) -> std::io::Result<Self> {
        let mut head = Vec::new();
        encode_section_header(&mut head, machine.application);
        for name in machine.devices {
            encode_interface(&mut head, name);
        }
        encode_scenario(&mut head, machine.scenario);
        sink.write_all(&head)?;
        sink.flush()?;
        let (queue, entries) = mpsc::sync_channel(QUEUE);
        let (give_back, free) = mpsc::sync_channel(POOL);
        for _ in 0..POOL {
            // never full: the list has room for every buffer
            let _ = give_back.try_send(Vec::with_capacity(BUFFER_BYTES));
        }
        let writer_stopped = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            sink,
            path: path.to_owned(),
            wall: machine
                .created_wall
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            written: head.len() as u64,
            max_bytes,
            group: 0,
            stopped_at: None,
            discarded: 0,
            give_back,
            stopped: Arc::clone(&writer_stopped),
            scratch: Vec::with_capacity(BUFFER_BYTES + 64),
        };
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || writer.run(entries))?;
        log::info!("Record to {}", path.display());
        Ok(Self {
            on: Some(Box::new(Running {
                queue,
                free,
                writer_stopped,
                created: machine.created,
                now: Duration::ZERO,
                group: 0,
                stopped_at: None,
                reason: StopReason::Closed,
                not_recorded: 0,
                writer: Some(thread),
                path: path.to_owned(),
            })),
        })
    }

    /// Records an input; call just before handing it to the machine
    #[inline]
    pub fn input(&mut self, input: Input<'_>) {
        let Some(r) = &mut self.on else { return };
        r.group += 1;
        match input {
            Input::Frame { now, device, data } => {
                r.now = now.saturating_duration_since(r.created);
                r.frame(device, data, Direction::Inbound);
            }
            // tcp mode is refused at start with --record
            Input::Stream { .. } => {}
            Input::Timeout(now) => {
                r.now = now.saturating_duration_since(r.created);
                if r.recording() {
                    let entry = Entry::Timer { at: r.now };
                    if r.queue.try_send(entry).is_err() {
                        r.stop_full();
                    }
                }
            }
        }
    }

    /// Stops recording before the next input, because the machine's settings were just changed
    /// (a config reload): the recording stays replayable up to here, as its scenario says
    pub fn stop_reconfigured(&mut self) {
        let Some(r) = &mut self.on else { return };
        if r.stopped_at.is_some() {
            return;
        }
        // the inputs so far were drained before the reload: their groups are whole
        r.stopped_at = Some(r.group + 1);
        r.reason = StopReason::Reconfigured;
        log::warn!(
            "Recording to {} stopped after input {}: the config was reloaded, which a replay \
             cannot follow; the tunnel goes on",
            r.path.display(),
            r.group
        );
    }

    /// Records a frame the machine transmitted on `device`
    #[inline]
    pub fn output(&mut self, device: DeviceId, data: &[u8]) {
        if let Some(r) = &mut self.on {
            r.frame(device, data, Direction::Outbound);
        }
    }
}

impl Running {
    /// Whether entries still go to the writer; counts one that does not
    fn recording(&mut self) -> bool {
        if self.stopped_at.is_none() && self.writer_stopped.load(Ordering::Relaxed) {
            self.stopped_at = Some(self.group);
        }
        if self.stopped_at.is_some() {
            self.not_recorded += 1;
        }
        self.stopped_at.is_none()
    }

    /// Hands a frame to the writer in a buffer from the pool
    fn frame(&mut self, device: DeviceId, data: &[u8], direction: Direction) {
        if !self.recording() {
            return;
        }
        let Ok(mut buf) = self.free.try_recv() else {
            return self.stop_full();
        };
        buf.clear();
        buf.extend_from_slice(data);
        let entry = Entry::Frame {
            device: u32::from(device.0),
            at: self.now,
            direction,
            buf,
        };
        if self.queue.try_send(entry).is_err() {
            self.stop_full();
        }
    }

    /// The writer fell behind: stop recording at the current group
    #[cold]
    fn stop_full(&mut self) {
        self.stopped_at = Some(self.group);
        self.reason = StopReason::QueueFull;
        self.not_recorded += 1;
        log::warn!(
            "Recording to {} stopped at input {}: the writer fell behind (the disk is slower than \
             the traffic); the tunnel goes on",
            self.path.display(),
            self.group
        );
    }
}

impl Drop for Running {
    /// Closes the recording: the writer writes the end block and the file is complete
    fn drop(&mut self) {
        let close = Entry::Close {
            whole_groups: self.stopped_at.unwrap_or(self.group + 1),
            reason: self.reason,
            not_recorded: self.not_recorded,
        };
        // a blocking send, at the end of the run only; it fails if the writer died
        let _ = self.queue.send(close);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The writer thread's state
struct Writer<W: Write> {
    sink: W,
    path: PathBuf,
    /// The machine's creation time since the Unix epoch
    wall: Duration,
    /// Bytes written so far
    written: u64,
    max_bytes: u64,
    /// The current group, counted as the engine counts it
    group: u64,
    /// The first group not whole, once the writer stopped, and why
    stopped_at: Option<(u64, StopReason)>,
    /// Entries received after it stopped
    discarded: u64,
    give_back: SyncSender<Vec<u8>>,
    stopped: Arc<AtomicBool>,
    /// One encoded block
    scratch: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Writes entries until the engine closes the recording
    fn run(mut self, entries: Receiver<Entry>) {
        let mut inputs = 0u64;
        let mut frames = 0u64;
        loop {
            let entry = match entries.try_recv() {
                Ok(e) => e,
                Err(TryRecvError::Empty) => {
                    // caught up: put what is written on disk, so that a killed run loses little
                    if let Err(e) = self.sink.flush() {
                        self.stop(StopReason::WriteError, &e.to_string());
                    }
                    match entries.recv() {
                        Ok(e) => e,
                        Err(_) => return,
                    }
                }
                Err(TryRecvError::Disconnected) => return,
            };
            if let Entry::Close {
                whole_groups,
                reason,
                not_recorded,
            } = entry
            {
                let (whole, why) = match self.stopped_at {
                    Some((w, r)) if w <= whole_groups => (w, r),
                    _ => (whole_groups, reason),
                };
                self.close(End {
                    whole_groups: whole,
                    not_recorded: not_recorded + self.discarded,
                    reason: why,
                });
                log::info!(
                    "Recorded {inputs} inputs and {frames} frames to {}{}",
                    self.path.display(),
                    match not_recorded + self.discarded {
                        0 => String::new(),
                        n => format!(" ({n} inputs and frames after it stopped not recorded)"),
                    }
                );
                return;
            }
            if entry.opens_group() {
                self.group += 1;
                if self.stopped_at.is_none() && self.written >= self.max_bytes {
                    let mb = self.max_bytes / 1_000_000;
                    self.stop(StopReason::SizeLimit, &format!("it reached {mb} MB"));
                }
            }
            if self.stopped_at.is_some() {
                self.discarded += 1;
                self.recycle(entry);
                continue;
            }
            self.scratch.clear();
            match &entry {
                Entry::Frame {
                    device,
                    at,
                    direction,
                    buf,
                } => {
                    encode_frame(&mut self.scratch, *device, self.wall + *at, buf, *direction);
                    match direction {
                        Direction::Inbound => inputs += 1,
                        Direction::Outbound => frames += 1,
                    }
                }
                Entry::Timer { at } => {
                    encode_timer(&mut self.scratch, self.wall + *at);
                    inputs += 1;
                }
                Entry::Close { .. } => {}
            }
            match self.sink.write_all(&self.scratch) {
                Ok(()) => self.written += self.scratch.len() as u64,
                Err(e) => self.stop(StopReason::WriteError, &e.to_string()),
            }
            self.recycle(entry);
        }
    }

    /// Gives a frame's buffer back to the pool
    fn recycle(&self, entry: Entry) {
        if let Entry::Frame { buf, .. } = entry {
            // never full: the list has room for every buffer
            let _ = self.give_back.try_send(buf);
        }
    }

    /// Stops writing at the current group and tells the engine
    fn stop(&mut self, reason: StopReason, why: &str) {
        if self.stopped_at.is_some() {
            return;
        }
        self.stopped_at = Some((self.group, reason));
        self.stopped.store(true, Ordering::Relaxed);
        log::warn!(
            "Recording to {} stopped at input {}: {why}; the tunnel goes on",
            self.path.display(),
            self.group
        );
    }

    /// Writes the end block
    fn close(&mut self, end: End) {
        self.scratch.clear();
        encode_end(&mut self.scratch, &end);
        let done = self
            .sink
            .write_all(&self.scratch)
            .and_then(|()| self.sink.flush());
        if let Err(e) = done {
            log::error!("Cannot close the recording {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikago_replay::capture::{Capture, read_capture_bytes};
    use ikago_replay::recording::Ending;
    use std::sync::Mutex;

    /// A sink that lets the header through, then holds the next write until the gate opens
    struct Gated {
        gate: Receiver<()>,
        writes: usize,
        bytes: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gated {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.writes == 1 {
                let _ = self.gate.recv();
            }
            self.writes += 1;
            self.bytes.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_slow_disk_stops_the_recording_without_blocking() {
        let (open, gate) = mpsc::channel();
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Gated {
            gate,
            writes: 0,
            bytes: Arc::clone(&bytes),
        };
        let created = Instant::now();
        let names = ["lan0".to_owned()];
        let recorded = Recorded {
            application: "test",
            devices: &names,
            scenario: r#"{"role":"server"}"#,
            created,
            created_wall: SystemTime::now(),
        };
        let mut r = Recorder::with_sink(sink, Path::new("gated"), u64::MAX, &recorded).unwrap();
        let fed = 3 * POOL;
        let frame = [7u8; 100];
        for i in 0..fed {
            // never waits, although the writer is stuck
            r.input(Input::Frame {
                now: created + Duration::from_micros(i as u64),
                device: DeviceId(0),
                data: &frame,
            });
        }
        open.send(()).unwrap();
        drop(r);
        let bytes = bytes.lock().unwrap().clone();
        let Ok(Capture::Recording(rec)) = read_capture_bytes(&bytes) else {
            panic!("a recording")
        };
        let Ending::Ended(end) = rec.ending else {
            panic!("closed with an end block")
        };
        assert_eq!(end.reason, StopReason::QueueFull);
        let kept = rec.inputs.len();
        assert!((POOL - 1..=POOL).contains(&kept), "{kept}");
        assert_eq!(end.whole_groups, kept as u64 + 1);
        assert_eq!(end.not_recorded, (fed - kept) as u64);
        assert_eq!(rec.left_out, 0);
    }

    /// A sink that keeps everything written
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reload_ends_the_recording_after_the_inputs_before_it() {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let created = Instant::now();
        let names = ["lan0".to_owned()];
        let recorded = Recorded {
            application: "test",
            devices: &names,
            scenario: r#"{"role":"client"}"#,
            created,
            created_wall: SystemTime::now(),
        };
        let sink = Kept(Arc::clone(&bytes));
        let mut r = Recorder::with_sink(sink, Path::new("kept"), u64::MAX, &recorded).unwrap();
        let frame = [7u8; 100];
        let input = |r: &mut Recorder, i: u64| {
            r.input(Input::Frame {
                now: created + Duration::from_millis(i),
                device: DeviceId(0),
                data: &frame,
            });
            r.output(DeviceId(0), &frame);
        };
        for i in 0..3 {
            input(&mut r, i);
        }
        r.stop_reconfigured();
        r.stop_reconfigured();
        for i in 3..5 {
            input(&mut r, i);
        }
        drop(r);
        let bytes = bytes.lock().unwrap().clone();
        let Ok(Capture::Recording(rec)) = read_capture_bytes(&bytes) else {
            panic!("a recording")
        };
        let Ending::Ended(end) = rec.ending else {
            panic!("closed with an end block")
        };
        assert_eq!(end.reason, StopReason::Reconfigured);
        assert_eq!(rec.inputs.len(), 3);
        assert_eq!(end.whole_groups, 4, "group 0 and the three inputs");
        assert_eq!(end.not_recorded, 4, "two inputs and two frames after it");
    }
}
