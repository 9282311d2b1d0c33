//! The HTTP side: [`Monitor`] accepts on its own thread and serves each connection on a
//! short-lived thread of its own, from the latest [`Snapshot`] a [`Publisher`] swapped in

use crate::request::{self, Method, Refusal, Request};
use crate::snapshot::Snapshot;
use crate::{dashboard, json, prometheus};
use std::borrow::Cow;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Connections served at once; more are answered 503 and closed
pub const MAX_CONNECTIONS: usize = 16;

/// Largest request head accepted; a longer one is answered 431
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Time a client has to send its whole request head (then 408), and to take the whole response
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Stack of the connection threads: rendering needs little
const STACK_SIZE: usize = 256 * 1024;

/// How long a connection is kept after the response, to read what the client still sends
const LINGER: Duration = Duration::from_millis(300);

/// Why the monitor could not start
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The address could not be bound (in use, not local, or privileged)
    #[error("cannot start the monitor on {addr}: {}", describe(source))]
    Bind {
        /// The address asked for
        addr: SocketAddr,
        /// What the OS said
        source: io::Error,
    },
    /// The accepting thread could not be started
    #[error("cannot start the monitor thread: {0}")]
    Spawn(#[source] io::Error),
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        ErrorKind::AddrInUse => "the address is already in use".into(),
        ErrorKind::AddrNotAvailable => "no local interface has this address".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// The engine thread's handle: publishes snapshots for the HTTP threads to read
///
/// Cloning is cheap; every clone publishes to the same monitor.
#[derive(Debug, Clone)]
pub struct Publisher {
    slot: Arc<Mutex<Option<Arc<Snapshot>>>>,
}

impl Publisher {
    /// Replaces the served snapshot; the lock is held for the pointer swap only, and the
    /// previous snapshot is freed after it is released (or by the last reader still using it)
    pub fn publish(&self, snapshot: Snapshot) {
        let new = Some(Arc::new(snapshot));
        let old = std::mem::replace(&mut *self.lock(), new);
        drop(old);
    }

    /// The snapshot being served, if any was published
    fn current(&self) -> Option<Arc<Snapshot>> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Snapshot>>> {
        // a panic elsewhere cannot leave a half-swapped pointer behind
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// State shared by the accepting thread and its owner
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    active: AtomicUsize,
}

/// The monitor's HTTP server; stops when dropped
///
/// Routes (GET or HEAD; OPTIONS answers CORS preflights; other methods get 405):
/// - `/` and `/dns`: the original's JSON (see [`json::original`], [`json::dns`]);
/// - `/metrics`: Prometheus text (see [`prometheus::render`]);
/// - `/dashboard`: the live page ([`dashboard::PAGE`]), which polls `/api/snapshot`
///   ([`json::api`]).
///
/// Any other path is 404. The original answered its stats on any path; this one does not, so
/// that a typo or a scanner gets a clear answer (IkaGo-web asks for `/` and `/dns` only). Data
/// routes answer 503 until the first snapshot is published. Every response carries
/// `Access-Control-Allow-Origin: *`, as the original's, and closes the connection.
#[derive(Debug)]
pub struct Monitor {
    addr: SocketAddr,
    publisher: Publisher,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Binds `addr` (port 0 picks a free port) and serves it from a new thread
    pub fn start(addr: SocketAddr) -> Result<Self, MonitorError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| MonitorError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| MonitorError::Bind { addr, source })?;
        let publisher = Publisher {
            slot: Arc::default(),
        };
        let shared = Arc::new(Shared::default());
        let acceptor = {
            let (publisher, shared) = (publisher.clone(), shared.clone());
            thread::Builder::new()
                .name("monitor".into())
                .spawn(move || accept(&listener, &publisher, &shared))
                .map_err(MonitorError::Spawn)?
        };
        Ok(Self {
            addr: bound,
            publisher,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address it listens on
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle to publish snapshots with
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Closes the listening socket and joins the accepting thread; connections being served
    /// end on their own, within their deadlines ([`IO_TIMEOUT`] to read, as much to write)
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::Release);
        // wake the blocking accept; if that fails the thread is left to exit on the next client
        let ip = match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let wake = SocketAddr::new(ip, self.addr.port());
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            let _ = acceptor.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The accepting thread: hands each connection to a thread of its own, within the cap
fn accept(listener: &TcpListener, publisher: &Publisher, shared: &Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        // out of descriptors or a connection reset before it was accepted: breathe, go on
        let Ok(stream) = conn else {
            thread::sleep(Duration::from_millis(20));
            continue;
        };
        let Some(slot) = Slot::take(shared) else {
            busy(stream);
            continue;
        };
        let publisher = publisher.clone();
        // if the thread cannot start, the connection and the slot are dropped with the closure
        let _ = thread::Builder::new()
            .name("monitor-conn".into())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                serve(stream, &publisher);
                drop(slot);
            });
    }
}

/// One of the [`MAX_CONNECTIONS`] places, given back when dropped
struct Slot(Arc<Shared>);

