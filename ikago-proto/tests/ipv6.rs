//! Inner IPv6 end to end: a client and a server wired back to back over `ikago2`, with
//! hand-built LAN and Internet frames; the server NATs onto its IPv6 address (NAT66)

mod common;

use common::{Hop, Writer, arp_reply, device, settle};
use etherparse::PacketBuilder;
use ikago_proto::wire::{checksum, ethernet, icmpv6, ipv6, proto};
use ikago_proto::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

const LAN_HOST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 2);
const LAN_HOST_MAC: Mac = Mac([2, 0, 0, 0, 11, 2]);
const CLIENT_LAN_MAC: Mac = Mac([2, 0, 0, 0, 11, 1]);
/// The LAN hosts' IPv6 gateway, published by the client
const LAN_GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 0xfe);
const DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x14, 0, 0, 0, 0, 2);
const PUBLIC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 1);
const SERVER_UP_MAC: Mac = Mac([2, 0, 0, 0, 13, 1]);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 0xfe);
const ROUTER_MAC: Mac = Mac([2, 0, 0, 0, 13, 0xfe]);

fn dev(name: &str, role: DeviceRole, net: u8, last: u8, ipv6: Option<Ipv6Link>) -> DeviceConfig {
    DeviceConfig {
        ipv6,
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
    events: Vec<Event>,
    buf: Vec<u8>,
}

/// How the pair is set up
struct Setup {
    protocol: Protocol,
    /// Whether the server knows its IPv6 gateway's MAC
    gateway_mac: bool,
    /// The server's fragment size toward destinations
    fragment: u16,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            protocol: Protocol::Ikago2,
            gateway_mac: true,
            fragment: 1500,
        }
    }
}

impl Pair {
    fn new(setup: Setup) -> Self {
        let now = Instant::now();
        let mut c = ClientConfig::new(
            vec![
                dev("lan0", DeviceRole::Listen, 11, 1, None),
                dev("wan0", DeviceRole::Upstream, 12, 2, None),
            ],
            vec![],
            SocketAddr::from((Ipv4Addr::new(198, 18, 12, 1), 18081)),
        );
        c.sources6 = vec!["fd00:11::/64".parse().unwrap()];
        c.publish6 = vec![LAN_GATEWAY];
        c.protocol = setup.protocol;
        c.method = Method::ChaCha20Poly1305;
        c.password = "x".into();
        c.ikago2.psk = Some(ikago2::Psk::from_bytes([7; 32]));
        c.ikago2.unix_time = Duration::from_secs(1_800_000_000);
        c.rng_seed = [1; 32];
        let link = Ipv6Link {
            addr: PUBLIC6,
            prefix_len: 64,
            gateway: Some(ROUTER6),
            gateway_mac: setup.gateway_mac.then_some(ROUTER_MAC),
        };
        let mut s = ServerConfig::new(
            vec![
                dev("wan0", DeviceRole::Listen, 12, 1, None),
                dev("dst0", DeviceRole::Upstream, 13, 1, Some(link)),
            ],
            18081,
        );
        s.method = Method::ChaCha20Poly1305;
        s.password = "x".into();
        s.ikago2 = c.ikago2.clone();
        s.fragment = setup.fragment;
        s.rng_seed = [2; 32];
        let mut p = Self {
            now,
            client: Client::new(c, now).unwrap(),
            server: Server::new(s, now).unwrap(),
            lan: vec![],
            internet: vec![],
            events: vec![],
            buf: vec![0; MAX_FRAME_LEN],
        };
        p.settle();
        assert!(p.client.is_connected(), "handshake");
        p
    }

