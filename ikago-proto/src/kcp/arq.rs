//! The KCP ARQ state machine, a port of kcp-go v5.4.20's `kcp.go` (itself derived from ikcp.c)
//!
//! Message mode only. Time is the session's millisecond clock, passed in; datagrams go to an
//! output closure passed to [`Kcp::flush`], so the state machine owns no sink. Segment buffers are
//! recycled through a pool, so a session in steady state does not allocate per packet.
//!
//! Behaviours kept from kcp-go rather than ikcp.c: a receive window of exactly what is configured
//! (C raises it to at least 128), messages of up to 255 fragments, RTT samples and window updates
//! only from regular (not FEC-rebuilt) input, ACK filtering of already-covered sequence numbers,
//! ACKs marking segments instead of removing them, early retransmission, and `flush` returning
//! the time until the nearest retransmission.

use super::{KcpError, seq_diff};
use std::collections::VecDeque;

/// Bytes of a segment header: conv, cmd, frg, wnd, ts, sn, una, len (ikcp.c `IKCP_OVERHEAD`)
pub(crate) const SEGMENT_HEADER_LEN: usize = 24;
/// Data segment (ikcp.c `IKCP_CMD_PUSH`)
const CMD_PUSH: u8 = 81;
/// Segments queued or in flight before `send` refuses more. kcp-go's `Write` blocks at the send
/// window and the original's capture channel holds 1000 packets behind it; a tunnel cannot
/// block its LAN, so this queue absorbs the bursts a lossy link causes instead
const SEND_QUEUE_LIMIT: usize = 1024;
/// Acknowledgment (ikcp.c `IKCP_CMD_ACK`)
const CMD_ACK: u8 = 82;
/// Window probe: asks for the peer's window (ikcp.c `IKCP_CMD_WASK`)
const CMD_WASK: u8 = 83;
/// Window size report (ikcp.c `IKCP_CMD_WINS`)
const CMD_WINS: u8 = 84;
/// Probe flag: send a [`CMD_WASK`] (ikcp.c `IKCP_ASK_SEND`)
const ASK_SEND: u8 = 1;
/// Probe flag: send a [`CMD_WINS`] (ikcp.c `IKCP_ASK_TELL`)
const ASK_TELL: u8 = 2;
/// Minimum RTO with nodelay, ms (kcp-go `IKCP_RTO_NDL`)
const RTO_NDL: u32 = 30;
/// Minimum RTO without nodelay, ms (kcp-go `IKCP_RTO_MIN`)
const RTO_MIN: u32 = 100;
/// Initial RTO, ms (kcp-go `IKCP_RTO_DEF`)
const RTO_DEF: u32 = 200;
/// Maximum RTO, ms (kcp-go `IKCP_RTO_MAX`)
const RTO_MAX: u32 = 60_000;
/// Initial slow-start threshold, segments (kcp-go `IKCP_THRESH_INIT`)
const THRESH_INIT: u32 = 2;
/// Smallest slow-start threshold, segments (kcp-go `IKCP_THRESH_MIN`)
const THRESH_MIN: u32 = 2;
/// First wait before probing a zero remote window, ms (kcp-go `IKCP_PROBE_INIT`)
const PROBE_INIT: u32 = 7_000;
/// Longest wait between window probes, ms (kcp-go `IKCP_PROBE_LIMIT`)
const PROBE_LIMIT: u32 = 120_000;
/// Most fragments of one message: `frg` is one byte (kcp-go `Send`)
const MAX_FRAGMENTS: usize = 255;

/// A parsed segment header
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// Conversation id
    pub(crate) conv: u32,
    /// Command: 81 push, 82 ack, 83 window ask, 84 window tell
    pub(crate) cmd: u8,
    /// Fragments of the message still to come after this one (0 on the last)
    pub(crate) frg: u8,
    /// The sender's free receive window, segments
    pub(crate) wnd: u16,
    /// Timestamp: the sender's clock (push) or the echoed push timestamp (ack), ms
    pub(crate) ts: u32,
    /// Sequence number
    pub(crate) sn: u32,
    /// The sender's next expected sequence number (everything below is acknowledged)
    pub(crate) una: u32,
    /// Data length
    pub(crate) len: u32,
}

impl SegmentHeader {
    /// Reads a header from the first [`SEGMENT_HEADER_LEN`] bytes of `b`
    fn read(b: &[u8; SEGMENT_HEADER_LEN]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Self {
            conv: u32_at(0),
            cmd: b[4],
            frg: b[5],
            wnd: u16::from_le_bytes([b[6], b[7]]),
            ts: u32_at(8),
            sn: u32_at(12),
            una: u32_at(16),
            len: u32_at(20),
        }
    }

