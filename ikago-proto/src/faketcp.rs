//! FakeTCP: one simulated TCP connection per peer, shaped like Linux's, carrying sealed frames
//!
//! A [`Conn`] keeps the handshake state, sequence and acknowledgment numbers, negotiated options
//! and the IP ID counter. It parses nothing and sends nothing itself: the machine hands it parsed
//! segments ([`Conn::handle_segment`]) and asks it to write headers ([`Conn::write_control`],
//! [`Conn::write_data_headers`]).
//!
//! Compared with the Go original (reference §2): random ISN and IP ID start, Linux options on the
//! SYN and SYN+ACK (mirrored, so a Go peer that sends none gets none), TTL 64, timestamps on every
//! segment when negotiated, pure ACKs for received data (strict conntrack keeps the window moving),
//! keepalive probes answered like Linux, and a RST when the peer is unknown. DF is left clear so
//! that routers may fragment, as the original does.
//!
//! A connection runs over IPv4 or IPv6, the family of its addresses (see [`crate::outer`]): over
//! IPv6 its packets carry hop limit 64 and a flow label drawn per connection, the MSS offered is
//! 20 bytes smaller, and a believed Packet Too Big ([`crate::pmtu`]) lowers its frame size.
//!
//! Blind attacks on a live connection (RFC 5961): a RST is obeyed only at exactly the expected
//! sequence number; a RST elsewhere in the window, or a SYN, gets a challenge ACK instead, which
//! a peer that really restarted answers with a RST at the exact number. A connection waiting
//! for its SYN+ACK answers an ACK that is not for its SYN with a RST (RFC 9293 §3.10.7.3).

use crate::outer::{self, FLOW_LABEL_MASK, Fields};
use crate::pmtu::Report;
use crate::stats::DropReason;
use crate::syncookie::{self, Cookies, Restored};
use crate::wire::tcp;
use rand_core::RngCore;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Window scale we offer (Linux offers 7 to 9 depending on its buffers)
const WINDOW_SCALE: u8 = 9;
/// Window field of a SYN (Linux: 64240 = 44 segments of 1460)
const SYN_WINDOW: u16 = 64240;
/// Window field of a SYN+ACK (Linux: 65160 = 45 segments of 1448)
const SYN_ACK_WINDOW: u16 = 65160;
/// Window field once scaling is on: 32767 << 9 is about 16 MiB, room for 200 Mbit/s at 600 ms
const SCALED_WINDOW: u16 = 0x7fff;
/// Data segments acknowledged at once after the handshake (Linux "quick ACK" mode), so that the
/// sender learns the scaled window early
const QUICKACK_SEGMENTS: u8 = 8;
/// A RST whose sequence number is this close to what we expect, but not exactly it, gets a
/// challenge ACK (RFC 5961 §3.2); farther away it is ignored
const RST_WINDOW: u32 = 1 << 20;

/// Connection state (RFC 9293 §3.3.2, the subset a tunnel needs)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Client: SYN sent, waiting for SYN+ACK
    SynSent,
    /// Server: SYN+ACK sent, waiting for ACK or data
    SynReceived,
    /// Data flows both ways
    Established,
}

/// Options both ends agreed on
#[derive(Debug, Clone, Copy, Default)]
struct Negotiated {
    /// Timestamps on every segment (RFC 7323 §3)
    timestamps: bool,
    /// Window scaling on (both SYNs carried it)
    scaling: bool,
}

/// What a received segment asks of the machine
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Nothing to send now
    None,
    /// Send a pure ACK now
    Ack,
    /// Send a SYN+ACK now
    SynAck,
    /// Send a challenge ACK (RFC 5961), subject to a rate limit
    Challenge,
    /// Answer the segment with a RST (it acknowledges something we never sent)
    Reset,
}

/// A state change worth reporting
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Client: the handshake completed, `rtt` after the SYN that succeeded
    Connected {
        /// Time from the SYN to its SYN+ACK
        rtt: Duration,
    },
    /// Server: the client's ACK or first data arrived
    Established,
    /// The peer reset the connection
    Reset,
}

/// The outcome of [`Conn::handle_segment`]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// Whether the payload should be opened and delivered
    pub(crate) deliver: bool,
    /// What to send back now
    pub(crate) reply: Reply,
    /// A state change
    pub(crate) change: Option<Change>,
    /// Why the segment was not obeyed, to count
    pub(crate) refused: Option<DropReason>,
}

