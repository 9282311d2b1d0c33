//! The kernel's TCP socket diagnostics (`NETLINK_SOCK_DIAG`, `inet_diag`): every TCP socket on a
//! port, bound-only ones included (since Linux 6.8), which `/proc/net/tcp` leaves out

use super::Socket;
use rustix::net::netlink;
use rustix::net::sockopt::{self, Timeout};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// `SOCK_DIAG_BY_FAMILY`
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLM_F_REQUEST | NLM_F_DUMP`
const REQUEST_DUMP: u16 = 0x1 | 0x300;
/// `NLMSG_ERROR`
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`
const NLMSG_DONE: u16 = 3;
/// Length of `struct nlmsghdr`
const HEADER: usize = 16;
/// Length of `struct inet_diag_req_v2`
const REQUEST: usize = 56;
/// Offset of `idiag_inode` in `struct inet_diag_msg`
const INODE_AT: usize = 68;
/// How long the kernel may take to answer
const PATIENCE: Duration = Duration::from_secs(2);

/// Every TCP socket (IPv4 and IPv6, any state) whose local port is `port`
pub(super) fn sockets(port: u16) -> io::Result<Vec<Socket>> {
    let fd = rustix::net::socket_with(
        AddressFamily::NETLINK,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        Some(netlink::SOCK_DIAG),
    )?;
    sockopt::set_socket_timeout(&fd, Timeout::Recv, Some(PATIENCE))?;
    let mut found = Vec::new();
    for (seq, family) in [(1, AddressFamily::INET), (2, AddressFamily::INET6)] {
        let family = u8::try_from(family.as_raw()).expect("address families fit a byte");
        rustix::net::send(&fd, &request(seq, family, port), SendFlags::empty())?;
        read_dump(&fd, port, &mut found)?;
    }
    Ok(found)
}

/// A dump request for the TCP sockets of `family` in every state, sockets bound to `port` first
fn request(seq: u32, family: u8, port: u16) -> [u8; HEADER + REQUEST] {
    let mut m = [0u8; HEADER + REQUEST];
    m[0..4].copy_from_slice(&((HEADER + REQUEST) as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m[6..8].copy_from_slice(&REQUEST_DUMP.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    let r = &mut m[HEADER..];
    r[0] = family;
    r[1] = 6; // IPPROTO_TCP
    // every state bit, TCP_BOUND_INACTIVE (13) among them
    r[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    r[8..10].copy_from_slice(&port.to_be_bytes());
    // idiag_cookie: INET_DIAG_NOCOOKIE
    r[48..56].fill(0xff);
    m
}

/// Reads one dump to its end, adding the sockets on `port` to `found`
fn read_dump(fd: &OwnedFd, port: u16, found: &mut Vec<Socket>) -> io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let (len, _) = rustix::net::recv(fd, &mut buf[..], RecvFlags::empty())?;
        if parse(&buf[..len], port, found)? {
            return Ok(());
        }
    }
}

/// Parses the messages of one datagram; `Ok(true)` at the end of the dump
fn parse(mut data: &[u8], port: u16, found: &mut Vec<Socket>) -> io::Result<bool> {
    let malformed = || io::Error::new(io::ErrorKind::InvalidData, "malformed sock_diag reply");
    while data.len() >= HEADER {
        let len = u32::from_ne_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
        let kind = u16::from_ne_bytes(data[4..6].try_into().expect("2 bytes"));
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
            SOCK_DIAG_BY_FAMILY => {
                let inode = body.get(INODE_AT..INODE_AT + 4).ok_or_else(malformed)?;
                if u16::from_be_bytes([body[4], body[5]]) == port {
                    found.push(Socket {
                        inode: u64::from(u32::from_ne_bytes(inode.try_into().expect("4 bytes"))),
                        state: body[1],
                    });
                }
            }
            _ => {}
        }
        data = &data[len.next_multiple_of(4).min(data.len())..];
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply message as the kernel writes it
    fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((HEADER + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(body);
        m
    }

    fn socket(state: u8, port: u16, inode: u32) -> Vec<u8> {
        let mut b = vec![0u8; 72];
        b[0] = 2;
        b[1] = state;
        b[4..6].copy_from_slice(&port.to_be_bytes());
        b[INODE_AT..].copy_from_slice(&inode.to_ne_bytes());
        message(SOCK_DIAG_BY_FAMILY, &b)
    }

    #[test]
    fn replies_parse_to_the_sockets_on_the_port() {
        let mut data = socket(10, 18081, 4242);
        data.extend(socket(1, 40000, 7));
        data.extend(socket(6, 18081, 0));
        let mut found = Vec::new();
        assert!(!parse(&data, 18081, &mut found).unwrap(), "no end yet");
        assert_eq!(
            found,
            [
                Socket {
                    inode: 4242,
                    state: 10
                },
                Socket { inode: 0, state: 6 }
            ]
        );
        assert!(parse(&message(NLMSG_DONE, &[0; 4]), 1, &mut found).unwrap());
        let err = parse(&message(NLMSG_ERROR, &(-2i32).to_ne_bytes()), 1, &mut found);
        assert_eq!(err.unwrap_err().raw_os_error(), Some(2));
        // truncated and short messages are errors, never panics
        assert!(parse(&socket(10, 1, 1)[..40], 1, &mut found).is_err());
        assert!(parse(&message(SOCK_DIAG_BY_FAMILY, &[0; 8]), 1, &mut found).is_err());
    }

    #[test]
    fn requests_ask_for_every_state_of_one_family() {
        let r = request(7, 10, 18081);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 72);
        assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 7);
        assert_eq!(&r[16..18], &[10, 6]);
        assert_eq!(&r[24..26], &18081u16.to_be_bytes());
    }
}
