//! Smoke test (root only): ikago-async client and server carry a UDP datagram in namespaces,
//! and so do the two runners against each other when ikago-sync was built too

use ikago_host::smoke::{sibling, udp_crosses};
use std::path::Path;

#[test]
fn udp_crosses_the_tunnel() {
    if !ikago_host::netns::is_root() {
        eprintln!("skipped: the smoke test needs root (network namespaces, pcap, iptables)");
        return;
    }
    let me = Path::new(env!("CARGO_BIN_EXE_ikago-async"));
    udp_crosses(me, me).unwrap_or_else(|e| panic!("ikago-async: {e}"));
    match sibling(me, "ikago-sync") {
        Some(sync) => {
            udp_crosses(me, &sync).unwrap_or_else(|e| panic!("async client, sync server: {e}"));
            udp_crosses(&sync, me).unwrap_or_else(|e| panic!("sync client, async server: {e}"));
        }
        None => eprintln!("ikago-sync not built: the cross-runner pairs were skipped"),
    }
}
