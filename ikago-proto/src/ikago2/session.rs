//! A session: the record keys of both directions after a handshake, their counters, the
//! anti-replay windows, and rekeying
//!
//! **Rekeying.** Each direction moves on by itself: the sender ratchets its key
//! (`next = KDF(key, "ikago2 rekey")`, the phase byte plus one, the counter from 0) once the
//! key has sealed [`Rekey::after_messages`] records or is [`Rekey::after_time`] old
//! (WireGuard's 2^60 messages and 120 s by default). The receiver holds the next key ready; the
//! first record of the next phase that authenticates moves it on, and the previous key stays
//! for [`Rekey::keep_previous`] for records still in flight. A ratcheted-away key is dropped and
//! the KDF is one-way, so records sealed under it cannot be opened from a later compromise. A counter never wraps: at
//! [`REJECT_AFTER_MESSAGES`] at the latest the key is replaced.

use super::handshake::SessionKeys;
use super::keys::{RecordCipher, RecordKey};
use super::record::{
    self, Kind, MAX_RECORD_LEN, Opened, RecordError, TRANSPORT_OVERHEAD, TransportHeader,
};
use super::window::{Refused, ReplayWindow};
use std::time::{Duration, Instant};

/// Counters at or above this are never used (WireGuard's `REJECT_AFTER_MESSAGES`)
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
/// Padded records are rounded up to a multiple of this many bytes (within the room given)
pub const PAD_BLOCK: usize = 128;

/// When the keys move on
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rekey {
    /// Records sealed under one key before the next (WireGuard's `REKEY_AFTER_MESSAGES`, 2^60)
    pub after_messages: u64,
    /// Age of a key before the next (WireGuard's `REKEY_AFTER_TIME`, 120 s)
    pub after_time: Duration,
    /// How long the previous receive key still opens records in flight
    pub keep_previous: Duration,
}

impl Default for Rekey {
    fn default() -> Self {
        Self {
            after_messages: 1 << 60,
            after_time: Duration::from_secs(120),
            keep_previous: Duration::from_secs(15),
        }
    }
}

/// Why a record does not open
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not a well-formed transport record, or its body is not what its kind says
    Malformed,
    /// It does not authenticate, or names a key phase this session does not hold
    Forged,
    /// Its counter was seen before, or is too old for the window
    Replayed,
}

impl From<RecordError> for OpenError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Malformed => Self::Malformed,
            RecordError::Forged => Self::Forged,
        }
    }
}

#[derive(Debug)]
struct Tx {
    key: RecordKey,
    phase: u64,
    counter: u64,
    since: Instant,
}

#[derive(Debug)]
struct Rx {
    key: RecordKey,
    phase: u64,
    window: ReplayWindow,
}

/// One end's keys and counters of an established session
#[derive(Debug)]
pub struct Session {
    cipher: RecordCipher,
    limits: Rekey,
    tx: Tx,
    rx: Rx,
    /// The receive key of the next phase, ready
    rx_next: RecordKey,
    /// The previous receive key, until when it still opens records
    rx_prev: Option<(Rx, Instant)>,
    /// When a record last authenticated
    last_rx: Instant,
    /// Key phases moved on, both directions
    rekeys: u64,
}

impl Session {
    /// A session from the keys of a completed handshake, at `now`
    pub fn new(keys: SessionKeys, limits: Rekey, now: Instant) -> Self {
        let limits = Rekey {
            after_messages: limits.after_messages.clamp(1, REJECT_AFTER_MESSAGES),
            ..limits
        };
        Self {
            cipher: keys.cipher,
            limits,
            tx: Tx {
                key: keys.tx,
                phase: 0,
                counter: 0,
                since: now,
            },
            rx_next: keys.rx.next(),
            rx: Rx {
                key: keys.rx,
                phase: 0,
                window: ReplayWindow::new(),
            },
            rx_prev: None,
            last_rx: now,
            rekeys: 0,
        }
    }

