//! UDP probes: echo round trips and paced one-way streams with sequence numbers

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::{LabError, Netns, Result};

/// How long a stream receiver waits after the sender finished for the last datagrams
const DRAIN: Duration = Duration::from_secs(1);
/// Pacing tick of a stream sender
const TICK: Duration = Duration::from_millis(2);
/// Smallest stream datagram: 8-byte sequence number, 8-byte total count
const STREAM_HEADER: usize = 16;

/// Sends a `size`-byte datagram to the echo service at `to` (IPv4 or IPv6) from inside `ns` and
/// waits for it to come back unchanged; returns the round-trip time
pub fn echo(
    ns: &Netns,
    to: impl Into<SocketAddr>,
    size: usize,
    timeout: Duration,
) -> Result<Duration> {
    let to = to.into();
    let socket = super::udp_socket_for(ns, to, "udp")?;
    let payload = (0..size).map(|i| (i % 251) as u8).collect::<Vec<_>>();
    let start = Instant::now();
    socket
        .send_to(&payload, to)
        .map_err(LabError::io(format!("send {size} bytes to {to}")))?;
    super::recv_until(
        &socket,
        start,
        timeout,
        &format!("udp echo of {size} bytes from {to}"),
        |datagram, from| (from == to && datagram == payload).then(|| start.elapsed()),
    )
}

/// Echoes every datagram that `socket` receives back to its sender until `stop` is set (checked
/// every 100 ms): a latency reflector with no process start or fork per datagram
pub fn reflect(socket: &UdpSocket, stop: &AtomicBool) -> Result<()> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(LabError::io("set timeout"))?;
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            // A full socket buffer is a lost echo, which the prober counts
            let _ = socket.send_to(&buf[..len], from);
        }
    }
    Ok(())
}

/// `count` numbered `size`-byte echoes to `to` from inside `ns`, one at a time, `interval`
/// apart; returns the round-trip times of those that came back within `timeout` each
pub fn rtts(
    ns: &Netns,
    to: SocketAddrV4,
    size: usize,
    count: u32,
    interval: Duration,
    timeout: Duration,
) -> Result<Vec<Duration>> {
    let socket = super::udp_socket_for(ns, to.into(), "udp")?;
    let mut payload = vec![0u8; size.max(4)];
    let mut rtts = Vec::with_capacity(count as usize);
    for seq in 0..count {
        payload[..4].copy_from_slice(&seq.to_be_bytes());
        let start = Instant::now();
        socket
            .send_to(&payload, to)
            .map_err(LabError::io(format!("send {size} bytes to {to}")))?;
        let answer = super::recv_until(&socket, start, timeout, "udp echo", |datagram, from| {
            (from == SocketAddr::V4(to) && datagram == payload).then(|| start.elapsed())
        });
        if let Ok(rtt) = answer {
            rtts.push(rtt);
        }
        std::thread::sleep(interval);
    }
    Ok(rtts)
}

/// Echo with retries: up to `attempts` tries of `timeout` each
pub fn echo_retry(
    ns: &Netns,
    to: impl Into<SocketAddr>,
    size: usize,
    timeout: Duration,
    attempts: u32,
) -> Result<Duration> {
    let to = to.into();
    super::retry(attempts, || echo(ns, to, size, timeout))
}

/// Which way a stream flows, seen from the LAN host
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// LAN host to destination
    Upload,
    /// Destination to LAN host (the LAN host sends one datagram first, opening the NAT)
    Download,
}

/// A paced one-way stream's shape
#[derive(Clone, Copy, Debug)]
pub struct StreamSpec {
    /// Total payload bytes to send
    pub bytes: u64,
    /// Payload bytes per datagram
    pub datagram: usize,
    /// Offered rate in bits per second (payload)
    pub rate_bps: u64,
}

/// What arrived of a stream
#[derive(Clone, Debug)]
pub struct StreamReport {
    /// Datagrams sent
    pub sent: u64,
    /// Distinct datagrams received
    pub received: u64,
    /// Distinct datagrams received among the last tenth sent: a stream that stalls has none
    pub received_last_tenth: u64,
    /// From the first datagram sent to the last one received
    pub elapsed: Duration,
}

impl StreamReport {
    /// Fraction of datagrams delivered
    pub fn delivered(&self) -> f64 {
        self.received as f64 / self.sent.max(1) as f64
    }

    /// Fraction of the last tenth delivered
    pub fn delivered_last_tenth(&self) -> f64 {
        self.received_last_tenth as f64 / (self.sent / 10).max(1) as f64
    }
}

