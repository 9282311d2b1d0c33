//! A client and a server wired back to back, with hand-built LAN and Internet frames: the
//! smallest end-to-end check of the public API (the full simulation lives in ikago-sim)

mod common;

use common::{Hop, Writer, arp_reply, device, settle, udp, udp_payload};
use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use ikago_proto::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

const LAN_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 11, 2);
const LAN_HOST_MAC: Mac = Mac([2, 0, 0, 0, 11, 2]);
const CLIENT_LAN_MAC: Mac = Mac([2, 0, 0, 0, 11, 1]);
const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 2);
const DST_MAC: Mac = Mac([2, 0, 0, 0, 13, 2]);
const PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 1);

fn dev(
    name: &str,
    role: DeviceRole,
    net: u8,
    last: u8,
    gw: Option<(Ipv4Addr, Mac)>,
) -> DeviceConfig {
    DeviceConfig {
        gateway: gw.map(|g| g.0),
        gateway_mac: gw.map(|g| g.1),
        ..device(name, role, net, last)
    }
}

struct Pair {
    now: Instant,
    client: Client,
    server: Server,
    /// Frames the client wrote to its LAN device
    lan: Vec<Vec<u8>>,
    /// Frames the server wrote to its upstream device
    internet: Vec<Vec<u8>>,
    /// Tunnel frames the client sent, with when
    tunnel: Vec<(Instant, Vec<u8>)>,
    events: Vec<Event>,
    buf: Vec<u8>,
}

impl Pair {
    fn new(method: Method, client_pw: &str) -> Self {
        Self::with_kcp(method, client_pw, None)
    }

    fn with_kcp(method: Method, client_pw: &str, kcp: Option<KcpTuning>) -> Self {
        let now = Instant::now();
        let mut c = ClientConfig::new(
            vec![
                dev("lan0", DeviceRole::Listen, 11, 1, None),
                dev("wan0", DeviceRole::Upstream, 12, 2, None),
            ],
            vec!["198.18.11.2".parse().unwrap()],
            SocketAddr::from((Ipv4Addr::new(198, 18, 12, 1), 18081)),
        );
        c.method = method;
        c.password = client_pw.into();
        c.rng_seed = [1; 32];
        c.kcp = kcp;
        let mut s = ServerConfig::new(
            vec![
                dev("wan0", DeviceRole::Listen, 12, 1, None),
                dev("dst0", DeviceRole::Upstream, 13, 1, Some((DST, DST_MAC))),
            ],
            18081,
        );
        s.method = method;
        s.password = "right".into();
        s.rng_seed = [2; 32];
        s.kcp = kcp;
        let client = Client::new(c, now).unwrap();
        let server = Server::new(s, now).unwrap();
        Self {
            now,
            client,
            server,
            lan: vec![],
            internet: vec![],
            tunnel: vec![],
            events: vec![],
            buf: vec![0; MAX_FRAME_LEN],
        }
    }

    /// Moves frames between the machines until both are idle; answers the client's ARP for the server
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
                    (Writer::Client, _) if u16::from_be_bytes([f[12], f[13]]) == 0x0806 => {
                        // the server's kernel answers ARP for its address
                        return Hop::Answer(arp_reply(&f));
                    }
                    (Writer::Client, _) => {
                        self.tunnel.push((self.now, f.clone()));
                        return Hop::Across(f);
                    }
                    (Writer::Server, DeviceId(0)) => return Hop::Across(f),
                    (Writer::Server, _) => self.internet.push(f),
                }
                Hop::Kept
            },
        );
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_input(Input::Timeout(self.now));
        self.server.handle_input(Input::Timeout(self.now));
        self.settle();
    }
}

fn echo_round_trip(p: &mut Pair, size: usize) -> bool {
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let f = udp(
        (LAN_HOST, 40000),
        (DST, 7),
        LAN_HOST_MAC,
        CLIENT_LAN_MAC,
        &payload,
    );
    p.client.handle_input(Input::Frame {
        now: p.now,
        device: DeviceId(0),
        data: &f,
    });
    p.settle();
    let Some(out) = p.internet.pop() else {
        eprintln!(
            "client {:?}\nserver {:?}",
            p.client.stats(),
            p.server.stats()
        );
        return false;
    };
    let (src, sport, dst, dport, got) =
        udp_payload(&out).expect("a UDP packet toward the destination");
    assert_eq!((src, dst, dport), (PUBLIC, DST, 7));
    assert_eq!(got, payload);
    let reply = udp(
        (DST, 7),
        (PUBLIC, sport),
        DST_MAC,
        Mac([2, 0, 0, 0, 13, 1]),
        &payload,
    );
    p.server.handle_input(Input::Frame {
        now: p.now,
        device: DeviceId(1),
        data: &reply,
    });
    p.settle();
    let back = p.lan.pop().expect("the reply reaches the LAN");
    assert_eq!(&back[0..6], &LAN_HOST_MAC.0);
    let (src, sport, dst, dport, got) = udp_payload(&back).expect("a UDP reply");
    assert_eq!((src, sport, dst, dport), (DST, 7, LAN_HOST, 40000));
    assert_eq!(got, payload);
    true
}

