//! TCP segments (RFC 9293): a validated view with options, and a header writer

use super::checksum::{self, PseudoAddr};
use super::proto;

/// Length of a TCP header without options
pub const HEADER_LEN: usize = 20;
/// FIN flag
pub const FIN: u8 = 0x01;
/// SYN flag
pub const SYN: u8 = 0x02;
/// RST flag
pub const RST: u8 = 0x04;
/// PSH flag
pub const PSH: u8 = 0x08;
/// ACK flag
pub const ACK: u8 = 0x10;

/// The TCP options the tunnel reads and writes (RFC 9293 §3.2, RFC 7323, RFC 2018)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Maximum segment size
    pub mss: Option<u16>,
    /// Window scale shift
    pub window_scale: Option<u8>,
    /// SACK permitted
    pub sack_permitted: bool,
    /// Timestamps: (TSval, TSecr)
    pub timestamps: Option<(u32, u32)>,
}

impl Options {
    /// Longest options area [`Options::write`] writes (all four options)
    pub const MAX_LEN: usize = 20;

    /// Parses the options area of a header; malformed trailing options are ignored like Linux does
    /// (never panics)
    pub fn parse(mut b: &[u8]) -> Self {
        let mut o = Self::default();
        while let Some((&kind, rest)) = b.split_first() {
            match kind {
                0 => break,
                1 => b = rest,
                _ => {
                    let Some(&len) = rest.first() else { break };
                    let len = usize::from(len);
                    if len < 2 || len > b.len() {
                        break;
                    }
                    let body = &b[2..len];
                    match (kind, body.len()) {
                        (2, 2) => o.mss = Some(u16::from_be_bytes([body[0], body[1]])),
                        (3, 1) => o.window_scale = Some(body[0].min(14)),
                        (4, 0) => o.sack_permitted = true,
                        (8, 8) => {
                            let v = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                            let e = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                            o.timestamps = Some((v, e));
                        }
                        _ => {}
                    }
                    b = &b[len..];
                }
            }
        }
        o
    }

    /// Writes the options in Linux's order and padding; returns the length (a multiple of 4)
    ///
    /// A SYN from Linux carries `MSS, SACK_PERM, TS, NOP, WS` (20 bytes); a data segment `NOP, NOP, TS`.
    ///
    /// # Panics
    /// If `buf` is shorter than the options: at most [`Options::MAX_LEN`] bytes.
    pub fn write(&self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        if let Some(mss) = self.mss {
            buf[n..n + 4].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
            n += 4;
        }
        match (self.sack_permitted, self.timestamps) {
            (true, Some(_)) => {
                buf[n..n + 2].copy_from_slice(&[4, 2]);
                n += 2;
            }
            (true, None) => {
                buf[n..n + 4].copy_from_slice(&[1, 1, 4, 2]);
                n += 4;
            }
            (false, Some(_)) => {
                buf[n..n + 2].copy_from_slice(&[1, 1]);
                n += 2;
            }
            (false, None) => {}
        }
        if let Some((v, e)) = self.timestamps {
            buf[n..n + 2].copy_from_slice(&[8, 10]);
            buf[n + 2..n + 6].copy_from_slice(&v.to_be_bytes());
            buf[n + 6..n + 10].copy_from_slice(&e.to_be_bytes());
            n += 10;
        }
        if let Some(ws) = self.window_scale {
            buf[n..n + 4].copy_from_slice(&[1, 3, 3, ws]);
            n += 4;
        }
        debug_assert_eq!(n % 4, 0);
        n
    }
}

/// Whether the TCP segment `bytes` (an IPv4 or IPv6 payload of at most 65535 bytes) sums to
/// zero over the pseudo-header of `src` and `dst` (never panics: a longer one is `false`)
pub fn checksum_ok<A: PseudoAddr>(bytes: &[u8], src: A, dst: A) -> bool {
    let Ok(len) = u16::try_from(bytes.len()) else {
        return false;
    };
    let acc = A::pseudo(src, dst, proto::TCP, len);
    checksum::finish(checksum::sum(acc, bytes)) == 0
}

/// A validated TCP segment inside an IPv4 or IPv6 packet
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    bytes: &'a [u8],
    header_len: usize,
}