/// Streams `spec` between the LAN host `lan` and the destination `dst` (`dst_addr` is where
/// the destination end binds), in `direction`
pub fn stream(
    lan: &Netns,
    dst: &Netns,
    dst_addr: SocketAddrV4,
    spec: StreamSpec,
    direction: Direction,
) -> Result<StreamReport> {
    assert!(
        spec.datagram >= STREAM_HEADER,
        "a stream datagram carries a 16-byte header"
    );
    super::lab_only(*dst_addr.ip())?;
    let far = dst
        .enter(|| UdpSocket::bind(dst_addr))?
        .map_err(LabError::io(format!("bind {dst_addr}")))?;
    let near = lan
        .enter(|| UdpSocket::bind("0.0.0.0:0"))?
        .map_err(LabError::io("bind lan socket"))?;
    let count = spec.bytes.div_ceil(spec.datagram as u64);
    let (sender, receiver, peer) = match direction {
        Direction::Upload => (near, far, SocketAddr::V4(dst_addr)),
        Direction::Download => {
            let peer = open_path(&near, &far, dst_addr)?;
            (far, near, peer)
        }
    };
    let done = AtomicBool::new(false);
    let start = Instant::now();
    std::thread::scope(|scope| {
        let received = scope.spawn(|| receive(&receiver, count, &done));
        let sent = send(&sender, peer, spec, count);
        done.store(true, Ordering::Relaxed);
        let (received, received_last_tenth, last) =
            received.join().expect("the receiver does not panic")?;
        let sent = sent?;
        Ok(StreamReport {
            sent,
            received,
            received_last_tenth,
            elapsed: last.unwrap_or(start).duration_since(start),
        })
    })
}

/// The LAN host sends "open" until the destination hears it; returns the address it came from
/// (the server's NAT address and port)
fn open_path(near: &UdpSocket, far: &UdpSocket, dst_addr: SocketAddrV4) -> Result<SocketAddr> {
    far.set_read_timeout(Some(Duration::from_millis(300)))
        .map_err(LabError::io("set timeout"))?;
    let mut buf = [0u8; 64];
    for _ in 0..10 {
        near.send_to(b"open", dst_addr)
            .map_err(LabError::io("send open"))?;
        if let Ok((_, from)) = far.recv_from(&mut buf) {
            return Ok(from);
        }
    }
    Err(LabError::Timeout {
        what: "the download stream's opening datagram".into(),
        after: Duration::from_secs(3),
    })
}

/// Sends `count` numbered datagrams to `to`, paced at `spec.rate_bps`
fn send(socket: &UdpSocket, to: SocketAddr, spec: StreamSpec, count: u64) -> Result<u64> {
    let mut payload = vec![0u8; spec.datagram];
    payload[8..16].copy_from_slice(&count.to_be_bytes());
    let per_second = spec.rate_bps as f64 / (spec.datagram as f64 * 8.0);
    let start = Instant::now();
    let mut seq = 0;
    while seq < count {
        let due = ((start.elapsed().as_secs_f64() * per_second) as u64 + 1).min(count);
        while seq < due {
            payload[..8].copy_from_slice(&seq.to_be_bytes());
            // A full socket buffer (ENOBUFS) is loss, like any other: keep the pace
            let _ = socket.send_to(&payload, to);
            seq += 1;
        }
        std::thread::sleep(TICK);
    }
    Ok(seq)
}

/// Receives numbered datagrams until the sender is done and [`DRAIN`] has passed
fn receive(
    socket: &UdpSocket,
    count: u64,
    done: &AtomicBool,
) -> Result<(u64, u64, Option<Instant>)> {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(LabError::io("set timeout"))?;
    let len = usize::try_from(count).expect("stream counts fit in memory");
    let mut seen = vec![false; len];
    let (mut received, mut last) = (0u64, None);
    let mut buf = vec![0u8; 65536];
    let mut done_at: Option<Instant> = None;
    loop {
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            let seq = buf
                .get(..8)
                .filter(|_| n >= STREAM_HEADER)
                .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
            if let Some(slot) = seq.and_then(|s| seen.get_mut(usize::try_from(s).ok()?))
                && !*slot
            {
                *slot = true;
                received += 1;
                last = Some(Instant::now());
            }
        }
        if done.load(Ordering::Relaxed) {
            let since = *done_at.get_or_insert_with(Instant::now);
            if since.elapsed() > DRAIN || received == count {
                break;
            }
        }
    }
    let tail = seen[len - len / 10..].iter().filter(|s| **s).count() as u64;
    Ok((received, tail, last))
}
