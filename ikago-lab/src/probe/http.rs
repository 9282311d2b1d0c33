//! A tiny HTTP/1.1 client for the runners' monitor: one GET from inside a namespace, the whole
//! response read until the server closes
//!
//! The monitor listens inside the runner's network namespace (on its loopback by default), so
//! the socket is opened there ([`Netns::enter`]), as every probe does.

use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use super::tcp;
use crate::{LabError, Netns, Result};

/// Largest response read: the monitor's bodies are a few kilobytes
const MAX_RESPONSE: u64 = 4 << 20;

/// A response
#[derive(Clone, Debug)]
pub struct Reply {
    /// The status code
    pub status: u16,
    /// Header lines as (lower-case name, value)
    pub headers: Vec<(String, String)>,
    /// The body, as text
    pub body: String,
}

impl Reply {
    /// The first header called `name` (lower case)
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .map_err(|e| LabError::Check(format!("not JSON ({e}): {}", self.body)))
    }
}

/// `GET path` from `to`, from inside `ns`, within `timeout` for the whole exchange
pub fn get(ns: &Netns, to: SocketAddrV4, path: &str, timeout: Duration) -> Result<Reply> {
    let deadline = Instant::now() + timeout;
    let mut stream = tcp::connect(ns, to, timeout)?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(left))
        .and_then(|()| stream.set_write_timeout(Some(left)))
        .map_err(LabError::io("set timeout"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(LabError::io(format!("send GET {path} to {to}")))?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut raw)
        .map_err(LabError::recv(format!("GET {path} from {to}"), timeout))?;
    parse(&raw).ok_or_else(|| {
        LabError::Check(format!(
            "GET {path} from {to}: not an HTTP response: {:?}",
            String::from_utf8_lossy(&raw)
        ))
    })
}

/// Polls `GET path` until it answers 200, at most `timeout`; returns that response
pub fn wait_ok(ns: &Netns, to: SocketAddrV4, path: &str, timeout: Duration) -> Result<Reply> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match get(ns, to, path, Duration::from_secs(2)) {
            Ok(reply) if reply.status == 200 => return Ok(reply),
            Ok(reply) => format!("{} {}", reply.status, reply.body.trim()),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!("GET {path} from {to} to answer 200 (last: {last})"),
                after: timeout,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Status, headers and body of a whole response; `None` if it is not one
fn parse(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next()?.splitn(3, ' ');
    if !status_line.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = status_line.next()?.parse().ok()?;
    let headers = lines
        .map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect::<Option<Vec<_>>>()?;
    let body = &raw[end + 4..];
    let reply = Reply {
        status,
        headers,
        body: String::from_utf8_lossy(body).into_owned(),
    };
    match reply.header("content-length").map(str::parse::<usize>) {
        Some(Ok(len)) if len != body.len() => None,
        Some(Err(_)) => None,
        _ => Some(reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_whole_response_only() {
        let raw =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let r = parse(raw).expect("a response");
        assert_eq!((r.status, r.body.as_str()), (200, "{}"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.json().is_ok());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}").is_none());
        assert!(parse(b"SSH-2.0-x\r\n\r\n").is_none());
        assert!(parse(b"HTTP/1.1 503 x\r\n").is_none());
    }
}