    /// Writes the header into the first [`SEGMENT_HEADER_LEN`] bytes of `out`
    fn write(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.conv.to_le_bytes());
        out[4] = self.cmd;
        out[5] = self.frg;
        out[6..8].copy_from_slice(&self.wnd.to_le_bytes());
        out[8..12].copy_from_slice(&self.ts.to_le_bytes());
        out[12..16].copy_from_slice(&self.sn.to_le_bytes());
        out[16..20].copy_from_slice(&self.una.to_le_bytes());
        out[20..24].copy_from_slice(&self.len.to_le_bytes());
    }
}

/// The segments of a KCP datagram, as kcp-go's `Input` walks them
///
/// Stops at a tail shorter than a header; yields an error for a datagram shorter than one header
/// or a segment whose data runs past the end.
#[derive(Debug, Clone)]
pub(crate) struct Segments<'a> {
    /// What is left to read
    rest: &'a [u8],
    /// Set after the first item or an error
    started: bool,
}

impl<'a> Segments<'a> {
    /// Iterates over the segments of `datagram`
    pub(crate) fn new(datagram: &'a [u8]) -> Self {
        Self {
            rest: datagram,
            started: false,
        }
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Result<(SegmentHeader, &'a [u8]), KcpError>;

    fn next(&mut self) -> Option<Self::Item> {
        let first = !self.started;
        self.started = true;
        let Some((head, tail)) = self.rest.split_first_chunk::<SEGMENT_HEADER_LEN>() else {
            self.rest = &[];
            return first.then_some(Err(KcpError::Truncated));
        };
        let h = SegmentHeader::read(head);
        let Some(data) = tail.get(..h.len as usize) else {
            self.rest = &[];
            return Some(Err(KcpError::Truncated));
        };
        self.rest = &tail[data.len()..];
        Some(Ok((h, data)))
    }
}

/// A message fragment, queued to send, in flight, or received
#[derive(Debug, Default)]
struct Segment {
    /// Fragments still to come after this one
    frg: u8,
    /// Sequence number (assigned when it enters the send window)
    sn: u32,
    /// Timestamp of its last transmission (sent) or the sender's (received), ms
    ts: u32,
    /// When to retransmit it, ms
    resendts: u32,
    /// Its current retransmission timeout, ms
    rto: u32,
    /// Later segments acknowledged before it since its last transmission
    fastack: u32,
    /// Transmissions so far
    xmit: u32,
    /// Acknowledged, waiting for `una` to pass it
    acked: bool,
    /// Payload
    data: Vec<u8>,
}

/// Counters kept by the state machine
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ArqCounters {
    /// Segments retransmitted after their RTO expired
    pub(crate) timeouts: u64,
    /// Segments retransmitted early (fast or early retransmit)
    pub(crate) fast_retransmits: u64,
    /// Messages received that did not fit the caller's buffer and were dropped
    pub(crate) recv_dropped: u64,
}

/// Packs segments into datagrams of at most `buf.len()` bytes, handing each to `out`
struct Packer<'a, F> {
    /// One datagram's worth of bytes
    buf: &'a mut [u8],
    /// Bytes kept free at the start for the FEC header
    reserved: usize,
    /// Write position
    pos: usize,
    /// Where full datagrams go
    out: &'a mut F,
}

impl<F: FnMut(&mut [u8])> Packer<'_, F> {
    /// Appends one segment, first emitting the datagram if the segment does not fit
    fn push(&mut self, h: &SegmentHeader, data: &[u8]) {
        let need = SEGMENT_HEADER_LEN + data.len();
        if self.pos + need > self.buf.len() {
            self.finish();
        }
        h.write(&mut self.buf[self.pos..]);
        self.pos += SEGMENT_HEADER_LEN;
        self.buf[self.pos..self.pos + data.len()].copy_from_slice(data);
        self.pos += data.len();
    }

    /// Emits the datagram being built, if it holds any segment
    fn finish(&mut self) {
        if self.pos > self.reserved {
            (self.out)(&mut self.buf[..self.pos]);
            self.pos = self.reserved;
        }
    }
}

/// What a datagram did to the state machine
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct InputOutcome {
    /// The peer's `una` passed some of our segments: the send window moved (calls for a flush)
    pub(crate) window_slid: bool,
    /// Push segments that were new (neither received before nor outside the window)
    pub(crate) new_segments: usize,
}

/// Which segments a flush sends
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlushKind {
    /// Pending acknowledgments only (kcp-go `flush(true)`)
    AcksOnly,
    /// Acknowledgments, probes, new data and retransmissions (kcp-go `flush(false)`)
    Full,
}

