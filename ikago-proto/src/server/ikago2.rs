//! The server's side of `ikago2` over FakeTCP: SYN proofs and silence for an `ikago2`-only
//! server, telling the two wires apart per connection, records in and out
//!
//! [`Server`] calls these hooks where the compatible wire would open or seal a payload.

use super::Server;
use crate::config::{ConfigError, Protocol, ServerConfig};
use crate::event::Event;
use crate::ikago2::handshake::INITIATION_LEN;
use crate::ikago2::probe::{self, SeenProofs};
use crate::ikago2::record::{PACKET_OVERHEAD, TYPE_INITIATION, record_len, record_type};
use crate::ikago2::{Endpoint, Kind, Received, Records, Rekey, Responder, Session};
use crate::machine::{Dest, payload_offset};
use crate::stats::DropReason;
use crate::stream::{Accept, Framing};
use crate::wire::{ethernet, ipv4, tcp};
use rand_core::RngCore;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The `ikago2` state of a server
#[derive(Debug)]
pub(super) struct Wire {
    responder: Responder,
    syn_key: [u8; 32],
    /// `ikago2` only: SYNs need proofs, unauthenticated data gets no answer
    only: bool,
    seen: SeenProofs,
    padding: bool,
    unix_time: Duration,
    rekey: Rekey,
}

impl Wire {
    /// The state for `config`, if it accepts `ikago2` (deriving the PSK once)
    pub(super) fn new(config: &ServerConfig, now: Instant) -> Result<Option<Self>, ConfigError> {
        let only = match config.protocol {
            Some(Protocol::Ikago) => return Ok(None),
            Some(Protocol::Ikago2) if config.password.is_empty() => {
                return Err(ConfigError::Ikago2NeedsPassword);
            }
            Some(Protocol::Ikago2) if config.kcp.is_some() => {
                return Err(ConfigError::Ikago2WithKcp);
            }
            Some(Protocol::Ikago2) => true,
            // both: ikago2 needs a password, and does not carry KCP
            None if config.password.is_empty() || config.kcp.is_some() => return Ok(None),
            None => false,
        };
        let psk = config
            .ikago2
            .psk_for(&config.password, config.port, config.port);
        Ok(Some(Self {
            syn_key: psk.syn_key(),
            responder: Responder::new(psk, now),
            only,
            seen: SeenProofs::default(),
            padding: config.ikago2.padding,
            unix_time: config.ikago2.unix_time,
            rekey: config.ikago2.rekey,
        }))
    }
}

/// The wire of one client's connection
#[derive(Debug)]
pub(super) enum SlotWire {
    /// Not known yet: its first payload tells (default server)
    Undecided,
    /// The Go-compatible wire
    Compat,
    /// `ikago2`, with its handshake and session
    Ikago2(Box<Endpoint>),
}

impl SlotWire {
    /// Bytes the wire adds to an inner packet, `compat` for the compatible wire
    pub(super) fn overhead(&self, compat: usize) -> usize {
        match self {
            Self::Ikago2(_) => PACKET_OVERHEAD,
            _ => compat,
        }
    }

    /// The protocol, once known
    pub(super) fn protocol(&self) -> Option<Protocol> {
        match self {
            Self::Undecided => None,
            Self::Compat => Some(Protocol::Ikago),
            Self::Ikago2(_) => Some(Protocol::Ikago2),
        }
    }
}

impl super::Slot {
    /// The compatible wire opened this client's payload: that is its wire from now on
    pub(super) fn compat_opened(&mut self) {
        if matches!(self.wire, SlotWire::Undecided) {
            self.wire = SlotWire::Compat;
            self.stats.protocol = Some(Protocol::Ikago);
        }
    }
}

/// Whether `payload` is exactly one record shaped as an initiation
fn looks_like_initiation(payload: &[u8]) -> bool {
    payload.len() == INITIATION_LEN
        && record_len(payload) == Some(INITIATION_LEN)
        && record_type(payload) == Some(TYPE_INITIATION)
}

impl Wire {
    /// How `tcp` mode cuts the clients' streams: `ikago2` records only, or told per
    /// connection by its first byte
    pub(super) fn framing(&self) -> Framing {
        if self.only {
            Framing::Ikago2
        } else {
            Framing::Detect
        }
    }

