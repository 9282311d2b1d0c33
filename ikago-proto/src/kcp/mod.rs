//! KCP with FEC, wire-compatible with kcp-go v5.4.20 as the original uses it (reference §5)
//!
//! Tunnelled IPv4 packets are KCP messages; each output datagram is one FakeTCP payload. With
//! both shard counts above zero every datagram starts with kcp-go's FEC header (no kcp-go crypto,
//! so at offset 0); otherwise datagrams are plain KCP segments.
//!
//! Layers, bottom up:
//! - `rs`: Reed–Solomon over GF(2^8), bit-compatible with klauspost/reedsolomon;
//! - `fec`: kcp-go's FEC framing, encoder and decoder;
//! - `arq`: the KCP state machine, ported from kcp-go's `kcp.go`;
//! - `session`: [`KcpSession`], one conversation driven sans-IO.
//!
//! # Why not the `kcp` crate
//!
//! `kcp` 0.6.0 (a translation of ikcp.c) was the first choice, but its `Kcp<Output: Write>` owns
//! the output sink in a private field with no accessor (no `output_mut`/`get_mut`), so collecting
//! datagrams needs `Rc<RefCell<…>>` (not `Send`) or `Arc<Mutex<…>>`, which this core forbids. It
//! also differs from the kcp-go peer: `set_wndsize` raises the receive window to at least 128
//! where kcp-go and the original's default use 32, `send` refuses messages of 128 fragments or
//! more (kcp-go: 255), it allocates a buffer per segment, and it lacks kcp-go's FEC-aware input,
//! ACK filtering and early retransmission. The state machine here is a port of kcp-go's instead;
//! its output goes to a closure passed to each flush.

mod arq;
mod fec;
#[cfg(test)]
mod interop;
mod rs;
mod session;
#[cfg(test)]
mod tests;

pub(crate) use session::KcpSession;

use arq::Segments;
use fec::{FEC_OVERHEAD, FecHeader, ShardKind};
use std::time::Duration;

/// Smallest KCP MTU (kcp-go `SetMtu` refuses less)
pub(crate) const MIN_KCP_MTU: u16 = 50;
/// Largest KCP MTU (kcp-go `mtuLimit`; the original's `SetMtu` fails above it)
pub(crate) const MAX_KCP_MTU: u16 = 1500;
/// Most data plus parity shards per FEC group
pub(crate) const MAX_SHARDS: u16 = 255;

/// Signed distance from `earlier` to `later` on a wrapping 32-bit counter (ikcp.c `_itimediff`)
fn seq_diff(later: u32, earlier: u32) -> i32 {
    later.wrapping_sub(earlier) as i32
}

/// KCP tuning, as the original's `kcp-tuning` (reference §5.2); both sides must agree
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KcpTuning {
    /// Largest datagram, FEC header included, bytes (50 to 1500)
    pub mtu: u16,
    /// Send window, segments
    pub sndwnd: u16,
    /// Receive window, segments; also the most fragments of one message
    pub rcvwnd: u16,
    /// Data shards per FEC group (FEC is on when both shard counts are above zero)
    pub datashard: u8,
    /// Parity shards per FEC group
    pub parityshard: u8,
    /// Acknowledge every datagram at once instead of at the next flush
    pub acknodelay: bool,
    /// Lower minimum RTO (30 ms instead of 100 ms) and gentler RTO backoff
    pub nodelay: bool,
    /// Flush interval, ms; clamped to 10..=5000 as kcp-go does
    pub interval_ms: u32,
    /// Fast retransmit after this many ACKs skipping a segment (0: off)
    pub resend: u32,
    /// No congestion control
    pub nc: bool,
}

impl Default for KcpTuning {
    /// The original's defaults (reference §5.2)
    fn default() -> Self {
        Self {
            mtu: 1400,
            sndwnd: 32,
            rcvwnd: 32,
            datashard: 10,
            parityshard: 3,
            acknodelay: false,
            nodelay: false,
            interval_ms: 100,
            resend: 0,
            nc: false,
        }
    }
}

impl KcpTuning {
    /// Checks the ranges; the interval is not checked but clamped, as kcp-go does
    pub fn validate(&self) -> Result<(), KcpConfigError> {
        if !(MIN_KCP_MTU..=MAX_KCP_MTU).contains(&self.mtu) {
            return Err(KcpConfigError::Mtu(self.mtu));
        }
        if self.sndwnd == 0 {
            return Err(KcpConfigError::SendWindow);
        }
        if self.rcvwnd == 0 {
            return Err(KcpConfigError::ReceiveWindow);
        }
        if u16::from(self.datashard) + u16::from(self.parityshard) > MAX_SHARDS {
            return Err(KcpConfigError::Shards(self.datashard, self.parityshard));
        }
        Ok(())
    }

