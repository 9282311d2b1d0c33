//! `tcp` mode: the tunnel in the byte stream of a kernel TCP connection
//!
//! # Who does what
//!
//! The runner owns the sockets: it connects (client), listens and accepts (server), reads,
//! writes, sets `TCP_NODELAY` and keepalives, and reports each connection's life as
//! [`Input::Stream`](crate::Input::Stream) ([`StreamInput::Opened`], [`StreamInput::Data`],
//! [`StreamInput::Closed`]). The machine owns everything else: framing and de-framing, when to
//! connect and when to try again, the sources, the NAT and the counters; it asks for socket work
//! with [`Output::Stream`](crate::Output::Stream) ([`StreamOp`]).
//!
//! # Framing
//!
//! With `--protocol ikago` and method `plain` the stream is the original's: inner IPv4 packets
//! back to back, each delimited by its own IPv4 Total Length, so a Go peer in `tcp` mode
//! understands it. Reads may split a packet or join several; the [`Deframer`] keeps the part of
//! a packet that has not arrived yet (at most one packet, 64 KiB) and hands out whole ones. As
//! the original's "desticker", a partial packet that has waited [`STALE_AFTER`] without any
//! packet completing is discarded when the next bytes arrive ([`DropReason::StreamStale`]).
//! Bytes that cannot start an IPv4 packet (version not 4, header shorter than 20 bytes, a Total
//! Length shorter than the header) leave no way to find the next boundary: the connection is
//! closed ([`StreamOp::Close`]) and counted ([`DropReason::StreamGarbage`]); other connections
//! are untouched. Encrypted methods cannot be delimited in the original's stream and are refused
//! at start.
//!
//! With `ikago2` the stream carries its records (docs/protocol.md §6), cut by their length
//! prefix, with one [`Endpoint`] per connection: the client sends the initiation as the
//! connection opens and holds packets until the session is up; the server answers a valid
//! initiation and closes, answering nothing, a connection whose first record is not one. A
//! record that does not open is a counted drop; an unknown type or an impossible length is
//! garbage as above. The client pings every keepalive interval (the RTT) and gives up a
//! connection whose handshake takes [`CONNECT_TIMEOUT`] or whose server is silent for the peer
//! timeout; a close record closes the connection. A server taking both wires tells them apart
//! by a connection's first byte ([`Framing::Detect`]).
//!
//! # Connecting (client)
//!
//! The client asks for one connection at start ([`StreamOp::Connect`], event
//! [`Event::Connecting`]); when it opens, [`Event::Connected`] carries the connect time as the
//! RTT and the packets queued meanwhile go out. When it closes, fails to connect, does not
//! connect within [`CONNECT_TIMEOUT`], or carries garbage, [`Event::PeerLost`] says so and the
//! next attempt follows after a backoff: the tuning's `syn_rto`, doubled per failed attempt up to
//! `syn_rto_max`, back to `syn_rto` once a connection opened. Each attempt has a fresh
//! [`ConnId`]; reports about an old one are ignored.
//!
//! # Serving (server)
//!
//! Every accepted connection is one client in the monitor (keyed by its TCP peer address), with
//! its own de-framer; closing it forgets the client ([`Event::ClientDisconnected`]), its NAT
//! mappings stay until they expire.

use crate::config::{Protocol, TcpTuning};
use crate::event::{Event, PeerLostReason};
use crate::ikago2::handshake::{INITIATION_LEN, RESPONSE_LEN};
use crate::ikago2::record::{
    PACKET_OVERHEAD, TYPE_INITIATION, TYPE_RESPONSE, TYPE_TRANSPORT, record_type,
};
use crate::ikago2::{Endpoint, Kind, Received, Rekey, Responder, Session, record_len};
use crate::io::{ConnId, StreamInput, StreamOp};
use crate::machine::Core;
use crate::stats::{DropReason, Peer, PeerStats};
use crate::txq::FrameBuf;
use crate::wire::{ethernet, ipv4};
use rand_core::RngCore;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A partial record older than this (no record completed meanwhile) is discarded when the next
/// bytes arrive, as the original's desticker does
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// A client's connect that has not completed after this long is given up and tried again
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The stream cannot be de-framed: the connection must be closed
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Garbage;

