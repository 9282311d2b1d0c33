//! The destination's services: DNS (dnsmasq), UDP echo (a thread of the test process), TCP echo
//! (socat), iperf3; in a dual-stack lab DNS and the echoes on the destination's IPv6 address as
//! well

use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::addr::{DESTINATION, DESTINATION6, DNS_DOMAIN, DNS_PORT, ECHO_PORT, IPERF_PORT};
use crate::probe::{dns, tcp, udp};
use crate::{Daemon, LabError, Netns, Result};

/// How long the services get to come up
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between readiness polls
const READY_POLL: Duration = Duration::from_millis(50);

/// The destination's running services; dropping them stops them
#[derive(Default)]
pub(crate) struct Services {
    /// dnsmasq, the TCP echoes, iperf3 (held to be killed on drop)
    _daemons: Vec<Daemon>,
    /// One UDP echo per address (held to be stopped on drop)
    _udp_echoes: Vec<UdpEcho>,
}

/// The UDP echo on one address of the destination: a thread of this process that sends every
/// datagram back to its sender, stopped and joined on drop
///
/// Not socat's `UDP-RECVFROM,fork` (a child process per datagram): under load it at times took a
/// request in and never answered it, nor any request after it, which looked like a stalled tunnel.
struct UdpEcho {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl UdpEcho {
    /// Binds `at` inside `dst` and starts answering
    fn start(dst: &Netns, at: SocketAddr) -> Result<Self> {
        let socket = dst
            .enter(|| UdpSocket::bind(at))?
            .map_err(LabError::io(format!("bind the UDP echo on {at}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("udp-echo".into())
            .spawn(move || udp::reflect(&socket, &stopped))
            .map_err(LabError::io("start the UDP echo"))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // the reflector checks `stop` every 100 ms; its error, if any, no longer matters
            let _ = thread.join();
        }
    }
}

/// Starts every service on the destination (on IPv6 too when `ipv6`) and waits until each
/// answers locally; names under [`DNS_DOMAIN`] have the destination's address of each family
pub(crate) fn start(dst: &Netns, ipv6: bool) -> Result<Services> {
    let ip = DESTINATION.to_string();
    let mut dns_args = vec![
        format!("--address=/{DNS_DOMAIN}/{ip}"),
        format!("--listen-address={ip}"),
    ];
    if ipv6 {
        dns_args.push(format!("--address=/{DNS_DOMAIN}/{DESTINATION6}"));
        dns_args.push(format!("--listen-address={DESTINATION6}"));
    }
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
        ]
        .into_iter()
        .chain(dns_args.iter().map(String::as_str))
        .collect::<Vec<_>>(),
    )?;
    let mut daemons = vec![dnsmasq];
    let mut udp_echoes = Vec::new();
    let mut echo_at: Vec<SocketAddr> = vec![SocketAddrV4::new(DESTINATION, ECHO_PORT).into()];
    if ipv6 {
        echo_at.push(SocketAddrV6::new(DESTINATION6, ECHO_PORT, 0, 0).into());
    }
    for at in &echo_at {
        let (tcp, bind) = match at {
            SocketAddr::V4(a) => ("TCP4", a.ip().to_string()),
            SocketAddr::V6(a) => ("TCP6", format!("[{}]", a.ip())),
        };
        udp_echoes.push(UdpEcho::start(dst, *at)?);
        let tcp_echo = format!("{tcp}-LISTEN:{ECHO_PORT},bind={bind},reuseaddr,fork");
        daemons.push(Daemon::spawn(
            dst,
            "tcp-echo",
            "socat",
            &[&tcp_echo, "PIPE"],
        )?);
    }
    let port = IPERF_PORT.to_string();
    let iperf = Daemon::spawn(
        dst,
        "iperf3-server",
        "iperf3",
        &["-s", "--forceflush", "-B", &ip, "-p", &port],
    )?;

    iperf.wait_for_line("Server listening", 0, READY_TIMEOUT)?;
    daemons.push(iperf);
    let short = Duration::from_millis(200);
    for echo in echo_at {
        let dns_server = SocketAddr::new(echo.ip(), DNS_PORT);
        poll_until("dnsmasq", || {
            dns::query(dst, dns_server, &format!("ready.{DNS_DOMAIN}"), short).is_ok()
        })?;
        poll_until("udp echo", || udp::echo(dst, echo, 20, short).is_ok())?;
        poll_until("tcp echo", || {
            tcp::echo(dst, echo, b"ready\n", short).is_ok()
        })?;
    }
    Ok(Services {
        _daemons: daemons,
        _udp_echoes: udp_echoes,
    })
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
