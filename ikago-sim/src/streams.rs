//! `tcp` mode's kernel TCP connections between the clients and the server, as the runners would
//! report them: an ideal byte stream (in order, no loss) after a fixed delay, read in pieces of
//! random size
//!
//! A client's connect reaches the server one delay later (it is accepted: opened there) and the
//! client hears it opened one more delay later; a connect while the server is stopped is refused
//! (closed) after a round trip. Written bytes pile up in their direction and become readable one
//! delay later; each read takes a random number of them (1 to the configured maximum, seeded), so
//! a read may hold part of a record or several. A close reaches the other end one delay later. A
//! stopped server hears nothing and its connections stay silent; a restarted one has none, and
//! every client hears its connection closed (the new kernel resets it).

use crate::fabric::Origin;
use ikago_proto::{ConnId, StreamInput, StreamOp};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

/// Which machine a report goes to
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum To {
    /// Client `i`
    Client(usize),
    /// The server
    Server,
}

/// What is reported
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Opened(SocketAddr),
    /// Bytes are waiting to be read
    Readable,
    Closed,
}

#[derive(Debug)]
struct Due {
    at: Duration,
    to: To,
    conn: ConnId,
    what: What,
}

/// One connection: its ids at both ends and the bytes in flight each way
#[derive(Debug)]
struct Pipe {
    client: usize,
    client_conn: ConnId,
    server_conn: ConnId,
    to_server: VecDeque<u8>,
    to_client: VecDeque<u8>,
}

/// A report for a machine: the connection and what happened (bytes read are in `buf`)
#[derive(Debug)]
pub(crate) enum Report {
    /// Opened, with the peer
    Opened(SocketAddr),
    /// Bytes read
    Data(Vec<u8>),
    /// Closed
    Closed,
}

impl Report {
    /// The machine's input
    pub(crate) fn input(&self) -> StreamInput<'_> {
        match self {
            Self::Opened(peer) => StreamInput::Opened { peer: *peer },
            Self::Data(d) => StreamInput::Data(d),
            Self::Closed => StreamInput::Closed,
        }
    }
}

/// Every connection and the reports on their way
#[derive(Debug)]
pub(crate) struct Streams {
    delay: Duration,
    read_max: usize,
    rng: ChaCha8Rng,
    pipes: Vec<Pipe>,
    due: VecDeque<Due>,
    next_server_conn: u64,
}

impl Streams {
    /// Connections delivered after `delay`, read in pieces of 1 to `read_max` bytes drawn from
    /// `seed`
    pub(crate) fn new(delay: Duration, read_max: usize, seed: u64) -> Self {
        Self {
            delay,
            read_max: read_max.max(1),
            rng: ChaCha8Rng::seed_from_u64(seed),
            pipes: Vec::new(),
            due: VecDeque::new(),
            next_server_conn: 1,
        }
    }

    /// When the next report is due
    pub(crate) fn next_at(&self) -> Option<Duration> {
        self.due.front().map(|d| d.at)
    }

    fn schedule(&mut self, at: Duration, to: To, conn: ConnId, what: What) {
        // every report is due a fixed delay (or two) after now, so the queue stays in time
        // order once sorted on insertion from the back
        let pos = self
            .due
            .iter()
            .rposition(|d| d.at <= at)
            .map_or(0, |p| p + 1);
        self.due.insert(pos, Due { at, to, conn, what });
    }

