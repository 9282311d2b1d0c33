//! Simulated hosts: real IP stacks (smoltcp) on a virtual clock, with small applications
//!
//! A host has one Ethernet device on one segment, and an IPv4 address, an IPv6 address or both
//! (smoltcp answers ARP, neighbour solicitations and pings for them). Tests act on it between
//! steps of the World (send a datagram, a DNS query or a ping, start a TCP transfer, run an echo
//! or name service) and read back what it received: UDP datagrams with their exact payloads,
//! ICMP and ICMPv6 echo replies, ICMPv6 errors and TCP streams verified byte by byte.

use crate::addr::{
    self, CLIENT_LAN, CLIENT_LAN6, EDGE_INTERNET6, EDGE_REMOTE6, PREFIX_LEN, PREFIX_LEN6,
    ROUTER_INSIDE6, ROUTER_OUTSIDE6,
};
use crate::dns;
use crate::ipv6::{self, Icmp6Error};
use ikago_proto::Mac;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr,
    IpAddress, IpCidr, IpEndpoint,
};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Bytes of payload a UDP or ICMP socket buffers each way
const DATAGRAM_BUFFER: usize = 256 * 1024;
/// Datagrams a UDP or ICMP socket buffers each way
const DATAGRAM_SLOTS: usize = 256;
/// Bytes a TCP socket buffers each way (above 64 KiB, so smoltcp scales its window)
const TCP_BUFFER: usize = 256 * 1024;
/// Egress rounds per poll: smoltcp sends one segment per socket per round
const EGRESS_ROUNDS: usize = 64;

/// How a host is set up
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Name in summaries
    pub name: String,
    /// Its IPv4 address (`None`: an IPv6-only host)
    pub addr: Option<Ipv4Addr>,
    /// Prefix length of its IPv4 subnet
    pub prefix_len: u8,
    /// Its IPv4 default gateway, if any
    pub gateway: Option<Ipv4Addr>,
    /// Its IPv6 address, if any
    pub ipv6: Option<HostIpv6>,
    /// Its IP MTU (larger IPv4 datagrams are fragmented)
    pub mtu: usize,
}

/// A host's IPv6 address, subnet and gateway
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostIpv6 {
    /// Its address
    pub addr: Ipv6Addr,
    /// Prefix length of its subnet
    pub prefix_len: u8,
    /// Its default gateway, if any
    pub gateway: Option<Ipv6Addr>,
}

impl HostIpv6 {
    /// `addr` in a /64 of the address plan with `gateway`
    fn plan(addr: Ipv6Addr, gateway: Ipv6Addr) -> Self {
        Self {
            addr,
            prefix_len: PREFIX_LEN6,
            gateway: Some(gateway),
        }
    }

    /// On a client's LAN, the client its gateway
    pub fn lan(addr: Ipv6Addr) -> Self {
        Self::plan(addr, CLIENT_LAN6)
    }

    /// On the Internet segment (on-link with the server's NAT66 address), the edge router its
    /// gateway
    pub fn internet(addr: Ipv6Addr) -> Self {
        Self::plan(addr, EDGE_INTERNET6)
    }

    /// Beyond the edge router, which is its gateway
    pub fn remote(addr: Ipv6Addr) -> Self {
        Self::plan(addr, EDGE_REMOTE6)
    }

    /// On the client-side WAN, the WAN router its gateway
    pub fn client_side(addr: Ipv6Addr) -> Self {
        Self::plan(addr, ROUTER_INSIDE6)
    }

    /// On the server-side WAN, the WAN router its gateway
    pub fn server_side(addr: Ipv6Addr) -> Self {
        Self::plan(addr, ROUTER_OUTSIDE6)
    }
}

impl HostConfig {
    /// A LAN host at `addr` whose gateway is the client
    pub fn lan(name: &str, addr: Ipv4Addr) -> Self {
        Self {
            name: name.to_owned(),
            addr: Some(addr),
            prefix_len: PREFIX_LEN,
            gateway: Some(CLIENT_LAN),
            ipv6: None,
            mtu: 1500,
        }
    }

