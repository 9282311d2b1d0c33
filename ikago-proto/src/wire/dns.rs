//! Just enough DNS (RFC 1035) to learn names from answers: the question name and the addresses of
//! its A and AAAA (RFC 3596) records
//!
//! ```
//! use ikago_proto::wire::dns;
//! use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
//!
//! // a response to id 7 for "echo.lab.test" with one A and one AAAA record that point back at
//! // the question
//! let mut msg = vec![0, 7, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
//! msg.extend_from_slice(b"\x04echo\x03lab\x04test\x00\x00\x01\x00\x01");
//! msg.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 13, 2]);
//! msg.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
//! msg.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 13, 0, 0, 0, 0, 2).octets());
//! let a = dns::parse_answer(&msg).expect("a response with addresses");
//! assert_eq!((a.id, a.name.as_str()), (7, "echo.lab.test"));
//! assert_eq!(
//!     a.addrs,
//!     [
//!         IpAddr::V4(Ipv4Addr::new(198, 18, 13, 2)),
//!         IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 13, 0, 0, 0, 0, 2)),
//!     ]
//! );
//! assert_eq!(dns::parse_answer(&msg[..40]), None, "truncated");
//! ```
//!
//! Nothing here panics, whatever the bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Length of the DNS header (RFC 1035 §4.1.1)
pub const HEADER_LEN: usize = 12;
/// Most addresses (A and AAAA records together) taken from one answer
pub const MAX_ADDRS: usize = 16;
/// Longest name kept (RFC 1035 §2.3.4: 255 octets)
pub const MAX_NAME: usize = 255;
/// Compression pointers followed before giving up (loops)
const MAX_JUMPS: usize = 16;
/// Record type A: an IPv4 address
const TYPE_A: u16 = 1;
/// Record type AAAA: an IPv6 address (RFC 3596)
const TYPE_AAAA: u16 = 28;
/// Class IN (the Internet)
const CLASS_IN: u16 = 1;

/// The names and addresses of one DNS response
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The transaction id
    pub id: u16,
    /// The response code (0: no error, 3: no such name)
    pub rcode: u8,
    /// The first question's name, dotted, lower-case
    pub name: String,
    /// The addresses of its A and AAAA records, in answer order (at most 16)
    pub addrs: Vec<IpAddr>,
}

/// Reads the name at offset `at` of `msg`; returns it (dotted, lower-case) and the offset after
/// it in place
///
/// Compression pointers are followed (a few, so that loops end); `None` for a name that runs past
/// the message or is longer than 255 octets.
pub fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    for _ in 0..=MAX_JUMPS {
        loop {
            let len = usize::from(*msg.get(at)?);
            if len & 0xc0 == 0xc0 {
                let ptr = (len & 0x3f) << 8 | usize::from(*msg.get(at + 1)?);
                end.get_or_insert(at + 2);
                at = ptr;
                break;
            }
            if len == 0 {
                return Some((name, *end.get_or_insert(at + 1)));
            }
            let label = msg.get(at + 1..at + 1 + len)?;
            if !name.is_empty() {
                name.push('.');
            }
            name.extend(label.iter().map(|&b| char::from(b.to_ascii_lowercase())));
            if name.len() > MAX_NAME {
                return None;
            }
            at += 1 + len;
        }
    }
    None
}

/// Parses a DNS response with at least one A or AAAA record; `None` for queries, errors, answers
/// without an address and anything malformed
pub fn parse_answer(msg: &[u8]) -> Option<Answer> {
    parse_response(msg).filter(|a| a.rcode == 0 && !a.addrs.is_empty())
}

/// Parses any DNS response to a question, errors (no such name...) and empty answers included;
/// `None` for queries and anything malformed
pub fn parse_response(msg: &[u8]) -> Option<Answer> {
    let header = msg.get(..HEADER_LEN)?;
    let is_response = header[2] & 0x80 != 0;
    let id = u16::from_be_bytes([header[0], header[1]]);
    let rcode = header[3] & 0x0f;
    let qd = u16::from_be_bytes([header[4], header[5]]);
    let an = u16::from_be_bytes([header[6], header[7]]);
    if !is_response || qd == 0 {
        return None;
    }
    let (name, mut at) = read_name(msg, HEADER_LEN)?;
    at += 4;
    for _ in 1..qd {
        at = read_name(msg, at)?.1 + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        at = read_name(msg, at)?.1;
        let rr = msg.get(at..at + 10)?;
        let (ty, class) = (
            u16::from_be_bytes([rr[0], rr[1]]),
            u16::from_be_bytes([rr[2], rr[3]]),
        );
        let len = usize::from(u16::from_be_bytes([rr[8], rr[9]]));
        let data = msg.get(at + 10..at + 10 + len)?;
        if class == CLASS_IN
            && addrs.len() < MAX_ADDRS
            && let Some(ip) = address(ty, data)
        {
            addrs.push(ip);
        }
        at += 10 + len;
    }
    Some(Answer {
        id,
        rcode,
        name,
        addrs,
    })
}

