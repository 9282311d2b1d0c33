//! IPv4 fragments on every hop: a 4000-byte datagram from a LAN host to an Internet host and back

mod common;

use common::{Basic, ECHO_PORT, payload};
use ikago_sim::{Capture, Direction, LinkConfig, Oversize, SimDrop, WorldConfig};
use std::time::Duration;

/// How many IPv4 fragments the tap `tap` saw in `direction`, and the largest IPv4 packet it saw
fn fragments(capture: &Capture, tap: &str, direction: Direction) -> (usize, usize) {
    let frames = &capture
        .tap(tap)
        .unwrap_or_else(|| panic!("no tap {tap}"))
        .frames;
    let ip: Vec<&[u8]> = frames
        .iter()
        .filter(|f| f.direction == direction && f.data[12..14] == [8, 0])
        .map(|f| &f.data[14..])
        .collect();
    let fragments = ip.iter().filter(|p| p[6] & 0x3f != 0 || p[7] != 0).count();
    let largest = ip
        .iter()
        .map(|p| usize::from(u16::from_be_bytes([p[2], p[3]])))
        .max()
        .unwrap_or(0);
    (fragments, largest)
}

/// Sends a 4000-byte datagram from the LAN host to the echo and waits for it to come back; the
/// client's tunnel MTU is `tunnel_mtu` and it fragments toward the LAN at 1200 bytes
fn echo_big_datagram(config: WorldConfig, tunnel_mtu: u16) -> Basic {
    let mut b = Basic::with_client(config, |c| {
        c.mtu = tunnel_mtu;
        c.fragment = 1200;
    });
    common::connect(&mut b.world, b.client);
    let data = payload(12, 4000);
    let to = b.echo_addr();
    b.world.host_mut(b.pc).udp_send(5000, to, &data);
    b.world
        .run_until(|w| w.host(b.pc).payloads_on(5000).len() == 1, 20_000);
    b.world.run_for(Duration::from_secs(1));
    assert_eq!(
        b.world.host(b.far).payloads_on(ECHO_PORT),
        [&data[..]],
        "{}",
        b.world.summary()
    );
    assert_eq!(
        b.world.host(b.pc).payloads_on(5000),
        [&data[..]],
        "{}",
        b.world.summary()
    );
    b
}

#[test]
fn fragments_every_way() {
    let mut config = WorldConfig::new(12);
    config.capture = true;
    config.router.link.mtu = 1000;
    config.server.mtu = 1000;
    let b = echo_big_datagram(config, 1000);
    assert_eq!(
        b.world.drops().get(SimDrop::LinkMtu),
        0,
        "every tunnel frame fit the 1000-byte link"
    );
    let cap = b.world.capture();
    // the LAN host fragments at its 1500-byte MTU
    let (n, largest) = fragments(cap, "client0.lan", Direction::In);
    assert!(
        n >= 3 && largest <= 1500,
        "{n} fragments, largest {largest}"
    );
    // the tunnel frames leave the client as fragments of at most 1000 bytes
    let (n, largest) = fragments(cap, "client0.wan", Direction::Out);
    assert!(
        n >= 2 && largest <= 1000,
        "{n} fragments, largest {largest}"
    );
    // and the server's toward the client too
    let (n, largest) = fragments(cap, "server.wan", Direction::Out);
    assert!(
        n >= 2 && largest <= 1000,
        "{n} fragments, largest {largest}"
    );
    // the server fragments toward the Internet host at its 1500-byte fragment size
    let (n, largest) = fragments(cap, "server.upstream", Direction::Out);
    assert!(
        n >= 3 && largest <= 1500,
        "{n} fragments, largest {largest}"
    );
    // the Internet host's echo comes back in fragments
    let (n, largest) = fragments(cap, "server.upstream", Direction::In);
    assert!(
        n >= 3 && largest <= 1500,
        "{n} fragments, largest {largest}"
    );
    // the client fragments toward the LAN at 1200 bytes
    let (n, largest) = fragments(cap, "client0.lan", Direction::Out);
    assert!(
        n >= 4 && largest <= 1200,
        "{n} fragments, largest {largest}"
    );
}

#[test]
fn router_fragments_tunnel_frames_again() {
    let mut config = WorldConfig::new(120);
    config.router.link = LinkConfig {
        mtu: 800,
        oversize: Oversize::Fragment,
        ..LinkConfig::clean()
    };
    config.capture = true;
    let b = echo_big_datagram(config, 1500);
    assert_eq!(b.world.drops().get(SimDrop::LinkMtu), 0);
    // the client sent fragments of at most 1500 bytes; the server received them at most 800
    let (_, largest) = fragments(b.world.capture(), "client0.wan", Direction::Out);
    assert!(largest > 800, "{largest}");
    let (n, largest) = fragments(b.world.capture(), "server.wan", Direction::In);
    assert!(n >= 6 && largest <= 800, "{n} fragments, largest {largest}");
}
