//! Tunnel payload encryption, wire-compatible with the original (reference §4)
//!
//! A sealed payload is `nonce || ciphertext || 16-byte tag` with no associated data. The key is
//! the OpenSSL `EVP_BytesToKey` MD5 chain of the password (one round, no salt), the same key for
//! both directions and every client. Sealing and opening work in place on the caller's buffer.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use md5::{Digest, Md5};
use rand_core::RngCore;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::config::ConfigError;

/// AES-192-GCM with a 96-bit nonce (aes-gcm exports only the 128- and 256-bit aliases)
type Aes192Gcm = AesGcm<Aes192, U12>;

/// Length of every AEAD tag used here
pub const TAG_LEN: usize = 16;

/// An encryption method, named as in the original's `-method`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// No encryption: the payload is the inner bytes
    Plain,
    /// AES-128 in GCM mode
    Aes128Gcm,
    /// AES-192 in GCM mode
    Aes192Gcm,
    /// AES-256 in GCM mode
    Aes256Gcm,
    /// ChaCha20-Poly1305 (RFC 8439)
    ChaCha20Poly1305,
    /// XChaCha20-Poly1305 (24-byte nonce)
    XChaCha20Poly1305,
}

impl Method {
    /// Every method
    pub const ALL: [Self; 6] = [
        Self::Plain,
        Self::Aes128Gcm,
        Self::Aes192Gcm,
        Self::Aes256Gcm,
        Self::ChaCha20Poly1305,
        Self::XChaCha20Poly1305,
    ];

    /// The name used on the command line and in config files
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Aes128Gcm => "aes-128-gcm",
            Self::Aes192Gcm => "aes-192-gcm",
            Self::Aes256Gcm => "aes-256-gcm",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
            Self::XChaCha20Poly1305 => "xchacha20-poly1305",
        }
    }

    /// Key length in bytes
    pub fn key_len(self) -> usize {
        match self {
            Self::Plain => 0,
            Self::Aes128Gcm => 16,
            Self::Aes192Gcm => 24,
            _ => 32,
        }
    }

    /// Nonce length in bytes
    pub fn nonce_len(self) -> usize {
        match self {
            Self::Plain => 0,
            Self::XChaCha20Poly1305 => 24,
            _ => 12,
        }
    }

    /// Bytes a sealed payload adds to the plaintext (nonce plus tag)
    pub fn overhead(self) -> usize {
        match self {
            Self::Plain => 0,
            m => m.nonce_len() + TAG_LEN,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = ConfigError;

    /// Parses a method name, ignoring case as the original does
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ConfigError::UnknownMethod(s.to_owned()))
    }
}

/// Derives a key of `len` bytes (at most 64) from a password by the MD5 `EVP_BytesToKey` chain:
/// `D1 = MD5(pw)`, `Di = MD5(D(i-1) || pw)`, key = the first `len` bytes of `D1 || D2 || ...`
pub fn derive_key(password: &[u8], len: usize) -> [u8; 64] {
    let mut out = [0u8; 64];
    let mut prev: Option<[u8; 16]> = None;
    let mut filled = 0;
    while filled < len.min(64) {
        let mut h = Md5::new();
        if let Some(p) = prev {
            h.update(p);
        }
        h.update(password);
        let d: [u8; 16] = h.finalize().into();
        let n = (len - filled).min(16);
        out[filled..filled + n].copy_from_slice(&d[..n]);
        filled += n;
        prev = Some(d);
    }
    out
}

/// A payload that failed to authenticate or is too short to hold a nonce and tag
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("payload failed to open")]
pub struct OpenError;

enum Aead {
    Plain,
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<Aes192Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
    XChaCha(Box<XChaCha20Poly1305>),
}

