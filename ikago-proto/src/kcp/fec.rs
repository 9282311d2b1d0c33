//! kcp-go's forward error correction framing (kcp-go v5.4.20 `fec.go`, reference §5.3)
//!
//! ```text
//! data shard   : | seqid u32 | 0xf1 u16 | size u16 = 2 + KCP bytes | KCP bytes |
//! parity shard : | seqid u32 | 0xf2 u16 | Reed–Solomon parity of the group's size+KCP regions |
//! ```
//!
//! All integers are little-endian. `seqid` counts every shard; shard `seqid` is at position
//! `seqid % (data + parity)` of group `seqid / (data + parity)`, data first. The encoder emits the
//! parity shards right after every `data`-th data shard, over the regions from offset 6 zero-padded
//! to the group's longest.

use super::rs::{ReedSolomon, RsError};
use super::{KcpError, seq_diff};
use std::collections::VecDeque;

/// Bytes of seqid and flag (kcp-go `fecHeaderSize`)
pub(crate) const FEC_HEADER_LEN: usize = 6;
/// Bytes a data shard adds in front of the KCP bytes: header and size (kcp-go `fecHeaderSizePlus2`)
pub(crate) const FEC_OVERHEAD: usize = 8;
/// Largest datagram kcp-go reads or writes, bytes (kcp-go `mtuLimit`)
pub(crate) const MTU_LIMIT: usize = 1500;
/// Flag of a data shard (kcp-go `typeData`)
const TYPE_DATA: u16 = 0xf1;
/// Flag of a parity shard (kcp-go `typeParity`)
const TYPE_PARITY: u16 = 0xf2;
/// Age after which the decoder forgets a shard, ms (kcp-go `fecExpire`)
const FEC_EXPIRE_MS: i32 = 60_000;
/// The decoder keeps at most this many groups' worth of shards (kcp-go sess.go `rxFECMulti`)
const RX_FEC_MULTI: usize = 3;
/// Row stride of the decoder's reconstruction buffer: the longest region parity covers
const REGION_STRIDE: usize = MTU_LIMIT - FEC_HEADER_LEN;

/// Whether a shard carries data or parity
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShardKind {
    /// A KCP datagram with its size (flag 0xf1)
    Data,
    /// Parity over a group (flag 0xf2)
    Parity,
}

/// The header of a FEC datagram
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FecHeader {
    /// Shard sequence number
    pub(crate) seqid: u32,
    /// Data or parity
    pub(crate) kind: ShardKind,
}

impl FecHeader {
    /// Parses a datagram's header: longer than 6 bytes, flag 0xf1 or 0xf2 (kcp-go `kcpInput`)
    pub(crate) fn parse(datagram: &[u8]) -> Result<Self, KcpError> {
        if datagram.len() <= FEC_HEADER_LEN {
            return Err(KcpError::Truncated);
        }
        let seqid = u32::from_le_bytes([datagram[0], datagram[1], datagram[2], datagram[3]]);
        let kind = match u16::from_le_bytes([datagram[4], datagram[5]]) {
            TYPE_DATA => ShardKind::Data,
            TYPE_PARITY => ShardKind::Parity,
            _ => return Err(KcpError::NotFec),
        };
        Ok(Self { seqid, kind })
    }

    /// Writes the header into the first 6 bytes of `out`
    fn write(self, out: &mut [u8]) {
        let flag = match self.kind {
            ShardKind::Data => TYPE_DATA,
            ShardKind::Parity => TYPE_PARITY,
        };
        out[..4].copy_from_slice(&self.seqid.to_le_bytes());
        out[4..6].copy_from_slice(&flag.to_le_bytes());
    }
}

