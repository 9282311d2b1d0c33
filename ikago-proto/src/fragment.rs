//! IPv4 and IPv6 reassembly (bounded, expiring), IPv4 fragmentation, and IPv6 fragmentation by
//! the sender
//!
//! [`Reassembler`] rebuilds datagrams from their fragments under caps on datagrams in progress and
//! bytes buffered, and forgets incomplete ones after a timeout. Unlike the Go original's
//! defragmenter, it keys datagrams by (scope, source, destination, protocol, id), accounts for
//! duplicates and overlaps (first arrival wins), rejects inconsistent fragments and removes what it
//! finishes or expires. IPv6 fragments ([`Reassembler::handle_fragment6`]) share the caps and the
//! buffers; an overlap drops the whole IPv6 datagram (RFC 5722) and a non-final fragment under
//! [`MIN_FRAGMENT6`] bytes is refused.
//!
//! [`fragment`] splits a packet larger than an MTU into RFC 791 fragments, copying only the
//! options marked "copied" into the fragments after the first; [`fragment6`] splits an IPv6
//! packet with fragment headers, as only its sender may (the tunnel's own FakeTCP frames).
//!
//! Both machines use them on their hot path; tools that read captures use the same reassembly.
//! Neither panics on any packet that [`Packet::parse`] accepted.
//!
//! ```
//! use ikago_proto::ReassemblyLimits;
//! use ikago_proto::fragment::{Reassembler, fragment};
//! use ikago_proto::wire::{ipv4, proto};
//! use std::time::Instant;
//!
//! let mut packet = vec![0u8; 1500];
//! let header = ipv4::Header {
//!     src: [198, 18, 11, 2].into(),
//!     dst: [198, 18, 13, 2].into(),
//!     protocol: proto::UDP,
//!     id: 9,
//!     ttl: 64,
//!     flags_offset: 0,
//!     payload_len: 1480,
//! };
//! ipv4::write_header(&mut packet, &header);
//! let whole = ipv4::Packet::parse(&packet).unwrap();
//! let mut pieces = Vec::new();
//! fragment(&whole, 576, |h, chunk| pieces.push([h, chunk].concat()));
//! assert_eq!(pieces.len(), 3);
//!
//! let mut r = Reassembler::new(ReassemblyLimits::default());
//! let now = Instant::now();
//! let mut done = None;
//! for p in pieces.iter().rev() {
//!     let p = ipv4::Packet::parse(p).unwrap();
//!     if let Some(d) = r.handle_fragment(now, 0, &p).unwrap() {
//!         done = Some(d.to_vec());
//!     }
//! }
//! assert_eq!(done.unwrap(), packet);
//! ```

use crate::config::ReassemblyLimits;
use crate::stats::DropReason;
use crate::wire::checksum;
use crate::wire::ipv4::{self, FLAG_MF, OFFSET_MASK, Packet};
use crate::wire::ipv6;
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

/// Longest IPv4 header (IHL 15)
const MAX_HEADER_LEN: usize = 60;
/// Room kept in front of each IPv4 datagram's payload, so that the rebuilt packet is contiguous
const HEADROOM: usize = MAX_HEADER_LEN;
/// Longest unfragmentable part of an IPv6 packet (its header and extension headers before the
/// fragment header), and the room kept in front of an IPv6 datagram's payload
const HEADROOM6: usize = ipv6::HEADER_LEN + ipv6::MAX_CHAIN_LEN;
/// Smallest payload of a non-final IPv6 fragment accepted: every IPv6 link carries 1280-byte
/// packets, so only a resource attack cuts a datagram finer
pub const MIN_FRAGMENT6: usize = 256;
/// Per-datagram buffers kept for reuse once their datagram is done
const POOL_LEN: usize = 8;
/// The reserved flag bit, kept as it is
const FLAG_RESERVED: u16 = 0x8000;
/// The "copied" bit of an option type (RFC 791): the option goes into every fragment
const OPTION_COPIED: u8 = 0x80;
/// Option type "end of option list"
const OPTION_EOL: u8 = 0;
/// Option type "no operation", a single byte
const OPTION_NOP: u8 = 1;

/// What keeps the fragments of one datagram together
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    /// The caller's context (device, peer)
    scope: u32,
    src: IpAddr,
    dst: IpAddr,
    /// IPv4: the protocol; IPv6: 0 (its fragments are keyed without it, RFC 8200 §4.5)
    protocol: u8,
    id: u32,
}

/// One fragment as the shared reassembly sees it
struct Piece<'a> {
    /// IPv4: the header; IPv6: the unfragmentable part (up to the fragment header)
    header: &'a [u8],
    /// The fragment's data
    payload: &'a [u8],
    /// Offset of the data in the datagram's payload
    offset: usize,
    /// Whether more fragments follow
    more: bool,
    /// IPv6: where the next-header field naming the fragment header is, and the fragment
    /// header's next header (the rebuilt packet names it there)
    v6: Option<(usize, u8)>,
}

/// Reusable storage of one datagram, recycled through [`Reassembler`]'s pool
#[derive(Default)]
struct Slot {
    /// [`HEADROOM`] bytes for the header, then the payload up to the highest end seen (holes are
    /// zeroes)
    buf: Vec<u8>,
    /// One bit per 8-byte block of payload, set once the block has arrived
    ///
    /// Offsets are multiples of 8 and only the final fragment may end off a block boundary (at the
    /// total length, which nothing may pass), so blocks account exactly for the bytes received.
    blocks: Vec<u64>,
}

/// One datagram in progress
struct Entry {
    key: Key,
    /// When it is dropped if still incomplete (`None`: the timeout is too far to represent)
    expires: Option<Instant>,
    /// Bytes kept in front of the payload in `slot.buf` ([`HEADROOM`] or [`HEADROOM6`])
    headroom: usize,
    /// IPv6: the next-header field and value of the rebuilt packet (from the first fragment)
    v6: Option<(usize, u8)>,
    /// The header of the fragment at offset 0, once it arrived
    header: [u8; HEADROOM6],
    /// Length of `header`; 0 until the fragment at offset 0 arrived
    header_len: usize,
    /// Payload length, known once the final fragment (MF clear) arrived
    total: Option<usize>,
    /// Highest payload end received; `slot.buf.len() == headroom + end`
    end: usize,
    /// Blocks received (bits set in `slot.blocks`)
    covered: usize,
    slot: Slot,
}

impl Entry {
    /// Whether the datagram is past its timeout at `now`
    fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }
}

/// Bounded, expiring IPv4 reassembly
///
/// Create one per context that receives fragments (e.g. per machine, with the device or peer as
/// the scope), feed it every fragment with [`handle_fragment`](Self::handle_fragment), and include
/// [`poll_timeout`](Self::poll_timeout) in the machine's deadline, calling
/// [`handle_timeout`](Self::handle_timeout) when it passes. A lookup scans the datagrams in
/// progress, which [`ReassemblyLimits::max_entries`] bounds. Memory is bounded by
/// [`ReassemblyLimits::max_bytes`] plus a small pool of recycled buffers.
pub struct Reassembler {
    limits: ReassemblyLimits,
    entries: Vec<Entry>,
    /// Buffers of finished datagrams, for reuse
    pool: Vec<Slot>,
    /// The datagram returned by the last completion, recycled at the next call
    done: Option<Slot>,
    /// Sum of the buffer sizes of `entries`
    bytes: usize,
    /// Datagrams expired in passing (key reuse, caps) and not yet reported by `handle_timeout`
    expired: usize,
    /// The earliest expiry among those, so that `poll_timeout` asks for a prompt report
    expired_at: Option<Instant>,
}

