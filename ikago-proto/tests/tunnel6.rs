//! The tunnel over IPv6, a client and a server wired back to back: the handshake, data both
//! ways, the RST to an unknown IPv6 peer and the SYN cookies of a full half-open table

mod common;

use common::{Hop, Writer, device, settle, udp, udp_payload};
use etherparse::PacketBuilder;
use ikago_proto::wire::{ethernet, icmpv6, ipv6, proto, tcp};
use ikago_proto::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

const LAN_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 11, 2);
const LAN_HOST_MAC: Mac = Mac([2, 0, 0, 0, 11, 2]);
const CLIENT_LAN_MAC: Mac = Mac([2, 0, 0, 0, 11, 1]);
const CLIENT_WAN_MAC: Mac = Mac([2, 0, 0, 0, 12, 2]);
const SERVER_WAN_MAC: Mac = Mac([2, 0, 0, 0, 12, 1]);
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 2);
/// On the client's link: the client finds its MAC by neighbour discovery
const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 2);
const DST_MAC: Mac = Mac([2, 0, 0, 0, 13, 2]);
const PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 1);
const PORT: u16 = 18081;

fn dev(name: &str, role: DeviceRole, net: u8, last: u8, ipv6: Option<Ipv6Link>) -> DeviceConfig {
    DeviceConfig {
        gateway: (net == 13).then_some(DST),
        gateway_mac: (net == 13).then_some(DST_MAC),
        ipv6,
        ..device(name, role, net, last)
    }
}

/// An IPv6 link of `addr`/64 without a router
fn link(addr: Ipv6Addr) -> Option<Ipv6Link> {
    Some(Ipv6Link {
        addr,
        prefix_len: 64,
        gateway: None,
        gateway_mac: None,
    })
}

struct Pair {
    now: Instant,
    client: Client,
    server: Server,
    /// Frames the client wrote to its LAN device
    lan: Vec<Vec<u8>>,
    /// Frames the server wrote to its upstream device
    internet: Vec<Vec<u8>>,
    /// Frames the server wrote toward stations other than the client
    strangers: Vec<Vec<u8>>,
    /// Tunnel frames, both ways
    tunnel: Vec<Vec<u8>>,
    events: Vec<Event>,
    buf: Vec<u8>,
}

impl Pair {
    fn new(protocol: Protocol, method: Method) -> Self {
        let now = Instant::now();
        let mut c = ClientConfig::new(
            vec![
                dev("lan0", DeviceRole::Listen, 11, 1, None),
                dev("wan0", DeviceRole::Upstream, 12, 2, link(CLIENT6)),
            ],
            vec!["198.18.11.2".parse().unwrap()],
            SocketAddr::new(SERVER6.into(), PORT),
        );
        c.protocol = protocol;
        c.method = method;
        c.password = "x".into();
        c.ikago2.psk = Some(ikago2::Psk::from_bytes([7; 32]));
        c.ikago2.unix_time = Duration::from_secs(1_800_000_000);
        c.rng_seed = [1; 32];
        let mut s = ServerConfig::new(
            vec![
                dev("wan0", DeviceRole::Listen, 12, 1, link(SERVER6)),
                dev("dst0", DeviceRole::Upstream, 13, 1, None),
            ],
            PORT,
        );
        s.method = method;
        s.password = "x".into();
        s.ikago2 = c.ikago2.clone();
        s.rng_seed = [2; 32];
        Self {
            now,
            client: Client::new(c, now).unwrap(),
            server: Server::new(s, now).unwrap(),
            lan: vec![],
            internet: vec![],
            strangers: vec![],
            tunnel: vec![],
            events: vec![],
            buf: vec![0; MAX_FRAME_LEN],
        }
    }

    /// Moves frames between the machines until both are idle
    fn settle(&mut self) {
        settle(
            self.now,
            &mut self.client,
            &mut self.server,
            &mut self.buf,
            &mut self.events,
            |writer, device, f| {
                match (writer, device) {
                    (Writer::Client, DeviceId(0)) => self.lan.push(f),
                    (Writer::Client, _)
                        if f[12..14] == [0x86, 0xdd] && f[54] == icmpv6::NEIGHBOR_SOLICIT =>
                    {
                        // the server's kernel answers for its address
                        let mut na = vec![0u8; 14 + 72];
                        let n = ethernet::write(
                            &mut na,
                            CLIENT_WAN_MAC,
                            SERVER_WAN_MAC,
                            ethernet::ETHERTYPE_IPV6,
                        );
                        let len = icmpv6::write_advert(
                            &mut na[n..],
                            SERVER6,
                            CLIENT6,
                            SERVER_WAN_MAC,
                            true,
                        );
                        na.truncate(n + len);
                        return Hop::Answer(na);
                    }
                    (Writer::Server, DeviceId(1)) => self.internet.push(f),
                    (Writer::Server, _) if f[0..6] != CLIENT_WAN_MAC.0 => self.strangers.push(f),
                    _ => {
                        self.tunnel.push(f.clone());
                        return Hop::Across(f);
                    }
                }
                Hop::Kept
            },
        );
    }

