//! Record framing: every `ikago2` message is a record that starts with its own length, so that
//! records can share a FakeTCP segment and a byte stream can be cut into records
//!
//! ```text
//! record    = length(2, big-endian: bytes after these two) type(1) body
//! type 0x01 = initiation: Noise message 1
//! type 0x02 = response:   Noise message 2
//! type 0x03 = transport:  phase(1) counter(8, big-endian) ciphertext tag(16)
//! ```
//!
//! A transport record's additional data is its first 12 bytes (length, type, phase, counter);
//! its nonce is four zero bytes and the counter. The plaintext is `kind(1) body padding`
//! ([`Kind`]); the body's length follows from its kind, and padding bytes after it are ignored.

use super::keys::{Forged, RecordKey, TAG_LEN};

/// Bytes of the length prefix
pub const PREFIX_LEN: usize = 2;
/// Bytes of a transport record before its ciphertext (length, type, phase, counter)
pub const TRANSPORT_HEADER_LEN: usize = 12;
/// Bytes a transport record adds to its plaintext
pub const TRANSPORT_OVERHEAD: usize = TRANSPORT_HEADER_LEN + TAG_LEN;
/// Bytes a transport record adds to an inner packet (the kind byte too)
pub const PACKET_OVERHEAD: usize = TRANSPORT_OVERHEAD + 1;
/// The longest record: a 16-bit length after the prefix
pub const MAX_RECORD_LEN: usize = PREFIX_LEN + u16::MAX as usize;

/// Type byte of an initiation record
pub const TYPE_INITIATION: u8 = 0x01;
/// Type byte of a response record
pub const TYPE_RESPONSE: u8 = 0x02;
/// Type byte of a transport record
pub const TYPE_TRANSPORT: u8 = 0x03;

/// The whole length of the record whose first bytes are `prefix`, once at least the two bytes
/// of the length are there; what a byte-stream transport cuts records with
pub fn record_len(prefix: &[u8]) -> Option<usize> {
    match prefix {
        [a, b, ..] => Some(PREFIX_LEN + usize::from(u16::from_be_bytes([*a, *b]))),
        _ => None,
    }
}

/// What a transport record carries (the first plaintext byte)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An inner IP packet; its body is the packet, whose length is its IPv4 total length, or for
    /// IPv6 (version 6) its 40-byte header plus its payload length
    Packet = 0,
    /// A keepalive that asks for a [`Kind::Pong`]: body is the sender's 8-byte stamp
    Ping = 1,
    /// The answer to a ping: body is the ping's stamp, echoed
    Pong = 2,
    /// The sender ends the session: empty body
    Close = 3,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Packet,
            1 => Self::Ping,
            2 => Self::Pong,
            3 => Self::Close,
            _ => return None,
        })
    }
}

/// Why a record is refused before or while it is opened
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordError {
    /// The length runs past the bytes there are, or is too short for its type, or the type or
    /// kind is unknown, or the body is not what its kind says
    Malformed,
    /// Authentication failed (wrong key, tampering, or a counter outside its key's range)
    Forged,
}

impl From<Forged> for RecordError {
    fn from(_: Forged) -> Self {
        Self::Forged
    }
}

/// Splits the records of a FakeTCP segment (or any buffer of whole records)
///
/// Each item is one whole record (prefix included); a record whose length runs past the
/// buffer ends the iteration with [`RecordError::Malformed`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Records<'a> {
    /// The records of `bytes`
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<&'a [u8], RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some(len) = record_len(self.rest).filter(|&n| n > PREFIX_LEN && n <= self.rest.len())
        else {
            self.rest = &[];
            return Some(Err(RecordError::Malformed));
        };
        let (record, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(Ok(record))
    }
}

/// The type byte of a whole record
pub fn record_type(record: &[u8]) -> Option<u8> {
    record.get(PREFIX_LEN).copied()
}

/// Writes a handshake record of `ty` around the Noise message already at `out[3..3 + len]`;
/// returns the record length
pub(crate) fn frame_handshake(out: &mut [u8], ty: u8, len: usize) -> usize {
    let n = 1 + len;
    out[..PREFIX_LEN].copy_from_slice(&(n as u16).to_be_bytes());
    out[PREFIX_LEN] = ty;
    PREFIX_LEN + n
}

/// The header fields of a transport record
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportHeader {
    /// The low byte of the sender's key phase
    pub phase: u8,
    /// The record counter of that phase
    pub counter: u64,
}

/// Parses the header of a whole transport record
pub fn parse_transport(record: &[u8]) -> Result<TransportHeader, RecordError> {
    if record.len() < TRANSPORT_OVERHEAD + 1
        || record_type(record) != Some(TYPE_TRANSPORT)
        || record_len(record) != Some(record.len())
    {
        return Err(RecordError::Malformed);
    }
    let mut c = [0u8; 8];
    c.copy_from_slice(&record[4..12]);
    Ok(TransportHeader {
        phase: record[3],
        counter: u64::from_be_bytes(c),
    })
}

