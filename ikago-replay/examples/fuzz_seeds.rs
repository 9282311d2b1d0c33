//! Writes the seed corpora of the fuzz targets from the capture folders
//!
//! `cargo run -p ikago-replay --example fuzz_seeds [CAPTURES_DIR [CORPUS_DIR]]`, by default
//! `ikago-replay/tests/data` and `fuzz/corpus`. Seeds are named `seed-*` and overwritten; what the
//! fuzzer added is left alone.
//!
//! - `pcapng_reader`: the capture files, and each machine's two legs merged into one file;
//! - `client_input`, `server_input`: the `drive` records of `ikago_proto::fuzzing` (first byte the
//!   method, then `[kind, device, len_hi, len_lo, bytes]`). The captures' frames, adapted to the
//!   fuzz machines' ISNs and ports, and the traffic of a fuzz client and fuzz server joined by a
//!   wire for every method (so that sealed payloads open with the fuzz password), and the same
//!   over an IPv6 tunnel (`world6-*`, first byte's bit 6 set): the handshake after neighbour
//!   discovery, a datagram and one in IPv6 fragments each way, a Packet Too Big to the client;
//! - `open_frame`: `[method, sealed...]` for every method, plus the captures' sealed payloads;
//! - `reassembly`: `[scope, len_hi, len_lo, packet]` records of the captures' IPv4 fragments and
//!   of fragment sets cut from their largest packet (in order, reversed, overlapping, duplicated);
//! - `ipv6_decoder`: `[kind, len_hi, len_lo, packet]` records of IPv6 packets (UDP, TCP, an echo,
//!   a neighbour solicitation, with extension headers) out through the NAT66, the replies and a
//!   Packet Too Big quoting one back in, and fragment sets (in order, reversed, overlapping);
//! - `dns_decoder`: DNS responses with A and AAAA records (and a CNAME), an error, more addresses
//!   than are kept, and a compression loop.

use ikago_proto::crypto::Cipher;
use ikago_proto::fragment::fragment;
use ikago_proto::fuzzing::{FUZZ_SERVER6, fuzz_client, fuzz_client6, fuzz_server};
use ikago_proto::wire::{ethernet, icmpv6, ipv4, ipv6};
use ikago_proto::{DeviceId, Input, MAX_FRAME_LEN, Mac, Machine, Method, Output};
use ikago_replay::adapt::{Adapter, Sender};
use ikago_replay::capture::{Frame, merge, read_pcapng, write_pcapng};
use ikago_replay::decode::TunnelDecoder;
use rand_core::SeedableRng;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SCENARIOS: [(&str, Method, &str); 4] = [
    ("01-faketcp-plain", Method::Plain, ""),
    (
        "02-faketcp-aes-256-gcm",
        Method::Aes256Gcm,
        "ikago-test-256",
    ),
    (
        "03-faketcp-chacha20-poly1305",
        Method::ChaCha20Poly1305,
        "ikago-test-chacha",
    ),
    ("10-faketcp-publish-arp", Method::Plain, ""),
];
// The fuzz machines' MACs: 02:00:00:00:NET:HOST with NET the decimal third octet of the address
// (0x0b for 198.18.11.x), where the captures' hosts have 0x11; see `to_fuzz_macs`
const SOURCE_MAC: [u8; 6] = [2, 0, 0, 0, 11, 2];
const DESTINATION_MAC: [u8; 6] = [2, 0, 0, 0, 13, 2];
const SERVER_WAN_MAC: [u8; 6] = [2, 0, 0, 0, 12, 1];
const SERVER_DST_MAC: [u8; 6] = [2, 0, 0, 0, 13, 1];
const CLIENT_LAN_MAC: [u8; 6] = [2, 0, 0, 0, 11, 1];
const CLIENT_WAN_MAC: [u8; 6] = [2, 0, 0, 0, 12, 2];

/// Rewrites the captures' MACs 02:00:00:00:1N:HH into the fuzz machines' 02:00:00:00:(10+N):HH
/// (Ethernet addresses, and ARP's sender and target hardware addresses)
fn to_fuzz_macs(frame: &mut [u8]) {
    let arp = frame.len() >= 42 && frame[12..14] == [8, 6];
    let at: &[usize] = if arp { &[0, 6, 22, 32] } else { &[0, 6] };
    for &at in at {
        if let Some(m) = frame.get_mut(at..at + 6)
            && m[..4] == [2, 0, 0, 0]
            && (0x11..=0x13).contains(&m[4])
        {
            m[4] = m[4] - 0x11 + 11;
        }
    }
}

