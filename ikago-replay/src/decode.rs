//! Reading frames back: one-line descriptions, IPv4 reassembly, and FakeTCP tunnel decoding

use crate::capture::Frame;
use crate::packet::{be16, be32};
use ikago_proto::Method;
use ikago_proto::ReassemblyLimits;
use ikago_proto::crypto::Cipher;
use ikago_proto::fragment::Reassembler;
use ikago_proto::wire::proto::{ICMP, TCP, UDP};
use ikago_proto::wire::tcp::{ACK, FIN, PSH, RST, SYN};
use ikago_proto::wire::{arp, ethernet, icmp, ipv4, tcp};
use std::fmt::Write;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

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
    let Some(eth) = ethernet::parse(frame) else {
        return format!("runt frame of {} bytes", frame.len());
    };
    let mut s = format!("{} > {} ", eth.src, eth.dst);
    let _ = match eth.ethertype {
        ethernet::ETHERTYPE_ARP => match arp::parse(eth.payload) {
            Some(a) if a.op == arp::OP_REQUEST => {
                write!(s, "ARP request who-has {} tell {}", a.tpa, a.spa)
            }
            Some(a) if a.op == arp::OP_REPLY => write!(s, "ARP reply {} is-at {}", a.spa, a.sha),
            Some(a) => write!(s, "ARP op {}", a.op),
            None => write!(s, "ARP (malformed)"),
        },
        ethernet::ETHERTYPE_IPV4 => match ipv4::Packet::parse(eth.payload) {
            Ok(ip) => write!(s, "{}", Ipv4Line(&ip)),
            Err(ipv4::Error::Checksum) => write!(s, "IPv4 (bad header checksum)"),
            Err(ipv4::Error::Malformed) => write!(s, "IPv4 (malformed)"),
        },
        other => write!(s, "ethertype {other:#06x} len={}", eth.payload.len()),
    };
    s
}

/// The description of an IPv4 packet or fragment
struct Ipv4Line<'a, 'b>(&'a ipv4::Packet<'b>);

impl std::fmt::Display for Ipv4Line<'_, '_> {
    fn fmt(&self, s: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ip = self.0;
        let (src, dst, p) = (ip.src(), ip.dst(), ip.payload());
        let more = if ip.more_fragments() { " +MF" } else { "" };
        if ip.fragment_offset() > 0 {
            return write!(
                s,
                "{src} > {dst} fragment id={} offset={} len={}{more}",
                ip.id(),
                ip.fragment_offset(),
                p.len(),
            );
        }
        match ip.protocol() {
            TCP if p.len() >= tcp::HEADER_LEN => {
                let data = usize::from(p[12] >> 4) * 4;
                write!(
                    s,
                    "{src}:{} > {dst}:{} TCP [{}] seq={} ack={} len={}",
                    be16(p, 0),
                    be16(p, 2),
                    tcp_flags(p[13]),
                    be32(p, 4),
                    be32(p, 8),
                    p.len().saturating_sub(data)
                )
            }
            UDP if p.len() >= 8 => write!(
                s,
                "{src}:{} > {dst}:{} UDP len={}",
                be16(p, 0),
                be16(p, 2),
                p.len() - 8
            ),
            ICMP if p.len() >= icmp::HEADER_LEN => match p[0] {
                icmp::ECHO_REQUEST | icmp::ECHO_REPLY => write!(
                    s,
                    "{src} > {dst} ICMP echo {} id={} seq={} len={}",
                    if p[0] == icmp::ECHO_REQUEST {
                        "request"
                    } else {
                        "reply"
                    },
                    be16(p, 4),
                    be16(p, 6),
                    p.len()
                ),
                t => write!(
                    s,
                    "{src} > {dst} ICMP type={t} code={} len={}",
                    p[1],
                    p.len()
                ),
            },
            proto => write!(s, "{src} > {dst} proto={proto} len={}", p.len()),
        }?;
        s.write_str(more)
    }
}

/// IPv4 reassembly for reading captures back: the machines' own [`Reassembler`], its timeout
/// running on capture time
#[derive(Debug)]
pub struct Defragmenter {
    reassembler: Reassembler,
    /// The instant that stands for capture time zero
    base: Instant,
    /// The latest instant fed, for a capture time too large to stand for
    latest: Instant,
}

