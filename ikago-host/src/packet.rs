//! Batch injection: an AF_PACKET raw socket bound to one device, sending many frames per system
//! call (`sendmmsg`)
//!
//! The socket is opened with protocol 0, so the kernel delivers it no frames at all: it only
//! sends. Frames leave through the device's queueing discipline like any other, unless
//! `PACKET_QDISC_BYPASS` is set ([`PacketSocket::open`]; [`crate::inject::Sink::open`] decides
//! per device, by default where the device queues nothing, [`crate::qdisc`]): then they go
//! straight to the driver,
//! skipping tc shaping and the taps (`tcpdump` on that device no longer sees them), and a full
//! driver queue drops them rather than queueing. Either way they skip the sending host's IP
//! stack and its firewall, as pcap injection does; the receiving host's firewall still sees them.
//!
//! This is the one module with `unsafe` code (socket address, socket option and `sendmmsg`,
//! through `libc`); every block says why it is sound.
#![allow(unsafe_code)]

use rustix::net::{AddressFamily, SocketType};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// An AF_PACKET socket that sends whole Ethernet frames on one device
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    /// `sendmmsg`'s arguments, kept between calls so that a batch allocates nothing
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the pointers in `iovecs` and `headers` are only set, used and dropped within one call
// of `send`; between calls they dangle but are never read
unsafe impl Send for PacketSocket {}

/// What one [`PacketSocket::send`] did
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    /// Frames the kernel took
    pub frames: usize,
    /// Frames it refused (each one skipped, the rest sent on)
    pub failed: usize,
    /// Calls that sent fewer frames than asked (the rest went in further calls)
    pub short: usize,
    /// The last refusal's OS error number (`errno`), for the log and for `check`
    pub error: Option<i32>,
}

impl PacketSocket {
    /// Opens a socket that sends on `device`, bypassing its queueing discipline when asked
    pub fn open(device: &str, qdisc_bypass: bool) -> io::Result<Self> {
        let fd = rustix::net::socket(AddressFamily::PACKET, SocketType::RAW, None)?;
        let index = rustix::net::netdevice::name_to_index(&fd, device)?;
        bind(fd.as_fd(), index)?;
        if qdisc_bypass {
            set_int(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)?;
        }
        Ok(Self {
            fd,
            iovecs: Vec::new(),
            headers: Vec::new(),
        })
    }

    /// Sends `frames` in order, as few calls as the kernel allows; a frame it refuses is
    /// counted and skipped
    pub fn send<'a>(&mut self, frames: impl Iterator<Item = &'a [u8]>) -> Sent {
        let mut sent = Sent::default();
        self.iovecs.clear();
        self.iovecs.extend(frames.map(|f| libc::iovec {
            iov_base: f.as_ptr().cast_mut().cast(),
            iov_len: f.len(),
        }));
        self.headers.clear();
        for iov in &mut self.iovecs {
            // SAFETY: an all-zero `mmsghdr` is valid (null name and control, no flags)
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            self.headers.push(h);
        }
        let mut next = 0;
        while next < self.headers.len() {
            let left = &mut self.headers[next..];
            let asked = u32::try_from(left.len()).unwrap_or(u32::MAX);
            // SAFETY: `left` holds `asked` initialised headers, each pointing at one iovec of
            // `self.iovecs`, which points into a frame borrowed for this call; the kernel reads
            // them and writes only `msg_len`
            let n = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), left.as_mut_ptr(), asked, 0) };
            match usize::try_from(n) {
                Ok(0) => {
                    sent.failed += 1;
                    next += 1;
                }
                Ok(n) => {
                    sent.frames += n;
                    if n < left.len() {
                        sent.short += 1;
                    }
                    next += n;
                }
                Err(_) => {
                    let e = io::Error::last_os_error();
                    if e.kind() != io::ErrorKind::Interrupted {
                        sent.failed += 1;
                        sent.error = e.raw_os_error();
                        next += 1;
                    }
                }
            }
        }
        // the frames' borrows end here: leave no pointer to them behind
        self.iovecs.clear();
        self.headers.clear();
        sent
    }

    /// Sends one frame
    pub fn send_one(&mut self, frame: &[u8]) -> io::Result<()> {
        match self.send(std::iter::once(frame)) {
            Sent { error: Some(e), .. } => Err(io::Error::from_raw_os_error(e)),
            _ => Ok(()),
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Tells the capture's packet socket `fd` to skip the frames its device sends
/// (`PACKET_IGNORE_OUTGOING`, Linux 4.20): a capture that reads inbound frames only then costs the
/// kernel nothing for each frame the engine injects, where it otherwise clones every one of them
/// for the socket's filter to refuse. An older kernel refuses the option, and nothing changes.
pub fn ignore_outgoing(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int(fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)
}

/// Binds the packet socket `fd` to the device with index `index`, receiving no protocol
fn bind(fd: BorrowedFd<'_>, index: u32) -> io::Result<()> {
    // SAFETY: an all-zero `sockaddr_ll` is valid; the fields that matter are set below
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::c_ushort;
    addr.sll_protocol = 0;
    addr.sll_ifindex = i32::try_from(index).map_err(|_| io::ErrorKind::InvalidInput)?;
    let len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `addr` is a `sockaddr_ll` of `len` bytes, alive for the call
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast::<libc::sockaddr>(),
            len,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the integer socket option `level`/`name` on `fd` to `value`
fn set_int(fd: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> io::Result<()> {
    let len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: `value` is an `int` of `len` bytes, alive for the call
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            len,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
