//! `tcp` mode end to end: a client and a server whose tunnel is a byte stream the test carries,
//! cut into reads of every size (parts of packets, several packets at once), with garbage,
//! connection loss and reconnection

mod common;

use common::{device, udp_payload};
use etherparse::PacketBuilder;
use ikago_proto::*;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const LAN_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 11, 2);
const LAN_HOST_MAC: Mac = Mac([2, 0, 0, 0, 11, 2]);
const CLIENT_LAN_MAC: Mac = Mac([2, 0, 0, 0, 11, 1]);
const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 2);
const DST_MAC: Mac = Mac([2, 0, 0, 0, 13, 2]);
const PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 1);
const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 12, 1)), 18081);

fn dev(name: &str, role: DeviceRole, net: u8, last: u8, gw: Option<Ipv4Addr>) -> DeviceConfig {
    DeviceConfig {
        gateway: gw,
        gateway_mac: gw.map(|_| DST_MAC),
        ..device(name, role, net, last)
    }
}

fn client_config() -> ClientConfig {
    let mut c = ClientConfig::new(
        vec![
            dev("lan0", DeviceRole::Listen, 11, 1, None),
            dev("wan0", DeviceRole::Upstream, 12, 2, None),
        ],
        vec!["198.18.11.2".parse().unwrap()],
        SERVER,
    );
    c.transport = Transport::Tcp;
    c.port = 40000;
    // large records in the stream, never IPv4 fragments on the legs
    c.fragment = u16::MAX;
    c
}

fn server_config() -> ServerConfig {
    let mut s = ServerConfig::new(
        vec![
            dev("wan0", DeviceRole::Listen, 12, 1, None),
            dev("dst0", DeviceRole::Upstream, 13, 1, Some(DST)),
        ],
        SERVER.port(),
    );
    s.transport = Transport::Tcp;
    s.fragment = u16::MAX;
    s
}

/// One direction of a connection: bytes written and not yet read
#[derive(Default)]
struct Pipe(VecDeque<u8>);

/// The kernels and the wire between client and server
struct World {
    now: Instant,
    client: Client,
    server: Server,
    /// Whether the server accepts connections
    listening: bool,
    /// Whether connects are lost on the way (neither opened nor refused)
    hang: bool,
    /// Operations the client asked for
    client_ops: Vec<StreamOp>,
    /// The client's connection and the server's id for it, while open
    open: Option<(ConnId, ConnId)>,
    next_server_conn: u64,
    up: Pipe,
    down: Pipe,
    /// Read sizes, used in turn (a read takes what is there up to the size)
    reads: Vec<usize>,
    read_at: usize,
    /// Frames the client wrote to the LAN, the server toward the Internet
    lan: Vec<Vec<u8>>,
    internet: Vec<Vec<u8>>,
    /// Operations the server asked for
    server_ops: Vec<StreamOp>,
    events: Vec<Event>,
    connects: usize,
    buf: Vec<u8>,
}

impl World {
    fn new(reads: Vec<usize>) -> Self {
        Self::with(client_config(), server_config(), reads)
    }

    fn with(client: ClientConfig, server: ServerConfig, reads: Vec<usize>) -> Self {
        let now = Instant::now();
        let mut w = Self {
            now,
            client: Client::new(client, now).unwrap(),
            server: Server::new(server, now).unwrap(),
            listening: true,
            hang: false,
            client_ops: vec![],
            open: None,
            next_server_conn: 100,
            up: Pipe::default(),
            down: Pipe::default(),
            reads,
            read_at: 0,
            lan: vec![],
            internet: vec![],
            server_ops: vec![],
            events: vec![],
            connects: 0,
            buf: vec![0; MAX_FRAME_LEN],
        };
        w.settle();
        w
    }

    fn stream(&mut self, to_server: bool, conn: ConnId, event: StreamInput<'_>) {
        let input = Input::Stream {
            now: self.now,
            conn,
            event,
        };
        if to_server {
            self.server.handle_input(input);
        } else {
            self.client.handle_input(input);
        }
    }