impl fmt::Debug for Reassembler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reassembler")
            .field("limits", &self.limits)
            .field("datagrams", &self.entries.len())
            .field("bytes", &self.bytes)
            .field("expired", &self.expired)
            .finish_non_exhaustive()
    }
}

impl Reassembler {
    /// An empty reassembler bounded by `limits`
    ///
    /// Call once when the machine is built; buffers are allocated on demand and then recycled.
    pub fn new(limits: ReassemblyLimits) -> Self {
        Self {
            limits,
            entries: Vec::new(),
            pool: Vec::new(),
            done: None,
            bytes: 0,
            expired: 0,
            expired_at: None,
        }
    }

    /// Feeds one fragment and returns the whole datagram if this fragment completes it
    ///
    /// Call for every validated packet whose MF flag is set or whose offset is non-zero (a
    /// non-fragment is accepted too and comes back at once, rebuilt). `scope` keeps reassembly
    /// contexts apart (a device index, a peer id): datagrams are keyed by (scope, source,
    /// destination, protocol, id).
    ///
    /// Returns `Ok(Some(packet))` when the datagram is complete: the header of the fragment at
    /// offset 0 (options kept) with MF and offset cleared (DF and the reserved bit as they were),
    /// total length and checksum rebuilt, followed by the payload. The slice borrows an internal
    /// buffer and is valid until the next call. Returns `Ok(None)` while the datagram is
    /// incomplete. Where fragments overlap, the bytes that arrived first are kept.
    ///
    /// # Errors
    /// - [`DropReason::FragmentInvalid`]: a fragment with MF set whose payload length is not a
    ///   multiple of 8, one that ends past 65535 bytes, or one that conflicts with the final length
    ///   (a second final fragment with another end, data past the end). The whole datagram is
    ///   dropped with it.
    /// - [`DropReason::FragmentLimit`]: a new datagram while `max_entries` are in progress, or a
    ///   fragment that would take the buffered bytes past `max_bytes` (a datagram that can no
    ///   longer grow is dropped with it). Expired datagrams are freed first.
    pub fn handle_fragment(
        &mut self,
        now: Instant,
        scope: u32,
        packet: &Packet<'_>,
    ) -> Result<Option<&[u8]>, DropReason> {
        let key = Key {
            scope,
            src: packet.src().into(),
            dst: packet.dst().into(),
            protocol: packet.protocol(),
            id: u32::from(packet.id()),
        };
        let piece = Piece {
            header: packet.header(),
            payload: packet.payload(),
            offset: packet.fragment_offset(),
            more: packet.more_fragments(),
            v6: None,
        };
        self.handle(now, key, &piece)
    }

    /// Feeds one IPv6 fragment and returns the whole packet if this fragment completes it
    ///
    /// As [`handle_fragment`](Self::handle_fragment), for a validated IPv6 packet with a fragment
    /// header; datagrams are keyed by (scope, source, destination, id). The rebuilt packet is the
    /// first fragment's unfragmentable part (header and extension headers before the fragment
    /// header) naming the fragment header's next header, with its payload length rebuilt,
    /// followed by the reassembled data. Packets are bounded to 65535 bytes in all.
    ///
    /// # Errors
    /// As [`handle_fragment`](Self::handle_fragment), and:
    /// - [`DropReason::FragmentOverlap`]: a fragment overlapping data already received; the whole
    ///   datagram is dropped (RFC 5722).
    /// - [`DropReason::FragmentTiny`]: a non-final fragment carrying fewer than
    ///   [`MIN_FRAGMENT6`] bytes (the datagram is dropped with it).
    /// - [`DropReason::Malformed`]: a packet without a fragment header.
    pub fn handle_fragment6(
        &mut self,
        now: Instant,
        scope: u32,
        packet: &ipv6::Packet<'_>,
    ) -> Result<Option<&[u8]>, DropReason> {
        let Some(f) = packet.fragment() else {
            return Err(DropReason::Malformed);
        };
        let key = Key {
            scope,
            src: packet.src().into(),
            dst: packet.dst().into(),
            protocol: 0,
            id: f.id,
        };
        let bytes = packet.bytes();
        let payload = &bytes[(f.at + ipv6::FRAGMENT_HEADER_LEN).min(bytes.len())..];
        let next = bytes.get(f.at).copied().unwrap_or(ipv6::NO_NEXT_HEADER);
        let piece = Piece {
            header: &bytes[..f.at.min(bytes.len())],
            payload,
            offset: f.offset,
            more: f.more,
            v6: Some((f.next_header_field, next)),
        };
        if f.more && payload.len() < MIN_FRAGMENT6 {
            self.recycle_done();
            if let Some(i) = self.entries.iter().position(|e| e.key == key) {
                self.remove(i);
            }
            return Err(DropReason::FragmentTiny);
        }
        self.handle(now, key, &piece)
    }