fn method_index(m: Method) -> u8 {
    Method::ALL
        .iter()
        .position(|&x| x == m)
        .expect("every method is in ALL") as u8
}

/// A `drive` input being written, and the same inputs fed to a machine
struct Recorder {
    bytes: Vec<u8>,
    machine: Machine,
    now: Instant,
    buf: Vec<u8>,
}

impl Recorder {
    fn new(method: Method, machine: impl Into<Machine>) -> Self {
        Self {
            bytes: vec![method_index(method)],
            machine: machine.into(),
            now: Instant::now(),
            buf: vec![0; MAX_FRAME_LEN],
        }
    }

    /// What the machine has to send now, as (device, frame)
    fn drain(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            match self.machine.poll_output(&mut self.buf) {
                Output::Transmit(t) => out.push((t.device.0, self.buf[..t.len].to_vec())),
                // the seeds are FakeTCP machines: nothing goes to a stream
                Output::Stream(_) | Output::Event(_) => {}
                Output::Timeout(_) => return out,
            }
        }
    }

    /// Time passes, as the `drive` time records say (at most 65535 ms per record)
    fn wait(&mut self, d: Duration) -> Vec<(u8, Vec<u8>)> {
        let mut ms = d.as_millis() as u64;
        let mut out = Vec::new();
        while ms > 0 {
            let step = ms.min(u64::from(u16::MAX));
            self.bytes.extend_from_slice(&[200, 0]);
            self.bytes.extend_from_slice(&(step as u16).to_be_bytes());
            self.now += Duration::from_millis(step);
            self.machine.handle_input(Input::Timeout(self.now));
            out.extend(self.drain());
            ms -= step;
        }
        out
    }

    /// A frame arrives on `device`
    fn frame(&mut self, device: u8, data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.bytes.extend_from_slice(&[0, device]);
        self.bytes
            .extend_from_slice(&(data.len() as u16).to_be_bytes());
        self.bytes.extend_from_slice(data);
        self.machine.handle_input(Input::Frame {
            now: self.now,
            device: DeviceId(device),
            data,
        });
        self.drain()
    }
}

/// A capture's frames as they are
fn read_raw(dir: &Path, scenario: &str, file: &str) -> Vec<Frame> {
    let bytes =
        std::fs::read(dir.join(scenario).join(file)).expect("the capture folder holds the file");
    read_pcapng(&bytes).expect("the captures parse")
}

/// A capture's frames, with the fuzz machines' MACs
fn read(dir: &Path, scenario: &str, file: &str) -> Vec<Frame> {
    let mut frames = read_raw(dir, scenario, file);
    for f in &mut frames {
        to_fuzz_macs(&mut f.data);
    }
    frames
}

/// One capture replayed into a fuzz machine through the adapter, recorded as a `drive` input
fn adapted_seed(
    mut rec: Recorder,
    frames: &[Frame],
    devices: [(&str, [u8; 6]); 2],
    locals: Vec<Ipv4Addr>,
) -> Vec<u8> {
    let mut adapter = Adapter::new(locals);
    let mut last = frames.first().map(|f| f.time).unwrap_or_default();
    for (_, out) in rec.drain() {
        adapter.observe(Sender::Ours, &out);
    }
    for f in frames {
        let gap = f.time.saturating_sub(last);
        last = f.time;
        let mut outs = rec.wait(gap);
        let Some(dev) = devices.iter().position(|d| d.0 == f.interface) else {
            continue;
        };
        if f.data.get(6..12) == Some(&devices[dev].1[..]) {
            adapter.observe(Sender::Recorded, &f.data);
            continue;
        }
        let data = adapter.adapt(&f.data).unwrap_or_else(|| f.data.clone());
        outs.extend(rec.frame(dev as u8, &data));
        for (_, out) in outs {
            adapter.observe(Sender::Ours, &out);
        }
    }
    let st = rec.machine.stats();
    println!(
        "{}: handshakes {}, inner opened {}, sealed {}",
        devices[1].0, st.handshakes, st.inner_rx.packets, st.inner_tx.packets
    );
    rec.bytes
}

