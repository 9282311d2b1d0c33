//! Byte-level helpers the simulated routers and kernels need: Ethernet, ARP, IPv4 fields,
//! Internet checksums and IPv4 fragmentation (RFC 791 §3.2)

use std::net::Ipv4Addr;

/// Ethernet header length
pub(crate) const ETH_LEN: usize = 14;
/// EtherType of IPv4
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP
pub(crate) const ETHERTYPE_ARP: u16 = 0x0806;
/// The broadcast MAC
pub(crate) const BROADCAST: [u8; 6] = [0xff; 6];
/// IP protocol number of ICMP
pub(crate) const ICMP: u8 = 1;
/// IP protocol number of TCP
pub(crate) const TCP: u8 = 6;
/// IP protocol number of UDP
pub(crate) const UDP: u8 = 17;

/// Destination MAC of an Ethernet frame (the caller checked the length)
pub(crate) fn eth_dst(frame: &[u8]) -> [u8; 6] {
    frame[0..6].try_into().expect("six bytes")
}

/// EtherType of a frame, if it has a whole Ethernet header
pub(crate) fn ethertype(frame: &[u8]) -> Option<u16> {
    (frame.len() >= ETH_LEN).then(|| u16::from_be_bytes([frame[12], frame[13]]))
}

/// An Ethernet frame around `payload`
pub(crate) fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_LEN + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An Ethernet/IPv4 ARP message (RFC 826)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arp {
    /// 1 request, 2 reply
    pub(crate) op: u16,
    /// Sender MAC
    pub(crate) sha: [u8; 6],
    /// Sender IPv4 address
    pub(crate) spa: Ipv4Addr,
    /// Target MAC
    pub(crate) tha: [u8; 6],
    /// Target IPv4 address
    pub(crate) tpa: Ipv4Addr,
}

impl Arp {
    /// ARP request
    pub(crate) const REQUEST: u16 = 1;
    /// ARP reply
    pub(crate) const REPLY: u16 = 2;

    /// Parses an Ethernet frame carrying ARP
    pub(crate) fn parse(frame: &[u8]) -> Option<Self> {
        if ethertype(frame) != Some(ETHERTYPE_ARP) {
            return None;
        }
        let a = frame.get(ETH_LEN..ETH_LEN + 28)?;
        if a[0..6] != [0, 1, 8, 0, 6, 4] {
            return None;
        }
        let ip = |at: usize| Ipv4Addr::new(a[at], a[at + 1], a[at + 2], a[at + 3]);
        Some(Self {
            op: u16::from_be_bytes([a[6], a[7]]),
            sha: a[8..14].try_into().expect("six bytes"),
            spa: ip(14),
            tha: a[18..24].try_into().expect("six bytes"),
            tpa: ip(24),
        })
    }

    /// The whole Ethernet frame carrying this message, from `sha` to `dst`
    pub(crate) fn frame(&self, dst: [u8; 6]) -> Vec<u8> {
        let mut a = vec![0, 1, 8, 0, 6, 4];
        a.extend_from_slice(&self.op.to_be_bytes());
        a.extend_from_slice(&self.sha);
        a.extend_from_slice(&self.spa.octets());
        a.extend_from_slice(&self.tha);
        a.extend_from_slice(&self.tpa.octets());
        ethernet(dst, self.sha, ETHERTYPE_ARP, &a)
    }

    /// The reply a host owning `tpa` at `mac` gives to this request
    pub(crate) fn reply(&self, mac: [u8; 6]) -> Self {
        Self {
            op: Self::REPLY,
            sha: mac,
            spa: self.tpa,
            tha: self.sha,
            tpa: self.spa,
        }
    }
}

/// A whole IPv4 packet (header checked: version, header length, total length)
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ipv4<'a> {
    bytes: &'a [u8],
}

impl<'a> Ipv4<'a> {
    /// Checks the fixed fields; trailing bytes beyond the total length are cut off
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<Self> {
        let first = *bytes.first()?;
        let ihl = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || ihl < 20 || bytes.len() < ihl {
            return None;
        }
        let total = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if total < ihl || total > bytes.len() {
            return None;
        }
        Some(Self {
            bytes: &bytes[..total],
        })
    }

    /// The packet's bytes (up to its total length)
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// Header length in bytes
    pub(crate) fn header_len(&self) -> usize {
        usize::from(self.bytes[0] & 0x0f) * 4
    }
    /// Protocol number
    pub(crate) fn protocol(&self) -> u8 {
        self.bytes[9]
    }
    /// Source address
    pub(crate) fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(
            self.bytes[12],
            self.bytes[13],
            self.bytes[14],
            self.bytes[15],
        )
    }
    /// Destination address
    pub(crate) fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(
            self.bytes[16],
            self.bytes[17],
            self.bytes[18],
            self.bytes[19],
        )
    }
    /// The raw flags and fragment offset field
    fn flags_offset(&self) -> u16 {
        u16::from_be_bytes([self.bytes[6], self.bytes[7]])
    }
    /// Whether DF is set
    pub(crate) fn dont_fragment(&self) -> bool {
        self.flags_offset() & 0x4000 != 0
    }
    /// Whether this is a fragment (MF set or a non-zero offset)
    pub(crate) fn is_fragment(&self) -> bool {
        self.flags_offset() & 0x3fff != 0
    }
    /// The payload after the header
    pub(crate) fn payload(&self) -> &'a [u8] {
        &self.bytes[self.header_len()..]
    }
    /// Source and destination ports of a whole TCP or UDP packet
    pub(crate) fn ports(&self) -> Option<(u16, u16)> {
        let p = self.payload();
        if self.is_fragment() || !matches!(self.protocol(), TCP | UDP) || p.len() < 8 {
            return None;
        }
        Some((
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ))
    }
}

