//! Fuzz harness bodies, shared by the cargo-fuzz targets and the plain tests that replay their corpora
//!
//! Each function takes arbitrary bytes and must never panic. Compiled for tests and with the
//! `fuzzing` feature only.

use crate::config::{
    ClientConfig, DeviceConfig, DeviceRole, LinkType, ReassemblyLimits, ServerConfig,
};
use crate::config::{Protocol, Transport};
use crate::crypto::{Cipher, Method};
use crate::fragment::Reassembler;
use crate::io::{ConnId, DeviceId, Input, MAX_FRAME_LEN, Output, StreamInput};
use crate::kcp::KcpTuning;
use crate::machine::Machine;
use crate::wire::{Mac, ipv4};
use crate::{Client, Server};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Opens `data[1..]` as a tunnel payload with the method chosen by `data[0]`
pub fn open_frame(data: &[u8]) {
    let Some((&m, sealed)) = data.split_first() else {
        return;
    };
    let method = Method::ALL[usize::from(m) % Method::ALL.len()];
    let cipher = Cipher::new(method, "fuzz");
    let mut out = vec![0u8; sealed.len()];
    if let Ok(n) = cipher.open_into(sealed, &mut out) {
        assert!(n <= sealed.len());
    }
    let mut copy = sealed.to_vec();
    if let Ok(r) = cipher.open(&mut copy) {
        assert!(r.end <= copy.len());
    }
}

fn device(
    name: &str,
    role: DeviceRole,
    last: u8,
    net: u8,
    gateway: Option<Ipv4Addr>,
) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        role,
        link: LinkType::Ethernet,
        mac: Mac([2, 0, 0, 0, net, last]),
        addr: Some(Ipv4Addr::new(198, 18, net, last)),
        prefix_len: 24,
        gateway,
        gateway_mac: None,
        ipv6: None,
    }
}

/// The client the fuzzers drive: LAN 198.18.11.0/24 (and IPv6 sources fd00:11::/64, proxy NDP for
/// fd00:11::fe), WAN 198.18.12.0/24 and 2001:db8:12::2/64, server 198.18.12.1:18081; it reports
/// DNS records, so that answers in the return path reach the DNS decoder
pub fn fuzz_client(method: Method, kcp: bool) -> Client {
    Client::new(client_config(method, kcp), Instant::now())
        .expect("the fuzz configuration is valid")
}

/// The server address of [`fuzz_client6`]: the fuzz server's IPv6 listen address
pub const FUZZ_SERVER6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 1)),
    18081,
);

/// As [`fuzz_client`], with the tunnel over IPv6: server [`FUZZ_SERVER6`], on-link (its MAC
/// resolved by neighbour discovery)
pub fn fuzz_client6(method: Method, kcp: bool) -> Client {
    let mut c = client_config(method, kcp);
    c.server = FUZZ_SERVER6;
    Client::new(c, Instant::now()).expect("the fuzz configuration is valid")
}

/// An on-link IPv6 address of `/64` without a gateway
fn link6(addr: Ipv6Addr) -> Option<crate::Ipv6Link> {
    Some(crate::Ipv6Link {
        addr,
        prefix_len: 64,
        gateway: None,
        gateway_mac: None,
    })
}

/// The PSK of password "fuzz" for port 18081, derived once per process: Argon2id takes tens of
/// milliseconds, which per input would leave the machine fuzzers a few runs a second
fn fuzz_psk() -> crate::ikago2::Psk {
    static PSK: std::sync::OnceLock<crate::ikago2::Psk> = std::sync::OnceLock::new();
    PSK.get_or_init(|| crate::ikago2::Psk::derive("fuzz", 18081))
        .clone()
}

