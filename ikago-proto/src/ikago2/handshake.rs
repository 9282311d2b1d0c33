//! The `ikago2` handshake: `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`, one round trip after the
//! FakeTCP handshake
//!
//! - **Pattern.** `NNpsk0`: no static keys; both ends hold the PSK, mixed in before the first
//!   message. Message 1 (`psk, e`) is authenticated by the PSK alone, so a server checks an
//!   initiation with one hash chain and one AEAD, before any Diffie-Hellman: a flood of bogus
//!   initiations costs little. Message 2 (`e, ee`) adds the ephemeral-ephemeral DH, which gives
//!   the session keys forward secrecy.
//! - **Prologue** `ikago2 v1`.
//! - **Initiation payload** (10 bytes, encrypted): version (1), the record cipher's id (see
//!   [`RecordCipher::id`]), the initiator's Unix time in seconds (8, big-endian). The responder
//!   refuses a time more than [`MAX_SKEW`] away from its own and an ephemeral key it has seen
//!   (a replayed initiation).
//! - **Response payload**: empty.
//! - **Keys.** With Noise's `Split()` giving `k1` (initiator to responder) and `k2`, the first
//!   record key of each direction is `KDF(k, "ikago2 record key" || cipher id)` (see
//!   [`kdf`](super::keys::kdf)).
//!
//! Ephemeral keys are drawn from a generator seeded by the caller (the machine's CSPRNG), so
//! that the core stays deterministic and a session can be replayed.

use super::keys::{KEY_LEN, Psk, RecordCipher, RecordKey, kdf};
use super::record::{self, TYPE_INITIATION, TYPE_RESPONSE};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The Noise protocol name
pub const NOISE_PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// The Noise prologue
pub const PROLOGUE: &[u8] = b"ikago2 v1";
/// The version byte of the initiation payload
pub const VERSION: u8 = 1;
/// Bytes of the initiation payload
const INIT_PAYLOAD_LEN: usize = 10;
/// Bytes of Noise message 1: ephemeral key, payload, tag
pub const MSG1_LEN: usize = 32 + INIT_PAYLOAD_LEN + 16;
/// Bytes of Noise message 2: ephemeral key, tag of the empty payload
pub const MSG2_LEN: usize = 32 + 16;
/// Bytes of an initiation record
pub const INITIATION_LEN: usize = 3 + MSG1_LEN;
/// Bytes of a response record
pub const RESPONSE_LEN: usize = 3 + MSG2_LEN;
/// Largest difference between the initiator's clock and the responder's that is accepted
pub const MAX_SKEW: Duration = Duration::from_secs(90);
/// Ephemeral keys of accepted initiations remembered at most (the oldest are forgotten first)
pub const SEEN_MAX: usize = 4096;
/// Initiations the responder opens per second at most; beyond, they are dropped unread
pub const INITIATIONS_PER_SECOND: u32 = 2000;

/// Why a handshake record is refused
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not a handshake record of the expected type and length
    Malformed,
    /// It does not authenticate under the PSK (wrong password, or not ikago2 at all)
    Forged,
    /// It authenticates but is refused: unknown version or cipher, a clock too far off
    Refused,
    /// An initiation seen before (a replay)
    Replayed,
    /// Over the per-second budget of initiations
    OverBudget,
}

/// A generator for snow, seeded by the caller
struct Seeded(ChaCha20Rng);

impl Random for Seeded {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

/// snow's own primitives, with our seeded generator
struct Resolver([u8; 32]);

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(Seeded(ChaCha20Rng::from_seed(self.0))))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

fn builder<'a>(psk: &'a Psk, seed: [u8; 32]) -> snow::Builder<'a> {
    let params = NOISE_PATTERN.parse().expect("a valid Noise protocol name");
    snow::Builder::with_resolver(params, Box::new(Resolver(seed)))
        .prologue(PROLOGUE)
        .expect("prologue set once")
        .psk(0, psk.bytes())
        .expect("psk0 of an NNpsk0 pattern")
}

/// The keys a completed handshake gives one end
#[derive(Debug)]
pub struct SessionKeys {
    /// The record cipher
    pub cipher: RecordCipher,
    /// Phase 0 key of what this end sends
    pub tx: RecordKey,
    /// Phase 0 key of what this end receives
    pub rx: RecordKey,
}

fn session_keys(hs: &mut snow::HandshakeState, cipher: RecordCipher) -> SessionKeys {
    let (k1, k2) = hs.dangerously_get_raw_split();
    let key =
        |k: &[u8; KEY_LEN]| RecordKey::new(cipher, kdf(k, b"ikago2 record key", &[&[cipher.id()]]));
    let (tx, rx) = if hs.is_initiator() {
        (key(&k1), key(&k2))
    } else {
        (key(&k2), key(&k1))
    };
    SessionKeys { cipher, tx, rx }
}

