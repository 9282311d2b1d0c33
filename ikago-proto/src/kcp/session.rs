//! One KCP conversation over kcp-go's FEC framing, driven sans-IO
//!
//! Inputs: [`KcpSession::send`] (a message from the tunnel's inner side),
//! [`KcpSession::handle_datagram`] (a datagram from the peer), [`KcpSession::handle_timeout`].
//! Outputs: [`KcpSession::poll_datagram`] (datagrams for the peer), [`KcpSession::recv`] (whole
//! messages), [`KcpSession::poll_timeout`]. After any input, drain both outputs.
//!
//! Timing follows kcp-go's session: every `send` flushes at once (the original leaves write delay
//! off), a datagram that moves the send window flushes at once, ACKs otherwise wait for the next
//! periodic flush unless `acknodelay` is set, and each periodic flush schedules the next one
//! after the interval or the nearest retransmission, whichever comes first.

use super::arq::{FlushKind, Kcp};
use super::fec::{FEC_OVERHEAD, FecDecoder, FecEncoder, FecHeader, MTU_LIMIT, ShardKind};
use super::{KcpConfigError, KcpError, KcpStats, KcpTuning};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most datagrams waiting for `poll_datagram`; more are dropped (KCP retransmits them)
const TX_QUEUE_LIMIT: usize = 1024;

/// Datagrams waiting for `poll_datagram`, in reused buffers
#[derive(Debug, Default)]
struct Outbox {
    /// Ready datagrams, oldest first
    queue: VecDeque<Vec<u8>>,
    /// Buffers of datagrams already handed out
    pool: Vec<Vec<u8>>,
    /// Datagrams handed out
    sent: u64,
    /// Datagrams dropped (queue full or caller's buffer too small)
    dropped: u64,
}

impl Outbox {
    /// Queues a copy of `datagram`
    fn push(&mut self, datagram: &[u8]) {
        if self.queue.len() >= TX_QUEUE_LIMIT {
            self.dropped += 1;
            return;
        }
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(datagram);
        self.queue.push_back(buf);
    }

    /// Moves the oldest datagram that fits into `out`
    fn pop(&mut self, out: &mut [u8]) -> Option<usize> {
        while let Some(buf) = self.queue.pop_front() {
            let len = buf.len();
            let fits = len <= out.len();
            if fits {
                out[..len].copy_from_slice(&buf);
            }
            if self.pool.len() < TX_QUEUE_LIMIT {
                self.pool.push(buf);
            }
            if fits {
                self.sent += 1;
                return Some(len);
            }
            self.dropped += 1;
        }
        None
    }
}

/// The output path: the FEC encoder (if any) in front of the outbox
#[derive(Debug)]
struct Output {
    /// Stamps data shards and adds parity; `None` without FEC
    fec: Option<FecEncoder>,
    /// Datagrams ready to go
    outbox: Outbox,
}

impl Output {
    /// Takes one KCP datagram (reserved FEC bytes in front) and queues what goes on the wire
    fn emit(&mut self, datagram: &mut [u8]) {
        match &mut self.fec {
            Some(enc) => enc.encode(datagram, |d| self.outbox.push(d)),
            None => self.outbox.push(datagram),
        }
    }
}

/// One KCP conversation with a peer (message mode, kcp-go v5.4.20 compatible)
#[derive(Debug)]
pub(crate) struct KcpSession {
    /// Time zero of the session's millisecond clock
    start: Instant,
    /// The ARQ state machine
    kcp: Kcp,
    /// The output path
    output: Output,
    /// The FEC decoder; `None` without FEC
    decoder: Option<FecDecoder>,
    /// Flush ACKs as soon as a datagram brings pushes
    ack_nodelay: bool,
    /// When the next periodic flush is due, session ms
    next_flush_ms: u64,
    /// Datagrams accepted
    datagrams_in: u64,
    /// Datagrams refused
    datagrams_rejected: u64,
    /// Rebuilt shards accepted by KCP
    fec_recovered: u64,
    /// Push segments that reached KCP first in a rebuilt shard
    fec_segments: u64,
    /// Rebuilt shards KCP refused
    fec_refused: u64,
}

