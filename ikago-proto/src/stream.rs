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
use crate::io::{ConnId, StreamInput, StreamOp};
use crate::machine::Core;
use crate::stats::{DropReason, Peer, PeerStats};
use crate::txq::FrameBuf;
use crate::wire::{ethernet, ipv4};
use std::collections::BTreeMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// A partial record older than this (no record completed meanwhile) is discarded when the next
/// bytes arrive, as the original's desticker does
pub const STALE_AFTER: Duration = Duration::from_secs(30);
/// A client's connect that has not completed after this long is given up and tried again
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest record a stream carries: one IPv4 packet
const MAX_RECORD: usize = ipv4::MAX_LEN;

/// The stream cannot be de-framed: the connection must be closed
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Garbage;

/// The length of the record starting with `head` (an IPv4 packet: its Total Length), `None`
/// while too few bytes are there to tell
fn record_len(head: &[u8]) -> Result<Option<usize>, Garbage> {
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
    if len < header || len > MAX_RECORD {
        return Err(Garbage);
    }
    Ok(Some(len))
}

/// Cuts whole records out of one connection's byte stream
#[derive(Debug)]
pub(crate) struct Deframer {
    /// The start of a record whose end has not arrived (at most [`MAX_RECORD`] bytes)
    partial: Vec<u8>,
    /// When the latest record completed (or the connection opened)
    progress: Instant,
}

