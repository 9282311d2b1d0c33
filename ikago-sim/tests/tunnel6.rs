//! The tunnel over IPv6 (outer IPv6): the client reaches the server's IPv6 address
//! (2001:db8:14::2) from its own (2001:db8:12::2) through the router, which blocks UDP and
//! ICMPv6 from the client side and tracks TCP strictly; LAN hosts' IPv4 and IPv6 cross inside
//! it, frames above the path MTU leave in IPv6 fragments, a router's Packet Too Big lowers the
//! frame size, a spoofed one changes nothing

mod common;

use common::{
    CONNECT_STEPS, EXCHANGE_STEPS, add_dual_stack_far, connect, dual_stack_lan, events_of,
    exchange, payload,
};
use ikago_proto::wire::{ethernet, icmpv6, ipv6, proto};
use ikago_proto::{ClientConfig, DropReason, Event, KcpTuning, Mac, Method, Protocol};
use ikago_sim::{
    ClientId, HostId, LinkConfig, Origin, SimDrop, Transfer, World, WorldConfig, addr,
};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The UDP echo port of the Internet host
const ECHO: u16 = 7;
/// The echo identifier of the LAN host's pings
const IDENT: u16 = 0x6666;

/// The server's IPv6 tunnel address
fn server6() -> SocketAddr {
    SocketAddr::new(addr::SERVER_WAN6.into(), addr::SERVER_PORT)
}

/// A dual-stack World behind the strict firewall, its client tunnelling to the server's IPv6
/// address, with a dual-stack LAN host `pc` (198.18.11.2, fd00:11::2) and a dual-stack Internet
/// host `far` (198.18.13.2, 2001:db8:13::2) echoing UDP
struct Tunnel6 {
    world: World,
    client: ClientId,
    pc: HostId,
    far: HostId,
}

impl Tunnel6 {
    fn new(
        seed: u64,
        world: impl FnOnce(&mut WorldConfig),
        client: impl FnOnce(&mut ClientConfig),
    ) -> Self {
        let mut config = WorldConfig::dual_stack(seed);
        config.router.conntrack = true;
        config.capture = true;
        world(&mut config);
        let mut world = World::new(config);
        let client = world.add_client(|c| {
            c.server = server6();
            c.protocol = Protocol::Ikago2;
            client(c);
        });
        Self::connected(world, client)
    }

    /// Adds the hosts `pc` and `far` to `world` and runs until `client` is connected
    fn connected(mut world: World, client: ClientId) -> Self {
        let pc = world.add_lan_host(client, dual_stack_lan("pc", 2));
        let far = add_dual_stack_far(&mut world);
        connect(&mut world, client);
        Self {
            world,
            client,
            pc,
            far,
        }
    }

    /// Sends `payload` from the LAN host's `port` to `to` and runs until one more datagram
    /// arrives there
    fn exchange(&mut self, port: u16, to: SocketAddr, payload: &[u8]) {
        exchange(&mut self.world, self.pc, port, to, payload);
    }

    /// Pings `to` from the LAN host and runs until the reply is back
    fn ping(&mut self, to: IpAddr, seq: u16) {
        let before = self.world.host(self.pc).echo_replies().len();
        self.world
            .host_mut(self.pc)
            .ping(to, IDENT, seq, &payload(seq as u8, 56));
        self.world.run_until(
            |w| w.host(self.pc).echo_replies().len() > before,
            EXCHANGE_STEPS,
        );
    }

    /// A TCP transfer of `len` bytes each way between the LAN host's `port` and the same port
    /// of `far` at `to`
    fn tcp(&mut self, to: IpAddr, port: u16, len: u64) {
        self.world.host_mut(self.far).tcp_listen(
            port,
            Transfer {
                send_seed: 2,
                send_len: len,
                expect_seed: 1,
                expect_len: len,
            },
        );
        self.world.host_mut(self.pc).tcp_connect(
            port,
            SocketAddr::new(to, port),
            Transfer {
                send_seed: 1,
                send_len: len,
                expect_seed: 2,
                expect_len: len,
            },
        );
        let n = self.world.host(self.pc).tcp_streams().len();
        self.world.run_until(
            |w| {
                w.host(self.pc).tcp_streams()[n - 1].is_complete()
                    && w.host(self.far)
                        .tcp_streams()
                        .iter()
                        .filter(|s| s.is_complete())
                        .count()
                        == n
            },
            CONNECT_STEPS * 10,
        );
    }