    fn feed_server(&mut self, device: DeviceId, f: &[u8]) {
        self.server.handle_input(Input::Frame {
            now: self.now,
            device,
            data: f,
        });
    }

    /// A UDP round trip from the LAN host to `DST` port 7 and back; the payload arrived both
    /// ways
    fn echo(&mut self, payload: &[u8]) {
        let f = udp(
            (LAN_HOST, 40000),
            (DST, 7),
            LAN_HOST_MAC,
            CLIENT_LAN_MAC,
            payload,
        );
        self.client.handle_input(Input::Frame {
            now: self.now,
            device: DeviceId(0),
            data: &f,
        });
        self.settle();
        let out = self.internet.pop().expect("the packet left the server");
        let (src, sport, dst, _, got) = udp_payload(&out).expect("UDP");
        assert_eq!((src, dst, &got[..]), (PUBLIC, DST, payload));
        let reply = udp(
            (DST, 7),
            (PUBLIC, sport),
            DST_MAC,
            Mac([2, 0, 0, 0, 13, 1]),
            payload,
        );
        self.feed_server(DeviceId(1), &reply);
        self.settle();
        let back = self.lan.pop().expect("the reply reached the LAN");
        assert_eq!(udp_payload(&back).expect("UDP").4, payload);
    }
}

/// The TCP segment of an IPv6 tunnel frame: (source, flags, seq, ack); `None` for another frame
fn segment6(frame: &[u8]) -> Option<(SocketAddr, u8, u32, u32)> {
    let eth = ethernet::parse(frame)?;
    let p = ipv6::Packet::parse(eth.payload).ok()?;
    if p.protocol() != proto::TCP || p.hop_limit() != 64 {
        return None;
    }
    let s = tcp::Segment::parse(p.payload(), p.src(), p.dst())?;
    Some((
        SocketAddr::new(p.src().into(), s.src_port()),
        s.flags(),
        s.seq(),
        s.ack(),
    ))
}

/// A TCP segment to the server's IPv6 tunnel address from `src` (a station other than the
/// client), as a frame
fn to_server(src: SocketAddr, seq: u32, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let IpAddr::V6(ip) = src.ip() else {
        panic!("an IPv6 peer")
    };
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 12, 9], SERVER_WAN_MAC.0)
        .ipv6(ip.octets(), SERVER6.octets(), 64)
        .tcp(src.port(), PORT, seq, 64240);
    let b = match ack {
        Some(a) => b.ack(a).psh(),
        None => b.syn(),
    };
    let mut f = Vec::new();
    b.write(&mut f, payload).unwrap();
    f
}

#[test]
fn handshake_and_data_over_ipv6_with_each_wire() {
    for (protocol, method) in [
        (Protocol::Ikago, Method::Plain),
        (Protocol::Ikago, Method::Aes256Gcm),
        (Protocol::Ikago2, Method::ChaCha20Poly1305),
    ] {
        let mut p = Pair::new(protocol, method);
        p.settle();
        assert!(p.client.is_connected(), "{protocol:?} {method:?}");
        let local = p.client.local_addr();
        assert_eq!(local.ip(), IpAddr::V6(CLIENT6));
        assert_eq!(p.server.clients().collect::<Vec<_>>(), [local]);
        assert!(p.events.contains(&Event::ClientConnected { client: local }));
        p.echo(&[7; 1000]);
        p.echo(&[9; 20]);
        let segments: Vec<_> = p.tunnel.iter().filter_map(|f| segment6(f)).collect();
        assert_eq!(
            segments.len(),
            p.tunnel.len(),
            "every tunnel frame is IPv6 TCP"
        );
        let (_, flags, ..) = segments[0];
        assert_eq!(flags, tcp::SYN);
        let drops = p.server.stats().drops;
        assert_eq!(drops.total(), 0, "{drops}");
    }
}