/// One FakeTCP connection
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    /// Our address
    pub(crate) local: SocketAddr,
    /// The peer's address
    pub(crate) remote: SocketAddr,
    /// Handshake state
    pub(crate) state: State,
    iss: u32,
    snd_nxt: u32,
    /// Oldest sequence number the peer has not acknowledged
    snd_una: u32,
    /// The peer's receive window in bytes (scaled)
    peer_window: u32,
    /// The peer's window scale shift (0 unless both SYNs carried the option)
    peer_wscale: u8,
    /// Data segments still to acknowledge at once
    quickack: u8,
    irs: u32,
    rcv_nxt: u32,
    ip_id: u16,
    /// The IPv6 flow label of every packet (0 over IPv4)
    flow: u32,
    /// The frame size a believed Packet Too Big left, below the tunnel MTU (see [`crate::pmtu`])
    path_mtu: Option<usize>,
    opts: Negotiated,
    mss: u16,
    ts_offset: u32,
    ts_recent: u32,
    /// Payload bytes received since our last ACK
    pub(crate) unacked: u32,
    /// When the current SYN (or SYN+ACK) was sent
    syn_at: Instant,
    /// When the last segment was sent
    pub(crate) last_tx: Instant,
    /// When the last acceptable segment arrived
    pub(crate) last_rx: Instant,
    /// When a delayed ACK is due
    pub(crate) ack_due: Option<Instant>,
    epoch: Instant,
    /// The TSval and send time of the latest keepalive probe, to time its answer
    probe: Option<(u32, Instant)>,
    /// An RTT measured from the answer to a keepalive probe, not yet taken
    rtt_sample: Option<Duration>,
    /// A SYN+ACK of this connection carries the peer's window scale in its TSval (a cookie)
    cookie: bool,
    /// When the oldest data the peer has not acknowledged was sent (or the latest ACK that
    /// left some unacknowledged arrived)
    stall_since: Option<Instant>,
}

/// A random flow label toward an IPv6 `remote` (Linux's automatic flow labels: one per
/// connection); none toward IPv4, which draws nothing
fn flow_label(remote: SocketAddr, rng: &mut impl RngCore) -> u32 {
    match remote {
        SocketAddr::V4(_) => 0,
        SocketAddr::V6(_) => rng.next_u32() & FLOW_LABEL_MASK,
    }
}

