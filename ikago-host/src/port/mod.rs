//! The tunnel port as ours: a bound TCP socket that never listens keeps the port from everyone
//! else on this host for as long as the process lives
//!
//! The server reserves its tunnel port, the client its local port when one is fixed. Nothing is
//! ever accepted on the socket (it does not listen, so the kernel still answers segments to the
//! port as it would for a closed one, which `--rule` drops); it only occupies the port, so that
//! another program's `bind` or `connect`, or a second instance, cannot take it. The socket is
//! bound without `SO_REUSEADDR`, which makes every other socket on the port, whatever its
//! options, a conflict both ways. When the port is taken already, [`reserve`] says by whom, as
//! far as this process can see: [`holders`] asks the kernel's socket diagnostics (which also
//! list bound sockets that do not listen, like another instance's reservation) and falls back to
//! `/proc/net/tcp{,6}`, then maps the sockets to processes through `/proc/*/fd`.

mod diag;
mod procfs;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketFlags, SocketType};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

/// A TCP port held by this process until dropped
#[derive(Debug)]
pub struct Reservation {
    _socket: OwnedFd,
}

/// Binds TCP `0.0.0.0:port` without listening; `what` names the port in messages ("tunnel
/// port"). `Err` is the one line to exit with when the port is in use; `Ok(None)` (after a
/// warning) when this process may not bind it (a port below 1024 without
/// `CAP_NET_BIND_SERVICE`), since the tunnel works without the reservation.
pub fn reserve(what: &str, port: u16) -> Result<Option<Reservation>, String> {
    let socket = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| format!("cannot reserve {what} {port}: {e}"))?;
    match rustix::net::bind(&socket, &SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)) {
        Ok(()) => Ok(Some(Reservation { _socket: socket })),
        Err(Errno::ADDRINUSE) => Err(format!("{what} {port} is in use{}", holders(port))),
        Err(e @ Errno::ACCESS) => {
            log::warn!(
                "Cannot reserve {what} {port} ({e}: ports below 1024 need \
                 CAP_NET_BIND_SERVICE): other programs may take it"
            );
            Ok(None)
        }
        Err(e) => Err(format!("cannot reserve {what} {port}: {e}")),
    }
}

/// A TCP socket on the port, as the kernel lists it
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Socket {
    /// The socket's inode, 0 for one no process owns (TIME_WAIT)
    inode: u64,
    /// TCP state number (`/proc/net/tcp`'s `st`)
    state: u8,
}

/// TCP state number of a connection in TIME_WAIT
const TIME_WAIT: u8 = 6;

/// Who holds a port, as far as this process can see; its [`Display`](fmt::Display) is the end of
/// the "in use" line: ` by NAME (pid N), ...`, or nothing when no holder is visible
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Holders {
    /// The processes owning a socket on the port: pid and command name, by pid
    pub processes: Vec<(u32, String)>,
    /// Whether a closed connection in TIME_WAIT holds it
    pub time_wait: bool,
}

/// Processes named in the message at most
const NAMED: usize = 3;

impl fmt::Display for Holders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (pid, name)) in self.processes.iter().take(NAMED).enumerate() {
            let sep = if i == 0 { " by" } else { "," };
            write!(f, "{sep} {name} (pid {pid})")?;
        }
        if self.processes.len() > NAMED {
            write!(f, " and {} more", self.processes.len() - NAMED)?;
        }
        if self.processes.is_empty() && self.time_wait {
            write!(
                f,
                " by a closed connection in TIME_WAIT (free again within a minute)"
            )?;
        }
        Ok(())
    }
}

/// Who holds TCP `port` in this network namespace
pub fn holders(port: u16) -> Holders {
    let sockets = diag::sockets(port).unwrap_or_else(|_| procfs::sockets(port));
    let inodes: Vec<u64> = sockets
        .iter()
        .map(|s| s.inode)
        .filter(|&i| i != 0)
        .collect();
    Holders {
        processes: procfs::owners(&inodes),
        time_wait: sockets.iter().any(|s| s.state == TIME_WAIT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn the_line_names_the_processes() {
        let none = Holders::default();
        assert_eq!(none.to_string(), "");
        let tw = Holders {
            processes: vec![],
            time_wait: true,
        };
        assert_eq!(
            tw.to_string(),
            " by a closed connection in TIME_WAIT (free again within a minute)"
        );
        let one = Holders {
            processes: vec![(812, "ikago-async".into())],
            time_wait: true,
        };
        assert_eq!(one.to_string(), " by ikago-async (pid 812)");
        let many = Holders {
            processes: (1..=5).map(|p| (p, format!("w{p}"))).collect(),
            time_wait: false,
        };
        assert_eq!(
            many.to_string(),
            " by w1 (pid 1), w2 (pid 2), w3 (pid 3) and 2 more"
        );
    }

    #[test]
    fn a_reserved_port_is_kept_from_others_and_names_its_holder() {
        // port 0 picks a free one; the reservation is then read back through a listener's
        // failure to bind it
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let held = reserve("tunnel port", port)
            .unwrap()
            .expect("a free port binds");
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_err(),
            "others cannot bind it"
        );
        let err = reserve("tunnel port", port).unwrap_err();
        let me = procfs::name(std::process::id()).expect("our own name");
        // a bound socket that does not listen is only visible to the socket diagnostics, and to
        // them only since Linux 6.8
        if diag::sockets(port).is_ok_and(|s| !s.is_empty()) {
            assert_eq!(
                err,
                format!(
                    "tunnel port {port} is in use by {me} (pid {})",
                    std::process::id()
                )
            );
        } else {
            assert_eq!(err, format!("tunnel port {port} is in use"));
        }
        drop(held);
        drop(reserve("tunnel port", port).unwrap().expect("free again"));

        // a listener is visible either way
        let listener = TcpListener::bind(("0.0.0.0", port)).unwrap();
        assert_eq!(
            reserve("local port", port).unwrap_err(),
            format!(
                "local port {port} is in use by {me} (pid {})",
                std::process::id()
            )
        );
        assert_eq!(procfs::sockets(port).len(), 1, "listed in /proc/net/tcp");
        drop(listener);
    }
}
