//! A strict TCP connection tracker over IPv4 and IPv6, modelled on Linux
//! `nf_conntrack_proto_tcp.c` with `nf_conntrack_tcp_loose=0`, `nf_conntrack_tcp_be_liberal=0`
//! and INVALID packets dropped
//!
//! What is faithful: a connection must start with a SYN (no mid-stream pickup); the state table
//! for SYN, SYN+ACK, ACK and RST in SYN_SENT, SYN_RECV and ESTABLISHED; the resynchronisation on
//! a SYN+ACK that answers an ignored SYN (a client that restarts on the same port); and
//! `tcp_in_window` with each direction's `td_end`, `td_maxend`, `td_maxwin` and window scale (RFC
//! 7323: on only when both SYNs carry the option): a segment is INVALID when its sequence number
//! is beyond the sender's `td_maxend` (the receiver's last ACK plus its window), when it ends
//! before the receiver's window, or when its ACK is beyond the peer's `td_end` or more than
//! `max(td_maxwin, 66000)` behind it.
//!
//! What is simplified: no SACK blocks (our FakeTCP sends none), no FIN states (FakeTCP never
//! closes; a FIN is only window-checked), no timeouts, simultaneous open is INVALID, and a RST
//! that passes the window check forgets the entry at once (Linux keeps it 10 s in CLOSE; a SYN
//! reopens it either way). Checks are the pre-5.19 ones: every failure is INVALID.

use crate::drops::ConntrackInvalid;
use etherparse::{TcpHeaderSlice, TcpOptionElement};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// `MAXACKWINCONST` of nf_conntrack_proto_tcp.c: the smallest window an ACK may lag behind
const MAX_ACK_WIN_CONST: u32 = 66000;
/// Largest window scale honoured (RFC 7323 §2.3)
const MAX_WSCALE: u8 = 14;
/// The initiator's direction
const ORIGINAL: usize = 0;
/// The responder's direction
const REPLY: usize = 1;

/// The TCP fields conntrack looks at
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack_seq: u32,
    syn: bool,
    ack: bool,
    rst: bool,
    fin: bool,
    window: u16,
    wscale: Option<u8>,
    len: u32,
}

impl Segment {
    /// The segment `tcp` (a whole TCP segment, header and data) from `src` to `dst`, over
    /// IPv4 or IPv6
    pub(crate) fn parse(src: IpAddr, dst: IpAddr, tcp: &[u8]) -> Option<Self> {
        let h = TcpHeaderSlice::from_slice(tcp).ok()?;
        let wscale = h.options_iterator().find_map(|o| match o {
            Ok(TcpOptionElement::WindowScale(s)) => Some(s),
            _ => None,
        });
        Some(Self {
            src: SocketAddr::new(src, h.source_port()),
            dst: SocketAddr::new(dst, h.destination_port()),
            seq: h.sequence_number(),
            ack_seq: h.acknowledgment_number(),
            syn: h.syn(),
            ack: h.ack(),
            rst: h.rst(),
            fin: h.fin(),
            window: h.window_size(),
            wscale,
            len: (tcp.len() - h.slice().len()) as u32,
        })
    }

    /// `seq + len`, counting SYN and FIN (`segment_seq_plus_len`)
    fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.len)
            .wrapping_add(u32::from(self.syn))
            .wrapping_add(u32::from(self.fin))
    }

    /// The row of the state table (`get_conntrack_index`)
    fn index(&self) -> Index {
        match (self.rst, self.syn, self.fin, self.ack) {
            (true, ..) => Index::Rst,
            (false, true, _, false) => Index::Syn,
            (false, true, _, true) => Index::SynAck,
            (false, false, true, _) => Index::Fin,
            (false, false, false, true) => Index::Ack,
            (false, false, false, false) => Index::None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Index {
    Syn,
    SynAck,
    Fin,
    Ack,
    Rst,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Created by this SYN, not yet accepted
    New,
    SynSent,
    SynRecv,
    Established,
}

/// What the state table says about a segment
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    To(State),
    /// Let it through untracked (sIG)
    Ignore,
    /// INVALID (sIV)
    Invalid,
    /// The connection is reset
    Close,
}

/// `tcp_conntracks[dir][index][state]` for the modelled states
fn next(state: State, dir: usize, index: Index) -> Next {
    use State::*;
    match (index, dir, state) {
        (Index::Rst, ..) => Next::Close,
        (Index::None, ..) => Next::Invalid,
        (Index::Syn, ORIGINAL, New | SynSent) => Next::To(SynSent),
        (Index::Syn, ORIGINAL, _) => Next::Ignore,
        (Index::SynAck, ORIGINAL, SynRecv) => Next::To(SynRecv),
        (Index::SynAck, REPLY, SynSent) => Next::To(SynRecv),
        (Index::SynAck, REPLY, SynRecv | Established) => Next::Ignore,
        (Index::Ack, ORIGINAL, SynRecv | Established) => Next::To(Established),
        (Index::Ack, REPLY, SynSent) => Next::Ignore,
        (Index::Ack, REPLY, s @ (SynRecv | Established)) => Next::To(s),
        (Index::Fin, _, s @ (SynRecv | Established)) => Next::To(s),
        _ => Next::Invalid,
    }
}

/// One direction's window tracking (`struct ip_ct_tcp_state`)
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    td_end: u32,
    td_maxend: u32,
    td_maxwin: u32,
    td_scale: u8,
    /// The SYN carried a window scale option (`IP_CT_TCP_FLAG_WINDOW_SCALE`)
    wscale_ok: bool,
}