    /// The record cipher
    pub fn cipher(&self) -> RecordCipher {
        self.cipher
    }

    /// When a record of the peer last authenticated (the session's start before that)
    pub fn last_rx(&self) -> Instant {
        self.last_rx
    }

    /// Key phases moved on so far, sending and receiving
    pub fn rekeys(&self) -> u64 {
        self.rekeys
    }

    /// The length of the record [`Session::seal`] writes for a body of `body_len` bytes, padded
    /// within `room` when given
    pub fn sealed_len(body_len: usize, pad_room: Option<usize>) -> usize {
        let len = TRANSPORT_OVERHEAD + 1 + body_len;
        match pad_room {
            Some(room) => len
                .next_multiple_of(PAD_BLOCK)
                .min(room.min(MAX_RECORD_LEN))
                .max(len),
            None => len,
        }
    }

    /// Seals a record of `kind` with `body` into `out`; returns its length. With `pad_room`,
    /// the record is padded up to a multiple of [`PAD_BLOCK`] bytes, at most `pad_room`
    ///
    /// # Panics
    /// If `out` is shorter than [`Session::sealed_len`] or the record longer than
    /// [`MAX_RECORD_LEN`]: callers size both.
    pub fn seal(
        &mut self,
        now: Instant,
        kind: Kind,
        body: &[u8],
        pad_room: Option<usize>,
        out: &mut [u8],
    ) -> usize {
        let tx = &mut self.tx;
        if tx.counter >= self.limits.after_messages
            || now.saturating_duration_since(tx.since) >= self.limits.after_time
        {
            tx.key = tx.key.next();
            tx.phase += 1;
            tx.counter = 0;
            tx.since = now;
            self.rekeys += 1;
        }
        let header = TransportHeader {
            phase: tx.phase as u8,
            counter: tx.counter,
        };
        tx.counter += 1;
        let len = Self::sealed_len(body.len(), pad_room);
        let pad = len - (TRANSPORT_OVERHEAD + 1 + body.len());
        record::seal_transport(&tx.key, header, kind, body, pad, out)
    }

    /// Opens the whole transport `record` received at `now` into `out` (at least as long as
    /// the record); its kind and where its body lies in `out`
    pub fn open(
        &mut self,
        now: Instant,
        record: &[u8],
        out: &mut [u8],
    ) -> Result<Opened, OpenError> {
        let h = record::parse_transport(record)?;
        if h.counter >= REJECT_AFTER_MESSAGES {
            return Err(OpenError::Malformed);
        }
        if self
            .rx_prev
            .as_ref()
            .is_some_and(|(_, until)| now >= *until)
        {
            self.rx_prev = None;
        }
        let opened = if h.phase == self.rx.phase as u8 {
            open_with(&mut self.rx, h, record, out)?
        } else if h.phase == (self.rx.phase + 1) as u8 {
            check(&ReplayWindow::new(), h.counter)?;
            let opened = record::open_transport(&self.rx_next, h, record, out)?;
            // the peer moved on: so do we, keeping the old key for records still in flight
            let next = self.rx_next.next();
            let key = std::mem::replace(&mut self.rx_next, next);
            let phase = self.rx.phase + 1;
            let old = std::mem::replace(
                &mut self.rx,
                Rx {
                    key,
                    phase,
                    window: ReplayWindow::new(),
                },
            );
            self.rx_prev = Some((old, now + self.limits.keep_previous));
            self.rx.window.mark(h.counter);
            self.rekeys += 1;
            opened
        } else {
            match self.rx_prev.as_mut() {
                Some((prev, _)) if h.phase == prev.phase as u8 => open_with(prev, h, record, out)?,
                _ => return Err(OpenError::Forged),
            }
        };
        self.last_rx = now;
        Ok(opened)
    }
}

fn check(w: &ReplayWindow, counter: u64) -> Result<(), OpenError> {
    w.check(counter).map_err(|r| match r {
        Refused::Replayed | Refused::TooOld => OpenError::Replayed,
    })
}