/// An ARP reply from `mac` answering `request`, if it asks for `ip`
fn arp_reply(request: &[u8], ip: [u8; 4], mac: [u8; 6]) -> Option<Vec<u8>> {
    if request.len() < 42
        || request[12..14] != [8, 6]
        || request[20..22] != [0, 1]
        || request[38..42] != ip
    {
        return None;
    }
    let mut r = request[..42].to_vec();
    r[0..6].copy_from_slice(&request[6..12]);
    r[6..12].copy_from_slice(&mac);
    r[21] = 2;
    r[22..28].copy_from_slice(&mac);
    r[28..32].copy_from_slice(&ip);
    r[32..38].copy_from_slice(&request[22..28]);
    r[38..42].copy_from_slice(&request[28..32]);
    r.resize(60, 0);
    Some(r)
}

/// A fuzz client and a fuzz server joined by a wire, fed the source's packets and the destination's
/// replies of a capture; returns the client's and the server's `drive` inputs
fn world_seeds(dir: &Path, scenario: &str, method: Method) -> (Vec<u8>, Vec<u8>) {
    let mut c = Recorder::new(method, fuzz_client(method, false));
    let mut s = Recorder::new(method, fuzz_server(method, false));
    let lan = read(dir, scenario, "client-lan.pcapng")
        .into_iter()
        .filter(|f| f.data[6..12] == SOURCE_MAC);
    let dst = read(dir, scenario, "server-dst.pcapng")
        .into_iter()
        .filter(|f| {
            matches!(
                f.data[6..12].try_into(),
                Ok(DESTINATION_MAC | SERVER_DST_MAC)
            )
        });
    let events = merge(vec![lan.collect(), dst.collect()]);
    let mut adapter = Adapter::new(vec![Ipv4Addr::new(198, 18, 13, 1)]);
    let mut last = events.first().map(|f| f.time).unwrap_or_default();
    let (mut client_out, mut server_out) = (c.drain(), s.drain());
    for f in &events {
        let gap = f.time.saturating_sub(last);
        last = f.time;
        client_out.extend(c.wait(gap));
        server_out.extend(s.wait(gap));
        if f.interface == "lan0" {
            client_out.extend(c.frame(0, &f.data));
        } else if f.data[6..12] == SERVER_DST_MAC {
            adapter.observe(Sender::Recorded, &f.data);
        } else {
            let data = adapter.adapt(&f.data).unwrap_or_else(|| f.data.clone());
            server_out.extend(s.frame(1, &data));
        }
        // deliver until both are quiet: client wan0 (1) <-> server wan0 (0); ARP answered
        for _ in 0..64 {
            if client_out.is_empty() && server_out.is_empty() {
                break;
            }
            let (from_c, from_s) = (
                std::mem::take(&mut client_out),
                std::mem::take(&mut server_out),
            );
            for (dev, out) in from_c {
                if dev != 1 {
                    continue;
                }
                match arp_reply(&out, [198, 18, 12, 1], SERVER_WAN_MAC) {
                    Some(r) => client_out.extend(c.frame(1, &r)),
                    None => server_out.extend(s.frame(0, &out)),
                }
            }
            for (dev, out) in from_s {
                match (dev, arp_reply(&out, [198, 18, 13, 2], DESTINATION_MAC)) {
                    (1, Some(r)) => server_out.extend(s.frame(1, &r)),
                    (1, None) => adapter.observe(Sender::Ours, &out),
                    (_, _) => client_out.extend(c.frame(1, &out)),
                }
            }
        }
    }
    let (cs, ss) = (c.machine.stats(), s.machine.stats());
    println!(
        "world {method}: client sealed {} opened {}; server opened {} sealed {}",
        cs.inner_tx.packets, cs.inner_rx.packets, ss.inner_rx.packets, ss.inner_tx.packets
    );
    (c.bytes, s.bytes)
}

/// Cuts the IPv4 packet `ip` into fragments of `chunk` payload bytes (a multiple of 8)
fn fragments(ip: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let packet = ipv4::Packet::parse(ip).expect("the capture's packets are valid");
    let mut out = Vec::new();
    fragment(&packet, packet.header_len() + chunk, |h, c| {
        out.push([h, c].concat());
    });
    out
}