/// The sender's half: stamps data shards and computes parity (kcp-go `fecEncoder`)
#[derive(Debug, Clone)]
pub(crate) struct FecEncoder {
    /// Data shards per group
    data: usize,
    /// Data plus parity shards per group
    total: usize,
    /// seqid wraps to 0 here, a multiple of `total` (kcp-go "protect against wrapped sequence")
    paws: u32,
    /// seqid of the next shard
    next: u32,
    /// Data shards collected in the current group
    count: usize,
    /// Longest datagram of the current group
    max_len: usize,
    /// Datagram length of each data shard of the current group
    lens: Vec<usize>,
    /// One row of [`MTU_LIMIT`] bytes per shard of the group, laid out as the datagram
    shards: Vec<u8>,
    /// The Reed–Solomon code
    codec: ReedSolomon,
}

impl FecEncoder {
    /// An encoder for groups of `data` data and `parity` parity shards
    pub(crate) fn new(data: usize, parity: usize) -> Result<Self, RsError> {
        let codec = ReedSolomon::new(data, parity)?;
        let total = data + parity;
        Ok(Self {
            data,
            total,
            paws: u32::MAX / total as u32 * total as u32,
            next: 0,
            count: 0,
            max_len: 0,
            lens: vec![0; data],
            shards: vec![0; total * MTU_LIMIT],
            codec,
        })
    }

    /// Stamps the header on `datagram`, emits it, and after every `data`-th one the parity shards
    ///
    /// `datagram` is a KCP datagram behind [`FEC_OVERHEAD`] reserved bytes.
    ///
    /// # Panics
    ///
    /// If `datagram` is shorter than [`FEC_OVERHEAD`] or longer than [`MTU_LIMIT`] (the session
    /// sizes KCP datagrams so that neither happens).
    pub(crate) fn encode(&mut self, datagram: &mut [u8], mut emit: impl FnMut(&[u8])) {
        let len = datagram.len();
        FecHeader {
            seqid: self.next,
            kind: ShardKind::Data,
        }
        .write(datagram);
        datagram[FEC_HEADER_LEN..FEC_OVERHEAD]
            .copy_from_slice(&((len - FEC_HEADER_LEN) as u16).to_le_bytes());
        // v5.4.20 applies the wrap only to parity shards, which end every group
        self.next = self.next.wrapping_add(1);
        self.shards[self.count * MTU_LIMIT..][FEC_HEADER_LEN..len]
            .copy_from_slice(&datagram[FEC_HEADER_LEN..]);
        self.lens[self.count] = len;
        self.max_len = self.max_len.max(len);
        self.count += 1;
        emit(datagram);
        if self.count == self.data {
            self.emit_parity(&mut emit);
            self.count = 0;
            self.max_len = 0;
        }
    }

    /// Pads the group's data rows, computes the parity rows and emits them as datagrams
    fn emit_parity(&mut self, emit: &mut impl FnMut(&[u8])) {
        let max = self.max_len;
        for (i, &len) in self.lens.iter().enumerate() {
            self.shards[i * MTU_LIMIT..][len..max].fill(0);
        }
        let regions = &mut self.shards[FEC_HEADER_LEN..];
        if self
            .codec
            .encode(regions, MTU_LIMIT, max - FEC_HEADER_LEN)
            .is_err()
        {
            return;
        }
        for p in self.data..self.total {
            let row = &mut self.shards[p * MTU_LIMIT..][..max];
            FecHeader {
                seqid: self.next,
                kind: ShardKind::Parity,
            }
            .write(row);
            self.next = self.next.wrapping_add(1) % self.paws;
            emit(row);
        }
    }
}

/// One stored shard
#[derive(Debug)]
struct RxShard {
    /// Its seqid
    seqid: u32,
    /// Data or parity
    kind: ShardKind,
    /// Arrival time, session milliseconds
    ts: u32,
    /// Datagram length
    len: usize,
    /// The datagram, in a [`MTU_LIMIT`]-byte buffer
    buf: Box<[u8]>,
}

impl RxShard {
    /// The region parity covers: everything after seqid and flag
    fn region(&self) -> &[u8] {
        &self.buf[FEC_HEADER_LEN..self.len]
    }
}

