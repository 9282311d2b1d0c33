//! systemd's service notifications (sd_notify(3)): readiness, status lines and stopping, each a
//! datagram of `NAME=VALUE` lines to the socket named by `NOTIFY_SOCKET`
//!
//! A `Type=notify` unit (the package's `ikago-server.service` and `ikago-client@.service`) counts
//! as started when the process says `READY=1`: the server once its captures are open and its
//! rules in place ([`started`]), the client once its first handshake with the server has
//! completed ([`event`]). `STATUS=` lines, which `systemctl status` shows, follow the tunnel:
//! connected or reconnecting for a client, the number of clients for a server. `STOPPING=1`
//! goes out when the run loop ends ([`stopping`]). Without `NOTIFY_SOCKET` (not started by
//! systemd, or by a unit of another type) every call does nothing.
//!
//! `NOTIFY_SOCKET` is a path, or an abstract socket name written with a leading `@`.

use ikago_proto::{Event, PeerLostReason};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::io;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::{Mutex, OnceLock};

/// The service manager's socket and what it has been told, when there is one
static SERVICE: OnceLock<Mutex<Service>> = OnceLock::new();

/// The role whose progress is reported, as [`started`] describes it
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A client tunnelling to this server: ready at the first completed handshake
    Client {
        /// The server
        server: std::net::SocketAddr,
    },
    /// A server on this tunnel port: ready as soon as it runs
    Server {
        /// The tunnel port
        port: u16,
    },
}

/// The socket, and the state behind the status lines
#[derive(Debug)]
struct Service {
    socket: UnixDatagram,
    to: SocketAddr,
    role: Role,
    /// Whether `READY=1` went out
    ready: bool,
    /// Server: the clients connected and not expired
    clients: HashSet<std::net::SocketAddr>,
}

/// Opens the notification socket when `NOTIFY_SOCKET` names one, and tells the service manager
/// what starts: `READY=1` at once for a server, a status line for a client (which is ready at
/// its first handshake); call once, when the run loop is about to start
pub fn started(role: Role) -> io::Result<()> {
    let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let to = address(&name)?;
    let socket = UnixDatagram::unbound()?;
    let mut service = Service {
        socket,
        to,
        role,
        ready: false,
        clients: HashSet::new(),
    };
    let message = match role {
        Role::Client { server } => format!("STATUS=Connecting to server {server}"),
        Role::Server { port } => {
            service.ready = true;
            format!("READY=1\nSTATUS={}", server_status(port, 0))
        }
    };
    service.send(&message)?;
    // a second call (tests) keeps the first socket
    let _ = SERVICE.set(Mutex::new(service));
    Ok(())
}

/// Reports what a machine's event changes in the service's state: readiness at the client's
/// first handshake, and the status line
pub fn event(e: &Event) {
    let Some(service) = SERVICE.get() else {
        return;
    };
    let mut service = service.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(message) = service.update(e) {
        service.send_or_warn(&message);
    }
}

/// Tells the service manager that the process is shutting down (the rules are removed next)
pub fn stopping() {
    if let Some(service) = SERVICE.get() {
        let service = service.lock().unwrap_or_else(|p| p.into_inner());
        service.send_or_warn("STOPPING=1\nSTATUS=Shutting down");
    }
}

/// The socket address of `NOTIFY_SOCKET`: a path, or `@name` for the abstract namespace
fn address(name: &OsStr) -> io::Result<SocketAddr> {
    match name.as_bytes() {
        [b'@', abstract_name @ ..] => SocketAddr::from_abstract_name(abstract_name),
        [b'/', ..] => SocketAddr::from_pathname(name),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "NOTIFY_SOCKET {:?} is neither a path nor an abstract name",
                name.to_string_lossy()
            ),
        )),
    }
}

/// The server's status line
fn server_status(port: u16, clients: usize) -> String {
    let s = if clients == 1 { "" } else { "s" };
    format!("Proxy from :{port}, {clients} client{s}")
}

