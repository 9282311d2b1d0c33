//! The HTTP behaviour over a real loopback socket

mod common;

use common::*;
use ikago_monitor::{IO_TIMEOUT, MAX_CONNECTIONS, MAX_REQUEST_BYTES, Monitor, MonitorError};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn started() -> Monitor {
    let m = Monitor::start("127.0.0.1:0".parse().unwrap()).expect("a free port");
    m.publisher().publish(client_snapshot(Instant::now()));
    m
}

#[test]
fn original_routes_answer_json_with_cors() {
    let m = started();
    for path in ["/", "/dns", "/?from=ikago-web"] {
        let r = get(m.local_addr(), path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("connection"), Some("close"));
        let v: Value = serde_json::from_slice(&r.body).expect("JSON");
        if path == "/dns" {
            assert_eq!(v[0]["name"], "example.com");
        } else {
            assert_eq!(v["name"], "IkaGo-client");
        }
    }
}

#[test]
fn other_routes_and_head() {
    let m = started();
    let addr = m.local_addr();
    let r = get(addr, "/dashboard");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|c| c.contains("default-src 'none'"))
    );
    assert!(r.text().contains("<canvas"));
    let r = get(addr, "/api/snapshot");
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["peers"][0]["id"], "10.6.0.2");
    assert_eq!(v["unopenable"], 0);
    assert_eq!(get(addr, "/nope").status, 404);
    assert_eq!(get(addr, "/dns/").status, 404);
    let r = exchange(addr, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 100
    );
    let r = exchange(addr, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn no_snapshot_yet_is_503_but_the_page_loads() {
    let m = Monitor::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let r = get(m.local_addr(), "/");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(get(m.local_addr(), "/dashboard").status, 200);
}

#[test]
fn garbage_is_400_and_other_methods_405() {
    let m = started();
    let addr = m.local_addr();
    for garbage in [
        &b"hello\r\n\r\n"[..],
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ] {
        let r = exchange(addr, garbage);
        assert_eq!(r.status, 400, "{garbage:?}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }
    // a client that closes in the middle of its head
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_reply(&raw).status, 400);
    assert_eq!(exchange(addr, b"GET / HTTP/2.0\r\n\r\n").status, 505);
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let req = format!("{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
        let r = exchange(addr, req.as_bytes());
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    }
    let r = exchange(
        addr,
        b"OPTIONS / HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("access-control-allow-private-network"),
        Some("true")
    );
}

#[test]
fn an_oversized_request_is_431() {
    let m = started();
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
    req.resize(MAX_REQUEST_BYTES + 100, b'a');
    let mut s = TcpStream::connect(m.local_addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // the server may answer and close before reading it all
    let _ = s.write_all(&req);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert_eq!(parse_reply(&raw).status, 431);
}

#[test]
fn port_in_use_is_a_clear_error() {
    let m = started();
    let addr = m.local_addr();
    let e = Monitor::start(addr).expect_err("the port is taken");
    assert!(matches!(e, MonitorError::Bind { addr: a, .. } if a == addr));
    let msg = e.to_string();
    assert_eq!(
        msg,
        format!("cannot start the monitor on {addr}: the address is already in use")
    );
    assert!(!msg.contains('\n'));
}

#[test]
fn stop_releases_the_port() {
    let m = started();
    let addr = m.local_addr();
    m.stop();
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
    let again = Monitor::start(addr).expect("the port is free again");
    drop(again);
}

/// Opens a connection that sends a partial head and then nothing
fn slowloris(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    s
}

#[test]
fn a_slowloris_client_does_not_block_a_second_one() {
    let m = started();
    let addr = m.local_addr();
    let mut slow = slowloris(addr);
    let t = Instant::now();
    assert_eq!(get(addr, "/").status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "served at once: {:?}",
        t.elapsed()
    );
    // the slow one is cut off with 408 once its time is up
    slow.set_read_timeout(Some(IO_TIMEOUT * 3)).unwrap();
    let mut raw = Vec::new();
    slow.read_to_end(&mut raw).unwrap();
    assert_eq!(parse_reply(&raw).status, 408);
    let waited = t.elapsed();
    assert!(waited >= IO_TIMEOUT - Duration::from_millis(500) && waited < IO_TIMEOUT * 2);
}

#[test]
fn a_trickling_client_is_cut_off_at_the_deadline() {
    let m = started();
    let mut s = TcpStream::connect(m.local_addr()).unwrap();
    let t = Instant::now();
    // one byte every 200 ms would reset a per-read timeout forever; the deadline is per request
    let mut raw = Vec::new();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    for b in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".iter().cycle() {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        let mut chunk = [0u8; 512];
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        assert!(t.elapsed() < IO_TIMEOUT * 3, "never cut off");
    }
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.read_to_end(&mut raw);
    assert_eq!(parse_reply(&raw).status, 408);
    assert!(t.elapsed() < IO_TIMEOUT + Duration::from_secs(2));
}

#[test]
fn too_many_connections_get_503_and_the_rest_recovers() {
    let m = started();
    let addr = m.local_addr();
    let hogs: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| slowloris(addr)).collect();
    // give the acceptor time to hand every hog a slot
    std::thread::sleep(Duration::from_millis(300));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert_eq!(parse_reply(&raw).status, 503);
    drop(hogs);
    // closed hogs give their slots back
    let t = Instant::now();
    loop {
        // a request that still finds every slot taken may be reset after its 503
        let r = try_exchange(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        if r.is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(3), "slots never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn publishing_swaps_what_is_served() {
    let m = started();
    let addr = m.local_addr();
    let publisher = m.publisher();
    let t0 = Instant::now();
    publisher.publish(server_snapshot(t0));
    let v: Value = serde_json::from_slice(&get(addr, "/").body).unwrap();
    assert_eq!(v["name"], "IkaGo-server");
    // many publishes while clients read: every answer is one whole snapshot
    let writer = std::thread::spawn(move || {
        for i in 0..200 {
            let snap = if i % 2 == 0 {
                client_snapshot(t0)
            } else {
                server_snapshot(t0)
            };
            publisher.publish(snap);
        }
    });
    for _ in 0..20 {
        let v: Value = serde_json::from_slice(&get(addr, "/").body).unwrap();
        assert!(v["name"] == "IkaGo-client" || v["name"] == "IkaGo-server");
    }
    writer.join().unwrap();
}