/// The receiver's half: stores shards per group and rebuilds lost data shards (kcp-go `fecDecoder`)
#[derive(Debug)]
pub(crate) struct FecDecoder {
    /// Data shards per group
    data: usize,
    /// Data plus parity shards per group
    total: usize,
    /// Most shards kept
    rx_limit: usize,
    /// Stored shards, ordered by seqid (wrapping)
    rx: VecDeque<RxShard>,
    /// Buffers of forgotten shards, reused for new ones
    spare: Vec<Box<[u8]>>,
    /// One row of [`REGION_STRIDE`] bytes per shard position, for reconstruction
    work: Vec<u8>,
    /// Which positions of the group being rebuilt are present
    present: Vec<bool>,
    /// The Reed–Solomon code
    codec: ReedSolomon,
    /// Rebuilt shards whose size field was invalid
    invalid: u64,
}

impl FecDecoder {
    /// A decoder for groups of `data` data and `parity` parity shards
    pub(crate) fn new(data: usize, parity: usize) -> Result<Self, RsError> {
        let codec = ReedSolomon::new(data, parity)?;
        let total = data + parity;
        let rx_limit = RX_FEC_MULTI * total;
        Ok(Self {
            data,
            total,
            rx_limit,
            rx: VecDeque::with_capacity(rx_limit + 1),
            spare: Vec::with_capacity(rx_limit + 1),
            work: vec![0; total * REGION_STRIDE],
            present: vec![false; total],
            codec,
            invalid: 0,
        })
    }

    /// Rebuilt shards dropped because their size field was invalid
    pub(crate) fn invalid(&self) -> u64 {
        self.invalid
    }

    /// Stores a shard whose `header` parsed; passes the KCP bytes of each rebuilt data shard of
    /// its group to `deliver` (the shard's own KCP bytes are the caller's to pass on)
    ///
    /// `now_ms` is the session clock, for the 60 s expiry.
    pub(crate) fn decode(
        &mut self,
        now_ms: u32,
        header: FecHeader,
        datagram: &[u8],
        deliver: impl FnMut(&[u8]),
    ) -> Result<(), KcpError> {
        if datagram.len() > MTU_LIMIT {
            return Err(KcpError::Oversize(datagram.len()));
        }
        if let Some(at) = self.insert(now_ms, header, datagram) {
            let total = self.total as u32;
            let pos = header.seqid % total;
            let begin = header.seqid.wrapping_sub(pos);
            let search_begin = at.saturating_sub(pos as usize);
            let search_end = (search_begin + self.total - 1).min(self.rx.len() - 1);
            if search_end + 1 - search_begin >= self.data {
                self.try_group(begin, search_begin..=search_end, deliver);
            }
        }
        self.forget_old(now_ms);
        Ok(())
    }

    /// Inserts a copy of the shard in seqid order; `None` for a duplicate
    fn insert(&mut self, now_ms: u32, header: FecHeader, datagram: &[u8]) -> Option<usize> {
        let mut at = 0;
        for (i, s) in self.rx.iter().enumerate().rev() {
            if s.seqid == header.seqid {
                return None;
            }
            if seq_diff(header.seqid, s.seqid) > 0 {
                at = i + 1;
                break;
            }
        }
        let mut buf = self
            .spare
            .pop()
            .unwrap_or_else(|| vec![0; MTU_LIMIT].into_boxed_slice());
        buf[..datagram.len()].copy_from_slice(datagram);
        let shard = RxShard {
            seqid: header.seqid,
            kind: header.kind,
            ts: now_ms,
            len: datagram.len(),
            buf,
        };
        self.rx.insert(at, shard);
        Some(at)
    }