    /// Carries out an operation of `origin` at `now`; `server_up` says whether the server
    /// accepts, `port` is its tunnel port
    pub(crate) fn handle(
        &mut self,
        now: Duration,
        origin: Origin,
        op: StreamOp,
        bytes: &[u8],
        server_up: bool,
        port: u16,
    ) {
        let d = self.delay;
        match (origin, op) {
            (
                Origin::Client(i),
                StreamOp::Connect {
                    conn,
                    local,
                    server,
                },
            ) => {
                if server_up && server.port() == port {
                    let server_conn = ConnId(self.next_server_conn);
                    self.next_server_conn += 1;
                    self.pipes.push(Pipe {
                        client: i,
                        client_conn: conn,
                        server_conn,
                        to_server: VecDeque::new(),
                        to_client: VecDeque::new(),
                    });
                    self.schedule(now + d, To::Server, server_conn, What::Opened(local));
                    self.schedule(now + d * 2, To::Client(i), conn, What::Opened(server));
                } else {
                    self.schedule(now + d * 2, To::Client(i), conn, What::Closed);
                }
            }
            (Origin::Client(i), StreamOp::Write { conn, .. }) => {
                if let Some(p) = self
                    .pipes
                    .iter_mut()
                    .find(|p| p.client == i && p.client_conn == conn)
                {
                    p.to_server.extend(bytes);
                    let to = p.server_conn;
                    self.schedule(now + d, To::Server, to, What::Readable);
                }
            }
            (Origin::Server, StreamOp::Write { conn, .. }) => {
                if let Some(p) = self.pipes.iter_mut().find(|p| p.server_conn == conn) {
                    p.to_client.extend(bytes);
                    let (i, to) = (p.client, p.client_conn);
                    self.schedule(now + d, To::Client(i), to, What::Readable);
                }
            }
            (Origin::Client(i), StreamOp::Close { conn }) => {
                if let Some(at) = self
                    .pipes
                    .iter()
                    .position(|p| p.client == i && p.client_conn == conn)
                {
                    let p = self.pipes.remove(at);
                    self.schedule(now + d, To::Server, p.server_conn, What::Closed);
                }
            }
            (Origin::Server, StreamOp::Close { conn }) => {
                if let Some(at) = self.pipes.iter().position(|p| p.server_conn == conn) {
                    let p = self.pipes.remove(at);
                    self.schedule(now + d, To::Client(p.client), p.client_conn, What::Closed);
                }
            }
            // fallbacks run FakeTCP; a server never connects
            (Origin::Fallback(_), _) | (Origin::Server, StreamOp::Connect { .. }) => {}
        }
    }

    /// The server restarted: it has no connection, and each client hears its own closed
    pub(crate) fn server_restarted(&mut self, now: Duration) {
        for p in std::mem::take(&mut self.pipes) {
            self.schedule(
                now + self.delay,
                To::Client(p.client),
                p.client_conn,
                What::Closed,
            );
        }
        self.due.retain(|d| d.to != To::Server);
    }

    /// The next report due at `now`, with its machine and connection
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<(To, ConnId, Report)> {
        loop {
            let d = self.due.front().filter(|d| d.at <= now)?;
            let (to, conn, what) = (d.to, d.conn, d.what);
            self.due.pop_front();
            let report = match what {
                What::Opened(peer) => Report::Opened(peer),
                What::Closed => Report::Closed,
                What::Readable => {
                    let n = 1 + self.rng.next_u32() as usize % self.read_max;
                    let Some(pending) = self.pending(to, conn) else {
                        continue;
                    };
                    if pending.is_empty() {
                        continue;
                    }
                    let n = n.min(pending.len());
                    let data: Vec<u8> = pending.drain(..n).collect();
                    if !pending.is_empty() {
                        // the rest is readable at once, in the next read
                        self.due.push_front(Due {
                            at: now,
                            to,
                            conn,
                            what: What::Readable,
                        });
                    }
                    Report::Data(data)
                }
            };
            return Some((to, conn, report));
        }
    }

    /// The bytes waiting for `to` on its connection `conn`
    fn pending(&mut self, to: To, conn: ConnId) -> Option<&mut VecDeque<u8>> {
        match to {
            To::Server => self
                .pipes
                .iter_mut()
                .find(|p| p.server_conn == conn)
                .map(|p| &mut p.to_server),
            To::Client(i) => self
                .pipes
                .iter_mut()
                .find(|p| p.client == i && p.client_conn == conn)
                .map(|p| &mut p.to_client),
        }
    }
}
