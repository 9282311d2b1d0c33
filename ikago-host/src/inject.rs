//! Injection in batches: the machine writes each frame straight into a preallocated slot, and the
//! engine sends every queued frame at the end of its turn, one `sendmmsg` per device
//!
//! A turn is what the engine does for one wake-up (a batch of captured frames, a deadline); it
//! never waits for more frames, so the first frame of a quiet period leaves as soon as the turn
//! that made it ends. When every slot is taken mid-turn, the queue is sent at once.
//!
//! Each device sends through a [`Sink`]: an AF_PACKET socket bound to it ([`PacketSocket`],
//! many frames per system call), or, where that socket cannot be opened, libpcap's portable
//! `pcap_sendpacket`, one call per frame. Failures are counted per device and logged at a
//! bounded rate, never fatal.

use crate::capture::{CaptureError, INJECT_BUFFER_BYTES, NOTHING, set_filter};
use crate::packet::{PacketSocket, Sent};
use ikago_config::QdiscBypass;
use ikago_proto::{DeviceId, MAX_FRAME_LEN};
use pcap::{Active, Capture};
use std::time::{Duration, Instant};

/// How often an injection failure is logged per device at most
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);
/// Frames queued before the queue is sent mid-turn
pub const SLOTS: usize = 64;

/// Where a device's frames go
pub enum Sink {
    /// An AF_PACKET socket bound to the device: a batch per system call
    Packet(PacketSocket),
    /// A pcap handle (whose filter admits nothing): one `pcap_sendpacket` per frame
    Pcap(Capture<Active>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Packet(_) => "Sink::Packet",
            Self::Pcap(_) => "Sink::Pcap",
        })
    }
}

impl Sink {
    /// The AF_PACKET socket of `device` (bypassing its queueing discipline as `qdisc_bypass`
    /// says: [`QdiscBypass::Auto`] where the device queues nothing, [`crate::qdisc`]), else a
    /// pcap inject handle, saying why in the log
    pub fn open(device: &str, qdisc_bypass: QdiscBypass) -> Result<Self, CaptureError> {
        let bypass = match qdisc_bypass {
            QdiscBypass::On => true,
            QdiscBypass::Off => false,
            QdiscBypass::Auto => match crate::qdisc::queues_nothing(device) {
                Ok(nothing) => {
                    if nothing {
                        log::debug!(
                            "Frames injected on {device} skip its qdisc (noqueue): tcpdump on \
                             {device} does not show them (--qdisc-bypass=false does)"
                        );
                    }
                    nothing
                }
                Err(e) => {
                    log::debug!("Cannot read the qdiscs of {device} ({e}): keeping them");
                    false
                }
            },
        };
        match PacketSocket::open(device, bypass) {
            Ok(s) => Ok(Self::Packet(s)),
            Err(e) => {
                log::warn!(
                    "Cannot open a packet socket on {device} ({e}): injecting one frame per call \
                     through pcap"
                );
                Self::pcap(device)
            }
        }
    }

    /// libpcap's portable injection on `device`
    fn pcap(device: &str) -> Result<Self, CaptureError> {
        let open_err = |source| CaptureError::Open {
            device: device.to_owned(),
            source,
        };
        let mut inject = Capture::from_device(device)
            .map_err(open_err)?
            .snaplen(64)
            .buffer_size(INJECT_BUFFER_BYTES)
            .open()
            .map_err(open_err)?;
        set_filter(&mut inject, device, NOTHING)?;
        Ok(Self::Pcap(inject))
    }

    /// Sends `frames` in order
    fn send<'a>(&mut self, frames: impl Iterator<Item = &'a [u8]>) -> Sent {
        match self {
            Self::Packet(s) => s.send(frames),
            Self::Pcap(h) => {
                let mut sent = Sent::default();
                for f in frames {
                    match h.sendpacket(f) {
                        Ok(()) => sent.frames += 1,
                        Err(_) => {
                            sent.failed += 1;
                            // libpcap formats its message after `send` failed, leaving errno
                            sent.error = std::io::Error::last_os_error().raw_os_error();
                        }
                    }
                }
                sent
            }
        }
    }

    /// Sends one frame at once
    pub fn send_one(&mut self, frame: &[u8]) -> Result<(), String> {
        match self {
            Self::Packet(s) => s.send_one(frame).map_err(|e| e.to_string()),
            Self::Pcap(h) => h.sendpacket(frame).map_err(|e| e.to_string()),
        }
    }
}