impl Seen {
    /// `tcp_options`: what the SYN offered
    fn take_options(&mut self, wscale: Option<u8>) {
        self.wscale_ok = wscale.is_some();
        self.td_scale = wscale.unwrap_or(0).min(MAX_WSCALE);
    }
}

/// An ignored segment remembered for resynchronisation (`last_index`, `last_dir`, ...)
#[derive(Debug, Clone, Copy)]
struct Ignored {
    index: Index,
    dir: usize,
    end: u32,
    win: u16,
    wscale: Option<u8>,
}

#[derive(Debug, Clone)]
struct Entry {
    state: State,
    seen: [Seen; 2],
    last: Option<Ignored>,
}

/// `a` is before `b` in sequence space
fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` is after `b` in sequence space
fn after(a: u32, b: u32) -> bool {
    before(b, a)
}

impl Entry {
    /// `tcp_new`: an entry for the SYN `seg`
    fn new(seg: &Segment) -> Self {
        let mut orig = Seen {
            td_end: seg.end(),
            td_maxwin: u32::from(seg.window).max(1),
            ..Seen::default()
        };
        orig.td_maxend = orig.td_end;
        orig.take_options(seg.wscale);
        Self {
            state: State::New,
            seen: [orig, Seen::default()],
            last: None,
        }
    }

    /// `tcp_in_window`: checks `seg` from `dir` against the windows and updates them
    fn in_window(&mut self, dir: usize, seg: &Segment) -> Result<(), ConntrackInvalid> {
        let state = self.state;
        let [a, b] = &mut self.seen;
        let (sender, receiver) = if dir == ORIGINAL { (a, b) } else { (b, a) };
        let (mut seq, mut ack) = (seg.seq, seg.ack_seq);
        let mut win = u32::from(seg.window);
        let mut end = seg.end();
        if sender.td_maxwin == 0 {
            if seg.syn {
                // the SYN+ACK: initialise the responder
                sender.td_end = end;
                sender.td_maxend = end;
                sender.td_maxwin = win.max(1);
                sender.take_options(seg.wscale);
                if !(sender.wscale_ok && receiver.wscale_ok) {
                    sender.td_scale = 0;
                    receiver.td_scale = 0;
                }
                if !seg.ack {
                    return Ok(());
                }
            } else {
                sender.td_end = end;
                sender.td_maxwin = (win << sender.td_scale).max(1);
                sender.td_maxend = end.wrapping_add(sender.td_maxwin);
                if receiver.td_maxwin == 0 {
                    receiver.td_end = sender.td_end;
                    receiver.td_maxend = sender.td_end;
                }
            }
        } else if ((state == State::SynSent && dir == ORIGINAL)
            || (state == State::SynRecv && dir == REPLY))
            && after(end, sender.td_end)
        {
            // a retransmitted SYN (or SYN+ACK) with a new ISN restarts the direction
            sender.td_end = end;
            sender.td_maxend = end;
            sender.td_maxwin = win.max(1);
            sender.take_options(seg.wscale);
        }
        if !seg.ack || (seg.rst && ack == 0) {
            ack = receiver.td_end;
        }
        if seg.rst && seq == 0 && state == State::SynSent {
            seq = sender.td_end;
            end = sender.td_end;
        }
        if seq == end && (!seg.rst || (seq == 0 && state == State::SynSent)) {
            // no data: only the ACK is checked
            seq = sender.td_end;
            end = sender.td_end;
        }
        let max_ack_window = sender.td_maxwin.max(MAX_ACK_WIN_CONST);
        if !before(seq, sender.td_maxend.wrapping_add(1)) {
            return Err(ConntrackInvalid::SeqOverUpperBound);
        }
        if !after(
            end,
            sender
                .td_end
                .wrapping_sub(receiver.td_maxwin)
                .wrapping_sub(1),
        ) {
            return Err(ConntrackInvalid::SeqUnderLowerBound);
        }
        if !before(ack, receiver.td_end.wrapping_add(1)) {
            return Err(ConntrackInvalid::AckOverUpperBound);
        }
        if !after(
            ack,
            receiver.td_end.wrapping_sub(max_ack_window).wrapping_sub(1),
        ) {
            return Err(ConntrackInvalid::AckUnderLowerBound);
        }
        if !seg.syn {
            win <<= sender.td_scale;
        }
        sender.td_maxwin = sender.td_maxwin.max(win);
        if after(end, sender.td_end) {
            sender.td_end = end;
        }
        if receiver.td_maxwin != 0 && after(end, sender.td_maxend) {
            receiver.td_maxwin = receiver
                .td_maxwin
                .wrapping_add(end.wrapping_sub(sender.td_maxend));
        }
        if after(ack.wrapping_add(win), receiver.td_maxend.wrapping_sub(1)) {
            receiver.td_maxend = ack.wrapping_add(win).wrapping_add(u32::from(win == 0));
        }
        Ok(())
    }

    /// Handles an ignored segment: resynchronises on a SYN+ACK answering an ignored SYN (true:
    /// go on as SYN_SENT -> SYN_RECV), otherwise remembers it
    fn ignore(&mut self, dir: usize, index: Index, seg: &Segment) -> bool {
        if let Some(l) = self.last.filter(|l| {
            index == Index::SynAck && l.index == Index::Syn && l.dir != dir && seg.ack_seq == l.end
        }) {
            let mut client = Seen {
                td_end: l.end,
                td_maxend: l.end,
                td_maxwin: u32::from(l.win).max(1),
                ..Seen::default()
            };
            client.take_options(l.wscale);
            self.seen[l.dir] = client;
            self.seen[dir] = Seen::default();
            self.state = State::SynSent;
            return true;
        }
        let wscale = if index == Index::Syn && dir == ORIGINAL {
            seg.wscale
        } else {
            None
        };
        self.last = Some(Ignored {
            index,
            dir,
            end: seg.end(),
            win: seg.window,
            wscale,
        });
        false
    }
}

/// The tracker: entries keyed by (initiator, responder)
#[derive(Debug, Default)]
pub(crate) struct Conntrack {
    entries: BTreeMap<(SocketAddr, SocketAddr), Entry>,
}

impl Conntrack {
    /// Judges one TCP segment (either direction); `Err` means INVALID, to be dropped
    pub(crate) fn check(&mut self, seg: &Segment) -> Result<(), ConntrackInvalid> {
        let (key, dir) = if self.entries.contains_key(&(seg.src, seg.dst)) {
            ((seg.src, seg.dst), ORIGINAL)
        } else if self.entries.contains_key(&(seg.dst, seg.src)) {
            ((seg.dst, seg.src), REPLY)
        } else if seg.index() == Index::Syn {
            self.entries.insert((seg.src, seg.dst), Entry::new(seg));
            ((seg.src, seg.dst), ORIGINAL)
        } else {
            return Err(ConntrackInvalid::NoEntry);
        };
        let entry = self.entries.get_mut(&key).expect("found or inserted above");
        let index = seg.index();
        let next = match next(entry.state, dir, index) {
            Next::Invalid => return Err(ConntrackInvalid::State),
            Next::Ignore => {
                if !entry.ignore(dir, index, seg) {
                    return Ok(());
                }
                Next::To(State::SynRecv)
            }
            n => n,
        };
        if let Err(why) = entry.in_window(dir, seg) {
            if entry.state == State::New {
                self.entries.remove(&key);
            }
            return Err(why);
        }
        match next {
            Next::To(s) => {
                entry.state = s;
                entry.last = None;
            }
            _ => {
                self.entries.remove(&key);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    const C: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 12, 2), 50000));
    const S: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(198, 18, 14, 2), 443));

    fn seg(
        from_client: bool,
        seq: u32,
        ack: Option<u32>,
        syn: bool,
        len: u32,
        window: u16,
        wscale: Option<u8>,
    ) -> Segment {
        let (src, dst) = if from_client { (C, S) } else { (S, C) };
        Segment {
            src,
            dst,
            seq,
            ack_seq: ack.unwrap_or(0),
            syn,
            ack: ack.is_some(),
            rst: false,
            fin: false,
            window,
            wscale,
            len,
        }
    }

    /// A handshake: client ISN 1000, server ISN 5000, both offer `wscale`
    fn handshake(wscale: Option<u8>) -> Conntrack {
        let mut ct = Conntrack::default();
        ct.check(&seg(true, 1000, None, true, 0, 64240, wscale))
            .expect("SYN");
        ct.check(&seg(false, 5000, Some(1001), true, 0, 65160, wscale))
            .expect("SYN+ACK");
        ct.check(&seg(true, 1001, Some(5001), false, 0, 502, None))
            .expect("ACK");
        ct
    }

    #[test]
    fn no_pickup_without_a_handshake() {
        let mut ct = Conntrack::default();
        assert_eq!(
            ct.check(&seg(true, 1, Some(1), false, 100, 1000, None)),
            Err(ConntrackInvalid::NoEntry)
        );
        ct.check(&seg(true, 1000, None, true, 0, 64240, None))
            .expect("SYN");
        // ACK from the initiator before the SYN+ACK
        assert_eq!(
            ct.check(&seg(true, 1001, Some(5001), false, 0, 100, None)),
            Err(ConntrackInvalid::State)
        );
    }

    #[test]
    fn one_way_data_needs_acks() {
        let mut ct = handshake(Some(7));
        // the server's SYN+ACK window (65160, not scaled on a SYN) is all the client may send
        let mut seq: u32 = 1001;
        while seq.wrapping_sub(1001) + 1400 <= 65160 {
            ct.check(&seg(true, seq, Some(5001), false, 1400, 502, None))
                .expect("in window");
            seq += 1400;
        }
        ct.check(&seg(true, seq, Some(5001), false, 1400, 502, None))
            .expect("starts inside the window");
        seq += 1400;
        assert_eq!(
            ct.check(&seg(true, seq, Some(5001), false, 1400, 502, None)),
            Err(ConntrackInvalid::SeqOverUpperBound)
        );
        // a pure ACK with a scaled window opens it again
        ct.check(&seg(false, 5001, Some(seq), false, 0, 0x7fff, None))
            .expect("pure ACK");
        ct.check(&seg(true, seq, Some(5001), false, 1400, 502, None))
            .expect("window reopened");
    }

    #[test]
    fn scaling_needs_both_syns() {
        let mut ct = Conntrack::default();
        ct.check(&seg(true, 1000, None, true, 0, 64240, Some(7)))
            .expect("SYN");
        ct.check(&seg(false, 5000, Some(1001), true, 0, 65160, None))
            .expect("SYN+ACK without scaling");
        ct.check(&seg(true, 1001, Some(5001), false, 0, 502, None))
            .expect("ACK");
        // the client's window 502 is not scaled: the server may start a segment up to 502 bytes
        // past the ACK (64256 if it were scaled by 7)
        ct.check(&seg(false, 5001, Some(1001), false, 1000, 100, None))
            .expect("starts inside");
        assert_eq!(
            ct.check(&seg(false, 6001, Some(1001), false, 10, 100, None)),
            Err(ConntrackInvalid::SeqOverUpperBound)
        );
    }

    #[test]
    fn acks_must_be_for_seen_data() {
        let mut ct = handshake(Some(7));
        assert_eq!(
            ct.check(&seg(false, 5001, Some(1001 + 10), false, 0, 100, None)),
            Err(ConntrackInvalid::AckOverUpperBound)
        );
        assert_eq!(
            ct.check(&seg(
                true,
                1001,
                Some(5001u32.wrapping_sub(70000)),
                false,
                0,
                100,
                None
            )),
            Err(ConntrackInvalid::AckUnderLowerBound)
        );
    }

    #[test]
    fn resync_after_a_client_restart_on_the_same_port() {
        let mut ct = handshake(Some(7));
        ct.check(&seg(true, 9000, None, true, 0, 64240, Some(7)))
            .expect("SYN ignored, let through");
        ct.check(&seg(false, 7000, Some(9001), true, 0, 65160, Some(7)))
            .expect("SYN+ACK resynchronises");
        ct.check(&seg(true, 9001, Some(7001), false, 0, 502, None))
            .expect("ACK");
        ct.check(&seg(true, 9001, Some(7001), false, 1000, 502, None))
            .expect("data on the new connection");
        let far = 9001 + 10_000_000;
        assert_eq!(
            ct.check(&seg(true, far, Some(7001), false, 1000, 502, None)),
            Err(ConntrackInvalid::SeqOverUpperBound)
        );
    }
}
