//! A tiny DNS client: one A query over UDP (RFC 1035 §4), over IPv4 or IPv6

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::{LabError, Netns, Result};
use ikago_proto::wire::dns::{self, HEADER_LEN};
/// QTYPE A and QCLASS IN, RFC 1035 §3.2.2 and §3.2.4
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// Asks `server` from inside `ns` for the A record of `name`; returns the address and the time taken
pub fn query(
    ns: &Netns,
    server: impl Into<SocketAddr>,
    name: &str,
    timeout: Duration,
) -> Result<(Ipv4Addr, Duration)> {
    let server = server.into();
    let socket = super::udp_socket_for(ns, server, "dns")?;
    let id = u16::try_from(std::process::id() & 0xffff).expect("masked to 16 bits");
    let request = encode(id, name);
    let start = Instant::now();
    socket
        .send_to(&request, server)
        .map_err(LabError::io(format!("send dns query to {server}")))?;
    let answer = super::recv_until(
        &socket,
        start,
        timeout,
        &format!("dns answer from {server}"),
        |datagram, _| decode(id, datagram),
    )?;
    answer.map(|ip| (ip, start.elapsed()))
}

/// [`query`] up to `attempts` times (a lost datagram costs one `timeout`); the last error when
/// none was answered
pub fn query_retry(
    ns: &Netns,
    server: impl Into<SocketAddr>,
    name: &str,
    timeout: Duration,
    attempts: u32,
) -> Result<(Ipv4Addr, Duration)> {
    let server = server.into();
    super::retry(attempts, || query(ns, server, name, timeout))
}

/// An A query for `name` with recursion desired
fn encode(id: u16, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    out.extend(id.to_be_bytes());
    out.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        out.push(u8::try_from(label.len()).expect("lab names have short labels"));
        out.extend(label.as_bytes());
    }
    out.push(0);
    out.extend(TYPE_A.to_be_bytes());
    out.extend(CLASS_IN.to_be_bytes());
    out
}

/// The first A record of a response to `id`; `None` for a datagram that is not that response
fn decode(id: u16, msg: &[u8]) -> Option<Result<Ipv4Addr>> {
    let answer = dns::parse_response(msg).filter(|a| a.id == id)?;
    let a = answer.addrs.iter().find_map(|a| match a {
        IpAddr::V4(ip) => Some(*ip),
        IpAddr::V6(_) => None,
    });
    Some(match (answer.rcode, a) {
        (0, Some(ip)) => Ok(ip),
        (0, None) => Err(LabError::Check("dns answer has no A record".into())),
        (rcode, _) => Err(LabError::Check(format!("dns answered rcode {rcode}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_compressed_answer() {
        let mut msg = encode(7, "echo.lab.test");
        msg[2] |= 0x80;
        msg[7] = 1;
        msg.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 24, 2]);
        let ip = decode(7, &msg).expect("a response").expect("an A record");
        assert_eq!(ip, Ipv4Addr::new(198, 18, 24, 2));
        assert!(decode(8, &msg).is_none());
        assert!(decode(7, &encode(7, "echo.lab.test")).is_none(), "a query");
        msg[3] = 3;
        assert!(
            decode(7, &msg).expect("a response").is_err(),
            "no such name"
        );
    }
}