    /// The IPv6 packets of the tunnel on the client's WAN tap, in the order captured
    fn tunnel_packets(&self) -> Vec<Vec<u8>> {
        let tap = self.world.capture().tap("client0.wan").expect("captured");
        tap.frames
            .iter()
            .filter_map(|f| ethernet::parse(&f.data))
            .filter(|e| e.ethertype == ethernet::ETHERTYPE_IPV6)
            .filter_map(|e| ipv6::Packet::parse(e.payload).ok())
            .filter(|p| {
                IpAddr::from(p.src()) == server6().ip() || IpAddr::from(p.dst()) == server6().ip()
            })
            .map(|p| p.bytes().to_vec())
            .collect()
    }

    /// What the firewall and conntrack dropped must be nothing
    fn assert_clean(&self) {
        let drops = self.world.drops();
        assert_eq!(drops.get(SimDrop::Firewall), 0, "{drops}");
        assert_eq!(drops.conntrack_invalid(), 0, "{drops}");
        assert_eq!(drops.get(SimDrop::UntrackedFragment), 0, "{drops}");
    }
}

/// `far`'s echo service over IPv4 (`v6` false) or IPv6
fn echo(v6: bool) -> SocketAddr {
    match v6 {
        false => SocketAddr::new(addr::internet(2).into(), ECHO),
        true => SocketAddr::new(addr::internet6(2).into(), ECHO),
    }
}

#[test]
fn udp_tcp_and_ping_of_both_families_cross_an_ipv6_tunnel() {
    let mut t = Tunnel6::new(71, |_| {}, |_| {});
    let client = t.world.client(t.client);
    assert_eq!(client.server_addr(), server6());
    assert_eq!(client.local_addr().ip(), IpAddr::from(addr::client_wan6(0)));
    let peers: Vec<SocketAddr> = t.world.server().clients().collect();
    assert_eq!(
        peers,
        [client.local_addr()],
        "the server keys the client by its IPv6 address"
    );
    for v6 in [false, true] {
        let (small, full) = (payload(1, 20), payload(2, 1200));
        t.exchange(5000, echo(v6), &small);
        t.exchange(5000, echo(v6), &full);
    }
    let pc = t.world.host(t.pc);
    assert_eq!(pc.payloads_on(5000).len(), 4);
    t.ping(addr::internet(2).into(), 1);
    t.ping(addr::internet6(2).into(), 2);
    assert_eq!(t.world.host(t.pc).echo_replies().len(), 2);
    t.tcp(addr::internet(2).into(), 8080, 200_000);
    t.tcp(addr::internet6(2).into(), 8081, 200_000);

    let packets = t.tunnel_packets();
    assert!(packets.len() > 100, "the tunnel runs over IPv6");
    let flows: Vec<u32> = packets
        .iter()
        .filter(|p| IpAddr::from(ipv6::Packet::parse(p).unwrap().src()) != server6().ip())
        .map(|p| ipv6::flow_label(p))
        .collect();
    assert!(
        flows.iter().all(|&f| f == flows[0] && f != 0),
        "one random flow label"
    );
    assert!(
        packets
            .iter()
            .all(|p| ipv6::Packet::parse(p).unwrap().protocol() == proto::TCP),
        "only FakeTCP between the machines"
    );
    t.assert_clean();
    for drops in [
        t.world.client(t.client).stats().drops,
        t.world.server().stats().drops,
    ] {
        // the neighbour solicitations for the machines' own addresses are their kernels' to answer
        let others = drops.total() - drops.get(DropReason::NotForUs);
        assert_eq!(others, 0, "{drops}");
    }
}

