//! TCP probes: an echo exchange and bulk transfers with content checks

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::udp::Direction;
use crate::{LabError, Netns, Result};

/// Socket timeout of a bulk transfer: a stall this long fails it
const STALL: Duration = Duration::from_secs(20);
/// Write and read chunk of a bulk transfer
const CHUNK: usize = 64 * 1024;

/// Sends `line` to the TCP echo service at `to` (IPv4 or IPv6) from inside `ns` and reads it
/// back
pub fn echo(
    ns: &Netns,
    to: impl Into<SocketAddr>,
    line: &[u8],
    timeout: Duration,
) -> Result<Duration> {
    let to = to.into();
    let start = Instant::now();
    let mut stream = connect(ns, to, timeout)?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(LabError::io("set timeout"))?;
    stream
        .write_all(line)
        .map_err(LabError::io(format!("write to {to}")))?;
    let mut back = vec![0u8; line.len()];
    stream
        .read_exact(&mut back)
        .map_err(LabError::recv(format!("tcp echo from {to}"), timeout))?;
    match back == line {
        true => Ok(start.elapsed()),
        false => Err(LabError::Check(format!("tcp echo from {to} differs"))),
    }
}

/// Opens a TCP connection to `to` (IPv4 or IPv6) from inside `ns`
pub fn connect(ns: &Netns, to: impl Into<SocketAddr>, timeout: Duration) -> Result<TcpStream> {
    let to = to.into();
    super::lab_only(to.ip())?;
    ns.enter(|| TcpStream::connect_timeout(&to, timeout))?
        .map_err(LabError::io(format!("connect to {to}")))
}

/// Moves `bytes` between the LAN host `lan` and a listener of the destination `dst` at
/// `dst_addr` (IPv4 or IPv6), checking every byte; returns the time from connect to the last
/// byte
pub fn transfer(
    lan: &Netns,
    dst: &Netns,
    dst_addr: impl Into<SocketAddr>,
    bytes: u64,
    direction: Direction,
) -> Result<Duration> {
    let dst_addr = dst_addr.into();
    super::lab_only(dst_addr.ip())?;
    let listener = dst
        .enter(|| TcpListener::bind(dst_addr))?
        .map_err(LabError::io(format!("listen on {dst_addr}")))?;
    let start = Instant::now();
    std::thread::scope(|scope| {
        let accepted = scope.spawn(|| -> Result<TcpStream> {
            let (stream, _) = listener.accept().map_err(LabError::io("accept"))?;
            Ok(stream)
        });
        let near = connect(lan, dst_addr, STALL)?;
        let far = accepted.join().expect("accept does not panic")?;
        let (sender, receiver) = match direction {
            Direction::Upload => (near, far),
            Direction::Download => (far, near),
        };
        for s in [&sender, &receiver] {
            s.set_read_timeout(Some(STALL))
                .map_err(LabError::io("set timeout"))?;
            s.set_write_timeout(Some(STALL))
                .map_err(LabError::io("set timeout"))?;
        }
        let sent = scope.spawn(move || send(sender, bytes));
        let got = receive(receiver, bytes)?;
        sent.join().expect("the sender does not panic")?;
        match got == bytes {
            true => Ok(start.elapsed()),
            false => Err(LabError::Check(format!("{got} of {bytes} bytes arrived"))),
        }
    })
}

/// The byte at `offset` of every transfer: a pattern that catches reordering and corruption
fn pattern(offset: u64) -> u8 {
    (offset ^ (offset >> 8) ^ (offset >> 16)) as u8
}

fn send(mut stream: TcpStream, bytes: u64) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0;
    while offset < bytes {
        let n = usize::try_from((bytes - offset).min(CHUNK as u64)).expect("at most one chunk");
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(offset + i as u64);
        }
        stream
            .write_all(&buf[..n])
            .map_err(LabError::io(format!("write at byte {offset}")))?;
        offset += n as u64;
    }
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(LabError::io("shutdown"))
}

fn receive(mut stream: TcpStream, bytes: u64) -> Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = stream
            .read(&mut buf)
            .map_err(LabError::io(format!("read at byte {offset} of {bytes}")))?;
        if n == 0 {
            return Ok(offset);
        }
        if let Some(i) = buf[..n]
            .iter()
            .enumerate()
            .position(|(i, b)| *b != pattern(offset + i as u64))
        {
            return Err(LabError::Check(format!(
                "byte {} differs",
                offset + i as u64
            )));
        }
        offset += n as u64;
    }
}
