//! Clients of a server played by hand-built segments (plain method: a payload is the inner
//! packet itself), for tests that need many clients without a client machine each
//!
//! Client `i` talks from 198.18.16.1 on (250 per /24), port 40000, to 198.18.12.1:18081.

#![allow(dead_code, reason = "each test file uses a part")]

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use ikago_proto::wire::{ethernet, ipv4, tcp};
use ikago_proto::*;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

/// The server's tunnel address and port
pub(crate) const SERVER: ([u8; 4], u16) = ([198, 18, 12, 1], 18081);
/// The Internet host the clients' inner packets go to
pub(crate) const REMOTE: [u8; 4] = [198, 18, 13, 2];
/// The server's public (NAT) address
pub(crate) const PUBLIC: [u8; 4] = [198, 18, 13, 1];

/// An Ethernet device at 198.18.`net`.`last`/24 with MAC 02:00:00:00:`net`:`last`, without a
/// gateway or IPv6
pub(crate) fn device(name: &str, role: DeviceRole, net: u8, last: u8) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        role,
        link: LinkType::Ethernet,
        mac: Mac([2, 0, 0, 0, net, last]),
        addr: Some(Ipv4Addr::new(198, 18, net, last)),
        prefix_len: 24,
        gateway: None,
        gateway_mac: None,
        ipv6: None,
    }
}

/// A device of the test server
fn dev(name: &str, role: DeviceRole, addr: [u8; 4], gw: Option<[u8; 4]>) -> DeviceConfig {
    DeviceConfig {
        gateway: gw.map(Ipv4Addr::from),
        gateway_mac: gw.map(|g| Mac([2, 0, 0, 0, g[2], g[3]])),
        ..device(name, role, addr[2], addr[3])
    }
}

/// A plain server at [`SERVER`], NATing onto [`PUBLIC`]
pub(crate) fn server_config() -> ServerConfig {
    ServerConfig::new(
        vec![
            dev("wan0", DeviceRole::Listen, SERVER.0, None),
            dev("dst0", DeviceRole::Upstream, PUBLIC, Some(REMOTE)),
        ],
        SERVER.1,
    )
}

/// The tunnel address of client `i`
pub(crate) fn client(i: usize) -> SocketAddrV4 {
    let ip = Ipv4Addr::new(198, 18, 16 + (i / 250) as u8, 1 + (i % 250) as u8);
    SocketAddrV4::new(ip, 40000)
}

/// A segment from client `i`: a SYN without `ack`, else an ACK carrying `payload`
pub(crate) fn segment(i: usize, seq: u32, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let c = client(i);
    let b = PacketBuilder::ethernet2([2, 0, 1, 0, 0, 1], [2, 0, 0, 0, 12, 1])
        .ipv4(c.ip().octets(), SERVER.0, 64)
        .tcp(c.port(), SERVER.1, seq, 64240);
    let b = match ack {
        Some(a) => b.ack(a).psh(),
        None => b.syn(),
    };
    let mut f = Vec::new();
    b.write(&mut f, payload).expect("writes to a Vec");
    f
}

/// The frames `server` sends, by device
pub(crate) fn drain(server: &mut Server, buf: &mut [u8]) -> Vec<(DeviceId, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        match server.poll_output(buf) {
            Output::Transmit(t) => out.push((t.device, buf[..t.len].to_vec())),
            Output::Stream(op) => panic!("a FakeTCP server asked {op:?}"),
            Output::Event(_) => {}
            Output::Timeout(_) => return out,
        }
    }
}

/// The TCP segment in a tunnel frame: (destination, sequence number, payload length)
pub(crate) fn tunnel_segment(frame: &[u8]) -> Option<(SocketAddrV4, u32, usize)> {
    let p = ipv4::Packet::parse(frame.get(ethernet::HEADER_LEN..)?).ok()?;
    let s = tcp::Segment::parse(p.payload(), p.src(), p.dst())?;
    Some((
        SocketAddrV4::new(p.dst(), s.dst_port()),
        s.seq(),
        s.payload().len(),
    ))
}

/// Sends client `i`'s SYN; the server's initial sequence number if it answered
pub(crate) fn syn(server: &mut Server, i: usize, now: Instant, buf: &mut [u8]) -> Option<u32> {
    let f = segment(i, 1000, None, &[]);
    server.handle_input(Input::Frame {
        now,
        device: DeviceId(0),
        data: &f,
    });
    drain(server, buf)
        .iter()
        .find_map(|(_, f)| tunnel_segment(f))
        .map(|(_, seq, _)| seq)
}

/// Connects client `i` (SYN, then the ACK of the server's SYN+ACK); the server's initial
/// sequence number
pub(crate) fn connect(server: &mut Server, i: usize, now: Instant, buf: &mut [u8]) -> u32 {
    let isn = syn(server, i, now, buf).expect("a SYN+ACK");
    let ack = segment(i, 1001, Some(isn.wrapping_add(1)), &[]);
    server.handle_input(Input::Frame {
        now,
        device: DeviceId(0),
        data: &ack,
    });
    drain(server, buf);
    isn
}

/// A UDP packet from 198.18.11.2:`port` to the remote's port 7
pub(crate) fn inner_udp(port: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    PacketBuilder::ipv4([198, 18, 11, 2], REMOTE, 64)
        .udp(port, 7)
        .write(&mut p, payload)
        .expect("writes to a Vec");
    p
}

/// The remote's UDP reply to the public endpoint `public`, as a frame to the server
pub(crate) fn reply_to(public: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 13, 2], [2, 0, 0, 0, 13, 1])
        .ipv4(REMOTE, public.ip().octets(), 64)
        .udp(7, public.port())
        .write(&mut f, payload)
        .expect("writes to a Vec");
    f
}