    /// An Internet host at `addr`, on-link with the server's public address (no gateway)
    pub fn internet(name: &str, addr: Ipv4Addr) -> Self {
        Self {
            gateway: None,
            ..Self::lan(name, addr)
        }
    }

    /// An IPv6-only host
    pub fn ipv6_only(name: &str, ipv6: HostIpv6) -> Self {
        Self {
            name: name.to_owned(),
            addr: None,
            prefix_len: PREFIX_LEN,
            gateway: None,
            ipv6: Some(ipv6),
            mtu: 1500,
        }
    }

    /// An IPv6-only LAN host at `addr` whose gateway is the client
    pub fn lan6(name: &str, addr: Ipv6Addr) -> Self {
        Self::ipv6_only(name, HostIpv6::lan(addr))
    }

    /// An IPv6-only Internet host at `addr`
    pub fn internet6(name: &str, addr: Ipv6Addr) -> Self {
        Self::ipv6_only(name, HostIpv6::internet(addr))
    }

    /// The same host with `ipv6` as well (dual-stack)
    pub fn with_ipv6(self, ipv6: HostIpv6) -> Self {
        Self {
            ipv6: Some(ipv6),
            ..self
        }
    }

    /// Its addresses, IPv4 first
    pub fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let v4 = self.addr.map(IpAddr::V4);
        v4.into_iter()
            .chain(self.ipv6.map(|v6| IpAddr::V6(v6.addr)))
    }
}

/// A UDP datagram a host received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Virtual time of arrival
    pub at: Duration,
    /// Its source
    pub from: SocketAddr,
    /// The local port it arrived on
    pub port: u16,
    /// Its payload
    pub payload: Vec<u8>,
}

/// An ICMP or ICMPv6 echo reply a host received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    /// Virtual time of arrival
    pub at: Duration,
    /// Who answered
    pub from: IpAddr,
    /// Echo identifier
    pub ident: u16,
    /// Echo sequence number
    pub seq: u16,
    /// Echo data
    pub payload: Vec<u8>,
}

/// What one side of a TCP transfer sends and expects: deterministic byte streams (see
/// [`stream_bytes`])
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Seed of the stream this side sends
    pub send_seed: u64,
    /// Bytes to send before closing
    pub send_len: u64,
    /// Seed of the stream expected from the peer
    pub expect_seed: u64,
    /// Bytes expected from the peer
    pub expect_len: u64,
}

/// The progress of one TCP transfer
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpStream {
    /// The local port
    pub port: u16,
    /// The peer, once connected
    pub remote: Option<SocketAddr>,
    /// What was asked
    pub transfer: Transfer,
    /// Bytes handed to the socket
    pub sent: u64,
    /// Bytes received
    pub received: u64,
    /// Offset of the first received byte that differs from the expected stream
    pub mismatch_at: Option<u64>,
}

impl TcpStream {
    /// Everything was sent, and everything expected arrived intact
    pub fn is_complete(&self) -> bool {
        self.sent == self.transfer.send_len
            && self.received == self.transfer.expect_len
            && self.mismatch_at.is_none()
    }
}

/// Byte `index` of the deterministic stream `seed` (SplitMix64 of each 8-byte block)
fn stream_byte(seed: u64, index: u64) -> u8 {
    let mut z = seed ^ (index / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> ((index % 8) * 8)) as u8
}

/// `len` bytes of the deterministic stream `seed` from `offset`
pub fn stream_bytes(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64)
        .map(|i| stream_byte(seed, i))
        .collect()
}

/// What a bound UDP port does with what it receives (it always records it)
#[derive(Debug, Clone)]
enum UdpService {
    /// Only record
    Record,
    /// Send every payload back to its sender
    Echo,
    /// Answer DNS queries from these records
    Dns(Vec<(String, Ipv4Addr)>),
}

/// The host's device: frames from the World in, frames to the World out
#[derive(Debug)]
struct SimDevice {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
    mtu: usize,
}