/// The KCP state of one conversation (kcp-go `KCP`)
#[derive(Debug)]
pub(crate) struct Kcp {
    /// Conversation id
    conv: u32,
    /// Largest segment payload
    mss: usize,
    /// Bytes left free in front of each datagram (the FEC header)
    reserved: usize,
    /// Oldest unacknowledged sequence number
    snd_una: u32,
    /// Next sequence number to assign
    snd_nxt: u32,
    /// Next sequence number expected from the peer
    rcv_nxt: u32,
    /// Slow-start threshold, segments
    ssthresh: u32,
    /// RTT variation, ms
    rx_rttvar: i32,
    /// Smoothed RTT, ms (0 until the first sample)
    rx_srtt: i32,
    /// Retransmission timeout, ms
    rx_rto: u32,
    /// Lower bound of the RTO, ms
    rx_minrto: u32,
    /// Send window, segments
    snd_wnd: u32,
    /// Receive window, segments
    rcv_wnd: u32,
    /// The peer's free receive window, segments
    rmt_wnd: u32,
    /// Congestion window, segments
    cwnd: u32,
    /// Congestion window growth accumulator, bytes
    incr: u32,
    /// Pending probe flags ([`ASK_SEND`], [`ASK_TELL`])
    probe: u8,
    /// Flush interval, ms
    interval: u32,
    /// Faster RTO backoff and lower minimum RTO
    nodelay: bool,
    /// When to probe a zero window next, ms
    ts_probe: u32,
    /// Current zero-window probe wait, ms
    probe_wait: u32,
    /// Duplicate-ACK count that triggers a fast retransmit (0: off)
    fastresend: u32,
    /// Congestion control off
    nocwnd: bool,
    /// Messages waiting for the send window
    snd_queue: VecDeque<Segment>,
    /// Segments sent and not yet passed by `una`
    snd_buf: VecDeque<Segment>,
    /// Segments received in order, ready for `recv`
    rcv_queue: VecDeque<Segment>,
    /// Segments received out of order
    rcv_buf: VecDeque<Segment>,
    /// (sn, ts) of pushes to acknowledge
    acklist: Vec<(u32, u32)>,
    /// The datagram being built by a flush
    buffer: Vec<u8>,
    /// Payload buffers of retired segments
    pool: Vec<Vec<u8>>,
    /// Most buffers kept in the pool
    pool_limit: usize,
    /// Counters
    counters: ArqCounters,
}

impl Kcp {
    /// A conversation `conv` with datagrams of at most `mtu` bytes, the first `reserved` of them
    /// left for the FEC header; kcp-go's defaults otherwise
    ///
    /// `mtu` must exceed `reserved + 24`.
    pub(crate) fn new(conv: u32, mtu: usize, reserved: usize) -> Self {
        let mss = mtu - SEGMENT_HEADER_LEN - reserved;
        Self {
            conv,
            mss,
            reserved,
            snd_una: 0,
            snd_nxt: 0,
            rcv_nxt: 0,
            ssthresh: THRESH_INIT,
            rx_rttvar: 0,
            rx_srtt: 0,
            rx_rto: RTO_DEF,
            rx_minrto: RTO_MIN,
            snd_wnd: 32,
            rcv_wnd: 32,
            rmt_wnd: 32,
            // kcp-go's session flushes once when created, which lifts cwnd from 0 to 1
            cwnd: 1,
            incr: mss as u32,
            probe: 0,
            interval: 100,
            nodelay: false,
            ts_probe: 0,
            probe_wait: 0,
            fastresend: 0,
            nocwnd: false,
            snd_queue: VecDeque::new(),
            snd_buf: VecDeque::new(),
            rcv_queue: VecDeque::new(),
            rcv_buf: VecDeque::new(),
            acklist: Vec::new(),
            buffer: vec![0; mtu],
            pool: Vec::new(),
            pool_limit: 128,
            counters: ArqCounters::default(),
        }
    }

    /// Sets the windows, in segments (kcp-go `WndSize`: zero keeps the current value)
    pub(crate) fn set_wndsize(&mut self, snd_wnd: u16, rcv_wnd: u16) {
        if snd_wnd > 0 {
            self.snd_wnd = u32::from(snd_wnd);
        }
        if rcv_wnd > 0 {
            self.rcv_wnd = u32::from(rcv_wnd);
        }
        self.pool_limit = 2 * (self.snd_wnd + self.rcv_wnd) as usize;
    }

    /// kcp-go `NoDelay`: `nodelay` lowers the minimum RTO to 30 ms and slows RTO backoff,
    /// `interval` (clamped to 10..=5000 ms) paces flushes, `resend` > 0 enables fast retransmit
    /// after that many skipping ACKs, `nc` turns congestion control off
    pub(crate) fn set_nodelay(&mut self, nodelay: bool, interval: u32, resend: u32, nc: bool) {
        self.nodelay = nodelay;
        self.rx_minrto = if nodelay { RTO_NDL } else { RTO_MIN };
        self.interval = interval.clamp(10, 5000);
        self.fastresend = resend;
        self.nocwnd = nc;
    }

    /// Conversation id
    pub(crate) fn conv(&self) -> u32 {
        self.conv
    }

    /// Segments queued or in flight (kcp-go `WaitSnd`)
    pub(crate) fn wait_snd(&self) -> usize {
        self.snd_buf.len() + self.snd_queue.len()
    }