    /// Drains both machines and carries bytes until nothing moves
    fn settle(&mut self) {
        for _ in 0..100_000 {
            let mut moved = self.drain_client();
            moved |= self.drain_server();
            moved |= self.carry();
            if !moved {
                return;
            }
        }
        panic!("no progress");
    }

    fn drain_client(&mut self) -> bool {
        let mut moved = false;
        loop {
            match self.client.poll_output(&mut self.buf) {
                Output::Transmit(t) => {
                    moved = true;
                    assert_eq!(
                        t.device,
                        DeviceId(0),
                        "nothing on the WAN device in tcp mode"
                    );
                    self.lan.push(self.buf[..t.len].to_vec());
                }
                Output::Stream(op) => {
                    moved = true;
                    self.client_ops.push(op);
                    self.client_op(op);
                }
                Output::Event(e) => self.events.push(e),
                Output::Timeout(_) => return moved,
            }
        }
    }

    fn client_op(&mut self, op: StreamOp) {
        match op {
            StreamOp::Connect {
                conn,
                local,
                server,
            } => {
                self.connects += 1;
                assert_eq!(server, SERVER);
                if self.hang {
                } else if self.listening {
                    let theirs = ConnId(self.next_server_conn);
                    self.next_server_conn += 1;
                    self.open = Some((conn, theirs));
                    self.up.0.clear();
                    self.down.0.clear();
                    self.stream(true, theirs, StreamInput::Opened { peer: local });
                    self.stream(false, conn, StreamInput::Opened { peer: server });
                } else {
                    self.stream(false, conn, StreamInput::Closed);
                }
            }
            StreamOp::Write { conn, len } => {
                if self.open.is_some_and(|(c, _)| c == conn) {
                    self.up.0.extend(&self.buf[..len]);
                }
            }
            StreamOp::Close { conn } => {
                if let Some((c, s)) = self.open
                    && c == conn
                {
                    self.open = None;
                    self.stream(true, s, StreamInput::Closed);
                }
            }
        }
    }

    fn drain_server(&mut self) -> bool {
        let mut moved = false;
        loop {
            match self.server.poll_output(&mut self.buf) {
                Output::Transmit(t) => {
                    moved = true;
                    assert_eq!(
                        t.device,
                        DeviceId(1),
                        "nothing on the tunnel device in tcp mode"
                    );
                    self.internet.push(self.buf[..t.len].to_vec());
                }
                Output::Stream(op) => {
                    moved = true;
                    self.server_ops.push(op);
                    match op {
                        StreamOp::Write { conn, len } => {
                            if self.open.is_some_and(|(_, s)| s == conn) {
                                self.down.0.extend(&self.buf[..len]);
                            }
                        }
                        StreamOp::Close { conn } => {
                            if let Some((c, s)) = self.open
                                && s == conn
                            {
                                self.open = None;
                                self.stream(false, c, StreamInput::Closed);
                            }
                        }
                        StreamOp::Connect { .. } => panic!("a server never connects"),
                    }
                }
                Output::Event(e) => self.events.push(e),
                Output::Timeout(_) => return moved,
            }
        }
    }

    /// One read per direction, of the next size
    fn carry(&mut self) -> bool {
        let Some((c, s)) = self.open else {
            return false;
        };
        let mut moved = false;
        for to_server in [true, false] {
            let pipe = if to_server {
                &mut self.up
            } else {
                &mut self.down
            };
            if pipe.0.is_empty() {
                continue;
            }
            let size = self.reads[self.read_at % self.reads.len()];
            self.read_at += 1;
            let n = size.min(pipe.0.len());
            let read: Vec<u8> = pipe.0.drain(..n).collect();
            let conn = if to_server { s } else { c };
            self.stream(to_server, conn, StreamInput::Data(&read));
            moved = true;
        }
        moved
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.client.handle_input(Input::Timeout(self.now));
        self.server.handle_input(Input::Timeout(self.now));
        self.settle();
    }