/// A received frame handed to smoltcp
#[derive(Debug)]
struct RxBuf(Vec<u8>);

/// Room for one frame smoltcp sends
#[derive(Debug)]
struct TxBuf<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxBuf {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxBuf<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.0.push(frame);
        r
    }
}

impl phy::Device for SimDevice {
    type RxToken<'a> = RxBuf;
    type TxToken<'a> = TxBuf<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(RxBuf, TxBuf<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxBuf(frame), TxBuf(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<TxBuf<'_>> {
        Some(TxBuf(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + crate::packet::ETH_LEN;
        caps
    }
}

/// smoltcp's clock for a virtual time
fn smol_time(t: Duration) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(t.as_micros() as i64)
}

/// A smoltcp endpoint as a socket address
fn socket_addr(ep: IpEndpoint) -> SocketAddr {
    SocketAddr::new(ep.addr.into(), ep.port)
}

/// Metadata slots and payload bytes for one direction of a UDP or ICMP socket
fn datagram_socket_buffers<M: Clone>(empty: M) -> (Vec<M>, Vec<u8>) {
    (vec![empty; DATAGRAM_SLOTS], vec![0; DATAGRAM_BUFFER])
}

/// One TCP transfer in progress
#[derive(Debug)]
struct TcpJob {
    handle: SocketHandle,
    closing: bool,
    stream: TcpStream,
}

/// A simulated host
pub struct Host {
    config: HostConfig,
    mac: [u8; 6],
    icmp6_errors: Vec<Icmp6Error>,
    iface: Interface,
    sockets: SocketSet<'static>,
    device: SimDevice,
    udp: BTreeMap<u16, (SocketHandle, UdpService)>,
    icmp: BTreeMap<u16, SocketHandle>,
    tcp: Vec<TcpJob>,
    datagrams: Vec<Datagram>,
    echo_replies: Vec<EchoReply>,
    frames_in: u64,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("config", &self.config)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl Host {
    /// A host on the segment tagged `tag`, its stack seeded with `seed`, started at `now`
    ///
    /// # Panics
    /// If it has neither an IPv4 nor an IPv6 address.
    pub(crate) fn new(config: HostConfig, tag: u8, seed: u64, now: Duration) -> Self {
        let mac = match (config.addr, config.ipv6) {
            (Some(v4), _) => addr::mac(tag, v4),
            (None, Some(v6)) => addr::mac6(tag, v6.addr),
            (None, None) => panic!("host {}: no IPv4 and no IPv6 address", config.name),
        };
        let mut device = SimDevice {
            rx: VecDeque::new(),
            tx: Vec::new(),
            mtu: config.mtu,
        };
        let mut c = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        c.random_seed = seed;
        let mut iface = Interface::new(c, &mut device, smol_time(now));
        iface.update_ip_addrs(|a| {
            let v4 = config
                .addr
                .map(|v4| (IpAddress::from(v4), config.prefix_len));
            let v6 = config
                .ipv6
                .map(|v6| (IpAddress::from(v6.addr), v6.prefix_len));
            for (ip, len) in v4.into_iter().chain(v6) {
                a.push(IpCidr::new(ip, len)).expect("two addresses fit");
            }
        });
        if let Some(gw) = config.gateway.filter(|_| config.addr.is_some()) {
            iface
                .routes_mut()
                .add_default_ipv4_route(gw)
                .expect("one route fits");
        }
        if let Some(gw) = config.ipv6.and_then(|v6| v6.gateway) {
            iface
                .routes_mut()
                .add_default_ipv6_route(gw)
                .expect("two routes fit");
        }
        Self {
            config,
            mac,
            icmp6_errors: Vec::new(),
            iface,
            sockets: SocketSet::new(Vec::new()),
            device,
            udp: BTreeMap::new(),
            icmp: BTreeMap::new(),
            tcp: Vec::new(),
            datagrams: Vec::new(),
            echo_replies: Vec::new(),
            frames_in: 0,
        }
    }

    /// Its configuration
    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Its MAC
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Every UDP datagram received, in order
    pub fn datagrams(&self) -> &[Datagram] {
        &self.datagrams
    }

    /// The payloads received on local `port`, in order
    pub fn payloads_on(&self, port: u16) -> Vec<&[u8]> {
        self.datagrams
            .iter()
            .filter(|d| d.port == port)
            .map(|d| d.payload.as_slice())
            .collect()
    }

    /// Every ICMP and ICMPv6 echo reply received, in order
    pub fn echo_replies(&self) -> &[EchoReply] {
        &self.echo_replies
    }

    /// Every ICMPv6 error message addressed to the host, in order (a Packet Too Big among them)
    pub fn icmp6_errors(&self) -> &[Icmp6Error] {
        &self.icmp6_errors
    }

    /// The TCP transfers started here, in order
    pub fn tcp_streams(&self) -> Vec<&TcpStream> {
        self.tcp.iter().map(|j| &j.stream).collect()
    }

    /// Ethernet frames delivered to the host's device (for any MAC: the segment is shared)
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    fn bind(&mut self, port: u16, service: UdpService) {
        if let Some((_, s)) = self.udp.get_mut(&port) {
            *s = service;
            return;
        }
        let (rm, rb) = datagram_socket_buffers(udp::PacketMetadata::EMPTY);
        let (tm, tb) = datagram_socket_buffers(udp::PacketMetadata::EMPTY);
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(rm, rb),
            udp::PacketBuffer::new(tm, tb),
        );
        s.bind(port).expect("a non-zero port");
        let h = self.sockets.add(s);
        self.udp.insert(port, (h, service));
    }