impl Deframer {
    /// A de-framer for a connection opened at `now`
    pub(crate) fn new(now: Instant) -> Self {
        Self {
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

    /// Hands the next whole record, from the kept bytes and `rest` (consumed as used), to `f`;
    /// `None` once `rest` is used up (a partial record's bytes are kept for the next read)
    pub(crate) fn take<T>(
        &mut self,
        now: Instant,
        rest: &mut &[u8],
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, Garbage> {
        if !self.partial.is_empty() {
            loop {
                // the first 4 bytes tell the length, then the record's own
                let want = record_len(&self.partial)?.unwrap_or(4);
                let take = want.saturating_sub(self.partial.len()).min(rest.len());
                self.partial.extend_from_slice(&rest[..take]);
                *rest = &rest[take..];
                if self.partial.len() < want {
                    return Ok(None);
                }
                if record_len(&self.partial)? == Some(self.partial.len()) {
                    break;
                }
            }
            self.progress = now;
            let out = f(&self.partial);
            self.partial.clear();
            return Ok(Some(out));
        }
        if rest.is_empty() {
            return Ok(None);
        }
        match record_len(rest)? {
            Some(len) if rest.len() >= len => {
                let (record, tail) = rest.split_at(len);
                *rest = tail;
                self.progress = now;
                Ok(Some(f(record)))
            }
            _ => {
                self.partial.extend_from_slice(rest);
                *rest = &[];
                Ok(None)
            }
        }
    }
}

/// What one read gave: a record copied into a frame buffer at offset 14 (as the FakeTCP path
/// delivers them), the end of the read, or garbage (the connection was closed)
#[derive(Debug)]
pub(crate) enum Read {
    /// A whole inner packet at `buf.bytes[14..14 + len]`
    Record(FrameBuf, usize),
    /// Everything read was used (a partial record is kept)
    Done,
    /// Garbage: the connection is closed and counted
    Closed,
}

/// Takes the next record of `deframer` into a frame buffer; garbage closes `conn`
fn read_record(core: &mut Core, conn: ConnId, deframer: &mut Deframer, rest: &mut &[u8]) -> Read {
    let now = core.now;
    let tx = &mut core.tx;
    let copied = deframer.take(now, rest, |record| {
        let len = record.len();
        let mut buf = tx.take(ethernet::HEADER_LEN + len);
        buf.bytes[ethernet::HEADER_LEN..ethernet::HEADER_LEN + len].copy_from_slice(record);
        (buf, len)
    });
    match copied {
        Ok(Some((buf, len))) => {
            core.stats.tunnel_rx.add(len);
            Read::Record(buf, len)
        }
        Ok(None) => Read::Done,
        Err(Garbage) => {
            core.drop(DropReason::StreamGarbage);
            core.tx.stream_op(StreamOp::Close { conn });
            Read::Closed
        }
    }
}

/// Frames `inner` into a write on `conn`
fn write_record(core: &mut Core, conn: ConnId, inner: &[u8]) {
    let mut buf = core.tx.take(inner.len());
    buf.bytes[..inner.len()].copy_from_slice(inner);
    buf.len = inner.len();
    core.stats.tunnel_tx.add(inner.len());
    core.stats.inner_tx.add(inner.len());
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
    local: SocketAddrV4,
    server: SocketAddrV4,
    conn: ConnId,
    state: State,
    deframer: Deframer,
    /// Delay before the next attempt after a failure
    backoff: Duration,
    /// Attempts since the last open connection
    attempts: u32,
    syn_rto: Duration,
    syn_rto_max: Duration,
}

impl Link {
    /// The link from `local` to `server`; the first connect is asked at once
    pub(crate) fn new(
        core: &mut Core,
        local: SocketAddrV4,
        server: SocketAddrV4,
        tuning: &TcpTuning,
    ) -> Self {
        let now = core.now;
        let mut link = Self {
            local,
            server,
            conn: ConnId(0),
            state: State::Waiting(now),
            deframer: Deframer::new(now),
            backoff: tuning.syn_rto,
            attempts: 0,
            syn_rto: tuning.syn_rto,
            syn_rto_max: tuning.syn_rto_max,
        };
        link.connect(core);
        link
    }

    /// Whether the connection is open
    pub(crate) fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// When [`Link::handle_timeout`] has work
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(at) => Some(at),
            State::Connecting { since } => Some(since + CONNECT_TIMEOUT),
            State::Open => None,
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
    fn lost(&mut self, core: &mut Core) {
        core.tx.event(Event::PeerLost {
            server: self.server,
            reason: PeerLostReason::Closed,
        });
        core.stats.reconnects += 1;
        self.state = State::Waiting(core.now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.syn_rto_max);
    }

    /// Runs the due timer: the next attempt, or giving up a connect that takes too long
    pub(crate) fn handle_timeout(&mut self, core: &mut Core) {
        match self.deadline() {
            Some(at) if at <= core.now => {}
            _ => return,
        }
        match self.state {
            State::Waiting(_) => self.connect(core),
            State::Connecting { .. } => {
                core.tx.stream_op(StreamOp::Close { conn: self.conn });
                self.lost(core);
            }
            State::Open => {}
        }
    }

    /// A report about `conn`; true when it opened now (queued packets may go). Data is left to
    /// [`Link::read`]
    pub(crate) fn handle(&mut self, core: &mut Core, conn: ConnId, event: StreamInput<'_>) -> bool {
        if conn != self.conn {
            return false;
        }
        match (event, self.state) {
            (StreamInput::Opened { .. }, State::Connecting { since }) => {
                let rtt = core.now.saturating_duration_since(since);
                self.state = State::Open;
                self.deframer = Deframer::new(core.now);
                self.backoff = self.syn_rto;
                self.attempts = 0;
                core.stats.handshakes += 1;
                core.stats.rtt = Some(rtt);
                core.tx.event(Event::Connected {
                    server: self.server,
                    rtt,
                });
                true
            }
            (StreamInput::Closed, State::Connecting { .. } | State::Open) => {
                self.lost(core);
                false
            }
            _ => false,
        }
    }

    /// The next record of bytes read from `conn` (see [`Read`]); garbage loses the connection
    pub(crate) fn read(&mut self, core: &mut Core, conn: ConnId, rest: &mut &[u8]) -> Read {
        if conn != self.conn || self.state != State::Open {
            return Read::Done;
        }
        let r = read_record(core, conn, &mut self.deframer, rest);
        if matches!(r, Read::Closed) {
            self.lost(core);
        }
        r
    }

    /// Starts a read of new bytes on `conn` at `now` (the stale-buffer rule)
    pub(crate) fn arrive(&mut self, core: &mut Core, conn: ConnId) {
        if conn == self.conn && self.deframer.arrive(core.now) {
            core.drop(DropReason::StreamStale);
        }
    }

    /// Writes `inner` to the open connection
    pub(crate) fn write(&mut self, core: &mut Core, inner: &[u8]) {
        write_record(core, self.conn, inner);
    }
}

/// One client connection of the server
#[derive(Debug)]
struct Accepted {
    /// The client's NAT id
    id: u32,
    /// Its TCP peer address
    peer: SocketAddrV4,
    deframer: Deframer,
    stats: PeerStats,
}

/// A record read from a client connection, or what else the read gave
#[derive(Debug)]
pub(crate) enum ServerRead {
    /// A whole inner packet at `buf.bytes[14..14 + len]` from the client `peer` with NAT id `id`
    Record {
        /// The client
        peer: SocketAddrV4,
        /// Its NAT id
        id: u32,
        /// The packet
        buf: FrameBuf,
    },
    /// Everything read was used
    Done,
    /// Garbage: the connection was closed and the client forgotten
    Closed,
}

/// The server's client connections, each a client of its own
#[derive(Debug, Default)]
pub(crate) struct Clients {
    conns: BTreeMap<ConnId, Accepted>,
    by_id: BTreeMap<u32, ConnId>,
}

impl Clients {
    /// Connections open
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Counters of every client
    pub(crate) fn stats(&self) -> impl Iterator<Item = PeerStats> + '_ {
        self.conns.values().map(|c| c.stats)
    }

    /// The client at `peer` connected as `conn`, with NAT id `id`
    pub(crate) fn open(&mut self, core: &mut Core, conn: ConnId, peer: SocketAddrV4, id: u32) {
        let now = core.now;
        let stats = PeerStats {
            peer: Peer::Client(peer),
            out: Default::default(),
            r#in: Default::default(),
            first_seen: now,
            last_seen: now,
            // the original's framing: the compatible wire
            protocol: Some(Protocol::Ikago),
        };
        let accepted = Accepted {
            id,
            peer,
            deframer: Deframer::new(now),
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
            && c.deframer.arrive(core.now)
        {
            core.drop(DropReason::StreamStale);
        }
    }

    /// The next record of bytes read from `conn`; garbage closes the connection and forgets
    /// its client, and bytes of an unknown connection are ignored
    pub(crate) fn read(&mut self, core: &mut Core, conn: ConnId, rest: &mut &[u8]) -> ServerRead {
        let Some(c) = self.conns.get_mut(&conn) else {
            return ServerRead::Done;
        };
        match read_record(core, conn, &mut c.deframer, rest) {
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
            Read::Done => ServerRead::Done,
            Read::Closed => {
                self.close(core, conn);
                ServerRead::Closed
            }
        }
    }

    /// Writes `inner` to the client with NAT id `id`; false when no connection has that id
    pub(crate) fn send(&mut self, core: &mut Core, id: u32, inner: &[u8]) -> bool {
        let Some(&conn) = self.by_id.get(&id) else {
            return false;
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        c.stats.r#in.add(inner.len());
        c.stats.last_seen = core.now;
        write_record(core, conn, inner);
        true
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
            while let Some(r) = d.take(now, &mut rest, <[u8]>::to_vec)? {
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
            let mut d = Deframer::new(now);
            assert_eq!(cut(&mut d, now, &reads).unwrap(), want, "reads of {size}");
            assert!(d.partial.is_empty());
        }
        let mut d = Deframer::new(now);
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
            let mut d = Deframer::new(now);
            assert_eq!(cut(&mut d, now, &[&bytes]), Err(Garbage), "{what}");
            // the same garbage after a partial record
            let mut d = Deframer::new(now);
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
        let mut d = Deframer::new(t0);
        let p = packet(100, 9);
        let mut rest = &p[..50];
        assert!(!d.arrive(t0));
        assert_eq!(d.take(t0, &mut rest, <[u8]>::to_vec), Ok(None));
        // the rest 29 s later completes it
        let t1 = t0 + STALE_AFTER - Duration::from_secs(1);
        assert!(!d.arrive(t1));
        let mut rest = &p[50..];
        assert_eq!(d.take(t1, &mut rest, <[u8]>::to_vec), Ok(Some(p.clone())));
        // a part left alone 30 s goes when the next bytes come, which then start a record
        let mut rest = &p[..50];
        assert_eq!(d.take(t1, &mut rest, <[u8]>::to_vec), Ok(None));
        let t2 = t1 + STALE_AFTER;
        assert!(d.arrive(t2));
        let mut rest = &p[..];
        assert_eq!(d.take(t2, &mut rest, <[u8]>::to_vec), Ok(Some(p.clone())));
    }
}