    /// Moves frames between the machines until both are idle; answers the client's ARP for
    /// the server
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
                        return Hop::Answer(arp_reply(&f));
                    }
                    (Writer::Client, _) | (Writer::Server, DeviceId(0)) => return Hop::Across(f),
                    (Writer::Server, _) => self.internet.push(f),
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

    /// A frame from a LAN host, then everything it causes
    fn lan_sends(&mut self, f: &[u8]) {
        self.client.handle_input(Input::Frame {
            now: self.now,
            device: DeviceId(0),
            data: f,
        });
        self.settle();
    }

    /// A frame from the Internet to the server, then everything it causes
    fn internet_sends(&mut self, f: &[u8]) {
        self.feed_server(DeviceId(1), f);
        self.settle();
    }
}

/// An Ethernet frame builder from `smac` to `dmac` carrying IPv6 from `src` to `dst`
fn ip6(
    smac: Mac,
    dmac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    PacketBuilder::ethernet2(smac.0, dmac.0).ipv6(src.octets(), dst.octets(), 64)
}

fn udp6(smac: Mac, dmac: Mac, src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    ip6(smac, dmac, src.0, dst.0)
        .udp(src.1, dst.1)
        .write(&mut v, data)
        .unwrap();
    v
}

/// The IPv6 packet of a frame, its upper-layer checksum verified
fn packet(frame: &[u8]) -> ipv6::Packet<'_> {
    assert_eq!(
        u16::from_be_bytes([frame[12], frame[13]]),
        ethernet::ETHERTYPE_IPV6
    );
    let p = ipv6::Packet::parse(&frame[ethernet::HEADER_LEN..]).expect("an IPv6 packet");
    let acc = checksum::pseudo_header6(p.src(), p.dst(), p.protocol(), p.payload().len() as u32);
    assert_eq!(
        checksum::finish(checksum::sum(acc, p.payload())),
        0,
        "upper-layer checksum"
    );
    p
}

