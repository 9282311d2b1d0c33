//! Simulated hosts: real IP stacks (smoltcp) on a virtual clock, with small applications
//!
//! A host has one Ethernet device on one segment. Tests act on it between steps of the World
//! (send a datagram, a DNS query or a ping, start a TCP transfer, run an echo or name service)
//! and read back what it received: UDP datagrams with their exact payloads, ICMP echo replies and
//! TCP streams verified byte by byte.

use crate::addr::{self, CLIENT_LAN, PREFIX_LEN};
use crate::dns;
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, IpEndpoint,
};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
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
    /// Its address
    pub addr: Ipv4Addr,
    /// Prefix length of its subnet
    pub prefix_len: u8,
    /// Its default gateway, if any
    pub gateway: Option<Ipv4Addr>,
    /// Its IP MTU (larger datagrams are fragmented)
    pub mtu: usize,
}

impl HostConfig {
    /// A LAN host at `addr` whose gateway is the client
    pub fn lan(name: &str, addr: Ipv4Addr) -> Self {
        Self {
            name: name.to_owned(),
            addr,
            prefix_len: PREFIX_LEN,
            gateway: Some(CLIENT_LAN),
            mtu: 1500,
        }
    }

    /// An Internet host at `addr`, on-link with the server's public address (no gateway)
    pub fn internet(name: &str, addr: Ipv4Addr) -> Self {
        Self {
            name: name.to_owned(),
            addr,
            prefix_len: PREFIX_LEN,
            gateway: None,
            mtu: 1500,
        }
    }
}

/// A UDP datagram a host received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Virtual time of arrival
    pub at: Duration,
    /// Its source
    pub from: SocketAddrV4,
    /// The local port it arrived on
    pub port: u16,
    /// Its payload
    pub payload: Vec<u8>,
}

/// An ICMP echo reply a host received
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    /// Virtual time of arrival
    pub at: Duration,
    /// Who answered
    pub from: Ipv4Addr,
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
    pub remote: Option<SocketAddrV4>,
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

/// An IPv4 endpoint of smoltcp as a socket address (hosts are IPv4 only)
fn v4(ep: IpEndpoint) -> SocketAddrV4 {
    match IpAddr::from(ep.addr) {
        IpAddr::V4(a) => SocketAddrV4::new(a, ep.port),
        IpAddr::V6(a) => unreachable!("IPv4-only host received from {a}"),
    }
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
    pub(crate) fn new(config: HostConfig, tag: u8, seed: u64, now: Duration) -> Self {
        let mac = addr::mac(tag, config.addr);
        let mut device = SimDevice {
            rx: VecDeque::new(),
            tx: Vec::new(),
            mtu: config.mtu,
        };
        let mut c = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        c.random_seed = seed;
        let mut iface = Interface::new(c, &mut device, smol_time(now));
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::from(config.addr), config.prefix_len))
                .expect("one address fits");
        });
        if let Some(gw) = config.gateway {
            iface
                .routes_mut()
                .add_default_ipv4_route(gw)
                .expect("one route fits");
        }
        Self {
            config,
            mac,
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

    /// Every ICMP echo reply received, in order
    pub fn echo_replies(&self) -> &[EchoReply] {
        &self.echo_replies
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
    pub fn udp_send(&mut self, port: u16, to: SocketAddrV4, payload: &[u8]) {
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
    pub fn dns_query(&mut self, port: u16, server: Ipv4Addr, id: u16, name: &str) {
        self.udp_send(
            port,
            SocketAddrV4::new(server, dns::PORT),
            &dns::query(id, name),
        );
    }

    /// Sends an ICMP echo request with `ident`, `seq` and `payload` to `dst` (smoltcp ICMP socket)
    ///
    /// # Panics
    /// If the socket's send buffer is full.
    pub fn ping(&mut self, dst: Ipv4Addr, ident: u16, seq: u16, payload: &[u8]) {
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
        let repr = Icmpv4Repr::EchoRequest {
            ident,
            seq_no: seq,
            data: payload,
        };
        let socket = self.sockets.get_mut::<icmp::Socket<'_>>(h);
        let buf = socket
            .send(repr.buffer_len(), IpAddress::from(dst))
            .unwrap_or_else(|e| panic!("{}: ping {dst}: {e}", self.config.name));
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(buf),
            &phy::ChecksumCapabilities::default(),
        );
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
    pub fn tcp_connect(&mut self, port: u16, remote: SocketAddrV4, transfer: Transfer) {
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

    /// Queues a frame from the segment
    pub(crate) fn deliver(&mut self, frame: Vec<u8>) {
        self.frames_in += 1;
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
                    from: v4(meta.endpoint),
                    port,
                    payload,
                });
            }
        }
        for h in icmp.values() {
            let s = sockets.get_mut::<icmp::Socket<'_>>(*h);
            while let Ok((data, from)) = s.recv() {
                let Ok(p) = Icmpv4Packet::new_checked(data) else {
                    continue;
                };
                if let Ok(Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                }) = Icmpv4Repr::parse(&p, &phy::ChecksumCapabilities::default())
                {
                    let from = v4(IpEndpoint::new(from, 0));
                    echo_replies.push(EchoReply {
                        at: now,
                        from: *from.ip(),
                        ident,
                        seq: seq_no,
                        payload: data.to_vec(),
                    });
                }
            }
        }
        for job in tcp.iter_mut() {
            pump(sockets.get_mut::<tcp::Socket<'_>>(job.handle), job);
        }
    }
}

/// Moves a TCP transfer forward: checks what arrived, sends what fits, closes when all is sent
fn pump(s: &mut tcp::Socket<'_>, job: &mut TcpJob) {
    let st = &mut job.stream;
    if st.remote.is_none() {
        st.remote = s.remote_endpoint().map(v4);
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