/// How a connection's stream is cut into records
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// The original's: IPv4 packets delimited by their Total Length
    Ipv4,
    /// `ikago2` records, each after its 16-bit length
    Ikago2,
    /// Either, told by the first byte (a server accepting both wires): an IPv4 header starts
    /// with `0x4_`, an `ikago2` initiation's length with `0x00`
    Detect,
}

impl Framing {
    /// The length of the record starting with `head`, `None` while too few bytes are there
    fn record_len(self, head: &[u8]) -> Result<Option<usize>, Garbage> {
        match self {
            Self::Ipv4 => ipv4_len(head),
            Self::Ikago2 => ikago2_len(head),
            Self::Detect => match head.first() {
                None => Ok(None),
                Some(b) if b >> 4 == 4 => ipv4_len(head),
                Some(_) => ikago2_len(head),
            },
        }
    }

    /// The framing once `record` (whole) was cut with this one
    fn decided(self, record: &[u8]) -> Self {
        match (self, record.first()) {
            (Self::Detect, Some(b)) if b >> 4 == 4 => Self::Ipv4,
            (Self::Detect, _) => Self::Ikago2,
            (f, _) => f,
        }
    }
}

/// The length of the IPv4 packet starting with `head`: its Total Length
fn ipv4_len(head: &[u8]) -> Result<Option<usize>, Garbage> {
    let Some(&first) = head.first() else {
        return Ok(None);
    };
    let header = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header < ipv4::HEADER_LEN {
        return Err(Garbage);
    }
    let Some(len) = head.get(2..4) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
    if len < header || len > ipv4::MAX_LEN {
        return Err(Garbage);
    }
    Ok(Some(len))
}

/// The length of the `ikago2` record starting with `head`, once its type byte is there: a
/// handshake record must have its one length, a transport record room for its header, tag and
/// kind; an unknown type is garbage
fn ikago2_len(head: &[u8]) -> Result<Option<usize>, Garbage> {
    let (Some(len), Some(ty)) = (record_len(head), record_type(head)) else {
        return Ok(None);
    };
    let fits = match ty {
        TYPE_INITIATION => len == INITIATION_LEN,
        TYPE_RESPONSE => len == RESPONSE_LEN,
        TYPE_TRANSPORT => len >= PACKET_OVERHEAD,
        _ => false,
    };
    if fits { Ok(Some(len)) } else { Err(Garbage) }
}

/// Cuts whole records out of one connection's byte stream
#[derive(Debug)]
pub(crate) struct Deframer {
    framing: Framing,
    /// The start of a record whose end has not arrived (at most one record)
    partial: Vec<u8>,
    /// When the latest record completed (or the connection opened)
    progress: Instant,
}

impl Deframer {
    /// A de-framer with `framing` for a connection opened at `now`
    pub(crate) fn new(framing: Framing, now: Instant) -> Self {
        Self {
            framing,
            partial: Vec::new(),
            progress: now,
        }
    }

    /// Takes new bytes at `now`: true when a stale partial record was discarded first
    pub(crate) fn arrive(&mut self, now: Instant) -> bool {
        let stale =
            !self.partial.is_empty() && now.saturating_duration_since(self.progress) >= STALE_AFTER;
        if stale {
            self.partial.clear();
            self.progress = now;
        }
        stale
    }

