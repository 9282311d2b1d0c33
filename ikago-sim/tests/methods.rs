//! All six encryption methods end to end, and what a client with the wrong password gets

mod common;

use common::{Basic, connect, events_of, exchange, payload};
use ikago_proto::{DropReason, Event, Method};
use ikago_sim::{HostConfig, Origin, World, WorldConfig, addr};
use std::net::SocketAddrV4;
use std::time::Duration;

#[test]
fn every_method_with_the_right_password() {
    for (i, method) in Method::ALL.into_iter().enumerate() {
        let mut config = WorldConfig::new(40 + i as u64);
        config.server.method = method;
        config.server.password = format!("password of {}", method.name());
        let mut b = Basic::new(config);
        connect(&mut b.world, b.client);
        let (small, full) = (payload(i as u8, 20), payload(i as u8 + 100, 1472));
        let to = b.echo_addr();
        exchange(&mut b.world, b.pc, 5000, to, &small);
        exchange(&mut b.world, b.pc, 5000, to, &full);
        assert_eq!(
            b.world.host(b.pc).payloads_on(5000),
            [&small[..], &full[..]],
            "{}",
            method.name()
        );
        let drops =
            b.world.server().stats().drops.total() + b.world.client(b.client).stats().drops.total();
        assert_eq!(drops, 0, "{}:\n{}", method.name(), b.world.summary());
    }
}

#[test]
fn wrong_password_gets_nothing_through() {
    for method in Method::ALL.into_iter().filter(|&m| m != Method::Plain) {
        let mut config = WorldConfig::new(99);
        config.server.method = method;
        config.server.password = "right".to_owned();
        let mut world = World::new(config);
        let good = world.add_client(|_| {});
        let bad = world.add_client(|c| c.password = "wrong".to_owned());
        let pc_good = world.add_lan_host(good, HostConfig::lan("good", addr::lan(2)));
        let pc_bad = world.add_lan_host(bad, HostConfig::lan("bad", addr::lan(2)));
        let far = world.add_internet_host(HostConfig::internet("far", addr::internet(2)));
        world.host_mut(far).udp_echo(7);
        // the handshake is not encrypted: both clients connect
        world.run_until(
            |w| w.client(good).is_connected() && w.client(bad).is_connected(),
            common::CONNECT_STEPS,
        );
        let to = SocketAddrV4::new(addr::internet(2), 7);
        for n in 0..5u8 {
            world.host_mut(pc_bad).udp_send(5000, to, &payload(n, 100));
        }
        world.run_for(Duration::from_secs(1));
        exchange(&mut world, pc_good, 5000, to, b"still works");
        world.run_for(Duration::from_secs(1));
        let name = method.name();
        assert_eq!(
            world.host(far).payloads_on(7),
            [b"still works"],
            "{name}: only the good client's datagram reached the Internet host"
        );
        assert!(
            world.host(pc_bad).datagrams().is_empty(),
            "{name}: nothing came back to the bad client's host"
        );
        assert_eq!(
            world.server().stats().drops.get(DropReason::DecryptFailed),
            5,
            "{name}:\n{}",
            world.summary()
        );
        let reported = events_of(&world, Origin::Server).iter().any(|e| {
            matches!(
                e,
                Event::Dropped {
                    reason: DropReason::DecryptFailed,
                    ..
                }
            )
        });
        assert!(reported, "{name}: the server reported the failures");
    }
}
