//! ICMPv4 (RFC 792) types the tunnel translates or sends

use super::checksum;
use super::ipv4::Packet;

/// Echo reply
pub const ECHO_REPLY: u8 = 0;
/// Destination unreachable
pub const DEST_UNREACHABLE: u8 = 3;
/// Echo request
pub const ECHO_REQUEST: u8 = 8;
/// Time exceeded
pub const TIME_EXCEEDED: u8 = 11;
/// Parameter problem
pub const PARAMETER_PROBLEM: u8 = 12;
/// Code of "fragmentation needed and DF set" under [`DEST_UNREACHABLE`] (RFC 1191)
pub const CODE_FRAG_NEEDED: u8 = 4;
/// Length of the ICMP header (type, code, checksum, rest-of-header)
pub const HEADER_LEN: usize = 8;
/// Bytes of the offending datagram quoted after its IP header (RFC 792: 64 bits)
const QUOTED_DATA: usize = 8;

/// Writes a "fragmentation needed" message about `original` advertising `mtu` (RFC 1191 §4)
///
/// Returns the ICMP message length; the caller wraps it in an IPv4 header back to the sender.
///
/// # Panics
/// If `buf` is shorter than the message: [`HEADER_LEN`] plus the quoted header and 8 bytes, at
/// most 76 bytes.
pub fn write_frag_needed(buf: &mut [u8], original: &Packet<'_>, mtu: u16) -> usize {
    let quoted = (original.header_len() + QUOTED_DATA).min(original.bytes().len());
    buf[0] = DEST_UNREACHABLE;
    buf[1] = CODE_FRAG_NEEDED;
    buf[2..6].fill(0);
    buf[6..8].copy_from_slice(&mtu.to_be_bytes());
    buf[HEADER_LEN..HEADER_LEN + quoted].copy_from_slice(&original.bytes()[..quoted]);
    let len = HEADER_LEN + quoted;
    let c = checksum::of(&buf[..len]);
    buf[2..4].copy_from_slice(&c.to_be_bytes());
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4;
    use std::net::Ipv4Addr;

    #[test]
    fn frag_needed_quotes_header_and_8_bytes() {
        let mut pkt = vec![0u8; 1500];
        ipv4::write_header(
            &mut pkt,
            &ipv4::Header {
                src: Ipv4Addr::new(198, 18, 11, 2),
                dst: Ipv4Addr::new(198, 18, 13, 2),
                protocol: 17,
                id: 1,
                ttl: 64,
                flags_offset: ipv4::FLAG_DF,
                payload_len: 1480,
            },
        );
        let p = Packet::parse(&pkt).unwrap();
        let mut buf = [0u8; 64];
        let n = write_frag_needed(&mut buf, &p, 1400);
        assert_eq!(n, 8 + 28);
        assert_eq!(checksum::of(&buf[..n]), 0);
        assert_eq!(&buf[6..8], &1400u16.to_be_bytes());
        assert_eq!(&buf[8..28], p.header());
    }
}