/// The configuration of [`fuzz_client`]
fn client_config(method: Method, kcp: bool) -> ClientConfig {
    let devices = vec![
        device("lan0", DeviceRole::Listen, 1, 11, None),
        device(
            "wan0",
            DeviceRole::Upstream,
            2,
            12,
            Some(Ipv4Addr::new(198, 18, 12, 254)),
        ),
    ];
    let mut devices = devices;
    devices[1].ipv6 = link6(Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 2));
    let mut c = ClientConfig::new(
        devices,
        vec!["198.18.11.0/24".parse().expect("valid CIDR")],
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 12, 1)), 18081),
    );
    c.method = method;
    c.password = "fuzz".into();
    c.ikago2.psk = Some(fuzz_psk());
    c.port = 50000;
    c.mtu = 1000;
    c.fragment = 800;
    c.publish = vec![Ipv4Addr::new(198, 18, 11, 254)];
    c.sources6 = vec!["fd00:11::/64".parse().expect("valid prefix")];
    c.publish6 = vec![Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 0xfe)];
    c.kcp = kcp.then(KcpTuning::default);
    c.dns_records = true;
    c
}

/// The server the fuzzers drive: listens on 198.18.12.1:18081 and [2001:db8:12::1]:18081, NAT
/// address 198.18.13.1 and 2001:db8:13::1 (its IPv6 gateway 2001:db8:13::2, resolved by
/// neighbour discovery)
pub fn fuzz_server(method: Method, kcp: bool) -> Server {
    Server::new(server_config(method, kcp), Instant::now())
        .expect("the fuzz configuration is valid")
}

/// The configuration of [`fuzz_server`]
fn server_config(method: Method, kcp: bool) -> ServerConfig {
    let mut devices = vec![
        device("wan0", DeviceRole::Listen, 1, 12, None),
        device(
            "dst0",
            DeviceRole::Upstream,
            1,
            13,
            Some(Ipv4Addr::new(198, 18, 13, 2)),
        ),
    ];
    devices[0].ipv6 = link6(Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 1));
    devices[1].ipv6 = Some(crate::Ipv6Link {
        addr: Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 1),
        prefix_len: 64,
        gateway: Some(Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 2)),
        gateway_mac: None,
    });
    let mut s = ServerConfig::new(devices, 18081);
    s.method = method;
    s.password = "fuzz".into();
    s.ikago2.psk = Some(fuzz_psk());
    s.mtu = 1000;
    s.fragment = 800;
    s.kcp = kcp.then(KcpTuning::default);
    s
}

/// Interprets `data` as records `[kind, device, len_hi, len_lo, bytes...]`: kind 0-199 feeds a
/// frame, 200-255 advances time by `(kind - 199) * len` milliseconds; drains after each input
fn drive(m: &mut impl Machine, start: Instant, mut data: &[u8]) {
    let mut now = start;
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let mut drain = |m: &mut dyn FnMut(&mut [u8]) -> Output| {
        for _ in 0..10_000 {
            match m(&mut buf) {
                Output::Transmit(t) => assert!(t.len <= MAX_FRAME_LEN && t.device.0 < 2),
                Output::Stream(crate::StreamOp::Write { len, .. }) => assert!(len <= MAX_FRAME_LEN),
                Output::Stream(_) | Output::Event(_) => {}
                Output::Timeout(_) => return,
            }
        }
        panic!("poll_output never returned Timeout");
    };
    while data.len() >= 4 {
        let (kind, device) = (data[0], data[1]);
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        data = &data[4..];
        if kind >= 200 {
            now += Duration::from_millis(u64::from(kind - 199) * len as u64);
            m.drive_input(Input::Timeout(now));
        } else {
            let n = len.min(data.len());
            m.drive_input(Input::Frame {
                now,
                device: DeviceId(device % 3),
                data: &data[..n],
            });
            data = &data[n..];
        }
        drain(&mut |b| m.drive_output(b));
    }
}

/// Feeds arbitrary frames and timeouts to a client (the first byte picks the method, KCP when
/// its top bit is set, and the tunnel over IPv6 ([`fuzz_client6`]) when bit 6 is)
pub fn client_input(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let (method, kcp) = (
        Method::ALL[usize::from(m & 0x3f) % Method::ALL.len()],
        m & 0x80 != 0,
    );
    let mut c = if m & 0x40 != 0 {
        fuzz_client6(method, kcp)
    } else {
        fuzz_client(method, kcp)
    };
    let start = Instant::now();
    drive(&mut c, start, rest);
}

/// Feeds arbitrary frames and timeouts to a server (the first byte picks the method, and KCP when
/// its top bit is set)
pub fn server_input(data: &[u8]) {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let mut s = fuzz_server(
        Method::ALL[usize::from(m & 0x7f) % Method::ALL.len()],
        m & 0x80 != 0,
    );
    let start = Instant::now();
    drive(&mut s, start, rest);
}

