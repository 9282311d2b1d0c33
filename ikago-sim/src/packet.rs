//! Byte-level helpers the simulated routers and kernels need: Ethernet, ARP, IPv4 fields,
//! checksum rewrites and IPv4 fragmentation (RFC 791 §3.2), over the core's wire layer

use ikago_proto::Mac;
use ikago_proto::wire::arp::Arp;
pub(crate) use ikago_proto::wire::ethernet::{ETHERTYPE_IPV4, HEADER_LEN as ETH_LEN};
pub(crate) use ikago_proto::wire::proto::{ICMP, TCP, UDP};
use ikago_proto::wire::{arp, checksum, ethernet, ipv4};
use std::net::Ipv4Addr;

/// An Ethernet frame around `payload`
pub(crate) fn frame(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0; ETH_LEN + payload.len()];
    ethernet::write(&mut f, dst, src, ethertype);
    f[ETH_LEN..].copy_from_slice(payload);
    f
}

/// The ARP message an Ethernet frame carries, if it is an Ethernet/IPv4 one (RFC 826)
pub(crate) fn arp_of(frame: &[u8]) -> Option<Arp> {
    let eth = ethernet::parse(frame).filter(|e| e.ethertype == ethernet::ETHERTYPE_ARP)?;
    arp::parse(eth.payload)
}

/// The Ethernet frame carrying `a`, from its sender to `dst`
pub(crate) fn arp_frame(a: &Arp, dst: Mac) -> Vec<u8> {
    let mut m = [0; arp::LEN];
    a.write(&mut m);
    frame(dst, a.sha, ethernet::ETHERTYPE_ARP, &m)
}

/// An ARP request from `sha` at `spa` for `tpa`
pub(crate) fn arp_request(sha: Mac, spa: Ipv4Addr, tpa: Ipv4Addr) -> Arp {
    Arp {
        op: arp::OP_REQUEST,
        sha,
        spa,
        tha: Mac::ZERO,
        tpa,
    }
}

/// The reply a host owning `request.tpa` at `mac` gives to `request`
pub(crate) fn arp_reply(request: &Arp, mac: Mac) -> Arp {
    Arp {
        op: arp::OP_REPLY,
        sha: mac,
        spa: request.tpa,
        tha: request.sha,
        tpa: request.spa,
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

/// Recomputes the IPv4 header checksum (after a new header was written)
#[cfg(test)]
pub(crate) fn fill_header_checksum(pkt: &mut [u8]) {
    let ihl = usize::from(pkt[0] & 0x0f) * 4;
    pkt[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::of(&pkt[..ihl]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Replaces `pkt[at..at + new.len()]` (whole 16-bit words) by `new` and updates the 16-bit
/// checksums at `sum_at` incrementally (RFC 1624 eqn. 3), as a NAT does: a checksum that was
/// wrong stays wrong
pub(crate) fn rewrite(pkt: &mut [u8], at: usize, new: &[u8], sum_at: &[usize]) {
    for (i, w) in new.chunks_exact(2).enumerate() {
        let p = at + 2 * i;
        let old = u16::from_be_bytes([pkt[p], pkt[p + 1]]);
        pkt[p..p + 2].copy_from_slice(w);
        let new = u16::from_be_bytes([w[0], w[1]]);
        for &s in sum_at {
            let c = checksum::update16(u16::from_be_bytes([pkt[s], pkt[s + 1]]), old, new);
            pkt[s..s + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
}

/// Splits a packet larger than `mtu` into fragments of at most `mtu` bytes as a router does
/// (RFC 791; a fragment's offset and MF are kept, so fragments can be fragmented again); `None`
/// when DF is set
pub(crate) fn fragment(pkt: &ipv4::Packet<'_>, mtu: usize) -> Option<Vec<Vec<u8>>> {
    if pkt.dont_fragment() {
        return None;
    }
    let mut out = Vec::new();
    ikago_proto::fragment::fragment(pkt, mtu, |header, chunk| {
        out.push([header, chunk].concat());
    });
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
        let frags = fragment(&ipv4::Packet::parse(&p).expect("valid"), 1000).expect("DF clear");
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
        let a = arp_request(
            Mac([2, 0, 0, 0, 0x12, 2]),
            Ipv4Addr::new(198, 18, 12, 2),
            Ipv4Addr::new(198, 18, 12, 1),
        );
        let f = arp_frame(&a, Mac::BROADCAST);
        assert_eq!(&f[..6], &Mac::BROADCAST.0);
        assert_eq!(arp_of(&f), Some(a));
        assert_eq!(arp_of(&f[..41]), None);
        let r = arp_reply(&a, Mac([2, 0, 0, 0, 0x12, 1]));
        assert_eq!(
            (r.op, r.spa, r.tpa, r.tha),
            (arp::OP_REPLY, a.tpa, a.spa, a.sha)
        );
    }
}