fn reassembly_record(out: &mut Vec<u8>, scope: u8, packet: &[u8]) {
    out.push(scope);
    out.extend_from_slice(&(packet.len() as u16).to_be_bytes());
    out.extend_from_slice(packet);
}

fn write(corpus: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = corpus.join(target);
    std::fs::create_dir_all(&dir).expect("the corpus folder can be created");
    std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("the seed can be written");
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let dir = args.next().unwrap_or_else(|| root.join("tests/data"));
    let corpus = args.next().unwrap_or_else(|| root.join("../fuzz/corpus"));
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    for (scenario, method, password) in SCENARIOS {
        let short = &scenario[..2];
        for file in ["client-lan", "client-wan", "server-wan", "server-dst"] {
            let bytes =
                std::fs::read(dir.join(scenario).join(format!("{file}.pcapng"))).expect("capture");
            write(
                &corpus,
                "pcapng_reader",
                &format!("{short}-{file}.pcapng"),
                &bytes,
            );
        }
        for (role, files, names) in [
            ("client", ["client-lan", "client-wan"], ["lan0", "wan0"]),
            ("server", ["server-wan", "server-dst"], ["dst0", "wan0"]),
        ] {
            let raw = merge(
                files
                    .iter()
                    .map(|f| read_raw(&dir, scenario, &format!("{f}.pcapng")))
                    .collect(),
            );
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            write(
                &corpus,
                "pcapng_reader",
                &format!("{short}-{role}-merged.pcapng"),
                &write_pcapng(&names, &raw),
            );
            let frames = merge(
                files
                    .iter()
                    .map(|f| read(&dir, scenario, &format!("{f}.pcapng")))
                    .collect(),
            );
            let seed = if role == "client" {
                let lan: Vec<Ipv4Addr> =
                    vec![Ipv4Addr::new(198, 18, 11, 1), Ipv4Addr::new(198, 18, 12, 2)];
                adapted_seed(
                    Recorder::new(method, fuzz_client(method, false)),
                    &frames,
                    [("lan0", CLIENT_LAN_MAC), ("wan0", CLIENT_WAN_MAC)],
                    lan,
                )
            } else {
                let locals = vec![Ipv4Addr::new(198, 18, 12, 1), Ipv4Addr::new(198, 18, 13, 1)];
                adapted_seed(
                    Recorder::new(method, fuzz_server(method, false)),
                    &frames,
                    [("wan0", SERVER_WAN_MAC), ("dst0", SERVER_DST_MAC)],
                    locals,
                )
            };
            write(
                &corpus,
                &format!("{role}_input"),
                &format!("{short}-capture"),
                &seed,
            );
        }
        // sealed payloads of the capture (they do not open with the fuzz password) and fragments
        let mut dec = TunnelDecoder::new(method, password, 18081);
        let mut frags = Vec::new();
        for (i, f) in read(&dir, scenario, "client-wan.pcapng").iter().enumerate() {
            if f.data.len() > 34
                && f.data[12..14] == [8, 0]
                && (f.data[20] & 0x3f != 0 || f.data[21] != 0)
            {
                reassembly_record(&mut frags, 1, &f.data[14..]);
            }
            if let Some(seg) = dec.segment(f).filter(|s| !s.payload.is_empty())
                && i % 4 == 0
            {
                write(
                    &corpus,
                    "open_frame",
                    &format!("{short}-capture-{i}"),
                    &[&[method_index(method)][..], &seg.payload].concat(),
                );
            }
        }
        if !frags.is_empty() {
            write(&corpus, "reassembly", &format!("{short}-capture"), &frags);
        }
    }
    for method in Method::ALL {
        let (c, s) = world_seeds(&dir, "01-faketcp-plain", method);
        write(&corpus, "client_input", &format!("world-{method}"), &c);
        write(&corpus, "server_input", &format!("world-{method}"), &s);
        let cipher = Cipher::new(method, "fuzz");
        for (i, ip) in read(&dir, "01-faketcp-plain", "client-lan.pcapng")
            .iter()
            .filter(|f| f.data[6..12] == SOURCE_MAC)
            .take(8)
            .enumerate()
        {
            let plain = &ip.data[14..];
            let mut out = vec![0; plain.len() + cipher.overhead()];
            let n = cipher.seal_from(plain, &mut out, &mut rng);
            write(
                &corpus,
                "open_frame",
                &format!("{method}-{i}"),
                &[&[method_index(method)][..], &out[..n]].concat(),
            );
        }
    }
    let big = read(&dir, "01-faketcp-plain", "client-lan.pcapng")
        .into_iter()
        .map(|f| f.data)
        .max_by_key(Vec::len)
        .expect("frames");
    let parts = fragments(&big[14..], 512);
    let mut ordered = Vec::new();
    let mut reversed = Vec::new();
    let mut messy = Vec::new();
    for p in &parts {
        reassembly_record(&mut ordered, 0, p);
    }
    for p in parts.iter().rev() {
        reassembly_record(&mut reversed, 2, p);
    }
    for p in fragments(&big[14..], 256).iter().chain(&parts).rev() {
        reassembly_record(&mut messy, 3, p);
        reassembly_record(&mut messy, 3, p);
    }
    write(&corpus, "reassembly", "ordered", &ordered);
    write(&corpus, "reassembly", "reversed", &reversed);
    write(&corpus, "reassembly", "overlapping-duplicated", &messy);
    for method in Method::ALL {
        let (c, s) = world6_seeds(method);
        write(&corpus, "client_input", &format!("world6-{method}"), &c);
        write(&corpus, "server_input", &format!("world6-{method}"), &s);
    }
    ipv6_seeds(&corpus);
    dns_seeds(&corpus);
    println!("seeds written to {}", corpus.display());
}

