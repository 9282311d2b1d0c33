//! `--mode tcp`: the kernel TCP connections of the tunnel, for both runners
//!
//! The machine frames and de-frames ([`ikago_proto::stream`]); this module moves the bytes. Each
//! connection has a reader thread (blocking reads into buffers from a small per-connection
//! pool, handed to the engine and given back by [`Streams::recycle`]) and a writer thread
//! (blocking writes of buffers from a second pool). The engine never blocks on a socket: a
//! write that finds the pool empty (the peer reads slower than we write, [`WRITE_BUFFERS`]
//! records are waiting) is dropped whole and counted, since half a record would break the
//! framing. The server listens on its tunnel port on every listen device's addresses (IPv4, and
//! IPv6 when it has one), each listener with its thread; the client connects from its upstream address and port as the
//! original does (`SO_REUSEADDR`, so that a reconnect may take the port again), in a thread that
//! then reads. Every socket gets `TCP_NODELAY` and keepalives (a silent peer is given up after
//! about [`KEEPALIVE_IDLE`] + [`KEEPALIVE_COUNT`] × [`KEEPALIVE_INTERVAL`]). Whatever happens on
//! a connection reaches the engine as a [`StreamEvent`] through the runner's sink.

use ikago_proto::stream::CONNECT_TIMEOUT;
use ikago_proto::{ConnId, StreamInput, StreamOp};
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, TcpKeepalive, Type};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Read buffers per connection: reads waiting for the engine before the reader waits too
const READ_BUFFERS: usize = 8;
/// Size of a read buffer
const READ_SIZE: usize = 64 * 1024;
/// Records per connection waiting to be written before more are dropped
pub const WRITE_BUFFERS: usize = 256;
/// Keepalive: idle time before the first probe
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// Keepalive: time between probes
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Keepalive: unanswered probes before the connection is given up
pub const KEEPALIVE_COUNT: u32 = 3;
/// How often a dropped write is logged at most
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// What happened on a tunnel connection, for the engine to feed the machine
#[derive(Debug)]
pub enum StreamEvent {
    /// The connection opened (connected, or accepted from `peer`)
    Opened {
        /// The connection
        conn: ConnId,
        /// The other end
        peer: SocketAddr,
    },
    /// Bytes read, in `buf[..len]`; give `buf` back with [`Streams::recycle`]
    Data {
        /// The connection
        conn: ConnId,
        /// The buffer
        buf: Vec<u8>,
        /// How much of it was read
        len: usize,
    },
    /// The connection closed, failed, or could not be opened
    Closed {
        /// The connection
        conn: ConnId,
    },
}

impl StreamEvent {
    /// The connection and the machine's input for this event
    pub fn input(&self) -> (ConnId, StreamInput<'_>) {
        match self {
            Self::Opened { conn, peer } => (*conn, StreamInput::Opened { peer: *peer }),
            Self::Data { conn, buf, len } => (*conn, StreamInput::Data(&buf[..*len])),
            Self::Closed { conn } => (*conn, StreamInput::Closed),
        }
    }
}

/// Where the connection threads hand their events: false when the engine is gone
pub type Sink = Arc<dyn Fn(StreamEvent) -> bool + Send + Sync>;

/// The engine's handle on one connection
struct Handle {
    /// A clone of the socket, to shut it down
    socket: TcpStream,
    /// Records to the writer thread
    writes: SyncSender<Vec<u8>>,
    /// Empty write buffers back from the writer thread
    write_free: Receiver<Vec<u8>>,
    /// Read buffers back to the reader thread
    read_free: SyncSender<Vec<u8>>,
}

/// The connections, shared by the engine and the threads that open them
#[derive(Default)]
struct Table {
    conns: Mutex<HashMap<ConnId, Handle>>,
}

impl Table {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConnId, Handle>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The tunnel connections of a `tcp` mode runner; off in FakeTCP mode
pub struct Streams {
    table: Arc<Table>,
    sink: Option<Sink>,
    /// Records dropped because a connection's write pool was empty
    dropped: u64,
    last_logged: Option<Instant>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("open", &self.table.lock().len())
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

/// `TCP_NODELAY` and keepalives
fn tune(socket: &Socket) -> std::io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    socket.set_keepalive(true)?;
    socket.set_tcp_keepalive(
        &TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_COUNT),
    )
}

impl Streams {
    /// No tunnel connections (FakeTCP)
    pub fn off() -> Self {
        Self {
            table: Arc::default(),
            sink: None,
            dropped: 0,
            last_logged: None,
        }
    }

    /// A client's: connections are opened when the machine asks
    pub fn client(sink: Sink) -> Self {
        Self {
            sink: Some(sink),
            ..Self::off()
        }
    }

    /// A server's: accepts on `listeners` (see [`listen`]), in one thread each
    pub fn server(listeners: Vec<TcpListener>, sink: Sink) -> std::io::Result<Self> {
        let streams = Self::client(Arc::clone(&sink));
        let next = Arc::new(AtomicU64::new(1));
        for listener in listeners {
            let (table, sink, next) = (
                Arc::clone(&streams.table),
                Arc::clone(&sink),
                Arc::clone(&next),
            );
            std::thread::Builder::new()
                .name("tunnel listener".into())
                .spawn(move || accept_loop(&listener, &table, &sink, &next))?;
        }
        Ok(streams)
    }