/// `a` is after `b` in sequence space (RFC 9293 §3.4)
#[inline]
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Conn {
    fn new(
        local: SocketAddr,
        remote: SocketAddr,
        state: State,
        mss: u16,
        now: Instant,
        epoch: Instant,
        rng: &mut impl RngCore,
    ) -> Self {
        let iss = rng.next_u32();
        Self {
            local,
            remote,
            state,
            iss,
            snd_nxt: iss,
            snd_una: iss,
            peer_window: u32::from(u16::MAX),
            peer_wscale: 0,
            quickack: 0,
            irs: 0,
            rcv_nxt: 0,
            ip_id: rng.next_u32() as u16,
            flow: flow_label(remote, rng),
            path_mtu: None,
            opts: Negotiated::default(),
            mss,
            ts_offset: rng.next_u32(),
            ts_recent: 0,
            unacked: 0,
            syn_at: now,
            last_tx: now,
            last_rx: now,
            ack_due: None,
            epoch,
            probe: None,
            rtt_sample: None,
            cookie: false,
            stall_since: None,
        }
    }

    /// Client: a new connection about to send its SYN (random ISN)
    pub(crate) fn connect(
        local: SocketAddr,
        remote: SocketAddr,
        mss: u16,
        now: Instant,
        epoch: Instant,
        rng: &mut impl RngCore,
    ) -> Self {
        Self::new(local, remote, State::SynSent, mss, now, epoch, rng)
    }

    /// Server: a connection for a SYN just received; answer with [`Reply::SynAck`]
    pub(crate) fn accept(
        local: SocketAddr,
        remote: SocketAddr,
        syn: &tcp::Segment<'_>,
        mss: u16,
        now: Instant,
        epoch: Instant,
        rng: &mut impl RngCore,
    ) -> Self {
        let mut c = Self::new(local, remote, State::SynReceived, mss, now, epoch, rng);
        c.take_syn(syn);
        c
    }

    /// Server: the stateless answer to a SYN when the half-open table is full, to write a SYN+ACK
    /// with and then forget; the ISN and the timestamp clock come from `cookies`
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn cookie_answer(
        local: SocketAddr,
        remote: SocketAddr,
        syn: &tcp::Segment<'_>,
        mss: u16,
        cookies: &Cookies,
        now: Instant,
        epoch: Instant,
        rng: &mut impl RngCore,
    ) -> Self {
        let mut c = Self::accept(local, remote, syn, mss, now, epoch, rng);
        let since_start = now.saturating_duration_since(epoch);
        c.iss = cookies.isn(local, remote, syn.seq(), since_start);
        c.snd_nxt = c.iss;
        c.snd_una = c.iss;
        c.ts_offset = cookies.ts_offset(local, remote);
        // without timestamps the window scale could not come back: do without it (as Linux)
        c.opts.scaling &= c.opts.timestamps;
        c.cookie = true;
        c
    }

    /// Server: the connection a valid cookie ACK (or first data segment) restores, established;
    /// pass `ack` to [`Conn::handle_segment`] next for its payload
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_cookie(
        local: SocketAddr,
        remote: SocketAddr,
        ack: &tcp::Segment<'_>,
        restored: Restored,
        mss: u16,
        cookies: &Cookies,
        now: Instant,
        epoch: Instant,
        rng: &mut impl RngCore,
    ) -> Self {
        let mut c = Self::new(local, remote, State::Established, mss, now, epoch, rng);
        c.iss = restored.iss;
        c.snd_nxt = restored.iss.wrapping_add(1);
        c.snd_una = c.snd_nxt;
        c.irs = restored.irs;
        c.rcv_nxt = restored.irs.wrapping_add(1);
        c.ts_offset = cookies.ts_offset(local, remote);
        let ts = ack.options().timestamps;
        c.opts = Negotiated {
            timestamps: ts.is_some(),
            scaling: restored.wscale.is_some(),
        };
        c.peer_wscale = restored.wscale.unwrap_or(0);
        if let Some((val, _)) = ts {
            c.ts_recent = val;
        }
        c.quickack = QUICKACK_SEGMENTS;
        c
    }

    /// Records the peer's SYN: its ISN and the options it offers
    fn take_syn(&mut self, syn: &tcp::Segment<'_>) {
        let o = syn.options();
        self.irs = syn.seq();
        self.rcv_nxt = syn.seq().wrapping_add(1);
        self.opts = Negotiated {
            timestamps: o.timestamps.is_some(),
            scaling: o.window_scale.is_some(),
        };
        self.peer_wscale = o.window_scale.unwrap_or(0);
        // the window of a SYN is never scaled (RFC 7323 §2.2)
        self.peer_window = u32::from(syn.window());
        if let Some((val, _)) = o.timestamps {
            self.ts_recent = val;
        }
        if let Some(peer_mss) = o.mss {
            self.mss = self.mss.min(peer_mss.max(536));
        }
    }

    /// Client: start a new handshake on this connection (after loss), with a fresh ISN
    pub(crate) fn restart(&mut self, now: Instant, rng: &mut impl RngCore) {
        self.iss = rng.next_u32();
        self.snd_nxt = self.iss;
        self.state = State::SynSent;
        self.opts = Negotiated::default();
        self.unacked = 0;
        self.ack_due = None;
        self.syn_at = now;
        self.last_rx = now;
        self.stall_since = None;
    }

    /// Client: start a new handshake with another server, from `local` (the same port, on the
    /// upstream address of the server's family)
    pub(crate) fn retarget(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        mss: u16,
        now: Instant,
        rng: &mut impl RngCore,
    ) {
        self.local = local;
        self.remote = remote;
        self.mss = mss;
        self.restart(now, rng);
        self.flow = flow_label(remote, rng);
        self.path_mtu = None;
    }

    /// The largest frame to send: `tunnel_mtu`, or less after a believed Packet Too Big
    #[inline]
    pub(crate) fn frame_size(&self, tunnel_mtu: usize) -> usize {
        self.path_mtu.map_or(tunnel_mtu, |p| p.min(tunnel_mtu))
    }

    /// Whether a Packet Too Big report quotes a segment of this connection that the peer has
    /// not acknowledged yet (RFC 5927 §4.1): our addresses and ports, and a sequence number in
    /// `snd_una..snd_nxt`
    pub(crate) fn quotes_unacked(&self, r: &Report) -> bool {
        r.local == self.local
            && r.remote == self.remote
            && self.state != State::SynSent
            && r.seq.wrapping_sub(self.snd_una) < self.snd_nxt.wrapping_sub(self.snd_una)
    }

    /// Lowers the frame size to `size` when that is below the current one (of `tunnel_mtu`);
    /// whether it did
    pub(crate) fn lower_frame_size(&mut self, size: usize, tunnel_mtu: usize) -> bool {
        let lower = size < self.frame_size(tunnel_mtu);
        if lower {
            self.path_mtu = Some(size);
        }
        lower
    }

    /// Since when data has waited for an acknowledgment, with a peer that acknowledges (one
    /// that echoes timestamps; a Go peer never sends pure ACKs)
    pub(crate) fn stalled_since(&self) -> Option<Instant> {
        self.stall_since.filter(|_| self.opts.timestamps)
    }

    /// Whether inner frames may be sent
    pub(crate) fn can_send(&self) -> bool {
        self.state != State::SynSent
    }

    /// Records what an ACK-bearing segment says about our data: the acknowledged point and the
    /// peer's current window (RFC 9293 §3.10.7.4, without retransmission)
    fn take_ack(&mut self, seg: &tcp::Segment<'_>) {
        let ack = seg.ack();
        if seq_gt(ack, self.snd_una) && !seq_gt(ack, self.snd_nxt) {
            self.snd_una = ack;
            self.stall_since = (self.snd_una != self.snd_nxt).then_some(self.last_rx);
        }
        self.peer_window = u32::from(seg.window())
            << if self.opts.scaling {
                self.peer_wscale.min(14)
            } else {
                0
            };
    }

    /// Whether a data segment of `len` payload bytes fits the peer's receive window
    ///
    /// A strict middlebox drops segments beyond the window the receiver advertised, so data
    /// waits instead. A Go peer never acknowledges a one-way flow, so its window is not tracked.
    pub(crate) fn window_allows(&self, len: usize) -> bool {
        if !self.opts.timestamps {
            return true;
        }
        let in_flight = self.snd_nxt.wrapping_sub(self.snd_una);
        u64::from(in_flight) + len as u64 <= u64::from(self.peer_window)
    }

    /// Whether the next received data should be acknowledged at once (quick ACK mode)
    pub(crate) fn take_quickack(&mut self) -> bool {
        let q = self.quickack > 0;
        self.quickack = self.quickack.saturating_sub(1);
        q
    }

    /// Takes the RTT measured from the latest answered keepalive probe, if any
    pub(crate) fn take_rtt_sample(&mut self) -> Option<Duration> {
        self.rtt_sample.take()
    }

    /// The effective receive window we advertise, in bytes
    pub(crate) fn window_bytes(&self) -> u32 {
        if self.opts.scaling {
            u32::from(SCALED_WINDOW) << WINDOW_SCALE
        } else {
            u32::from(u16::MAX)
        }
    }

    /// Handles a segment of this connection; the payload, if delivered, is `seg.payload()`
    pub(crate) fn handle_segment(&mut self, now: Instant, seg: &tcp::Segment<'_>) -> Received {
        let flags = seg.flags();
        let mut r = Received {
            deliver: false,
            reply: Reply::None,
            change: None,
            refused: None,
        };
        if flags & tcp::RST != 0 {
            if self.state == State::SynSent {
                if flags & tcp::ACK != 0 && seg.ack() == self.iss.wrapping_add(1) {
                    self.last_rx = now;
                    r.change = Some(Change::Reset);
                } else {
                    r.refused = Some(DropReason::BadReset);
                }
            } else if seg.seq() == self.rcv_nxt {
                self.last_rx = now;
                r.change = Some(Change::Reset);
            } else if seg
                .seq()
                .wrapping_sub(self.rcv_nxt)
                .wrapping_add(RST_WINDOW)
                <= 2 * RST_WINDOW
            {
                r.reply = Reply::Challenge;
            } else {
                r.refused = Some(DropReason::BadReset);
            }
            return r;
        }
        if flags & tcp::SYN != 0 {
            if flags & tcp::ACK == 0 {
                if self.state == State::Established {
                    // a blind SYN, or a peer that restarted: only the latter can answer the
                    // challenge with a RST at our exact acknowledgment number
                    r.reply = Reply::Challenge;
                    return r;
                }
                // a SYN while the handshake runs: our SYN+ACK was lost, or the peer restarted
                if self.state == State::SynReceived && seg.seq() == self.irs {
                    r.reply = Reply::SynAck;
                } else {
                    self.iss = self.snd_nxt;
                    self.state = State::SynReceived;
                    self.take_syn(seg);
                    self.syn_at = now;
                    r.reply = Reply::SynAck;
                }
                self.last_rx = now;
                return r;
            }
            match self.state {
                State::SynSent if seg.ack() == self.iss.wrapping_add(1) => {
                    self.take_syn(seg);
                    self.snd_nxt = self.iss.wrapping_add(1);
                    self.snd_una = self.snd_nxt;
                    self.state = State::Established;
                    self.quickack = QUICKACK_SEGMENTS;
                    self.last_rx = now;
                    r.reply = Reply::Ack;
                    r.change = Some(Change::Connected {
                        rtt: now.saturating_duration_since(self.syn_at),
                    });
                }
                State::Established if seg.seq().wrapping_add(1) == self.rcv_nxt => {
                    // our ACK was lost and the SYN+ACK retransmitted
                    self.last_rx = now;
                    r.reply = Reply::Ack;
                }
                _ => {}
            }
            return r;
        }
        if flags & tcp::ACK == 0 {
            return r;
        }
        match self.state {
            State::SynSent => {
                // an ACK for an earlier connection: tell its sender that it is gone
                if seg.ack() != self.iss.wrapping_add(1) {
                    r.reply = Reply::Reset;
                }
                return r;
            }
            State::SynReceived => {
                self.state = State::Established;
                self.snd_nxt = self.iss.wrapping_add(1);
                self.snd_una = self.snd_nxt;
                self.quickack = QUICKACK_SEGMENTS;
                r.change = Some(Change::Established);
            }
            State::Established => {}
        }
        self.last_rx = now;
        self.take_ack(seg);
        if let (true, Some((val, ecr))) = (self.opts.timestamps, seg.options().timestamps) {
            self.ts_recent = val;
            if let Some((probe_val, sent)) = self.probe
                && ecr == probe_val
            {
                self.probe = None;
                self.rtt_sample = Some(now.saturating_duration_since(sent));
            }
        }
        let len = seg.payload().len() as u32;
        if len == 0 {
            // a keepalive probe repeats the last byte's sequence number (RFC 9293 §3.8.4)
            if seg.seq().wrapping_add(1) == self.rcv_nxt {
                r.reply = Reply::Ack;
            }
            return r;
        }
        let end = seg.seq().wrapping_add(len);
        if seq_gt(end, self.rcv_nxt) {
            self.rcv_nxt = end;
        }
        self.unacked = self.unacked.saturating_add(len);
        r.deliver = true;
        r
    }

    /// Client: makes `isn` the ISN of the SYN about to be sent (an ikago2 SYN proof)
    pub(crate) fn set_syn_isn(&mut self, isn: u32) {
        if self.state == State::SynSent {
            self.iss = isn;
            self.snd_nxt = isn;
            self.snd_una = isn;
        }
    }

    /// Our timestamp clock: milliseconds since the machine started, from a random offset
    pub(crate) fn ts_val(&self, now: Instant) -> u32 {
        (now.saturating_duration_since(self.epoch).as_millis() as u32).wrapping_add(self.ts_offset)
    }

    fn data_options(&self, now: Instant) -> tcp::Options {
        tcp::Options {
            timestamps: self
                .opts
                .timestamps
                .then(|| (self.ts_val(now), self.ts_recent)),
            ..tcp::Options::default()
        }
    }

    /// Bytes of IP (IPv4 or IPv6) and TCP headers in front of a data payload
    #[inline]
    pub(crate) fn data_offset(&self) -> usize {
        self.ip_header_len() + tcp::HEADER_LEN + if self.opts.timestamps { 12 } else { 0 }
    }

    /// Bytes of the IP header of this connection's packets
    #[inline]
    pub(crate) fn ip_header_len(&self) -> usize {
        outer::header_len(self.remote.ip())
    }

    fn window_field(&self) -> u16 {
        if self.opts.scaling {
            SCALED_WINDOW
        } else {
            u16::MAX
        }
    }

    /// Writes IP and TCP headers around the `payload_len` bytes already at
    /// `buf[data_offset()..]`, advancing the sequence number; returns the IP packet length
    pub(crate) fn write_data_headers(
        &mut self,
        buf: &mut [u8],
        now: Instant,
        payload_len: usize,
    ) -> usize {
        let h = tcp::Header {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq: self.snd_nxt,
            ack: self.rcv_nxt,
            flags: tcp::PSH | tcp::ACK,
            window: self.window_field(),
            options: self.data_options(now),
        };
        let n = self.write_packet(buf, &h, payload_len);
        if self.snd_una == self.snd_nxt {
            self.stall_since = Some(now);
        }
        self.snd_nxt = self.snd_nxt.wrapping_add(payload_len as u32);
        self.last_tx = now;
        n
    }

    /// Writes a segment without payload: the SYN, SYN+ACK, a pure ACK, a keepalive probe or a RST
    pub(crate) fn write_control(&mut self, buf: &mut [u8], now: Instant, kind: Control) -> usize {
        let h = match kind {
            Control::Syn => tcp::Header {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq: self.iss,
                ack: 0,
                flags: tcp::SYN,
                window: SYN_WINDOW,
                options: tcp::Options {
                    mss: Some(self.mss),
                    window_scale: Some(WINDOW_SCALE),
                    sack_permitted: true,
                    timestamps: Some((self.ts_val(now), 0)),
                },
            },
            Control::SynAck => tcp::Header {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq: self.iss,
                ack: self.rcv_nxt,
                flags: tcp::SYN | tcp::ACK,
                window: SYN_ACK_WINDOW,
                options: tcp::Options {
                    mss: Some(self.mss),
                    window_scale: self.opts.scaling.then_some(WINDOW_SCALE),
                    sack_permitted: self.opts.timestamps,
                    timestamps: self.opts.timestamps.then(|| {
                        let val = self.ts_val(now);
                        let val = if self.cookie {
                            syncookie::encode_tsval(
                                val,
                                self.opts.scaling.then_some(self.peer_wscale),
                            )
                        } else {
                            val
                        };
                        (val, self.ts_recent)
                    }),
                },
            },
            Control::Ack | Control::Keepalive => tcp::Header {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq: if kind == Control::Keepalive {
                    self.snd_nxt.wrapping_sub(1)
                } else {
                    self.snd_nxt
                },
                ack: self.rcv_nxt,
                flags: tcp::ACK,
                window: self.window_field(),
                options: self.data_options(now),
            },
        };
        if matches!(kind, Control::Syn | Control::SynAck) {
            self.syn_at = now;
        }
        if kind == Control::Keepalive && self.opts.timestamps {
            self.probe = Some((self.ts_val(now), now));
        }
        self.last_tx = now;
        if matches!(kind, Control::Ack | Control::Keepalive) || kind == Control::SynAck {
            self.unacked = 0;
            self.ack_due = None;
        }
        self.write_packet(buf, &h, 0)
    }

    fn write_packet(&mut self, buf: &mut [u8], h: &tcp::Header, payload_len: usize) -> usize {
        let ip_len = self.ip_header_len();
        let tcp_len = tcp::write_header(&mut buf[ip_len..], h);
        debug_assert!(payload_len == 0 || tcp_len + ip_len == self.data_offset());
        let seg_len = tcp_len + payload_len;
        let (ip, seg) = buf.split_at_mut(ip_len);
        let (src, dst) = (self.local.ip(), self.remote.ip());
        tcp::fill_checksum(&mut seg[..seg_len], src, dst);
        let fields = Fields {
            id: self.ip_id,
            df: false,
            flow: self.flow,
        };
        outer::write_header(ip, src, dst, fields, seg_len);
        self.ip_id = self.ip_id.wrapping_add(1);
        if payload_len > 0 {
            self.unacked = 0;
            self.ack_due = None;
        }
        ip_len + seg_len
    }
}