/// The client's side of a handshake: its initiation record, kept for retransmission, and
/// what it takes to read the response
#[derive(Debug, Clone)]
pub struct Initiator {
    psk: Psk,
    seed: [u8; 32],
    payload: [u8; INIT_PAYLOAD_LEN],
    record: [u8; INITIATION_LEN],
}

impl Initiator {
    /// A new handshake offering `cipher`, at Unix time `unix_secs`, with its ephemeral key
    /// drawn from `seed`
    pub fn new(psk: &Psk, cipher: RecordCipher, unix_secs: u64, seed: [u8; 32]) -> Self {
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        payload[0] = VERSION;
        payload[1] = cipher.id();
        payload[2..].copy_from_slice(&unix_secs.to_be_bytes());
        let mut record = [0u8; INITIATION_LEN];
        let mut hs = builder(psk, seed)
            .build_initiator()
            .expect("a complete initiator");
        let n = hs
            .write_message(&payload, &mut record[3..])
            .expect("room for message 1");
        debug_assert_eq!(n, MSG1_LEN);
        record::frame_handshake(&mut record, TYPE_INITIATION, n);
        Self {
            psk: psk.clone(),
            seed,
            payload,
            record,
        }
    }

    /// The initiation record, to send (again while no response comes)
    pub fn record(&self) -> &[u8] {
        &self.record
    }

    /// Reads a response record; the session keys when it authenticates. A forged response
    /// leaves the initiator as it was
    pub fn finish(&self, response: &[u8]) -> Result<SessionKeys, HandshakeError> {
        if response.len() != RESPONSE_LEN
            || record::record_len(response) != Some(RESPONSE_LEN)
            || record::record_type(response) != Some(TYPE_RESPONSE)
        {
            return Err(HandshakeError::Malformed);
        }
        // the same seed draws the same ephemeral key: message 1 is rebuilt, identical, so that a
        // forged response cannot spoil the state a genuine one needs
        let mut hs = builder(&self.psk, self.seed)
            .build_initiator()
            .expect("a complete initiator");
        let mut msg1 = [0u8; MSG1_LEN];
        hs.write_message(&self.payload, &mut msg1)
            .expect("room for message 1");
        let mut empty = [0u8; 0];
        hs.read_message(&response[3..], &mut empty)
            .map_err(|_| HandshakeError::Forged)?;
        Ok(session_keys(
            &mut hs,
            RecordCipher::from_id(self.payload[1]).expect("our own id"),
        ))
    }
}

/// What an accepted initiation gives the server
#[derive(Debug)]
pub struct Accepted {
    /// The session keys
    pub keys: SessionKeys,
    /// The response record to send (and to send again if the same initiation comes again)
    pub response: [u8; RESPONSE_LEN],
}

/// The server's side: opens initiations under the PSK, answers them, refuses replays and
/// floods in bounded memory
#[derive(Debug)]
pub struct Responder {
    psk: Psk,
    /// Ephemeral keys of accepted initiations, with when they were accepted
    seen: BTreeMap<[u8; 32], Instant>,
    order: VecDeque<([u8; 32], Instant)>,
    budget: crate::ratelimit::PerSecond,
}

impl Responder {
    /// A responder under `psk`
    pub fn new(psk: Psk, now: Instant) -> Self {
        Self {
            psk,
            seen: BTreeMap::new(),
            order: VecDeque::new(),
            budget: crate::ratelimit::PerSecond::new(INITIATIONS_PER_SECOND, now),
        }
    }

    /// The PSK
    pub fn psk(&self) -> &Psk {
        &self.psk
    }