impl Service {
    /// The message an event calls for, if any
    fn update(&mut self, e: &Event) -> Option<String> {
        match (self.role, e) {
            (Role::Client { .. }, Event::Connected { server, rtt }) => {
                let ready = if self.ready { "" } else { "READY=1\n" };
                self.ready = true;
                Some(format!(
                    "{ready}STATUS=Connected to server {server} ({} ms)",
                    rtt.as_millis()
                ))
            }
            (Role::Client { .. }, Event::PeerLost { server, reason }) => {
                let why = match reason {
                    PeerLostReason::Reset => "reset the connection",
                    PeerLostReason::Timeout => "stopped answering",
                    PeerLostReason::Closed => "closed the connection",
                };
                Some(format!("STATUS=Server {server} {why}, reconnecting"))
            }
            (Role::Client { .. }, Event::ServerSwitched { from, to }) => {
                Some(format!("STATUS=Switching from server {from} to {to}"))
            }
            (Role::Server { port }, Event::ClientConnected { client }) => self
                .clients
                .insert(*client)
                .then(|| format!("STATUS={}", server_status(port, self.clients.len()))),
            (
                Role::Server { port },
                Event::ClientExpired { client } | Event::ClientDisconnected { client },
            ) => self
                .clients
                .remove(client)
                .then(|| format!("STATUS={}", server_status(port, self.clients.len()))),
            _ => None,
        }
    }

    fn send(&self, message: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.to)
            .map(drop)
    }

    /// Sends `message`; a failure is logged, since the service manager then never hears of
    /// readiness and times the start out
    fn send_or_warn(&self, message: &str) {
        if let Err(e) = self.send(message) {
            log::warn!("Cannot notify the service manager: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A service reporting `role` to `to`
    fn service(role: Role, to: &str) -> Service {
        Service {
            socket: UnixDatagram::unbound().unwrap(),
            to: address(OsStr::new(to)).unwrap(),
            role,
            ready: false,
            clients: HashSet::new(),
        }
    }

    #[test]
    fn addresses() {
        let a = address(OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(
            a.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let a = address(OsStr::new("@ikago/notify")).unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"ikago/notify"[..]));
        assert!(address(OsStr::new("vsock:2:1")).is_err());
        assert!(address(OsStr::new("")).is_err());
    }

    #[test]
    fn a_client_is_ready_at_its_first_handshake() {
        let server: std::net::SocketAddr = "198.18.0.1:18081".parse().unwrap();
        let mut s = service(Role::Client { server }, "@unused");
        let connected = Event::Connected {
            server,
            rtt: Duration::from_millis(12),
        };
        assert_eq!(
            s.update(&Event::Connecting { server, retry: 0 }),
            None,
            "the status says connecting from the start"
        );
        assert_eq!(
            s.update(&connected).as_deref(),
            Some("READY=1\nSTATUS=Connected to server 198.18.0.1:18081 (12 ms)")
        );
        assert_eq!(
            s.update(&Event::PeerLost {
                server,
                reason: PeerLostReason::Timeout
            })
            .as_deref(),
            Some("STATUS=Server 198.18.0.1:18081 stopped answering, reconnecting")
        );
        assert_eq!(
            s.update(&connected).as_deref(),
            Some("STATUS=Connected to server 198.18.0.1:18081 (12 ms)"),
            "ready once"
        );
        let backup: std::net::SocketAddr = "198.18.0.2:18081".parse().unwrap();
        assert_eq!(
            s.update(&Event::ServerSwitched {
                from: server,
                to: backup
            })
            .as_deref(),
            Some("STATUS=Switching from server 198.18.0.1:18081 to 198.18.0.2:18081")
        );
    }

    #[test]
    fn a_server_counts_its_clients() {
        let mut s = service(Role::Server { port: 18081 }, "@unused");
        let a: std::net::SocketAddr = "198.18.1.2:40000".parse().unwrap();
        let b: std::net::SocketAddr = "198.18.1.3:40000".parse().unwrap();
        assert_eq!(server_status(18081, 0), "Proxy from :18081, 0 clients");
        let joined = |c| Event::ClientConnected { client: c };
        assert_eq!(
            s.update(&joined(a)).as_deref(),
            Some("STATUS=Proxy from :18081, 1 client")
        );
        assert_eq!(s.update(&joined(a)), None, "a handshake again is no change");
        assert_eq!(
            s.update(&joined(b)).as_deref(),
            Some("STATUS=Proxy from :18081, 2 clients")
        );
        assert_eq!(
            s.update(&Event::ClientExpired { client: a }).as_deref(),
            Some("STATUS=Proxy from :18081, 1 client")
        );
    }

    #[test]
    fn messages_reach_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("ikago-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        let s = service(Role::Server { port: 18081 }, path.to_str().unwrap());
        s.send_or_warn("STOPPING=1");
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_reach_an_abstract_socket() {
        let name = format!("ikago-notify-test-{}", std::process::id());
        let to = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let manager = UnixDatagram::bind_addr(&to).unwrap();
        let s = service(Role::Server { port: 1 }, &format!("@{name}"));
        s.send_or_warn("READY=1");
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