    /// The reassembly both families share: finds or starts the datagram of `key`, adds `piece`,
    /// and rebuilds the packet when it completes
    fn handle(
        &mut self,
        now: Instant,
        key: Key,
        piece: &Piece<'_>,
    ) -> Result<Option<&[u8]>, DropReason> {
        self.recycle_done();
        let mut found = self.entries.iter().position(|e| e.key == key);
        if let Some(i) = found
            && self.entries[i].expired(now)
        {
            self.expire(i);
            found = None;
        }

        let end = piece.offset + piece.payload.len();
        if (piece.more && !piece.payload.len().is_multiple_of(8))
            || piece.header.len() + end > ipv4::MAX_LEN
        {
            if let Some(i) = found {
                self.remove(i);
            }
            return Err(DropReason::FragmentInvalid);
        }

        let headroom = if piece.v6.is_some() {
            HEADROOM6
        } else {
            HEADROOM
        };
        let i = match found {
            Some(i) => i,
            None => self.insert(now, key, headroom, end)?,
        };
        if let Err(reason) = self.add(i, piece, end) {
            self.remove(i);
            return Err(reason);
        }
        if !self.is_complete(i) {
            return Ok(None);
        }

        let Entry {
            header,
            header_len: hl,
            headroom,
            v6,
            total,
            slot,
            ..
        } = self.entries.swap_remove(i);
        self.bytes -= slot.buf.len();
        let slot = self.done.insert(slot);
        let buf = &mut slot.buf;
        let start = headroom - hl;
        // `add` keeps buf.len() == headroom + end, and end == total once complete
        let h = &mut buf[start..headroom];
        h.copy_from_slice(&header[..hl]);
        let len = hl + total.unwrap_or_default(); // bounded to 65535 by `add`
        if let Some((field, next)) = v6 {
            let payload_len = (len - ipv6::HEADER_LEN) as u16;
            h[4..6].copy_from_slice(&payload_len.to_be_bytes());
            if let Some(b) = h.get_mut(field) {
                *b = next;
            }
        } else {
            h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            let word = u16::from_be_bytes([h[6], h[7]]) & !(FLAG_MF | OFFSET_MASK);
            h[6..8].copy_from_slice(&word.to_be_bytes());
            h[10..12].fill(0);
            let c = checksum::of(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        Ok(Some(&buf[start..]))
    }

    /// The earliest instant an incomplete datagram expires (first fragment time + timeout)
    ///
    /// Call when computing the machine's next deadline. It may be in the past when a datagram
    /// expired in passing and has not yet been reported; call
    /// [`handle_timeout`](Self::handle_timeout) then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter_map(|e| e.expires)
            .chain(self.expired_at)
            .min()
    }

    /// Drops the datagrams expired at `now` and returns how many expired since the last call
    ///
    /// Call when the deadline from [`poll_timeout`](Self::poll_timeout) has passed; count the
    /// result as [`DropReason::FragmentTimeout`]. The count includes datagrams already removed in
    /// passing (a reused key, room made for a new datagram).
    pub fn handle_timeout(&mut self, now: Instant) -> usize {
        self.recycle_done();
        let mut n = std::mem::take(&mut self.expired);
        self.expired_at = None;
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].expired(now) {
                self.remove(i);
                n += 1;
            } else {
                i += 1;
            }
        }
        n
    }

    /// Datagrams in progress
    ///
    /// Call for statistics and tests.
    pub fn datagrams(&self) -> usize {
        self.entries.len()
    }

    /// Bytes buffered by the datagrams in progress (what counts toward `max_bytes`)
    ///
    /// Call for statistics and tests.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Starts a datagram whose first fragment received ends at `end`, within the caps
    fn insert(
        &mut self,
        now: Instant,
        key: Key,
        headroom: usize,
        end: usize,
    ) -> Result<usize, DropReason> {
        let need = headroom + end;
        let fits = |r: &Self| {
            r.entries.len() < r.limits.max_entries
                && r.bytes.saturating_add(need) <= r.limits.max_bytes
        };
        if !fits(self) {
            self.purge_expired(now);
            if !fits(self) {
                return Err(DropReason::FragmentLimit);
            }
        }
        let mut slot = self.pool.pop().unwrap_or_default();
        slot.buf.resize(headroom, 0);
        self.bytes += headroom;
        self.entries.push(Entry {
            key,
            expires: now.checked_add(self.limits.timeout),
            headroom,
            v6: None,
            header: [0; HEADROOM6],
            header_len: 0,
            total: None,
            end: 0,
            covered: 0,
            slot,
        });
        Ok(self.entries.len() - 1)
    }

    /// Adds a fragment (payload `[offset, end)`, already checked on its own) to datagram `i`
    ///
    /// On error the caller drops the datagram, whatever state it was left in.
    fn add(&mut self, i: usize, piece: &Piece<'_>, end: usize) -> Result<(), DropReason> {
        let (offset, more) = (piece.offset, piece.more);
        let e = &mut self.entries[i];
        if piece.v6.is_some() != (e.headroom == HEADROOM6) {
            return Err(DropReason::FragmentInvalid);
        }
        match e.total {
            Some(total) if end > total || (!more && end != total) => {
                return Err(DropReason::FragmentInvalid);
            }
            Some(_) => {}
            None if !more => {
                if end < e.end {
                    return Err(DropReason::FragmentInvalid);
                }
                e.total = Some(end);
            }
            None => {}
        }
        if offset == 0 && e.header_len == 0 {
            let h = piece.header;
            let Some(dst) = e
                .header
                .get_mut(..h.len())
                .filter(|_| h.len() <= e.headroom)
            else {
                return Err(DropReason::FragmentInvalid);
            };
            dst.copy_from_slice(h);
            e.header_len = h.len();
            e.v6 = piece.v6;
        }
        if e.header_len != 0 && e.header_len + end.max(e.end) > ipv4::MAX_LEN {
            return Err(DropReason::FragmentInvalid);
        }

        if end > e.end {
            let grow = end - e.end;
            if self.bytes.saturating_add(grow) > self.limits.max_bytes {
                return Err(DropReason::FragmentLimit);
            }
            e.slot.buf.resize(e.headroom + end, 0);
            e.slot.blocks.resize(blocks(end).div_ceil(64), 0);
            e.end = end;
            self.bytes += grow;
        }

        // copy the runs of blocks not received yet: the first arrival wins (IPv6: any overlap
        // drops the datagram)
        let payload = piece.payload;
        let last = blocks(end);
        if piece.v6.is_some() && (offset / 8..last).any(|b| is_set(&e.slot.blocks, b)) {
            return Err(DropReason::FragmentOverlap);
        }
        let mut b = offset / 8;
        while b < last {
            if is_set(&e.slot.blocks, b) {
                b += 1;
                continue;
            }
            let run = b;
            while b < last && !is_set(&e.slot.blocks, b) {
                set(&mut e.slot.blocks, b);
                b += 1;
            }
            e.covered += b - run;
            let (from, to) = (run * 8, (b * 8).min(end));
            // offsets are multiples of 8, so from >= offset; both ranges are in bounds
            let dst = e.slot.buf.get_mut(e.headroom + from..e.headroom + to);
            let src = payload.get(from - offset..to - offset);
            if let (Some(dst), Some(src)) = (dst, src) {
                dst.copy_from_slice(src);
            }
        }
        Ok(())
    }

    /// Whether datagram `i` has its header, its final length and every block up to it
    fn is_complete(&self, i: usize) -> bool {
        let e = &self.entries[i];
        e.header_len != 0 && e.total.is_some_and(|total| e.covered == blocks(total))
    }

    /// Removes datagram `i` as expired, to be reported by the next `handle_timeout`
    fn expire(&mut self, i: usize) {
        let at = self.entries[i].expires;
        self.expired += 1;
        self.expired_at = self.expired_at.into_iter().chain(at).min();
        self.remove(i);
    }

    /// Removes every datagram expired at `now`, to be reported by the next `handle_timeout`
    fn purge_expired(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.entries.len() {
            if self.entries[i].expired(now) {
                self.expire(i);
            } else {
                i += 1;
            }
        }
    }

    /// Removes datagram `i`, recycling its buffers
    fn remove(&mut self, i: usize) {
        let e = self.entries.swap_remove(i);
        self.bytes -= e.slot.buf.len();
        self.recycle(e.slot);
    }

    /// Returns the last completed datagram's buffers to the pool
    fn recycle_done(&mut self) {
        if let Some(slot) = self.done.take() {
            self.recycle(slot);
        }
    }

    /// Keeps `slot` for a later datagram if the pool has room
    fn recycle(&mut self, mut slot: Slot) {
        if self.pool.len() < POOL_LEN {
            slot.buf.clear();
            slot.blocks.clear();
            self.pool.push(slot);
        }
    }
}

/// Number of 8-byte blocks of `len` bytes, the last one possibly partial
fn blocks(len: usize) -> usize {
    len.div_ceil(8)
}

/// Whether block `b` is marked in `bits`
fn is_set(bits: &[u64], b: usize) -> bool {
    bits.get(b / 64).is_some_and(|w| (w >> (b % 64)) & 1 == 1)
}

/// Marks block `b` in `bits`
fn set(bits: &mut [u64], b: usize) {
    if let Some(w) = bits.get_mut(b / 64) {
        *w |= 1 << (b % 64);
    }
}