/// A keyed method, ready to seal and open payloads in place
pub struct Cipher {
    method: Method,
    aead: Aead,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Cipher {
    /// Keys `method` with `password` (ignored for plain)
    pub fn new(method: Method, password: &str) -> Self {
        let key = derive_key(password.as_bytes(), method.key_len());
        let key = &key[..method.key_len()];
        let bad = "the derived key has the method's key length";
        let aead = match method {
            Method::Plain => Aead::Plain,
            Method::Aes128Gcm => Aead::Aes128(Box::new(Aes128Gcm::new_from_slice(key).expect(bad))),
            Method::Aes192Gcm => Aead::Aes192(Box::new(Aes192Gcm::new_from_slice(key).expect(bad))),
            Method::Aes256Gcm => Aead::Aes256(Box::new(Aes256Gcm::new_from_slice(key).expect(bad))),
            Method::ChaCha20Poly1305 => {
                Aead::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).expect(bad)))
            }
            Method::XChaCha20Poly1305 => {
                Aead::XChaCha(Box::new(XChaCha20Poly1305::new_from_slice(key).expect(bad)))
            }
        };
        Self { method, aead }
    }

    /// The method
    pub fn method(&self) -> Method {
        self.method
    }

    /// Bytes sealing adds (nonce plus tag)
    pub fn overhead(&self) -> usize {
        self.method.overhead()
    }

    /// Seals the `len` plaintext bytes at `buf[nonce_len..]` in place
    ///
    /// A fresh nonce from `rng` goes in front and the tag after the ciphertext. Returns the sealed
    /// length, `len + overhead()`.
    ///
    /// # Panics
    /// If `buf` is shorter than `len + overhead()` (a caller bug).
    pub fn seal(&self, buf: &mut [u8], len: usize, rng: &mut impl RngCore) -> usize {
        let nl = self.method.nonce_len();
        let (head, rest) = buf.split_at_mut(nl);
        let (data, tag_out) = rest.split_at_mut(len);
        self.seal_parts(head, InOutBuf::from(data), tag_out, rng);
        len + self.overhead()
    }

    /// Seals `plaintext` into `out` as `nonce || ciphertext || tag`, reading the input once
    ///
    /// Returns the sealed length, `plaintext.len() + overhead()`.
    ///
    /// # Panics
    /// If `out` is shorter than `plaintext.len() + overhead()` (a caller bug).
    pub fn seal_from(&self, plaintext: &[u8], out: &mut [u8], rng: &mut impl RngCore) -> usize {
        let nl = self.method.nonce_len();
        let len = plaintext.len();
        let (head, rest) = out.split_at_mut(nl);
        let (data, tag_out) = rest.split_at_mut(len);
        let io = InOutBuf::new(plaintext, data).expect("both halves have the plaintext's length");
        self.seal_parts(head, io, tag_out, rng);
        len + self.overhead()
    }

    fn seal_parts(
        &self,
        nonce: &mut [u8],
        data: InOutBuf<'_, '_, u8>,
        tag_out: &mut [u8],
        rng: &mut impl RngCore,
    ) {
        if nonce.is_empty() {
            // plain: the ciphertext is the plaintext, copied when input and output differ
            let _ = data.into_out_with_copied_in();
            return;
        }
        rng.fill_bytes(nonce);
        let tag = match &self.aead {
            Aead::Plain => unreachable!("plain has no nonce"),
            Aead::Aes128(a) => seal_with(&**a, nonce, data),
            Aead::Aes192(a) => seal_with(&**a, nonce, data),
            Aead::Aes256(a) => seal_with(&**a, nonce, data),
            Aead::ChaCha(a) => seal_with(&**a, nonce, data),
            Aead::XChaCha(a) => seal_with(&**a, nonce, data),
        };
        tag_out[..TAG_LEN].copy_from_slice(&tag);
    }

    /// Opens a sealed payload in place; returns where the plaintext lies in `buf`
    pub fn open(&self, buf: &mut [u8]) -> Result<Range<usize>, OpenError> {
        let nl = self.method.nonce_len();
        if nl == 0 {
            return Ok(0..buf.len());
        }
        if buf.len() < nl + TAG_LEN {
            return Err(OpenError);
        }
        let end = buf.len() - TAG_LEN;
        let (nonce, rest) = buf.split_at_mut(nl);
        let (data, tag) = rest.split_at_mut(end - nl);
        self.open_parts(nonce, InOutBuf::from(data), tag)?;
        Ok(nl..end)
    }

    /// Opens `sealed` into `out`, reading the input once; returns the plaintext length
    ///
    /// On failure `out` holds garbage. A too-short `out` is an error, not a panic.
    pub fn open_into(&self, sealed: &[u8], out: &mut [u8]) -> Result<usize, OpenError> {
        let nl = self.method.nonce_len();
        let tl = if nl == 0 { 0 } else { TAG_LEN };
        let len = sealed.len().checked_sub(nl + tl).ok_or(OpenError)?;
        let out = out.get_mut(..len).ok_or(OpenError)?;
        let (nonce, rest) = sealed.split_at(nl);
        let (data, tag) = rest.split_at(len);
        let io = InOutBuf::new(data, out).expect("both halves have the plaintext's length");
        if nl == 0 {
            let _ = io.into_out_with_copied_in();
            return Ok(len);
        }
        self.open_parts(nonce, io, tag)?;
        Ok(len)
    }

    fn open_parts(
        &self,
        nonce: &[u8],
        data: InOutBuf<'_, '_, u8>,
        tag: &[u8],
    ) -> Result<(), OpenError> {
        match &self.aead {
            Aead::Plain => Ok(()),
            Aead::Aes128(a) => open_with(&**a, nonce, data, tag),
            Aead::Aes192(a) => open_with(&**a, nonce, data, tag),
            Aead::Aes256(a) => open_with(&**a, nonce, data, tag),
            Aead::ChaCha(a) => open_with(&**a, nonce, data, tag),
            Aead::XChaCha(a) => open_with(&**a, nonce, data, tag),
        }
    }
}

fn seal_with<A: AeadInOut>(aead: &A, nonce: &[u8], data: InOutBuf<'_, '_, u8>) -> [u8; TAG_LEN] {
    let nonce = <&aes_gcm::aead::Nonce<A>>::try_from(nonce).expect("nonce length from the method");
    let tag = aead
        .encrypt_inout_detached(nonce, &[], data)
        .expect("payloads are far below the AEAD length limits");
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&tag);
    out
}