/// The 16-bit word at `at` of `b`
fn word(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[test]
fn udp_crosses_nat66_and_the_reply_comes_back() {
    let mut p = Pair::new(Setup::default());
    let f = udp6(
        LAN_HOST_MAC,
        CLIENT_LAN_MAC,
        (LAN_HOST, 50000),
        (DST, 7),
        b"hello over ipv6",
    );
    p.lan_sends(&f);
    let out = p.internet.pop().expect("a packet toward the destination");
    assert_eq!(
        (&out[0..6], &out[6..12]),
        (&ROUTER_MAC.0[..], &SERVER_UP_MAC.0[..])
    );
    let o = packet(&out);
    assert_eq!((o.src(), o.dst(), o.protocol()), (PUBLIC6, DST, proto::UDP));
    let public_port = word(o.payload(), 0);
    assert_eq!(public_port, 50000, "port preserved");
    assert!(o.payload().ends_with(b"hello over ipv6"));

    let reply = udp6(
        ROUTER_MAC,
        SERVER_UP_MAC,
        (DST, 7),
        (PUBLIC6, public_port),
        b"hello back",
    );
    p.internet_sends(&reply);
    let back = p.lan.pop().expect("the reply reaches the LAN host");
    assert_eq!(
        (&back[0..6], &back[6..12]),
        (&LAN_HOST_MAC.0[..], &CLIENT_LAN_MAC.0[..])
    );
    let b = packet(&back);
    assert_eq!((b.src(), b.dst()), (DST, LAN_HOST));
    assert_eq!((word(b.payload(), 0), word(b.payload(), 2)), (7, 50000));
    assert!(b.payload().ends_with(b"hello back"));

    assert!(p.events.iter().any(|e| matches!(e,
        Event::NatMapped { protocol: proto::UDP, inner, public, .. }
            if *inner == (LAN_HOST, 50000).into() && *public == (PUBLIC6, 50000).into())));
    assert!(
        p.client
            .stats()
            .peers
            .iter()
            .any(|s| s.peer == Peer::Source(LAN_HOST.into()))
    );
    // a third host reaches the mapped port too (full cone)
    let third = udp6(
        ROUTER_MAC,
        SERVER_UP_MAC,
        ("2001:db8:15::9".parse().unwrap(), 9999),
        (PUBLIC6, public_port),
        b"unsolicited",
    );
    p.internet_sends(&third);
    assert_eq!(packet(&p.lan.pop().expect("delivered")).dst(), LAN_HOST);
}

#[test]
fn tcp_and_echo_cross_nat66() {
    let mut p = Pair::new(Setup::default());
    let mut syn = Vec::new();
    ip6(LAN_HOST_MAC, CLIENT_LAN_MAC, LAN_HOST, DST)
        .tcp(40000, 443, 1000, 64240)
        .syn()
        .write(&mut syn, &[])
        .unwrap();
    p.lan_sends(&syn);
    let o = p.internet.pop().expect("the SYN goes out");
    let o = packet(&o);
    assert_eq!((o.src(), o.protocol()), (PUBLIC6, proto::TCP));
    let port = word(o.payload(), 0);
    let mut synack = Vec::new();
    ip6(ROUTER_MAC, SERVER_UP_MAC, DST, PUBLIC6)
        .tcp(443, port, 5000, 64240)
        .syn()
        .ack(1001)
        .write(&mut synack, &[])
        .unwrap();
    p.internet_sends(&synack);
    let b = p.lan.pop().expect("the SYN+ACK comes back");
    let b = packet(&b);
    assert_eq!((b.dst(), word(b.payload(), 2)), (LAN_HOST, 40000));

    let mut ping = Vec::new();
    ip6(LAN_HOST_MAC, CLIENT_LAN_MAC, LAN_HOST, DST)
        .icmpv6_echo_request(0x1234, 1)
        .write(&mut ping, b"ping6")
        .unwrap();
    p.lan_sends(&ping);
    let o = p.internet.pop().expect("the echo goes out");
    let o = packet(&o);
    assert_eq!(
        (o.src(), o.protocol(), o.payload()[0]),
        (PUBLIC6, proto::ICMPV6, icmpv6::ECHO_REQUEST)
    );
    let id = word(o.payload(), 4);
    let mut pong = Vec::new();
    ip6(ROUTER_MAC, SERVER_UP_MAC, DST, PUBLIC6)
        .icmpv6_echo_reply(id, 1)
        .write(&mut pong, b"ping6")
        .unwrap();
    p.internet_sends(&pong);
    let b = p.lan.pop().expect("the echo reply comes back");
    let b = packet(&b);
    assert_eq!(
        (b.dst(), b.payload()[0], word(b.payload(), 4)),
        (LAN_HOST, icmpv6::ECHO_REPLY, 0x1234)
    );
}

#[test]
fn packet_too_big_from_the_internet_reaches_the_lan_host_translated() {
    let mut p = Pair::new(Setup::default());
    let data = vec![7u8; 1400];
    p.lan_sends(&udp6(
        LAN_HOST_MAC,
        CLIENT_LAN_MAC,
        (LAN_HOST, 50000),
        (DST, 7),
        &data,
    ));
    let out = p.internet.pop().expect("sent");
    let sent = &out[ethernet::HEADER_LEN..];
    // a router on the way answers with a Packet Too Big quoting what fits in 1280 bytes
    let quoted = &sent[..1232];
    let mut msg = vec![icmpv6::PACKET_TOO_BIG, 0, 0, 0, 0, 0, 0x05, 0x00];
    msg.extend_from_slice(quoted);
    let c = icmpv6::checksum(ROUTER6, PUBLIC6, &msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ptb = Vec::new();
    PacketBuilder::ethernet2(ROUTER_MAC.0, SERVER_UP_MAC.0)
        .ipv6(ROUTER6.octets(), PUBLIC6.octets(), 64)
        .write(&mut ptb, etherparse::IpNumber(proto::ICMPV6), &msg)
        .unwrap();
    p.internet_sends(&ptb);
    let back = p
        .lan
        .pop()
        .expect("the Packet Too Big reaches the LAN host");
    let b = packet(&back);
    assert_eq!(
        (b.src(), b.dst(), b.payload()[0]),
        (ROUTER6, LAN_HOST, icmpv6::PACKET_TOO_BIG)
    );
    assert_eq!(&b.payload()[4..8], &1280u32.to_be_bytes());
    let q = ipv6::Packet::parse_quoted(&b.payload()[8..]).unwrap();
    assert_eq!(
        (q.src(), q.dst(), word(q.payload(), 0)),
        (LAN_HOST, DST, 50000)
    );
}

#[test]
fn oversize_ipv6_gets_a_packet_too_big_from_the_server() {
    let mut p = Pair::new(Setup {
        fragment: 1400,
        ..Setup::default()
    });
    let data = vec![1u8; 1440];
    p.lan_sends(&udp6(
        LAN_HOST_MAC,
        CLIENT_LAN_MAC,
        (LAN_HOST, 50000),
        (DST, 7),
        &data,
    ));
    assert!(
        p.internet.is_empty(),
        "not sent: IPv6 is not fragmented on the way"
    );
    let back = p.lan.pop().expect("a Packet Too Big for the LAN host");
    let b = packet(&back);
    assert_eq!(
        (b.src(), b.dst(), b.payload()[0]),
        (PUBLIC6, LAN_HOST, icmpv6::PACKET_TOO_BIG)
    );
    assert_eq!(&b.payload()[4..8], &1400u32.to_be_bytes());
    assert_eq!(p.server.stats().drops.get(DropReason::TooBig), 1);
}

#[test]
fn the_ikago_wire_refuses_ipv6() {
    let mut p = Pair::new(Setup {
        protocol: Protocol::Ikago,
        ..Setup::default()
    });
    let before = p.client.stats().inner_tx;
    p.lan_sends(&udp6(
        LAN_HOST_MAC,
        CLIENT_LAN_MAC,
        (LAN_HOST, 50000),
        (DST, 7),
        b"x",
    ));
    assert!(p.internet.is_empty());
    let s = p.client.stats();
    assert_eq!(s.drops.get(DropReason::Ipv6OnIkago), 1);
    assert_eq!(s.inner_tx, before, "nothing sealed");
}

#[test]
fn dns_over_ipv6_reports_a_and_aaaa_records() {
    let mut p = Pair::new(Setup::default());
    p.client.set_dns_records(true);
    p.lan_sends(&udp6(
        LAN_HOST_MAC,
        CLIENT_LAN_MAC,
        (LAN_HOST, 50053),
        (DST, 53),
        b"query",
    ));
    let q = p.internet.pop().expect("the query");
    let public_port = word(packet(&q).payload(), 0);
    let named = Ipv6Addr::new(0x2001, 0xdb8, 0x14, 0, 0, 0, 0, 0x99);
    let mut answer = vec![0, 9, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    answer.extend_from_slice(b"\x03six\x04test\x00\x00\x1c\x00\x01");
    answer.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
    answer.extend_from_slice(&named.octets());
    answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 14, 99]);
    p.internet_sends(&udp6(
        ROUTER_MAC,
        SERVER_UP_MAC,
        (DST, 53),
        (PUBLIC6, public_port),
        &answer,
    ));
    assert_eq!(packet(&p.lan.pop().expect("the answer")).dst(), LAN_HOST);
    let records: Vec<(&str, IpAddr)> = p
        .events
        .iter()
        .filter_map(|e| match e {
            Event::DnsRecord { name, ip } => Some((name.as_str(), *ip)),
            _ => None,
        })
        .collect();
    assert_eq!(
        records,
        [
            ("six.test", IpAddr::V6(named)),
            ("six.test", IpAddr::V4(Ipv4Addr::new(198, 18, 14, 99)))
        ]
    );
}

/// A neighbour solicitation for `target` from the LAN host, with `hop_limit`
fn solicit(target: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
    let mut b = vec![0u8; 14 + 72];
    ethernet::write(
        &mut b,
        Mac([0x33, 0x33, 0xff, 0, 0, 0xfe]),
        LAN_HOST_MAC,
        ethernet::ETHERTYPE_IPV6,
    );
    icmpv6::write_solicit(&mut b[14..], LAN_HOST, LAN_HOST_MAC, target, false);
    b[14 + 7] = hop_limit;
    b
}

#[test]
fn proxy_ndp_answers_published_addresses_only() {
    let mut p = Pair::new(Setup::default());
    p.lan_sends(&solicit(LAN_GATEWAY, 255));
    let na = p.lan.pop().expect("an advertisement");
    assert_eq!(
        (&na[0..6], &na[6..12]),
        (&LAN_HOST_MAC.0[..], &CLIENT_LAN_MAC.0[..])
    );
    let a = packet(&na);
    assert_eq!(
        icmpv6::parse_ndp(&a),
        Some(Ok(icmpv6::Ndp::Advert {
            target: LAN_GATEWAY,
            target_mac: Some(CLIENT_LAN_MAC),
            solicited: true
        }))
    );
    assert_eq!((a.src(), a.dst()), (LAN_GATEWAY, LAN_HOST));
    assert!(p.events.iter().any(|e| matches!(e,
        Event::NdpReplied { publish, requester } if *publish == LAN_GATEWAY && *requester == LAN_HOST)));

    // another address, or a solicitation failing RFC 4861's checks, gets no answer
    p.lan_sends(&solicit("fd00:11::77".parse().unwrap(), 255));
    p.lan_sends(&solicit(LAN_GATEWAY, 64));
    assert!(p.lan.is_empty());
    // an advertisement claiming the published address is a spoofing attempt
    let mut spoof = vec![0u8; 14 + 72];
    ethernet::write(
        &mut spoof,
        CLIENT_LAN_MAC,
        Mac([2, 0, 0, 0, 11, 66]),
        ethernet::ETHERTYPE_IPV6,
    );
    icmpv6::write_advert(
        &mut spoof[14..],
        LAN_GATEWAY,
        LAN_HOST,
        Mac([2, 0, 0, 0, 11, 66]),
        false,
    );
    p.lan_sends(&spoof);
    let drops = p.client.stats().drops;
    assert_eq!(drops.get(DropReason::NdpInvalid), 2, "{drops}");
    assert!(p.lan.is_empty());
}

/// A duplicate address detection probe for `target` from a LAN device: a solicitation from `::`
/// to the target's solicited-node group, without a source link-layer address (RFC 4862 §5.4.2)
fn dad_probe(target: Ipv6Addr) -> Vec<u8> {
    let group = icmpv6::solicited_node(target);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(Mac([2, 0, 0, 0, 11, 9]).0, icmpv6::multicast_mac(group).0)
        .ipv6(Ipv6Addr::UNSPECIFIED.octets(), group.octets(), 255)
        .icmpv6_raw(icmpv6::NEIGHBOR_SOLICIT, 0, [0; 4])
        .write(&mut v, &target.octets())
        .unwrap();
    v
}

#[test]
fn duplicate_address_detection_of_a_published_address_is_answered_to_all_nodes() {
    let mut p = Pair::new(Setup::default());
    p.lan_sends(&dad_probe(LAN_GATEWAY));
    let na = p.lan.pop().expect("an advertisement");
    assert!(p.lan.is_empty());
    assert_eq!(
        (&na[0..6], &na[6..12]),
        (&[0x33, 0x33, 0, 0, 0, 1][..], &CLIENT_LAN_MAC.0[..]),
        "to the all-nodes group"
    );
    let a = packet(&na);
    assert_eq!((a.src(), a.dst()), (LAN_GATEWAY, icmpv6::ALL_NODES));
    assert_eq!(
        icmpv6::parse_ndp(&a),
        Some(Ok(icmpv6::Ndp::Advert {
            target: LAN_GATEWAY,
            target_mac: Some(CLIENT_LAN_MAC),
            solicited: false
        }))
    );
    assert_eq!(a.payload()[4], 0x20, "override set, solicited clear");
    assert!(p.events.iter().any(|e| matches!(e,
        Event::NdpReplied { publish, requester }
            if *publish == LAN_GATEWAY && requester.is_unspecified())));

    // a probe for an address nobody publishes is the prober's business
    p.lan_sends(&dad_probe("fd00:11::77".parse().unwrap()));
    assert!(p.lan.is_empty());
    assert_eq!(p.client.stats().drops.get(DropReason::NotForUs), 1);
    // a probe carrying a source link-layer address breaks RFC 4861 §7.1.1
    let mut with_option = vec![0u8; 14 + 72];
    ethernet::write(
        &mut with_option,
        icmpv6::multicast_mac(icmpv6::solicited_node(LAN_GATEWAY)),
        LAN_HOST_MAC,
        ethernet::ETHERTYPE_IPV6,
    );
    icmpv6::write_solicit(
        &mut with_option[14..],
        Ipv6Addr::UNSPECIFIED,
        LAN_HOST_MAC,
        LAN_GATEWAY,
        false,
    );
    p.lan_sends(&with_option);
    assert!(p.lan.is_empty());
    assert_eq!(p.client.stats().drops.get(DropReason::NdpInvalid), 1);
}

#[test]
fn the_server_resolves_its_ipv6_gateway_by_ndp() {
    let mut p = Pair::new(Setup {
        gateway_mac: false,
        ..Setup::default()
    });
    p.lan_sends(&udp6(
        LAN_HOST_MAC,
        CLIENT_LAN_MAC,
        (LAN_HOST, 50000),
        (DST, 7),
        b"q",
    ));
    let ns = p.internet.pop().expect("a neighbour solicitation");
    assert!(p.internet.is_empty(), "the packet waits");
    let s = packet(&ns);
    assert_eq!(
        icmpv6::parse_ndp(&s),
        Some(Ok(icmpv6::Ndp::Solicit {
            target: ROUTER6,
            source_mac: Some(SERVER_UP_MAC)
        }))
    );
    assert_eq!(s.src(), PUBLIC6);
    let mut na = vec![0u8; 14 + 72];
    ethernet::write(&mut na, SERVER_UP_MAC, ROUTER_MAC, ethernet::ETHERTYPE_IPV6);
    icmpv6::write_advert(&mut na[14..], ROUTER6, PUBLIC6, ROUTER_MAC, true);
    p.internet_sends(&na);
    let out = p.internet.pop().expect("the waiting packet goes out");
    assert_eq!(&out[0..6], &ROUTER_MAC.0);
    assert_eq!(packet(&out).src(), PUBLIC6);
    assert!(p.events.iter().any(|e| matches!(e,
        Event::NeighborResolved { ip, mac } if *ip == ROUTER6 && *mac == ROUTER_MAC)));
}

#[test]
fn ipv6_sources_and_published_addresses_change_on_a_live_tunnel() {
    let mut p = Pair::new(Setup::default());
    let other: Ipv6Addr = "fd00:11::3".parse().unwrap();
    let other_mac = Mac([2, 0, 0, 0, 11, 3]);
    let from = |host, mac, data: &[u8]| udp6(mac, CLIENT_LAN_MAC, (host, 50000), (DST, 7), data);
    p.lan_sends(&from(LAN_HOST, LAN_HOST_MAC, b"before"));
    assert!(p.internet.pop().is_some(), "host A is tunnelled");

    let not_for_us = p.client.stats().drops.get(DropReason::NotForUs);
    p.client
        .set_sources6(vec!["fd00:11::3".parse().unwrap()])
        .unwrap();
    assert_eq!(p.client.sources6(), ["fd00:11::3".parse().unwrap()]);
    p.lan_sends(&from(LAN_HOST, LAN_HOST_MAC, b"no more"));
    assert!(p.internet.is_empty(), "no longer a source");
    assert_eq!(
        p.client.stats().drops.get(DropReason::NotForUs),
        not_for_us + 1
    );
    p.lan_sends(&from(other, other_mac, b"now"));
    let out = p.internet.pop().expect("the new source is tunnelled");
    assert!(packet(&out).payload().ends_with(b"now"));
    let peers: Vec<_> = p.client.stats().peers.iter().map(|s| s.peer).collect();
    assert_eq!(
        peers,
        [Peer::Source(other.into())],
        "the old source is forgotten"
    );
    // no IPv4 sources: an empty list is refused and changes nothing
    assert_eq!(p.client.set_sources6(vec![]), Err(ConfigError::NoSources));
    assert_eq!(p.client.sources6().len(), 1);

    p.client.set_publish6(vec![]);
    p.lan_sends(&solicit(LAN_GATEWAY, 255));
    assert!(p.lan.is_empty(), "no longer published");
    p.client.set_publish6(vec![LAN_GATEWAY]);
    p.lan_sends(&solicit(LAN_GATEWAY, 255));
    assert!(p.lan.pop().is_some(), "published again");
    assert_eq!(p.client.stats().handshakes, 1, "the tunnel stayed up");
}

#[test]
fn fragmented_replies_are_reassembled_and_oversize_ones_get_a_packet_too_big_back() {
    let mut p = Pair::new(Setup::default());
    p.lan_sends(&udp6(
        LAN_HOST_MAC,
        CLIENT_LAN_MAC,
        (LAN_HOST, 50000),
        (DST, 7),
        b"q",
    ));
    p.internet.pop().expect("sent");
    // a 3000-byte reply arrives in three fragments, the last first
    let whole = udp6(
        ROUTER_MAC,
        SERVER_UP_MAC,
        (DST, 7),
        (PUBLIC6, 50000),
        &[9u8; 3000],
    );
    let ip = &whole[ethernet::HEADER_LEN..];
    let data = &ip[ipv6::HEADER_LEN..];
    for (k, chunk) in data.chunks(1232).enumerate().rev() {
        let offset = k * 1232;
        let more = offset + chunk.len() < data.len();
        let mut f = whole[..ethernet::HEADER_LEN + ipv6::HEADER_LEN].to_vec();
        f[ethernet::HEADER_LEN + 4..ethernet::HEADER_LEN + 6]
            .copy_from_slice(&((8 + chunk.len()) as u16).to_be_bytes());
        f[ethernet::HEADER_LEN + 6] = ipv6::FRAGMENT;
        f.extend_from_slice(&[proto::UDP, 0]);
        f.extend_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
        f.extend_from_slice(&77u32.to_be_bytes());
        f.extend_from_slice(chunk);
        p.internet_sends(&f);
    }
    // too big for the client's LAN (fragment 1500): a Packet Too Big goes back to the sender,
    // through the tunnel and the NAT66, from the published gateway's address translated
    assert!(p.lan.is_empty(), "not fragmented toward the LAN");
    let out = p
        .internet
        .pop()
        .expect("a Packet Too Big toward the sender");
    let e = packet(&out);
    assert_eq!(
        (e.src(), e.dst(), e.payload()[0]),
        (PUBLIC6, DST, icmpv6::PACKET_TOO_BIG)
    );
    assert_eq!(&e.payload()[4..8], &1500u32.to_be_bytes());
    let q = ipv6::Packet::parse_quoted(&e.payload()[8..]).unwrap();
    assert_eq!(
        (q.src(), q.dst(), word(q.payload(), 2)),
        (DST, PUBLIC6, 50000)
    );
    assert_eq!(p.client.stats().drops.get(DropReason::TooBig), 1);
}