    /// The server loses the connection (a restart): the client hears it closed
    fn cut(&mut self) {
        let (c, s) = self.open.take().expect("a connection is open");
        self.stream(true, s, StreamInput::Closed);
        self.stream(false, c, StreamInput::Closed);
        self.settle();
    }

    fn udp_from_lan(&mut self, sport: u16, payload: &[u8]) {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(LAN_HOST_MAC.0, CLIENT_LAN_MAC.0)
            .ipv4(LAN_HOST.octets(), DST.octets(), 64)
            .udp(sport, 7)
            .write(&mut f, payload)
            .unwrap();
        self.client.handle_input(Input::Frame {
            now: self.now,
            device: DeviceId(0),
            data: &f,
        });
    }

    /// Echoes every UDP packet the server sent toward the Internet back to its NAT port
    fn echo_internet(&mut self) {
        for out in std::mem::take(&mut self.internet) {
            if out[12..14] == [0x08, 0x06] {
                // the server's ARP upkeep of its gateway
                continue;
            }
            let (src, sport, dst, _, payload) =
                udp_payload(&out).expect("UDP toward the destination");
            assert_eq!((src, dst), (PUBLIC, DST));
            let mut f = Vec::new();
            PacketBuilder::ethernet2(DST_MAC.0, [2, 0, 0, 0, 13, 1])
                .ipv4(DST.octets(), PUBLIC.octets(), 64)
                .udp(7, sport)
                .write(&mut f, &payload)
                .unwrap();
            self.server.handle_input(Input::Frame {
                now: self.now,
                device: DeviceId(1),
                data: &f,
            });
        }
        self.settle();
    }

    /// Sends `sizes` UDP payloads from the LAN host, echoes them, and returns what came back
    fn echo(&mut self, sizes: &[usize]) -> Vec<Vec<u8>> {
        for (i, &size) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..size).map(|j| (i + j) as u8).collect();
            self.udp_from_lan(41000 + i as u16, &payload);
        }
        self.settle();
        self.echo_internet();
        std::mem::take(&mut self.lan)
            .iter()
            .filter_map(|f| udp_payload(f).map(|u| u.4))
            .collect()
    }
}

fn payloads(sizes: &[usize]) -> Vec<Vec<u8>> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| (0..size).map(|j| (i + j) as u8).collect())
        .collect()
}

