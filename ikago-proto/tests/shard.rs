//! A server split into engines by [`Shard`]: each accepts only its own clients, maps onto its
//! own slice of each NAT pool, and so alone receives the replies to its clients' flows

mod common;

use common::{client, connect, drain, inner_udp, reply_to, segment, syn, udp_source};
use ikago_proto::*;
use std::time::Instant;

const ENGINES: u16 = 2;
const CLIENTS: usize = 40;

#[test]
fn each_engine_serves_its_clients_their_ports_and_their_replies() {
    let now = Instant::now();
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let mut engines: Vec<Server> = (0..ENGINES)
        .map(|i| {
            let mut c = common::server_config();
            c.shard = Shard::new(i, ENGINES).expect("a valid shard");
            c.rng_seed = [i as u8; 32];
            Server::new(c, now).expect("valid engine")
        })
        .collect();
    let pool = NatConfig::default().udp_ports;
    let mut owned = [0usize; ENGINES as usize];
    for i in 0..CLIENTS {
        let owner = usize::from(Shard::of(client(i).into(), ENGINES));
        owned[owner] += 1;
        // only the owner answers the SYN; the other neither answers nor resets
        for (e, engine) in engines.iter_mut().enumerate() {
            if e != owner {
                assert_eq!(syn(engine, i, now, &mut buf), None, "client {i}");
            }
        }
        let isn = connect(&mut engines[owner], i, now, &mut buf);
        let data = segment(i, 1001, Some(isn.wrapping_add(1)), &inner_udp(5000, b"out"));
        engines[owner].handle_input(Input::Frame {
            now,
            device: DeviceId(0),
            data: &data,
        });
        let up: Vec<_> = drain(&mut engines[owner], &mut buf)
            .into_iter()
            .filter(|(d, _)| *d == DeviceId(1))
            .collect();
        assert_eq!(up.len(), 1, "client {i}'s packet goes out");
        let public = udp_source(&up[0].1).expect("a UDP packet");
        let mine = Shard::new(owner as u16, ENGINES)
            .unwrap()
            .slice(&pool)
            .unwrap();
        assert!(mine.contains(&public.port()), "{public} in {mine:?}");
        // the reply reaches the owner's client; the other engine has no such mapping
        let reply = reply_to(public, b"back");
        for (e, engine) in engines.iter_mut().enumerate() {
            engine.handle_input(Input::Frame {
                now,
                device: DeviceId(1),
                data: &reply,
            });
            let to_client = drain(engine, &mut buf)
                .iter()
                .filter_map(|(_, f)| common::tunnel_segment(f))
                .filter(|&(to, _, len)| to == client(i) && len > 0)
                .count();
            assert_eq!(to_client, usize::from(e == owner), "client {i}, engine {e}");
        }
    }
    assert!(
        owned.iter().all(|&n| n > 0),
        "clients on every engine: {owned:?}"
    );
    for (e, engine) in engines.iter().enumerate() {
        let s = engine.stats();
        assert_eq!(s.peers.len(), owned[e]);
        assert_eq!(s.nat_mappings, owned[e]);
        assert_eq!(
            s.drops.get(DropReason::OtherShard),
            (CLIENTS - owned[e]) as u64
        );
        assert_eq!(
            s.drops.get(DropReason::NoNatMapping),
            (CLIENTS - owned[e]) as u64
        );
        assert_eq!(s.drops.total(), 2 * (CLIENTS - owned[e]) as u64);
    }
}

#[test]
fn a_shard_that_does_not_exist_or_gets_no_ports_is_refused() {
    let now = Instant::now();
    let mut c = common::server_config();
    c.shard = Shard { index: 2, count: 2 };
    assert!(matches!(
        Server::new(c, now),
        Err(ConfigError::ShardOutOfRange(2, 2))
    ));
    let mut c = common::server_config();
    c.shard = Shard::new(0, 4).unwrap();
    c.nat.icmp_ids = 7..=9;
    assert!(matches!(
        Server::new(c, now),
        Err(ConfigError::NatRangeTooSmall("icmp", 4))
    ));
}
