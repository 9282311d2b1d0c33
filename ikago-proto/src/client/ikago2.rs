//! The client's side of `ikago2` over FakeTCP: SYN proofs, the Noise handshake in the first
//! records after the FakeTCP one, inner packets sealed into records (coalesced when several
//! wait), pings for liveness and the RTT, and close when leaving a server
//!
//! [`Client`] calls these hooks where the compatible wire would seal or open a payload.

use super::{Client, Timer};
use crate::config::{ClientConfig, Ikago2Config};
use crate::event::{Event, PeerLostReason};
use crate::ikago2::record::PACKET_OVERHEAD;
use crate::ikago2::{
    Endpoint, Initiator, Kind, Psk, Received, RecordCipher, Records, Session, probe,
};
use crate::machine::{Core, Dest, payload_offset};
use crate::stats::DropReason;
use crate::wire::ethernet;
use rand_core::RngCore;
use std::time::{Duration, Instant};

/// The `ikago2` state of a client
#[derive(Debug)]
pub(super) struct Wire {
    /// The PSK and SYN key of each server port
    keys: Vec<(u16, Psk, [u8; 32])>,
    cipher: RecordCipher,
    config: Ikago2Config,
    /// The handshake and session of the current connection, once FakeTCP connected
    endpoint: Option<Endpoint>,
    /// When the current initiation was first sent
    started: Instant,
    /// The initiation's retransmission timeout
    rto: Duration,
}

impl Wire {
    /// The state for `config`, deriving the PSK of each server port once
    pub(super) fn new(config: &ClientConfig, now: Instant) -> Self {
        let mut keys: Vec<(u16, Psk, [u8; 32])> = Vec::new();
        for s in std::iter::once(&config.server).chain(&config.fallback) {
            if !keys.iter().any(|(p, _, _)| *p == s.port()) {
                let psk = config
                    .ikago2
                    .psk_for(&config.password, s.port(), config.server.port());
                let syn = psk.syn_key();
                keys.push((s.port(), psk, syn));
            }
        }
        Self {
            keys,
            cipher: config.record_cipher(),
            config: config.ikago2.clone(),
            endpoint: None,
            started: now,
            rto: config.tcp.syn_rto,
        }
    }

    fn key(&self, port: u16) -> &(u16, Psk, [u8; 32]) {
        self.keys
            .iter()
            .find(|(p, _, _)| *p == port)
            .expect("a key for every server's port")
    }

    /// Whether records can be sealed
    pub(super) fn is_established(&self) -> bool {
        self.endpoint.as_ref().is_some_and(Endpoint::is_established)
    }

    /// A client endpoint for a new connection to the server at `port`: its handshake starts
    pub(super) fn new_endpoint(&self, core: &mut Core, port: u16) -> Endpoint {
        let mut seed = [0u8; 32];
        core.rng.fill_bytes(&mut seed);
        let init = Initiator::new(&self.key(port).1, self.cipher, self.unix_secs(core), seed);
        Endpoint::client(init, self.config.rekey)
    }

    /// The Unix time now, in seconds
    fn unix_secs(&self, core: &Core) -> u64 {
        (self.config.unix_time + core.now.saturating_duration_since(core.epoch)).as_secs()
    }

    fn session(&self) -> Option<&Session> {
        self.endpoint.as_ref().and_then(Endpoint::session)
    }
}

impl Client {
    /// Bytes the wire adds to an inner packet
    pub(super) fn wire_overhead(&self) -> usize {
        match self.ikago2 {
            Some(_) => PACKET_OVERHEAD,
            None => self.core.cipher.overhead(),
        }
    }

    /// Whether inner packets may be sent: FakeTCP connected, and with `ikago2` the session up
    pub(super) fn tunnel_ready(&self) -> bool {
        self.conn.can_send() && self.ikago2.as_ref().is_none_or(Wire::is_established)
    }

    /// When the server was last heard from: with `ikago2`, the last record that authenticated
    /// (or the start of a handshake still running), else any acceptable segment
    pub(super) fn last_heard(&self) -> Instant {
        match &self.ikago2 {
            Some(w) => w.session().map_or(w.started, Session::last_rx),
            None => self.conn.last_rx,
        }
    }

