//! What an idle client costs the server in memory: the heap the server holds after many
//! handshakes, counted by an instrumented global allocator (this file holds one test so that
//! nothing else allocates meanwhile)

mod common;

use common::connect;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes one idle client may cost the server
const BUDGET: isize = 16 * 1024;
/// Clients connected for the measurement
const CLIENTS: usize = 1000;

#[test]
fn an_idle_client_costs_the_server_at_most_16_kib() {
    let now = Instant::now();
    let mut s = common::server_config();
    s.max_clients = CLIENTS;
    let mut buf = vec![0u8; ikago_proto::MAX_FRAME_LEN];
    let mut server = ikago_proto::Server::new(s, now).expect("valid server");
    // one client first, so that what every server holds anyway is not counted
    connect(&mut server, 0, now, &mut buf);
    let region = Region::new(ALLOCATOR);
    for i in 1..CLIENTS {
        connect(&mut server, i, now, &mut buf);
    }
    let c = region.change();
    let held = c.bytes_allocated as isize - c.bytes_deallocated as isize + c.bytes_reallocated;
    assert_eq!(server.stats().peers.len(), CLIENTS);
    assert_eq!(server.stats().drops.total(), 0);
    let per_client = held / (CLIENTS as isize - 1);
    println!("an idle client costs the server {per_client} bytes of heap");
    assert!(per_client > 0, "clients are kept somewhere");
    assert!(per_client <= BUDGET, "{per_client} bytes per idle client");
}