/// Seals the plaintext `kind || body || zeros(pad)` into a transport record in `out`; returns the
/// record length
///
/// # Panics
/// If `out` is shorter than the record (`body.len() + pad +` [`PACKET_OVERHEAD`]) or the record
/// longer than [`MAX_RECORD_LEN`]: callers size both.
pub(crate) fn seal_transport(
    key: &RecordKey,
    header: TransportHeader,
    kind: Kind,
    body: &[u8],
    pad: usize,
    out: &mut [u8],
) -> usize {
    let plain_len = 1 + body.len() + pad;
    let total = TRANSPORT_OVERHEAD + plain_len;
    assert!(total <= MAX_RECORD_LEN, "record of {total} bytes");
    out[..PREFIX_LEN].copy_from_slice(&((total - PREFIX_LEN) as u16).to_be_bytes());
    out[PREFIX_LEN] = TYPE_TRANSPORT;
    out[3] = header.phase;
    out[4..12].copy_from_slice(&header.counter.to_be_bytes());
    let (aad, rest) = out.split_at_mut(TRANSPORT_HEADER_LEN);
    let (data, tag_out) = rest.split_at_mut(plain_len);
    // the plaintext is assembled in place and encrypted there
    data[0] = kind as u8;
    data[1..1 + body.len()].copy_from_slice(body);
    data[1 + body.len()..].fill(0);
    let tag = key.seal_in_place(header.counter, aad, data);
    tag_out[..TAG_LEN].copy_from_slice(&tag);
    total
}

/// An opened transport record: its kind and where its body lies in the output buffer
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// What it carries
    pub kind: Kind,
    /// The body's range in the output buffer
    pub body: std::ops::Range<usize>,
}

/// Opens the whole transport `record` (parsed as `header`) into `out`
pub(crate) fn open_transport(
    key: &RecordKey,
    header: TransportHeader,
    record: &[u8],
    out: &mut [u8],
) -> Result<Opened, RecordError> {
    let plain_len = record.len() - TRANSPORT_OVERHEAD;
    let out = out.get_mut(..plain_len).ok_or(RecordError::Malformed)?;
    let (aad, rest) = record.split_at(TRANSPORT_HEADER_LEN);
    let (sealed, tag) = rest.split_at(plain_len);
    key.open(header.counter, aad, sealed, tag, out)?;
    let kind = Kind::from_byte(out[0]).ok_or(RecordError::Malformed)?;
    let body_len = match kind {
        Kind::Packet => {
            let b = &out[1..];
            match b.first() {
                Some(v) if v >> 4 == 6 && b.len() >= 40 => {
                    40 + usize::from(u16::from_be_bytes([b[4], b[5]]))
                }
                Some(v) if v >> 4 != 6 && b.len() >= 20 => {
                    usize::from(u16::from_be_bytes([b[2], b[3]]))
                }
                _ => return Err(RecordError::Malformed),
            }
        }
        Kind::Ping | Kind::Pong => 8,
        Kind::Close => 0,
    };
    if 1 + body_len > plain_len {
        return Err(RecordError::Malformed);
    }
    Ok(Opened {
        kind,
        body: 1..1 + body_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ikago2::keys::RecordCipher;
    use proptest::prelude::*;

    fn packet(len: usize) -> Vec<u8> {
        let mut p = vec![0x45u8; len.max(20)];
        let n = p.len() as u16;
        p[2..4].copy_from_slice(&n.to_be_bytes());
        p
    }

    proptest! {
        #[test]
        fn seal_open_round_trip(len in 20usize..1500, pad in 0usize..300, counter in any::<u64>(),
                                phase in any::<u8>(), aes in any::<bool>(), flip in any::<usize>()) {
            let cipher = if aes { RecordCipher::Aes256Gcm } else { RecordCipher::ChaCha20Poly1305 };
            let key = RecordKey::new(cipher, [9; 32]);
            let body = packet(len);
            let h = TransportHeader { phase, counter };
            let mut rec = vec![0u8; body.len() + pad + PACKET_OVERHEAD];
            let n = seal_transport(&key, h, Kind::Packet, &body, pad, &mut rec);
            prop_assert_eq!(n, rec.len());
            prop_assert_eq!(record_len(&rec), Some(n));
            prop_assert_eq!(parse_transport(&rec), Ok(h));
            let mut out = vec![0u8; n];
            let o = open_transport(&key, h, &rec, &mut out).unwrap();
            prop_assert_eq!(o.kind, Kind::Packet);
            prop_assert_eq!(&out[o.body], &body[..]);
            // any flipped bit fails: in the header (parse or AEAD) or the sealed part (AEAD)
            let i = flip % n;
            rec[i] ^= 1;
            let r = parse_transport(&rec).and_then(|h| open_transport(&key, h, &rec, &mut out));
            prop_assert!(r.is_err());
        }

        #[test]
        fn records_split_whole_records_only(lens in proptest::collection::vec(1usize..200, 0..6),
                                            cut in any::<usize>()) {
            let mut buf = Vec::new();
            for (i, &l) in lens.iter().enumerate() {
                buf.extend_from_slice(&(l as u16).to_be_bytes());
                buf.extend(std::iter::repeat_n(i as u8, l));
            }
            let got: Vec<_> = Records::new(&buf).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(got.len(), lens.len());
            let cut = if buf.is_empty() { 0 } else { cut % buf.len() };
            let mut total = 0;
            for r in Records::new(&buf[..cut]) {
                match r {
                    Ok(r) => total += r.len(),
                    Err(e) => prop_assert_eq!(e, RecordError::Malformed),
                }
            }
            prop_assert!(total <= cut);
        }
    }

    #[test]
    fn record_len_needs_two_bytes() {
        assert_eq!(record_len(&[]), None);
        assert_eq!(record_len(&[0]), None);
        assert_eq!(record_len(&[1, 2]), Some(2 + 258));
        assert_eq!(
            Records::new(&[0, 0]).next(),
            Some(Err(RecordError::Malformed))
        );
    }
}