    /// Records every datagram arriving on `port`
    pub fn udp_bind(&mut self, port: u16) {
        self.bind(port, UdpService::Record);
    }

    /// Records every datagram arriving on `port` and sends its payload back to its sender
    pub fn udp_echo(&mut self, port: u16) {
        self.bind(port, UdpService::Echo);
    }

    /// Answers DNS queries on port 53 from `records` (name, address)
    pub fn dns_server(&mut self, records: &[(&str, Ipv4Addr)]) {
        let records = records.iter().map(|&(n, a)| (n.to_owned(), a)).collect();
        self.bind(dns::PORT, UdpService::Dns(records));
    }

    /// Sends `payload` from local `port` (bound and recorded if it was not) to `to`
    ///
    /// # Panics
    /// If the socket's send buffer is full (the test sends faster than the World runs).
    pub fn udp_send(&mut self, port: u16, to: impl Into<SocketAddr>, payload: &[u8]) {
        let to = to.into();
        if !self.udp.contains_key(&port) {
            self.bind(port, UdpService::Record);
        }
        let h = self.udp[&port].0;
        self.sockets
            .get_mut::<udp::Socket<'_>>(h)
            .send_slice(payload, IpEndpoint::from(to))
            .unwrap_or_else(|e| panic!("{}: udp send from port {port}: {e}", self.config.name));
    }

    /// Sends the DNS query `id` for `name` from local `port` to `server` port 53
    pub fn dns_query(&mut self, port: u16, server: impl Into<IpAddr>, id: u16, name: &str) {
        self.udp_send(
            port,
            SocketAddr::new(server.into(), dns::PORT),
            &dns::query(id, name),
        );
    }