#[test]
fn udp_echo_every_method() {
    for m in Method::ALL {
        let mut p = Pair::new(m, "right");
        p.settle();
        assert!(p.client.is_connected(), "{m}: handshake");
        for size in [20, 1400, 1472] {
            assert!(echo_round_trip(&mut p, size), "{m}: {size}");
        }
        assert!(
            p.events
                .iter()
                .any(|e| matches!(e, Event::Connected { .. }))
        );
    }
}

#[test]
fn udp_echo_through_kcp_with_fec() {
    for m in [Method::Plain, Method::ChaCha20Poly1305] {
        let mut p = Pair::with_kcp(m, "right", Some(KcpTuning::default()));
        p.settle();
        assert!(p.client.is_connected(), "{m}: handshake");
        // 1472 bytes of payload exceed the KCP mss (1368) and must travel whole
        for size in [20, 1000, 1472] {
            assert!(echo_round_trip(&mut p, size), "{m}: {size}");
            // KCP acknowledges on its next flush
            p.advance(Duration::from_millis(150));
        }
        let k = p.client.stats().kcp.expect("KCP counters");
        assert!(k.datagrams_in > 0 && k.datagrams_rejected == 0, "{k:?}");
    }
}

#[test]
fn wrong_password_is_a_counted_drop() {
    let mut p = Pair::new(Method::Aes256Gcm, "wrong");
    p.settle();
    let f = udp(
        (LAN_HOST, 40000),
        (DST, 7),
        LAN_HOST_MAC,
        CLIENT_LAN_MAC,
        b"hello",
    );
    p.client.handle_input(Input::Frame {
        now: p.now,
        device: DeviceId(0),
        data: &f,
    });
    p.settle();
    assert!(p.internet.is_empty());
    assert_eq!(p.server.stats().drops.get(DropReason::DecryptFailed), 1);
}

#[test]
fn keepalives_keep_the_connection() {
    let mut p = Pair::new(Method::Plain, "");
    p.settle();
    for _ in 0..30 {
        p.advance(Duration::from_secs(1));
    }
    assert_eq!(p.client.stats().reconnects, 0);
    assert!(
        p.client.stats().rtt.is_some(),
        "keepalive answers measure the RTT"
    );
    assert!(echo_round_trip(&mut p, 100));
}

#[test]
fn an_ack_that_left_early_does_not_wake_the_server() {
    let mut p = Pair::new(Method::Plain, "");
    p.settle();
    // a one-way flow (the clock stands still): the server delays its ACK, then sends it early
    // once enough bytes wait (`ack_bytes`), and the delayed ACK's deadline must go with it
    let ack = TcpTuning::default();
    let payload = [7u8; 1000];
    let mut delayed = false;
    for _ in 0..4 * ack.ack_bytes as usize / payload.len() {
        from_lan(&mut p, LAN_HOST, LAN_HOST_MAC, 9, &payload);
        let Output::Timeout(at) = p.server.poll_output(&mut p.buf) else {
            panic!("the server is idle");
        };
        if at <= p.now + ack.ack_delay {
            delayed = true;
        } else if delayed {
            return;
        }
    }
    panic!("the server still asks to wake for an ACK it sent (delayed ACK seen: {delayed})");
}

/// The TCP flags and acknowledgment number of a tunnel frame
fn tcp_of(frame: &[u8]) -> (u8, u32) {
    let s = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(TransportSlice::Tcp(t)) = s.transport else {
        panic!("a TCP frame")
    };
    let flags = u8::from(t.syn()) << 1 | u8::from(t.rst()) << 2 | u8::from(t.ack()) << 4;
    (flags, t.acknowledgment_number())
}