    /// Opens an initiation record received at `now` (Unix time `unix_secs`) and answers it,
    /// with the responder's ephemeral key drawn from `seed`
    pub fn accept(
        &mut self,
        record: &[u8],
        now: Instant,
        unix_secs: u64,
        seed: [u8; 32],
    ) -> Result<Accepted, HandshakeError> {
        if record.len() != INITIATION_LEN
            || record::record_len(record) != Some(INITIATION_LEN)
            || record::record_type(record) != Some(TYPE_INITIATION)
        {
            return Err(HandshakeError::Malformed);
        }
        if !self.budget.allow(now) {
            return Err(HandshakeError::OverBudget);
        }
        let mut hs = builder(&self.psk, seed)
            .build_responder()
            .expect("a complete responder");
        let mut payload = [0u8; INIT_PAYLOAD_LEN];
        let n = hs
            .read_message(&record[3..], &mut payload)
            .map_err(|_| HandshakeError::Forged)?;
        let cipher = RecordCipher::from_id(payload[1]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&payload[2..10]);
        let skew = u64::from_be_bytes(t).abs_diff(unix_secs);
        let (true, VERSION, Some(cipher), true) = (
            n == INIT_PAYLOAD_LEN,
            payload[0],
            cipher,
            skew <= MAX_SKEW.as_secs(),
        ) else {
            return Err(HandshakeError::Refused);
        };
        let mut ephemeral = [0u8; 32];
        ephemeral.copy_from_slice(&record[3..35]);
        self.forget_old(now);
        if self.seen.contains_key(&ephemeral) {
            return Err(HandshakeError::Replayed);
        }
        let mut response = [0u8; RESPONSE_LEN];
        let m = hs
            .write_message(&[], &mut response[3..])
            .expect("room for message 2");
        record::frame_handshake(&mut response, TYPE_RESPONSE, m);
        let keys = session_keys(&mut hs, cipher);
        if self.order.len() >= SEEN_MAX
            && let Some((old, _)) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(ephemeral, now);
        self.order.push_back((ephemeral, now));
        Ok(Accepted { keys, response })
    }

    /// Forgets ephemeral keys older than twice [`MAX_SKEW`]: their initiations are refused for
    /// their time by then
    fn forget_old(&mut self, now: Instant) {
        while let Some(&(e, at)) = self.order.front() {
            if now.saturating_duration_since(at) < 2 * MAX_SKEW {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psk() -> Psk {
        Psk::from_bytes([3; 32])
    }

    #[test]
    fn handshake_agrees_on_keys() {
        let t0 = Instant::now();
        let i = Initiator::new(&psk(), RecordCipher::Aes256Gcm, 1_000_000, [1; 32]);
        let mut r = Responder::new(psk(), t0);
        let a = r.accept(i.record(), t0, 1_000_030, [2; 32]).unwrap();
        let k = i.finish(&a.response).unwrap();
        assert_eq!(k.tx.raw(), a.keys.rx.raw());
        assert_eq!(k.rx.raw(), a.keys.tx.raw());
        assert_ne!(k.tx.raw(), k.rx.raw());
        assert_eq!(a.keys.cipher, RecordCipher::Aes256Gcm);
        // the same initiation again is a replay
        assert_eq!(
            r.accept(i.record(), t0, 1_000_030, [2; 32]).unwrap_err(),
            HandshakeError::Replayed
        );
    }

    #[test]
    fn wrong_psk_skew_and_forged_response_are_refused() {
        let t0 = Instant::now();
        let i = Initiator::new(&psk(), RecordCipher::ChaCha20Poly1305, 1_000_000, [1; 32]);
        let mut other = Responder::new(Psk::from_bytes([4; 32]), t0);
        assert_eq!(
            other
                .accept(i.record(), t0, 1_000_000, [2; 32])
                .unwrap_err(),
            HandshakeError::Forged
        );
        let mut r = Responder::new(psk(), t0);
        assert_eq!(
            r.accept(i.record(), t0, 1_000_091, [2; 32]).unwrap_err(),
            HandshakeError::Refused
        );
        let a = r.accept(i.record(), t0, 1_000_000, [2; 32]).unwrap();
        let mut bad = a.response;
        bad[20] ^= 1;
        assert_eq!(i.finish(&bad).unwrap_err(), HandshakeError::Forged);
        // the initiator still completes with the genuine response afterwards
        assert!(i.finish(&a.response).is_ok());
        assert_eq!(
            i.finish(&a.response[..10]).unwrap_err(),
            HandshakeError::Malformed
        );
    }

    #[test]
    fn flood_is_budgeted_and_memory_bounded() {
        let t0 = Instant::now();
        let mut r = Responder::new(psk(), t0);
        let junk = {
            let mut j = Initiator::new(&psk(), RecordCipher::Aes256Gcm, 5, [9; 32]).record;
            j[40] ^= 0xff;
            j
        };
        for _ in 0..INITIATIONS_PER_SECOND {
            assert_eq!(
                r.accept(&junk, t0, 5, [0; 32]).unwrap_err(),
                HandshakeError::Forged
            );
        }
        assert_eq!(
            r.accept(&junk, t0, 5, [0; 32]).unwrap_err(),
            HandshakeError::OverBudget
        );
        let t1 = t0 + Duration::from_secs(1);
        for n in 0..(SEEN_MAX as u32 + 10) {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&n.to_be_bytes());
            let i = Initiator::new(&psk(), RecordCipher::Aes256Gcm, 5, seed);
            let now = t1 + Duration::from_secs(u64::from(n) / 1000);
            r.accept(i.record(), now, 5, seed).unwrap();
        }
        assert!(r.seen.len() <= SEEN_MAX && r.order.len() <= SEEN_MAX);
    }
}