    /// Sends an ICMP (to an IPv4 `dst`) or ICMPv6 echo request with `ident`, `seq` and
    /// `payload` to `dst` (smoltcp ICMP socket)
    ///
    /// # Panics
    /// If the socket's send buffer is full.
    pub fn ping(&mut self, dst: impl Into<IpAddr>, ident: u16, seq: u16, payload: &[u8]) {
        let dst = dst.into();
        let h = *self.icmp.entry(ident).or_insert_with(|| {
            let (rm, rb) = datagram_socket_buffers(icmp::PacketMetadata::EMPTY);
            let (tm, tb) = datagram_socket_buffers(icmp::PacketMetadata::EMPTY);
            let mut s = icmp::Socket::new(
                icmp::PacketBuffer::new(rm, rb),
                icmp::PacketBuffer::new(tm, tb),
            );
            s.bind(icmp::Endpoint::Ident(ident))
                .expect("a specified endpoint");
            self.sockets.add(s)
        });
        let socket = self.sockets.get_mut::<icmp::Socket<'_>>(h);
        let name = &self.config.name;
        match dst {
            IpAddr::V4(_) => {
                let repr = Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no: seq,
                    data: payload,
                };
                let buf = socket
                    .send(repr.buffer_len(), IpAddress::from(dst))
                    .unwrap_or_else(|e| panic!("{name}: ping {dst}: {e}"));
                repr.emit(
                    &mut Icmpv4Packet::new_unchecked(buf),
                    &ChecksumCapabilities::default(),
                );
            }
            IpAddr::V6(to) => {
                let repr = Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no: seq,
                    data: payload,
                };
                let buf = socket
                    .send(repr.buffer_len(), IpAddress::from(dst))
                    .unwrap_or_else(|e| panic!("{name}: ping {dst}: {e}"));
                // smoltcp fills the checksum in when it sends, from the source it chooses
                repr.emit(
                    &Ipv6Addr::UNSPECIFIED,
                    &to,
                    &mut Icmpv6Packet::new_unchecked(buf),
                    &ChecksumCapabilities::ignored(),
                );
            }
        }
    }

    fn tcp_socket(&mut self) -> tcp::Socket<'static> {
        tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        )
    }

    fn add_job(&mut self, handle: SocketHandle, port: u16, transfer: Transfer) {
        let stream = TcpStream {
            port,
            remote: None,
            transfer,
            sent: 0,
            received: 0,
            mismatch_at: None,
        };
        self.tcp.push(TcpJob {
            handle,
            closing: false,
            stream,
        });
    }

    /// Connects from local `port` to `remote` and runs `transfer` once connected
    ///
    /// # Panics
    /// If the port or address is unusable.
    pub fn tcp_connect(&mut self, port: u16, remote: impl Into<SocketAddr>, transfer: Transfer) {
        let remote = remote.into();
        let mut s = self.tcp_socket();
        s.connect(self.iface.context(), IpEndpoint::from(remote), port)
            .unwrap_or_else(|e| panic!("{}: tcp connect to {remote}: {e}", self.config.name));
        let h = self.sockets.add(s);
        self.add_job(h, port, transfer);
    }

    /// Accepts one connection on `port` and runs `transfer` on it
    pub fn tcp_listen(&mut self, port: u16, transfer: Transfer) {
        let mut s = self.tcp_socket();
        s.listen(port).expect("a non-zero port");
        let h = self.sockets.add(s);
        self.add_job(h, port, transfer);
    }

    /// Queues a frame from the segment that arrived at `now` (an ICMPv6 error for the host is
    /// recorded)
    pub(crate) fn deliver(&mut self, frame: Vec<u8>, now: Duration) {
        self.frames_in += 1;
        if let Some(own) = self.config.ipv6
            && let Some(e) = ipv6::error_of(&frame, Mac(self.mac), own.addr, now)
        {
            self.icmp6_errors.push(e);
        }
        self.device.rx.push_back(frame);
    }

    /// When the host next needs a poll (`Duration::ZERO`: at once)
    pub(crate) fn deadline(&mut self, now: Duration) -> Option<Duration> {
        if !self.device.rx.is_empty() {
            return Some(now);
        }
        let at = self.iface.poll_at(smol_time(now), &self.sockets)?;
        Some(Duration::from_micros(at.total_micros().max(0) as u64))
    }

    /// Processes received frames, runs the applications and returns the frames to send
    pub(crate) fn poll(&mut self, now: Duration) -> Vec<Vec<u8>> {
        let t = smol_time(now);
        while self
            .iface
            .poll_ingress_single(t, &mut self.device, &mut self.sockets)
            != PollIngressSingleResult::None
        {
            self.run_apps(now);
        }
        self.run_apps(now);
        for _ in 0..EGRESS_ROUNDS {
            let before = self.device.tx.len();
            self.iface
                .poll_egress(t, &mut self.device, &mut self.sockets);
            if self.device.tx.len() == before {
                break;
            }
            self.run_apps(now);
        }
        std::mem::take(&mut self.device.tx)
    }

    /// Reads every socket, records, answers and pumps the TCP transfers
    fn run_apps(&mut self, now: Duration) {
        let Self {
            sockets,
            udp,
            icmp,
            tcp,
            datagrams,
            echo_replies,
            ..
        } = self;
        for (&port, (h, service)) in udp.iter() {
            let s = sockets.get_mut::<udp::Socket<'_>>(*h);
            while let Ok((data, meta)) = s.recv() {
                let payload = data.to_vec();
                let reply = match service {
                    UdpService::Record => None,
                    UdpService::Echo => Some(payload.clone()),
                    UdpService::Dns(records) => dns::answer(&payload, records),
                };
                if let Some(r) = reply {
                    // an echo that cannot be buffered is lost, as on a real host
                    let _ = s.send_slice(&r, meta.endpoint);
                }
                datagrams.push(Datagram {
                    at: now,
                    from: socket_addr(meta.endpoint),
                    port,
                    payload,
                });
            }
        }
        for h in icmp.values() {
            let s = sockets.get_mut::<icmp::Socket<'_>>(*h);
            while let Ok((data, from)) = s.recv() {
                if let Some((ident, seq, payload)) = echo_reply(data, from.into()) {
                    echo_replies.push(EchoReply {
                        at: now,
                        from: from.into(),
                        ident,
                        seq,
                        payload: payload.to_vec(),
                    });
                }
            }
        }
        for job in tcp.iter_mut() {
            pump(sockets.get_mut::<tcp::Socket<'_>>(job.handle), job);
        }
    }
}