fn open_with(
    rx: &mut Rx,
    h: TransportHeader,
    record: &[u8],
    out: &mut [u8],
) -> Result<Opened, OpenError> {
    check(&rx.window, h.counter)?;
    let opened = record::open_transport(&rx.key, h, record, out)?;
    rx.window.mark(h.counter);
    Ok(opened)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikago2::handshake::{Initiator, Responder};
    use crate::ikago2::keys::Psk;

    fn pair(limits: Rekey, now: Instant) -> (Session, Session) {
        let psk = Psk::from_bytes([1; 32]);
        let i = Initiator::new(&psk, RecordCipher::ChaCha20Poly1305, 0, [1; 32]);
        let a = Responder::new(psk.clone(), now)
            .accept(i.record(), now, 0, [2; 32])
            .unwrap();
        let k = i.finish(&a.response).unwrap();
        (
            Session::new(k, limits, now),
            Session::new(a.keys, limits, now),
        )
    }

    fn ping(s: &mut Session, now: Instant, n: u64) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        let len = s.seal(now, Kind::Ping, &n.to_be_bytes(), None, &mut out);
        out.truncate(len);
        out
    }

    #[test]
    fn rekeys_by_count_and_time_with_records_in_flight() {
        let t0 = Instant::now();
        let limits = Rekey {
            after_messages: 3,
            after_time: Duration::from_secs(120),
            keep_previous: Duration::from_secs(15),
        };
        let (mut c, mut s) = pair(limits, t0);
        let mut out = [0u8; 64];
        let recs: Vec<_> = (0..10).map(|n| ping(&mut c, t0, n)).collect();
        // phases 0,0,0,1,1,1,2,2,2,3: delivered out of order across one phase change
        for i in [0, 3, 1, 4, 2, 5, 6, 7, 8, 9] {
            let o = s.open(t0, &recs[i], &mut out).unwrap();
            assert_eq!(out[o.body], (i as u64).to_be_bytes());
        }
        assert_eq!(s.open(t0, &recs[9], &mut out), Err(OpenError::Replayed));
        // a record two phases back is gone
        assert_eq!(s.open(t0, &recs[0], &mut out), Err(OpenError::Forged));
        // by time, the other way
        let t1 = t0 + Duration::from_secs(121);
        let r = ping(&mut s, t1, 1);
        assert_eq!(r[3], 1);
        assert!(c.open(t1, &r, &mut out).is_ok());
        assert_eq!(c.rekeys(), 4);
        // the previous key expires
        let late = ping(&mut s, t0, 2);
        let r2 = ping(&mut s, t1 + Duration::from_secs(121), 3);
        assert!(c.open(t1 + Duration::from_secs(121), &r2, &mut out).is_ok());
        assert!(
            c.open(t1 + Duration::from_secs(140), &late, &mut out)
                .is_err()
        );
    }

    #[test]
    fn forged_truncated_and_maxed_records_are_refused() {
        let t0 = Instant::now();
        let (mut c, mut s) = pair(Rekey::default(), t0);
        let mut out = [0u8; 64];
        let r = ping(&mut c, t0, 7);
        let mut bad = r.clone();
        bad[20] ^= 1;
        assert_eq!(s.open(t0, &bad, &mut out), Err(OpenError::Forged));
        assert_eq!(
            s.open(t0, &r[..r.len() - 1], &mut out),
            Err(OpenError::Malformed)
        );
        let mut maxed = r.clone();
        maxed[4..12].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(s.open(t0, &maxed, &mut out), Err(OpenError::Malformed));
        assert!(s.open(t0, &r, &mut out).is_ok());
    }

    #[test]
    fn padding_rounds_up_within_room() {
        assert_eq!(Session::sealed_len(10, None), 39);
        assert_eq!(Session::sealed_len(10, Some(1400)), 128);
        assert_eq!(Session::sealed_len(1300, Some(1400)), 1400);
        assert_eq!(Session::sealed_len(1390, Some(1400)), 1419);
    }
}