/// The fuzz client's IPv6 tunnel address
const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 2);

/// Carries frames between a fuzz client (its `wan0`, device 1) and the fuzz server (its `wan0`,
/// device 0) until both are quiet, answering the client's neighbour solicitations for the
/// server and the server's ARP for its gateway; returns what the server sent to the Internet
fn relay6(
    c: &mut Recorder,
    s: &mut Recorder,
    mut client_out: Vec<(u8, Vec<u8>)>,
    mut server_out: Vec<(u8, Vec<u8>)>,
) -> Vec<Vec<u8>> {
    let mut internet = Vec::new();
    for _ in 0..64 {
        if client_out.is_empty() && server_out.is_empty() {
            break;
        }
        for (dev, out) in std::mem::take(&mut client_out) {
            if dev != 1 {
                continue;
            }
            if out[12..14] == [0x86, 0xdd] && out.get(54) == Some(&icmpv6::NEIGHBOR_SOLICIT) {
                let mut na = vec![0u8; 14 + 72];
                let n = ethernet::write(
                    &mut na,
                    Mac(CLIENT_WAN_MAC),
                    Mac(SERVER_WAN_MAC),
                    ethernet::ETHERTYPE_IPV6,
                );
                let server6 = match FUZZ_SERVER6.ip() {
                    IpAddr::V6(ip) => ip,
                    IpAddr::V4(_) => unreachable!("an IPv6 address"),
                };
                let len =
                    icmpv6::write_advert(&mut na[n..], server6, CLIENT6, Mac(SERVER_WAN_MAC), true);
                na.truncate(n + len);
                client_out.extend(c.frame(1, &na));
            } else {
                server_out.extend(s.frame(0, &out));
            }
        }
        for (dev, out) in std::mem::take(&mut server_out) {
            match (dev, arp_reply(&out, [198, 18, 13, 2], DESTINATION_MAC)) {
                (1, Some(r)) => server_out.extend(s.frame(1, &r)),
                (1, None) => internet.push(out),
                (_, _) => client_out.extend(c.frame(1, &out)),
            }
        }
    }
    internet
}

/// A UDP datagram of `len` bytes from the LAN host to 198.18.13.2:7, as a frame to the client
fn lan_datagram(len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(SOURCE_MAC, CLIENT_LAN_MAC)
        .ipv4([198, 18, 11, 2], [198, 18, 13, 2], 64)
        .udp(40000, 7)
        .write(&mut f, &vec![0x5a; len])
        .expect("writes to a Vec");
    f
}