    /// Whether datagrams carry the FEC header: both shard counts above zero (kcp-go
    /// `newFECEncoder` returns nil otherwise)
    pub fn fec(&self) -> bool {
        self.datashard > 0 && self.parityshard > 0
    }

    /// Bytes each datagram spends on FEC
    fn fec_overhead(&self) -> usize {
        if self.fec() { FEC_OVERHEAD } else { 0 }
    }

    /// The conversation id of a datagram framed with this tuning, as a server reads it to adopt
    /// a new client: a FEC data shard's or a plain datagram's first segment; `None` for parity
    /// shards and garbage
    pub fn conversation_of(&self, datagram: &[u8]) -> Option<u32> {
        peek_conv(datagram, self.fec())
    }

    /// Largest payload of one KCP segment: mtu − 24 − 8 with FEC (1368 by default), mtu − 24
    /// without
    pub fn mss(&self) -> usize {
        usize::from(self.mtu).saturating_sub(arq::SEGMENT_HEADER_LEN + self.fec_overhead())
    }
}

/// A KCP tuning mistake
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KcpConfigError {
    /// MTU outside 50..=1500
    #[error("kcp mtu {0} out of range 50-1500")]
    Mtu(u16),
    /// Zero send window
    #[error("kcp send window must be greater than zero")]
    SendWindow,
    /// Zero receive window
    #[error("kcp receive window must be greater than zero")]
    ReceiveWindow,
    /// More than 255 shards per group
    #[error("kcp data shards ({0}) plus parity shards ({1}) exceed 255")]
    Shards(u8, u8),
}

/// Why a message or datagram was refused; the session is unchanged
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KcpError {
    /// An empty message
    #[error("empty message")]
    Empty,
    /// A message needing more fragments than the receive window or 255
    #[error("message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Its length
        len: usize,
        /// The largest message that fits
        max: usize,
    },
    /// The send queue is full (1024 segments queued or in flight)
    #[error("send window full")]
    WindowFull,
    /// A datagram or segment shorter than its header or length says
    #[error("truncated datagram")]
    Truncated,
    /// A FEC session's datagram without a data or parity flag
    #[error("not a fec datagram")]
    NotFec,
    /// A datagram longer than 1500 bytes
    #[error("datagram of {0} bytes exceeds 1500")]
    Oversize(usize),
    /// A segment of another conversation
    #[error("foreign conversation {0:#010x}")]
    ForeignConv(u32),
    /// A segment with an unknown command
    #[error("unknown kcp command {0}")]
    BadCommand(u8),
}

/// A snapshot of a session's counters and state
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KcpStats {
    /// Segments transmitted again, for any reason
    pub retransmissions: u64,
    /// Of those, after a retransmission timeout
    pub timeouts: u64,
    /// Data shards rebuilt by FEC and accepted, late ones included (kcp-go `FECRecovered`)
    pub fec_recovered: u64,
    /// Push segments that reached KCP first through a rebuilt shard
    pub fec_segments: u64,
    /// Rebuilt shards that were invalid or refused
    pub fec_errors: u64,
    /// Smoothed round-trip time (zero until measured)
    pub srtt: Duration,
    /// Retransmission timeout
    pub rto: Duration,
    /// Send window, segments
    pub snd_wnd: u32,
    /// Receive window, segments
    pub rcv_wnd: u32,
    /// The peer's free receive window, segments
    pub rmt_wnd: u32,
    /// Congestion window, segments
    pub cwnd: u32,
    /// Segments sent and not yet acknowledged cumulatively
    pub in_flight: u32,
    /// Segments queued or in flight
    pub wait_snd: usize,
    /// Datagrams handed out by `poll_datagram`
    pub datagrams_out: u64,
    /// Datagrams accepted
    pub datagrams_in: u64,
    /// Datagrams refused (garbage, foreign, truncated)
    pub datagrams_rejected: u64,
    /// Datagrams dropped because the output queue was full or the caller's buffer too small
    pub tx_dropped: u64,
    /// Received messages dropped because the caller's buffer was too small
    pub recv_dropped: u64,
}