    /// Segments sent and not yet passed by the peer's `una`
    pub(crate) fn in_flight(&self) -> u32 {
        self.snd_nxt.wrapping_sub(self.snd_una)
    }

    /// Smoothed RTT and RTO, ms
    pub(crate) fn rtt(&self) -> (u32, u32) {
        (self.rx_srtt.max(0) as u32, self.rx_rto)
    }

    /// Send, receive, remote and congestion windows, segments
    pub(crate) fn windows(&self) -> (u32, u32, u32, u32) {
        (self.snd_wnd, self.rcv_wnd, self.rmt_wnd, self.cwnd)
    }

    /// Counters
    pub(crate) fn counters(&self) -> ArqCounters {
        self.counters
    }

    /// Whether acknowledgments are waiting for a flush
    pub(crate) fn has_pending_acks(&self) -> bool {
        !self.acklist.is_empty()
    }

    /// A segment holding a copy of `data`, its buffer taken from the pool
    fn new_segment(&mut self, frg: u8, sn: u32, ts: u32, data: &[u8]) -> Segment {
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        Segment {
            frg,
            sn,
            ts,
            data: buf,
            ..Segment::default()
        }
    }

    /// Returns a retired segment's buffer to the pool
    fn retire(pool: &mut Vec<Vec<u8>>, limit: usize, data: Vec<u8>) {
        if pool.len() < limit && data.capacity() > 0 {
            pool.push(data);
        }
    }

    /// Queues `msg` as one message of up to 255 fragments (kcp-go `Send`, message mode)
    ///
    /// Refused while the send queue and window hold `snd_wnd` segments or more, as kcp-go's
    /// `Write` blocks then; a message needing more fragments than the receive window (which must
    /// match the peer's) or 255 could never be reassembled and is refused too.
    pub(crate) fn send(&mut self, msg: &[u8]) -> Result<(), KcpError> {
        if msg.is_empty() {
            return Err(KcpError::Empty);
        }
        let fragments = msg.len().div_ceil(self.mss);
        let max = MAX_FRAGMENTS.min(self.rcv_wnd as usize);
        if fragments > max {
            return Err(KcpError::TooLarge {
                len: msg.len(),
                max: max * self.mss,
            });
        }
        if self.wait_snd() + fragments > SEND_QUEUE_LIMIT.max(self.snd_wnd as usize) {
            return Err(KcpError::WindowFull);
        }
        for (i, chunk) in msg.chunks(self.mss).enumerate() {
            let seg = self.new_segment((fragments - i - 1) as u8, 0, 0, chunk);
            self.snd_queue.push_back(seg);
        }
        Ok(())
    }

    /// Size of the next whole message, if one is ready (kcp-go `PeekSize`)
    fn peek_size(&self) -> Option<usize> {
        let front = self.rcv_queue.front()?;
        if front.frg == 0 {
            return Some(front.data.len());
        }
        if self.rcv_queue.len() < usize::from(front.frg) + 1 {
            return None;
        }
        Some(
            self.rcv_queue
                .iter()
                .take(usize::from(front.frg) + 1)
                .map(|s| s.data.len())
                .sum(),
        )
    }

    /// Copies the next whole message into `out` (kcp-go `Recv`)
    ///
    /// A message longer than `out` is dropped and counted; the next one is tried.
    pub(crate) fn recv(&mut self, out: &mut [u8]) -> Option<usize> {
        loop {
            let size = self.peek_size()?;
            let fast_recover = self.rcv_queue.len() >= self.rcv_wnd as usize;
            let fits = size <= out.len();
            let mut n = 0;
            while let Some(seg) = self.rcv_queue.pop_front() {
                if fits {
                    out[n..n + seg.data.len()].copy_from_slice(&seg.data);
                    n += seg.data.len();
                }
                let last = seg.frg == 0;
                Self::retire(&mut self.pool, self.pool_limit, seg.data);
                if last {
                    break;
                }
            }
            self.move_to_rcv_queue();
            if fast_recover && self.rcv_queue.len() < self.rcv_wnd as usize {
                self.probe |= ASK_TELL;
            }
            if fits {
                return Some(n);
            }
            self.counters.recv_dropped += 1;
        }
    }

    /// Moves in-order segments from `rcv_buf` to `rcv_queue` while the window allows
    fn move_to_rcv_queue(&mut self) {
        while let Some(seg) = self.rcv_buf.front() {
            if seg.sn != self.rcv_nxt || self.rcv_queue.len() >= self.rcv_wnd as usize {
                break;
            }
            self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
            if let Some(seg) = self.rcv_buf.pop_front() {
                self.rcv_queue.push_back(seg);
            }
        }
    }