    /// Completes the group starting at seqid `begin` if it can: forgets it when every data shard
    /// came, rebuilds the missing ones when at least `data` shards came
    fn try_group(
        &mut self,
        begin: u32,
        search: std::ops::RangeInclusive<usize>,
        deliver: impl FnMut(&[u8]),
    ) {
        let end = begin.wrapping_add(self.total as u32 - 1);
        self.present.fill(false);
        let (mut count, mut data_count, mut first, mut max) = (0, 0, 0, 0);
        for i in search {
            let s = &self.rx[i];
            if seq_diff(s.seqid, end) > 0 {
                break;
            }
            if seq_diff(s.seqid, begin) >= 0 {
                self.present[(s.seqid % self.total as u32) as usize] = true;
                if count == 0 {
                    first = i;
                }
                count += 1;
                data_count += usize::from(s.kind == ShardKind::Data);
                max = max.max(s.len.saturating_sub(FEC_HEADER_LEN));
            }
        }
        if data_count == self.data {
            self.forget(first, count);
        } else if count >= self.data {
            self.rebuild(first..first + count, max, deliver);
            self.forget(first, count);
        }
    }

    /// Rebuilds the missing data shards from the stored shards `range`, regions padded to `max`
    fn rebuild(
        &mut self,
        range: std::ops::Range<usize>,
        max: usize,
        mut deliver: impl FnMut(&[u8]),
    ) {
        for s in self.rx.range(range) {
            let row = &mut self.work[(s.seqid % self.total as u32) as usize * REGION_STRIDE..];
            let region = s.region();
            row[..region.len()].copy_from_slice(region);
            row[region.len()..max].fill(0);
        }
        if self
            .codec
            .reconstruct_data(&mut self.work, REGION_STRIDE, max, &self.present)
            .is_err()
        {
            return;
        }
        for k in (0..self.data).filter(|&k| !self.present[k]) {
            let row = &self.work[k * REGION_STRIDE..][..max];
            let size = row
                .get(..2)
                .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])));
            match size {
                Some(size) if (2..=max).contains(&size) => deliver(&row[2..size]),
                _ => self.invalid += 1,
            }
        }
    }

    /// Forgets `count` stored shards from index `first`
    fn forget(&mut self, first: usize, count: usize) {
        for s in self.rx.drain(first..first + count) {
            self.spare.push(s.buf);
        }
    }

    /// Enforces the shard limit and the expiry (kcp-go `rxlimit`, `fecExpire`)
    fn forget_old(&mut self, now_ms: u32) {
        if self.rx.len() > self.rx_limit {
            self.forget(0, 1);
        }
        let expired = self
            .rx
            .iter()
            .take_while(|s| seq_diff(now_ms, s.ts) > FEC_EXPIRE_MS)
            .count();
        self.forget(0, expired);
    }

    /// Shards currently stored
    #[cfg(test)]
    pub(crate) fn stored(&self) -> usize {
        self.rx.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data datagram carrying `payload` behind the reserved FEC bytes
    fn datagram(payload: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; FEC_OVERHEAD];
        d.extend_from_slice(payload);
        d
    }

    /// Payload `i` of a test group: varied lengths and contents
    fn payload(i: usize) -> Vec<u8> {
        (0..(24 + i * 37 % 300))
            .map(|j| (i * 7 + j * 13) as u8)
            .collect()
    }

    /// Encodes `n` payloads and returns every emitted datagram
    fn encode_all(enc: &mut FecEncoder, payloads: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for p in payloads {
            let mut d = datagram(p);
            enc.encode(&mut d, |x| out.push(x.to_vec()));
        }
        out
    }

    /// Feeds `shards` to `dec` like the session does: data shards' bytes pass on directly
    fn feed(dec: &mut FecDecoder, shards: &[&Vec<u8>]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (mut direct, mut recovered) = (Vec::new(), Vec::new());
        for s in shards {
            let h = FecHeader::parse(s).unwrap();
            if h.kind == ShardKind::Data {
                direct.push(s[FEC_OVERHEAD..].to_vec());
            }
            dec.decode(0, h, s, |r| recovered.push(r.to_vec())).unwrap();
        }
        (direct, recovered)
    }

    #[test]
    fn encoder_layout() {
        let mut enc = FecEncoder::new(3, 2).unwrap();
        let payloads: Vec<Vec<u8>> = (0..3).map(payload).collect();
        let out = encode_all(&mut enc, &payloads);
        assert_eq!(out.len(), 5);
        for (i, d) in out.iter().enumerate() {
            let h = FecHeader::parse(d).unwrap();
            assert_eq!(h.seqid, i as u32);
            let kind = if i < 3 {
                ShardKind::Data
            } else {
                ShardKind::Parity
            };
            assert_eq!(h.kind, kind);
        }
        for i in 0..3 {
            assert_eq!(&out[i][FEC_OVERHEAD..], &payloads[i][..]);
            let size = u16::from_le_bytes([out[i][6], out[i][7]]) as usize;
            assert_eq!(size, 2 + payloads[i].len());
        }
        let longest = out[..3].iter().map(Vec::len).max().unwrap();
        assert_eq!(out[3].len(), longest);
        assert_eq!(out[4].len(), longest);
    }

    #[test]
    fn every_loss_pattern_up_to_parity_is_recovered() {
        let (data, parity) = (10, 3);
        let total = data + parity;
        let mut enc = FecEncoder::new(data, parity).unwrap();
        let payloads: Vec<Vec<u8>> = (0..data).map(payload).collect();
        let shards = encode_all(&mut enc, &payloads);
        let mut patterns = 0;
        for mask in 0u32..(1 << total) {
            if mask.count_ones() > parity as u32 {
                continue;
            }
            let kept: Vec<&Vec<u8>> = (0..total)
                .filter(|i| mask & (1 << i) == 0)
                .map(|i| &shards[i])
                .collect();
            let mut dec = FecDecoder::new(data, parity).unwrap();
            let (direct, mut recovered) = feed(&mut dec, &kept);
            let mut lost: Vec<Vec<u8>> = (0..data)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| payloads[i].clone())
                .collect();
            lost.sort();
            recovered.sort();
            assert_eq!(recovered, lost, "mask {mask:#015b}");
            assert_eq!(direct.len() + recovered.len(), data);
            patterns += 1;
        }
        assert_eq!(patterns, 1 + 13 + 78 + 286);
    }

    #[test]
    fn shuffled_arrival_still_recovers() {
        let mut enc = FecEncoder::new(10, 3).unwrap();
        let payloads: Vec<Vec<u8>> = (0..20).map(payload).collect();
        let shards = encode_all(&mut enc, &payloads);
        assert_eq!(shards.len(), 26);
        // lose 2 data shards per group, deliver the rest in a scrambled order
        let lost = [1, 7, 13, 22];
        let mut kept: Vec<&Vec<u8>> = shards
            .iter()
            .enumerate()
            .filter(|(i, _)| !lost.contains(i))
            .map(|(_, s)| s)
            .collect();
        kept.reverse();
        kept.swap(3, 17);
        let mut dec = FecDecoder::new(10, 3).unwrap();
        let (_, recovered) = feed(&mut dec, &kept);
        // as in kcp-go, a group is rebuilt as soon as `data` shards are in, so a data shard
        // still on its way is rebuilt too (KCP drops the duplicate later)
        for p in [1, 7, 10, 19] {
            assert!(recovered.contains(&payloads[p]), "payload {p}");
        }
        assert!(recovered.iter().all(|r| payloads.contains(r)));
    }

    #[test]
    fn too_many_losses_recover_nothing_and_stay_bounded() {
        let mut enc = FecEncoder::new(10, 3).unwrap();
        let mut dec = FecDecoder::new(10, 3).unwrap();
        for group in 0..50 {
            let payloads: Vec<Vec<u8>> = (0..10).map(|i| payload(group * 10 + i)).collect();
            let shards = encode_all(&mut enc, &payloads);
            let kept: Vec<&Vec<u8>> = shards.iter().skip(4).collect();
            let (_, recovered) = feed(&mut dec, &kept);
            assert!(recovered.is_empty());
            assert!(dec.stored() <= 39);
        }
        assert!(dec.spare.len() + dec.stored() <= 40);
    }

    #[test]
    fn seqid_wraps_at_a_multiple_of_the_group() {
        let mut enc = FecEncoder::new(10, 3).unwrap();
        assert_eq!(enc.paws, 4_294_967_287); // floor(0xffffffff / 13) * 13
        enc.next = enc.paws - 13;
        let mut dec = FecDecoder::new(10, 3).unwrap();
        let payloads: Vec<Vec<u8>> = (0..20).map(payload).collect();
        let shards = encode_all(&mut enc, &payloads);
        let seqids: Vec<u32> = shards
            .iter()
            .map(|s| FecHeader::parse(s).unwrap().seqid)
            .collect();
        assert_eq!(seqids[12], enc.paws - 1);
        assert_eq!(seqids[13], 0);
        // a loss in the group before the wrap and in the one after
        let kept: Vec<&Vec<u8>> = shards
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 5 && *i != 15)
            .map(|(_, s)| s)
            .collect();
        let (_, mut recovered) = feed(&mut dec, &kept);
        recovered.sort();
        let mut lost = vec![payloads[5].clone(), payloads[12].clone()];
        lost.sort();
        assert_eq!(recovered, lost);
    }

    #[test]
    fn expired_shards_are_forgotten() {
        let mut enc = FecEncoder::new(10, 3).unwrap();
        let shards = encode_all(&mut enc, &(0..10).map(payload).collect::<Vec<_>>());
        let mut dec = FecDecoder::new(10, 3).unwrap();
        for s in &shards[..5] {
            dec.decode(0, FecHeader::parse(s).unwrap(), s, |_| {})
                .unwrap();
        }
        assert_eq!(dec.stored(), 5);
        let s = &shards[6];
        dec.decode(60_001, FecHeader::parse(s).unwrap(), s, |_| {})
            .unwrap();
        assert_eq!(dec.stored(), 1);
    }

    #[test]
    fn header_parsing_rejects_short_and_foreign() {
        assert_eq!(FecHeader::parse(&[0; 6]), Err(KcpError::Truncated));
        assert_eq!(
            FecHeader::parse(&[0, 0, 0, 0, 0xf3, 0, 1]),
            Err(KcpError::NotFec)
        );
        assert_eq!(
            FecHeader::parse(&[1, 0, 0, 0, 0xf2, 0, 1]),
            Ok(FecHeader {
                seqid: 1,
                kind: ShardKind::Parity
            })
        );
        let mut dec = FecDecoder::new(10, 3).unwrap();
        let long = vec![0u8; MTU_LIMIT + 1];
        let h = FecHeader {
            seqid: 0,
            kind: ShardKind::Parity,
        };
        assert_eq!(
            dec.decode(0, h, &long, |_| {}),
            Err(KcpError::Oversize(1501))
        );
    }

    #[test]
    fn garbage_never_panics_the_decoder() {
        use rand_chacha::ChaCha8Rng;
        use rand_core::{RngCore, SeedableRng};
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut dec = FecDecoder::new(4, 2).unwrap();
        let mut buf = [0u8; 64];
        let mut rebuilt = 0;
        for round in 0..20_000u32 {
            let len = 7 + rng.next_u32() as usize % 57;
            rng.fill_bytes(&mut buf[..len]);
            buf[4] = if round % 2 == 0 { 0xf1 } else { 0xf2 };
            buf[5] = 0;
            // keep seqids close together so groups form and get rebuilt
            buf[1..4].fill(0);
            buf[0] %= 24;
            let d = &buf[..len];
            let h = FecHeader::parse(d).unwrap();
            dec.decode(round, h, d, |r| {
                assert!(r.len() < 64);
                rebuilt += 1;
            })
            .unwrap();
            assert!(dec.stored() <= 18);
        }
        assert!(
            rebuilt > 0 && dec.invalid() > 0,
            "{rebuilt} {}",
            dec.invalid()
        );
    }
}