#[test]
fn repeated_resets_back_off_like_syn_retransmissions() {
    let mut p = Pair::new(Method::Plain, "");
    p.settle();
    let mut delays = Vec::new();
    for _ in 0..4 {
        // a RST at the client's acknowledgment point, as a kernel without the rule sends
        let (_, ack) = tcp_of(&p.tunnel.last().unwrap().1);
        let mut rst = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 12, 1], [2, 0, 0, 0, 12, 2])
            .ipv4([198, 18, 12, 1], [198, 18, 12, 2], 64)
            .tcp(18081, p.client.local_addr().port(), ack, 0)
            .rst()
            .write(&mut rst, &[])
            .unwrap();
        let before = p.tunnel.len();
        let reset_at = p.now;
        p.client.handle_input(Input::Frame {
            now: p.now,
            device: DeviceId(1),
            data: &rst,
        });
        p.settle();
        let mut waited = 0;
        while !p.tunnel[before..].iter().any(|(_, f)| tcp_of(f).0 == 0x02) {
            assert!(waited < 100, "no SYN after the reset");
            p.advance(Duration::from_millis(100));
            waited += 1;
        }
        let syn_at = p.tunnel[before..]
            .iter()
            .find(|(_, f)| tcp_of(f).0 == 0x02)
            .unwrap()
            .0;
        delays.push(syn_at - reset_at);
        assert!(p.client.is_connected(), "the server answered the new SYN");
    }
    assert_eq!(
        delays[0],
        Duration::ZERO,
        "the first reset reconnects at once"
    );
    assert_eq!(
        &delays[1..],
        &[
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(4)
        ]
    );
}

const OTHER_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 11, 3);
const OTHER_HOST_MAC: Mac = Mac([2, 0, 0, 0, 11, 3]);

/// A UDP datagram from `host` on the LAN to the destination, fed to the client
fn from_lan(p: &mut Pair, host: Ipv4Addr, mac: Mac, dport: u16, payload: &[u8]) {
    let f = udp((host, 40000), (DST, dport), mac, CLIENT_LAN_MAC, payload);
    p.client.handle_input(Input::Frame {
        now: p.now,
        device: DeviceId(0),
        data: &f,
    });
    p.settle();
}

/// A UDP datagram from the destination's `sport` to the server's NAT port `to`, fed to the server
fn from_internet(p: &mut Pair, sport: u16, to: u16, payload: &[u8]) {
    let f = udp(
        (DST, sport),
        (PUBLIC, to),
        DST_MAC,
        Mac([2, 0, 0, 0, 13, 1]),
        payload,
    );
    p.server.handle_input(Input::Frame {
        now: p.now,
        device: DeviceId(1),
        data: &f,
    });
    p.settle();
}

fn connected_events(p: &Pair) -> usize {
    p.events
        .iter()
        .filter(|e| matches!(e, Event::Connected { .. }))
        .count()
}

#[test]
fn sources_change_on_a_live_tunnel_without_a_new_handshake() {
    let mut p = Pair::new(Method::Aes128Gcm, "right");
    p.settle();
    assert!(echo_round_trip(&mut p, 100));
    from_lan(&mut p, OTHER_HOST, OTHER_HOST_MAC, 7, b"not yet");
    assert!(p.internet.is_empty(), "not a source yet");
    // host A's flow, mapped by the server, before the change
    from_lan(&mut p, LAN_HOST, LAN_HOST_MAC, 7, b"mapped");
    let (_, mapped, ..) = udp_payload(&p.internet.pop().unwrap()).unwrap();

    let drops = |p: &Pair, r| p.client.stats().drops.get(r);
    let not_for_us = drops(&p, DropReason::NotForUs);
    p.client
        .set_sources(vec!["198.18.11.3".parse().unwrap()])
        .unwrap();
    assert_eq!(p.client.sources(), ["198.18.11.3".parse().unwrap()]);
    from_lan(&mut p, OTHER_HOST, OTHER_HOST_MAC, 7, b"now");
    let (src, _, dst, _, got) = udp_payload(&p.internet.pop().expect("tunnelled")).unwrap();
    assert_eq!((src, dst, &got[..]), (PUBLIC, DST, &b"now"[..]));
    from_lan(&mut p, LAN_HOST, LAN_HOST_MAC, 7, b"no more");
    assert!(p.internet.is_empty(), "no longer a source");
    assert_eq!(drops(&p, DropReason::NotForUs), not_for_us + 1);
    // a late reply to the old source is not delivered
    let no_route = drops(&p, DropReason::NoRoute);
    from_internet(&mut p, 7, mapped, b"late reply");
    assert!(p.lan.is_empty(), "{:?}", p.lan);
    assert_eq!(drops(&p, DropReason::NoRoute), no_route + 1);
    let peers: Vec<_> = p.client.stats().peers.iter().map(|s| s.peer).collect();
    assert_eq!(
        peers,
        [Peer::Source(OTHER_HOST.into())],
        "the old source is forgotten"
    );

    assert_eq!(p.client.set_sources(vec![]), Err(ConfigError::NoSources));
    assert_eq!(p.client.sources(), ["198.18.11.3".parse().unwrap()]);
    assert_eq!(connected_events(&p), 1, "{:?}", p.events);
    assert_eq!(p.client.stats().handshakes, 1);
}