/// A fuzz client tunnelling over IPv6 and the fuzz server joined by a wire, for `method`: the
/// handshake, a datagram and one larger than the tunnel MTU (in IPv6 fragments) out and echoed
/// back, then a Packet Too Big quoting the client's latest segment; the `drive` inputs
fn world6_seeds(method: Method) -> (Vec<u8>, Vec<u8>) {
    let mut c = Recorder::new(method, fuzz_client6(method, false));
    c.bytes[0] |= 0x40;
    let mut s = Recorder::new(method, fuzz_server(method, false));
    let (co, so) = (c.drain(), s.drain());
    relay6(&mut c, &mut s, co, so);
    for len in [100, 1400] {
        let out = c.frame(0, &lan_datagram(len));
        for f in relay6(&mut c, &mut s, out, Vec::new()) {
            let Ok(p) = etherparse::SlicedPacket::from_ethernet(&f) else {
                continue;
            };
            let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
                continue;
            };
            let mut reply = Vec::new();
            etherparse::PacketBuilder::ethernet2(DESTINATION_MAC, SERVER_DST_MAC)
                .ipv4([198, 18, 13, 2], [198, 18, 13, 1], 64)
                .udp(7, u.source_port())
                .write(&mut reply, u.payload())
                .expect("writes to a Vec");
            let back = s.frame(1, &reply);
            relay6(&mut c, &mut s, Vec::new(), back);
        }
    }
    let latest = c.wait(Duration::from_secs(30));
    if let Some((_, seg)) = latest
        .iter()
        .find(|(d, f)| *d == 1 && f[12..14] == [0x86, 0xdd])
    {
        let quoted = ipv6::Packet::parse(&seg[14..]).expect("the client's segment");
        let mut ptb = vec![0u8; 14 + ipv6::MIN_MTU];
        let n = ethernet::write(
            &mut ptb,
            Mac(CLIENT_WAN_MAC),
            Mac([2, 0, 0, 0, 12, 0xfe]),
            ethernet::ETHERTYPE_IPV6,
        );
        let router = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 0xfe);
        let len = icmpv6::write_packet_too_big(&mut ptb[n..], router, &quoted, 1280);
        ptb.truncate(n + len);
        c.frame(1, &ptb);
    }
    let (cs, ss) = (c.machine.stats(), s.machine.stats());
    println!(
        "world6 {method}: client sealed {} opened {}; server opened {} sealed {}",
        cs.inner_tx.packets, cs.inner_rx.packets, ss.inner_rx.packets, ss.inner_tx.packets
    );
    (c.bytes, s.bytes)
}