impl KcpStats {
    /// Adds another session's counters (a server's total): counts and queues add up, the
    /// smoothed RTT and RTO keep the largest, windows are left as they are
    pub(crate) fn accumulate(&mut self, o: &Self) {
        self.retransmissions += o.retransmissions;
        self.timeouts += o.timeouts;
        self.fec_recovered += o.fec_recovered;
        self.fec_segments += o.fec_segments;
        self.fec_errors += o.fec_errors;
        self.srtt = self.srtt.max(o.srtt);
        self.rto = self.rto.max(o.rto);
        self.in_flight += o.in_flight;
        self.wait_snd += o.wait_snd;
        self.datagrams_out += o.datagrams_out;
        self.datagrams_in += o.datagrams_in;
        self.datagrams_rejected += o.datagrams_rejected;
        self.tx_dropped += o.tx_dropped;
        self.recv_dropped += o.recv_dropped;
    }
}

/// Reads the conversation id of a datagram, for a server adopting a new client
///
/// With `fec`, only a data shard whose first KCP segment parses has one (as kcp-go's listener,
/// which opens sessions on data shards only); without, the first segment must parse.
pub(crate) fn peek_conv(datagram: &[u8], fec: bool) -> Option<u32> {
    let kcp = if fec {
        let header = FecHeader::parse(datagram).ok()?;
        if header.kind != ShardKind::Data {
            return None;
        }
        datagram.get(FEC_OVERHEAD..)?
    } else {
        datagram
    };
    let (h, _) = Segments::new(kcp).next()?.ok()?;
    Some(h.conv)
}

/// Fuzz body: feeds arbitrary datagrams to a session and a FEC decoder; must never panic
///
/// `data[0]` picks the tuning and whether to stamp the session's conversation id into each
/// segment (to get past the conv check); the rest is datagrams, each behind a 2-byte length.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn fuzz_datagrams(data: &[u8]) {
    use std::time::Instant;
    /// The fuzzed session's conversation id
    const CONV: u32 = 0x38b7_867a;
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let fec = mode & 1 == 0;
    let tuning = KcpTuning {
        datashard: if fec { 4 } else { 0 },
        parityshard: if fec { 2 } else { 0 },
        acknodelay: mode & 2 != 0,
        nodelay: mode & 4 != 0,
        resend: u32::from(mode >> 6),
        nc: mode & 32 != 0,
        ..KcpTuning::default()
    };
    let start = Instant::now();
    let Ok(mut session) = KcpSession::new(CONV, &tuning, start) else {
        return;
    };
    let mut decoder = fec::FecDecoder::new(4, 2).ok();
    let mut buf = vec![0u8; 2048];
    let mut out = vec![0u8; 65536];
    let mut now = start;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let n = usize::from(u16::from_le_bytes(*len) % 1600).min(tail.len());
        let (datagram, tail) = tail.split_at(n);
        rest = tail;
        let d = &mut buf[..n];
        d.copy_from_slice(datagram);
        if mode & 8 != 0 {
            stamp_conv(d, if fec { FEC_OVERHEAD } else { 0 }, CONV);
        }
        let _ = session.handle_datagram(now, d);
        if let (Some(dec), Ok(h)) = (decoder.as_mut(), FecHeader::parse(d)) {
            let ms = now.duration_since(start).as_millis() as u32;
            let _ = dec.decode(ms, h, d, |r| assert!(r.len() <= fec::MTU_LIMIT));
        }
        if mode & 16 != 0 {
            let _ = session.send(now, datagram);
        }
        now += Duration::from_millis(u64::from(datagram.first().copied().unwrap_or(1)));
        session.handle_timeout(now);
        while let Some(len) = session.poll_datagram(&mut buf) {
            assert!(len <= usize::from(tuning.mtu));
        }
        while session.recv(&mut out).is_some() {}
    }
}

/// Writes `conv` into every segment header of the KCP bytes starting at `offset`
#[cfg(any(test, feature = "fuzzing"))]
fn stamp_conv(datagram: &mut [u8], mut offset: usize, conv: u32) {
    while let Some(seg) = offset
        .checked_add(arq::SEGMENT_HEADER_LEN)
        .and_then(|end| datagram.get_mut(offset..end))
    {
        seg[..4].copy_from_slice(&conv.to_le_bytes());
        let len = u32::from_le_bytes([seg[20], seg[21], seg[22], seg[23]]) as usize;
        offset = offset
            .saturating_add(arq::SEGMENT_HEADER_LEN)
            .saturating_add(len);
    }
}
