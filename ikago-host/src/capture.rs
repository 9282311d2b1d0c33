//! pcap handles: one capture handle and one inject handle per device
//!
//! Captures use immediate mode (a frame is delivered as soon as it arrives, crates.md §1),
//! snaplen 65535, promiscuous mode, a 4 MiB ring, inbound direction only (the frames we inject are
//! outbound, so we never read them back) and the device's BPF filter. Injection goes through a
//! second handle whose filter admits nothing, so that its ring stays empty.

use pcap::{Active, Capture, Direction, Linktype};

/// Largest frame captured, libpcap's usual snapshot length (tunnel frames are far smaller)
pub const SNAPLEN: usize = 65535;
/// Kernel ring size of each capture handle
const BUFFER_BYTES: i32 = 4 << 20;
/// Kernel ring size of each inject handle, which captures nothing
const INJECT_BUFFER_BYTES: i32 = 64 << 10;
/// A filter no frame passes (a frame is never at most one byte long)
const NOTHING: &str = "less 1";

/// How the capture handle reads
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// `next_packet` blocks until a frame arrives or `breakloop` is called from another thread
    Blocking,
    /// `next_packet` returns `TimeoutExpired` at once when no frame waits; wait on the fd
    NonBlocking,
}

/// Why a device could not be opened
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// libpcap refused
    #[error("cannot open device {device}: {source}")]
    Open {
        /// The device
        device: String,
        /// libpcap's error
        source: pcap::Error,
    },
    /// libpcap did not compile the filter (a bug in [`crate::filter`])
    #[error("cannot set filter {filter:?} on {device}: {source}")]
    Filter {
        /// The device
        device: String,
        /// The filter
        filter: String,
        /// libpcap's error
        source: pcap::Error,
    },
    /// The device's frames are not Ethernet
    #[error("device {device} is not Ethernet (link type {link})")]
    NotEthernet {
        /// The device
        device: String,
        /// Its link type name
        link: String,
    },
}

/// The two pcap handles of one device
pub struct DeviceIo {
    /// Reads the frames the filter admits
    pub capture: Capture<Active>,
    /// Injects frames
    pub inject: Capture<Active>,
}

impl std::fmt::Debug for DeviceIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIo").finish_non_exhaustive()
    }
}

/// Opens the capture and inject handles of `device` with `filter`
pub fn open(device: &str, filter: &str, mode: ReadMode) -> Result<DeviceIo, CaptureError> {
    let open_err = |source| CaptureError::Open {
        device: device.to_owned(),
        source,
    };
    let mut capture = Capture::from_device(device)
        .map_err(open_err)?
        .immediate_mode(true)
        .snaplen(SNAPLEN as i32)
        .promisc(true)
        .buffer_size(BUFFER_BYTES)
        .open()
        .map_err(open_err)?;
    let link = capture.get_datalink();
    if link != Linktype::ETHERNET {
        return Err(CaptureError::NotEthernet {
            device: device.to_owned(),
            link: link.get_name().unwrap_or_else(|_| link.0.to_string()),
        });
    }
    capture.direction(Direction::In).map_err(open_err)?;
    set_filter(&mut capture, device, filter)?;
    if mode == ReadMode::NonBlocking {
        capture = capture.setnonblock().map_err(open_err)?;
    }
    let mut inject = Capture::from_device(device)
        .map_err(open_err)?
        .snaplen(64)
        .buffer_size(INJECT_BUFFER_BYTES)
        .open()
        .map_err(open_err)?;
    set_filter(&mut inject, device, NOTHING)?;
    Ok(DeviceIo { capture, inject })
}

/// Sets `filter` on the handle of `device`, open or capturing already (libpcap swaps the kernel
/// filter in place; on failure the old one stays)
pub fn set_filter(
    capture: &mut Capture<Active>,
    device: &str,
    filter: &str,
) -> Result<(), CaptureError> {
    capture
        .filter(filter, true)
        .map_err(|source| CaptureError::Filter {
            device: device.to_owned(),
            filter: filter.to_owned(),
            source,
        })
}

/// Sets a new `filter` on the live capture of `device` (a config reload changed it), saying so
/// in the log; a failure is one error line and the old filter stays
pub fn refilter(capture: &mut Capture<Active>, device: &str, filter: &str) {
    match set_filter(capture, device, filter) {
        Ok(()) => log::debug!("Filter on {device}: {filter}"),
        Err(e) => log::error!("{e}"),
    }
}