#[test]
fn packets_cross_whatever_the_reads() {
    let sizes = [0, 1, 20, 1300, 1472, 8000, 30_000, 3];
    // 1-byte reads (every record in pieces), odd sizes (records split anywhere), and 64 KiB
    // reads (many records per read)
    for reads in [vec![1], vec![3, 7, 1000, 2], vec![65_536], vec![19, 20, 21]] {
        let mut w = World::new(reads.clone());
        assert!(w.client.is_connected(), "reads {reads:?}");
        assert!(
            matches!(
                w.events[..],
                [
                    Event::Connecting { retry: 0, .. },
                    Event::ClientConnected { .. },
                    Event::Connected { .. }
                ] | [
                    Event::Connecting { .. },
                    Event::Connected { .. },
                    Event::ClientConnected { .. }
                ]
            ),
            "{:?}",
            w.events
        );
        assert_eq!(w.echo(&sizes), payloads(&sizes), "reads {reads:?}");
        let c = w.client.stats();
        let s = w.server.stats();
        assert_eq!((c.transport, s.transport), (Transport::Tcp, Transport::Tcp));
        assert_eq!(c.inner_tx.packets, sizes.len() as u64);
        assert_eq!(s.inner_rx.packets, sizes.len() as u64);
        assert_eq!(c.drops.total(), 0, "{}", c.drops);
        assert_eq!(s.drops.total(), 0, "{}", s.drops);
        assert_eq!(s.peers.len(), 1);
        assert_eq!(s.peers[0].out.packets, sizes.len() as u64);
        assert_eq!(s.peers[0].r#in.packets, sizes.len() as u64);
    }
}

#[test]
fn packets_wait_for_the_connection() {
    let mut w = World::new(vec![100]);
    w.cut();
    assert!(!w.client.is_connected());
    w.listening = false;
    // sent while there is no connection: they wait, and go once one opens
    for i in 0..3 {
        w.udp_from_lan(42000 + i, b"queued");
    }
    w.settle();
    assert!(w.internet.is_empty());
    w.listening = true;
    w.advance(Duration::from_secs(5));
    assert!(w.client.is_connected());
    assert_eq!(w.internet.len(), 3, "the queued packets went out");
}

#[test]
fn the_client_reconnects_with_backoff() {
    let mut w = World::new(vec![512]);
    assert_eq!(w.connects, 1);
    w.listening = false;
    w.cut();
    assert!(w.events.contains(&Event::PeerLost {
        server: SERVER,
        reason: PeerLostReason::Closed
    }));
    // attempts after 1 s, then 2 s, 4 s, 4 s (syn_rto doubled up to syn_rto_max): 4 by 11 s
    let mut at = Vec::new();
    for step in 1..=110 {
        let before = w.connects;
        w.advance(Duration::from_millis(100));
        if w.connects > before {
            at.push(step * 100);
        }
    }
    assert_eq!(
        at,
        [1000, 3000, 7000, 11_000],
        "attempt times in ms after the cut"
    );
    assert_eq!(
        w.client.stats().reconnects,
        5,
        "the cut and 4 failed attempts"
    );
    // the server is back: the next attempt connects and traffic flows again
    w.listening = true;
    w.advance(Duration::from_secs(4));
    assert!(w.client.is_connected());
    assert_eq!(w.client.stats().handshakes, 2);
    assert_eq!(w.echo(&[100]), payloads(&[100]));
    // and after an open connection the backoff starts again at 1 s
    w.listening = false;
    w.cut();
    let before = w.connects;
    w.advance(Duration::from_millis(1000));
    assert_eq!(w.connects, before + 1);
}

#[test]
fn a_connect_that_hangs_is_given_up() {
    let mut w = World::new(vec![512]);
    w.hang = true;
    w.cut();
    w.advance(Duration::from_secs(1));
    assert_eq!(w.connects, 2, "asked, never answered");
    let hung = ConnId(2);
    w.events.clear();
    w.advance(Duration::from_millis(9_900));
    assert!(w.events.is_empty(), "still waiting: {:?}", w.events);
    w.hang = false;
    // a report about an older connection changes nothing
    w.stream(false, ConnId(1), StreamInput::Closed);
    w.settle();
    assert!(w.events.is_empty());
    w.advance(Duration::from_millis(100));
    assert_eq!(w.client_ops.last(), Some(&StreamOp::Close { conn: hung }));
    assert!(w.events.contains(&Event::PeerLost {
        server: SERVER,
        reason: PeerLostReason::Closed
    }));
    // tried again after the backoff, now answered
    w.advance(Duration::from_secs(2));
    assert!(w.client.is_connected());
    assert_eq!(w.echo(&[33]), payloads(&[33]));
}

#[test]
fn garbage_closes_only_its_connection() {
    let mut w = World::new(vec![700]);
    let intruder = ConnId(7);
    let peer = SocketAddr::from((Ipv4Addr::new(198, 18, 12, 9), 50000));
    for garbage in [
        // a TLS ClientHello's start
        &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..],
        // an IPv4 header whose Total Length is shorter than the header
        &[0x45, 0, 0, 10, 0, 0, 0, 0][..],
        // a header length below 20 bytes
        &[0x41, 0, 0, 40][..],
    ] {
        w.stream(true, intruder, StreamInput::Opened { peer });
        assert_eq!(w.server.stats().peers.len(), 2);
        w.stream(true, intruder, StreamInput::Data(garbage));
        w.settle();
        assert!(w.server_ops.contains(&StreamOp::Close { conn: intruder }));
        w.server_ops.clear();
        assert_eq!(w.server.stats().peers.len(), 1, "the intruder is forgotten");
        assert!(
            w.events
                .contains(&Event::ClientDisconnected { client: peer })
        );
        // the real client goes on
        assert_eq!(w.echo(&[64, 1400]), payloads(&[64, 1400]));
    }
    assert_eq!(w.server.stats().drops.get(DropReason::StreamGarbage), 3);
}