    /// The means to answer initiations on `tcp` mode's connections at `now` (`epoch`: the
    /// machine's start)
    pub(super) fn accept(&mut self, now: Instant, epoch: Instant) -> Accept<'_> {
        Accept {
            unix: (self.unix_time + now.saturating_duration_since(epoch)).as_secs(),
            responder: &mut self.responder,
            rekey: self.rekey,
        }
    }
}

impl Server {
    fn unix_secs(&self, w: &Wire) -> u64 {
        (w.unix_time + self.core.now.saturating_duration_since(self.core.epoch)).as_secs()
    }

    /// The wire a newly established connection starts with
    pub(super) fn new_slot_wire(&self) -> SlotWire {
        match &self.ikago2 {
            Some(w) if w.only => SlotWire::Ikago2(Box::new(Endpoint::server(w.rekey))),
            Some(_) => SlotWire::Undecided,
            None => SlotWire::Compat,
        }
    }

    /// Whether unauthenticated segments are answered (RSTs to unknown peers): not by an
    /// `ikago2`-only server
    pub(super) fn answers_strangers(&self) -> bool {
        self.ikago2.as_ref().is_none_or(|w| !w.only)
    }

    /// An `ikago2`-only server refuses (and counts) a SYN without a valid, fresh proof
    pub(super) fn refuses_syn(
        &mut self,
        local: SocketAddr,
        peer: SocketAddr,
        seg: &tcp::Segment<'_>,
    ) -> bool {
        let flags = seg.flags();
        let Some(w) = self.ikago2.as_ref().filter(|w| w.only) else {
            return false;
        };
        if flags & (tcp::SYN | tcp::ACK | tcp::RST) != tcp::SYN {
            return false;
        }
        let unix = self.unix_secs(w);
        let proven = seg
            .options()
            .timestamps
            .filter(|&(tsval, _)| probe::check_syn(&w.syn_key, unix, local, tsval, seg.seq()));
        let Some((tsval, _)) = proven else {
            self.core.drop(DropReason::SynUnproven);
            return true;
        };
        let now = self.core.now;
        let w = self.ikago2.as_mut().expect("checked above");
        if !w.seen.admit(seg.seq(), tsval, peer, now) {
            self.core.drop(DropReason::Replayed);
            return true;
        }
        false
    }

    /// The client's payload on a connection whose wire is `ikago2` or not known yet; false
    /// when it is the compatible wire's to open
    pub(super) fn ikago2_payload(&mut self, peer: SocketAddr, payload: &[u8]) -> bool {
        let Some(slot) = self.clients.get_mut(&peer) else {
            return true;
        };
        match slot.wire {
            SlotWire::Compat => return false,
            SlotWire::Ikago2(_) => {}
            SlotWire::Undecided => {
                if !looks_like_initiation(payload) {
                    return false;
                }
                let Some(w) = self.ikago2.as_ref() else {
                    return false;
                };
                let mut ep = Endpoint::server(w.rekey);
                match self.receive_record(&mut ep, payload) {
                    Ok(Received::Respond { .. }) => {
                        let slot = self.clients.get_mut(&peer).expect("looked up above");
                        slot.wire = SlotWire::Ikago2(Box::new(ep));
                        slot.stats.protocol = Some(Protocol::Ikago2);
                        slot.opening.success();
                        self.send_response(peer);
                        return true;
                    }
                    // not ours: a Go client's payload that happens to look like one
                    Err(DropReason::Unauthenticated) => return false,
                    Ok(_) => return true,
                    Err(reason) => {
                        self.core.drop(reason);
                        return true;
                    }
                }
            }
        }
        for record in Records::new(payload) {
            let Ok(record) = record else {
                self.core.drop(DropReason::BadRecord);
                break;
            };
            if !self.ikago2_record(peer, record) {
                break;
            }
        }
        true
    }

    /// Hands one record to `ep` (opening into a scratch area)
    fn receive_record(&mut self, ep: &mut Endpoint, record: &[u8]) -> Result<Received, DropReason> {
        let now = self.core.now;
        let Some(w) = self.ikago2.as_mut() else {
            return Err(DropReason::Unauthenticated);
        };
        let unix = (w.unix_time + now.saturating_duration_since(self.core.epoch)).as_secs();
        let mut seed = [0u8; 32];
        self.core.rng.fill_bytes(&mut seed);
        ep.receive(
            now,
            record,
            &mut self.core.scratch,
            Some((&mut w.responder, unix, seed)),
        )
    }