#[test]
fn packets_queued_for_the_handshake_follow_the_sources() {
    let mut p = Pair::new(Method::Plain, "");
    p.client
        .set_sources(vec!["198.18.11.0/24".parse().unwrap()])
        .unwrap();
    // before the handshake completes: both wait in the queue
    for (host, mac, payload) in [
        (LAN_HOST, LAN_HOST_MAC, b"from A"),
        (OTHER_HOST, OTHER_HOST_MAC, b"from B"),
    ] {
        let f = udp((host, 40000), (DST, 7), mac, CLIENT_LAN_MAC, payload);
        p.client.handle_input(Input::Frame {
            now: p.now,
            device: DeviceId(0),
            data: &f,
        });
    }
    assert!(!p.client.is_connected());
    p.client
        .set_sources(vec!["198.18.11.3/32".parse().unwrap()])
        .unwrap();
    p.settle();
    assert!(p.client.is_connected());
    let sent: Vec<_> = p
        .internet
        .iter()
        .map(|f| udp_payload(f).unwrap().4)
        .collect();
    assert_eq!(sent, [b"from B".to_vec()], "only the source's packet left");
    assert_eq!(p.client.stats().drops.get(DropReason::NotForUs), 1);
}

/// An ARP request from host A for `ip`, fed to the client; the client's reply, if any
fn arp_for(p: &mut Pair, ip: Ipv4Addr) -> Option<Vec<u8>> {
    let mut req = Vec::new();
    PacketBuilder::ethernet2(LAN_HOST_MAC.0, [0xff; 6])
        .arp(
            etherparse::ArpPacket::new(
                etherparse::ArpHardwareId::ETHERNET,
                etherparse::EtherType::IPV4,
                etherparse::ArpOperation::REQUEST,
                &LAN_HOST_MAC.0,
                &LAN_HOST.octets(),
                &[0; 6],
                &ip.octets(),
            )
            .unwrap(),
        )
        .write(&mut req)
        .unwrap();
    p.client.handle_input(Input::Frame {
        now: p.now,
        device: DeviceId(0),
        data: &req,
    });
    p.settle();
    p.lan.pop()
}

#[test]
fn publish_changes_on_a_live_tunnel() {
    let gateway = Ipv4Addr::new(198, 18, 11, 254);
    let mut p = Pair::new(Method::Plain, "");
    p.settle();
    assert!(arp_for(&mut p, gateway).is_none(), "not published yet");
    p.client.set_publish(vec![gateway]);
    assert_eq!(p.client.publish(), [gateway]);
    let reply = arp_for(&mut p, gateway).expect("answered by proxy ARP");
    assert_eq!(&reply[0..6], &LAN_HOST_MAC.0);
    assert_eq!(&reply[20..22], &[0, 2], "an ARP reply");
    assert_eq!(&reply[22..28], &CLIENT_LAN_MAC.0, "with the client's MAC");
    assert_eq!(&reply[28..32], &gateway.octets());
    p.client.set_publish(vec![]);
    assert!(arp_for(&mut p, gateway).is_none(), "no longer published");
    assert_eq!(connected_events(&p), 1);
}

/// The IPv6 address of `x.test` in [`dns_answer`]
const X_TEST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 13, 0, 0, 0, 0, 9);

/// A DNS response naming `x.test` at 198.18.13.9 (an A record) and 2001:db8:13::9 (AAAA)
fn dns_answer() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    m.extend_from_slice(b"\x01x\x04test\x00\x00\x01\x00\x01");
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 13, 9]);
    m.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
    m.extend_from_slice(&X_TEST6.octets());
    m
}

#[test]
fn dns_records_turn_on_and_off_on_a_live_tunnel() {
    let mut p = Pair::new(Method::Plain, "");
    p.settle();
    let records = |p: &Pair| {
        p.events
            .iter()
            .filter(|e| matches!(e, Event::DnsRecord { .. }))
            .count()
    };
    let lookup = |p: &mut Pair| {
        from_lan(p, LAN_HOST, LAN_HOST_MAC, 53, b"query");
        let (_, mapped, ..) = udp_payload(&p.internet.pop().unwrap()).unwrap();
        from_internet(p, 53, mapped, &dns_answer());
        assert!(p.lan.pop().is_some(), "the answer is delivered");
    };
    lookup(&mut p);
    assert_eq!(records(&p), 0, "off by default");
    p.client.set_dns_records(true);
    lookup(&mut p);
    assert_eq!(records(&p), 2, "the A and the AAAA record");
    for addr in [
        IpAddr::V4(Ipv4Addr::new(198, 18, 13, 9)),
        IpAddr::V6(X_TEST6),
    ] {
        assert!(p.events.iter().any(|e| matches!(
            e,
            Event::DnsRecord { name, ip } if name == "x.test" && *ip == addr
        )));
    }
    p.client.set_dns_records(false);
    lookup(&mut p);
    assert_eq!(records(&p), 2);
}
