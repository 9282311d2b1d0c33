//! Every frame seen on the machines' devices, with virtual timestamps, as plain data
//!
//! One [`Tap`] per machine device (a client's LAN and WAN devices, the server's WAN and upstream
//! devices), in the order the devices were created. A later tool can write each tap as one
//! pcapng interface; nothing here depends on a pcap library.

use std::time::Duration;

/// Whether a frame arrived at the device or left it
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Delivered to the device by its segment (the device is promiscuous: every frame on the
    /// segment, not only those addressed to it)
    In,
    /// Sent by the device (by the machine or by its host's kernel, e.g. an ARP reply)
    Out,
}

/// One captured frame
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    /// Virtual time since the World was created
    pub at: Duration,
    /// In or out
    pub direction: Direction,
    /// The whole Ethernet frame
    pub data: Vec<u8>,
}

/// The frames of one device
#[derive(Debug, Clone, Default)]
pub struct Tap {
    /// `client0.lan`, `client0.wan`, `server.wan` or `server.upstream`
    pub name: String,
    /// Frames in time order
    pub frames: Vec<CapturedFrame>,
}

/// Every tap of a World (empty lists when capture is off)
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// One tap per machine device
    pub taps: Vec<Tap>,
}

impl Capture {
    /// The tap named `name`, if it exists
    pub fn tap(&self, name: &str) -> Option<&Tap> {
        self.taps.iter().find(|t| t.name == name)
    }
}