impl<'a> Segment<'a> {
    /// Validates `bytes` (the IP payload) as a TCP segment, checking the checksum over the
    /// pseudo-header of `src` and `dst` (IPv4 or IPv6); `None` when it is not one (never panics)
    pub fn parse<A: PseudoAddr>(bytes: &'a [u8], src: A, dst: A) -> Option<Self> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        let header_len = usize::from(bytes[12] >> 4) * 4;
        if header_len < HEADER_LEN || header_len > bytes.len() {
            return None;
        }
        checksum_ok(bytes, src, dst).then_some(Self { bytes, header_len })
    }

    /// Validates a FakeTCP segment: like [`Segment::parse`], but a segment with a payload skips
    /// the checksum, since the AEAD tag authenticates the payload and summing every byte twice
    /// is the largest cost of the receive path; control segments are still checked. Without an
    /// AEAD (plain) the caller checks [`checksum_ok`] itself.
    pub fn parse_tunnel<A: PseudoAddr>(bytes: &'a [u8], src: A, dst: A) -> Option<Self> {
        if bytes.len() < HEADER_LEN {
            return None;
        }
        let header_len = usize::from(bytes[12] >> 4) * 4;
        if header_len < HEADER_LEN || header_len > bytes.len() {
            return None;
        }
        if header_len == bytes.len() {
            return Self::parse(bytes, src, dst);
        }
        Some(Self { bytes, header_len })
    }

    /// Source port
    #[inline]
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes([self.bytes[0], self.bytes[1]])
    }
    /// Destination port
    #[inline]
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes([self.bytes[2], self.bytes[3]])
    }
    /// Sequence number
    #[inline]
    pub fn seq(&self) -> u32 {
        u32::from_be_bytes(self.bytes[4..8].try_into().expect("header length checked"))
    }
    /// Acknowledgment number
    #[inline]
    pub fn ack(&self) -> u32 {
        u32::from_be_bytes(self.bytes[8..12].try_into().expect("header length checked"))
    }
    /// Flags (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR)
    #[inline]
    pub fn flags(&self) -> u8 {
        self.bytes[13]
    }
    /// Window field (unscaled)
    #[inline]
    pub fn window(&self) -> u16 {
        u16::from_be_bytes([self.bytes[14], self.bytes[15]])
    }
    /// Parsed options
    pub fn options(&self) -> Options {
        Options::parse(&self.bytes[HEADER_LEN..self.header_len])
    }
    /// The payload
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.header_len..]
    }
}

/// Fields of a TCP header for [`write_header`]
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Source port
    pub src_port: u16,
    /// Destination port
    pub dst_port: u16,
    /// Sequence number
    pub seq: u32,
    /// Acknowledgment number
    pub ack: u32,
    /// Flags
    pub flags: u8,
    /// Window field
    pub window: u16,
    /// Options to write
    pub options: Options,
}

/// Writes a TCP header with options into `buf`; the checksum is left zero for [`fill_checksum`]
///
/// Returns the header length.
///
/// # Panics
/// If `buf` is shorter than the header: [`HEADER_LEN`] plus the options (at most
/// [`Options::MAX_LEN`]).
pub fn write_header(buf: &mut [u8], h: &Header) -> usize {
    let opt_len = h.options.write(&mut buf[HEADER_LEN..]);
    let len = HEADER_LEN + opt_len;
    buf[0..2].copy_from_slice(&h.src_port.to_be_bytes());
    buf[2..4].copy_from_slice(&h.dst_port.to_be_bytes());
    buf[4..8].copy_from_slice(&h.seq.to_be_bytes());
    buf[8..12].copy_from_slice(&h.ack.to_be_bytes());
    buf[12] = ((len / 4) as u8) << 4;
    buf[13] = h.flags;
    buf[14..16].copy_from_slice(&h.window.to_be_bytes());
    buf[16..20].fill(0);
    len
}

