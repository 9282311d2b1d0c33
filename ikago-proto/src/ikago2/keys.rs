//! Keys of `ikago2`: the pre-shared key stretched from the password, the labelled key
//! derivation, and the record AEAD keyed per direction and phase
//!
//! The password is stretched once per machine by Argon2id ([`Psk::derive`], tens of
//! milliseconds); everything per handshake and per record uses BLAKE2s and the AEAD only.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use blake2::Blake2sMac256;
use blake2::digest::Mac;
use chacha20poly1305::ChaCha20Poly1305;
use std::fmt;

/// Length of every key here (the PSK, derived keys, record keys)
pub const KEY_LEN: usize = 32;
/// Length of a record's authentication tag
pub const TAG_LEN: usize = 16;
/// Argon2id memory cost in KiB (the OWASP minimum for Argon2id: 19 MiB)
pub const ARGON2_M_COST: u32 = 19 * 1024;
/// Argon2id passes
pub const ARGON2_T_COST: u32 = 2;
/// Argon2id lanes
pub const ARGON2_P_COST: u32 = 1;
/// The constant part of the Argon2id salt; the server's tunnel port (big-endian) follows it
pub const SALT_PREFIX: &[u8; 16] = b"ikago2 psk salt ";

/// `KDF(key, label || data)`: keyed BLAKE2s-256 (RFC 7693 keyed mode) of the label and data
pub fn kdf(key: &[u8; KEY_LEN], label: &[u8], data: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut m = <Blake2sMac256 as blake2::digest::KeyInit>::new_from_slice(key)
        .expect("32 bytes is a valid BLAKE2s key");
    m.update(label);
    for d in data {
        m.update(d);
    }
    m.finalize().into_bytes().into()
}

/// The pre-shared key of a deployment: Argon2id of the password under a salt bound to the
/// server's tunnel port
#[derive(Clone, PartialEq, Eq)]
pub struct Psk([u8; KEY_LEN]);

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(..)")
    }
}

impl Psk {
    /// Stretches `password` for the server listening on `port` (Argon2id v1.3,
    /// [`ARGON2_M_COST`] KiB, [`ARGON2_T_COST`] passes, [`ARGON2_P_COST`] lane, 32 bytes,
    /// salt [`SALT_PREFIX`] `||` port big-endian). Costs tens of milliseconds: call it once
    pub fn derive(password: &str, port: u16) -> Self {
        let params =
            argon2::Params::new(ARGON2_M_COST, ARGON2_T_COST, ARGON2_P_COST, Some(KEY_LEN))
                .expect("constant Argon2 parameters are valid");
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut salt = [0u8; 18];
        salt[..16].copy_from_slice(SALT_PREFIX);
        salt[16..].copy_from_slice(&port.to_be_bytes());
        let mut out = [0u8; KEY_LEN];
        a.hash_password_into(password.as_bytes(), &salt, &mut out)
            .expect("any password length below 2^32 bytes is accepted");
        Self(out)
    }

    /// A PSK from its raw bytes (test vectors, or a key kept elsewhere)
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key (the Noise `psk`)
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key of SYN proofs: `KDF(psk, "ikago2 syn proof")`
    pub fn syn_key(&self) -> [u8; KEY_LEN] {
        kdf(&self.0, b"ikago2 syn proof", &[])
    }
}

/// The AEAD of the transport records, chosen by the initiator and carried in its handshake
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordCipher {
    /// AES-256-GCM: the fastest where the CPU has AES instructions
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439): the fastest without them
    ChaCha20Poly1305,
}

impl RecordCipher {
    /// The byte that names it in the initiation payload
    pub fn id(self) -> u8 {
        match self {
            Self::Aes256Gcm => 1,
            Self::ChaCha20Poly1305 => 2,
        }
    }

    /// The cipher named by `id`
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Aes256Gcm),
            2 => Some(Self::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// Its name, as `--method` spells it
    pub fn name(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
}

enum Aead {
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// A record key of one direction and phase, with the raw key kept for the next phase
pub struct RecordKey {
    raw: [u8; KEY_LEN],
    aead: Aead,
}

impl fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecordKey(..)")
    }
}

