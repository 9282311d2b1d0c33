//! The FakeTCP handshake on the wire: exactly SYN, SYN+ACK, ACK, as a Linux connection opens

mod common;

use common::{Basic, connect};
use etherparse::SlicedPacket;
use ikago_sim::{Direction, WorldConfig};
use std::time::Duration;

/// The TCP flags of every FakeTCP segment on the client's WAN device, in order, with their
/// direction
fn client_segments(b: &Basic) -> Vec<(Direction, &'static str)> {
    let tap = b.world.capture().tap("client0.wan").expect("tapped");
    tap.frames
        .iter()
        .filter_map(|f| {
            let p = SlicedPacket::from_ethernet(&f.data).ok()?;
            let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
                return None;
            };
            let flags = match (t.syn(), t.ack(), t.payload().is_empty()) {
                (true, false, _) => "SYN",
                (true, true, _) => "SYN+ACK",
                (false, true, true) => "ACK",
                (false, _, _) => "data",
            };
            Some((f.direction, flags))
        })
        .collect()
}

#[test]
fn the_client_acknowledges_the_syn_ack_once() {
    let mut config = WorldConfig::new(21);
    config.capture = true;
    let mut b = Basic::new(config);
    connect(&mut b.world, b.client);
    b.world.run_for(Duration::from_millis(500));
    assert_eq!(
        client_segments(&b),
        [
            (Direction::Out, "SYN"),
            (Direction::In, "SYN+ACK"),
            (Direction::Out, "ACK")
        ],
        "SYN, then one ACK"
    );
}