    /// Hands the next whole record, from the kept bytes and `rest` (consumed as used), to `f`
    /// with the framing it was cut with; `None` once `rest` is used up (a partial record's
    /// bytes are kept for the next read)
    pub(crate) fn take<T>(
        &mut self,
        now: Instant,
        rest: &mut &[u8],
        f: impl FnOnce(Framing, &[u8]) -> T,
    ) -> Result<Option<T>, Garbage> {
        if !self.partial.is_empty() {
            loop {
                // the first 4 bytes tell the length, then the record's own
                let want = self.framing.record_len(&self.partial)?.unwrap_or(4);
                let take = want.saturating_sub(self.partial.len()).min(rest.len());
                self.partial.extend_from_slice(&rest[..take]);
                *rest = &rest[take..];
                if self.partial.len() < want {
                    return Ok(None);
                }
                if self.framing.record_len(&self.partial)? == Some(self.partial.len()) {
                    break;
                }
            }
            self.progress = now;
            self.framing = self.framing.decided(&self.partial);
            let out = f(self.framing, &self.partial);
            self.partial.clear();
            return Ok(Some(out));
        }
        if rest.is_empty() {
            return Ok(None);
        }
        match self.framing.record_len(rest)? {
            Some(len) if rest.len() >= len => {
                let (record, tail) = rest.split_at(len);
                *rest = tail;
                self.progress = now;
                self.framing = self.framing.decided(record);
                Ok(Some(f(self.framing, record)))
            }
            _ => {
                self.partial.extend_from_slice(rest);
                *rest = &[];
                Ok(None)
            }
        }
    }
}

/// A server's means to answer `ikago2` initiations on its connections
#[derive(Debug)]
pub(crate) struct Accept<'a> {
    /// The server's handshake responder
    pub(crate) responder: &'a mut Responder,
    /// The Unix time now, in seconds
    pub(crate) unix: u64,
    /// The sessions' rekeying limits
    pub(crate) rekey: Rekey,
}

/// What one read gave
#[derive(Debug)]
pub(crate) enum Read {
    /// A whole inner packet at `buf.bytes[14..14 + len]`
    Record(FrameBuf, usize),
    /// Client: the `ikago2` session came up (the packets held may go)
    Established,
    /// A record handled here (a ping answered, a pong timed, a handshake answered) or a
    /// counted drop: read on
    Handled,
    /// Everything read was used (a partial record is kept)
    Done,
    /// Garbage, a refused handshake or the peer's close: the connection is closed
    Closed,
}

/// One connection's wire: its de-framer, and its `ikago2` endpoint once it speaks `ikago2`
#[derive(Debug)]
struct ConnWire {
    deframer: Deframer,
    endpoint: Option<Box<Endpoint>>,
    /// When the peer was last heard from: an authenticated record, or the opening
    heard: Instant,
}

impl ConnWire {
    fn new(framing: Framing, now: Instant, endpoint: Option<Box<Endpoint>>) -> Self {
        Self {
            deframer: Deframer::new(framing, now),
            endpoint,
            heard: now,
        }
    }

