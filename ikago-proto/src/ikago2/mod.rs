//! `ikago2`: our own hardened wire beside the Go-compatible one
//!
//! The full specification, with test vectors, is `docs/protocol.md`; this is its map.
//!
//! - [`keys`]: the PSK (Argon2id of the password, salted with the server's port, derived once
//!   per machine), the keyed-BLAKE2s KDF, the record AEADs (AES-256-GCM or ChaCha20-Poly1305).
//! - [`record`]: framing. Every message is a record that starts with its length
//!   ([`record_len`]), so several share a FakeTCP segment and a byte stream can be cut into
//!   records; a record never spans segments in FakeTCP mode.
//! - [`handshake`]: `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s` in the first records after the
//!   FakeTCP handshake, one round trip; forward secrecy from the ephemeral DH.
//! - [`window`]: the RFC 6479 anti-replay window (4032 counters).
//! - [`session`]: per-direction keys, explicit 64-bit counters, rekeying by count and time.
//! - [`probe`]: SYN proofs, so that an `ikago2`-only server answers only key holders.
//!
//! [`Endpoint`] ties them together for one connection, independent of the transport: feed it
//! each received record ([`Records`] cuts a FakeTCP payload; a byte stream is cut with
//! [`record_len`]), get inner packets and events back; hand it inner packets, get sealed
//! records. Nothing in it allocates per record.

pub mod handshake;
pub mod keys;
pub mod probe;
pub mod record;
pub mod session;
#[cfg(test)]
mod vectors;
pub mod window;

pub use handshake::{HandshakeError, Initiator, Responder};
pub use keys::{Psk, RecordCipher};
pub use record::{Kind, Records, record_len};
pub use session::{OpenError, Rekey, Session};

use crate::stats::DropReason;
use std::ops::Range;
use std::time::Instant;

impl From<OpenError> for DropReason {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Malformed => Self::BadRecord,
            OpenError::Forged => Self::Unauthenticated,
            OpenError::Replayed => Self::Replayed,
        }
    }
}

impl From<HandshakeError> for DropReason {
    fn from(e: HandshakeError) -> Self {
        match e {
            HandshakeError::Malformed => Self::BadRecord,
            HandshakeError::Forged => Self::Unauthenticated,
            HandshakeError::Replayed => Self::Replayed,
            HandshakeError::Refused | HandshakeError::OverBudget => Self::HandshakeRefused,
        }
    }
}

/// What a received record gave
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// An inner packet, at this range of the output buffer
    Packet(Range<usize>),
    /// The peer asks for a [`Kind::Pong`] with this stamp (send it with [`Endpoint::seal`])
    Ping([u8; 8]),
    /// The answer to our ping with this stamp
    Pong(u64),
    /// The peer ended the session
    Close,
    /// Client: the handshake completed; records may be sealed now
    Established,
    /// Server: a valid initiation, new (`fresh`) or sent again: send
    /// [`Endpoint::response`]; sealing works from now on
    Respond {
        /// A new session replaced whatever was there (the client restarted its handshake)
        fresh: bool,
    },
}

/// One end of one `ikago2` connection: the handshake, then the session
#[derive(Debug)]
pub struct Endpoint {
    /// Client: the handshake in progress
    initiator: Option<Initiator>,
    /// Server: the latest initiation accepted and the answer to it
    answered: Option<(
        [u8; handshake::INITIATION_LEN],
        [u8; handshake::RESPONSE_LEN],
    )>,
    session: Option<Session>,
    limits: Rekey,
}

impl Endpoint {
    /// Client: a connection whose handshake starts with `initiator`
    pub fn client(initiator: Initiator, limits: Rekey) -> Self {
        Self {
            initiator: Some(initiator),
            answered: None,
            session: None,
            limits,
        }
    }

    /// Server: a connection waiting for an initiation
    pub fn server(limits: Rekey) -> Self {
        Self {
            initiator: None,
            answered: None,
            session: None,
            limits,
        }
    }

    /// Client: the initiation record while the handshake is incomplete (to send or resend)
    pub fn initiation(&self) -> Option<&[u8]> {
        self.initiator
            .as_ref()
            .filter(|_| self.session.is_none())
            .map(Initiator::record)
    }

    /// Server: the response to the latest initiation
    pub fn response(&self) -> Option<&[u8]> {
        self.answered.as_ref().map(|(_, r)| &r[..])
    }

    /// The session, once the handshake completed
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Whether records can be sealed
    pub fn is_established(&self) -> bool {
        self.session.is_some()
    }