#[test]
fn an_unknown_ipv6_peer_gets_a_reset_over_ipv6() {
    let mut p = Pair::new(Protocol::Ikago, Method::Plain);
    p.settle();
    let stranger = SocketAddr::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 9).into(),
        40000,
    );
    p.feed_server(DeviceId(0), &to_server(stranger, 1000, Some(777), b"data"));
    p.settle();
    let rst = p.strangers.iter().find_map(|f| segment6(f)).expect("a RST");
    assert_eq!(
        rst,
        (SocketAddr::new(SERVER6.into(), PORT), tcp::RST, 777, 0)
    );
    assert_eq!(p.server.stats().drops.get(DropReason::UnknownPeer), 1);
}

#[test]
fn syn_cookies_admit_an_ipv6_client_when_the_half_open_table_is_full() {
    let mut p = Pair::new(Protocol::Ikago, Method::Plain);
    for i in 0..300u16 {
        let spoofed = Ipv6Addr::new(0x2001, 0xdb8, 0x66, 0, 0, 0, 1, i);
        p.feed_server(
            DeviceId(0),
            &to_server(SocketAddr::new(spoofed.into(), 40000), 5, None, &[]),
        );
    }
    assert_eq!(p.server.half_open(), 256, "the table is full");
    p.settle();
    assert!(
        p.client.is_connected(),
        "the cookie brought the handshake back"
    );
    assert_eq!(p.server.clients().count(), 1);
    p.echo(&[5; 300]);
}

#[test]
fn a_blind_syn_on_a_live_ipv6_connection_gets_a_challenge_ack() {
    let mut p = Pair::new(Protocol::Ikago, Method::Plain);
    p.settle();
    let local = p.client.local_addr();
    p.feed_server(DeviceId(0), &to_server(local, 12345, None, &[]));
    p.settle();
    let (from, flags, ..) = p
        .strangers
        .iter()
        .find_map(|f| segment6(f))
        .expect("an answer");
    assert_eq!(
        (from, flags),
        (SocketAddr::new(SERVER6.into(), PORT), tcp::ACK)
    );
    assert_eq!(p.server.stats().drops.get(DropReason::Challenged), 1);
    assert_eq!(
        p.server.clients().collect::<Vec<_>>(),
        [local],
        "the client stays"
    );
}

/// `dev` without IPv4
fn dev6(name: &str, role: DeviceRole, net: u8, last: u8, ipv6: Option<Ipv6Link>) -> DeviceConfig {
    DeviceConfig {
        addr: None,
        gateway: None,
        gateway_mac: None,
        ..dev(name, role, net, last, ipv6)
    }
}

#[test]
fn a_device_needs_an_address_of_a_family_the_peer_is_reached_by() {
    let now = Instant::now();
    let server4 = SocketAddr::new(Ipv4Addr::new(198, 18, 12, 1).into(), PORT);
    let server6 = SocketAddr::new(SERVER6.into(), PORT);
    let client = |up: DeviceConfig, server| {
        let lan = dev("lan0", DeviceRole::Listen, 11, 1, None);
        let sources = vec!["198.18.11.2".parse().unwrap()];
        Client::new(ClientConfig::new(vec![lan, up], sources, server), now)
            .map(|c| c.local_addr().ip())
    };
    let up6 = || dev6("wan0", DeviceRole::Upstream, 12, 2, link(CLIENT6));
    assert_eq!(
        client(up6(), server6),
        Ok(IpAddr::V6(CLIENT6)),
        "an IPv6 server from an IPv6-only upstream device"
    );
    assert_eq!(
        client(up6(), server4),
        Err(ConfigError::NoIpv4Upstream("wan0".into(), server4))
    );
    let mut c = ClientConfig::new(vec![up6()], vec![], server6);
    c.devices[0].role = DeviceRole::Both;
    c.sources6 = vec!["fd00:11::/64".parse().unwrap()];
    c.fallback = vec![server4];
    assert_eq!(
        Client::new(c, now).err(),
        Some(ConfigError::NoIpv4Upstream("wan0".into(), server4)),
        "every fallback is checked"
    );
    let bare = dev6("wan0", DeviceRole::Upstream, 12, 2, None);
    assert_eq!(
        client(bare, server6),
        Err(ConfigError::NoAddress("wan0".into()))
    );

    let server = |devices| Server::new(ServerConfig::new(devices, PORT), now);
    let listen = || dev6("wan0", DeviceRole::Listen, 12, 1, link(SERVER6));
    let public6 = Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 1);
    let s = server(vec![
        listen(),
        dev6("dst0", DeviceRole::Upstream, 13, 1, link(public6)),
    ])
    .expect("an IPv6-only server");
    assert_eq!((s.public_addr(), s.public_addr6()), (None, Some(public6)));
    assert_eq!(
        server(vec![
            listen(),
            dev6("dst0", DeviceRole::Upstream, 13, 1, None)
        ])
        .err(),
        Some(ConfigError::NoAddress("dst0".into()))
    );
}