#[test]
fn garbage_from_the_server_makes_the_client_reconnect() {
    let mut w = World::new(vec![64]);
    let (c, _) = w.open.expect("open");
    w.stream(false, c, StreamInput::Data(&[0x60, 0, 0, 0, 0, 0, 0, 0]));
    w.settle();
    assert!(!w.client.is_connected());
    assert_eq!(w.client.stats().drops.get(DropReason::StreamGarbage), 1);
    w.advance(Duration::from_secs(1));
    assert!(w.client.is_connected());
    assert_eq!(w.echo(&[10]), payloads(&[10]));
}

#[test]
fn the_client_limit_closes_extra_connections() {
    let mut s = server_config();
    s.max_clients = 1;
    let now = Instant::now();
    let mut server = Server::new(s, now).unwrap();
    let mut buf = vec![0; MAX_FRAME_LEN];
    let peer = |p| SocketAddr::from((Ipv4Addr::new(198, 18, 12, 2), p));
    for (conn, port) in [(1, 50000), (2, 50001)] {
        server.handle_input(Input::Stream {
            now,
            conn: ConnId(conn),
            event: StreamInput::Opened { peer: peer(port) },
        });
    }
    let mut ops = vec![];
    loop {
        match server.poll_output(&mut buf) {
            Output::Stream(op) => ops.push(op),
            Output::Timeout(_) => break,
            _ => {}
        }
    }
    assert_eq!(ops, [StreamOp::Close { conn: ConnId(2) }]);
    assert_eq!(server.stats().drops.get(DropReason::TooManyClients), 1);
}

#[test]
fn tcp_mode_refuses_what_it_cannot_carry() {
    let now = Instant::now();
    let mut c = client_config();
    c.method = Method::Aes256Gcm;
    c.password = "x".into();
    assert_eq!(
        Client::new(c, now).err(),
        Some(ConfigError::StreamNeedsPlain)
    );
    let mut s = server_config();
    s.method = Method::ChaCha20Poly1305;
    s.password = "x".into();
    assert_eq!(
        Server::new(s, now).err(),
        Some(ConfigError::StreamNeedsPlain)
    );
    let mut c = client_config();
    c.kcp = Some(KcpTuning::default());
    assert!(matches!(
        Client::new(c, now).err(),
        Some(ConfigError::StreamExcludes(_))
    ));
    let mut c = client_config();
    c.fallback = vec![SocketAddr::from((Ipv4Addr::new(198, 18, 12, 3), 18081))];
    assert!(matches!(
        Client::new(c, now).err(),
        Some(ConfigError::StreamExcludes(_))
    ));
}

#[test]
fn faketcp_machines_ignore_stream_input() {
    let now = Instant::now();
    let mut c = client_config();
    c.transport = Transport::FakeTcp;
    let mut client = Client::new(c, now).unwrap();
    client.handle_input(Input::Stream {
        now,
        conn: ConnId(1),
        event: StreamInput::Data(b"\x45\0\0\x14"),
    });
    assert_eq!(client.stats().drops.get(DropReason::NotForUs), 1);
}

/// The shared `ikago2` settings: a PSK given (none derived per test) and a wall clock
fn ikago2(c: &mut Ikago2Config) {
    c.psk = Some(ikago2::Psk::from_bytes([7; 32]));
    c.unix_time = Duration::from_secs(1_800_000_000);
}