impl KcpSession {
    /// A session for conversation `conv` with `tuning` (checked here), started at `now`
    pub(crate) fn new(conv: u32, tuning: &KcpTuning, now: Instant) -> Result<Self, KcpConfigError> {
        tuning.validate()?;
        let shards_error = || KcpConfigError::Shards(tuning.datashard, tuning.parityshard);
        let (data, parity) = (
            usize::from(tuning.datashard),
            usize::from(tuning.parityshard),
        );
        let (fec, decoder) = if tuning.fec() {
            (
                Some(FecEncoder::new(data, parity).map_err(|_| shards_error())?),
                Some(FecDecoder::new(data, parity).map_err(|_| shards_error())?),
            )
        } else {
            (None, None)
        };
        let reserved = if tuning.fec() { FEC_OVERHEAD } else { 0 };
        let mut kcp = Kcp::new(conv, usize::from(tuning.mtu), reserved);
        kcp.set_wndsize(tuning.sndwnd, tuning.rcvwnd);
        kcp.set_nodelay(tuning.nodelay, tuning.interval_ms, tuning.resend, tuning.nc);
        Ok(Self {
            start: now,
            kcp,
            output: Output {
                fec,
                outbox: Outbox::default(),
            },
            decoder,
            ack_nodelay: tuning.acknodelay,
            next_flush_ms: 0,
            datagrams_in: 0,
            datagrams_rejected: 0,
            fec_recovered: 0,
            fec_segments: 0,
            fec_refused: 0,
        })
    }

    /// The conversation id
    pub(crate) fn conv(&self) -> u32 {
        self.kcp.conv()
    }

    /// Milliseconds since the session started
    fn clock(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_millis() as u64
    }

    /// Runs a flush at `now_ms`; keeps the periodic flush no later than the one it asks for
    fn flush(&mut self, now_ms: u64, kind: FlushKind) {
        let output = &mut self.output;
        let wait = self
            .kcp
            .flush(now_ms as u32, kind, &mut |d: &mut [u8]| output.emit(d));
        if kind == FlushKind::Full {
            self.next_flush_ms = self.next_flush_ms.min(now_ms + u64::from(wait));
        }
    }

    /// Queues one inner packet as one message and flushes
    ///
    /// A message longer than the mss travels whole as up to `rcvwnd` (at most 255) fragments,
    /// never truncated (unlike the original, reference §5.5). Refused, for the caller to count as
    /// a drop, when it is empty or too long, or while a send window of segments is waiting (where
    /// kcp-go's `Write` would block).
    pub(crate) fn send(&mut self, now: Instant, msg: &[u8]) -> Result<(), KcpError> {
        let now_ms = self.clock(now);
        self.kcp.send(msg)?;
        self.flush(now_ms, FlushKind::Full);
        Ok(())
    }

    /// Feeds one datagram from the peer, FEC header included
    ///
    /// Garbage, truncated, oversize or foreign-conversation datagrams are refused whole and leave
    /// the session as it was (a FEC parity shard is stored before it can be checked).
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<(), KcpError> {
        let now_ms = self.clock(now);
        let result = if self.decoder.is_some() {
            self.input_fec(now_ms, datagram)
        } else {
            self.input_kcp(now_ms, datagram, true).map(drop)
        };
        match result {
            Ok(()) => self.datagrams_in += 1,
            Err(_) => self.datagrams_rejected += 1,
        }
        result
    }

