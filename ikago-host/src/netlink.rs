//! Netlink dumps, as the qdisc reader (`NETLINK_ROUTE`) and the port's socket diagnostics
//! (`NETLINK_SOCK_DIAG`) ask for them: one request out, then the replies' messages read until
//! `NLMSG_DONE`, an `NLMSG_ERROR` being the kernel's errno and a malformed message an error

use rustix::net::sockopt::{self, Timeout};
use rustix::net::{AddressFamily, Protocol, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// `NLM_F_REQUEST | NLM_F_DUMP`
const REQUEST_DUMP: u16 = 0x1 | 0x300;
/// `NLMSG_ERROR`
pub(crate) const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`
pub(crate) const NLMSG_DONE: u16 = 3;
/// Length of `struct nlmsghdr`
pub(crate) const HEADER: usize = 16;
/// How long the kernel may take to answer
const PATIENCE: Duration = Duration::from_secs(2);

/// A netlink socket of one protocol (`None`: `NETLINK_ROUTE`) whose reads give up after
/// [`PATIENCE`]
pub(crate) fn open(protocol: Option<Protocol>) -> io::Result<OwnedFd> {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        protocol,
    )?;
    sockopt::set_socket_timeout(&fd, Timeout::Recv, Some(PATIENCE))?;
    Ok(fd)
}

/// A dump request of message type `kind` with sequence number `seq` and request `body`
pub(crate) fn request(kind: u16, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; HEADER + body.len()];
    m[0..4].copy_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&REQUEST_DUMP.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    m[HEADER..].copy_from_slice(body);
    m
}

/// Sends `request` on `fd` and reads the dump to its end, giving `each` the type and body of
/// every message but `NLMSG_DONE` and `NLMSG_ERROR`
pub(crate) fn dump(
    fd: &OwnedFd,
    request: &[u8],
    mut each: impl FnMut(u16, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    rustix::net::send(fd, request, SendFlags::empty())?;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let (len, _) = rustix::net::recv(fd, &mut buf[..], RecvFlags::empty())?;
        if parse(&buf[..len], &mut each)? {
            return Ok(());
        }
    }
}

/// Parses the messages of one datagram, giving `each` the type and body of every message but
/// `NLMSG_DONE` and `NLMSG_ERROR`; `Ok(true)` at the end of the dump, the kernel's errno at an
/// `NLMSG_ERROR`, `InvalidData` for a message longer than the datagram
pub(crate) fn parse(
    mut data: &[u8],
    mut each: impl FnMut(u16, &[u8]) -> io::Result<()>,
) -> io::Result<bool> {
    while data.len() >= HEADER {
        let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < HEADER || len > data.len() {
            return Err(malformed());
        }
        let body = &data[HEADER..len];
        match kind {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let code = body
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes")))
                    .ok_or_else(malformed)?;
                return Err(io::Error::from_raw_os_error(-code));
            }
            _ => each(kind, body)?,
        }
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    Ok(false)
}

/// The error of a message too short for what it must hold
pub(crate) fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed netlink reply")
}

/// A reply message as the kernel writes it, padded to 4 bytes
#[cfg(test)]
pub(crate) fn message(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&[0; 10]);
    m.extend_from_slice(body);
    m.resize(m.len().next_multiple_of(4), 0);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages `parse` hands on, and its answer
    fn messages(data: &[u8]) -> (Vec<(u16, Vec<u8>)>, io::Result<bool>) {
        let mut seen = Vec::new();
        let end = parse(data, |kind, body| {
            seen.push((kind, body.to_vec()));
            Ok(())
        });
        (seen, end)
    }

    #[test]
    fn messages_are_handed_on_until_done() {
        let data = [
            message(20, &[1, 2, 3]),
            message(21, &[]),
            message(NLMSG_DONE, &[0; 4]),
            message(22, &[9]),
        ]
        .concat();
        let (seen, end) = messages(&data);
        assert!(end.unwrap(), "the dump ends");
        assert_eq!(
            seen,
            [(20, vec![1, 2, 3]), (21, vec![])],
            "the padding skipped"
        );
        let (seen, end) = messages(&message(20, &[5; 8]));
        assert!(!end.unwrap(), "no end yet");
        assert_eq!(seen, [(20, vec![5; 8])]);
    }

    #[test]
    fn errors_and_truncation_are_errors_never_panics() {
        let (seen, end) = messages(
            &[
                message(20, &[]),
                message(NLMSG_ERROR, &(-13i32).to_ne_bytes()),
            ]
            .concat(),
        );
        assert_eq!(end.unwrap_err().raw_os_error(), Some(13));
        assert_eq!(seen.len(), 1);
        let (_, end) = messages(&message(NLMSG_ERROR, &[0; 2]));
        assert_eq!(
            end.unwrap_err().kind(),
            io::ErrorKind::InvalidData,
            "error without its code"
        );
        let whole = message(20, &[7; 12]);
        for at in HEADER..whole.len() {
            let (seen, end) = messages(&whole[..at]);
            assert_eq!(
                end.unwrap_err().kind(),
                io::ErrorKind::InvalidData,
                "cut at {at}"
            );
            assert!(seen.is_empty());
        }
        let mut short = message(20, &[]);
        short[0..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(messages(&short).1.is_err(), "shorter than its header");
        let (seen, end) = messages(&whole[..HEADER - 1]);
        assert!(
            !end.unwrap() && seen.is_empty(),
            "less than a header: nothing yet"
        );
        let failing = parse(&whole, |_, _| Err(malformed()));
        assert!(failing.is_err(), "a message's own error ends the dump");
    }

    #[test]
    fn requests_carry_type_flags_sequence_and_body() {
        let r = request(38, 9, &[1, 2, 3, 4]);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), 38);
        assert_eq!(u16::from_ne_bytes([r[6], r[7]]), 0x301);
        assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 9);
        assert_eq!(&r[HEADER..], &[1, 2, 3, 4]);
    }
}
