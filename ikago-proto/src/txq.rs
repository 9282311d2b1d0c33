//! Frames and events waiting for `poll_output`, in reusable buffers

use crate::event::Event;
use crate::io::{ConnId, DeviceId, Output, StreamOp, Transmit};
use std::collections::VecDeque;

/// Events kept before the oldest are discarded (a runner that never drains them loses only events)
const MAX_EVENTS: usize = 1024;

/// An owned frame buffer from the pool
#[derive(Debug)]
pub(crate) struct FrameBuf {
    /// The bytes; only `..len` is the frame
    pub(crate) bytes: Vec<u8>,
    /// Length of the frame
    pub(crate) len: usize,
}

/// Outgoing frames and events in FIFO order, with a pool of frame buffers so that steady-state
/// operation allocates nothing (buffers grow to the largest size asked of them and stay)
#[derive(Debug, Default)]
pub(crate) struct TxQueue {
    frames: VecDeque<(DeviceId, FrameBuf)>,
    /// Tunnel connection operations in order; a write holds its bytes
    streams: VecDeque<(StreamOp, Option<FrameBuf>)>,
    events: VecDeque<Event>,
    pool: Vec<Vec<u8>>,
}

/// Size of a fresh buffer: a full Ethernet frame, so most buffers never grow
const MIN_BUF: usize = 1536;

impl TxQueue {
    /// An empty queue
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Takes a buffer of at least `len` bytes from the pool
    pub(crate) fn take(&mut self, len: usize) -> FrameBuf {
        let mut bytes = self.pool.pop().unwrap_or_default();
        if bytes.len() < len.max(MIN_BUF) {
            bytes.resize(len.max(MIN_BUF), 0);
        }
        FrameBuf { bytes, len: 0 }
    }

    /// Returns a buffer to the pool
    pub(crate) fn recycle(&mut self, buf: FrameBuf) {
        self.pool.push(buf.bytes);
    }

    /// Queues a finished frame for `device`
    pub(crate) fn push(&mut self, device: DeviceId, buf: FrameBuf) {
        self.frames.push_back((device, buf));
    }

    /// Writes a frame of at most `max_len` bytes with `write` (which returns its length) and queues it
    pub(crate) fn push_with(
        &mut self,
        device: DeviceId,
        max_len: usize,
        write: impl FnOnce(&mut [u8]) -> usize,
    ) {
        let mut buf = self.take(max_len);
        buf.len = write(&mut buf.bytes);
        self.push(device, buf);
    }

    /// Queues `buf.bytes[..buf.len]` to be written to `conn`
    pub(crate) fn stream_write(&mut self, conn: ConnId, buf: FrameBuf) {
        let op = StreamOp::Write { conn, len: buf.len };
        self.streams.push_back((op, Some(buf)));
    }

    /// Queues a tunnel connection operation without bytes (connect, close)
    pub(crate) fn stream_op(&mut self, op: StreamOp) {
        self.streams.push_back((op, None));
    }

    /// Queues an event
    pub(crate) fn event(&mut self, e: Event) {
        if self.events.len() == MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    /// The next frame or stream write (copied into `out`), stream operation or event, if any
    ///
    /// # Panics
    /// If `out` is shorter than the frame (callers pass at least `MAX_FRAME_LEN`).
    pub(crate) fn poll(&mut self, out: &mut [u8]) -> Option<Output> {
        if let Some((device, buf)) = self.frames.pop_front() {
            let len = buf.len;
            out[..len].copy_from_slice(&buf.bytes[..len]);
            self.recycle(buf);
            return Some(Output::Transmit(Transmit { device, len }));
        }
        if let Some((op, buf)) = self.streams.pop_front() {
            if let Some(buf) = buf {
                out[..buf.len].copy_from_slice(&buf.bytes[..buf.len]);
                self.recycle(buf);
            }
            return Some(Output::Stream(op));
        }
        self.events.pop_front().map(Output::Event)
    }
}
