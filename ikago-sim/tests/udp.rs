//! UDP through the tunnel: the router between client and server drops every UDP datagram, so
//! whatever arrives went through FakeTCP

mod common;

use common::{Basic, ECHO_PORT, connect, exchange, payload};
use ikago_proto::wire::dns::parse_answer;
use ikago_sim::{HostConfig, SimDrop, WorldConfig, addr, dns};
use std::net::{IpAddr, SocketAddrV4};
use std::time::Duration;

#[test]
fn udp_request_and_reply_small_and_full_size() {
    let mut b = Basic::new(WorldConfig::new(1));
    let handshake = connect(&mut b.world, b.client);
    println!("measured: handshake {handshake:?} over a 10 ms one-way link");
    assert!(handshake < Duration::from_millis(25), "{handshake:?}");
    let to = b.echo_addr();
    // 1472 bytes of payload make a full 1500-byte inner packet
    let (small, full) = (payload(1, 20), payload(2, 1472));
    exchange(&mut b.world, b.pc, 5000, to, &small);
    exchange(&mut b.world, b.pc, 5000, to, &full);
    let pc = b.world.host(b.pc);
    assert_eq!(pc.payloads_on(5000), [&small[..], &full[..]]);
    assert!(
        pc.datagrams().iter().all(|d| d.from == to.into()),
        "replies come from the echo host"
    );
    let far = b.world.host(b.far);
    assert_eq!(far.payloads_on(ECHO_PORT), [&small[..], &full[..]]);
    assert!(
        far.datagrams()
            .iter()
            .all(|d| d.from.ip() == addr::SERVER_PUBLIC),
        "the server NATs onto its public address"
    );
    assert_eq!(
        b.world.drops().get(SimDrop::Firewall),
        0,
        "nothing tried to bypass the tunnel"
    );
}

#[test]
fn dns_like_exchange() {
    let mut b = Basic::new(WorldConfig::new(2));
    let name_server = addr::internet(53);
    let ns = b
        .world
        .add_internet_host(HostConfig::internet("ns", name_server));
    let answer = addr::internet(80);
    b.world
        .host_mut(ns)
        .dns_server(&[("www.example.test", answer)]);
    connect(&mut b.world, b.client);
    let (id, name) = (7, "www.example.test");
    b.world
        .host_mut(b.pc)
        .dns_query(5353, name_server, id, name);
    b.world.run_until(
        |w| !w.host(b.pc).payloads_on(5353).is_empty(),
        common::EXCHANGE_STEPS,
    );
    let query = dns::query(id, name);
    let expected = dns::answer(&query, &[(name.to_owned(), answer)]).expect("a query");
    assert_eq!(b.world.host(ns).payloads_on(dns::PORT), [&query[..]]);
    let got = b.world.host(b.pc).datagrams();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].from,
        SocketAddrV4::new(name_server, dns::PORT).into()
    );
    assert_eq!(got[0].payload, expected);
    let parsed = parse_answer(&got[0].payload).expect("an answer");
    assert_eq!((parsed.id, parsed.name.as_str()), (id, name));
    assert_eq!(parsed.addrs, [IpAddr::from(answer)]);
}
