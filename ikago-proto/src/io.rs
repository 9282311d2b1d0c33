//! What goes into and comes out of a machine: [`Input`], [`Output`], [`Transmit`]

use crate::event::Event;
use std::time::Instant;

/// Index of a device in the machine's configured device list
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub u8);

impl DeviceId {
    /// The index into the configured device list
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// The largest link-layer frame a machine writes: an Ethernet header plus a 65535-byte IPv4 packet
///
/// The buffer given to `poll_output` must be at least this long.
pub const MAX_FRAME_LEN: usize = 14 + 65535;

/// One input to a machine
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A link-layer frame captured on `device` at `now`
    Frame {
        /// When the frame was captured
        now: Instant,
        /// The device it was captured on
        device: DeviceId,
        /// The whole frame, link header first
        data: &'a [u8],
    },
    /// Time passed: call at (or after) the last [`Output::Timeout`]; early calls are harmless
    Timeout(Instant),
}

/// One output of a machine, from `poll_output`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Inject `buf[..len]` on `device`
    Transmit(Transmit),
    /// Something the user may want to know
    Event(Event),
    /// Nothing more to do now; feed [`Input::Timeout`] at this instant unless a frame comes first
    Timeout(Instant),
}

/// A frame waiting in the caller's buffer: inject `buf[..len]` on `device`
#[must_use = "the frame is only in the buffer until the next poll_output"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The device to inject on
    pub device: DeviceId,
    /// Length of the whole link-layer frame at the start of the buffer
    pub len: usize,
}
