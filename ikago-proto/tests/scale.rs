//! A server with 1,000 clients of 50 UDP flows each (50,000 NAT mappings): every flow is
//! translated and answered, and mappings expire from a deadline queue: the server wakes when
//! the next one is due, not on a tick, and a refreshed mapping outlives the others

mod common;

use common::{client, connect, drain, inner_udp, reply_to, segment, udp_source};
use ikago_proto::*;
use std::time::{Duration, Instant};

const CLIENTS: usize = 1000;
const FLOWS: u16 = 50;
const UDP_TIMEOUT: Duration = Duration::from_secs(120);

/// Feeds a frame and returns the frames sent, by device
fn feed(
    server: &mut Server,
    now: Instant,
    device: u8,
    data: &[u8],
    buf: &mut [u8],
) -> Vec<(DeviceId, Vec<u8>)> {
    server.handle_input(Input::Frame {
        now,
        device: DeviceId(device),
        data,
    });
    drain(server, buf)
}

/// When the server next wants to be called, after everything due at `now` was handled
fn next_wakeup(server: &mut Server, now: Instant, buf: &mut [u8]) -> Instant {
    server.handle_input(Input::Timeout(now));
    loop {
        if let Output::Timeout(at) = server.poll_output(buf) {
            return at;
        }
    }
}

#[test]
fn a_thousand_clients_with_fifty_flows_each() {
    let t0 = Instant::now();
    let mut c = common::server_config();
    c.max_clients = CLIENTS;
    c.nat.udp_ports = 1024..=65535;
    c.nat.udp_timeout = UDP_TIMEOUT;
    let mut server = Server::new(c, t0).expect("valid server");
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let mut publics = Vec::with_capacity(CLIENTS * usize::from(FLOWS));
    for i in 0..CLIENTS {
        let ack = connect(&mut server, i, t0, &mut buf).wrapping_add(1);
        let mut seq = 1001u32;
        for f in 0..FLOWS {
            let inner = inner_udp(40000 + f, b"flow");
            let data = segment(i, seq, Some(ack), &inner);
            seq = seq.wrapping_add(inner.len() as u32);
            let up: Vec<_> = feed(&mut server, t0, 0, &data, &mut buf)
                .into_iter()
                .filter(|(d, _)| *d == DeviceId(1))
                .collect();
            assert_eq!(up.len(), 1, "client {i} flow {f}");
            publics.push((i, udp_source(&up[0].1).expect("UDP")));
        }
    }
    let s = server.stats();
    assert_eq!(
        (s.peers.len(), s.nat_mappings),
        (CLIENTS, CLIENTS * usize::from(FLOWS))
    );
    assert_eq!(s.drops.total(), 0);
    // replies to a sample of the mappings reach their clients
    for &(i, public) in publics.iter().step_by(97) {
        let out = feed(&mut server, t0, 1, &reply_to(public, b"back"), &mut buf);
        let to = out.iter().filter_map(|(_, f)| common::tunnel_segment(f));
        assert_eq!(
            to.filter(|&(to, _, n)| to == client(i) && n > 0).count(),
            1,
            "{public}"
        );
    }
    // the first client's flows are refreshed halfway
    let half = t0 + UDP_TIMEOUT / 2;
    for &(_, public) in publics.iter().filter(|(i, _)| *i == 0) {
        feed(&mut server, half, 1, &reply_to(public, b"again"), &mut buf);
    }
    // nothing is due before the timeout: the server sleeps until then (clients' delayed ACKs
    // first)
    let mut now = half;
    for _ in 0..100 {
        if now >= t0 + UDP_TIMEOUT {
            break;
        }
        now = next_wakeup(&mut server, now, &mut buf);
        if now < t0 + UDP_TIMEOUT {
            assert_eq!(
                server.stats().nat_mappings,
                publics.len(),
                "nothing expired early"
            );
        }
    }
    assert_eq!(now, t0 + UDP_TIMEOUT, "woken when the mappings are due");
    let after = next_wakeup(&mut server, now, &mut buf);
    assert_eq!(
        server.stats().nat_mappings,
        usize::from(FLOWS),
        "the refreshed flows remain"
    );
    assert_eq!(after, half + UDP_TIMEOUT, "and the next wake-up is theirs");
    next_wakeup(&mut server, after, &mut buf);
    assert_eq!(server.stats().nat_mappings, 0);
}
