//! ICMP echo through the tunnel: the router between client and server drops every ICMP packet

mod common;

use common::{Basic, connect, payload};
use ikago_proto::Event;
use ikago_sim::{Origin, WorldConfig};
use std::net::{SocketAddr, SocketAddrV4};

/// The echo identifier of the LAN host's pings
const IDENT: u16 = 0x4242;

#[test]
fn icmp_echo() {
    let mut b = Basic::new(WorldConfig::new(3));
    connect(&mut b.world, b.client);
    let far = b.world.host(b.far).config().addr.expect("an IPv4 host");
    for seq in 1..=3u16 {
        let data = payload(seq as u8, 56);
        b.world.host_mut(b.pc).ping(far, IDENT, seq, &data);
        b.world.run_until(
            |w| w.host(b.pc).echo_replies().len() == usize::from(seq),
            common::EXCHANGE_STEPS,
        );
    }
    let replies = b.world.host(b.pc).echo_replies();
    assert_eq!(replies.len(), 3);
    for (r, seq) in replies.iter().zip(1..=3u16) {
        assert_eq!((r.from, r.ident, r.seq), (far.into(), IDENT, seq));
        assert_eq!(r.payload, payload(seq as u8, 56));
    }
    let mapped: Vec<SocketAddr> = b
        .world
        .events()
        .iter()
        .filter(|e| e.origin == Origin::Server)
        .filter_map(|e| match e.event {
            Event::NatMapped {
                protocol: 1, inner, ..
            } => Some(inner),
            _ => None,
        })
        .collect();
    let pc = b.world.host(b.pc).config().addr.expect("an IPv4 host");
    assert_eq!(mapped.len(), 1, "one ICMP mapping for the three echoes");
    assert_eq!(
        mapped[0],
        SocketAddr::V4(SocketAddrV4::new(pc, IDENT)),
        "keyed by the echo identifier"
    );
}