    /// Checks that every segment of `datagram` parses, is ours and has a known command
    fn validate(&self, datagram: &[u8]) -> Result<(), KcpError> {
        for seg in Segments::new(datagram) {
            let (h, _) = seg?;
            if h.conv != self.conv {
                return Err(KcpError::ForeignConv(h.conv));
            }
            if !(CMD_PUSH..=CMD_WINS).contains(&h.cmd) {
                return Err(KcpError::BadCommand(h.cmd));
            }
        }
        Ok(())
    }

    /// Processes a datagram from the peer at `now` ms (kcp-go `Input`); `regular` is false for
    /// FEC-rebuilt datagrams, which update neither the RTT nor the remote window
    ///
    /// The datagram is checked whole first, so a bad one changes nothing.
    pub(crate) fn input(
        &mut self,
        now: u32,
        datagram: &[u8],
        regular: bool,
    ) -> Result<InputOutcome, KcpError> {
        self.validate(datagram)?;
        let prev_una = self.snd_una;
        let mut latest_ack = None;
        let mut outcome = InputOutcome::default();
        for (h, data) in Segments::new(datagram).flatten() {
            if regular {
                self.rmt_wnd = u32::from(h.wnd);
            }
            outcome.window_slid |= self.parse_una(h.una) > 0;
            self.shrink_buf();
            match h.cmd {
                CMD_ACK => {
                    self.parse_ack(h.sn);
                    self.parse_fastack(h.sn, h.ts);
                    latest_ack = Some(h.ts);
                }
                CMD_PUSH => outcome.new_segments += usize::from(self.parse_push(&h, data)),
                CMD_WASK => self.probe |= ASK_TELL,
                _ => {}
            }
        }
        if let (Some(ts), true) = (latest_ack, regular) {
            let rtt = seq_diff(now, ts);
            if rtt >= 0 {
                self.update_ack(rtt);
            }
        }
        if !self.nocwnd && seq_diff(self.snd_una, prev_una) > 0 {
            self.grow_cwnd();
        }
        Ok(outcome)
    }

    /// Handles a push: acknowledges it if in the window and stores it if new; returns whether
    /// it was new
    fn parse_push(&mut self, h: &SegmentHeader, data: &[u8]) -> bool {
        if seq_diff(h.sn, self.rcv_nxt.wrapping_add(self.rcv_wnd)) >= 0 {
            return false;
        }
        self.acklist.push((h.sn, h.ts));
        if seq_diff(h.sn, self.rcv_nxt) < 0 {
            return false;
        }
        let mut at = 0;
        for (i, seg) in self.rcv_buf.iter().enumerate().rev() {
            if seg.sn == h.sn {
                return false;
            }
            if seq_diff(h.sn, seg.sn) > 0 {
                at = i + 1;
                break;
            }
        }
        let seg = self.new_segment(h.frg, h.sn, h.ts, data);
        self.rcv_buf.insert(at, seg);
        self.move_to_rcv_queue();
        true
    }

    /// Drops the segments below `una` from the send buffer; returns how many
    fn parse_una(&mut self, una: u32) -> usize {
        let count = self
            .snd_buf
            .iter()
            .take_while(|s| seq_diff(una, s.sn) > 0)
            .count();
        for seg in self.snd_buf.drain(..count) {
            Self::retire(&mut self.pool, self.pool_limit, seg.data);
        }
        count
    }

    /// Recomputes `snd_una` from the send buffer
    fn shrink_buf(&mut self) {
        self.snd_una = self.snd_buf.front().map_or(self.snd_nxt, |s| s.sn);
    }

    /// Marks segment `sn` acknowledged and frees its payload
    fn parse_ack(&mut self, sn: u32) {
        if seq_diff(sn, self.snd_una) < 0 || seq_diff(sn, self.snd_nxt) >= 0 {
            return;
        }
        for seg in self.snd_buf.iter_mut() {
            if seg.sn == sn {
                seg.acked = true;
                Self::retire(
                    &mut self.pool,
                    self.pool_limit,
                    std::mem::take(&mut seg.data),
                );
                break;
            }
            if seq_diff(sn, seg.sn) < 0 {
                break;
            }
        }
    }

    /// Counts an ACK for `sn` against every earlier segment sent no later than `ts`
    fn parse_fastack(&mut self, sn: u32, ts: u32) {
        if seq_diff(sn, self.snd_una) < 0 || seq_diff(sn, self.snd_nxt) >= 0 {
            return;
        }
        for seg in self.snd_buf.iter_mut() {
            if seq_diff(sn, seg.sn) < 0 {
                break;
            }
            if sn != seg.sn && seq_diff(seg.ts, ts) <= 0 {
                seg.fastack += 1;
            }
        }
    }