/// The UDP source of an IPv4 packet in a frame
pub(crate) fn udp_source(frame: &[u8]) -> Option<SocketAddrV4> {
    let p = ipv4::Packet::parse(frame.get(ethernet::HEADER_LEN..)?).ok()?;
    let t = p.payload();
    Some(SocketAddrV4::new(
        p.src(),
        u16::from_be_bytes([*t.first()?, *t.get(1)?]),
    ))
}

/// The source, source port, destination, destination port and payload of an Ethernet frame
/// carrying IPv4 UDP, else `None`
pub(crate) fn udp_payload(frame: &[u8]) -> Option<(Ipv4Addr, u16, Ipv4Addr, u16, Vec<u8>)> {
    let s = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(etherparse::NetSlice::Ipv4(ip)) = s.net else {
        return None;
    };
    let Some(TransportSlice::Udp(u)) = s.transport else {
        return None;
    };
    Some((
        ip.header().source_addr(),
        u.source_port(),
        ip.header().destination_addr(),
        u.destination_port(),
        u.payload().to_vec(),
    ))
}

/// An Ethernet frame from `smac` to `dmac` carrying an IPv4 UDP datagram from `src` to `dst`
pub(crate) fn udp(
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    smac: Mac,
    dmac: Mac,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(smac.0, dmac.0)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .udp(src.1, dst.1)
        .write(&mut v, payload)
        .expect("writes to a Vec");
    v
}

/// The server kernel's ARP reply (198.18.12.1 at 02:00:00:00:12:01) to the client's request in
/// `f`
pub(crate) fn arp_reply(f: &[u8]) -> Vec<u8> {
    let mut reply = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 12, 1], f[6..12].try_into().expect("a MAC"))
        .arp(
            etherparse::ArpPacket::new(
                etherparse::ArpHardwareId::ETHERNET,
                etherparse::EtherType::IPV4,
                etherparse::ArpOperation::REPLY,
                &[2, 0, 0, 0, 12, 1],
                &[198, 18, 12, 1],
                &f[6..12],
                &f[28..32],
            )
            .expect("Ethernet and IPv4 lengths"),
        )
        .write(&mut reply)
        .expect("writes to a Vec");
    reply
}

/// The next frame `m` transmits, collecting events on the way
pub(crate) fn next(
    m: &mut impl Machine,
    buf: &mut [u8],
    events: &mut Vec<Event>,
) -> Option<(DeviceId, Vec<u8>)> {
    loop {
        match m.poll(buf) {
            Output::Transmit(t) => return Some((t.device, buf[..t.len].to_vec())),
            Output::Event(e) => events.push(e),
            Output::Stream(op) => panic!("a FakeTCP machine asked {op:?}"),
            Output::Timeout(_) => return None,
        }
    }
}

/// Both machines' `poll_output` and `handle_input`
pub(crate) trait Machine {
    fn poll(&mut self, buf: &mut [u8]) -> Output;
    fn handle(&mut self, input: Input<'_>);
}

impl Machine for Client {
    fn poll(&mut self, buf: &mut [u8]) -> Output {
        self.poll_output(buf)
    }
    fn handle(&mut self, input: Input<'_>) {
        self.handle_input(input);
    }
}

impl Machine for Server {
    fn poll(&mut self, buf: &mut [u8]) -> Output {
        self.poll_output(buf)
    }
    fn handle(&mut self, input: Input<'_>) {
        self.handle_input(input);
    }
}

/// The machine of a pair that wrote a frame
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Writer {
    /// The client, its tunnel on device 1
    Client,
    /// The server, its tunnel on device 0
    Server,
}

/// Where a frame written by a machine of a pair goes
pub(crate) enum Hop {
    /// Nowhere further: the test keeps it (a LAN or Internet frame) or drops it
    Kept,
    /// Through the tunnel to the other machine's tunnel device
    Across(Vec<u8>),
    /// This answer goes back to the writer's tunnel device at once, as a kernel on the link
    /// would send it (ARP, neighbour advertisements)
    Answer(Vec<u8>),
}

/// Moves frames between `client` and `server` until both are idle, `route` saying where each
/// frame goes (given its writer and device); events collect in `events`
pub(crate) fn settle(
    now: Instant,
    client: &mut Client,
    server: &mut Server,
    buf: &mut [u8],
    events: &mut Vec<Event>,
    mut route: impl FnMut(Writer, DeviceId, Vec<u8>) -> Hop,
) {
    let feed = |m: &mut dyn Machine, device: DeviceId, data: &[u8]| {
        m.handle(Input::Frame { now, device, data });
    };
    for _ in 0..100 {
        let mut moved = false;
        let mut to_server = vec![];
        while let Some((device, f)) = next(client, buf, events) {
            moved = true;
            match route(Writer::Client, device, f) {
                Hop::Kept => {}
                Hop::Across(f) => to_server.push(f),
                Hop::Answer(a) => feed(client, DeviceId(1), &a),
            }
        }
        for f in to_server {
            feed(server, DeviceId(0), &f);
        }
        let mut to_client = vec![];
        while let Some((device, f)) = next(server, buf, events) {
            moved = true;
            match route(Writer::Server, device, f) {
                Hop::Kept => {}
                Hop::Across(f) => to_client.push(f),
                Hop::Answer(a) => feed(server, DeviceId(0), &a),
            }
        }
        for f in to_client {
            feed(client, DeviceId(1), &f);
        }
        if !moved {
            return;
        }
    }
    panic!("no progress");
}