/// What a device's injection did so far
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectCounters {
    /// Frames the kernel took
    pub sent: u64,
    /// Frames it refused
    pub failed: u64,
    /// Batches it took only in part (the rest followed in further calls)
    pub short: u64,
}

/// One device's sink and counters
#[derive(Debug)]
struct Device {
    sink: Sink,
    name: String,
    counters: InjectCounters,
    last_logged: Option<Instant>,
}

/// The sinks, indexed by [`DeviceId`], and the queue of frames for the end of the turn
pub struct Injectors {
    devices: Vec<Device>,
    /// [`SLOTS`] frames of [`MAX_FRAME_LEN`] bytes, allocated once
    slots: Vec<u8>,
    /// Device and length of each queued frame, slot by slot
    queued: Vec<(DeviceId, usize)>,
}

impl std::fmt::Debug for Injectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injectors")
            .field("devices", &self.devices)
            .field("queued", &self.queued.len())
            .finish_non_exhaustive()
    }
}

impl Injectors {
    /// Takes the sinks of the devices named `names`, in device order
    pub fn new(sinks: Vec<Sink>, names: Vec<String>) -> Self {
        let devices = sinks
            .into_iter()
            .zip(names)
            .map(|(sink, name)| Device {
                sink,
                name,
                counters: InjectCounters::default(),
                last_logged: None,
            })
            .collect();
        Self {
            devices,
            slots: vec![0; SLOTS * MAX_FRAME_LEN],
            queued: Vec::with_capacity(SLOTS),
        }
    }

    /// The next free slot, [`MAX_FRAME_LEN`] bytes, for the machine's next frame (the queue is
    /// sent first when it is full); [`commit`](Self::commit) it once written
    pub fn slot(&mut self) -> &mut [u8] {
        if self.queued.len() == SLOTS {
            self.flush();
        }
        let at = self.queued.len() * MAX_FRAME_LEN;
        &mut self.slots[at..at + MAX_FRAME_LEN]
    }

    /// Queues the first `len` bytes of the slot [`slot`](Self::slot) returned, for `device`
    pub fn commit(&mut self, device: DeviceId, len: usize) {
        if device.index() < self.devices.len() && self.queued.len() < SLOTS {
            self.queued.push((device, len.min(MAX_FRAME_LEN)));
        }
    }

    /// Sends every queued frame, in order per device; the end of every turn calls it
    pub fn flush(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let Self {
            devices,
            slots,
            queued,
        } = self;
        for (i, d) in devices.iter_mut().enumerate() {
            if !queued.iter().any(|(dev, _)| dev.index() == i) {
                continue;
            }
            let frames = queued
                .iter()
                .enumerate()
                .filter(|(_, (dev, _))| dev.index() == i)
                .map(|(k, &(_, len))| &slots[k * MAX_FRAME_LEN..k * MAX_FRAME_LEN + len]);
            let sent = d.sink.send(frames);
            d.account(sent);
        }
        queued.clear();
    }

    /// The counters of each device, in device order
    pub fn counters(&self) -> impl Iterator<Item = InjectCounters> + '_ {
        self.devices.iter().map(|d| d.counters)
    }
}

impl Device {
    fn account(&mut self, sent: Sent) {
        let c = &mut self.counters;
        c.sent += sent.frames as u64;
        c.failed += sent.failed as u64;
        c.short += sent.short as u64;
        let Some(error) = sent.error else { return };
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL)
        {
            self.last_logged = Some(now);
            log::error!(
                "Cannot inject on {} ({} frames failed so far): {}",
                self.name,
                c.failed,
                std::io::Error::from_raw_os_error(error)
            );
        }
    }
}