/// A client speaking `ikago2` with `method`
fn ikago2_client(method: Method) -> ClientConfig {
    let mut c = client_config();
    c.protocol = Protocol::Ikago2;
    c.password = "x".into();
    c.method = method;
    ikago2(&mut c.ikago2);
    c
}

/// A server speaking `protocol` (`None`: both wires, told per connection)
fn ikago2_server(protocol: Option<Protocol>, method: Method) -> ServerConfig {
    let mut s = server_config();
    s.protocol = protocol;
    s.password = "x".into();
    s.method = method;
    ikago2(&mut s.ikago2);
    s
}

#[test]
fn ikago2_records_cross_whatever_the_reads() {
    let sizes = [0, 1, 20, 1300, 1472, 8000, 30_000, 3];
    for (protocol, method) in [
        (Some(Protocol::Ikago2), Method::Aes256Gcm),
        (Some(Protocol::Ikago2), Method::ChaCha20Poly1305),
        (None, Method::Plain),
    ] {
        for reads in [vec![1], vec![3, 7, 1000, 2], vec![65_536], vec![19, 20, 21]] {
            let what = format!("{protocol:?} {method:?} reads {reads:?}");
            let mut w = World::with(
                ikago2_client(method),
                ikago2_server(protocol, method),
                reads,
            );
            assert!(w.client.is_connected(), "{what}");
            assert!(
                w.events
                    .iter()
                    .any(|e| matches!(e, Event::Connected { .. })),
                "{what}"
            );
            assert_eq!(w.echo(&sizes), payloads(&sizes), "{what}");
            let c = w.client.stats();
            let s = w.server.stats();
            assert_eq!(c.inner_tx.packets, sizes.len() as u64, "{what}");
            assert_eq!(s.inner_rx.packets, sizes.len() as u64, "{what}");
            assert_eq!(c.drops.total(), 0, "{what}: {}", c.drops);
            assert_eq!(s.drops.total(), 0, "{what}: {}", s.drops);
            assert_eq!(s.peers.len(), 1, "{what}");
            assert_eq!(s.peers[0].protocol, Some(Protocol::Ikago2), "{what}");
            // sealed: the stream carries more than the packets
            assert!(c.tunnel_tx.bytes > c.inner_tx.bytes, "{what}");
        }
    }
}

#[test]
fn a_server_of_both_wires_takes_the_compatible_stream_too() {
    let mut c = client_config();
    c.password = "x".into();
    c.protocol = Protocol::Ikago;
    let mut w = World::with(c, ikago2_server(None, Method::Plain), vec![5, 900]);
    assert!(w.client.is_connected());
    assert_eq!(w.echo(&[1, 1400]), payloads(&[1, 1400]));
    let s = w.server.stats();
    assert_eq!(s.peers[0].protocol, Some(Protocol::Ikago));
    assert_eq!(s.drops.total(), 0, "{}", s.drops);
}

#[test]
fn an_ikago2_record_replayed_in_the_stream_is_dropped() {
    let mut w = World::with(
        ikago2_client(Method::Aes256Gcm),
        ikago2_server(Some(Protocol::Ikago2), Method::Aes256Gcm),
        vec![4096],
    );
    let (_, s) = w.open.expect("open");
    w.udp_from_lan(43000, b"once");
    w.drain_client();
    let sent: Vec<u8> = w.up.0.iter().copied().collect();
    assert!(!sent.is_empty());
    w.settle();
    assert_eq!(w.internet.len(), 1);
    // the same record again, as a whole and then in pieces
    w.stream(true, s, StreamInput::Data(&sent));
    for piece in sent.chunks(5) {
        w.stream(true, s, StreamInput::Data(piece));
    }
    w.settle();
    assert_eq!(w.internet.len(), 1, "a replayed record goes nowhere");
    assert_eq!(w.server.stats().drops.get(DropReason::Replayed), 2);
    // the connection lives on
    assert_eq!(w.open.map(|(_, s)| s), Some(s));
    w.internet.clear();
    assert_eq!(w.echo(&[77]), payloads(&[77]));
}

