//! The destination's services: DNS (dnsmasq), UDP and TCP echo (socat), iperf3

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use crate::addr::{DESTINATION, DNS_DOMAIN, DNS_PORT, ECHO_PORT, IPERF_PORT};
use crate::probe::{dns, tcp, udp};
use crate::{Daemon, LabError, Netns, Result};

/// How long the services get to come up
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between readiness polls
const READY_POLL: Duration = Duration::from_millis(50);

/// Starts every service on the destination and waits until each answers locally
pub(crate) fn start(dst: &Netns) -> Result<Vec<Daemon>> {
    let ip = DESTINATION.to_string();
    let answer = format!("--address=/{DNS_DOMAIN}/{ip}");
    let listen = format!("--listen-address={ip}");
    let dnsmasq = Daemon::spawn(
        dst,
        "dnsmasq",
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--log-facility=-",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--pid-file",
            "--user=root",
            "--port=53",
            &listen,
            &answer,
        ],
    )?;
    let udp_echo = format!("UDP4-RECVFROM:{ECHO_PORT},bind={ip},fork");
    let udp_echo = Daemon::spawn(dst, "udp-echo", "socat", &[&udp_echo, "PIPE"])?;
    let tcp_echo = format!("TCP4-LISTEN:{ECHO_PORT},bind={ip},reuseaddr,fork");
    let tcp_echo = Daemon::spawn(dst, "tcp-echo", "socat", &[&tcp_echo, "PIPE"])?;
    let port = IPERF_PORT.to_string();
    let iperf = Daemon::spawn(
        dst,
        "iperf3-server",
        "iperf3",
        &["-s", "--forceflush", "-B", &ip, "-p", &port],
    )?;

    iperf.wait_for_line("Server listening", 0, READY_TIMEOUT)?;
    let dns_server = SocketAddrV4::new(DESTINATION, DNS_PORT);
    let echo = SocketAddrV4::new(DESTINATION, ECHO_PORT);
    let short = Duration::from_millis(200);
    poll_until("dnsmasq", || {
        dns::query(dst, dns_server, &format!("ready.{DNS_DOMAIN}"), short).is_ok()
    })?;
    poll_until("udp echo", || udp::echo(dst, echo, 20, short).is_ok())?;
    poll_until("tcp echo", || {
        tcp::echo(dst, echo, b"ready\n", short).is_ok()
    })?;
    Ok(vec![dnsmasq, udp_echo, tcp_echo, iperf])
}

/// Polls `ready` until it holds, for at most [`READY_TIMEOUT`]
fn poll_until(what: &str, mut ready: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > READY_TIMEOUT {
            return Err(LabError::Timeout {
                what: format!("{what} to answer"),
                after: READY_TIMEOUT,
            });
        }
        std::thread::sleep(READY_POLL);
    }
    Ok(())
}
