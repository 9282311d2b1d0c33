//! A real TCP connection (smoltcp on both ends) carried by the tunnel, verified byte by byte

mod common;

use common::{Basic, connect};
use ikago_sim::{Transfer, WorldConfig, addr};
use std::net::SocketAddrV4;
use std::time::Duration;

/// One mebibyte
const MB: u64 = 1 << 20;

#[test]
fn tcp_one_megabyte_each_way() {
    let mut b = Basic::new(WorldConfig::new(4));
    connect(&mut b.world, b.client);
    let far = b.world.host(b.far).config().addr.expect("an IPv4 host");
    let up = Transfer {
        send_seed: 1,
        send_len: MB,
        expect_seed: 2,
        expect_len: MB,
    };
    let down = Transfer {
        send_seed: 2,
        send_len: MB,
        expect_seed: 1,
        expect_len: MB,
    };
    b.world.host_mut(b.far).tcp_listen(8080, down);
    b.world
        .host_mut(b.pc)
        .tcp_connect(40000, SocketAddrV4::new(far, 8080), up);
    let took = b.world.run_until(
        |w| {
            let done = |h| w.host(h).tcp_streams().iter().all(|s| s.is_complete());
            done(b.pc) && done(b.far)
        },
        200_000,
    );
    let pc = b.world.host(b.pc).tcp_streams()[0].clone();
    let srv = b.world.host(b.far).tcp_streams()[0].clone();
    assert!(pc.is_complete(), "{pc:?}");
    assert!(srv.is_complete(), "{srv:?}");
    assert_eq!(pc.remote, Some(SocketAddrV4::new(far, 8080).into()));
    let public = addr::SERVER_PUBLIC;
    assert!(
        srv.remote.is_some_and(|r| r.ip() == public),
        "the Internet host sees the server's address"
    );
    println!("measured: 1 MiB each way in {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}