    /// Takes the next record into a frame buffer and handles what is not an inner packet;
    /// garbage, a refused handshake and a close close `conn`
    fn read(
        &mut self,
        core: &mut Core,
        conn: ConnId,
        rest: &mut &[u8],
        accept: Option<&mut Accept<'_>>,
    ) -> Read {
        let now = core.now;
        let (tx, rng) = (&mut core.tx, &mut core.rng);
        let endpoint = &mut self.endpoint;
        let cut = self.deframer.take(now, rest, |framing, record| {
            let mut buf = tx.take(ethernet::HEADER_LEN + record.len());
            if framing != Framing::Ikago2 {
                let len = record.len();
                buf.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + len].copy_from_slice(record);
                return (
                    buf,
                    Ok(Received::Packet(
                        ethernet::HEADER_LEN..ethernet::HEADER_LEN + len,
                    )),
                );
            }
            let initiation = record_type(record) == Some(TYPE_INITIATION)
                && !endpoint.as_ref().is_some_and(|e| e.is_established());
            let out = &mut buf.bytes[ethernet::HEADER_LEN - 1..];
            let got = match accept {
                Some(a) if initiation => {
                    let mut seed = [0u8; 32];
                    rng.fill_bytes(&mut seed);
                    let ep = endpoint.get_or_insert_with(|| Box::new(Endpoint::server(a.rekey)));
                    ep.receive(now, record, out, Some((&mut *a.responder, a.unix, seed)))
                }
                _ => match endpoint.as_mut() {
                    Some(ep) => ep.receive(now, record, out, None),
                    None => Err(DropReason::Unauthenticated),
                },
            };
            (buf, got)
        });
        let (buf, got) = match cut {
            Ok(Some(got)) => got,
            Ok(None) => return Read::Done,
            Err(Garbage) => {
                core.drop(DropReason::StreamGarbage);
                core.tx.stream_op(StreamOp::Close { conn });
                return Read::Closed;
            }
        };
        let ikago2 = self.endpoint.is_some();
        let established = self.endpoint.as_ref().is_some_and(|e| e.is_established());
        let read = match got {
            Ok(Received::Packet(body)) => {
                let len = body.len();
                core.stats
                    .tunnel_rx
                    .add(if ikago2 { len + PACKET_OVERHEAD } else { len });
                self.heard = now;
                return Read::Record(buf, len);
            }
            Ok(Received::Ping(stamp)) => {
                self.heard = now;
                self.seal(core, conn, Kind::Pong, &stamp);
                Read::Handled
            }
            Ok(Received::Pong(stamp)) => {
                self.heard = now;
                let sent = core.epoch + Duration::from_nanos(stamp);
                core.stats.rtt = Some(now.saturating_duration_since(sent));
                Read::Handled
            }
            Ok(Received::Established) => {
                self.heard = now;
                Read::Established
            }
            Ok(Received::Respond { .. }) => {
                self.heard = now;
                if let Some(r) = self.endpoint.as_ref().and_then(|e| e.response()) {
                    write_bytes(core, conn, r);
                }
                Read::Handled
            }
            Ok(Received::Close) => {
                core.tx.stream_op(StreamOp::Close { conn });
                Read::Closed
            }
            Err(reason) => {
                core.drop(reason);
                if established {
                    Read::Handled
                } else {
                    // a handshake that fails gets nothing: the connection goes
                    core.tx.stream_op(StreamOp::Close { conn });
                    Read::Closed
                }
            }
        };
        core.tx.recycle(buf);
        read
    }

    /// Seals `body` of `kind` into a record written to `conn` (an `ikago2` connection with its
    /// session up; else nothing); true when written
    fn seal(&mut self, core: &mut Core, conn: ConnId, kind: Kind, body: &[u8]) -> bool {
        let Some(ep) = self.endpoint.as_mut().filter(|e| e.is_established()) else {
            return false;
        };
        let mut buf = core.tx.take(Session::sealed_len(body.len(), None));
        let Some(n) = ep.seal(core.now, kind, body, None, &mut buf.bytes) else {
            core.tx.recycle(buf);
            return false;
        };
        buf.len = n;
        core.stats.tunnel_tx.add(n);
        core.tx.stream_write(conn, buf);
        true
    }

    /// Writes inner packet `inner` to `conn` as this connection's wire frames it; false when
    /// it cannot yet (an `ikago2` session not up, or the wire not known)
    fn write(&mut self, core: &mut Core, conn: ConnId, inner: &[u8]) -> bool {
        let sent = if self.endpoint.is_some() {
            self.seal(core, conn, Kind::Packet, inner)
        } else if self.deframer.framing == Framing::Ipv4 {
            write_bytes(core, conn, inner);
            true
        } else {
            false
        };
        if sent {
            core.stats.inner_tx.add(inner.len());
        }
        sent
    }
}

/// Writes `bytes` as they are to `conn`
fn write_bytes(core: &mut Core, conn: ConnId, bytes: &[u8]) {
    core.stats.tunnel_tx.add(bytes.len());
    let mut buf = core.tx.take(bytes.len());
    buf.bytes[..bytes.len()].copy_from_slice(bytes);
    buf.len = bytes.len();
    core.tx.stream_write(conn, buf);
}

