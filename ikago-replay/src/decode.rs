//! Reading frames back: one-line descriptions, IPv4 reassembly, and FakeTCP tunnel decoding

use crate::packet::{ETHERTYPE_ARP, ETHERTYPE_IPV4, ICMP, Ipv4, TCP, UDP, be16, be32, ethernet};
use ikago_proto::crypto::Cipher;
use ikago_proto::{Mac, Method};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Datagrams a [`Defragmenter`] reassembles at once; the oldest is dropped beyond
const MAX_PENDING: usize = 64;

/// TCP flag bits
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

fn mac_at(b: &[u8], at: usize) -> Mac {
    let mut m = [0; 6];
    if let Some(s) = b.get(at..at + 6) {
        m.copy_from_slice(s);
    }
    Mac(m)
}

/// TCP flags as letters in the order of the captures' scenario.json: `S`, `SA`, `A`, `AP`, `AF`, ...
pub fn tcp_flags(flags: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [(SYN, 'S'), (RST, 'R'), (ACK, 'A'), (PSH, 'P'), (FIN, 'F')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    if s.is_empty() { ".".into() } else { s }
}

/// A one-line description of an Ethernet frame, for diffs and logs
pub fn describe(frame: &[u8]) -> String {
    let Some((ethertype, payload)) = ethernet(frame) else {
        return format!("runt frame of {} bytes", frame.len());
    };
    let mut s = format!("{} > {} ", mac_at(frame, 6), mac_at(frame, 0));
    match ethertype {
        ETHERTYPE_ARP if payload.len() >= 28 => {
            let (spa, tpa) = (
                Ipv4Addr::from(be32(payload, 14)),
                Ipv4Addr::from(be32(payload, 24)),
            );
            let _ = match be16(payload, 6) {
                1 => write!(s, "ARP request who-has {tpa} tell {spa}"),
                2 => write!(s, "ARP reply {spa} is-at {}", mac_at(payload, 8)),
                op => write!(s, "ARP op {op}"),
            };
        }
        ETHERTYPE_IPV4 => match Ipv4::parse(payload) {
            Some(ip) => describe_ipv4(&mut s, &ip),
            None => s.push_str("IPv4 (malformed)"),
        },
        other => {
            let _ = write!(s, "ethertype {other:#06x} len={}", payload.len());
        }
    }
    s
}

fn describe_ipv4(s: &mut String, ip: &Ipv4<'_>) {
    let p = ip.payload();
    if ip.offset > 0 {
        let _ = write!(
            s,
            "{} > {} fragment id={} offset={} len={}{}",
            ip.src,
            ip.dst,
            ip.id,
            ip.offset,
            p.len(),
            if ip.more { " +MF" } else { "" }
        );
        return;
    }
    let _ = match ip.protocol {
        TCP if p.len() >= 20 => {
            let data = usize::from(p[12] >> 4) * 4;
            write!(
                s,
                "{}:{} > {}:{} TCP [{}] seq={} ack={} len={}",
                ip.src,
                be16(p, 0),
                ip.dst,
                be16(p, 2),
                tcp_flags(p[13]),
                be32(p, 4),
                be32(p, 8),
                p.len().saturating_sub(data)
            )
        }
        UDP if p.len() >= 8 => write!(
            s,
            "{}:{} > {}:{} UDP len={}",
            ip.src,
            be16(p, 0),
            ip.dst,
            be16(p, 2),
            p.len() - 8
        ),
        ICMP if p.len() >= 8 => match p[0] {
            0 | 8 => write!(
                s,
                "{} > {} ICMP echo {} id={} seq={} len={}",
                ip.src,
                ip.dst,
                if p[0] == 8 { "request" } else { "reply" },
                be16(p, 4),
                be16(p, 6),
                p.len()
            ),
            t => write!(
                s,
                "{} > {} ICMP type={t} code={} len={}",
                ip.src,
                ip.dst,
                p[1],
                p.len()
            ),
        },
        proto => write!(s, "{} > {} proto={proto} len={}", ip.src, ip.dst, p.len()),
    };
    if ip.more {
        s.push_str(" +MF");
    }
}

/// The parts of one datagram being reassembled
#[derive(Debug, Default)]
struct Parts {
    /// Header of the first fragment, once seen
    header: Option<Vec<u8>>,
    /// (offset, bytes) of each fragment's payload
    pieces: Vec<(usize, Vec<u8>)>,
    /// Payload length, once the last fragment is seen
    total: Option<usize>,
}

/// IPv4 reassembly for reading captures back (bounded; overlaps are resolved first-come)
#[derive(Debug, Default)]
pub struct Defragmenter {
    pending: HashMap<(Ipv4Addr, Ipv4Addr, u16, u8), Parts>,
    order: VecDeque<(Ipv4Addr, Ipv4Addr, u16, u8)>,
}

impl Defragmenter {
    /// The whole datagram once `packet` completes it (at once when it is not a fragment)
    pub fn push(&mut self, packet: &[u8]) -> Option<Vec<u8>> {
        let ip = Ipv4::parse(packet)?;
        if !ip.is_fragment() {
            return Some(ip.bytes.to_vec());
        }
        let key = (ip.src, ip.dst, ip.id, ip.protocol);
        if !self.pending.contains_key(&key) {
            if self.order.len() >= MAX_PENDING
                && let Some(old) = self.order.pop_front()
            {
                self.pending.remove(&old);
            }
            self.order.push_back(key);
        }
        let parts = self.pending.entry(key).or_default();
        if ip.offset == 0 {
            parts.header = Some(ip.bytes[..ip.header_len].to_vec());
        }
        if !ip.more {
            parts.total = Some(ip.offset + ip.payload().len());
        }
        parts.pieces.push((ip.offset, ip.payload().to_vec()));
        let whole = assemble(parts)?;
        self.pending.remove(&key);
        self.order.retain(|k| *k != key);
        Some(whole)
    }
}

/// The datagram, if `parts` cover it from 0 to its end
fn assemble(parts: &mut Parts) -> Option<Vec<u8>> {
    let (header, total) = (parts.header.as_ref()?, parts.total?);
    parts.pieces.sort_by_key(|p| p.0);
    let mut payload = Vec::with_capacity(total);
    for (off, bytes) in &parts.pieces {
        if *off > payload.len() {
            return None;
        }
        let skip = payload.len() - off;
        payload.extend_from_slice(bytes.get(skip..).unwrap_or(&[]));
    }
    if payload.len() < total || header.len() + total > usize::from(u16::MAX) {
        return None;
    }
    payload.truncate(total);
    let mut out = header.clone();
    out.extend_from_slice(&payload);
    let len = out.len() as u16;
    out[2..4].copy_from_slice(&len.to_be_bytes());
    out[6] &= 0x40; // keep DF, clear MF and the offset
    out[7] = 0;
    out[10..12].copy_from_slice(&[0, 0]);
    let sum = ipv4_checksum(&out[..header.len()]);
    out[10..12].copy_from_slice(&sum.to_be_bytes());
    Some(out)
}

/// The Internet checksum of an IPv4 header (RFC 1071)
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut acc: u32 = header
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// One FakeTCP segment, after IPv4 reassembly
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Sender
    pub src: SocketAddrV4,
    /// Receiver
    pub dst: SocketAddrV4,
    /// Sequence number
    pub seq: u32,
    /// Acknowledgment number
    pub ack: u32,
    /// TCP flags (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10)
    pub flags: u8,
    /// The TCP payload: a sealed inner packet, or empty
    pub payload: Vec<u8>,
}