/// Feeds arbitrary tunnel connection events to a `tcp` mode machine (the first byte picks the
/// client when odd, else the server; `ikago2` only when bit 1 is set, else the compatible wire
/// for the client and both for the server), as records `[kind, conn, len_hi, len_lo, bytes...]`: kind
/// 0 opens connection `conn` (its peer from `conn`), 1 reads `len` bytes on it, 2 closes it, 3
/// advances time by `len` ms; drains after each
pub fn stream_input(data: &[u8]) {
    let Some((&m, mut data)) = data.split_first() else {
        return;
    };
    let ikago2 = m & 2 == 2;
    let mut machine: Box<dyn Machine> = if m & 1 == 1 {
        let mut c = client_config(Method::Plain, false);
        c.transport = Transport::Tcp;
        if ikago2 {
            c.protocol = Protocol::Ikago2;
            c.method = Method::Aes256Gcm;
        }
        Box::new(Client::new(c, Instant::now()).expect("the fuzz configuration is valid"))
    } else {
        let mut s = server_config(Method::Plain, false);
        s.transport = Transport::Tcp;
        s.protocol = ikago2.then_some(Protocol::Ikago2);
        Box::new(Server::new(s, Instant::now()).expect("the fuzz configuration is valid"))
    };
    let mut now = Instant::now();
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    while data.len() >= 4 {
        let (kind, conn) = (data[0] % 4, ConnId(u64::from(data[1] % 8)));
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        data = &data[4..];
        let event = match kind {
            0 => StreamInput::Opened {
                peer: SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(198, 18, 12, 2)),
                    50000 + conn.0 as u16,
                ),
            },
            1 => {
                let n = len.min(data.len());
                let (read, rest) = data.split_at(n);
                data = rest;
                StreamInput::Data(read)
            }
            2 => StreamInput::Closed,
            _ => {
                now += Duration::from_millis(len as u64);
                machine.drive_input(Input::Timeout(now));
                drain_all(machine.as_mut(), &mut buf);
                continue;
            }
        };
        machine.drive_input(Input::Stream { now, conn, event });
        drain_all(machine.as_mut(), &mut buf);
    }
}

/// Drains a machine, checking what it asks of the runner
fn drain_all(m: &mut dyn Machine, buf: &mut [u8]) {
    for _ in 0..10_000 {
        match m.drive_output(buf) {
            Output::Transmit(t) => assert!(t.len <= MAX_FRAME_LEN && t.device.0 < 2),
            Output::Stream(crate::StreamOp::Write { len, .. }) => {
                assert!(len > 0 && len <= crate::ikago2::record::MAX_RECORD_LEN)
            }
            Output::Stream(_) | Output::Event(_) => {}
            Output::Timeout(_) => return,
        }
    }
    panic!("poll_output never returned Timeout");
}

/// Feeds arbitrary datagrams to a KCP session and a FEC decoder
pub fn kcp_datagrams(data: &[u8]) {
    crate::kcp::fuzz_datagrams(data);
}

/// Feeds arbitrary IPv4 packets (records `[scope, len_hi, len_lo, bytes...]`) to a small reassembler
pub fn reassembly(mut data: &[u8]) {
    let limits = ReassemblyLimits {
        max_entries: 4,
        max_bytes: 64 * 1024,
        timeout: Duration::from_secs(1),
    };
    let mut r = Reassembler::new(limits);
    let mut now = Instant::now();
    while data.len() >= 3 {
        let scope = u32::from(data[0] & 3);
        let len = usize::from(u16::from_be_bytes([data[1], data[2]])).min(data.len() - 3);
        let pkt = &data[3..3 + len];
        data = &data[3 + len..];
        now += Duration::from_millis(100);
        if let Ok(p) = ipv4::Packet::parse(pkt)
            && let Ok(Some(whole)) = r.handle_fragment(now, scope, &p)
        {
            assert!(
                ipv4::Packet::parse(whole).is_ok(),
                "reassembled packets are valid"
            );
        }
        r.handle_timeout(now);
        assert!(r.datagrams() <= limits.max_entries && r.buffered_bytes() <= limits.max_bytes);
    }
}