/// Where the client's connection stands
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting to try again at this instant
    Waiting(Instant),
    /// Connect asked at `since`
    Connecting { since: Instant },
    /// Open
    Open,
}

/// The client's connection to the server
#[derive(Debug)]
pub(crate) struct Link {
    local: SocketAddr,
    server: SocketAddr,
    conn: ConnId,
    state: State,
    framing: Framing,
    wire: ConnWire,
    /// Delay before the next attempt after a failure
    backoff: Duration,
    /// Attempts since the last open connection
    attempts: u32,
    /// With `ikago2`: when the next keepalive ping is due
    ping_at: Instant,
    /// When the connection opened (the `ikago2` handshake started)
    opened: Instant,
    syn_rto: Duration,
    syn_rto_max: Duration,
    keepalive: Duration,
    peer_timeout: Duration,
}

impl Link {
    /// The link from `local` to `server`, `ikago2` framed or the original's; the first connect
    /// is asked at once
    pub(crate) fn new(
        core: &mut Core,
        local: SocketAddr,
        server: SocketAddr,
        tuning: &TcpTuning,
        ikago2: bool,
    ) -> Self {
        let now = core.now;
        let framing = if ikago2 {
            Framing::Ikago2
        } else {
            Framing::Ipv4
        };
        let mut link = Self {
            local,
            server,
            conn: ConnId(0),
            state: State::Waiting(now),
            framing,
            wire: ConnWire::new(framing, now, None),
            backoff: tuning.syn_rto,
            attempts: 0,
            ping_at: now,
            opened: now,
            syn_rto: tuning.syn_rto,
            syn_rto_max: tuning.syn_rto_max,
            keepalive: tuning.keepalive,
            peer_timeout: tuning.peer_timeout,
        };
        link.connect(core);
        link
    }

    /// Whether inner packets can go: the connection open, and with `ikago2` its session up
    pub(crate) fn is_open(&self) -> bool {
        self.state == State::Open
            && (self.framing == Framing::Ipv4
                || self
                    .wire
                    .endpoint
                    .as_ref()
                    .is_some_and(|e| e.is_established()))
    }