/// The Internet checksum (RFC 1071) of `data`, continuing from the partial sum `sum`
fn checksum(data: &[u8], mut sum: u32) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Recomputes the IPv4 header checksum (after a new header was written or the TTL changed)
pub(crate) fn fill_header_checksum(pkt: &mut [u8]) {
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    pkt[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&pkt[..ihl], 0);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Replaces `pkt[at..at + new.len()]` by `new` and updates the 16-bit checksum at `sum_at`
/// incrementally (RFC 1624 eqn. 3), as a NAT does: a checksum that was wrong stays wrong
pub(crate) fn rewrite(pkt: &mut [u8], at: usize, new: &[u8], sum_at: &[usize]) {
    let words = |b: &[u8]| -> Vec<u16> {
        b.chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect()
    };
    let old = words(&pkt[at..at + new.len()]);
    let new_words = words(new);
    pkt[at..at + new.len()].copy_from_slice(new);
    for &s in sum_at {
        let field = u16::from_be_bytes([pkt[s], pkt[s + 1]]);
        let mut sum = u32::from(!field);
        sum += old.iter().map(|w| u32::from(!w)).sum::<u32>();
        sum += new_words.iter().map(|&w| u32::from(w)).sum::<u32>();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        pkt[s..s + 2].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    }
}

/// Splits a packet larger than `mtu` into fragments of at most `mtu` bytes, each carrying the
/// original header (a fragment's offset and MF are kept, so fragments can be fragmented again);
/// `None` when DF is set
pub(crate) fn fragment(pkt: Ipv4<'_>, mtu: usize) -> Option<Vec<Vec<u8>>> {
    if pkt.dont_fragment() {
        return None;
    }
    let hl = pkt.header_len();
    let header = &pkt.bytes()[..hl];
    let field = u16::from_be_bytes([header[6], header[7]]);
    let (base, last_mf) = (usize::from(field & 0x1fff) * 8, field & 0x2000 != 0);
    let chunk = (mtu - hl) / 8 * 8;
    let payload = pkt.payload();
    let mut out = Vec::new();
    for (i, part) in payload.chunks(chunk).enumerate() {
        let more = i * chunk + part.len() < payload.len() || last_mf;
        let offset = (base + i * chunk) / 8;
        let mut f = Vec::with_capacity(hl + part.len());
        f.extend_from_slice(header);
        f.extend_from_slice(part);
        f[2..4].copy_from_slice(&((hl + part.len()) as u16).to_be_bytes());
        f[6..8].copy_from_slice(&((offset as u16) | if more { 0x2000 } else { 0 }).to_be_bytes());
        fill_header_checksum(&mut f);
        out.push(f);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket};

    fn udp_packet(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([198, 18, 11, 2], [198, 18, 13, 2], 64)
            .udp(5000, 7)
            .write(&mut out, payload)
            .expect("vec");
        out[6] &= !0x40; // DF off
        fill_header_checksum(&mut out);
        out
    }

    #[test]
    fn rewrites_keep_checksums_valid() {
        let mut p = udp_packet(b"hello world");
        rewrite(&mut p, 12, &[198, 18, 14, 1], &[10, 26]);
        rewrite(&mut p, 20, &4242u16.to_be_bytes(), &[26]);
        let mut reference = Vec::new();
        PacketBuilder::ipv4([198, 18, 14, 1], [198, 18, 13, 2], 64)
            .udp(4242, 7)
            .write(&mut reference, b"hello world")
            .expect("vec");
        reference[6] &= !0x40;
        fill_header_checksum(&mut reference);
        assert_eq!(p, reference);
        p[10] ^= 0xff;
        fill_header_checksum(&mut p);
        assert_eq!(p, reference);
    }

    #[test]
    fn fragments_carry_the_payload_in_order() {
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let p = udp_packet(&payload);
        let frags = fragment(Ipv4::parse(&p).expect("valid"), 1000).expect("DF clear");
        assert_eq!(frags.len(), 4);
        let mut joined = Vec::new();
        for f in &frags {
            assert!(f.len() <= 1000);
            let v = Ipv4::parse(f).expect("valid fragment");
            assert!(v.is_fragment());
            joined.extend_from_slice(v.payload());
            let h = etherparse::Ipv4HeaderSlice::from_slice(f).expect("header");
            assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
        }
        assert_eq!(joined, p[20..]);
        assert!(SlicedPacket::from_ip(&frags[0]).is_ok());
    }

    #[test]
    fn arp_round_trip() {
        let a = Arp {
            op: Arp::REQUEST,
            sha: [2, 0, 0, 0, 0x12, 2],
            spa: Ipv4Addr::new(198, 18, 12, 2),
            tha: [0; 6],
            tpa: Ipv4Addr::new(198, 18, 12, 1),
        };
        let f = a.frame(BROADCAST);
        assert_eq!(ethertype(&f), Some(ETHERTYPE_ARP));
        assert_eq!(Arp::parse(&f), Some(a));
        let r = a.reply([2, 0, 0, 0, 0x12, 1]);
        assert_eq!((r.spa, r.tpa, r.tha), (a.tpa, a.spa, a.sha));
    }
}
