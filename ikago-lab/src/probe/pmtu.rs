//! Path MTU: what a host's kernel learned from ICMP Fragmentation Needed or ICMPv6 Packet Too Big

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::{LabError, Netns, Result};

/// The path MTU toward `to` that the kernel of `ns` has cached (`ip route get`), `None` when
/// it knows of none below the link's
pub fn cached(ns: &Netns, to: IpAddr) -> Result<Option<u16>> {
    let family = if to.is_ipv6() { "-6" } else { "-4" };
    let route = ns.ip(&[family, "route", "get", &to.to_string()])?;
    Ok(parse_mtu(&route))
}

/// How often [`learn`] sends its datagram again
const RESEND: Duration = Duration::from_millis(200);

/// Sends `size`-byte UDP datagrams from `ns` to `to`, one every [`RESEND`] for at most
/// `timeout`, until the kernel of `ns` caches a path MTU toward `to`; returns it
///
/// The socket stays open until then: the kernel applies a Packet Too Big only while a socket
/// that could have sent the packet it quotes exists.
pub fn learn(ns: &Netns, to: SocketAddr, size: usize, timeout: Duration) -> Result<u16> {
    let socket = super::udp_socket_for(ns, to, "udp")?;
    let payload = vec![0x5a; size];
    let start = Instant::now();
    loop {
        // a refusal from an earlier datagram's error is no failure of this probe
        let _ = socket.send_to(&payload, to);
        let sent = Instant::now();
        while sent.elapsed() < RESEND {
            if let Some(mtu) = cached(ns, to.ip())? {
                return Ok(mtu);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if start.elapsed() > timeout {
            return Err(LabError::Timeout {
                what: format!("a path MTU toward {to} in {}", ns.name()),
                after: timeout,
            });
        }
    }
}

/// The `mtu N` of an `ip route get` line
fn parse_mtu(route: &str) -> Option<u16> {
    let mut words = route.split_whitespace();
    words.find(|w| *w == "mtu")?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cached_mtu() {
        let cached = "2001:db8:28::2 from :: via fd00:21::1 dev eth0 src fd00:21::4 metric 1024 \
                      expires 598sec mtu 1280 pref medium\n";
        assert_eq!(parse_mtu(cached), Some(1280));
        let plain = "2001:db8:28::2 from :: via fd00:21::1 dev eth0 src fd00:21::4 metric 1024 \
                     pref medium\n";
        assert_eq!(parse_mtu(plain), None);
    }
}
