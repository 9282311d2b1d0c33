//! The kernel's TCP socket diagnostics (`NETLINK_SOCK_DIAG`, `inet_diag`): every TCP socket on a
//! port, bound-only ones included (since Linux 6.8), which `/proc/net/tcp` leaves out

use super::Socket;
use crate::netlink::{self, malformed};
use rustix::net::{AddressFamily, netlink::SOCK_DIAG};
use std::io;

/// `SOCK_DIAG_BY_FAMILY`
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// Length of `struct inet_diag_req_v2`
const REQUEST: usize = 56;
/// Offset of `idiag_inode` in `struct inet_diag_msg`
const INODE_AT: usize = 68;

/// Every TCP socket (IPv4 and IPv6, any state) whose local port is `port`
pub(super) fn sockets(port: u16) -> io::Result<Vec<Socket>> {
    let fd = netlink::open(Some(SOCK_DIAG))?;
    let mut found = Vec::new();
    for (seq, family) in [(1, AddressFamily::INET), (2, AddressFamily::INET6)] {
        let family = u8::try_from(family.as_raw()).expect("address families fit a byte");
        netlink::dump(&fd, &request(seq, family, port), |kind, body| {
            add(kind, body, port, &mut found)
        })?;
    }
    Ok(found)
}

/// A dump request for the TCP sockets of `family` in every state, sockets bound to `port` first
fn request(seq: u32, family: u8, port: u16) -> Vec<u8> {
    let mut r = [0u8; REQUEST];
    r[0] = family;
    r[1] = 6; // IPPROTO_TCP
    // every state bit, TCP_BOUND_INACTIVE (13) among them
    r[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    r[8..10].copy_from_slice(&port.to_be_bytes());
    // idiag_cookie: INET_DIAG_NOCOOKIE
    r[48..56].fill(0xff);
    netlink::request(SOCK_DIAG_BY_FAMILY, seq, &r)
}

/// Adds the reply message of type `kind` to `found` when it is a socket on `port`
fn add(kind: u16, body: &[u8], port: u16, found: &mut Vec<Socket>) -> io::Result<()> {
    if kind == SOCK_DIAG_BY_FAMILY {
        let inode = body.get(INODE_AT..INODE_AT + 4).ok_or_else(malformed)?;
        if u16::from_be_bytes([body[4], body[5]]) == port {
            found.push(Socket {
                inode: u64::from(u32::from_ne_bytes(inode.try_into().expect("4 bytes"))),
                state: body[1],
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{NLMSG_DONE, NLMSG_ERROR, message};

    /// Parses one datagram of a dump for the sockets on `port`; `Ok(true)` at its end
    fn parse(data: &[u8], port: u16, found: &mut Vec<Socket>) -> io::Result<bool> {
        netlink::parse(data, |kind, body| add(kind, body, port, found))
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
