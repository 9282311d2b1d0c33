//! A DNS-like exchange: real DNS wire format (RFC 1035), A records only
//!
//! [`query`] builds a standard query and [`answer`] is what the simulated name server replies;
//! the core's [`parse_response`](ikago_proto::wire::dns::parse_response) reads a reply back.

use ikago_proto::wire::dns::{HEADER_LEN, read_name};
use std::net::Ipv4Addr;

/// The DNS port
pub const PORT: u16 = 53;
/// Flags of a query: recursion desired
const FLAGS_QUERY: u16 = 0x0100;
/// Flags of an answer: response, recursion desired and available, no error
const FLAGS_ANSWER: u16 = 0x8180;
/// Flags of an answer for an unknown name: NXDOMAIN
const FLAGS_NXDOMAIN: u16 = 0x8183;
/// TTL of answers, seconds
const TTL: u32 = 60;

/// A query for the A record of `name` with transaction id `id`
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&FLAGS_QUERY.to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The name server's reply to `query` from `records`; `None` when `query` is not a one-question
/// query for an A record
pub fn answer(query: &[u8], records: &[(String, Ipv4Addr)]) -> Option<Vec<u8>> {
    let header = query.get(..HEADER_LEN)?;
    if header[2] & 0x80 != 0 || header[4..6] != [0, 1] {
        return None;
    }
    let (name, end) = read_name(query, HEADER_LEN)?;
    if query.get(end..end + 4)? != [0, 1, 0, 1] {
        return None;
    }
    let found: Vec<Ipv4Addr> = records
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
        .map(|&(_, a)| a)
        .collect();
    let mut r = Vec::new();
    r.extend_from_slice(&header[..2]);
    r.extend_from_slice(
        &if found.is_empty() {
            FLAGS_NXDOMAIN
        } else {
            FLAGS_ANSWER
        }
        .to_be_bytes(),
    );
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(found.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&query[HEADER_LEN..end + 4]);
    for a in found {
        // a pointer to the question's name (offset 12), type A, class IN
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        r.extend_from_slice(&TTL.to_be_bytes());
        r.extend_from_slice(&[0, 4]);
        r.extend_from_slice(&a.octets());
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikago_proto::wire::dns::parse_response;
    use std::net::IpAddr;

    #[test]
    fn query_answer_round_trip() {
        let q = query(0x1234, "example.test");
        assert_eq!(q.len(), 12 + 14 + 4);
        let records = vec![("example.test".to_owned(), Ipv4Addr::new(198, 18, 13, 80))];
        let a = parse_response(&answer(&q, &records).expect("a query")).expect("a response");
        assert_eq!(
            (a.id, a.rcode, a.name.as_str()),
            (0x1234, 0, "example.test")
        );
        assert_eq!(a.addrs, [IpAddr::from(Ipv4Addr::new(198, 18, 13, 80))]);
        let nx = answer(&query(7, "nowhere.test"), &records).expect("a query");
        let nx = parse_response(&nx).expect("a response");
        assert_eq!((nx.id, nx.rcode, nx.name.as_str()), (7, 3, "nowhere.test"));
        assert!(nx.addrs.is_empty());
        let reply = answer(&q, &records).expect("a query");
        assert_eq!(answer(&reply, &records), None, "an answer is not a query");
    }
}