    /// Folds an RTT sample into srtt, rttvar and the RTO (kcp-go `update_ack`, RFC 6298)
    fn update_ack(&mut self, rtt: i32) {
        if self.rx_srtt == 0 {
            self.rx_srtt = rtt;
            self.rx_rttvar = rtt >> 1;
        } else {
            let mut delta = rtt - self.rx_srtt;
            self.rx_srtt += delta >> 3;
            delta = delta.abs();
            if rtt < self.rx_srtt - self.rx_rttvar {
                // a sample below the expected range weighs 8 times less
                self.rx_rttvar += (delta - self.rx_rttvar) >> 5;
            } else {
                self.rx_rttvar += (delta - self.rx_rttvar) >> 2;
            }
        }
        let rto = (self.rx_srtt.max(0) as u32)
            .saturating_add(self.interval.max((self.rx_rttvar.max(0) as u32) << 2));
        self.rx_rto = rto.clamp(self.rx_minrto, RTO_MAX);
    }

    /// Grows the congestion window after `una` advanced (slow start, then additive increase)
    fn grow_cwnd(&mut self) {
        if self.cwnd >= self.rmt_wnd {
            return;
        }
        let mss = self.mss as u32;
        if self.cwnd < self.ssthresh {
            self.cwnd += 1;
            self.incr += mss;
        } else {
            self.incr = self.incr.max(mss);
            self.incr += mss * mss / self.incr + mss / 16;
            if (self.cwnd + 1) * mss <= self.incr {
                self.cwnd += 1;
            }
        }
        if self.cwnd > self.rmt_wnd {
            self.cwnd = self.rmt_wnd;
            self.incr = self.rmt_wnd * mss;
        }
    }

    /// Free slots of the receive queue, advertised as `wnd`
    fn wnd_unused(&self) -> u16 {
        (self.rcv_wnd as usize).saturating_sub(self.rcv_queue.len()) as u16
    }

    /// Sends pending ACKs and, for a full flush, probes, new segments and retransmissions at
    /// `now` ms (kcp-go `flush`); each datagram goes to `out` with its reserved bytes in front
    ///
    /// Returns the milliseconds until the next flush is due: the interval, or sooner if a
    /// retransmission timer expires first.
    pub(crate) fn flush(
        &mut self,
        now: u32,
        kind: FlushKind,
        out: &mut impl FnMut(&mut [u8]),
    ) -> u32 {
        let mut buffer = std::mem::take(&mut self.buffer);
        let mut packer = Packer {
            buf: &mut buffer,
            reserved: self.reserved,
            pos: self.reserved,
            out,
        };
        let mut template = SegmentHeader {
            conv: self.conv,
            cmd: CMD_ACK,
            frg: 0,
            wnd: self.wnd_unused(),
            ts: 0,
            sn: 0,
            una: self.rcv_nxt,
            len: 0,
        };
        self.flush_acks(&mut packer, &mut template);
        let next = match kind {
            FlushKind::AcksOnly => self.interval,
            FlushKind::Full => {
                self.flush_probes(now, &mut packer, &mut template);
                let new_segments = self.fill_window();
                self.flush_data(now, new_segments, &mut packer, &template)
            }
        };
        packer.finish();
        self.buffer = buffer;
        next
    }

    /// Writes the pending ACKs, skipping those `una` already covers except the last
    fn flush_acks<F: FnMut(&mut [u8])>(
        &mut self,
        packer: &mut Packer<'_, F>,
        template: &mut SegmentHeader,
    ) {
        let last = self.acklist.len().saturating_sub(1);
        for (i, &(sn, ts)) in self.acklist.iter().enumerate() {
            if seq_diff(sn, self.rcv_nxt) >= 0 || i == last {
                template.sn = sn;
                template.ts = ts;
                packer.push(template, &[]);
            }
        }
        self.acklist.clear();
    }

    /// Schedules and writes window probes
    fn flush_probes<F: FnMut(&mut [u8])>(
        &mut self,
        now: u32,
        packer: &mut Packer<'_, F>,
        template: &mut SegmentHeader,
    ) {
        if self.rmt_wnd == 0 {
            if self.probe_wait == 0 {
                self.probe_wait = PROBE_INIT;
                self.ts_probe = now.wrapping_add(self.probe_wait);
            } else if seq_diff(now, self.ts_probe) >= 0 {
                self.probe_wait = self.probe_wait.max(PROBE_INIT);
                self.probe_wait = (self.probe_wait + self.probe_wait / 2).min(PROBE_LIMIT);
                self.ts_probe = now.wrapping_add(self.probe_wait);
                self.probe |= ASK_SEND;
            }
        } else {
            self.ts_probe = 0;
            self.probe_wait = 0;
        }
        for (flag, cmd) in [(ASK_SEND, CMD_WASK), (ASK_TELL, CMD_WINS)] {
            if self.probe & flag != 0 {
                template.cmd = cmd;
                packer.push(template, &[]);
            }
        }
        self.probe = 0;
    }

    /// The effective send window: send, remote and (unless off) congestion windows
    fn effective_window(&self) -> u32 {
        let wnd = self.snd_wnd.min(self.rmt_wnd);
        if self.nocwnd { wnd } else { wnd.min(self.cwnd) }
    }