    /// Makes the SYN about to be sent prove the key (see [`probe`])
    pub(super) fn prove_syn(&mut self) {
        let Some(w) = self.ikago2.as_ref() else {
            return;
        };
        let now = self.core.now;
        let tsval = self.conn.ts_val(now);
        let isn = probe::syn_isn(
            &w.key(self.server.port()).2,
            w.unix_secs(&self.core),
            self.server,
            tsval,
        );
        self.conn.set_syn_isn(isn);
    }

    /// FakeTCP connected: starts the handshake (false without `ikago2`)
    pub(super) fn ikago2_connected(&mut self) -> bool {
        let Some(w) = self.ikago2.as_mut() else {
            return false;
        };
        let now = self.core.now;
        w.endpoint = Some(w.new_endpoint(&mut self.core, self.server.port()));
        w.started = now;
        w.rto = self.tuning.syn_rto;
        self.send_initiation();
        true
    }

    /// The connection is gone (lost, or moving to another server): so is its session
    pub(super) fn ikago2_reset(&mut self) {
        if let Some(w) = self.ikago2.as_mut() {
            w.endpoint = None;
            w.started = self.core.now;
        }
        self.timers.stop(Timer::Handshake as usize);
    }

    fn send_initiation(&mut self) {
        let Some(init) = self
            .ikago2
            .as_ref()
            .and_then(|w| w.endpoint.as_ref())
            .and_then(Endpoint::initiation)
        else {
            return;
        };
        let off = payload_offset(&self.conn);
        let mut buf = self.core.tx.take(off + init.len());
        buf.bytes[off..off + init.len()].copy_from_slice(init);
        let n = init.len();
        let (up, hop) = (self.core.upstream, Dest::NextHop(self.server_hop));
        self.core.send_payload(&mut self.conn, up, hop, buf, n);
        self.note_sent();
        let rto = self.ikago2.as_ref().map_or(self.tuning.syn_rto, |w| w.rto);
        self.timers
            .set(Timer::Handshake as usize, self.core.now + rto);
    }

    /// The handshake timer: the initiation again, with the timeout doubled
    pub(super) fn ikago2_resend(&mut self) {
        let max = self.tuning.syn_rto_max;
        match self.ikago2.as_mut() {
            Some(w) if !w.is_established() && w.endpoint.is_some() => w.rto = (w.rto * 2).min(max),
            _ => return,
        }
        self.send_initiation();
    }

    /// Seals `kind` with `body` into one segment of its own
    pub(super) fn send_record(&mut self, kind: Kind, body: &[u8]) {
        let now = self.core.now;
        let off = payload_offset(&self.conn);
        let room = self
            .core
            .frame_size(&self.conn)
            .saturating_sub(self.conn.data_offset());
        let Some(w) = self.ikago2.as_mut() else {
            return;
        };
        let pad = w.config.padding.then_some(room);
        let len = Session::sealed_len(body.len(), pad);
        let mut buf = self.core.tx.take(off + len);
        let Some(ep) = w.endpoint.as_mut() else {
            return self.core.tx.recycle(buf);
        };
        let Some(n) = ep.seal(now, kind, body, pad, &mut buf.bytes[off..]) else {
            return self.core.tx.recycle(buf);
        };
        let (up, hop) = (self.core.upstream, Dest::NextHop(self.server_hop));
        self.core.send_payload(&mut self.conn, up, hop, buf, n);
    }

