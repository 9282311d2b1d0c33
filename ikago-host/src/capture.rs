//! pcap capture handles, one per device, and the device's injection [`Sink`]
//!
//! Captures use immediate mode (a frame is delivered as soon as it arrives, crates.md §1),
//! snaplen 65535, promiscuous mode, a kernel ring of `--capture-buffer-mb` (a burst that finds it
//! full is dropped by the kernel and counted: [`DropCounters`]), inbound direction only (the
//! frames we inject are outbound, so we never read them back), the device's BPF filter, and
//! nonblocking reads: the engine waits on the handle's fd, then reads every frame that is ready.
//! The kernel hands the capture no outgoing frame at all where it can
//! ([`crate::packet::ignore_outgoing`]), so that the frames the engine injects cost it nothing.
//! On Linux, libpcap maps the ring into memory (`TPACKET_V2` in immediate mode: `TPACKET_V3`
//! hands frames over in blocks that wait for a block timeout, which immediate mode avoids), so a
//! ready frame costs no system call. Injection goes through [`Sink::open`].

use crate::inject::Sink;
use ikago_config::QdiscBypass;
use pcap::{Active, Capture, Direction, Linktype};
use std::os::fd::AsFd;

/// Largest frame captured, libpcap's usual snapshot length (tunnel frames are far smaller)
pub const SNAPLEN: usize = 65535;
/// Kernel ring size of each pcap inject handle, which captures nothing
pub(crate) const INJECT_BUFFER_BYTES: i32 = 64 << 10;
/// A filter no frame passes (a frame is never at most one byte long)
pub(crate) const NOTHING: &str = "less 1";

/// How a device is opened
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoOptions {
    /// Kernel ring size of the capture, MiB
    pub buffer_mb: u32,
    /// Whether injected frames skip the device's queueing discipline ([`crate::packet`],
    /// [`crate::qdisc`])
    pub qdisc_bypass: QdiscBypass,
}

impl IoOptions {
    /// The options `settings` give
    pub fn of(settings: &ikago_config::CommonSettings) -> Self {
        Self {
            buffer_mb: settings.capture_buffer_mb,
            qdisc_bypass: settings.qdisc_bypass,
        }
    }
}

/// What the kernel and libpcap counted for a capture since it opened (`pcap_stats`)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Frames that passed the filter (`ps_recv`)
    pub received: u64,
    /// Frames dropped because the ring was full (`ps_drop`)
    pub dropped: u64,
    /// Frames the interface or its driver dropped (`ps_ifdrop`)
    pub if_dropped: u64,
}

/// The counters of `capture`; zeros when libpcap cannot tell
pub fn drop_counters(capture: &mut Capture<Active>) -> DropCounters {
    capture.stats().map_or_else(
        |_| DropCounters::default(),
        |s| DropCounters {
            received: s.received.into(),
            dropped: s.dropped.into(),
            if_dropped: s.if_dropped.into(),
        },
    )
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

/// The capture handle and the injection sink of one device
pub struct DeviceIo {
    /// Reads the frames the filter admits, nonblocking
    pub capture: Capture<Active>,
    /// Injects frames
    pub inject: Sink,
}

impl std::fmt::Debug for DeviceIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceIo").finish_non_exhaustive()
    }
}

/// Opens the capture handle of `device` with `filter`, and its injection sink
pub fn open(device: &str, filter: &str, options: IoOptions) -> Result<DeviceIo, CaptureError> {
    let open_err = |source| CaptureError::Open {
        device: device.to_owned(),
        source,
    };
    let mut capture = Capture::from_device(device)
        .map_err(open_err)?
        .immediate_mode(true)
        .snaplen(SNAPLEN as i32)
        .promisc(true)
        .buffer_size(i32::try_from(u64::from(options.buffer_mb) << 20).unwrap_or(i32::MAX))
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
    if let Err(e) = crate::packet::ignore_outgoing(capture.as_fd()) {
        log::debug!("Capture on {device} sees the frames it sends (libpcap drops them): {e}");
    }
    set_filter(&mut capture, device, filter)?;
    let capture = capture.setnonblock().map_err(open_err)?;
    let inject = Sink::open(device, options.qdisc_bypass)?;
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
