//! Proxy NDP against a real kernel (root only): a LAN host's duplicate address detection finds a
//! published IPv6 address in use, and an address nobody publishes free
//!
//! ```text
//! lan (fd00:11::/64) -- cli (ikago-sync client, --publish fd00:11::fe) -- wan (no server)
//! ```
//! The client needs no server for this: proxy NDP answers on the LAN while it connects.

use ikago_host::netns::{Netns, Process, wait_for_text};
use std::path::Path;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ikago-sync");
/// The address the client publishes
const PUBLISHED: &str = "fd00:11::fe";
/// How long the kernel's duplicate address detection may take (one probe, a second's wait)
const DAD_LIMIT: Duration = Duration::from_secs(5);

/// The flags of `addr` on `dev` in `ns` (`ip -6 addr show`: `tentative`, `dadfailed`...), once
/// detection is over (no longer tentative, or failed), or after [`DAD_LIMIT`]
fn settled_flags(ns: &Netns, dev: &str, addr: &str) -> String {
    let start = Instant::now();
    loop {
        let out = ns.ip(&["-6", "addr", "show", "dev", dev]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.contains(&format!("inet6 {addr}/")))
            .unwrap_or_default()
            .to_owned();
        let done = !line.contains("tentative") || line.contains("dadfailed");
        if done || start.elapsed() > DAD_LIMIT {
            return line;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn duplicate_address_detection_finds_a_published_address_in_use() {
    if !ikago_host::netns::is_root() {
        eprintln!("skipped: needs root (network namespaces, pcap)");
        return;
    }
    let lan = Netns::create("ndp-lan").expect("a namespace");
    let cli = Netns::create("ndp-cli").expect("a namespace");
    let wan = Netns::create("ndp-wan").expect("a namespace");
    lan.veth(
        "lan-host",
        "198.18.11.2/24",
        &cli,
        "lan-cli",
        "198.18.11.1/24",
    )
    .unwrap();
    cli.veth(
        "wan-cli",
        "198.18.12.2/24",
        &wan,
        "wan-peer",
        "198.18.12.3/24",
    )
    .unwrap();
    // the namespaces start with IPv6 off: the LAN host's device gets it back
    lan.exec("sysctl", &["-qw", "net.ipv6.conf.lan-host.disable_ipv6=0"])
        .unwrap();
    let log = std::env::temp_dir().join(format!("ikago-ndp-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut c = cli.command(Path::new(BIN));
    c.args(["client", "-r", "198.18.11.0/24,fd00:11::/64"])
        .args(["-s", "198.18.12.1:18081", "--publish", PUBLISHED])
        .args([
            "--listen-devices",
            "lan-cli",
            "--upstream-device",
            "wan-cli",
        ])
        .args(["--password", "ndp", "-v"]);
    let client = Process::spawn(c, &log).unwrap();
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        wait_for_text(&log, "Connect to server", Duration::from_secs(10)),
        "the client started:\n{}",
        text()
    );

    lan.ip(&["addr", "add", &format!("{PUBLISHED}/64"), "dev", "lan-host"])
        .unwrap();
    let published = settled_flags(&lan, "lan-host", PUBLISHED);
    assert!(
        published.contains("dadfailed"),
        "the kernel saw the address in use: {published:?}\n{}",
        text()
    );
    assert!(
        wait_for_text(
            &log,
            &format!("Defend published address {PUBLISHED}"),
            Duration::from_secs(2)
        ),
        "the client says so:\n{}",
        text()
    );

    let free = "fd00:11::7";
    lan.ip(&["addr", "add", &format!("{free}/64"), "dev", "lan-host"])
        .unwrap();
    let flags = settled_flags(&lan, "lan-host", free);
    assert!(
        flags.contains(free) && !flags.contains("tentative"),
        "an address nobody publishes passes detection: {flags:?}"
    );
    drop(client);
    let _ = std::fs::remove_file(&log);
}
