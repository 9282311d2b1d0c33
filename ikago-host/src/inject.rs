//! Injection through each device's inject handle, with failures logged at a bounded rate

use ikago_proto::DeviceId;
use pcap::{Active, Capture};
use std::time::{Duration, Instant};

/// How often an injection failure is logged per device at most
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The inject handles, indexed by [`DeviceId`]
pub struct Injectors {
    handles: Vec<Capture<Active>>,
    names: Vec<String>,
    last_logged: Vec<Option<Instant>>,
    failed: Vec<u64>,
}

impl std::fmt::Debug for Injectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injectors")
            .field("devices", &self.names)
            .finish_non_exhaustive()
    }
}

impl Injectors {
    /// Takes the inject handles of the devices named `names`, in device order
    pub fn new(handles: Vec<Capture<Active>>, names: Vec<String>) -> Self {
        let n = handles.len();
        Self {
            handles,
            names,
            last_logged: vec![None; n],
            failed: vec![0; n],
        }
    }

    /// Injects `frame` on `device`; a failure is counted and logged, never fatal
    pub fn send(&mut self, device: DeviceId, frame: &[u8]) {
        let i = device.index();
        let Some(h) = self.handles.get_mut(i) else {
            return;
        };
        if let Err(e) = h.sendpacket(frame) {
            self.failed[i] += 1;
            let now = Instant::now();
            if self.last_logged[i].is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL) {
                self.last_logged[i] = Some(now);
                log::error!(
                    "Cannot inject a {}-byte frame on {} ({} failed so far): {e}",
                    frame.len(),
                    self.names[i],
                    self.failed[i]
                );
            }
        }
    }
}