    /// One record of an `ikago2` client; false when the connection is gone
    fn ikago2_record(&mut self, peer: SocketAddr, record: &[u8]) -> bool {
        let now = self.core.now;
        let Some(slot) = self.clients.get_mut(&peer) else {
            return false;
        };
        let (id, SlotWire::Ikago2(ep)) = (slot.id, &mut slot.wire) else {
            return false;
        };
        let Some(w) = self.ikago2.as_mut() else {
            return false;
        };
        let unix = (w.unix_time + now.saturating_duration_since(self.core.epoch)).as_secs();
        let mut seed = [0u8; 32];
        self.core.rng.fill_bytes(&mut seed);
        // opened one byte before the inner packet's place: the kind byte first, the packet
        // where the NAT expects it
        let mut buf = self.core.tx.take(ethernet::HEADER_LEN + record.len());
        let got = ep.receive(
            now,
            record,
            &mut buf.bytes[ethernet::HEADER_LEN - 1..],
            Some((&mut w.responder, unix, seed)),
        );
        match got {
            Ok(Received::Packet(body)) => {
                slot.opening.success();
                buf.len = ethernet::HEADER_LEN + body.len();
                self.take_inner(peer, id, buf);
                return true;
            }
            Ok(Received::Respond { .. }) => {
                slot.opening.success();
                self.send_response(peer);
            }
            Ok(Received::Ping(stamp)) => {
                self.send_record(peer, Kind::Pong, &stamp);
            }
            Ok(Received::Close) => {
                self.core.tx.recycle(buf);
                self.forget(peer);
                self.core.tx.event(Event::ClientExpired { client: peer });
                return false;
            }
            Ok(Received::Pong(_) | Received::Established) => {}
            Err(reason) => {
                if reason == DropReason::Unauthenticated
                    && let Some(packets) = slot.opening.failure(now)
                {
                    self.core.tx.event(Event::Unopenable { peer, packets });
                }
                self.core.drop(reason);
            }
        }
        self.core.tx.recycle(buf);
        true
    }

    /// Sends the response to the client's latest initiation
    fn send_response(&mut self, peer: SocketAddr) {
        let Some(slot) = self.clients.get_mut(&peer) else {
            return;
        };
        let SlotWire::Ikago2(ep) = &slot.wire else {
            return;
        };
        let Some(resp) = ep.response() else {
            return;
        };
        let off = payload_offset(&slot.conn);
        let mut buf = self.core.tx.take(off + resp.len());
        buf.bytes[off..off + resp.len()].copy_from_slice(resp);
        let n = resp.len();
        self.core
            .send_payload(&mut slot.conn, slot.device, Dest::Mac(slot.mac), buf, n);
    }

    /// Seals `kind` with `body` to an `ikago2` client in a segment of its own; false when the
    /// client does not speak `ikago2` (or has no session yet)
    pub(super) fn send_record(&mut self, peer: SocketAddr, kind: Kind, body: &[u8]) -> bool {
        let now = self.core.now;
        let padding = self.ikago2.as_ref().is_some_and(|w| w.padding);
        let Some(slot) = self.clients.get_mut(&peer) else {
            return false;
        };
        let SlotWire::Ikago2(ep) = &mut slot.wire else {
            return false;
        };
        let off = payload_offset(&slot.conn);
        let room = self
            .core
            .frame_size(&slot.conn)
            .saturating_sub(slot.conn.data_offset());
        let pad = padding.then_some(room);
        let len = Session::sealed_len(body.len(), pad);
        if off + len > ethernet::HEADER_LEN + ipv4::MAX_LEN {
            self.core.drop(DropReason::TooBig);
            return true;
        }
        let mut buf = self.core.tx.take(off + len);
        let Some(n) = ep.seal(now, kind, body, pad, &mut buf.bytes[off..]) else {
            self.core.tx.recycle(buf);
            self.core.drop(DropReason::Unauthenticated);
            return true;
        };
        self.core
            .send_payload(&mut slot.conn, slot.device, Dest::Mac(slot.mac), buf, n);
        true
    }
}