impl Slot {
    fn take(shared: &Arc<Shared>) -> Option<Self> {
        shared
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONNECTIONS).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(shared.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Answers 503 without waiting for the request, as quickly as the socket takes it
fn busy(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let r = Response::text(503, "too many connections to the monitor\n")
        .with_headers("Retry-After: 1\r\n");
    if stream.write_all(&r.bytes(false)).is_ok() {
        let _ = stream.shutdown(Shutdown::Write);
        // read what already arrived, so that closing is less likely to reset the 503 away
        let _ = stream.set_nonblocking(true);
        let mut sink = [0u8; 1024];
        for _ in 0..8 {
            if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
    }
}

/// A response ready to write
struct Response {
    status: u16,
    content_type: &'static str,
    body: Cow<'static, [u8]>,
    /// Extra header lines, each ending in CRLF
    headers: &'static str,
}

impl Response {
    fn ok(content_type: &'static str, body: impl Into<Cow<'static, [u8]>>) -> Self {
        Self {
            status: 200,
            content_type,
            body: body.into(),
            headers: "",
        }
    }

    fn text(status: u16, body: &'static str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().into(),
            headers: "",
        }
    }

    fn with_headers(mut self, headers: &'static str) -> Self {
        self.headers = headers;
        self
    }

    /// The status line, headers and, unless `head_only`, the body
    fn bytes(&self, head_only: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Access-Control-Allow-Origin: *\r\nCache-Control: no-store\r\n\
             X-Content-Type-Options: nosniff\r\nConnection: close\r\n{}\r\n",
            self.status,
            self.content_type,
            self.body.len(),
            self.headers,
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// What a route serves
fn route(req: &Request<'_>, publisher: &Publisher) -> Response {
    const ALLOW: &str = "Allow: GET, HEAD, OPTIONS\r\n";
    match req.method {
        Method::Get | Method::Head => {}
        Method::Options => {
            // CORS and Private Network Access preflights, for pages like IkaGo-web
            return Response::text(204, "").with_headers(
                "Allow: GET, HEAD, OPTIONS\r\nAccess-Control-Allow-Methods: GET, HEAD\r\n\
                 Access-Control-Allow-Headers: *\r\nAccess-Control-Allow-Private-Network: true\r\n\
                 Access-Control-Max-Age: 600\r\n",
            );
        }
        Method::Other => return Response::text(405, "use GET or HEAD\n").with_headers(ALLOW),
    }
    let render: fn(&Snapshot) -> String = match req.path {
        "/dashboard" => {
            return Response::ok("text/html; charset=utf-8", dashboard::PAGE.as_bytes())
                .with_headers(dashboard::CSP);
        }
        "/" => json::original,
        "/dns" => json::dns,
        "/api/snapshot" => json::api,
        "/metrics" => prometheus::render,
        _ => return Response::text(404, "not found: try /, /dns, /metrics or /dashboard\n"),
    };
    let Some(snapshot) = publisher.current() else {
        return Response::text(503, "no snapshot yet\n").with_headers("Retry-After: 1\r\n");
    };
    let content_type = if req.path == "/metrics" {
        prometheus::CONTENT_TYPE
    } else {
        "application/json"
    };
    Response::ok(content_type, render(&snapshot).into_bytes())
}

/// Reads one request within [`IO_TIMEOUT`], answers it, and closes
fn serve(mut stream: TcpStream, publisher: &Publisher) {
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + IO_TIMEOUT;
    let (response, head_only) = match read_head(&mut stream, deadline) {
        Ok(head) => match request::parse(&head) {
            Ok(req) => (route(&req, publisher), req.method == Method::Head),
            Err(Refusal::Malformed) => (Response::text(400, "malformed request\n"), false),
            Err(Refusal::Version) => (Response::text(505, "use HTTP/1.x\n"), false),
        },
        Err(Incomplete::Closed) => return,
        Err(Incomplete::Truncated) => (Response::text(400, "truncated request\n"), false),
        Err(Incomplete::TooLarge) => (Response::text(431, "request too large\n"), false),
        Err(Incomplete::Timeout) => (Response::text(408, "request too slow\n"), false),
    };
    let deadline = Instant::now() + IO_TIMEOUT;
    if write_all(&mut stream, &response.bytes(head_only), deadline).is_ok() {
        linger(&mut stream);
    }
}

/// Why no complete head was read
enum Incomplete {
    /// The peer closed or failed before sending anything: nothing to answer
    Closed,
    /// The peer closed in the middle of its head
    Truncated,
    /// Over [`MAX_REQUEST_BYTES`]
    TooLarge,
    /// Not complete by the deadline
    Timeout,
}

/// Reads up to the end of the head, within `deadline` however slowly the bytes come
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, Incomplete> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(Incomplete::Timeout);
        }
        let room = (MAX_REQUEST_BYTES + 1 - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) if buf.is_empty() => return Err(Incomplete::Closed),
            Ok(0) => return Err(Incomplete::Truncated),
            Ok(n) => {
                // the end may straddle two reads: look again from just before the new bytes
                let from = buf.len().saturating_sub(2);
                buf.extend_from_slice(&chunk[..n]);
                if let Some(len) = request::head_len(&buf[from..]) {
                    buf.truncate(from + len);
                    return Ok(buf);
                }
                if buf.len() > MAX_REQUEST_BYTES {
                    return Err(Incomplete::TooLarge);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(Incomplete::Timeout);
            }
            Err(_) if buf.is_empty() => return Err(Incomplete::Closed),
            Err(_) => return Err(Incomplete::Truncated),
        }
    }
}

/// Writes everything by `deadline`, however slowly the peer reads
fn write_all(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(bytes) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Half-closes, then reads briefly what the peer still sends (a body, a pipelined request),
/// so that closing does not reset the connection before the response is read
fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