    /// Moves queued segments into the send window; returns how many
    fn fill_window(&mut self) -> usize {
        let limit = self.snd_una.wrapping_add(self.effective_window());
        let mut count = 0;
        while seq_diff(self.snd_nxt, limit) < 0 {
            let Some(mut seg) = self.snd_queue.pop_front() else {
                break;
            };
            seg.sn = self.snd_nxt;
            self.snd_nxt = self.snd_nxt.wrapping_add(1);
            self.snd_buf.push_back(seg);
            count += 1;
        }
        count
    }

    /// Transmits new segments and those due for retransmission; adjusts the congestion window
    fn flush_data<F: FnMut(&mut [u8])>(
        &mut self,
        now: u32,
        new_segments: usize,
        packer: &mut Packer<'_, F>,
        template: &SegmentHeader,
    ) -> u32 {
        let cwnd = self.effective_window();
        let resent = if self.fastresend > 0 {
            self.fastresend
        } else {
            u32::MAX
        };
        let (mut early, mut lost) = (0u64, 0u64);
        let mut next = self.interval as i32;
        for seg in self.snd_buf.iter_mut().filter(|s| !s.acked) {
            let send = if seg.xmit == 0 {
                seg.rto = self.rx_rto;
                true
            } else if seg.fastack >= resent || (seg.fastack > 0 && new_segments == 0) {
                seg.rto = self.rx_rto;
                early += 1;
                true
            } else if seq_diff(now, seg.resendts) >= 0 {
                seg.rto += if self.nodelay {
                    self.rx_rto / 2
                } else {
                    self.rx_rto
                };
                lost += 1;
                true
            } else {
                false
            };
            if send {
                seg.fastack = 0;
                seg.resendts = now.wrapping_add(seg.rto);
                seg.xmit += 1;
                seg.ts = now;
                let h = SegmentHeader {
                    cmd: CMD_PUSH,
                    frg: seg.frg,
                    ts: now,
                    sn: seg.sn,
                    len: seg.data.len() as u32,
                    ..*template
                };
                packer.push(&h, &seg.data);
            }
            let due = seq_diff(seg.resendts, now);
            if due > 0 && due < next {
                next = due;
            }
        }
        self.counters.fast_retransmits += early;
        self.counters.timeouts += lost;
        if !self.nocwnd {
            self.shrink_cwnd(cwnd, early > 0, lost > 0, resent);
        }
        next as u32
    }

