//! Path MTU: what a host's kernel learned from ICMP Fragmentation Needed or ICMPv6 Packet Too Big

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::{LabError, Netns, Result};

/// Sends one `size`-byte UDP datagram from `ns` to `to`, which draws a Packet Too Big from a
/// router whose next link is narrower; nothing is awaited
pub fn send_big(ns: &Netns, to: SocketAddr, size: usize) -> Result<()> {
    let socket = super::udp_socket_for(ns, to, "udp")?;
    let payload = vec![0x5a; size];
    socket
        .send_to(&payload, to)
        .map_err(LabError::io(format!("send {size} bytes to {to}")))
        .map(drop)
}

/// The path MTU toward `to` that the kernel of `ns` has cached (`ip route get`), `None` when
/// it knows of none below the link's
pub fn cached(ns: &Netns, to: IpAddr) -> Result<Option<u16>> {
    let family = if to.is_ipv6() { "-6" } else { "-4" };
    let route = ns.ip(&[family, "route", "get", &to.to_string()])?;
    Ok(parse_mtu(&route))
}

/// Waits up to `timeout` for `ns` to cache a path MTU toward `to`; returns it
pub fn learned(ns: &Netns, to: IpAddr, timeout: Duration) -> Result<u16> {
    let start = std::time::Instant::now();
    loop {
        if let Some(mtu) = cached(ns, to)? {
            return Ok(mtu);
        }
        if start.elapsed() > timeout {
            return Err(LabError::Timeout {
                what: format!("a path MTU toward {to} in {}", ns.name()),
                after: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
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