    /// Sends the inner packets waiting, as many records to a segment as fit the tunnel MTU
    pub(super) fn ikago2_flush(&mut self) {
        if !self.tunnel_ready() {
            return;
        }
        let now = self.core.now;
        let off = payload_offset(&self.conn);
        let room = self
            .core
            .frame_size(&self.conn)
            .saturating_sub(self.conn.data_offset());
        let (up, hop) = (self.core.upstream, Dest::NextHop(self.server_hop));
        while let Some(first) = self.pending.front() {
            let Some(w) = self.ikago2.as_mut() else {
                return;
            };
            let padding = w.config.padding;
            let first_len = Session::sealed_len(first.len, padding.then_some(room));
            if !self.conn.window_allows(first_len) {
                break;
            }
            let mut out = self.core.tx.take(off + room.max(first_len));
            let mut used = 0;
            let mut records = 0;
            while let Some(p) = self.pending.front() {
                let left = room.saturating_sub(used);
                let pad = padding.then_some(left);
                let len = Session::sealed_len(p.len, pad);
                if records > 0 && (len > left || !self.conn.window_allows(used + len)) {
                    break;
                }
                let p = self.pending.pop_front().expect("front exists");
                let ep = w.endpoint.as_mut().expect("established");
                let n = ep
                    .seal(
                        now,
                        Kind::Packet,
                        &p.bytes[..p.len],
                        pad,
                        &mut out.bytes[off + used..],
                    )
                    .expect("established");
                used += n;
                records += 1;
                self.core.stats.inner_tx.add(p.len);
                self.core.tx.recycle(p);
            }
            self.core.send_payload(&mut self.conn, up, hop, out, used);
            self.note_sent();
        }
    }

    /// Opens the records of a segment from the server
    pub(super) fn ikago2_receive(&mut self, payload: &[u8]) {
        let now = self.core.now;
        for record in Records::new(payload) {
            let Ok(record) = record else {
                return self.core.drop(DropReason::BadRecord);
            };
            let Some(ep) = self.ikago2.as_mut().and_then(|w| w.endpoint.as_mut()) else {
                self.core.drop(DropReason::Unauthenticated);
                continue;
            };
            // opened one byte before the inner packet's place, so that the kind byte comes
            // first and the packet lands where delivery expects it
            let mut buf = self.core.tx.take(ethernet::HEADER_LEN + record.len());
            let got = ep.receive(
                now,
                record,
                &mut buf.bytes[ethernet::HEADER_LEN - 1..],
                None,
            );
            match got {
                Ok(Received::Packet(body)) => {
                    self.opening.success();
                    self.answered.success();
                    self.deliver_inner(buf, body.len());
                    continue;
                }
                Ok(Received::Established) => self.ikago2_established(),
                Ok(Received::Pong(stamp)) => {
                    let sent = self.core.epoch + Duration::from_nanos(stamp);
                    let rtt = now.saturating_duration_since(sent);
                    self.core.stats.rtt = Some(rtt);
                    self.answered.success();
                }
                Ok(Received::Ping(stamp)) => self.send_record(Kind::Pong, &stamp),
                Ok(Received::Close) => {
                    self.core.tx.recycle(buf);
                    return self.on_lost(PeerLostReason::Reset);
                }
                Ok(Received::Respond { .. }) => {}
                Err(reason) => {
                    if reason == DropReason::Unauthenticated
                        && let Some(packets) = self.opening.failure(now)
                    {
                        self.core.tx.event(Event::Unopenable {
                            peer: self.server,
                            packets,
                        });
                    }
                    self.core.drop(reason);
                }
            }
            self.core.tx.recycle(buf);
        }
    }

    /// The session is up: the tunnel counts as connected, the packets held go out
    fn ikago2_established(&mut self) {
        let now = self.core.now;
        self.timers.stop(Timer::Handshake as usize);
        let started = self.ikago2.as_ref().map_or(now, |w| w.started);
        let rtt = now.saturating_duration_since(started);
        self.opening.success();
        self.answered.success();
        self.core.stats.handshakes += 1;
        self.core.stats.rtt = Some(rtt);
        self.core.tx.event(Event::Connected {
            server: self.server,
            rtt,
        });
        self.ikago2_flush();
    }

    /// The keepalive timer: a ping, whose pong measures the RTT
    pub(super) fn ikago2_ping(&mut self) {
        if self.ikago2.as_ref().is_some_and(Wire::is_established) {
            let stamp = self.core.now.saturating_duration_since(self.core.epoch);
            self.send_record(Kind::Ping, &(stamp.as_nanos() as u64).to_be_bytes());
        }
    }

    /// Leaving this server for another: tells it, so that it forgets us at once
    pub(super) fn ikago2_close(&mut self) {
        if self.ikago2.as_ref().is_some_and(Wire::is_established) && self.conn.can_send() {
            self.send_record(Kind::Close, &[]);
        }
    }
}
