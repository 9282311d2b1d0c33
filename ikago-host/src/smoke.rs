//! The smoke test both runners run: a UDP datagram crosses a real tunnel (root only)
//!
//! ```text
//! lan (198.18.1.2) -- cli (198.18.1.1 | 198.18.2.1) -- srv (198.18.2.2 | 198.18.3.1) -- dst (198.18.3.2)
//!  source              client binary                    server binary                     UDP echo
//! ```
//! Four namespaces joined by veth pairs; the client and the server run with `--rule` and an
//! encryption method; the source's datagram to the echo must come back through the tunnel. Then
//! both get SIGTERM and must exit 0 with their rules gone and `ip_forward` restored. Everything is
//! removed on the way out, failure or not.

use crate::netns::{Netns, Process, wait_for_text};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The echo's address, in the dst namespace
const ECHO: &str = "198.18.3.2:7777";
/// The source's address, in the lan namespace
const SOURCE: &str = "198.18.1.2:40000";
/// How long the client may take to connect
const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// Runs the client binary `client` against the server binary `server`; `Err` says what failed,
/// with both logs
pub fn udp_crosses(client: &Path, server: &Path) -> Result<(), String> {
    let logs = std::env::temp_dir().join(format!(
        "ikago-smoke-{}-{}",
        std::process::id(),
        client
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("client")
    ));
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let result = run(client, server, &logs);
    let dump = |name: &str| {
        let text = std::fs::read_to_string(logs.join(name)).unwrap_or_default();
        format!("--- {name}\n{text}")
    };
    let out = result.map_err(|e| format!("{e}\n{}\n{}", dump("client.log"), dump("server.log")));
    let _ = std::fs::remove_dir_all(&logs);
    out
}

/// Turns an io error into a line naming what failed
fn err(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn run(client: &Path, server: &Path, logs: &Path) -> Result<(), String> {
    let lan = Netns::create("lan").map_err(err("netns"))?;
    let cli = Netns::create("cli").map_err(err("netns"))?;
    let srv = Netns::create("srv").map_err(err("netns"))?;
    let dst = Netns::create("dst").map_err(err("netns"))?;
    lan.veth("lan-src", "198.18.1.2/24", &cli, "lan-cli", "198.18.1.1/24")
        .map_err(err("veth"))?;
    cli.veth("wan-cli", "198.18.2.1/24", &srv, "wan-srv", "198.18.2.2/24")
        .map_err(err("veth"))?;
    srv.veth("dst-srv", "198.18.3.1/24", &dst, "dst-dst", "198.18.3.2/24")
        .map_err(err("veth"))?;
    lan.ip(&["route", "add", "default", "via", "198.18.1.1"])
        .map_err(err("route"))?;
    srv.ip(&["route", "add", "default", "via", "198.18.3.2"])
        .map_err(err("route"))?;
    cli.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
        .map_err(err("sysctl"))?;

    let common = [
        "--rule",
        "--method",
        "chacha20-poly1305",
        "--password",
        "smoke",
        "-v",
    ];
    let mut s = srv.command(server);
    s.args([
        "server",
        "-p",
        "18081",
        "--listen-devices",
        "wan-srv",
        "--upstream-device",
        "dst-srv",
    ])
    .args(common);
    let server_log = logs.join("server.log");
    let server_proc = Process::spawn(s, &server_log).map_err(err("server"))?;
    let mut c = cli.command(client);
    c.args(["client", "-r", "198.18.1.2", "-s", "198.18.2.2:18081"])
        .args([
            "--listen-devices",
            "lan-cli",
            "--upstream-device",
            "wan-cli",
        ])
        .args(common);
    let client_log = logs.join("client.log");
    let client_proc = Process::spawn(c, &client_log).map_err(err("client"))?;
    if !wait_for_text(
        &client_log,
        "Connected to server 198.18.2.2:18081",
        CONNECT_LIMIT,
    ) {
        return Err("the client did not connect".into());
    }
    let echo = dst
        .run(|| UdpSocket::bind(ECHO))
        .map_err(err("netns"))?
        .map_err(err("echo"))?;
    let source = lan
        .run(|| UdpSocket::bind(SOURCE))
        .map_err(err("netns"))?
        .map_err(err("source"))?;
    exchange(&echo, &source)?;

    for (name, p) in [("client", client_proc), ("server", server_proc)] {
        let status = p.terminate(Duration::from_secs(5)).map_err(err(name))?;
        if !status.success() {
            return Err(format!("the {name} exited with {status} after SIGTERM"));
        }
    }
    for ns in [&cli, &srv] {
        let ipt = ns
            .exec("iptables-save", &[])
            .map(|o| o.stdout)
            .unwrap_or_default();
        let nft = ns
            .exec("nft", &["list", "ruleset"])
            .map(|o| o.stdout)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&ipt) + String::from_utf8_lossy(&nft);
        if text.contains("IKAGO") || text.contains("ikago_") {
            return Err(format!("rules left behind in {}:\n{text}", ns.name()));
        }
    }
    let fwd = cli
        .exec("sysctl", &["-n", "net.ipv4.ip_forward"])
        .map_err(err("sysctl"))?;
    if String::from_utf8_lossy(&fwd.stdout).trim() != "1" {
        return Err("ip_forward was not restored to 1 on the client".into());
    }
    Ok(())
}

/// Echoes on `echo` while `source` sends a datagram and waits for it to come back (a few tries:
/// the first one may wait for ARP)
fn exchange(echo: &UdpSocket, source: &UdpSocket) -> Result<(), String> {
    let err = |e: std::io::Error| e.to_string();
    echo.set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(err)?;
    source
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(err)?;
    let stop = AtomicBool::new(false);
    let to: SocketAddr = ECHO.parse().expect("a valid constant");
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = echo.recv_from(&mut buf) {
                    let _ = echo.send_to(&buf[..n], from);
                }
            }
        });
        let result = (|| {
            let mut buf = [0u8; 2048];
            for attempt in 0..5 {
                let msg = format!("ikago smoke {attempt}");
                source.send_to(msg.as_bytes(), to).map_err(err)?;
                if let Ok((n, from)) = source.recv_from(&mut buf)
                    && from == to
                    && &buf[..n] == msg.as_bytes()
                {
                    return Ok(());
                }
            }
            Err("no echo came back through the tunnel".to_owned())
        })();
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// The sibling binary `name` next to `exe` (the other runner, when the workspace built it)
pub fn sibling(exe: &Path, name: &str) -> Option<PathBuf> {
    let p = exe.with_file_name(name);
    p.is_file().then_some(p)
}
