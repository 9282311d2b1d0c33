//! What goes into and comes out of a machine: [`Input`], [`Output`], [`Transmit`]

use crate::event::Event;
use std::net::SocketAddr;
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
    /// Something happened on a kernel TCP connection of the tunnel (`tcp` mode, see
    /// [`crate::Transport::Tcp`])
    Stream {
        /// When it happened
        now: Instant,
        /// The connection: the one a client's [`StreamOp::Connect`] named, or the id the
        /// server's runner gave a connection it accepted
        conn: ConnId,
        /// What happened
        event: StreamInput<'a>,
    },
    /// Time passed: call at (or after) the last [`Output::Timeout`]; early calls are harmless
    Timeout(Instant),
}

/// A kernel TCP connection of the tunnel, named by whoever opened it (the client machine in
/// [`StreamOp::Connect`], the server's runner when it accepts); ids are not reused while the
/// connection is open
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What a runner reports about a tunnel connection
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamInput<'a> {
    /// The connection is established: the client's connect completed, or the server accepted
    /// one from `peer`
    Opened {
        /// The remote end (the server for a client, the client for a server)
        peer: SocketAddr,
    },
    /// Bytes read from the connection, in stream order; any split (part of a record, several
    /// records) is fine
    Data(&'a [u8]),
    /// The connection closed, was reset, or a client's connect failed
    Closed,
}

/// What a machine asks of the runner's tunnel connections (`tcp` mode)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOp {
    /// Client: open a TCP connection from `local` to `server` and report it as `conn`
    /// ([`StreamInput::Opened`] or [`StreamInput::Closed`])
    Connect {
        /// The id to report it by
        conn: ConnId,
        /// The local address to bind (the upstream address and tunnel port)
        local: SocketAddr,
        /// The server
        server: SocketAddr,
    },
    /// Append `buf[..len]` to the connection's outgoing bytes; whole, or not at all when the
    /// runner's bounded send buffer is full (a partial write would break the framing)
    Write {
        /// The connection
        conn: ConnId,
        /// Length of the bytes at the start of the buffer
        len: usize,
    },
    /// Close the connection (it carried garbage, or the machine gave it up); no
    /// [`StreamInput::Closed`] is needed for it
    Close {
        /// The connection
        conn: ConnId,
    },
}

/// One output of a machine, from `poll_output`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Inject `buf[..len]` on `device`
    Transmit(Transmit),
    /// Act on a tunnel connection (`tcp` mode); a [`StreamOp::Write`]'s bytes are in the buffer
    Stream(StreamOp),
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