    /// Handles a FEC datagram: a data shard's KCP bytes go in at once, then the shard goes to the
    /// decoder, whose rebuilt shards go in too (kcp-go `kcpInput` order)
    fn input_fec(&mut self, now_ms: u64, datagram: &[u8]) -> Result<(), KcpError> {
        let header = FecHeader::parse(datagram)?;
        if datagram.len() > MTU_LIMIT {
            return Err(KcpError::Oversize(datagram.len()));
        }
        if header.kind == ShardKind::Data {
            let kcp = datagram.get(FEC_OVERHEAD..).ok_or(KcpError::Truncated)?;
            self.input_kcp(now_ms, kcp, true)?;
        }
        let Some(mut decoder) = self.decoder.take() else {
            return Ok(());
        };
        let result = decoder.decode(now_ms as u32, header, datagram, |rebuilt| {
            match self.input_kcp(now_ms, rebuilt, false) {
                Ok(new_segments) => {
                    self.fec_recovered += 1;
                    self.fec_segments += new_segments as u64;
                }
                Err(_) => self.fec_refused += 1,
            }
        });
        self.decoder = Some(decoder);
        result
    }

    /// Feeds KCP bytes to the state machine and flushes as kcp-go's `Input` does; returns how
    /// many push segments were new
    fn input_kcp(&mut self, now_ms: u64, kcp: &[u8], regular: bool) -> Result<usize, KcpError> {
        let outcome = self.kcp.input(now_ms as u32, kcp, regular)?;
        if outcome.window_slid {
            self.flush(now_ms, FlushKind::Full);
        } else if self.ack_nodelay && self.kcp.has_pending_acks() {
            self.flush(now_ms, FlushKind::AcksOnly);
        }
        Ok(outcome.new_segments)
    }

    /// Copies the next whole message into `out` and returns its length
    ///
    /// `out` should hold the largest message (`rcvwnd` × mss, at most 65535 for an IPv4 packet);
    /// a message that does not fit is dropped and counted in [`KcpStats::recv_dropped`].
    pub(crate) fn recv(&mut self, out: &mut [u8]) -> Option<usize> {
        self.kcp.recv(out)
    }

    /// Moves the next datagram for the peer (FEC header included, at most `mtu` bytes) into `out`
    ///
    /// A datagram longer than `out` is dropped and counted in [`KcpStats::tx_dropped`].
    pub(crate) fn poll_datagram(&mut self, out: &mut [u8]) -> Option<usize> {
        self.output.outbox.pop(out)
    }