#[test]
fn the_compatible_wire_every_method_and_kcp_cross_an_ipv6_tunnel() {
    for method in [Method::Plain, Method::Aes256Gcm, Method::ChaCha20Poly1305] {
        let mut t = Tunnel6::new(
            72,
            |w| w.server.method = method,
            |c| c.protocol = Protocol::Ikago,
        );
        t.exchange(5000, echo(false), &payload(3, 1000));
        assert_eq!(t.world.host(t.pc).payloads_on(5000).len(), 1, "{method:?}");
        t.assert_clean();
    }
    let mut t = Tunnel6::new(
        73,
        |w| w.server.kcp = Some(KcpTuning::default()),
        |c| {
            c.protocol = Protocol::Ikago;
            c.kcp = Some(KcpTuning::default());
        },
    );
    assert!(t.world.client(t.client).stats().kcp.is_some(), "KCP on");
    for i in 0..5 {
        t.exchange(5000, echo(false), &payload(i, 800));
    }
    assert_eq!(t.world.host(t.pc).payloads_on(5000).len(), 5);
    t.assert_clean();
}

#[test]
fn a_frame_above_the_tunnel_mtu_leaves_in_ipv6_fragments() {
    let mut t = Tunnel6::new(74, |w| w.server.mtu = 1280, |c| c.mtu = 1280);
    let big = payload(4, 1400);
    t.exchange(5000, echo(false), &big);
    t.exchange(5000, echo(true), &big);
    assert_eq!(t.world.host(t.pc).payloads_on(5000), [&big[..], &big[..]]);
    let fragments: Vec<ipv6::Fragment> = t
        .tunnel_packets()
        .iter()
        .filter_map(|p| ipv6::Packet::parse(p).unwrap().fragment())
        .collect();
    assert!(
        fragments.len() >= 8,
        "both ways, both families: {fragments:?}"
    );
    assert!(
        fragments
            .iter()
            .filter(|f| f.more)
            .all(|f| f.offset % 8 == 0)
    );
    t.assert_clean();
}

/// Sends `payload` from the LAN host every 200 ms until one is echoed, for 10 s at most (frames lost to a link
/// MTU make the first tries fail); the number of tries
fn until_echoed(t: &mut Tunnel6, to: SocketAddr, payload: &[u8]) -> usize {
    let before = t.world.host(t.pc).payloads_on(5000).len();
    for tries in 1..=50 {
        t.world.host_mut(t.pc).udp_send(5000, to, payload);
        t.world.run_for(Duration::from_millis(200));
        if t.world.host(t.pc).payloads_on(5000).len() > before {
            return tries;
        }
    }
    panic!("no echo\n{}", t.world.summary());
}