    /// When [`Link::handle_timeout`] has work
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) => Some(at),
            State::Connecting { since } => Some(since + CONNECT_TIMEOUT),
            State::Open if self.framing == Framing::Ipv4 => None,
            State::Open if self.is_open() => {
                Some(self.ping_at.min(self.wire.heard + self.peer_timeout))
            }
            // the handshake must complete as a connect would
            State::Open => Some(self.wire.heard + CONNECT_TIMEOUT),
        }
    }

    fn connect(&mut self, core: &mut Core) {
        self.conn = ConnId(self.conn.0 + 1);
        self.state = State::Connecting { since: core.now };
        core.tx.stream_op(StreamOp::Connect {
            conn: self.conn,
            local: self.local,
            server: self.server,
        });
        core.tx.event(Event::Connecting {
            server: self.server,
            retry: self.attempts,
        });
        self.attempts += 1;
    }

    /// The connection is gone: says so, and schedules the next attempt
    fn lost(&mut self, core: &mut Core, reason: PeerLostReason) {
        core.tx.event(Event::PeerLost {
            server: self.server,
            reason,
        });
        core.stats.reconnects += 1;
        self.wire.endpoint = None;
        self.state = State::Waiting(core.now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.syn_rto_max);
    }

    /// Runs the due timer: the next attempt, giving up a connect or handshake that takes too
    /// long or a server not heard from, or a keepalive ping
    pub(crate) fn handle_timeout(&mut self, core: &mut Core) {
        let now = core.now;
        match self.deadline() {
            Some(at) if at <= now => {}
            _ => return,
        }
        match self.state {
            State::Waiting(_) => self.connect(core),
            State::Connecting { .. } => {
                core.tx.stream_op(StreamOp::Close { conn: self.conn });
                self.lost(core, PeerLostReason::Closed);
            }
            State::Open if !self.is_open() || self.wire.heard + self.peer_timeout <= now => {
                core.tx.stream_op(StreamOp::Close { conn: self.conn });
                self.lost(core, PeerLostReason::Timeout);
            }
            State::Open => {
                let stamp = now.saturating_duration_since(core.epoch).as_nanos() as u64;
                self.wire
                    .seal(core, self.conn, Kind::Ping, &stamp.to_be_bytes());
                self.ping_at = now + self.keepalive;
            }
        }
    }

    /// A report about `conn`; true when inner packets may go now (the connection opened, with
    /// the original's framing). Data is left to [`Link::read`]. With `ikago2`, `endpoint`
    /// makes the handshake's first record, sent as the connection opens
    pub(crate) fn handle(
        &mut self,
        core: &mut Core,
        conn: ConnId,
        event: StreamInput<'_>,
        endpoint: impl FnOnce(&mut Core) -> Option<Endpoint>,
    ) -> bool {
        if conn != self.conn {
            return false;
        }
        match (event, self.state) {
            (StreamInput::Opened { .. }, State::Connecting { since }) => {
                let now = core.now;
                self.state = State::Open;
                self.opened = now;
                self.backoff = self.syn_rto;
                self.attempts = 0;
                let endpoint = endpoint(core).map(Box::new);
                self.wire = ConnWire::new(self.framing, now, endpoint);
                if let Some(init) = self.wire.endpoint.as_ref().and_then(|e| e.initiation()) {
                    write_bytes(core, conn, init);
                    return false;
                }
                self.up(core, since);
                true
            }
            (StreamInput::Closed, State::Connecting { .. } | State::Open) => {
                self.lost(core, PeerLostReason::Closed);
                false
            }
            _ => false,
        }
    }

    /// The tunnel is up: connected (the original's framing) or its session established,
    /// `since` the connect was asked
    fn up(&mut self, core: &mut Core, since: Instant) {
        let rtt = core.now.saturating_duration_since(since);
        core.stats.handshakes += 1;
        core.stats.rtt = Some(rtt);
        self.ping_at = core.now + self.keepalive;
        core.tx.event(Event::Connected {
            server: self.server,
            rtt,
        });
    }

    /// The next record of bytes read from `conn` (see [`Read`]); garbage, a failed handshake
    /// or the server's close loses the connection
    pub(crate) fn read(&mut self, core: &mut Core, conn: ConnId, rest: &mut &[u8]) -> Read {
        if conn != self.conn || self.state != State::Open {
            return Read::Done;
        }
        let r = self.wire.read(core, conn, rest, None);
        match r {
            Read::Closed => self.lost(core, PeerLostReason::Closed),
            // the RTT: the handshake's round trip
            Read::Established => self.up(core, self.opened),
            _ => {}
        }
        r
    }

    /// Starts a read of new bytes on `conn` at `now` (the stale-buffer rule)
    pub(crate) fn arrive(&mut self, core: &mut Core, conn: ConnId) {
        if conn == self.conn && self.wire.deframer.arrive(core.now) {
            core.drop(DropReason::StreamStale);
        }
    }

    /// Writes `inner` to the open connection
    pub(crate) fn write(&mut self, core: &mut Core, inner: &[u8]) {
        if !self.wire.write(core, self.conn, inner) {
            core.drop(DropReason::QueueFull);
        }
    }
}

/// One client connection of the server
#[derive(Debug)]
struct Accepted {
    /// The client's NAT id
    id: u32,
    /// Its TCP peer address
    peer: SocketAddr,
    wire: ConnWire,
    stats: PeerStats,
}

/// A record read from a client connection, or what else the read gave
#[derive(Debug)]
pub(crate) enum ServerRead {
    /// A whole inner packet at `buf.bytes[14..14 + len]` from the client `peer` with NAT id `id`
    Record {
        /// The client
        peer: SocketAddr,
        /// Its NAT id
        id: u32,
        /// The packet
        buf: FrameBuf,
    },
    /// A record handled (or dropped and counted): read on
    Handled,
    /// Everything read was used
    Done,
    /// Garbage, a refused handshake or the client's close: the connection was closed and the
    /// client forgotten
    Closed,
}