    /// Rate halving after early retransmits, back to one segment after a timeout
    fn shrink_cwnd(&mut self, cwnd: u32, early: bool, lost: bool, resent: u32) {
        let mss = self.mss as u32;
        if early {
            let inflight = self.snd_nxt.wrapping_sub(self.snd_una);
            self.ssthresh = (inflight / 2).max(THRESH_MIN);
            // kcp-go adds `resent` in uint32, wrapping when fast resend is off
            self.cwnd = self.ssthresh.wrapping_add(resent);
            self.incr = self.cwnd.wrapping_mul(mss);
        }
        if lost {
            self.ssthresh = (cwnd / 2).max(THRESH_MIN);
            self.cwnd = 1;
            self.incr = mss;
        }
        if self.cwnd < 1 {
            self.cwnd = 1;
            self.incr = mss;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects flushed datagrams (no reserved bytes)
    fn flush_all(k: &mut Kcp, now: u32) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        k.flush(now, FlushKind::Full, &mut |d: &mut [u8]| {
            out.push(d.to_vec())
        });
        out
    }

    /// Carries every datagram from `a` to `b`
    fn deliver(from: &mut Kcp, to: &mut Kcp, now: u32) {
        for d in flush_all(from, now) {
            to.input(now, &d, true).unwrap();
        }
    }

    #[test]
    fn header_round_trip_and_layout() {
        let h = SegmentHeader {
            conv: 0x1122_3344,
            cmd: CMD_PUSH,
            frg: 2,
            wnd: 128,
            ts: 5,
            sn: 6,
            una: 7,
            len: 8,
        };
        let mut b = [0u8; SEGMENT_HEADER_LEN];
        h.write(&mut b);
        assert_eq!(&b[..8], &[0x44, 0x33, 0x22, 0x11, 0x51, 0x02, 0x80, 0x00]);
        assert_eq!(SegmentHeader::read(&b), h);
    }

    #[test]
    fn segments_iterator_matches_kcp_go_walk() {
        assert_eq!(
            Segments::new(&[0; 10]).collect::<Vec<_>>(),
            vec![Err(KcpError::Truncated)]
        );
        let mut d = vec![0u8; 24];
        d[20] = 4; // len 4 but no data
        assert_eq!(Segments::new(&d).next(), Some(Err(KcpError::Truncated)));
        d.extend_from_slice(&[1, 2, 3, 4, 9, 9]); // data plus a short tail, ignored
        let segs: Vec<_> = Segments::new(&d).collect();
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].as_ref().unwrap().1, &[1, 2, 3, 4]);
    }

    #[test]
    fn message_round_trip_with_fragments() {
        let mut a = Kcp::new(7, 100, 0);
        let mut b = Kcp::new(7, 100, 0);
        a.set_nodelay(false, 10, 0, true);
        let msg: Vec<u8> = (0..700).map(|i| i as u8).collect();
        a.send(&msg).unwrap();
        a.send(b"second").unwrap();
        deliver(&mut a, &mut b, 0);
        let mut out = [0u8; 1000];
        assert_eq!(b.recv(&mut out), Some(700));
        assert_eq!(&out[..700], &msg[..]);
        assert_eq!(b.recv(&mut out), Some(6));
        assert_eq!(b.recv(&mut out), None);
        // the ACKs clear a's send buffer
        deliver(&mut b, &mut a, 10);
        assert_eq!(a.wait_snd(), 0);
    }

    #[test]
    fn send_limits() {
        let mut a = Kcp::new(1, 1400, 8);
        assert_eq!(a.mss, 1368);
        assert_eq!(a.send(&[]), Err(KcpError::Empty));
        let big = vec![0u8; 1368 * 32 + 1];
        assert_eq!(
            a.send(&big),
            Err(KcpError::TooLarge {
                len: big.len(),
                max: 1368 * 32
            })
        );
        assert!(a.send(&big[..1368 * 32]).is_ok());
        while a.wait_snd() < SEND_QUEUE_LIMIT {
            assert!(a.send(b"x").is_ok());
        }
        assert_eq!(a.send(b"x"), Err(KcpError::WindowFull));
    }

    #[test]
    fn too_small_buffer_drops_that_message_only() {
        let mut a = Kcp::new(7, 200, 0);
        let mut b = Kcp::new(7, 200, 0);
        a.set_nodelay(false, 100, 0, true);
        a.send(&[1; 50]).unwrap();
        a.send(&[2; 5]).unwrap();
        deliver(&mut a, &mut b, 0);
        let mut out = [0u8; 10];
        assert_eq!(b.recv(&mut out), Some(5));
        assert_eq!(b.counters().recv_dropped, 1);
    }

    #[test]
    fn foreign_and_bad_datagrams_change_nothing() {
        let mut a = Kcp::new(7, 200, 0);
        let mut b = Kcp::new(8, 200, 0);
        a.send(b"hello").unwrap();
        let d = flush_all(&mut a, 0).remove(0);
        assert_eq!(b.input(0, &d, true), Err(KcpError::ForeignConv(7)));
        let mut c = Kcp::new(7, 200, 0);
        let mut bad = d.clone();
        bad[4] = 99;
        assert_eq!(c.input(0, &bad, true), Err(KcpError::BadCommand(99)));
        assert_eq!(d.len(), 29);
        assert_eq!(c.input(0, &d[..28], true), Err(KcpError::Truncated));
        assert!(c.acklist.is_empty() && c.rcv_buf.is_empty());
        assert!(c.input(0, &d, true).is_ok());
        let mut out = [0u8; 16];
        assert_eq!(c.recv(&mut out), Some(5));
    }

    #[test]
    fn retransmits_after_rto_and_counts_it() {
        let mut a = Kcp::new(7, 200, 0);
        let mut b = Kcp::new(7, 200, 0);
        a.send(b"lost").unwrap();
        let first = flush_all(&mut a, 0);
        assert_eq!(first.len(), 1);
        // nothing due before the initial RTO (200 ms)
        assert!(flush_all(&mut a, 100).is_empty());
        let again = flush_all(&mut a, 200);
        assert_eq!(again.len(), 1);
        assert_eq!(a.counters().timeouts, 1);
        b.input(200, &again[0], true).unwrap();
        deliver(&mut b, &mut a, 230);
        assert_eq!(a.wait_snd(), 0);
        // the RTT sample came from the retransmission's timestamp
        assert_eq!(a.rtt().0, 30);
    }

    #[test]
    fn flush_reports_nearest_retransmission() {
        let mut a = Kcp::new(7, 200, 0);
        a.set_nodelay(false, 100, 0, false);
        a.send(b"x").unwrap();
        let mut sink = |_: &mut [u8]| {};
        assert_eq!(a.flush(0, FlushKind::Full, &mut sink), 100);
        assert_eq!(a.flush(150, FlushKind::Full, &mut sink), 50);
    }

    #[test]
    fn reserved_bytes_are_left_in_front() {
        let mut a = Kcp::new(9, 100, 8);
        a.send(&[5; 68]).unwrap();
        let d = flush_all(&mut a, 0);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].len(), 100);
        assert_eq!(&d[0][8..12], &9u32.to_le_bytes());
    }
}