/// A segment without payload
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// The opening SYN
    Syn,
    /// The answer to a SYN
    SynAck,
    /// A pure acknowledgment
    Ack,
    /// A keepalive probe (sequence number one below the next)
    Keepalive,
}

/// Writes a RST answering `seg` from an unknown peer (RFC 9293 §3.10.7.1); returns the IP
/// packet length (IPv4 with DF as Linux's, or IPv6 without a flow label)
pub(crate) fn write_reset(
    buf: &mut [u8],
    local: SocketAddr,
    remote: SocketAddr,
    seg: &tcp::Segment<'_>,
) -> usize {
    let (seq, ack, flags) = if seg.flags() & tcp::ACK != 0 {
        (seg.ack(), 0, tcp::RST)
    } else {
        let len = seg.payload().len() as u32 + u32::from(seg.flags() & (tcp::SYN | tcp::FIN) != 0);
        (0, seg.seq().wrapping_add(len), tcp::RST | tcp::ACK)
    };
    let h = tcp::Header {
        src_port: local.port(),
        dst_port: remote.port(),
        seq,
        ack,
        flags,
        window: 0,
        options: tcp::Options::default(),
    };
    let ip_len = outer::header_len(remote.ip());
    let tcp_len = tcp::write_header(&mut buf[ip_len..], &h);
    tcp::fill_checksum(&mut buf[ip_len..ip_len + tcp_len], local.ip(), remote.ip());
    let fields = Fields {
        id: 0,
        df: true,
        flow: 0,
    };
    outer::write_header(buf, local.ip(), remote.ip(), fields, tcp_len);
    ip_len + tcp_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::{ACK, PSH, RST, SYN, Segment};
    use crate::wire::{ipv4, ipv6, proto};
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};

    const C: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 12, 2), 50000));
    const S: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 12, 1), 18081));

    /// Parses the TCP segment of an IPv4 or IPv6 packet written by a `Conn`
    fn seg(buf: &[u8]) -> Segment<'_> {
        if buf[0] >> 4 == 6 {
            let p = ipv6::Packet::parse(buf).unwrap();
            assert_eq!(p.protocol(), proto::TCP);
            return Segment::parse(p.payload(), p.src(), p.dst()).unwrap();
        }
        let p = ipv4::Packet::parse(buf).unwrap();
        Segment::parse(p.payload(), p.src(), p.dst()).unwrap()
    }

    /// A segment from a Go peer: no options, window 65535
    fn go_segment(
        buf: &mut [u8],
        from: SocketAddr,
        to: SocketAddr,
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> usize {
        let h = tcp::Header {
            src_port: from.port(),
            dst_port: to.port(),
            seq,
            ack,
            flags,
            window: 65535,
            options: tcp::Options::default(),
        };
        let ip = outer::header_len(to.ip());
        let n = tcp::write_header(&mut buf[ip..], &h);
        buf[ip + n..ip + n + payload.len()].copy_from_slice(payload);
        tcp::fill_checksum(&mut buf[ip..ip + n + payload.len()], from.ip(), to.ip());
        let f = Fields {
            id: 0,
            df: false,
            flow: 0,
        };
        outer::write_header(buf, from.ip(), to.ip(), f, n + payload.len());
        ip + n + payload.len()
    }

    #[test]
    fn handshake_between_two_conns_negotiates_linux_options() {
        let t0 = Instant::now();
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let mut client = Conn::connect(C, S, 1460, t0, t0, &mut rng);
        let mut b = [0u8; 128];
        let n = client.write_control(&mut b, t0, Control::Syn);
        let syn = seg(&b[..n]);
        assert_eq!(syn.flags(), SYN);
        let o = syn.options();
        assert_eq!(
            (o.mss, o.window_scale, o.sack_permitted),
            (Some(1460), Some(9), true)
        );
        assert!(o.timestamps.is_some());
        assert_ne!(syn.seq(), 0, "random ISN");
        let mut server = Conn::accept(S, C, &syn, 1460, t0, t0, &mut rng);
        let mut b2 = [0u8; 128];
        let n2 = server.write_control(&mut b2, t0, Control::SynAck);
        let synack = seg(&b2[..n2]);
        assert_eq!(synack.flags(), SYN | ACK);
        assert_eq!(synack.ack(), syn.seq().wrapping_add(1));
        let later = t0 + Duration::from_millis(7);
        let r = client.handle_segment(later, &synack);
        assert_eq!(r.reply, Reply::Ack);
        assert_eq!(
            r.change,
            Some(Change::Connected {
                rtt: Duration::from_millis(7)
            })
        );
        assert_eq!(client.data_offset(), 52, "timestamps on every segment");
        // data: seq advances by the payload, ack carries the peer's next sequence number
        let syn_seq = syn.seq();
        let off = client.data_offset();
        let mut b3 = [0u8; 128];
        b3[off..off + 5].copy_from_slice(b"hello");
        let n = client.write_data_headers(&mut b3, later, 5);
        let data = seg(&b3[..n]);
        assert_eq!(data.flags(), PSH | ACK);
        assert_eq!(data.seq(), syn_seq.wrapping_add(1));
        assert_eq!(data.ack(), synack.seq().wrapping_add(1));
        let r = server.handle_segment(later, &data);
        assert!(r.deliver);
        assert_eq!(r.change, Some(Change::Established));
        assert_eq!(server.unacked, 5);
        let n2 = server.write_control(&mut b2, later, Control::Ack);
        assert_eq!(seg(&b2[..n2]).ack(), data.seq().wrapping_add(5));
        assert_eq!(server.unacked, 0);
    }

    #[test]
    fn accepts_the_go_client_isn_zero_no_options_data_before_ack() {
        let t0 = Instant::now();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let mut b = [0u8; 256];
        let n = go_segment(&mut b, C, S, 0, 0, SYN, &[]);
        let syn = seg(&b[..n]);
        let mut server = Conn::accept(S, C, &syn, 1460, t0, t0, &mut rng);
        let mut out = [0u8; 128];
        let m = server.write_control(&mut out, t0, Control::SynAck);
        let synack = seg(&out[..m]);
        let o = synack.options();
        assert_eq!(
            (o.window_scale, o.sack_permitted, o.timestamps),
            (None, false, None),
            "options mirrored"
        );
        assert_eq!(synack.ack(), 1);
        // a duplicate SYN gets the same SYN+ACK again
        assert_eq!(server.handle_segment(t0, &syn).reply, Reply::SynAck);
        // data before the ACK
        let n = go_segment(
            &mut b,
            C,
            S,
            1,
            synack.seq().wrapping_add(1),
            PSH | ACK,
            b"\x45\x00",
        );
        let r = server.handle_segment(t0, &seg(&b[..n]));
        assert!(r.deliver);
        assert_eq!(r.change, Some(Change::Established));
        assert_eq!(server.data_offset(), 40, "no timestamps with a Go peer");
    }

    #[test]
    fn rst_accepted_only_near_the_expected_sequence_number() {
        let t0 = Instant::now();
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let mut client = Conn::connect(C, S, 1460, t0, t0, &mut rng);
        let mut b = [0u8; 128];
        client.write_control(&mut b, t0, Control::Syn);
        let iss = client.iss;
        let n = go_segment(&mut b, S, C, 1000, iss.wrapping_add(1), SYN | ACK, &[]);
        assert!(matches!(
            client.handle_segment(t0, &seg(&b[..n])).change,
            Some(Change::Connected { .. })
        ));
        let n = go_segment(&mut b, S, C, 1000 + 5 * RST_WINDOW, 0, RST, &[]);
        assert_eq!(
            client.handle_segment(t0, &seg(&b[..n])).change,
            None,
            "blind RST far away"
        );
        let n = go_segment(&mut b, S, C, 1001, 0, RST, &[]);
        assert_eq!(
            client.handle_segment(t0, &seg(&b[..n])).change,
            Some(Change::Reset)
        );
    }

    #[test]
    fn keepalive_probe_is_answered_and_reset_for_unknown_peers() {
        let t0 = Instant::now();
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let mut b = [0u8; 128];
        let n = go_segment(&mut b, C, S, 77, 0, SYN, &[]);
        let mut server = Conn::accept(S, C, &seg(&b[..n]), 1460, t0, t0, &mut rng);
        let n = go_segment(&mut b, C, S, 78, 0, ACK, &[]);
        server.handle_segment(t0, &seg(&b[..n]));
        // a probe repeats the last sequence number
        let n = go_segment(&mut b, C, S, 77, 0, ACK, &[]);
        assert_eq!(server.handle_segment(t0, &seg(&b[..n])).reply, Reply::Ack);
        // a RST for data from an unknown peer takes its sequence number from the ACK field
        let n = go_segment(&mut b, C, S, 500, 1234, PSH | ACK, b"xyz");
        let mut out = [0u8; 64];
        let m = write_reset(&mut out, S, C, &seg(&b[..n]));
        let rst = seg(&out[..m]);
        assert_eq!((rst.flags(), rst.seq()), (RST, 1234));
    }

    const C6: SocketAddr = SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 2)),
        50000,
    );
    const S6: SocketAddr = SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x14, 0, 0, 0, 0, 2)),
        18081,
    );

    #[test]
    fn ipv6_handshake_data_reset_and_packet_too_big_checks() {
        let t0 = Instant::now();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let mut client = Conn::connect(C6, S6, 1440, t0, t0, &mut rng);
        let mut b = [0u8; 160];
        let n = client.write_control(&mut b, t0, Control::Syn);
        let p = ipv6::Packet::parse(&b[..n]).unwrap();
        assert_eq!((p.hop_limit(), p.protocol()), (64, proto::TCP));
        let flow = ipv6::flow_label(&b);
        assert_ne!(flow, 0, "a random flow label");
        let syn = seg(&b[..n]);
        let mut server = Conn::accept(S6, C6, &syn, 1440, t0, t0, &mut rng);
        let mut b2 = [0u8; 160];
        let n2 = server.write_control(&mut b2, t0, Control::SynAck);
        let r = client.handle_segment(t0, &seg(&b2[..n2]));
        assert!(matches!(r.change, Some(Change::Connected { .. })));
        assert_eq!(client.data_offset(), 40 + 20 + 12);
        let mut b3 = [0u8; 200];
        let off = client.data_offset();
        b3[off..off + 5].copy_from_slice(b"hello");
        let n3 = client.write_data_headers(&mut b3, t0, 5);
        assert_eq!(
            ipv6::flow_label(&b3),
            flow,
            "the same label on every packet"
        );
        let data = seg(&b3[..n3]);
        assert!(server.handle_segment(t0, &data).deliver);
        // a Packet Too Big must quote what is still unacknowledged
        let report = |seq| Report {
            local: C6,
            remote: S6,
            seq,
            mtu: 1280,
        };
        assert!(client.quotes_unacked(&report(data.seq())));
        assert!(!client.quotes_unacked(&report(data.seq().wrapping_add(5))));
        assert!(!client.quotes_unacked(&Report {
            local: S6,
            ..report(data.seq())
        }));
        assert!(client.lower_frame_size(1280, 1500));
        assert!(!client.lower_frame_size(1400, 1500), "never raised");
        assert_eq!(client.frame_size(1500), 1280);
        // a RST to an unknown IPv6 peer
        let mut out = [0u8; 100];
        let m = write_reset(&mut out, S6, C6, &data);
        let rst = seg(&out[..m]);
        assert_eq!((rst.flags(), rst.seq()), (RST, data.ack()));
    }
}