/// The server's client connections, each a client of its own
#[derive(Debug)]
pub(crate) struct Clients {
    framing: Framing,
    conns: BTreeMap<ConnId, Accepted>,
    by_id: BTreeMap<u32, ConnId>,
}

impl Clients {
    /// No connections yet; each will be cut with `framing`
    pub(crate) fn new(framing: Framing) -> Self {
        Self {
            framing,
            conns: BTreeMap::new(),
            by_id: BTreeMap::new(),
        }
    }

    /// Connections open
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Counters of every client
    pub(crate) fn stats(&self) -> impl Iterator<Item = PeerStats> + '_ {
        self.conns.values().map(|c| c.stats)
    }

    /// The client at `peer` connected as `conn`, with NAT id `id`
    pub(crate) fn open(&mut self, core: &mut Core, conn: ConnId, peer: SocketAddr, id: u32) {
        let now = core.now;
        let stats = PeerStats {
            peer: Peer::Client(peer),
            out: Default::default(),
            r#in: Default::default(),
            first_seen: now,
            last_seen: now,
            protocol: protocol_of(self.framing),
        };
        let accepted = Accepted {
            id,
            peer,
            wire: ConnWire::new(self.framing, now, None),
            stats,
        };
        if let Some(old) = self.conns.insert(conn, accepted) {
            self.by_id.remove(&old.id);
        }
        self.by_id.insert(id, conn);
        core.stats.handshakes += 1;
        core.tx.event(Event::ClientConnected { client: peer });
    }

    /// Forgets the client of `conn`, which closed (or which the server closes)
    pub(crate) fn close(&mut self, core: &mut Core, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            self.by_id.remove(&c.id);
            core.tx.event(Event::ClientDisconnected { client: c.peer });
        }
    }

    /// Starts a read of new bytes on `conn` at `now` (the stale-buffer rule)
    pub(crate) fn arrive(&mut self, core: &mut Core, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn)
            && c.wire.deframer.arrive(core.now)
        {
            core.drop(DropReason::StreamStale);
        }
    }

    /// The next record of bytes read from `conn`; garbage, a refused handshake or a close
    /// closes the connection and forgets its client, and bytes of an unknown connection are
    /// ignored. `accept` answers `ikago2` initiations (`None`: the server does not speak it)
    pub(crate) fn read(
        &mut self,
        core: &mut Core,
        conn: ConnId,
        rest: &mut &[u8],
        accept: Option<&mut Accept<'_>>,
    ) -> ServerRead {
        let Some(c) = self.conns.get_mut(&conn) else {
            return ServerRead::Done;
        };
        let r = c.wire.read(core, conn, rest, accept);
        c.stats.protocol = protocol_of(c.wire.deframer.framing);
        match r {
            Read::Record(mut buf, len) => {
                c.stats.out.add(len);
                c.stats.last_seen = core.now;
                buf.len = ethernet::HEADER_LEN + len;
                ServerRead::Record {
                    peer: c.peer,
                    id: c.id,
                    buf,
                }
            }
            Read::Handled | Read::Established => ServerRead::Handled,
            Read::Done => ServerRead::Done,
            Read::Closed => {
                self.close(core, conn);
                ServerRead::Closed
            }
        }
    }

    /// Writes `inner` to the client with NAT id `id`; false when no connection has that id (or
    /// it cannot carry packets yet)
    pub(crate) fn send(&mut self, core: &mut Core, id: u32, inner: &[u8]) -> bool {
        let Some(&conn) = self.by_id.get(&id) else {
            return false;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        if !c.wire.write(core, conn, inner) {
            return false;
        }
        c.stats.r#in.add(inner.len());
        c.stats.last_seen = core.now;
        true
    }
}