    /// Handles one whole received record (see [`Records`] and [`record_len`]); opened bodies
    /// are written to `out`, which must be at least as long as the record. The server passes
    /// its [`Responder`], its Unix time and a fresh seed for its ephemeral key
    pub fn receive(
        &mut self,
        now: Instant,
        record: &[u8],
        out: &mut [u8],
        responder: Option<(&mut Responder, u64, [u8; 32])>,
    ) -> Result<Received, DropReason> {
        match (record::record_type(record), responder) {
            (Some(record::TYPE_TRANSPORT), _) => {
                let session = self.session.as_mut().ok_or(DropReason::Unauthenticated)?;
                let o = session.open(now, record, out)?;
                let body = &out[o.body.clone()];
                Ok(match o.kind {
                    Kind::Packet => Received::Packet(o.body),
                    Kind::Ping => Received::Ping(body.try_into().expect("8-byte body")),
                    Kind::Pong => {
                        Received::Pong(u64::from_be_bytes(body.try_into().expect("8-byte body")))
                    }
                    Kind::Close => Received::Close,
                })
            }
            (Some(record::TYPE_RESPONSE), None) => {
                let Some(i) = self.initiator.as_ref() else {
                    return Err(DropReason::Unauthenticated);
                };
                if self.session.is_some() {
                    // a response sent again: ours is already taken
                    return Err(DropReason::Replayed);
                }
                let keys = i.finish(record)?;
                self.session = Some(Session::new(keys, self.limits, now));
                Ok(Received::Established)
            }
            (Some(record::TYPE_INITIATION), Some((r, unix, seed))) => {
                if self
                    .answered
                    .as_ref()
                    .is_some_and(|(init, _)| init[..] == *record)
                {
                    // the client did not get our response: the same answer again
                    return Ok(Received::Respond { fresh: false });
                }
                let a = r.accept(record, now, unix, seed)?;
                self.session = Some(Session::new(a.keys, self.limits, now));
                let mut init = [0u8; handshake::INITIATION_LEN];
                init.copy_from_slice(record);
                self.answered = Some((init, a.response));
                Ok(Received::Respond { fresh: true })
            }
            _ => Err(DropReason::BadRecord),
        }
    }

    /// Seals a record of `kind` into `out` (see [`Session::seal`]); `None` before the handshake
    /// completed
    pub fn seal(
        &mut self,
        now: Instant,
        kind: Kind,
        body: &[u8],
        pad_room: Option<usize>,
        out: &mut [u8],
    ) -> Option<usize> {
        let s = self.session.as_mut()?;
        Some(s.seal(now, kind, body, pad_room, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn endpoints_handshake_exchange_and_survive_resends() {
        let t0 = Instant::now();
        let psk = Psk::from_bytes([8; 32]);
        let mut responder = Responder::new(psk.clone(), t0);
        let init = Initiator::new(&psk, RecordCipher::Aes256Gcm, 100, [1; 32]);
        let mut c = Endpoint::client(init, Rekey::default());
        let mut s = Endpoint::server(Rekey::default());
        let mut out = [0u8; 2048];
        let mut rec = [0u8; 2048];
        assert_eq!(c.seal(t0, Kind::Ping, &[0; 8], None, &mut rec), None);
        let first = c.initiation().unwrap().to_vec();
        let got = s.receive(t0, &first, &mut out, Some((&mut responder, 100, [2; 32])));
        assert_eq!(got, Ok(Received::Respond { fresh: true }));
        let resp = s.response().unwrap().to_vec();
        // the response is lost; the initiation comes again and gets the same response
        let again = s.receive(t0, &first, &mut out, Some((&mut responder, 100, [3; 32])));
        assert_eq!(again, Ok(Received::Respond { fresh: false }));
        assert_eq!(s.response().unwrap(), &resp[..]);
        assert_eq!(
            c.receive(t0, &resp, &mut out, None),
            Ok(Received::Established)
        );
        assert_eq!(
            c.receive(t0, &resp, &mut out, None),
            Err(DropReason::Replayed)
        );
        assert!(c.initiation().is_none());
        let n = c
            .seal(t0, Kind::Ping, &7u64.to_be_bytes(), None, &mut rec)
            .unwrap();
        let got = s.receive(t0 + Duration::from_millis(5), &rec[..n], &mut out, None);
        assert_eq!(got, Ok(Received::Ping(7u64.to_be_bytes())));
        assert_eq!(
            s.receive(t0, &rec[..n], &mut out, None),
            Err(DropReason::Replayed)
        );
        let n = s
            .seal(t0, Kind::Pong, &7u64.to_be_bytes(), None, &mut rec)
            .unwrap();
        assert_eq!(
            c.receive(t0, &rec[..n], &mut out, None),
            Ok(Received::Pong(7))
        );
        let n = s.seal(t0, Kind::Close, &[], None, &mut rec).unwrap();
        assert_eq!(
            c.receive(t0, &rec[..n], &mut out, None),
            Ok(Received::Close)
        );
        // garbage of every kind is a counted reason, never a panic
        for junk in [&[][..], &[0, 1, 9][..], &[0, 3, 3, 0, 0][..], &first[..10]] {
            assert!(c.receive(t0, junk, &mut out, None).is_err());
            assert!(
                s.receive(t0, junk, &mut out, Some((&mut responder, 100, [4; 32])))
                    .is_err()
            );
        }
    }
}