/// Finds the FakeTCP segments of a tunnel in a stream of frames and opens their payloads
#[derive(Debug)]
pub struct TunnelDecoder {
    port: u16,
    cipher: Cipher,
    defrag: Defragmenter,
}

impl TunnelDecoder {
    /// A decoder for the tunnel on TCP port `port` (the server's), keyed by `method` and `password`
    pub fn new(method: Method, password: &str, port: u16) -> Self {
        Self {
            port,
            cipher: Cipher::new(method, password),
            defrag: Defragmenter::default(),
        }
    }

    /// The FakeTCP segment `frame` carries or completes, if it belongs to the tunnel
    pub fn segment(&mut self, frame: &[u8]) -> Option<Segment> {
        let (ETHERTYPE_IPV4, ip) = ethernet(frame)? else {
            return None;
        };
        let whole = self.defrag.push(ip)?;
        let ip = Ipv4::parse(&whole)?;
        let p = ip.payload();
        if ip.protocol != TCP || p.len() < 20 {
            return None;
        }
        let (sport, dport) = (be16(p, 0), be16(p, 2));
        if sport != self.port && dport != self.port {
            return None;
        }
        let data = usize::from(p[12] >> 4) * 4;
        Some(Segment {
            src: SocketAddrV4::new(ip.src, sport),
            dst: SocketAddrV4::new(ip.dst, dport),
            seq: be32(p, 4),
            ack: be32(p, 8),
            flags: p[13],
            payload: p.get(data..)?.to_vec(),
        })
    }

    /// Opens a sealed payload: the inner packet, or `None` when it does not authenticate
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0; sealed.len()];
        let n = self.cipher.open_into(sealed, &mut out).ok()?;
        out.truncate(n);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 11, 2], [198, 18, 13, 2], 64)
            .udp(40007, 7)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// Splits the IPv4 packet of `frame` into fragments of at most `chunk` payload bytes
    fn fragments(frame: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let ip = &frame[14..];
        let (header, payload) = ip.split_at(20);
        payload
            .chunks(chunk)
            .enumerate()
            .map(|(i, c)| {
                let mut h = header.to_vec();
                let more = (i + 1) * chunk < payload.len();
                let df = u16::from_be_bytes([header[6], header[7]]) & 0x4000;
                let field = ((i * chunk / 8) as u16) | df | if more { 0x2000 } else { 0 };
                h[6..8].copy_from_slice(&field.to_be_bytes());
                h[2..4].copy_from_slice(&((20 + c.len()) as u16).to_be_bytes());
                h.extend_from_slice(c);
                h
            })
            .collect()
    }

    #[test]
    fn describes_common_frames() {
        let d = describe(&udp_frame(b"hello"));
        assert_eq!(
            d,
            "02:00:00:00:00:01 > 02:00:00:00:00:02 198.18.11.2:40007 > 198.18.13.2:7 UDP len=5"
        );
        assert_eq!(describe(&[1, 2, 3]), "runt frame of 3 bytes");
        assert_eq!(tcp_flags(SYN | ACK), "SA");
    }

    #[test]
    fn reassembles_out_of_order() {
        let frame = udp_frame(&[7; 100]);
        let mut frags = fragments(&frame, 48);
        frags.reverse();
        let mut d = Defragmenter::default();
        let got: Vec<_> = frags.iter().filter_map(|f| d.push(f)).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0][..], &frame[14..]);
    }
}