/// The wire a connection cut with `framing` speaks, `None` while not known
fn protocol_of(framing: Framing) -> Option<Protocol> {
    match framing {
        Framing::Ipv4 => Some(Protocol::Ikago),
        Framing::Ikago2 => Some(Protocol::Ikago2),
        Framing::Detect => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 header of `len` bytes in all, then `len - 20` bytes of `fill`
    fn packet(len: u16, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; usize::from(len)];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p
    }

    /// Every record of `reads` fed in turn, or the garbage that stopped them
    fn cut(d: &mut Deframer, now: Instant, reads: &[&[u8]]) -> Result<Vec<Vec<u8>>, Garbage> {
        let mut out = Vec::new();
        for read in reads {
            let mut rest = *read;
            d.arrive(now);
            while let Some(r) = d.take(now, &mut rest, |_, r| r.to_vec())? {
                out.push(r);
            }
            assert!(rest.is_empty());
        }
        Ok(out)
    }

    #[test]
    fn records_come_whole_whatever_the_reads() {
        let now = Instant::now();
        let stream: Vec<u8> = [
            packet(20, 1),
            packet(1500, 2),
            packet(65535, 3),
            packet(84, 4),
        ]
        .concat();
        let want = vec![
            packet(20, 1),
            packet(1500, 2),
            packet(65535, 3),
            packet(84, 4),
        ];
        for size in [1, 2, 3, 4, 5, 19, 20, 21, 1000, 70_000] {
            let reads: Vec<&[u8]> = stream.chunks(size).collect();
            let mut d = Deframer::new(Framing::Ipv4, now);
            assert_eq!(cut(&mut d, now, &reads).unwrap(), want, "reads of {size}");
            assert!(d.partial.is_empty());
        }
        let mut d = Deframer::new(Framing::Ipv4, now);
        assert_eq!(cut(&mut d, now, &[&stream]).unwrap(), want, "one read");
    }

    #[test]
    fn garbage_is_refused() {
        let now = Instant::now();
        let mut short = packet(40, 0);
        short[2..4].copy_from_slice(&19u16.to_be_bytes());
        let mut ihl = packet(40, 0);
        ihl[0] = 0x44;
        for (what, bytes) in [
            ("not IPv4", vec![0x60, 0, 0, 40]),
            ("total length below the header", short),
            ("header shorter than 20", ihl),
        ] {
            let mut d = Deframer::new(Framing::Ipv4, now);
            assert_eq!(cut(&mut d, now, &[&bytes]), Err(Garbage), "{what}");
            // the same garbage after a partial record
            let mut d = Deframer::new(Framing::Ipv4, now);
            let good = packet(30, 7);
            let joined = [&good[..], &bytes[..]].concat();
            let reads: Vec<&[u8]> = joined.chunks(3).collect();
            assert_eq!(
                cut(&mut d, now, &reads),
                Err(Garbage),
                "{what} after a record"
            );
        }
    }

    #[test]
    fn a_stale_partial_record_is_discarded() {
        let t0 = Instant::now();
        let mut d = Deframer::new(Framing::Ipv4, t0);
        let p = packet(100, 9);
        let mut rest = &p[..50];
        assert!(!d.arrive(t0));
        assert_eq!(d.take(t0, &mut rest, |_, r| r.to_vec()), Ok(None));
        // the rest 29 s later completes it
        let t1 = t0 + STALE_AFTER - Duration::from_secs(1);
        assert!(!d.arrive(t1));
        let mut rest = &p[50..];
        assert_eq!(
            d.take(t1, &mut rest, |_, r| r.to_vec()),
            Ok(Some(p.clone()))
        );
        // a part left alone 30 s goes when the next bytes come, which then start a record
        let mut rest = &p[..50];
        assert_eq!(d.take(t1, &mut rest, |_, r| r.to_vec()), Ok(None));
        let t2 = t1 + STALE_AFTER;
        assert!(d.arrive(t2));
        let mut rest = &p[..];
        assert_eq!(
            d.take(t2, &mut rest, |_, r| r.to_vec()),
            Ok(Some(p.clone()))
        );
    }
}