/// The IPv6 decoder, NAT66 and IPv6 reassembly: records `[kind, len_hi, len_lo, packet...]`;
/// every packet is decoded (the header chain, as a quoted packet, as neighbour discovery, as a
/// Packet Too Big about a tunnel segment), then
/// kind bits 0-1 send it through a NAT66 outbound (0) or inbound (1), or to a small reassembler
/// (2, 3: scope `kind >> 2 & 3`). A translated packet must still decode; a reassembled one must
/// be one IPv6 packet of at most 65535 bytes.
pub fn ipv6_decoder(mut data: &[u8]) {
    use crate::hashing::Keyed;
    use crate::nat::Nat;
    use crate::wire::{icmpv6, ipv6};
    use rand_core::SeedableRng;
    let limits = ReassemblyLimits {
        max_entries: 4,
        max_bytes: 64 * 1024,
        timeout: Duration::from_secs(1),
    };
    let mut r = Reassembler::new(limits);
    let public6 = Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 1);
    let config = crate::NatConfig::default();
    let mut nat = Nat::new(
        &config,
        Some(Ipv4Addr::new(198, 18, 13, 1)),
        Some(public6),
        Keyed::new([0; 16]),
    );
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([0; 32]);
    let mut now = Instant::now();
    let mut copy = vec![0u8; u16::MAX as usize];
    while data.len() >= 3 {
        let kind = data[0];
        let len = usize::from(u16::from_be_bytes([data[1], data[2]])).min(data.len() - 3);
        let pkt = &data[3..3 + len];
        data = &data[3 + len..];
        now += Duration::from_millis(100);
        if let Ok(q) = ipv6::Packet::parse_quoted(pkt) {
            assert!(q.header_len() <= q.bytes().len());
        }
        let Ok(p) = ipv6::Packet::parse(pkt) else {
            continue;
        };
        assert!(p.header_len() <= p.bytes().len() && p.bytes().len() <= pkt.len());
        let _ = icmpv6::parse_ndp(&p);
        if let Some(Ok(r)) = crate::pmtu::parse(&p) {
            assert!(crate::pmtu::lowered(r.mtu) >= ipv6::MIN_MTU);
        }
        match kind & 3 {
            k @ (0 | 1) => {
                let buf = &mut copy[..p.bytes().len()];
                buf.copy_from_slice(p.bytes());
                let translated = if k == 0 {
                    nat.outbound(now, 1, buf, &mut rng).is_ok()
                } else {
                    nat.inbound(now, buf).is_ok()
                };
                if translated {
                    assert!(
                        ipv6::Packet::parse(buf).is_ok(),
                        "translated packets decode"
                    );
                }
            }
            _ => {
                if let Ok(Some(whole)) = r.handle_fragment6(now, u32::from(kind >> 2 & 3), &p) {
                    assert!(whole.len() <= ipv4::MAX_LEN);
                    assert_eq!(
                        whole.len(),
                        40 + usize::from(u16::from_be_bytes([whole[4], whole[5]]))
                    );
                }
                r.handle_timeout(now);
                assert!(
                    r.datagrams() <= limits.max_entries && r.buffered_bytes() <= limits.max_bytes
                );
            }
        }
        nat.handle_timeout(now, |_| {});
    }
}

/// The DNS decoder on a whole message: a response's name and addresses stay within their caps,
/// [`parse_answer`](crate::wire::dns::parse_answer) is the responses without error that name an
/// address, and a name read at the offset given by the last byte ends within the message
pub fn dns_decoder(data: &[u8]) {
    use crate::wire::dns;
    let response = dns::parse_response(data);
    if let Some(r) = &response {
        assert!(r.addrs.len() <= dns::MAX_ADDRS && r.name.len() <= dns::MAX_NAME);
        assert!(!r.name.bytes().any(|b| b.is_ascii_uppercase()));
    }
    assert_eq!(
        dns::parse_answer(data),
        response.filter(|r| r.rcode == 0 && !r.addrs.is_empty())
    );
    let at = data.last().map_or(0, |&b| usize::from(b));
    if let Some((name, end)) = dns::read_name(data, at) {
        assert!(end <= data.len() && name.len() <= dns::MAX_NAME);
    }
}