/// The path MTUs `origin` reported, with the peer
fn lowered(world: &World, origin: Origin) -> Vec<(SocketAddr, u16)> {
    events_of(world, origin)
        .into_iter()
        .filter_map(|e| match e {
            Event::PathMtuLowered { peer, mtu } => Some((peer, mtu)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_packet_too_big_from_the_router_lowers_the_frame_size_and_traffic_goes_on() {
    let link = LinkConfig {
        mtu: 1400,
        ..LinkConfig::clean()
    };
    let mut t = Tunnel6::new(75, |w| w.router.link = link, |_| {});
    let big = payload(5, 1350);
    let tries = until_echoed(&mut t, echo(true), &big);
    assert!(tries > 1, "the first frames were too big for the link");
    let local = t.world.client(t.client).local_addr();
    assert_eq!(lowered(&t.world, Origin::Client(0)), [(server6(), 1400)]);
    assert_eq!(lowered(&t.world, Origin::Server), [(local, 1400)]);
    // from now on every large frame leaves in fragments that fit, the first time
    for i in 0..5 {
        t.exchange(5000, echo(i % 2 == 0), &payload(i, 1350));
    }
    assert!(
        t.tunnel_packets()
            .iter()
            .all(|p| p.len() <= 1400 || ipv6::Packet::parse(p).unwrap().fragment().is_none()),
        "fragments fit the path"
    );
    assert!(t.world.drops().get(SimDrop::LinkMtu) <= 2 * tries as u64);
    for m in [t.world.client(t.client).stats(), t.world.server().stats()] {
        assert_eq!(m.drops.get(DropReason::BadPacketTooBig), 0, "{}", m.drops);
    }
    t.assert_clean();
}

/// A Packet Too Big from a station on the server-side WAN to the server, quoting `quoted` (an
/// IPv6 packet the server sent) with `seq` in place of its sequence number
fn packet_too_big(quoted: &[u8], seq: u32, mtu: u32) -> Vec<u8> {
    let mut q = quoted.to_vec();
    q[ipv6::HEADER_LEN + 4..ipv6::HEADER_LEN + 8].copy_from_slice(&seq.to_be_bytes());
    let q = ipv6::Packet::parse(&q).expect("a captured packet");
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ipv6::MIN_MTU];
    let n = ethernet::write(
        &mut frame,
        Mac(addr::mac(addr::TAG_SERVER_WAN, addr::SERVER_WAN)),
        Mac(addr::mac6(addr::TAG_SERVER_WAN, addr::ROUTER_OUTSIDE6)),
        ethernet::ETHERTYPE_IPV6,
    );
    let len = icmpv6::write_packet_too_big(&mut frame[n..], addr::ROUTER_OUTSIDE6, &q, mtu);
    frame.truncate(n + len);
    frame
}

#[test]
fn a_spoofed_packet_too_big_changes_nothing_and_is_counted() {
    let mut t = Tunnel6::new(76, |_| {}, |_| {});
    t.exchange(5000, echo(true), &payload(6, 1200));
    // the server's latest data segment to the client, as the router saw it
    let data = t
        .tunnel_packets()
        .into_iter()
        .rev()
        .find(|p| {
            let p = ipv6::Packet::parse(p).unwrap();
            IpAddr::from(p.src()) == server6().ip() && p.payload().len() > 100
        })
        .expect("a data segment from the server");
    let seq = u32::from_be_bytes(data[44..48].try_into().unwrap());
    for wrong in [seq.wrapping_add(1 << 31), seq.wrapping_sub(100_000)] {
        t.world
            .inject_server_wan(&packet_too_big(&data, wrong, 1280));
    }
    t.world.run_for(Duration::from_millis(10));
    let drops = t.world.server().stats().drops;
    assert_eq!(drops.get(DropReason::BadPacketTooBig), 2, "{drops}");
    assert!(lowered(&t.world, Origin::Server).is_empty());
    // the segment it quotes is acknowledged by now: even its own number is stale
    t.world.inject_server_wan(&packet_too_big(&data, seq, 1280));
    t.world.run_for(Duration::from_millis(10));
    let drops = t.world.server().stats().drops;
    assert_eq!(drops.get(DropReason::BadPacketTooBig), 3, "{drops}");
    assert!(lowered(&t.world, Origin::Server).is_empty());
    t.exchange(5000, echo(true), &payload(7, 1200));
    assert!(
        t.tunnel_packets()
            .iter()
            .all(|p| ipv6::Packet::parse(p).unwrap().fragment().is_none()),
        "frames were never cut"
    );
}

#[test]
fn a_client_fails_over_from_an_ipv6_server_to_an_ipv4_one() {
    let mut config = WorldConfig::dual_stack(77);
    config.router.conntrack = true;
    let mut world = World::new(config);
    let fallback = SocketAddr::from((std::net::Ipv4Addr::new(198, 18, 14, 3), addr::SERVER_PORT));
    let client = world.add_client(|c| {
        c.server = server6();
        c.fallback = vec![fallback];
        c.protocol = Protocol::Ikago2;
    });
    assert_eq!(world.add_fallback_server(), fallback);
    let mut t = Tunnel6::connected(world, client);
    t.exchange(5000, echo(false), b"over IPv6");
    t.world.stop_server();
    until_echoed(&mut t, echo(false), b"over IPv4");
    let switches: Vec<Event> = events_of(&t.world, Origin::Client(0))
        .into_iter()
        .filter(|e| matches!(e, Event::ServerSwitched { .. }))
        .collect();
    assert_eq!(
        switches,
        [Event::ServerSwitched {
            from: server6(),
            to: fallback
        }]
    );
    let client = t.world.client(t.client);
    assert_eq!(client.server_addr(), fallback);
    assert_eq!(client.local_addr().ip(), IpAddr::from(addr::client_wan(0)));
    until_echoed(&mut t, echo(true), b"inner IPv6 over IPv4");
}

/// An IPv6 tunnel over a lossy, reordering link with a path MTU below the tunnel's, carrying
/// both families
fn run(seed: u64) -> World {
    let link = LinkConfig {
        loss: 0.02,
        reorder: 0.2,
        reorder_delay: Duration::from_millis(5),
        mtu: 1400,
        ..LinkConfig::clean()
    };
    let mut t = Tunnel6::new(seed, |w| w.router.link = link, |_| {});
    for n in 0..40u8 {
        let size = if n % 3 == 0 { 1350 } else { 200 };
        t.world
            .host_mut(t.pc)
            .udp_send(5000, echo(n % 2 == 0), &payload(n, size));
        t.world.run_for(Duration::from_millis(20));
    }
    t.world.run_for(Duration::from_secs(2));
    t.world
}

#[test]
fn a_seed_replays_an_ipv6_tunnel_exactly() {
    let (first, second) = (run(78), run(78));
    assert_eq!(first.events(), second.events());
    for (x, y) in first.capture().taps.iter().zip(&second.capture().taps) {
        assert!(x.frames == y.frames, "{} differs", x.name);
    }
    assert_eq!(first.drops(), second.drops());
    let other = run(79);
    assert_ne!(first.events(), other.events(), "another seed differs");
}

#[test]
fn an_ikago2_only_server_admits_an_ipv6_client_by_its_syn_proof() {
    let mut t = Tunnel6::new(80, |w| w.server.protocol = Some(Protocol::Ikago2), |_| {});
    t.exchange(5000, echo(true), &payload(8, 600));
    t.exchange(5000, echo(false), &payload(9, 600));
    assert_eq!(t.world.host(t.pc).payloads_on(5000).len(), 2);
    let drops = t.world.server().stats().drops;
    assert_eq!(drops.get(DropReason::SynUnproven), 0, "{drops}");
    t.assert_clean();
}

#[test]
fn an_ipv6_only_server_carries_inner_ipv6_and_drops_inner_ipv4_as_counted() {
    // neither the server's devices nor the client's upstream device have IPv4
    let mut t = Tunnel6::new(
        81,
        |w| w.server.devices.iter_mut().for_each(|d| d.addr = None),
        |c| {
            let up = c.devices.iter_mut().find(|d| d.role.is_upstream()).unwrap();
            (up.addr, up.gateway) = (None, None);
        },
    );
    assert_eq!(t.world.server().public_addr(), None);
    let local = t.world.client(t.client).local_addr();
    assert_eq!(local.ip(), IpAddr::from(addr::client_wan6(0)));
    t.exchange(5000, echo(true), &payload(10, 20));
    t.exchange(5000, echo(true), &payload(11, 1200));
    t.ping(addr::internet6(2).into(), 1);
    assert_eq!(t.world.host(t.pc).payloads_on(5000).len(), 2);
    assert_eq!(t.world.host(t.pc).echo_replies().len(), 1);

    let sent = t.world.server().stats().inner_rx.packets;
    for n in 0..3 {
        t.world
            .host_mut(t.pc)
            .udp_send(5001, echo(false), &payload(n, 100));
    }
    let no_ipv4 = |w: &World| w.server().stats().drops.get(DropReason::NoIpv4);
    t.world.run_until(|w| no_ipv4(w) == 3, EXCHANGE_STEPS);
    t.world.run_for(Duration::from_millis(200));
    assert_eq!(no_ipv4(&t.world), 3);
    assert!(t.world.host(t.pc).payloads_on(5001).is_empty());
    let server = t.world.server();
    assert_eq!(
        server.stats().inner_rx.packets,
        sent,
        "dropped before the NAT"
    );
    assert_eq!(server.clients().collect::<Vec<_>>(), [local]);
    for device in ["client0.wan", "server.wan", "server.upstream"] {
        let tap = t.world.capture().tap(device).expect("captured");
        let arp = (tap.frames.iter()).filter_map(|f| ethernet::parse(&f.data));
        assert_eq!(
            arp.filter(|e| e.ethertype == ethernet::ETHERTYPE_ARP)
                .count(),
            0,
            "no ARP on {device}, which has IPv6 only"
        );
    }
    t.assert_clean();
}
