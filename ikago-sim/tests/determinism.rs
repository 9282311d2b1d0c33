//! The same seed gives the same run: every event and every captured frame, to the microsecond

use ikago_sim::{HostConfig, LinkConfig, World, WorldConfig, addr};
use std::net::SocketAddrV4;
use std::time::Duration;

/// Two clients with a LAN host each over a lossy, reordering link, sending to an echo and a sink
fn run(seed: u64) -> World {
    let mut config = WorldConfig::new(seed);
    config.capture = true;
    config.router.link = LinkConfig {
        loss: 0.02,
        reorder: 0.2,
        reorder_delay: Duration::from_millis(5),
        ..LinkConfig::clean()
    };
    let mut world = World::new(config);
    let a = world.add_client(|_| {});
    let b = world.add_client(|_| {});
    let pa = world.add_lan_host(a, HostConfig::lan("a", addr::lan(2)));
    let pb = world.add_lan_host(b, HostConfig::lan("b", addr::lan(2)));
    let far = world.add_internet_host(HostConfig::internet("far", addr::internet(2)));
    world.host_mut(far).udp_echo(7);
    world.host_mut(far).udp_bind(9);
    world.run_for(Duration::from_secs(1));
    let to = SocketAddrV4::new(addr::internet(2), 7);
    let sink = SocketAddrV4::new(addr::internet(2), 9);
    for n in 0..50u8 {
        let dst = if n % 2 == 0 { to } else { sink };
        world.host_mut(pa).udp_send(5000, dst, &[n; 300]);
        world.host_mut(pb).udp_send(5000, dst, &[n; 300]);
        world.run_for(Duration::from_millis(20));
    }
    world.run_for(Duration::from_secs(3));
    world
}

#[test]
fn a_seed_replays_exactly() {
    let (first, second) = (run(31), run(31));
    assert_eq!(first.events(), second.events());
    for (x, y) in first.capture().taps.iter().zip(&second.capture().taps) {
        assert!(!x.frames.is_empty(), "{}", x.name);
        assert!(x.frames == y.frames, "{} differs", x.name);
    }
    assert_eq!(first.drops(), second.drops());
    assert_eq!(first.now(), second.now());
    let other = run(32);
    assert_ne!(
        first.capture().taps[0].frames,
        other.capture().taps[0].frames,
        "another seed differs"
    );
}
