//! The capture threads: one per device, frames into reused buffers, buffers into the engine

use ikago_proto::DeviceId;
use pcap::{Active, Capture};
use std::sync::mpsc::{Receiver, SyncSender};
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

/// Starts the capture thread of `device` (named `name`); it stops when the engine calls
/// `breakloop` on the capture or drops its end of the wiring
pub(crate) fn spawn(
    device: DeviceId,
    name: String,
    mut cap: Capture<Active>,
    w: Wiring,
) -> std::io::Result<JoinHandle<()>> {
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
                    Err(pcap::Error::NoMorePackets) => return,
                    Err(e) => {
                        let _ = w
                            .frames
                            .send(Msg::Failed(format!("capture on {name} failed: {e}")));
                        return;
                    }
                }
            }
        })
}