    /// Carries out what the machine asked; a write's bytes are `bytes`
    pub fn handle(&mut self, op: StreamOp, bytes: &[u8]) {
        let Some(sink) = &self.sink else {
            return;
        };
        match op {
            StreamOp::Connect {
                conn,
                local,
                server,
            } => {
                let (table, to_engine) = (Arc::clone(&self.table), Arc::clone(sink));
                let spawned = std::thread::Builder::new()
                    .name("tunnel connect".into())
                    .spawn(move || match connect(local, server) {
                        Ok(stream) => run(stream, conn, server, &table, &to_engine),
                        Err(e) => {
                            log::debug!("Cannot connect to server {server} from {local}: {e}");
                            to_engine(StreamEvent::Closed { conn });
                        }
                    });
                if let Err(e) = spawned {
                    log::error!("Cannot start a connection thread: {e}");
                    sink(StreamEvent::Closed { conn });
                }
            }
            StreamOp::Write { conn, .. } => {
                let sent = {
                    let table = self.table.lock();
                    table.get(&conn).map(|h| match h.write_free.try_recv() {
                        Ok(mut buf) => {
                            buf.clear();
                            buf.extend_from_slice(bytes);
                            h.writes.try_send(buf).is_ok()
                        }
                        Err(_) => false,
                    })
                };
                if sent == Some(false) {
                    self.note_dropped(conn);
                }
            }
            StreamOp::Close { conn } => {
                if let Some(h) = self.table.lock().remove(&conn) {
                    let _ = h.socket.shutdown(Shutdown::Both);
                }
            }
        }
    }

    /// Gives a read buffer back to its connection's reader
    pub fn recycle(&mut self, conn: ConnId, buf: Vec<u8>) {
        if let Some(h) = self.table.lock().get(&conn) {
            let _ = h.read_free.try_send(buf);
        }
    }

    /// Closes every connection (at exit)
    pub fn close_all(&mut self) {
        for (_, h) in self.table.lock().drain() {
            let _ = h.socket.shutdown(Shutdown::Both);
        }
    }

    fn note_dropped(&mut self, conn: ConnId) {
        self.dropped += 1;
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|t| now.duration_since(t) >= DROP_LOG_INTERVAL)
        {
            self.last_logged = Some(now);
            log::warn!(
                "Tunnel connection {} cannot take more: a packet was dropped ({} so far)",
                conn.0,
                self.dropped
            );
        }
    }
}

/// Listens on every address of `addrs` (the tunnel port of each listen device, on its IPv4 and
/// IPv6 addresses); an address in use is an error naming it
pub fn listen(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, String> {
    addrs
        .iter()
        .map(|addr| {
            let socket = Socket::new(
                Domain::for_address(*addr),
                Type::STREAM,
                Some(Protocol::TCP),
            )
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            socket
                .set_reuse_address(true)
                .and_then(|()| socket.bind(&SockAddr::from(*addr)))
                .and_then(|()| socket.listen(128))
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            Ok(TcpListener::from(socket))
        })
        .collect()
}

/// Connects from `local` to `server` within [`CONNECT_TIMEOUT`]
fn connect(local: SocketAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(server),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(local))?;
    tune(&socket)?;
    socket.connect_timeout(&SockAddr::from(server), CONNECT_TIMEOUT)?;
    Ok(TcpStream::from(socket))
}

fn accept_loop(listener: &TcpListener, table: &Arc<Table>, sink: &Sink, next: &AtomicU64) {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = tune(&SockRef::from(&stream)) {
                    log::debug!("Cannot set the options of a connection from {peer}: {e}");
                }
                let conn = ConnId(next.fetch_add(1, Ordering::Relaxed));
                let (table, sink) = (Arc::clone(table), Arc::clone(sink));
                let spawned = std::thread::Builder::new()
                    .name("tunnel reader".into())
                    .spawn(move || run(stream, conn, peer, &table, &sink));
                if let Err(e) = spawned {
                    log::error!("Cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                log::error!("Cannot accept a tunnel connection: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Registers an open connection, starts its writer and reads it until it closes
fn run(stream: TcpStream, conn: ConnId, peer: SocketAddr, table: &Table, sink: &Sink) {
    let (writes, write_rx) = mpsc::sync_channel::<Vec<u8>>(WRITE_BUFFERS);
    let (write_back, write_free) = mpsc::sync_channel(WRITE_BUFFERS);
    for _ in 0..WRITE_BUFFERS {
        let _ = write_back.try_send(Vec::with_capacity(2048));
    }
    let (read_free, read_rx) = mpsc::sync_channel(READ_BUFFERS);
    for _ in 0..READ_BUFFERS {
        let _ = read_free.try_send(vec![0u8; READ_SIZE]);
    }
    let clones = (stream.try_clone(), stream.try_clone());
    let (Ok(socket), Ok(mut writer)) = clones else {
        sink(StreamEvent::Closed { conn });
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("tunnel writer".into())
        .spawn(move || {
            for buf in write_rx {
                if writer.write_all(&buf).is_err() {
                    // the reader sees the failure too and reports the close
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
                let _ = write_back.try_send(buf);
            }
        });
    if spawned.is_err() {
        sink(StreamEvent::Closed { conn });
        return;
    }
    table.lock().insert(
        conn,
        Handle {
            socket,
            writes,
            write_free,
            read_free,
        },
    );
    if !sink(StreamEvent::Opened { conn, peer }) {
        return;
    }
    let mut stream = stream;
    while let Ok(mut buf) = read_rx.recv() {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(len) => {
                if !sink(StreamEvent::Data { conn, buf, len }) {
                    return;
                }
            }
        }
    }
    if let Some(h) = table.lock().remove(&conn) {
        let _ = h.socket.shutdown(Shutdown::Both);
    }
    sink(StreamEvent::Closed { conn });
}
