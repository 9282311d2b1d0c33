//! Smoke test (root only): ikago-sync client and server carry a UDP datagram in namespaces

use std::path::Path;

#[test]
fn udp_crosses_the_tunnel() {
    if !ikago_host::netns::is_root() {
        eprintln!("skipped: the smoke test needs root (network namespaces, pcap, iptables)");
        return;
    }
    let me = Path::new(env!("CARGO_BIN_EXE_ikago-sync"));
    ikago_host::smoke::udp_crosses(me, me).unwrap_or_else(|e| panic!("ikago-sync: {e}"));
}