/// The NAT66 address of `ikago_proto::fuzzing::ipv6_decoder`
const PUBLIC6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0x13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// A LAN host's IPv6 address
const HOST6: [u8; 16] = [0xfd, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// An Internet host's IPv6 address
const REMOTE6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// An IPv6 packet built by `b` with `payload`
fn build6(b: etherparse::PacketBuilderStep<etherparse::UdpHeader>, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("writes to a Vec");
    v
}

/// The fragments of the IPv6 packet `ip` (a fixed header, no extension headers) with `chunk`
/// bytes of data each
fn fragments6(ip: &[u8], chunk: usize, id: u32) -> Vec<Vec<u8>> {
    let data = &ip[40..];
    let mut out = Vec::new();
    for (k, c) in data.chunks(chunk).enumerate() {
        let offset = k * chunk;
        let more = offset + c.len() < data.len();
        let mut f = ip[..40].to_vec();
        f[4..6].copy_from_slice(&((8 + c.len()) as u16).to_be_bytes());
        f[6] = 44;
        f.extend_from_slice(&[ip[6], 0]);
        f.extend_from_slice(&((offset as u16) | u16::from(more)).to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(c);
        out.push(f);
    }
    out
}

/// The seeds of `ipv6_decoder`
fn ipv6_seeds(corpus: &Path) {
    use etherparse::PacketBuilder;
    let udp = build6(
        PacketBuilder::ipv6(HOST6, REMOTE6, 64).udp(50000, 53),
        b"query",
    );
    let reply = build6(
        PacketBuilder::ipv6(REMOTE6, PUBLIC6, 64).udp(53, 50000),
        b"answer",
    );
    let mut tcp = Vec::new();
    PacketBuilder::ipv6(HOST6, REMOTE6, 64)
        .tcp(40000, 443, 1, 64240)
        .syn()
        .write(&mut tcp, &[])
        .expect("writes to a Vec");
    let mut echo = Vec::new();
    PacketBuilder::ipv6(HOST6, REMOTE6, 64)
        .icmpv6_echo_request(7, 1)
        .write(&mut echo, b"ping")
        .expect("writes to a Vec");
    let sent = {
        let mut s = udp.clone();
        s[8..24].copy_from_slice(&PUBLIC6);
        s
    };
    let mut ptb = Vec::new();
    PacketBuilder::ipv6(REMOTE6, PUBLIC6, 64)
        .icmpv6_raw(2, 0, [0, 0, 5, 0])
        .write(&mut ptb, &sent)
        .expect("writes to a Vec");
    let mut ns = vec![0u8; 72];
    icmpv6::write_solicit(
        &mut ns,
        HOST6.into(),
        Mac(SOURCE_MAC),
        PUBLIC6.into(),
        false,
    );
    let mut with_options = udp.clone();
    with_options[6] = 60;
    with_options.splice(40..40, [17u8, 0, 1, 4, 0, 0, 0, 0]);
    let payload_len = (with_options.len() - 40) as u16;
    with_options[4..6].copy_from_slice(&payload_len.to_be_bytes());
    let mut flows = Vec::new();
    for (kind, p) in [
        (0, &udp),
        (1, &reply),
        (0, &tcp),
        (0, &echo),
        (1, &ptb),
        (0, &ns),
        (0, &with_options),
    ] {
        reassembly_record(&mut flows, kind, p);
    }
    write(corpus, "ipv6_decoder", "nat66", &flows);
    let big = build6(
        PacketBuilder::ipv6(REMOTE6, PUBLIC6, 64).udp(53, 50000),
        &[0x5a; 3000],
    );
    let parts = fragments6(&big, 1232, 9);
    let (mut ordered, mut reversed, mut overlapping) = (Vec::new(), Vec::new(), Vec::new());
    for p in &parts {
        reassembly_record(&mut ordered, 2, p);
    }
    for p in parts.iter().rev() {
        reassembly_record(&mut reversed, 6, p);
    }
    for p in fragments6(&big, 512, 10)
        .iter()
        .chain(&fragments6(&big, 256, 10))
    {
        reassembly_record(&mut overlapping, 3, p);
    }
    write(corpus, "ipv6_decoder", "fragments-ordered", &ordered);
    write(corpus, "ipv6_decoder", "fragments-reversed", &reversed);
    write(
        corpus,
        "ipv6_decoder",
        "fragments-overlapping",
        &overlapping,
    );
}

/// A DNS response (rcode `rcode`) to the question `name` (type AAAA) with `records`, each of type
/// and data, named by a compression pointer to the question
fn dns_message(rcode: u8, name: &str, records: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0x4a, 0x11, 0x81, 0x80 | rcode, 0, 1];
    m.extend_from_slice(&(records.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    for label in name.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 28, 0, 1]);
    for (ty, data) in records {
        m.extend_from_slice(&[0xc0, 12]);
        m.extend_from_slice(&ty.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(data.len() as u16).to_be_bytes());
        m.extend_from_slice(data);
    }
    m
}

/// The seeds of `dns_decoder`
fn dns_seeds(corpus: &Path) {
    const A: u16 = 1;
    const CNAME: u16 = 5;
    const AAAA: u16 = 28;
    let v4 = [198, 18, 14, 2];
    write(
        corpus,
        "dns_decoder",
        "a-aaaa-cname",
        &dns_message(
            0,
            "Echo.Lab.test",
            &[(CNAME, b"\x02cn\xc0\x0c"), (AAAA, &REMOTE6), (A, &v4)],
        ),
    );
    write(
        corpus,
        "dns_decoder",
        "nxdomain",
        &dns_message(3, "missing.lab.test", &[]),
    );
    let many: Vec<[u8; 16]> = (0..20u8)
        .map(|i| {
            let mut a = REMOTE6;
            a[15] = i;
            a
        })
        .collect();
    let records: Vec<(u16, &[u8])> = many.iter().map(|a| (AAAA, &a[..])).collect();
    write(
        corpus,
        "dns_decoder",
        "more-than-kept",
        &dns_message(0, "many.lab.test", &records),
    );
    let mut looped = dns_message(0, "loop.lab.test", &[(AAAA, &REMOTE6)]);
    looped[12..14].copy_from_slice(&[0xc0, 12]);
    write(corpus, "dns_decoder", "pointer-loop", &looped);
}