fn open_with<A: AeadInOut>(
    aead: &A,
    nonce: &[u8],
    data: InOutBuf<'_, '_, u8>,
    tag: &[u8],
) -> Result<(), OpenError> {
    let nonce = <&aes_gcm::aead::Nonce<A>>::try_from(nonce).map_err(|_| OpenError)?;
    let tag = <&aes_gcm::aead::Tag<A>>::try_from(tag).map_err(|_| OpenError)?;
    aead.decrypt_inout_detached(nonce, &[], data, tag)
        .map_err(|_| OpenError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Reference §4 test vectors from the original's key.go
    #[test]
    fn key_derivation_vectors() {
        assert_eq!(
            hex(&derive_key(b"password", 16)[..16]),
            "5f4dcc3b5aa765d61d8327deb882cf99"
        );
        assert_eq!(
            hex(&derive_key(b"password", 32)[..32]),
            "5f4dcc3b5aa765d61d8327deb882cf992b95990a9151374abd8ff8c5a7a0fe08"
        );
        assert_eq!(
            hex(&derive_key(b"password", 24)[..24]),
            hex(&derive_key(b"password", 32)[..24])
        );
        assert_eq!(
            hex(&derive_key(b"", 32)[..32]),
            "d41d8cd98f00b204e9800998ecf8427e59adb24ef3cdbe0297f05b395827453f"
        );
    }

    #[test]
    fn method_names_parse_case_insensitively() {
        for m in Method::ALL {
            assert_eq!(m.name().parse::<Method>().unwrap(), m);
            assert_eq!(m.name().to_uppercase().parse::<Method>().unwrap(), m);
        }
        assert!("rc4".parse::<Method>().is_err());
        assert_eq!(Method::Aes192Gcm.overhead(), 28);
        assert_eq!(Method::XChaCha20Poly1305.overhead(), 40);
    }

    #[test]
    fn copying_variants_match_in_place() {
        for m in Method::ALL {
            let c = Cipher::new(m, "pw");
            let msg: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
            let mut sealed = vec![0u8; 300 + m.overhead()];
            let n = c.seal_from(&msg, &mut sealed, &mut ChaCha20Rng::seed_from_u64(1));
            let mut in_place = vec![0u8; 300 + m.overhead()];
            in_place[m.nonce_len()..m.nonce_len() + 300].copy_from_slice(&msg);
            c.seal(&mut in_place, 300, &mut ChaCha20Rng::seed_from_u64(1));
            assert_eq!(sealed, in_place);
            let mut out = vec![0u8; 400];
            assert_eq!(c.open_into(&sealed[..n], &mut out), Ok(300));
            assert_eq!(&out[..300], &msg[..]);
            assert_eq!(c.open_into(&sealed[..n], &mut out[..10]), Err(OpenError));
            assert!(c.open_into(&[], &mut out).is_err() || m == Method::Plain);
        }
    }

    #[test]
    fn seal_open_every_method_and_wrong_password() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for m in Method::ALL {
            let c = Cipher::new(m, "secret");
            let mut buf = vec![0u8; 100 + c.overhead()];
            buf[m.nonce_len()..m.nonce_len() + 100].fill(0x5a);
            let n = c.seal(&mut buf, 100, &mut rng);
            assert_eq!(n, 100 + m.overhead());
            let mut copy = buf.clone();
            let r = c.open(&mut buf[..n]).unwrap();
            assert!(buf[r].iter().all(|&b| b == 0x5a));
            if m != Method::Plain {
                let wrong = Cipher::new(m, "Secret");
                assert_eq!(wrong.open(&mut copy[..n]), Err(OpenError));
                assert_eq!(c.open(&mut copy[..m.overhead() - 1]), Err(OpenError));
            }
        }
    }

    proptest::proptest! {
        /// Seal then open gives the plaintext back for every method; any flipped bit is refused
        #[test]
        fn seal_then_open(m in 0usize..6, pw in "[ -~]{1,20}", msg in proptest::collection::vec(0u8.., 0..2000), seed: u64, flip: usize) {
            let method = Method::ALL[m];
            let c = Cipher::new(method, &pw);
            let mut sealed = vec![0u8; msg.len() + method.overhead()];
            let n = c.seal_from(&msg, &mut sealed, &mut ChaCha20Rng::seed_from_u64(seed));
            let mut out = vec![0u8; n];
            proptest::prop_assert_eq!(c.open_into(&sealed[..n], &mut out), Ok(msg.len()));
            proptest::prop_assert_eq!(&out[..msg.len()], &msg[..]);
            if method != Method::Plain {
                let bit = flip % (n * 8);
                sealed[bit / 8] ^= 1 << (bit % 8);
                proptest::prop_assert_eq!(c.open_into(&sealed[..n], &mut out), Err(OpenError));
            }
        }
    }
}