/// Computes and stores the checksum of the TCP segment `seg` (header and payload) over the
/// pseudo-header of `src` and `dst` (IPv4 or IPv6)
///
/// # Panics
/// If `seg` is shorter than [`HEADER_LEN`] or longer than 65535 bytes (caller bugs).
pub fn fill_checksum<A: PseudoAddr>(seg: &mut [u8], src: A, dst: A) {
    let len = u16::try_from(seg.len()).expect("segments are bounded by the IP payload length");
    seg[16..18].fill(0);
    let acc = A::pseudo(src, dst, proto::TCP, len);
    let c = checksum::finish(checksum::sum(acc, seg));
    seg[16..18].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 12, 2);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 12, 1);

    #[test]
    fn linux_syn_options_round_trip() {
        let o = Options {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((0x1234_5678, 0)),
        };
        let mut buf = [0u8; 40];
        assert_eq!(o.write(&mut buf), Options::MAX_LEN, "all four options");
        // Linux: MSS, SACK_PERM, TS, NOP, WS
        assert_eq!(&buf[..4], &[2, 4, 0x05, 0xb4]);
        assert_eq!(&buf[4..8], &[4, 2, 8, 10]);
        assert_eq!(&buf[16..20], &[1, 3, 3, 7]);
        assert_eq!(Options::parse(&buf[..20]), o);
        let data = Options {
            timestamps: Some((1, 2)),
            ..Options::default()
        };
        assert_eq!(data.write(&mut buf), 12);
        assert_eq!(&buf[..4], &[1, 1, 8, 10]);
        assert_eq!(Options::parse(&buf[..12]), data);
    }

    #[test]
    fn malformed_options_do_not_panic() {
        assert_eq!(Options::parse(&[2, 0, 1]), Options::default());
        assert_eq!(Options::parse(&[8, 40]), Options::default());
        assert_eq!(Options::parse(&[3]), Options::default());
    }

    #[test]
    fn segment_write_parse() {
        let mut buf = [0u8; 64];
        let h = Header {
            src_port: 50000,
            dst_port: 18081,
            seq: 1,
            ack: 2,
            flags: PSH | ACK,
            window: 502,
            options: Options {
                timestamps: Some((5, 6)),
                ..Options::default()
            },
        };
        let n = write_header(&mut buf, &h);
        buf[n..n + 2].copy_from_slice(&[0xde, 0xad]);
        fill_checksum(&mut buf[..n + 2], SRC, DST);
        let s = Segment::parse(&buf[..n + 2], SRC, DST).unwrap();
        assert_eq!(
            (s.src_port(), s.dst_port(), s.seq(), s.ack()),
            (50000, 18081, 1, 2)
        );
        assert_eq!(s.flags(), PSH | ACK);
        assert_eq!(s.options().timestamps, Some((5, 6)));
        assert_eq!(s.payload(), &[0xde, 0xad]);
        assert!(Segment::parse(&buf[..n + 2], DST, Ipv4Addr::new(198, 18, 12, 3)).is_none());
        assert!(Segment::parse(&buf[..19], SRC, DST).is_none());
    }

    proptest::proptest! {
        /// Emit then parse: every header field and option survives, and the checksum verifies
        #[test]
        fn emit_then_parse(
            sp: u16, dp: u16, seq: u32, ack: u32, flags: u8, window: u16,
            mss: Option<u16>, ws in proptest::option::of(0u8..=14), sack: bool,
            ts: Option<(u32, u32)>, payload in proptest::collection::vec(0u8.., 0..1500),
        ) {
            let options = Options { mss, window_scale: ws, sack_permitted: sack, timestamps: ts };
            let h = Header { src_port: sp, dst_port: dp, seq, ack, flags, window, options };
            let mut buf = vec![0u8; 60 + payload.len()];
            let n = write_header(&mut buf, &h);
            buf[n..n + payload.len()].copy_from_slice(&payload);
            fill_checksum(&mut buf[..n + payload.len()], SRC, DST);
            let s = Segment::parse(&buf[..n + payload.len()], SRC, DST).unwrap();
            proptest::prop_assert_eq!((s.src_port(), s.dst_port(), s.seq(), s.ack(), s.flags()), (sp, dp, seq, ack, flags));
            proptest::prop_assert_eq!(s.options(), options);
            proptest::prop_assert_eq!(s.payload(), &payload[..]);
        }

        /// Arbitrary bytes never panic the parsers
        #[test]
        fn parse_arbitrary(bytes in proptest::collection::vec(0u8.., 0..100)) {
            let _ = Options::parse(&bytes);
            if let Some(s) = Segment::parse(&bytes, SRC, DST) {
                let _ = (s.options(), s.payload());
            }
        }
    }
}
