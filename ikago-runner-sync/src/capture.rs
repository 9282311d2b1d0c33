//! The capture threads: one per device, frames into reused buffers, buffers into the engine
//!
//! A thread owns its pcap handle and blocks reading it. The engine reaches it through a
//! [`Handle`]: `pcap_breakloop` wakes the read, and the thread then looks at what the engine
//! asked: a new filter (a config reload), which it sets before reading on, or to stop.

use ikago_host::reload::Reread;
use ikago_proto::DeviceId;
use pcap::{Active, BreakLoop, Capture};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// What the engine thread receives
pub(crate) enum Msg {
    /// A frame in `buf[..len]`, captured on `device`; `buf` goes back to that device's free list
    Frame {
        /// Where it was captured
        device: DeviceId,
        /// The buffer holding it
        buf: Vec<u8>,
        /// The frame's length
        len: usize,
    },
    /// SIGINT or SIGTERM: stop
    Shutdown,
    /// SIGHUP: apply the config read again
    Reload(Box<Reread>),
    /// A capture failed (the device went away): stop with this reason
    Failed(String),
}

/// A running capture thread's end of the wiring
pub(crate) struct Wiring {
    /// Where frames go
    pub(crate) frames: SyncSender<Msg>,
    /// Where empty buffers come from
    pub(crate) free: Receiver<Vec<u8>>,
}

/// What the engine asked of a capture thread, read when `breakloop` wakes it
#[derive(Default)]
struct Requests {
    /// Set this filter, then read on
    filter: Mutex<Option<String>>,
    /// Stop reading
    stop: AtomicBool,
}

/// The engine's side of a capture thread
pub(crate) struct Handle {
    breaker: BreakLoop,
    requests: Arc<Requests>,
}

impl Handle {
    /// Has the thread set `filter` on its capture (it keeps reading)
    pub(crate) fn refilter(&self, filter: String) {
        *self
            .requests
            .filter
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(filter);
        self.breaker.breakloop();
    }

    /// Has the thread stop reading and return
    pub(crate) fn stop(&self) {
        self.requests.stop.store(true, Ordering::Release);
        self.breaker.breakloop();
    }
}

/// Starts the capture thread of `device` (named `name`); it stops when the engine calls
/// [`Handle::stop`] or drops its end of the wiring
pub(crate) fn spawn(
    device: DeviceId,
    name: String,
    mut cap: Capture<Active>,
    w: Wiring,
) -> std::io::Result<(JoinHandle<()>, Handle)> {
    let requests = Arc::new(Requests::default());
    let handle = Handle {
        breaker: cap.breakloop_handle(),
        requests: Arc::clone(&requests),
    };
    std::thread::Builder::new()
        .name(format!("capture {name}"))
        .spawn(move || {
            loop {
                match cap.next_packet() {
                    Ok(p) => {
                        // no free buffer means the engine is busy: wait for it (back-pressure);
                        // an error means it stopped
                        let Ok(mut buf) = w.free.recv() else { return };
                        let len = p.data.len().min(buf.len());
                        buf[..len].copy_from_slice(&p.data[..len]);
                        if w.frames.send(Msg::Frame { device, buf, len }).is_err() {
                            return;
                        }
                    }
                    Err(pcap::Error::TimeoutExpired) => {}
                    // what next_packet says after breakloop
                    Err(pcap::Error::NoMorePackets) => {
                        if requests.stop.load(Ordering::Acquire) {
                            return;
                        }
                        let filter = requests
                            .filter
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .take();
                        if let Some(f) = filter {
                            ikago_host::capture::refilter(&mut cap, &name, &f);
                        }
                    }
                    Err(e) => {
                        let _ = w
                            .frames
                            .send(Msg::Failed(format!("capture on {name} failed: {e}")));
                        return;
                    }
                }
            }
        })
        .map(|thread| (thread, handle))
}