impl Default for Defragmenter {
    fn default() -> Self {
        let base = Instant::now();
        Self {
            reassembler: Reassembler::new(ReassemblyLimits::default()),
            base,
            latest: base,
        }
    }
}

impl Defragmenter {
    /// The whole datagram once `packet`, captured at `time`, completes it (at once when it is not
    /// a fragment); `None` while it is incomplete, and for what is not a valid IPv4 packet or
    /// fragment. The datagram is valid until the next call.
    pub fn push<'a>(&'a mut self, time: Duration, packet: &'a [u8]) -> Option<&'a [u8]> {
        let ip = ipv4::Packet::parse(packet).ok()?;
        if !ip.is_fragment() {
            return Some(ip.bytes());
        }
        let now = self.base.checked_add(time).unwrap_or(self.latest);
        self.latest = self.latest.max(now);
        if self.reassembler.poll_timeout().is_some_and(|t| t <= now) {
            self.reassembler.handle_timeout(now);
        }
        self.reassembler.handle_fragment(now, 0, &ip).ok()?
    }
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

    /// The FakeTCP segment `frame` carries or completes, if it belongs to the tunnel and is valid
    /// as the machines see it ([`tcp::Segment::parse_tunnel`])
    pub fn segment(&mut self, frame: &Frame) -> Option<Segment> {
        let eth = ethernet::parse(&frame.data)?;
        if eth.ethertype != ethernet::ETHERTYPE_IPV4 {
            return None;
        }
        let whole = self.defrag.push(frame.time, eth.payload)?;
        let ip = ipv4::Packet::parse(whole).ok()?;
        if ip.protocol() != TCP {
            return None;
        }
        let t = tcp::Segment::parse_tunnel(ip.payload(), ip.src(), ip.dst())?;
        if t.src_port() != self.port && t.dst_port() != self.port {
            return None;
        }
        Some(Segment {
            src: SocketAddrV4::new(ip.src(), t.src_port()),
            dst: SocketAddrV4::new(ip.dst(), t.dst_port()),
            seq: t.seq(),
            ack: t.ack(),
            flags: t.flags(),
            payload: t.payload().to_vec(),
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
    use ikago_proto::fragment::fragment;
    use ikago_proto::wire::checksum;

    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 11, 2], [198, 18, 13, 2], 64)
            .udp(40007, 7)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// A UDP packet without DF, and its fragments of at most `mtu` bytes
    fn fragmented(payload: &[u8], mtu: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut p = udp_frame(payload).split_off(ethernet::HEADER_LEN);
        p[6] &= !0x40;
        p[10..12].fill(0);
        let c = checksum::of(&p[..ipv4::HEADER_LEN]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let mut frags = Vec::new();
        let whole = ipv4::Packet::parse(&p).unwrap();
        fragment(&whole, mtu, |h, chunk| frags.push([h, chunk].concat()));
        (p, frags)
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
        let (packet, mut frags) = fragmented(&[7; 100], 68);
        assert_eq!(frags.len(), 3);
        frags.reverse();
        let mut d = Defragmenter::default();
        let at = Duration::from_secs(1_700_000_000);
        let got: Vec<_> = frags
            .iter()
            .filter_map(|f| d.push(at, f).map(<[u8]>::to_vec))
            .collect();
        assert_eq!(got, [&packet[..]]);
        assert_eq!(d.push(at, &packet), Some(&packet[..]), "a whole packet");
    }

    #[test]
    fn incomplete_datagrams_expire_on_capture_time() {
        let (packet, frags) = fragmented(&[7; 100], 68);
        let mut d = Defragmenter::default();
        let at = Duration::from_secs(1_700_000_000);
        assert_eq!(d.push(at, &frags[0]), None);
        let late = at + ReassemblyLimits::default().timeout;
        for f in &frags[1..] {
            assert_eq!(d.push(late, f), None, "the first fragment expired");
        }
        assert_eq!(d.push(late, &frags[0]), Some(&packet[..]));
    }
}