/// The address in the data of a record of type `ty`: an A record's 4 bytes, an AAAA record's 16;
/// `None` for other types and for data of another length
fn address(ty: u16, data: &[u8]) -> Option<IpAddr> {
    match ty {
        TYPE_A => <[u8; 4]>::try_from(data)
            .ok()
            .map(|o| Ipv4Addr::from(o).into()),
        TYPE_AAAA => <[u8; 16]>::try_from(data)
            .ok()
            .map(|o| Ipv6Addr::from(o).into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer for echo.lab.test: a CNAME-free A record using a compression pointer
    fn answer() -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        for label in ["Echo", "lab", "test"] {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        for ip in [[198, 18, 13, 2], [198, 18, 13, 3]] {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            m.extend_from_slice(&ip);
        }
        m
    }

    #[test]
    fn names_and_addresses() {
        let a = parse_answer(&answer()).unwrap();
        assert_eq!((a.id, a.rcode), (0x1234, 0));
        assert_eq!(a.name, "echo.lab.test");
        assert_eq!(
            a.addrs,
            [Ipv4Addr::new(198, 18, 13, 2), Ipv4Addr::new(198, 18, 13, 3)].map(IpAddr::from)
        );
    }

    /// Appends a record for the question's name (a compression pointer) of type `ty`
    fn push_record(m: &mut Vec<u8>, ty: u16, data: &[u8]) {
        m.extend_from_slice(&[0xc0, 12]);
        m.extend_from_slice(&ty.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(data);
        let an = u16::from_be_bytes([m[6], m[7]]) + 1;
        m[6..8].copy_from_slice(&an.to_be_bytes());
    }

    const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 13, 0, 0, 0, 0, 2);

    #[test]
    fn aaaa_records_beside_a_records_in_answer_order() {
        let mut m = answer();
        push_record(&mut m, TYPE_AAAA, &V6.octets());
        // a CNAME and records whose data has the other family's length are skipped
        push_record(&mut m, 5, b"\x01x\x00");
        push_record(&mut m, TYPE_AAAA, &[198, 18, 13, 9]);
        push_record(&mut m, TYPE_A, &V6.octets());
        let a = parse_answer(&m).unwrap();
        assert_eq!(
            a.addrs,
            [
                IpAddr::V4(Ipv4Addr::new(198, 18, 13, 2)),
                IpAddr::V4(Ipv4Addr::new(198, 18, 13, 3)),
                IpAddr::V6(V6),
            ]
        );
        // an answer of AAAA records only is an answer too
        let mut only6 = answer();
        only6.truncate(HEADER_LEN + 19);
        only6[7] = 0;
        push_record(&mut only6, TYPE_AAAA, &V6.octets());
        assert_eq!(parse_answer(&only6).unwrap().addrs, [IpAddr::V6(V6)]);
        for n in 0..only6.len() {
            assert_eq!(parse_answer(&only6[..n]), None, "truncated at {n}");
        }
        // another class is not the Internet's
        let mut chaos = only6.clone();
        chaos[HEADER_LEN + 19 + 5] = 3;
        assert_eq!(parse_answer(&chaos), None);
    }

    #[test]
    fn addresses_are_capped_over_both_families() {
        let mut m = answer();
        for i in 0..MAX_ADDRS as u16 {
            push_record(
                &mut m,
                TYPE_AAAA,
                &Ipv6Addr::new(0x2001, 0xdb8, 13, 0, 0, 0, 0, i).octets(),
            );
        }
        let a = parse_answer(&m).unwrap();
        assert_eq!(a.addrs.len(), MAX_ADDRS);
        assert_eq!(
            a.addrs[2],
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 13, 0, 0, 0, 0, 0))
        );
        assert_eq!(
            a.addrs.last(),
            Some(&IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 13, 0, 0, 0, 0, 13
            )))
        );
    }

    #[test]
    fn queries_truncations_and_loops_are_refused() {
        let mut q = answer();
        q[2] = 0x01;
        assert_eq!(parse_answer(&q), None);
        let full = answer();
        for n in 0..full.len() {
            assert_eq!(parse_answer(&full[..n]), None, "truncated at {n}");
        }
        let mut looped = answer();
        looped[12] = 0xc0;
        looped[13] = 12;
        assert_eq!(parse_answer(&looped), None);
    }

    #[test]
    fn errors_and_empty_answers_are_responses_without_addresses() {
        let mut nx = answer();
        nx[3] = 0x83;
        nx[7] = 0;
        nx.truncate(HEADER_LEN + 15 + 4);
        let r = parse_response(&nx).unwrap();
        assert_eq!(
            (r.id, r.rcode, r.name.as_str()),
            (0x1234, 3, "echo.lab.test")
        );
        assert!(r.addrs.is_empty());
        assert_eq!(parse_answer(&nx), None, "no address to learn");
        nx[3] = 0x80;
        assert_eq!(parse_response(&nx).unwrap().rcode, 0);
        assert_eq!(parse_answer(&nx), None, "an empty answer");
    }

    #[test]
    fn names_of_queries() {
        let q = answer();
        assert_eq!(
            read_name(&q, HEADER_LEN),
            Some(("echo.lab.test".into(), HEADER_LEN + 15))
        );
        // the answer's name is a pointer to the question's: two bytes in place
        assert_eq!(
            read_name(&q, HEADER_LEN + 19),
            Some(("echo.lab.test".into(), HEADER_LEN + 21))
        );
        assert_eq!(read_name(&q, q.len()), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(0u8.., 0..300), at in 0usize..300) {
            let _ = parse_answer(&bytes);
            if let Some(r) = parse_response(&bytes) {
                proptest::prop_assert!(r.addrs.len() <= MAX_ADDRS && r.name.len() <= MAX_NAME);
            }
            let _ = read_name(&bytes, at);
        }
    }
}