    /// When [`Self::handle_timeout`] is next due (kcp-go's update schedule)
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.start + Duration::from_millis(self.next_flush_ms)
    }

    /// Runs the periodic flush if due: ACKs, probes, new data, retransmissions
    ///
    /// Early calls do nothing.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let now_ms = self.clock(now);
        if now_ms >= self.next_flush_ms {
            self.next_flush_ms = u64::MAX;
            self.flush(now_ms, FlushKind::Full);
        }
    }

    /// Counters and state
    pub(crate) fn stats(&self) -> KcpStats {
        let counters = self.kcp.counters();
        let (srtt, rto) = self.kcp.rtt();
        let (snd_wnd, rcv_wnd, rmt_wnd, cwnd) = self.kcp.windows();
        let invalid = self.decoder.as_ref().map_or(0, FecDecoder::invalid);
        KcpStats {
            retransmissions: counters.timeouts + counters.fast_retransmits,
            timeouts: counters.timeouts,
            fec_recovered: self.fec_recovered,
            fec_segments: self.fec_segments,
            fec_errors: self.fec_refused + invalid,
            srtt: Duration::from_millis(u64::from(srtt)),
            rto: Duration::from_millis(u64::from(rto)),
            snd_wnd,
            rcv_wnd,
            rmt_wnd,
            cwnd,
            in_flight: self.kcp.in_flight(),
            wait_snd: self.kcp.wait_snd(),
            datagrams_out: self.output.outbox.sent,
            datagrams_in: self.datagrams_in,
            datagrams_rejected: self.datagrams_rejected,
            tx_dropped: self.output.outbox.dropped,
            recv_dropped: counters.recv_dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves every queued datagram from `from` into `to`
    fn pump(from: &mut KcpSession, to: &mut KcpSession, now: Instant) -> usize {
        let mut buf = [0u8; 1500];
        let mut n = 0;
        while let Some(len) = from.poll_datagram(&mut buf) {
            to.handle_datagram(now, &buf[..len]).unwrap();
            n += 1;
        }
        n
    }

    #[test]
    fn invalid_tuning_is_refused() {
        let now = Instant::now();
        let bad = KcpTuning {
            mtu: 1501,
            ..KcpTuning::default()
        };
        assert_eq!(
            KcpSession::new(1, &bad, now).unwrap_err(),
            KcpConfigError::Mtu(1501)
        );
    }

    #[test]
    fn first_datagram_matches_kcp_go_layout() {
        let now = Instant::now();
        let mut s = KcpSession::new(0x38b7_867a, &KcpTuning::default(), now).unwrap();
        let msg = [0x45u8; 84];
        s.send(now + Duration::from_millis(2992), &msg).unwrap();
        let mut buf = [0u8; 1500];
        let len = s.poll_datagram(&mut buf).unwrap();
        assert_eq!(len, 116);
        // the capture's first datagram, up to the ts field (reference §5.3)
        assert_eq!(
            &buf[..16],
            &[
                0, 0, 0, 0, 0xf1, 0, 0x6e, 0, 0x7a, 0x86, 0xb7, 0x38, 0x51, 0, 0x20, 0
            ]
        );
        assert_eq!(&buf[16..20], &2992u32.to_le_bytes());
        assert_eq!(&buf[20..32], &[0, 0, 0, 0, 0, 0, 0, 0, 84, 0, 0, 0]);
        assert_eq!(s.poll_datagram(&mut buf), None);
    }

    #[test]
    fn ack_waits_for_the_interval_unless_acknodelay() {
        for acknodelay in [false, true] {
            let t0 = Instant::now();
            let tuning = KcpTuning {
                acknodelay,
                ..KcpTuning::default()
            };
            let mut a = KcpSession::new(5, &tuning, t0).unwrap();
            let mut b = KcpSession::new(5, &tuning, t0).unwrap();
            a.handle_timeout(t0);
            b.handle_timeout(t0);
            let t = t0 + Duration::from_millis(10);
            a.send(t, b"ping").unwrap();
            pump(&mut a, &mut b, t);
            let acks = pump(&mut b, &mut a, t);
            assert_eq!(acks, usize::from(acknodelay));
            assert_eq!(b.poll_timeout(), t0 + Duration::from_millis(100));
            let flush = b.poll_timeout();
            b.handle_timeout(flush);
            pump(&mut b, &mut a, flush);
            assert_eq!(a.stats().in_flight, 0);
            let mut out = [0u8; 8];
            assert_eq!(b.recv(&mut out), Some(4));
        }
    }

    #[test]
    fn without_fec_datagrams_are_plain_kcp() {
        let t0 = Instant::now();
        let tuning = KcpTuning {
            datashard: 0,
            parityshard: 0,
            ..KcpTuning::default()
        };
        assert_eq!(tuning.mss(), 1376);
        let mut a = KcpSession::new(9, &tuning, t0).unwrap();
        a.send(t0, &[1; 1376]).unwrap();
        let mut buf = [0u8; 1500];
        let len = a.poll_datagram(&mut buf).unwrap();
        assert_eq!(len, 1400);
        assert_eq!(super::super::peek_conv(&buf[..len], false), Some(9));
        assert_eq!(super::super::peek_conv(&buf[..len], true), None);
    }

    #[test]
    fn small_output_buffer_drops_the_datagram() {
        let t0 = Instant::now();
        let mut a = KcpSession::new(9, &KcpTuning::default(), t0).unwrap();
        a.send(t0, &[1; 100]).unwrap();
        let mut small = [0u8; 50];
        assert_eq!(a.poll_datagram(&mut small), None);
        assert_eq!(a.stats().tx_dropped, 1);
    }

    #[test]
    fn is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<KcpSession>();
    }
}
