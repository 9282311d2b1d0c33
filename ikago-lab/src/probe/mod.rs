//! Measurements taken from inside lab namespaces: DNS, UDP, TCP, ping, iperf3, crafted TCP, the
//! path MTU a host learned, and HTTP for the runners' monitor
//!
//! Socket probes open their sockets in the host's namespace ([`crate::Netns::enter`]) and run in
//! this process; `ping` and `iperf3` run as commands in the namespace. Every probe is bounded in
//! count and time, and sends only to the lab's ranges ([`crate::addr`]) or the namespace's own
//! loopback: any other destination is refused before anything is sent.

pub mod dns;
pub mod http;
pub mod iperf;
pub mod ping;
pub mod pmtu;
pub mod raw;
pub mod tcp;
pub mod udp;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::addr::is_lab_ip;
use crate::{LabError, Netns, Result};

/// `Ok` for a destination in 198.18.0.0/15, 2001:db8::/32 or fd00::/8, or the loopback of the
/// namespace the probe runs in (where a runner's monitor listens; it never leaves the
/// namespace), the only ones a probe sends to; an error naming it otherwise
pub fn lab_only(ip: impl Into<IpAddr>) -> Result<()> {
    let ip = ip.into();
    match is_lab_ip(ip) || ip.is_loopback() {
        true => Ok(()),
        false => Err(LabError::Check(format!(
            "{ip} is outside the lab (198.18.0.0/15, 2001:db8::/32, fd00::/8): nothing is sent"
        ))),
    }
}

/// Receives on `socket` until `accept` takes a datagram, within `timeout` from `start` in all:
/// stray datagrams neither end nor extend the wait
fn recv_until<T>(
    socket: &UdpSocket,
    start: Instant,
    timeout: Duration,
    what: &str,
    mut accept: impl FnMut(&[u8], SocketAddr) -> Option<T>,
) -> Result<T> {
    let mut buf = vec![0u8; 65536];
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(LabError::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(LabError::io("set socket timeout"))?;
        let (len, from) = socket
            .recv_from(&mut buf)
            .map_err(LabError::recv(what, timeout))?;
        if let Some(accepted) = accept(&buf[..len], from) {
            return Ok(accepted);
        }
    }
}

/// Runs `attempt` up to `attempts` times: its first success, else its last error
fn retry<T>(attempts: u32, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut last = None;
    for _ in 0..attempts {
        match attempt() {
            Ok(done) => return Ok(done),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

/// A UDP socket bound in `ns` to an ephemeral port of the family of `to`, a lab address
fn udp_socket_for(ns: &Netns, to: SocketAddr, what: &str) -> Result<UdpSocket> {
    lab_only(to.ip())?;
    let any: SocketAddr = match to {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    ns.enter(|| UdpSocket::bind(any))?
        .map_err(LabError::io(format!("bind {what} socket")))
}

/// The median of `values` (the lower middle for an even count); `None` when empty
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len().checked_sub(1)? / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_send_to_lab_addresses_only() {
        for ip in [
            "198.18.24.2",
            "2001:db8:24::2",
            "fd00:21::4",
            "127.0.0.1",
            "::1",
        ] {
            assert!(lab_only(ip.parse::<IpAddr>().unwrap()).is_ok(), "{ip}");
        }
        for ip in [
            "192.0.2.1",
            "8.8.8.8",
            "2001:4860::8888",
            "fe80::1",
            "0.0.0.0",
            "198.20.0.1",
        ] {
            assert!(lab_only(ip.parse::<IpAddr>().unwrap()).is_err(), "{ip}");
        }
    }
}
