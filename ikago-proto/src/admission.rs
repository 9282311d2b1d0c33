//! Server: admitting new clients without letting a SYN flood lock them out
//!
//! Half-open handshakes live apart from established clients, in a small table whose entries
//! expire after a few seconds (like the kernel's SYN-RECV queue). When the table is full, a SYN
//! is answered with a SYN cookie and no state (see [`crate::syncookie`]); the client is created
//! only from a valid cookie ACK. SYNs beyond a per-second budget are not answered at all, which
//! bounds the work a flood can draw. None of this touches established clients: a flood never
//! evicts or blocks them, and the client limit counts established clients only.

use crate::faketcp::Conn;
use crate::io::DeviceId;
use crate::ratelimit::PerSecond;
use crate::syncookie::{Cookies, Restored};
use crate::wire::{Mac, tcp};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Half-open handshakes kept at most; beyond, SYNs get cookies
pub(crate) const HALF_OPEN_MAX: usize = 256;
/// Lifetime of a half-open handshake (the client retransmits its SYN meanwhile)
pub(crate) const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// SYNs from new peers answered per second at most
pub(crate) const SYN_PER_SECOND: u32 = 20_000;

/// A handshake waiting for the client's ACK
#[derive(Debug)]
pub(crate) struct HalfOpen {
    /// The connection, in SYN-RECEIVED
    pub(crate) conn: Conn,
    /// Where the SYN came from
    pub(crate) device: DeviceId,
    /// The MAC it came from
    pub(crate) mac: Mac,
    /// When the first SYN arrived
    since: Instant,
}

/// How a SYN from a new peer is answered
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SynAdmission {
    /// Keep a half-open entry and answer from it
    Table,
    /// Answer with a cookie, keep nothing
    Cookie,
    /// Over the budget: no answer
    OverBudget,
}

/// The server's half-open table, cookies and SYN budget
#[derive(Debug)]
pub(crate) struct Admission {
    half_open: BTreeMap<SocketAddr, HalfOpen>,
    /// The cookie key, drawn from the machine's seed
    pub(crate) cookies: Cookies,
    syns: PerSecond,
}

impl Admission {
    /// An empty table with cookies under `key`
    pub(crate) fn new(key: [u8; 16], now: Instant) -> Self {
        Self {
            half_open: BTreeMap::new(),
            cookies: Cookies::new(key),
            syns: PerSecond::new(SYN_PER_SECOND, now),
        }
    }

    /// Decides how a SYN from a peer without a connection is answered
    pub(crate) fn admit(&mut self, now: Instant) -> SynAdmission {
        if !self.syns.allow(now) {
            SynAdmission::OverBudget
        } else if self.half_open.len() < HALF_OPEN_MAX {
            SynAdmission::Table
        } else {
            SynAdmission::Cookie
        }
    }

    /// Keeps a half-open handshake
    pub(crate) fn insert(
        &mut self,
        peer: SocketAddr,
        conn: Conn,
        device: DeviceId,
        mac: Mac,
        now: Instant,
    ) {
        let h = HalfOpen {
            conn,
            device,
            mac,
            since: now,
        };
        self.half_open.insert(peer, h);
    }

    /// The half-open handshake with `peer`
    pub(crate) fn get_mut(&mut self, peer: &SocketAddr) -> Option<&mut HalfOpen> {
        self.half_open.get_mut(peer)
    }

    /// Takes the half-open handshake with `peer` out of the table
    pub(crate) fn remove(&mut self, peer: &SocketAddr) -> Option<HalfOpen> {
        self.half_open.remove(peer)
    }

    /// Checks an ACK from a peer without a connection against the cookies
    pub(crate) fn check_cookie(
        &self,
        local: SocketAddr,
        peer: SocketAddr,
        seg: &tcp::Segment<'_>,
        since_start: Duration,
    ) -> Option<Restored> {
        let tsecr = seg.options().timestamps.map(|(_, ecr)| ecr);
        self.cookies
            .check(local, peer, seg.seq(), seg.ack(), tsecr, since_start)
    }

    /// Forgets handshakes older than [`HALF_OPEN_TIMEOUT`]; the number forgotten
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let before = self.half_open.len();
        self.half_open
            .retain(|_, h| now.saturating_duration_since(h.since) < HALF_OPEN_TIMEOUT);
        before - self.half_open.len()
    }

    /// Half-open handshakes now
    pub(crate) fn len(&self) -> usize {
        self.half_open.len()
    }
}
