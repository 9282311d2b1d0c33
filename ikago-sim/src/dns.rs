//! A DNS-like exchange: real DNS wire format (RFC 1035), A records only
//!
//! [`query`] builds a standard query, [`answer`] is what the simulated name server replies, and
//! [`parse_answer`] reads a reply back.

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
/// Length of the DNS header
const HEADER_LEN: usize = 12;

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

/// Reads the question name starting at `at`; returns it and the offset after it
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(at)?);
        if len == 0 {
            return Some((labels.join("."), at + 1));
        }
        if len & 0xc0 != 0 {
            return None;
        }
        labels.push(String::from_utf8(msg.get(at + 1..at + 1 + len)?.to_vec()).ok()?);
        at += 1 + len;
    }
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

/// Reads a reply made by [`answer`]: its id, the name asked and the addresses
pub fn parse_answer(reply: &[u8]) -> Option<(u16, String, Vec<Ipv4Addr>)> {
    let header = reply.get(..HEADER_LEN)?;
    if header[2] & 0x80 == 0 {
        return None;
    }
    let id = u16::from_be_bytes([header[0], header[1]]);
    let count = usize::from(u16::from_be_bytes([header[6], header[7]]));
    let (name, end) = read_name(reply, HEADER_LEN)?;
    let mut at = end + 4;
    let mut addrs = Vec::new();
    for _ in 0..count {
        let rr = reply.get(at..at + 16)?;
        if rr[..6] != [0xc0, 0x0c, 0, 1, 0, 1] || rr[10..12] != [0, 4] {
            return None;
        }
        addrs.push(Ipv4Addr::new(rr[12], rr[13], rr[14], rr[15]));
        at += 16;
    }
    Some((id, name, addrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_answer_round_trip() {
        let q = query(0x1234, "example.test");
        assert_eq!(q.len(), 12 + 14 + 4);
        let records = vec![("example.test".to_owned(), Ipv4Addr::new(198, 18, 13, 80))];
        let a = answer(&q, &records).expect("a query");
        assert_eq!(
            parse_answer(&a),
            Some((
                0x1234,
                "example.test".to_owned(),
                vec![Ipv4Addr::new(198, 18, 13, 80)]
            ))
        );
        let nx = answer(&query(7, "nowhere.test"), &records).expect("a query");
        assert_eq!(
            parse_answer(&nx),
            Some((7, "nowhere.test".to_owned(), vec![]))
        );
        assert_eq!(answer(&a, &records), None, "an answer is not a query");
    }
}
