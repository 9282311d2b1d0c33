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

use crate::wire::{ipv4, proto, tcp};
use rand_core::RngCore;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// TTL of every FakeTCP packet (Linux `ip_default_ttl`)
const TTL: u8 = 64;
/// Window scale we offer (Linux with default buffers offers 7)
const WINDOW_SCALE: u8 = 7;
/// Window field of a SYN (Linux: 64240 = 44 segments of 1460)
const SYN_WINDOW: u16 = 64240;
/// Window field of a SYN+ACK (Linux: 65160 = 45 segments of 1448)
const SYN_ACK_WINDOW: u16 = 65160;
/// Window field once scaling is on: 32767 << 7 is about 4 MiB
const SCALED_WINDOW: u16 = 0x7fff;
/// A RST is accepted when its sequence number is this close to what we expect (RFC 5961 §3.2
/// asks for an exact match; the window keeps reordering from hiding a real reset)
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
}

/// One FakeTCP connection
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    /// Our address
    pub(crate) local: SocketAddrV4,
    /// The peer's address
    pub(crate) remote: SocketAddrV4,
    /// Handshake state
    pub(crate) state: State,
    iss: u32,
    snd_nxt: u32,
    irs: u32,
    rcv_nxt: u32,
    ip_id: u16,
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
}

/// `a` is after `b` in sequence space (RFC 9293 §3.4)
#[inline]
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Conn {
    fn new(
        local: SocketAddrV4,
        remote: SocketAddrV4,
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
            irs: 0,
            rcv_nxt: 0,
            ip_id: rng.next_u32() as u16,
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
        }
    }

    /// Client: a new connection about to send its SYN (random ISN)
    pub(crate) fn connect(
        local: SocketAddrV4,
        remote: SocketAddrV4,
        mss: u16,
        now: Instant,
        epoch: Instant,
        rng: &mut impl RngCore,
    ) -> Self {
        Self::new(local, remote, State::SynSent, mss, now, epoch, rng)
    }

    /// Server: a connection for a SYN just received; answer with [`Reply::SynAck`]
    pub(crate) fn accept(
        local: SocketAddrV4,
        remote: SocketAddrV4,
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

    /// Records the peer's SYN: its ISN and the options it offers
    fn take_syn(&mut self, syn: &tcp::Segment<'_>) {
        let o = syn.options();
        self.irs = syn.seq();
        self.rcv_nxt = syn.seq().wrapping_add(1);
        self.opts = Negotiated {
            timestamps: o.timestamps.is_some(),
            scaling: o.window_scale.is_some(),
        };
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
    }

    /// Whether inner frames may be sent
    pub(crate) fn can_send(&self) -> bool {
        self.state != State::SynSent
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
        };
        if flags & tcp::RST != 0 {
            let ok = match self.state {
                State::SynSent => flags & tcp::ACK != 0 && seg.ack() == self.iss.wrapping_add(1),
                _ => {
                    seg.seq()
                        .wrapping_sub(self.rcv_nxt)
                        .wrapping_add(RST_WINDOW)
                        <= 2 * RST_WINDOW
                }
            };
            if ok {
                self.last_rx = now;
                r.change = Some(Change::Reset);
            }
            return r;
        }
        if flags & tcp::SYN != 0 {
            if flags & tcp::ACK == 0 {
                // a SYN on a known connection: the peer restarted or our SYN+ACK was lost
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
                    self.state = State::Established;
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
            State::SynSent => return r,
            State::SynReceived => {
                self.state = State::Established;
                self.snd_nxt = self.iss.wrapping_add(1);
                r.change = Some(Change::Established);
            }
            State::Established => {}
        }
        self.last_rx = now;
        if let (true, Some((val, _))) = (self.opts.timestamps, seg.options().timestamps) {
            self.ts_recent = val;
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

    /// Our timestamp clock: milliseconds since the machine started, from a random offset
    fn ts_val(&self, now: Instant) -> u32 {
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

    /// Bytes of IPv4 and TCP headers in front of a data payload
    pub(crate) fn data_offset(&self) -> usize {
        ipv4::HEADER_LEN + tcp::HEADER_LEN + if self.opts.timestamps { 12 } else { 0 }
    }

    fn window_field(&self) -> u16 {
        if self.opts.scaling {
            SCALED_WINDOW
        } else {
            u16::MAX
        }
    }

    /// Writes IPv4 and TCP headers around the `payload_len` bytes already at
    /// `buf[data_offset()..]`, advancing the sequence number; returns the IPv4 packet length
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
                    timestamps: self
                        .opts
                        .timestamps
                        .then(|| (self.ts_val(now), self.ts_recent)),
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
        self.last_tx = now;
        if matches!(kind, Control::Ack | Control::Keepalive) || kind == Control::SynAck {
            self.unacked = 0;
            self.ack_due = None;
        }
        self.write_packet(buf, &h, 0)
    }

    fn write_packet(&mut self, buf: &mut [u8], h: &tcp::Header, payload_len: usize) -> usize {
        let tcp_len = tcp::write_header(&mut buf[ipv4::HEADER_LEN..], h);
        debug_assert!(payload_len == 0 || tcp_len + ipv4::HEADER_LEN == self.data_offset());
        let seg_len = tcp_len + payload_len;
        let (ip, seg) = buf.split_at_mut(ipv4::HEADER_LEN);
        tcp::fill_checksum(&mut seg[..seg_len], *self.local.ip(), *self.remote.ip());
        ipv4::write_header(
            ip,
            &ipv4::Header {
                src: *self.local.ip(),
                dst: *self.remote.ip(),
                protocol: proto::TCP,
                id: self.ip_id,
                ttl: TTL,
                flags_offset: 0,
                payload_len: seg_len,
            },
        );
        self.ip_id = self.ip_id.wrapping_add(1);
        if payload_len > 0 {
            self.unacked = 0;
            self.ack_due = None;
        }
        ipv4::HEADER_LEN + seg_len
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

/// Writes a RST answering `seg` from an unknown peer (RFC 9293 §3.10.7.1); returns the IPv4 length
pub(crate) fn write_reset(
    buf: &mut [u8],
    local: SocketAddrV4,
    remote: SocketAddrV4,
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
    let tcp_len = tcp::write_header(&mut buf[ipv4::HEADER_LEN..], &h);
    tcp::fill_checksum(
        &mut buf[ipv4::HEADER_LEN..ipv4::HEADER_LEN + tcp_len],
        *local.ip(),
        *remote.ip(),
    );
    ipv4::write_header(
        buf,
        &ipv4::Header {
            src: *local.ip(),
            dst: *remote.ip(),
            protocol: proto::TCP,
            id: 0,
            ttl: TTL,
            flags_offset: ipv4::FLAG_DF,
            payload_len: tcp_len,
        },
    );
    ipv4::HEADER_LEN + tcp_len
}