/// The test vectors' PSK (docs/protocol.md: password "correct horse", port 18081)
const VECTOR_PSK: &str = "0a63ba403ca0a6ec71eb2a105859dedb7029512f539f34ddd9c2470167a65ff7";
/// The test vectors' client-to-server record key (AES-256-GCM)
const VECTOR_C2S: &str = "6646e4bf69f9566b8dfc803d1bab39eff38ca4f6aeebf03569960e36e228e020";
/// The test vectors' server-to-client record key
const VECTOR_S2C: &str = "72a9dbae6fb950092f375bc686775fb60a19e0e82c63cbcee2f9d0f51eaf2b18";

fn key32(hex: &str) -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("a hex constant");
    }
    k
}

/// The ikago2 decoder and handshake: `data[0]` picks the cipher (bit 0), the time between
/// records (bits 1-3, in seconds) and the rekey interval (bits 4-7, in records); the rest is a
/// FakeTCP payload, cut into records. Transport records open on a session keyed as the test
/// vectors' server (so that their records open), initiations go to a responder under their PSK
/// and responses to their initiator. A packet that opens is sealed again on the peer's session
/// and must open back to the same bytes.
pub fn ikago2_decoder(data: &[u8]) {
    use crate::ikago2::handshake::SessionKeys;
    use crate::ikago2::keys::RecordKey;
    use crate::ikago2::record::{self, Kind};
    use crate::ikago2::{
        Endpoint, Initiator, Psk, RecordCipher, Records, Rekey, Responder, Session,
    };
    let Some((&sel, payload)) = data.split_first() else {
        return;
    };
    let cipher = if sel & 1 == 0 {
        RecordCipher::Aes256Gcm
    } else {
        RecordCipher::ChaCha20Poly1305
    };
    let step = Duration::from_secs(u64::from((sel >> 1) & 7));
    let limits = Rekey {
        after_messages: u64::from(sel >> 4) + 1,
        ..Rekey::default()
    };
    let keys = |tx: &str, rx: &str| SessionKeys {
        cipher,
        tx: RecordKey::new(cipher, key32(tx)),
        rx: RecordKey::new(cipher, key32(rx)),
    };
    let mut now = Instant::now();
    let mut server = Session::new(keys(VECTOR_S2C, VECTOR_C2S), limits, now);
    // a client and a server of their own for the round trip (the fuzzed records must not
    // take the counters they use)
    let mut client = Session::new(keys(VECTOR_C2S, VECTOR_S2C), limits, now);
    let mut mirror = Session::new(keys(VECTOR_S2C, VECTOR_C2S), limits, now);
    let psk = Psk::from_bytes(key32(VECTOR_PSK));
    let mut responder = Responder::new(psk.clone(), now);
    let mut handshake = Endpoint::server(limits);
    let mut initiator: Option<Endpoint> = None;
    let mut out = vec![0u8; payload.len() + 64];
    let mut again = vec![0u8; payload.len() + 128];
    let mut back = vec![0u8; payload.len() + 128];
    for r in Records::new(payload) {
        let Ok(r) = r else {
            break;
        };
        now += step;
        match record::record_type(r) {
            Some(record::TYPE_TRANSPORT) => {
                let Ok(o) = server.open(now, r, &mut out) else {
                    continue;
                };
                assert!(o.body.end <= r.len());
                let body = &out[o.body.clone()];
                if o.kind == Kind::Packet {
                    let n = client.seal(now, Kind::Packet, body, None, &mut again);
                    let o2 = mirror
                        .open(now, &again[..n], &mut back)
                        .expect("our own record");
                    assert_eq!(&back[o2.body], body);
                }
            }
            Some(record::TYPE_RESPONSE) => {
                let ep = initiator.get_or_insert_with(|| {
                    let i = Initiator::new(&psk, cipher, 1_700_000_000, [1; 32]);
                    Endpoint::client(i, limits)
                });
                let _ = ep.receive(now, r, &mut out, None);
            }
            _ => {
                let _ = handshake.receive(
                    now,
                    r,
                    &mut out,
                    Some((&mut responder, 1_700_000_000, [2; 32])),
                );
            }
        }
    }
}
