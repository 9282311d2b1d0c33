//! Ethernet II framing (IEEE 802.3 with EtherType)

use super::Mac;
use etherparse::Ethernet2HeaderSlice;

/// Length of an Ethernet II header
pub const HEADER_LEN: usize = 14;
/// Shortest frame on the wire without the FCS: shorter frames are zero-padded (IEEE 802.3 §3.2.8)
pub const MIN_FRAME_LEN: usize = 60;
/// EtherType of IPv4
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A parsed Ethernet II frame
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Destination MAC
    pub dst: Mac,
    /// Source MAC
    pub src: Mac,
    /// EtherType
    pub ethertype: u16,
    /// What follows the header, link padding included
    pub payload: &'a [u8],
}

/// Parses an Ethernet II frame; `None` when it is shorter than the header (never panics)
pub fn parse(frame: &[u8]) -> Option<Frame<'_>> {
    let h = Ethernet2HeaderSlice::from_slice(frame).ok()?;
    Some(Frame {
        dst: Mac(h.destination()),
        src: Mac(h.source()),
        ethertype: h.ether_type().0,
        payload: &frame[HEADER_LEN..],
    })
}

/// Writes an Ethernet II header into `buf[..14]`
///
/// # Panics
/// If `buf` is shorter than [`HEADER_LEN`].
#[inline]
pub fn write(buf: &mut [u8], dst: Mac, src: Mac, ethertype: u16) -> usize {
    buf[0..6].copy_from_slice(&dst.0);
    buf[6..12].copy_from_slice(&src.0);
    buf[12..14].copy_from_slice(&ethertype.to_be_bytes());
    HEADER_LEN
}

/// Zero-pads a frame of `len` bytes to the Ethernet minimum; returns the padded length
///
/// # Panics
/// If `len` is below [`MIN_FRAME_LEN`] and `buf` is shorter than [`MIN_FRAME_LEN`].
#[inline]
pub fn pad(buf: &mut [u8], len: usize) -> usize {
    if len < MIN_FRAME_LEN {
        buf[len..MIN_FRAME_LEN].fill(0);
        MIN_FRAME_LEN
    } else {
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_parse() {
        let mut buf = [0u8; 64];
        let n = write(
            &mut buf,
            Mac::BROADCAST,
            Mac([2, 0, 0, 0, 0, 1]),
            ETHERTYPE_ARP,
        );
        assert_eq!(n, 14);
        assert_eq!(pad(&mut buf, 42), 60);
        let f = parse(&buf[..60]).unwrap();
        assert_eq!(f.dst, Mac::BROADCAST);
        assert_eq!(f.src, Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.ethertype, ETHERTYPE_ARP);
        assert_eq!(f.payload.len(), 46);
        assert!(parse(&buf[..13]).is_none());
    }
}