#[test]
fn a_forged_or_garbage_stream_closes_only_its_connection() {
    for protocol in [Some(Protocol::Ikago2), None] {
        let mut w = World::with(
            ikago2_client(Method::Aes256Gcm),
            ikago2_server(protocol, Method::Plain),
            vec![700],
        );
        let intruder = ConnId(7);
        let peer = SocketAddr::from((Ipv4Addr::new(198, 18, 12, 9), 50000));
        // an initiation's shape with another key's bytes
        let mut forged = vec![0x5a; ikago2::handshake::INITIATION_LEN];
        let len = (forged.len() - 2) as u16;
        forged[..2].copy_from_slice(&len.to_be_bytes());
        forged[2] = 0x01;
        // a transport record before any handshake
        let mut early = vec![0x33; 64];
        early[..2].copy_from_slice(&62u16.to_be_bytes());
        early[2] = 0x03;
        let mut cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
            ("forged initiation", forged, DropReason::Unauthenticated),
            ("transport first", early, DropReason::Unauthenticated),
            (
                "unknown type",
                vec![0, 40, 9, 0, 0],
                DropReason::StreamGarbage,
            ),
            (
                "initiation of the wrong length",
                vec![0, 40, 1, 0],
                DropReason::StreamGarbage,
            ),
        ];
        if protocol.is_some() {
            // the original's stream to an ikago2-only server
            cases.push((
                "an IPv4 packet",
                vec![0x45, 0, 0, 20, 0, 0, 0, 0],
                DropReason::StreamGarbage,
            ));
        }
        for (what, bytes, reason) in cases {
            let before = w.server.stats().drops.get(reason);
            w.stream(true, intruder, StreamInput::Opened { peer });
            w.server_ops.clear();
            w.stream(true, intruder, StreamInput::Data(&bytes));
            w.settle();
            assert_eq!(
                w.server_ops,
                [StreamOp::Close { conn: intruder }],
                "{protocol:?} {what}: closed, and nothing written to it"
            );
            assert_eq!(w.server.stats().drops.get(reason), before + 1, "{what}");
            assert_eq!(w.server.stats().peers.len(), 1, "{what}: forgotten");
            // the real client goes on
            assert_eq!(w.echo(&[64, 1400]), payloads(&[64, 1400]), "{what}");
        }
    }
}

#[test]
fn an_ikago2_client_pings_and_gives_up_a_silent_server() {
    let mut w = World::with(
        ikago2_client(Method::Aes256Gcm),
        ikago2_server(Some(Protocol::Ikago2), Method::Aes256Gcm),
        vec![100],
    );
    let keepalive = TcpTuning::default().keepalive;
    let tx = w.client.stats().tunnel_tx.packets;
    w.advance(keepalive);
    assert!(w.client.is_connected());
    assert_eq!(w.client.stats().tunnel_tx.packets, tx + 1, "a ping");
    assert_eq!(
        w.server.stats().tunnel_tx.packets,
        2,
        "the response and a pong"
    );
    assert!(w.client.stats().rtt.is_some());
    assert_eq!(w.client.stats().drops.total(), 0);
    // a server that no longer answers: the client gives the connection up and connects again
    let (c, _) = w.open.expect("open");
    w.listening = false;
    let peer_timeout = TcpTuning::default().peer_timeout;
    for _ in 0..(peer_timeout.as_secs() + 1) {
        // the server's answers are lost on the way
        w.down.0.clear();
        w.now += Duration::from_secs(1);
        w.client.handle_input(Input::Timeout(w.now));
        w.server.handle_input(Input::Timeout(w.now));
        w.drain_client();
        w.drain_server();
        w.down.0.clear();
        w.carry();
    }
    assert!(w.client_ops.contains(&StreamOp::Close { conn: c }));
    assert!(!w.client.is_connected());
    w.listening = true;
    w.advance(Duration::from_secs(60));
    assert!(w.client.is_connected());
    assert_eq!(w.echo(&[9]), payloads(&[9]));
}