/// The identifier, sequence number and data of an ICMP or ICMPv6 echo reply from `from`
/// (smoltcp checked its checksum on the way in)
fn echo_reply(data: &[u8], from: IpAddr) -> Option<(u16, u16, &[u8])> {
    let ignored = ChecksumCapabilities::ignored();
    match from {
        IpAddr::V4(_) => {
            let p = Icmpv4Packet::new_checked(data).ok()?;
            match Icmpv4Repr::parse(&p, &ignored).ok()? {
                Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                } => Some((ident, seq_no, data)),
                _ => None,
            }
        }
        IpAddr::V6(from) => {
            let p = Icmpv6Packet::new_checked(data).ok()?;
            match Icmpv6Repr::parse(&from, &Ipv6Addr::UNSPECIFIED, &p, &ignored).ok()? {
                Icmpv6Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                } => Some((ident, seq_no, data)),
                _ => None,
            }
        }
    }
}

/// Moves a TCP transfer forward: checks what arrived, sends what fits, closes when all is sent
fn pump(s: &mut tcp::Socket<'_>, job: &mut TcpJob) {
    let st = &mut job.stream;
    if st.remote.is_none() {
        st.remote = s.remote_endpoint().map(socket_addr);
    }
    let t = st.transfer;
    while s.can_recv() {
        let offset = st.received;
        let Ok((n, bad)) = s.recv(|buf| {
            let bad = buf
                .iter()
                .enumerate()
                .find(|&(i, &b)| b != stream_byte(t.expect_seed, offset + i as u64));
            (buf.len(), (buf.len(), bad.map(|(i, _)| i)))
        }) else {
            break;
        };
        if let (None, Some(i)) = (st.mismatch_at, bad) {
            st.mismatch_at = Some(offset + i as u64);
        }
        st.received += n as u64;
        if n == 0 {
            break;
        }
    }
    while s.can_send() && st.sent < t.send_len {
        let sent = st.sent;
        let n = s
            .send(|buf| {
                let n = buf.len().min((t.send_len - sent) as usize);
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = stream_byte(t.send_seed, sent + i as u64);
                }
                (n, n)
            })
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        st.sent += n as u64;
    }
    if st.sent == t.send_len && !job.closing && s.may_send() {
        s.close();
        job.closing = true;
    }
}