/// Splits `packet` into IPv4 fragments of at most `mtu` bytes, calling `emit` for each in order
///
/// `emit(header, payload_chunk)` receives each fragment's header and payload; `mtu` includes the
/// header.
/// Call for a packet larger than the MTU of the link it leaves by, once the caller has decided to
/// fragment it (with DF set it should answer ICMP "fragmentation needed" instead). A packet that
/// fits is emitted unchanged as a single (header, payload) pair.
///
/// Chunks are multiples of 8 bytes except the last. Each fragment header is a copy of the
/// original's with: total length and checksum recomputed, offset = original offset + position / 8,
/// MF set on all but the last (the last keeps the original MF, so a fragment can be
/// re-fragmented), DF cleared. The first fragment keeps all options; the later ones keep only the
/// options whose "copied" bit is set (RFC 791), padded to 4 bytes. Copying stops at the first
/// malformed option.
///
/// Nothing is emitted when `mtu < header_len + 8` (no payload fits: a caller bug, as configured
/// MTUs are at least 576), or when the packet is a fragment that ends past 65535 bytes.
pub fn fragment(packet: &Packet<'_>, mtu: usize, mut emit: impl FnMut(&[u8], &[u8])) {
    let header = packet.header();
    let payload = packet.payload();
    if packet.bytes().len() <= mtu {
        emit(header, payload);
        return;
    }
    let hl = header.len();
    let base = packet.fragment_offset();
    if mtu < hl + 8 || hl + base + payload.len() > ipv4::MAX_LEN {
        return;
    }

    let word = u16::from_be_bytes([header[6], header[7]]);
    let last_mf = word & FLAG_MF;
    let keep = word & FLAG_RESERVED;
    let mut first = [0u8; MAX_HEADER_LEN];
    first[..hl].copy_from_slice(header);
    let mut later = [0u8; MAX_HEADER_LEN];
    let later_len = later_header(header, &mut later);

    let mut pos = 0;
    while pos < payload.len() {
        let (h, len) = if pos == 0 {
            (&mut first, hl)
        } else {
            (&mut later, later_len)
        };
        // mtu >= hl + 8 >= len + 8, so room >= 8; pos + room <= 65535 + mtu as mtu < packet length
        let room = (mtu - len) & !7;
        let stop = (pos + room).min(payload.len());
        let chunk = &payload[pos..stop];
        let mf = if stop == payload.len() {
            last_mf
        } else {
            FLAG_MF
        };
        // base + pos <= 65535 - hl, checked above
        let units = ((base + pos) / 8) as u16 & OFFSET_MASK;
        let h = &mut h[..len];
        h[2..4].copy_from_slice(&((len + chunk.len()) as u16).to_be_bytes());
        h[6..8].copy_from_slice(&(keep | mf | units).to_be_bytes());
        h[10..12].fill(0);
        let c = checksum::of(h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        emit(h, chunk);
        pos = stop;
    }
}

/// Length of the header in front of each IPv6 fragment's data: the fixed header and a fragment
/// header
const FRAGMENT6_HEADER: usize = ipv6::HEADER_LEN + ipv6::FRAGMENT_HEADER_LEN;

/// Splits the IPv6 `packet` into fragments of at most `mtu` bytes with a fragment header of
/// identification `id` (RFC 8200 §4.5), calling `emit(header, data_chunk)` for each in order
///
/// What IPv6 senders do, since IPv6 routers never fragment. The unfragmentable part is the fixed
/// header; everything after it (extension headers and the upper-layer header with its data) is
/// fragmentable, so the first fragment starts with the upper-layer header (RFC 7112 needs at
/// most `mtu` of 1280 for headers of up to 1232 bytes). Chunks are multiples of 8 bytes except
/// the last; each header is the original fixed header with its payload length set and next
/// header 44, then the fragment header naming the original next header, the offset, the M flag
/// and `id`. A packet that fits is emitted unchanged as a single (header, rest) pair.
///
/// Nothing is emitted when `mtu` leaves fewer than 8 bytes of data per fragment, or for a packet
/// that is already a fragment or carries a hop-by-hop header (which would have to stay in the
/// unfragmentable part).
pub fn fragment6(
    packet: &ipv6::Packet<'_>,
    mtu: usize,
    id: u32,
    mut emit: impl FnMut(&[u8], &[u8]),
) {
    let bytes = packet.bytes();
    let (fixed, rest) = bytes.split_at(ipv6::HEADER_LEN);
    if bytes.len() <= mtu {
        emit(fixed, rest);
        return;
    }
    if mtu < FRAGMENT6_HEADER + 8 || packet.fragment().is_some() || fixed[6] == ipv6::HOP_BY_HOP {
        return;
    }
    let mut h = [0u8; FRAGMENT6_HEADER];
    h[..ipv6::HEADER_LEN].copy_from_slice(fixed);
    h[6] = ipv6::FRAGMENT;
    h[ipv6::HEADER_LEN] = fixed[6];
    h[ipv6::HEADER_LEN + 4..].copy_from_slice(&id.to_be_bytes());
    let room = (mtu - FRAGMENT6_HEADER) & !7;
    let mut pos = 0;
    while pos < rest.len() {
        let stop = (pos + room).min(rest.len());
        let chunk = &rest[pos..stop];
        // the payload length is at most 65535 (a parsed packet's), so are its parts and offsets
        let payload_len = (ipv6::FRAGMENT_HEADER_LEN + chunk.len()) as u16;
        h[4..6].copy_from_slice(&payload_len.to_be_bytes());
        let word = pos as u16 | u16::from(stop < rest.len());
        h[ipv6::HEADER_LEN + 2..ipv6::HEADER_LEN + 4].copy_from_slice(&word.to_be_bytes());
        emit(&h, chunk);
        pos = stop;
    }
}

/// Writes the header of the fragments after the first into `out` and returns its length
///
/// That is the fixed 20 bytes of `header` and its options with the "copied" bit, padded to 4 bytes.
fn later_header(header: &[u8], out: &mut [u8; MAX_HEADER_LEN]) -> usize {
    let (fixed, options) = header.split_at(ipv4::HEADER_LEN.min(header.len()));
    out[..fixed.len()].copy_from_slice(fixed);
    let mut n = fixed.len();
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            OPTION_EOL => break,
            OPTION_NOP => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let Some(&len) = options.get(i + 1) else {
            break;
        };
        let len = usize::from(len);
        if len < 2 {
            break;
        }
        let Some(option) = options.get(i..i + len) else {
            break;
        };
        if kind & OPTION_COPIED != 0 {
            // copied options are a subset of the header's, so they fit in 60 bytes
            let Some(dst) = out.get_mut(n..n + len) else {
                break;
            };
            dst.copy_from_slice(option);
            n += len;
        }
        i += len;
    }
    let padded = n.next_multiple_of(4).min(MAX_HEADER_LEN);
    out[n..padded].fill(0);
    out[0] = (out[0] & 0xf0) | (padded / 4) as u8;
    padded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::FLAG_DF;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    /// Router alert (copied, 4 bytes), NOP, record route (not copied, 3 bytes)
    const OPTIONS: [u8; 8] = [0x94, 4, 0, 0, OPTION_NOP, 7, 3, 4];

    /// IPv6 fragments of a UDP datagram of `len` data bytes (with a destination-options header
    /// before the fragment header) cut at `cut` bytes, as a sender's stack would
    fn fragments6(len: usize, cut: usize, id: u32) -> (Vec<u8>, Vec<Vec<u8>>) {
        use crate::wire::{ipv6, proto};
        let (src, dst) = (
            "fd00:11::2".parse().unwrap(),
            "2001:db8:14::2".parse().unwrap(),
        );
        let opts = [proto::UDP, 0, 1, 4, 0, 0, 0, 0];
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let mut whole = vec![0u8; 48];
        ipv6::write_header(
            &mut whole,
            &ipv6::Header {
                src,
                dst,
                next_header: ipv6::DESTINATION_OPTIONS,
                hop_limit: 64,
                payload_len: 8 + len,
            },
        );
        whole[40..48].copy_from_slice(&opts);
        whole.extend_from_slice(&data);
        let mut out = Vec::new();
        for (k, chunk) in data.chunks(cut).enumerate() {
            let offset = k * cut;
            let more = offset + chunk.len() < len;
            let mut f = vec![0u8; 56];
            ipv6::write_header(
                &mut f,
                &ipv6::Header {
                    src,
                    dst,
                    next_header: ipv6::DESTINATION_OPTIONS,
                    hop_limit: 64,
                    payload_len: 16 + chunk.len(),
                },
            );
            f[40..48].copy_from_slice(&opts);
            f[40] = ipv6::FRAGMENT;
            f[48] = proto::UDP;
            f[50..52].copy_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
            f[52..56].copy_from_slice(&id.to_be_bytes());
            f.extend_from_slice(chunk);
            out.push(f);
        }
        (whole, out)
    }

    #[test]
    fn ipv6_reassembles_and_refuses_overlaps_and_tiny_fragments() {
        use crate::wire::ipv6;
        let now = Instant::now();
        let mut r = Reassembler::new(limits());
        let (whole, pieces) = fragments6(3000, 1232, 9);
        let mut done = None;
        for p in pieces.iter().rev() {
            let v = ipv6::Packet::parse(p).unwrap();
            if let Some(d) = r.handle_fragment6(now, 0, &v).unwrap() {
                done = Some(d.to_vec());
            }
        }
        assert_eq!(done.unwrap(), whole);
        assert_eq!((r.datagrams(), r.buffered_bytes()), (0, 0));

        // an overlap drops the whole datagram
        let (_, pieces) = fragments6(3000, 1232, 10);
        let v = ipv6::Packet::parse(&pieces[0]).unwrap();
        assert_eq!(r.handle_fragment6(now, 0, &v), Ok(None));
        let mut overlap = pieces[1].clone();
        overlap[50..52].copy_from_slice(&(1224u16 | 1).to_be_bytes());
        let v = ipv6::Packet::parse(&overlap).unwrap();
        assert_eq!(
            r.handle_fragment6(now, 0, &v),
            Err(DropReason::FragmentOverlap)
        );
        assert_eq!(r.datagrams(), 0);

        // tiny non-final fragments are refused; a small final one is fine
        let (_, tiny) = fragments6(600, 64, 11);
        let v = ipv6::Packet::parse(&tiny[0]).unwrap();
        assert_eq!(
            r.handle_fragment6(now, 0, &v),
            Err(DropReason::FragmentTiny)
        );
        let (whole, two) = fragments6(1300, 1232, 12);
        for p in &two {
            let v = ipv6::Packet::parse(p).unwrap();
            if let Some(d) = r.handle_fragment6(now, 0, &v).unwrap() {
                assert_eq!(d, &whole[..]);
            }
        }
        // IPv4 and IPv6 share the caps
        assert_eq!(r.datagrams(), 0);
    }

    proptest! {
        /// Any order of an IPv6 datagram's fragments rebuilds it exactly
        #[test]
        fn ipv6_any_order(len in 300usize..6000, cut in 32usize..200, seed in any::<u64>()) {
            use crate::wire::ipv6;
            use rand_core::{RngCore, SeedableRng};
            let cut = cut * 8;
            let (whole, mut pieces) = fragments6(len, cut, 5);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            for i in (1..pieces.len()).rev() {
                pieces.swap(i, rng.next_u32() as usize % (i + 1));
            }
            let mut r = Reassembler::new(ReassemblyLimits::default());
            let now = Instant::now();
            let mut done = None;
            for p in &pieces {
                let v = ipv6::Packet::parse(p).unwrap();
                if let Some(d) = r.handle_fragment6(now, 0, &v).unwrap() {
                    done = Some(d.to_vec());
                }
            }
            prop_assert_eq!(done, Some(whole));
        }
    }

    proptest! {
        #![proptest_config(config())]

        /// What [`fragment6`] cuts, in any order, the reassembler rebuilds byte for byte; each piece fits `mtu`, carries a multiple of 8 bytes but the last, and
        /// the first holds the TCP header whole (RFC 7112)
        #[test]
        fn fragment6_then_reassemble(
            data in vec(any::<u8>(), 0..=9000),
            mtu in 1280usize..=1500,
            id: u32,
            seed: u64,
        ) {
            use crate::wire::{ipv6, proto};
            let mut packet = vec![0u8; ipv6::HEADER_LEN + 32];
            ipv6::write_header(
                &mut packet,
                &ipv6::Header {
                    src: "2001:db8:12::2".parse().unwrap(),
                    dst: "2001:db8:14::2".parse().unwrap(),
                    next_header: proto::TCP,
                    hop_limit: 64,
                    payload_len: 32 + data.len(),
                },
            );
            ipv6::set_flow_label(&mut packet, 0x12345);
            packet[ipv6::HEADER_LEN + 12] = 8 << 4;
            packet.extend_from_slice(&data);
            let whole = ipv6::Packet::parse(&packet).unwrap();
            let mut pieces = Vec::new();
            fragment6(&whole, mtu, id, |h, chunk| pieces.push([h, chunk].concat()));
            if packet.len() <= mtu {
                prop_assert_eq!(&pieces, &vec![packet.clone()]);
                return Ok(());
            }
            for (i, p) in pieces.iter().enumerate() {
                prop_assert!(p.len() <= mtu);
                let v = ipv6::Packet::parse(p).unwrap();
                let f = v.fragment().unwrap();
                prop_assert_eq!((f.id, f.more), (id, i + 1 < pieces.len()));
                prop_assert!(!f.more || (p.len() - FRAGMENT6_HEADER).is_multiple_of(8));
                prop_assert_eq!(ipv6::flow_label(p), 0x12345);
                if i == 0 {
                    prop_assert!(p.len() >= FRAGMENT6_HEADER + 32);
                }
            }
            let mut order = pieces.clone();
            Mix(seed).shuffle(&mut order);
            let mut r = Reassembler::new(limits());
            let now = Instant::now();
            let mut done = Vec::new();
            for p in &order {
                if let Ok(Some(d)) = r.handle_fragment6(now, 0, &ipv6::Packet::parse(p).unwrap()) {
                    done.push(d.to_vec());
                }
            }
            prop_assert!(done == vec![packet], "not rebuilt");
        }
    }

    fn limits() -> ReassemblyLimits {
        ReassemblyLimits::default()
    }

    /// An IPv4 packet from `SRC` to `DST` with the given fields, options and payload
    fn build(id: u16, protocol: u8, flags_offset: u16, options: &[u8], payload: &[u8]) -> Vec<u8> {
        assert!(options.len().is_multiple_of(4) && options.len() <= 40);
        let hl = ipv4::HEADER_LEN + options.len();
        let mut p = vec![0u8; hl];
        p[0] = 0x40 | (hl / 4) as u8;
        p[2..4].copy_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        p[6..8].copy_from_slice(&flags_offset.to_be_bytes());
        p[8] = 64;
        p[9] = protocol;
        p[12..16].copy_from_slice(&SRC.octets());
        p[16..20].copy_from_slice(&DST.octets());
        p[20..].copy_from_slice(options);
        let c = checksum::of(&p);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// A fragment of datagram `id` carrying `payload` at byte `offset`
    fn frag(id: u16, offset: usize, more: bool, payload: &[u8]) -> Vec<u8> {
        let mf = if more { FLAG_MF } else { 0 };
        build(id, 17, mf | (offset / 8) as u16, &[], payload)
    }

    fn payload(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn parse(bytes: &[u8]) -> Packet<'_> {
        Packet::parse(bytes).expect("valid test packet")
    }

    /// The fragments of `packet` at `mtu`, as whole packets
    fn split(packet: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        fragment(&parse(packet), mtu, |h, p| out.push([h, p].concat()));
        out
    }

    /// What reassembling the fragments of `packet` must give: DF cleared, checksum rebuilt
    fn expected(packet: &[u8]) -> Vec<u8> {
        let mut p = packet.to_vec();
        p[6] &= !((FLAG_DF >> 8) as u8);
        p[10..12].fill(0);
        let hl = usize::from(p[0] & 0x0f) * 4;
        let c = checksum::of(&p[..hl]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    /// Feeds `frags` in order; returns every completed datagram
    fn feed(r: &mut Reassembler, now: Instant, scope: u32, frags: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut done = Vec::new();
        for f in frags {
            if let Some(p) = r.handle_fragment(now, scope, &parse(f)).expect("accepted") {
                done.push(p.to_vec());
            }
        }
        done
    }

    /// A deterministic generator (splitmix64) for shuffles in tests
    struct Mix(u64);
    impl Mix {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn shuffle<T>(&mut self, v: &mut [T]) {
            for i in (1..v.len()).rev() {
                v.swap(i, self.below(i + 1));
            }
        }
    }

    /// Checks the fragments of `packet` at `mtu` field by field
    fn check_fragments(packet: &[u8], mtu: usize, frags: &[Vec<u8>]) {
        if packet.len() <= mtu {
            assert_eq!(frags, [packet]);
            return;
        }
        let orig = parse(packet);
        let mut pos = 0;
        for (n, f) in frags.iter().enumerate() {
            let p = parse(f);
            let last = n + 1 == frags.len();
            assert!(f.len() <= mtu, "fragment {n} is {} bytes", f.len());
            assert!(last || p.payload().len().is_multiple_of(8));
            assert_eq!(p.fragment_offset(), orig.fragment_offset() + pos);
            assert_eq!(p.more_fragments(), !last || orig.more_fragments());
            assert!(!p.dont_fragment());
            assert_eq!(
                (p.src(), p.dst(), p.protocol(), p.id()),
                (orig.src(), orig.dst(), orig.protocol(), orig.id())
            );
            assert_eq!(p.payload(), &orig.payload()[pos..pos + p.payload().len()]);
            pos += p.payload().len();
        }
        assert_eq!(pos, orig.payload().len());
    }

    #[test]
    fn reassembles_in_order_reversed_and_shuffled() {
        let now = Instant::now();
        let packet = build(0x1234, 17, FLAG_DF, &OPTIONS, &payload(4000));
        let frags = split(&packet, 576);
        assert!(frags.len() > 7);
        let mut shuffled = frags.clone();
        Mix(7).shuffle(&mut shuffled);
        let reversed: Vec<_> = frags.iter().rev().cloned().collect();
        for order in [frags, reversed, shuffled] {
            let mut r = Reassembler::new(limits());
            assert_eq!(
                feed(&mut r, now, 0, &order[..order.len() - 1]),
                Vec::<Vec<u8>>::new()
            );
            assert_eq!(r.datagrams(), 1);
            assert_eq!(
                feed(&mut r, now, 0, &order[order.len() - 1..]),
                [expected(&packet)]
            );
            assert_eq!(
                (r.datagrams(), r.buffered_bytes(), r.poll_timeout()),
                (0, 0, None)
            );
        }
    }

    #[test]
    fn duplicates_do_not_complete_early() {
        let now = Instant::now();
        let data = payload(24);
        let a = frag(1, 0, true, &data[..8]);
        let b = frag(1, 8, true, &data[8..16]);
        let c = frag(1, 16, false, &data[16..]);
        let mut r = Reassembler::new(limits());
        // the Go original counted payload lengths: a, a, c would have "completed" with a hole
        assert!(
            feed(
                &mut r,
                now,
                0,
                &[a.clone(), a.clone(), c.clone(), c.clone()]
            )
            .is_empty()
        );
        let done = feed(&mut r, now, 0, std::slice::from_ref(&b));
        assert_eq!(done, [expected(&build(1, 17, 0, &[], &data))]);
        // a late duplicate starts a new datagram, which expires on its own
        assert!(feed(&mut r, now, 0, &[b]).is_empty());
        assert_eq!(r.datagrams(), 1);
    }

    #[test]
    fn overlaps_keep_the_first_bytes() {
        let now = Instant::now();
        let mut r = Reassembler::new(limits());
        assert!(feed(&mut r, now, 0, &[frag(2, 8, true, &[b'B'; 16])]).is_empty());
        assert!(feed(&mut r, now, 0, &[frag(2, 0, true, &[b'A'; 16])]).is_empty());
        assert!(feed(&mut r, now, 0, &[frag(2, 16, true, &[b'C'; 16])]).is_empty());
        let done = feed(&mut r, now, 0, &[frag(2, 32, false, b"end")]);
        let mut want = [b'A'; 8].to_vec();
        want.extend_from_slice(&[b'B'; 16]);
        want.extend_from_slice(&[b'C'; 8]);
        want.extend_from_slice(b"end");
        assert_eq!(done, [expected(&build(2, 17, 0, &[], &want))]);
    }

    #[test]
    fn conflicting_final_lengths_drop_the_datagram() {
        let now = Instant::now();
        let mut r = Reassembler::new(limits());
        feed(
            &mut r,
            now,
            0,
            &[frag(3, 0, true, &[1; 16]), frag(3, 24, false, &[2; 5])],
        );
        let other_end = frag(3, 24, false, &[2; 6]);
        assert_eq!(
            r.handle_fragment(now, 0, &parse(&other_end)),
            Err(DropReason::FragmentInvalid)
        );
        assert_eq!((r.datagrams(), r.buffered_bytes()), (0, 0));

        // data past a known end, and a final fragment short of data already received
        feed(&mut r, now, 0, &[frag(4, 8, false, &[1; 8])]);
        let past = frag(4, 16, true, &[1; 8]);
        assert_eq!(
            r.handle_fragment(now, 0, &parse(&past)),
            Err(DropReason::FragmentInvalid)
        );
        feed(&mut r, now, 0, &[frag(5, 64, true, &[1; 8])]);
        let short = frag(5, 0, false, &[1; 8]);
        assert_eq!(
            r.handle_fragment(now, 0, &parse(&short)),
            Err(DropReason::FragmentInvalid)
        );
        assert_eq!((r.datagrams(), r.buffered_bytes()), (0, 0));
    }

    #[test]
    fn rejects_misaligned_and_oversized_fragments() {
        let now = Instant::now();
        let mut r = Reassembler::new(limits());
        feed(&mut r, now, 0, &[frag(6, 16, false, &[0; 3])]);
        let odd = frag(6, 0, true, &[0; 12]);
        assert_eq!(
            r.handle_fragment(now, 0, &parse(&odd)),
            Err(DropReason::FragmentInvalid)
        );
        assert_eq!(r.datagrams(), 0);
        let past = frag(7, 65528, false, &[0; 8]);
        assert_eq!(
            r.handle_fragment(now, 0, &parse(&past)),
            Err(DropReason::FragmentInvalid)
        );
        // the largest possible datagram: 20 + 65515 bytes
        let whole = build(8, 17, 0, &[], &payload(65515));
        let frags = split(&whole, 1500);
        assert_eq!(feed(&mut r, now, 0, &frags), [expected(&whole)]);
        // a header with options at offset 0 pushes a final fragment's end past 65535
        feed(&mut r, now, 0, &[frag(9, 65512, false, &[0; 3])]);
        let first = build(9, 17, FLAG_MF, &OPTIONS, &[0; 8]);
        assert_eq!(
            r.handle_fragment(now, 0, &parse(&first)),
            Err(DropReason::FragmentInvalid)
        );
        assert_eq!((r.datagrams(), r.buffered_bytes()), (0, 0));
    }

    #[test]
    fn caps_refuse_with_fragment_limit() {
        let now = Instant::now();
        let mut r = Reassembler::new(ReassemblyLimits {
            max_entries: 2,
            ..limits()
        });
        feed(
            &mut r,
            now,
            0,
            &[frag(1, 0, true, &[0; 8]), frag(2, 0, true, &[0; 8])],
        );
        let third = frag(3, 0, true, &[0; 8]);
        assert_eq!(
            r.handle_fragment(now, 0, &parse(&third)),
            Err(DropReason::FragmentLimit)
        );
        // fragments of datagrams in progress still go in, and a completion makes room
        assert_eq!(feed(&mut r, now, 0, &[frag(1, 8, false, &[0; 8])]).len(), 1);
        assert!(feed(&mut r, now, 0, &[third]).is_empty());

        let max_bytes = 2 * HEADROOM + 1000 + 496;
        let mut r = Reassembler::new(ReassemblyLimits {
            max_bytes,
            ..limits()
        });
        feed(&mut r, now, 0, &[frag(1, 992, true, &[0; 8])]);
        assert_eq!(r.buffered_bytes(), HEADROOM + 1000);
        let big = frag(2, 496, true, &[0; 8]);
        assert_eq!(
            r.handle_fragment(now, 0, &parse(&big)),
            Err(DropReason::FragmentLimit)
        );
        assert_eq!(r.datagrams(), 1);
        feed(&mut r, now, 0, &[frag(2, 488, true, &[0; 8])]);
        assert_eq!(r.buffered_bytes(), max_bytes);
        // a datagram that cannot grow is dropped with its fragment
        let grow = frag(2, 496, true, &[0; 8]);
        assert_eq!(
            r.handle_fragment(now, 0, &parse(&grow)),
            Err(DropReason::FragmentLimit)
        );
        assert_eq!((r.datagrams(), r.buffered_bytes()), (1, HEADROOM + 1000));
        // filling holes below the current end needs no room
        assert!(feed(&mut r, now, 0, &[frag(1, 0, true, &[0; 992])]).is_empty());
        assert_eq!(r.buffered_bytes(), HEADROOM + 1000);
    }

    #[test]
    fn expiry_by_timeout() {
        let t0 = Instant::now();
        let timeout = limits().timeout;
        let ms = Duration::from_millis(1);
        let mut r = Reassembler::new(limits());
        assert_eq!(r.poll_timeout(), None);
        feed(&mut r, t0, 0, &[frag(1, 0, true, &[0; 8])]);
        feed(&mut r, t0 + ms, 0, &[frag(2, 0, true, &[0; 8])]);
        feed(&mut r, t0 + 2 * ms, 0, &[frag(1, 8, true, &[0; 8])]);
        assert_eq!(r.poll_timeout(), Some(t0 + timeout));
        assert_eq!(r.handle_timeout(t0 + timeout - ms), 0);
        assert_eq!(r.handle_timeout(t0 + timeout), 1);
        assert_eq!(
            (r.datagrams(), r.poll_timeout()),
            (1, Some(t0 + ms + timeout))
        );
        assert_eq!(r.handle_timeout(t0 + 2 * timeout), 1);
        assert_eq!(
            (r.datagrams(), r.buffered_bytes(), r.poll_timeout()),
            (0, 0, None)
        );
    }

    #[test]
    fn expiry_in_passing_is_reported() {
        let t0 = Instant::now();
        let timeout = limits().timeout;
        let mut r = Reassembler::new(ReassemblyLimits {
            max_entries: 1,
            ..limits()
        });
        feed(&mut r, t0, 0, &[frag(1, 0, true, &[1; 8])]);
        // the key is reused after the timeout: the old fragment must not complete the new datagram
        let later = t0 + timeout;
        assert!(feed(&mut r, later, 0, &[frag(1, 8, false, &[2; 8])]).is_empty());
        assert_eq!(r.datagrams(), 1);
        assert_eq!(r.poll_timeout(), Some(t0 + timeout));
        assert_eq!(r.handle_timeout(later), 1);
        assert_eq!(r.poll_timeout(), Some(later + timeout));
        // a new datagram at the cap frees an expired one first
        let much_later = later + timeout;
        assert!(feed(&mut r, much_later, 0, &[frag(2, 0, true, &[3; 8])]).is_empty());
        assert_eq!(r.handle_timeout(much_later), 1);
        assert_eq!(r.datagrams(), 1);
    }

    #[test]
    fn scopes_are_kept_apart() {
        let now = Instant::now();
        let packet = build(5, 17, 0, &[], &payload(2000));
        let frags = split(&packet, 1500);
        assert_eq!(frags.len(), 2);
        let mut r = Reassembler::new(limits());
        assert!(feed(&mut r, now, 1, &frags[..1]).is_empty());
        assert!(feed(&mut r, now, 2, &frags[1..]).is_empty());
        assert_eq!(r.datagrams(), 2);
        assert_eq!(feed(&mut r, now, 2, &frags[..1]), [expected(&packet)]);
        assert_eq!(feed(&mut r, now, 1, &frags[1..]), [expected(&packet)]);
    }

    #[test]
    fn buffers_are_recycled() {
        let now = Instant::now();
        let packet = build(5, 17, 0, &[], &payload(3000));
        let frags = split(&packet, 1500);
        let mut r = Reassembler::new(limits());
        feed(&mut r, now, 0, &frags);
        feed(&mut r, now, 0, &frags[..1]);
        let cap = r.entries[0].slot.buf.capacity();
        assert!(
            cap >= HEADROOM + 3000,
            "the completed datagram's buffer is reused"
        );
        assert!(r.pool.is_empty());
    }

    #[test]
    fn original_verified_example() {
        // UDP with a 2000-byte payload at fragment size 1500 (reference §6.2)
        let packet = build(0x77, 17, FLAG_DF, &[], &payload(2008));
        let frags = split(&packet, 1500);
        let got: Vec<_> = frags
            .iter()
            .map(|f| {
                let p = parse(f);
                (
                    f.len(),
                    p.fragment_offset() / 8,
                    p.more_fragments(),
                    p.dont_fragment(),
                )
            })
            .collect();
        assert_eq!(got, [(1500, 0, true, false), (548, 185, false, false)]);
        check_fragments(&packet, 1500, &frags);
    }

    #[test]
    fn fragments_large_packets_at_common_mtus() {
        let now = Instant::now();
        for len in [1500, 65000] {
            let packet = build(9, 6, FLAG_DF, &[], &payload(len - 20));
            for mtu in [576, 1280, 1500] {
                let frags = split(&packet, mtu);
                if len <= mtu {
                    assert_eq!(frags, std::slice::from_ref(&packet));
                    continue;
                }
                assert_eq!(frags.len(), (len - 20).div_ceil((mtu - 20) & !7));
                check_fragments(&packet, mtu, &frags);
                let mut r = Reassembler::new(limits());
                assert_eq!(feed(&mut r, now, 0, &frags), [expected(&packet)]);
            }
        }
    }

    #[test]
    fn options_copied_only_when_marked() {
        let packet = build(1, 17, 0, &OPTIONS, &payload(100));
        let frags = split(&packet, 28 + 48);
        assert!(frags.len() > 2);
        assert_eq!(&frags[0][20..28], &OPTIONS);
        for f in &frags[1..] {
            assert_eq!(parse(f).header_len(), 24);
            assert_eq!(&f[20..24], &OPTIONS[..4]);
        }
        check_fragments(&packet, 76, &frags);

        // a copied 3-byte option is padded; a malformed option stops the copying
        let opts = [0x83, 3, 4, 0x89, 0, 0x94, 4, 0];
        let frags = split(&build(1, 17, 0, &opts, &payload(100)), 80);
        assert_eq!(&frags[1][20..24], &[0x83, 3, 4, 0]);
        let opts = [0x94, 4, 0, 0, 0x83, 9, 4, 0];
        let frags = split(&build(1, 17, 0, &opts, &payload(100)), 80);
        assert_eq!(parse(&frags[1]).header_len(), 24);
        // end of list
        let opts = [0, 0x94, 4, 0];
        let frags = split(&build(1, 17, 0, &opts, &payload(100)), 80);
        assert_eq!(parse(&frags[1]).header_len(), 20);
    }

    #[test]
    fn refragments_a_fragment_and_refuses_tiny_mtus() {
        let now = Instant::now();
        let packet = build(3, 17, 0, &[], &payload(3000));
        let frags = split(&packet, 1500);
        let mut pieces = Vec::new();
        for f in &frags {
            let sub = split(f, 576);
            check_fragments(f, 576, &sub);
            pieces.extend(sub);
        }
        assert!(pieces.len() > 6);
        let mut r = Reassembler::new(limits());
        assert_eq!(feed(&mut r, now, 0, &pieces), [expected(&packet)]);

        let with_options = build(3, 17, 0, &OPTIONS, &payload(100));
        assert!(split(&with_options, 35).is_empty());
        assert_eq!(split(&with_options, 36).len(), 13);
    }

    fn arb_options() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![Just(Vec::new()), Just(OPTIONS.to_vec())]
    }

    /// Raw bytes and what to force into them: IHL, flags/offset word, key, aligned length, cut
    fn arb_raw() -> impl Strategy<Value = (Vec<u8>, usize, u16, u8, bool, u8)> {
        let bytes = vec(any::<u8>(), 20..300);
        (
            bytes,
            5usize..=15,
            any::<u16>(),
            0u8..4,
            any::<bool>(),
            any::<u8>(),
        )
    }

    /// Proptest's defaults, without regression files (this crate keeps none)
    fn config() -> ProptestConfig {
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fragment_then_reassemble(
            data in vec(any::<u8>(), 1..=9000),
            protocol: u8,
            id: u16,
            df: bool,
            options in arb_options(),
            mtu in 68usize..=1500,
            seed: u64,
        ) {
            let packet = build(id, protocol, if df { FLAG_DF } else { 0 }, &options, &data);
            let mtu = mtu.max(28 + options.len());
            let frags = split(&packet, mtu);
            check_fragments(&packet, mtu, &frags);

            let mut rng = Mix(seed);
            let mut order = frags.clone();
            for _ in 0..rng.below(frags.len() + 1) {
                order.push(frags[rng.below(frags.len())].clone());
            }
            rng.shuffle(&mut order);
            let mut r = Reassembler::new(limits());
            let done = feed(&mut r, Instant::now(), rng.next() as u32, &order);
            prop_assert!(!done.is_empty());
            // a packet that fits is not fragmented and keeps its DF
            let fits = packet.len() <= mtu;
            let want = if fits { packet.clone() } else { expected(&packet) };
            for got in done {
                let p = parse(&got);
                prop_assert_eq!(p.payload(), &data[..]);
                prop_assert_eq!((p.src(), p.dst(), p.protocol(), p.id()), (SRC, DST, protocol, id));
                prop_assert!(!p.is_fragment() && p.dont_fragment() == (df && fits));
                prop_assert_eq!(&got, &want);
            }
        }

        #[test]
        fn arbitrary_fragments_never_panic(
            raw in vec(arb_raw(), 1..48),
            steps in vec(0u64..20_000, 48),
            mtu in 0usize..1600,
        ) {
            let lim = ReassemblyLimits {
                max_entries: 3,
                max_bytes: 3000,
                timeout: Duration::from_secs(5),
            };
            let mut r = Reassembler::new(lim);
            let mut now = Instant::now();
            for (n, (mut b, ihl, word, key, align, cut)) in raw.into_iter().enumerate() {
                let hl = ihl * 4;
                if b.len() < hl {
                    b.resize(hl, 0);
                }
                // few keys and small offsets, so that fragments meet; lengths mostly aligned
                b[0] = 0x40 | ihl as u8;
                let mut total = hl + usize::from(cut) % (b.len() - hl + 1);
                if align {
                    total = hl + (total - hl) / 8 * 8;
                }
                b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                b[4..6].copy_from_slice(&u16::from(key & 1).to_be_bytes());
                b[9] = key >> 1;
                b[12..20].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
                let word = if word & 0x0400 != 0 { word } else { word & 0xe03f };
                b[6..8].copy_from_slice(&word.to_be_bytes());
                b[10..12].fill(0);
                let c = checksum::of(&b[..hl]);
                b[10..12].copy_from_slice(&c.to_be_bytes());
                let p = Packet::parse(&b).expect("fixed up");

                now += Duration::from_millis(steps[n]);
                if let Ok(Some(done)) = r.handle_fragment(now, u32::from(key >> 1), &p) {
                    let done = Packet::parse(done).expect("rebuilt packets are valid");
                    prop_assert!(!done.is_fragment());
                }
                prop_assert!(r.datagrams() <= lim.max_entries && r.buffered_bytes() <= lim.max_bytes);
                if r.poll_timeout().is_some_and(|at| at <= now) {
                    r.handle_timeout(now);
                }

                let mut emitted = 0;
                fragment(&p, mtu, |h, c| {
                    emitted += h.len() + c.len();
                    let f = [h, c].concat();
                    assert!(Packet::parse(&f).is_ok());
                    assert!(f.len() <= mtu || f == p.bytes());
                });
                prop_assert!(emitted == 0 || emitted >= p.bytes().len());
            }
        }
    }
}