/// A record that fails to authenticate
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forged;

impl RecordKey {
    /// Keys `cipher` with `raw`
    pub fn new(cipher: RecordCipher, raw: [u8; KEY_LEN]) -> Self {
        let aead = match cipher {
            RecordCipher::Aes256Gcm => Aead::Aes(Box::new(
                Aes256Gcm::new_from_slice(&raw).expect("32-byte key"),
            )),
            RecordCipher::ChaCha20Poly1305 => Aead::ChaCha(Box::new(
                ChaCha20Poly1305::new_from_slice(&raw).expect("32-byte key"),
            )),
        };
        Self { raw, aead }
    }

    /// The key of the next phase: `KDF(key, "ikago2 rekey")`, same cipher
    pub fn next(&self) -> Self {
        let cipher = match self.aead {
            Aead::Aes(_) => RecordCipher::Aes256Gcm,
            Aead::ChaCha(_) => RecordCipher::ChaCha20Poly1305,
        };
        Self::new(cipher, kdf(&self.raw, b"ikago2 rekey", &[]))
    }

    /// The raw key bytes (test vectors)
    pub fn raw(&self) -> &[u8; KEY_LEN] {
        &self.raw
    }

    /// Encrypts `data` in place under `counter` with `aad`; returns the tag
    pub(crate) fn seal_in_place(&self, counter: u64, aad: &[u8], data: &mut [u8]) -> [u8; TAG_LEN] {
        let nonce = nonce(counter);
        let io = InOutBuf::from(data);
        let tag = match &self.aead {
            Aead::Aes(a) => a
                .encrypt_inout_detached(&nonce.into(), aad, io)
                .map(|t| t.into()),
            Aead::ChaCha(a) => a
                .encrypt_inout_detached(&nonce.into(), aad, io)
                .map(|t| t.into()),
        };
        tag.expect("records are far below the AEAD length limits")
    }

    /// Opens `sealed` into `out` (same length) under `counter`, `aad` and `tag`
    pub(crate) fn open(
        &self,
        counter: u64,
        aad: &[u8],
        sealed: &[u8],
        tag: &[u8],
        out: &mut [u8],
    ) -> Result<(), Forged> {
        let nonce = nonce(counter);
        let io = InOutBuf::new(sealed, out).map_err(|_| Forged)?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| Forged)?;
        match &self.aead {
            Aead::Aes(a) => a.decrypt_inout_detached(&nonce.into(), aad, io, &tag.into()),
            Aead::ChaCha(a) => a.decrypt_inout_detached(&nonce.into(), aad, io, &tag.into()),
        }
        .map_err(|_| Forged)
    }
}

/// The 96-bit nonce of a record: four zero bytes, then the counter big-endian
fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        for c in [RecordCipher::Aes256Gcm, RecordCipher::ChaCha20Poly1305] {
            let k = RecordKey::new(c, [7; 32]);
            let mut ct = *b"hello";
            let tag = k.seal_in_place(9, b"aad", &mut ct);
            let mut pt = [0u8; 5];
            k.open(9, b"aad", &ct, &tag, &mut pt).unwrap();
            assert_eq!(&pt, b"hello");
            assert_eq!(k.open(10, b"aad", &ct, &tag, &mut pt), Err(Forged));
            assert_eq!(k.open(9, b"aaD", &ct, &tag, &mut pt), Err(Forged));
            assert_eq!(k.next().open(9, b"aad", &ct, &tag, &mut pt), Err(Forged));
        }
    }

    #[test]
    fn psk_depends_on_password_and_port() {
        let a = Psk::derive("secret", 18081);
        assert_eq!(a, Psk::derive("secret", 18081));
        assert_ne!(a, Psk::derive("secret", 18082));
        assert_ne!(a, Psk::derive("Secret", 18081));
    }
}
