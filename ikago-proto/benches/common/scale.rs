//! The server-scale case of the path benchmark: one server with many connected clients, each
//! with many UDP flows through the NAT, fed pre-generated tunnel frames and Internet replies

use etherparse::PacketBuilder;
use ikago_proto::wire::{ethernet, ipv4, tcp};
use ikago_proto::*;
use std::collections::HashMap;
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

/// UDP payload of every packet of the case (small, so that table work is not hidden by bytes)
const PAYLOAD: usize = 64;
/// Distinct input frames every case feeds in turn, at least: as many as a capture ring's worth,
/// so that reading its input costs every case alike (a live ring's frames are never all in
/// cache) and the cases differ only by the server's own tables
const INPUT_FRAMES: usize = 50_000;
/// The server's tunnel address and port
const SERVER: ([u8; 4], u16) = ([198, 18, 12, 1], 18081);
/// Every client's FakeTCP port (so that its shard is known before it connects)
const CLIENT_PORT: u16 = 40000;
/// The destination every flow talks to, beyond the server's upstream device
const REMOTE: [u8; 4] = [198, 18, 13, 2];
/// The server's public (NAT) address
const PUBLIC: [u8; 4] = [198, 18, 13, 1];
/// MACs of the server's devices and of the remote
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 12, 1];
const PUBLIC_MAC: [u8; 6] = [2, 0, 0, 0, 13, 1];
const REMOTE_MAC: [u8; 6] = [2, 0, 0, 0, 13, 2];

/// A server serving `clients` clients with `flows` UDP flows each, and what it is fed
///
/// Aligned to two cache lines, so that engines side by side in a `Vec`, each on its own thread,
/// never write to one line
#[repr(align(128))]
pub(crate) struct Scaled {
    /// The server, every client connected and every flow mapped
    pub(crate) server: Server,
    /// Tunnel frames from the clients, one per flow, interleaved across clients
    pub(crate) requests: Vec<Vec<u8>>,
    /// Internet replies to each request's public port, in the same order
    pub(crate) replies: Vec<Vec<u8>>,
    /// The client index of each request and reply
    owner: Vec<usize>,
    /// Per client: its last tunnel frame, whose ACK field [`Scaled::acknowledge`] rewrites
    last: Vec<Vec<u8>>,
    /// Client index by tunnel address
    by_addr: HashMap<Ipv4Addr, usize>,
    /// The instant every input carries
    pub(crate) now: Instant,
    /// Output buffer
    buf: Vec<u8>,
    /// Requests and replies fed by [`Scaled::request`] and [`Scaled::reply`] (the packets an
    /// instruction count under callgrind is divided by)
    pub(crate) fed: u64,
}

/// A device of the case's machines
pub(crate) fn device(
    name: &str,
    role: DeviceRole,
    mac: [u8; 6],
    addr: [u8; 4],
    prefix_len: u8,
    gw: Option<([u8; 4], [u8; 6])>,
) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        role,
        link: LinkType::Ethernet,
        mac: Mac(mac),
        addr: Some(Ipv4Addr::from(addr)),
        prefix_len,
        gateway: gw.map(|g| Ipv4Addr::from(g.0)),
        gateway_mac: gw.map(|g| Mac(g.1)),
        ipv6: None,
    }
}

/// The tunnel address of client `i` (198.18.16.1 on)
fn client_addr(i: usize) -> [u8; 4] {
    [198, 18, 16 + (i / 250) as u8, 1 + (i % 250) as u8]
}

/// The configuration of the case's server: engine `shard`, serving `clients` clients at most
pub(crate) fn server_config(clients: usize, shard: Shard) -> ServerConfig {
    let mut s = ServerConfig::new(
        vec![
            device("wan0", DeviceRole::Listen, SERVER_MAC, SERVER.0, 24, None),
            device(
                "dst0",
                DeviceRole::Upstream,
                PUBLIC_MAC,
                PUBLIC,
                24,
                Some((REMOTE, REMOTE_MAC)),
            ),
        ],
        SERVER.1,
    );
    s.max_clients = clients.max(1);
    s.nat.udp_ports = 1024..=65535;
    s.shard = shard;
    s
}

/// The tunnel address of client `i`
pub(crate) fn client_peer(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(client_addr(i)), CLIENT_PORT))
}

/// Runs `out` until it asks to be called back, handing each frame to `f`
fn drain(
    out: &mut dyn FnMut(&mut [u8]) -> Output,
    buf: &mut [u8],
    mut f: impl FnMut(DeviceId, &[u8]),
) {
    loop {
        match out(buf) {
            Output::Transmit(t) => f(t.device, &buf[..t.len]),
            Output::Stream(_) | Output::Event(_) => {}
            Output::Timeout(_) => return,
        }
    }
}

/// A connected client `i`, its frames to the server, and the server's answers handed back
fn connect(server: &mut Server, i: usize, now: Instant, buf: &mut [u8]) -> Client {
    let mut c = ClientConfig::new(
        vec![
            device(
                "lan0",
                DeviceRole::Listen,
                [2, 0, 0, 1, 0, 1],
                [198, 18, 11, 1],
                24,
                None,
            ),
            device(
                "wan0",
                DeviceRole::Upstream,
                [2, 0, 0, 2, (i >> 8) as u8, i as u8],
                client_addr(i),
                15,
                Some((SERVER.0, SERVER_MAC)),
            ),
        ],
        vec!["198.18.11.0/24".parse().expect("valid")],
        SocketAddr::from((Ipv4Addr::from(SERVER.0), SERVER.1)),
    );
    c.rng_seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    c.port = CLIENT_PORT;
    let mut client = Client::new(c, now).expect("valid client");
    for _ in 0..3 {
        let mut to_server = Vec::new();
        drain(&mut |b| client.poll_output(b), buf, |_, f| {
            to_server.push(f.to_vec())
        });
        let mut to_client = Vec::new();
        for f in &to_server {
            server.handle_input(Input::Frame {
                now,
                device: DeviceId(0),
                data: f,
            });
            drain(&mut |b| server.poll_output(b), buf, |d, f| {
                if d == DeviceId(0) {
                    to_client.push(f.to_vec());
                }
            });
        }
        for f in &to_client {
            client.handle_input(Input::Frame {
                now,
                device: DeviceId(1),
                data: f,
            });
        }
    }
    assert!(client.is_connected(), "client {i} connects");
    client
}

/// The tunnel frame client `client` sends for flow `flow` (UDP from 198.18.11.2:40000+flow)
fn request(client: &mut Client, flow: usize, now: Instant, buf: &mut [u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 1, 0, 2], [2, 0, 0, 1, 0, 1])
        .ipv4([198, 18, 11, 2], REMOTE, 64)
        .udp(40000 + flow as u16, 7)
        .write(&mut frame, &[0x5a; PAYLOAD])
        .expect("writes to a Vec");
    client.handle_input(Input::Frame {
        now,
        device: DeviceId(0),
        data: &frame,
    });
    let mut out = Vec::new();
    drain(&mut |b| client.poll_output(b), buf, |d, f| {
        if d == DeviceId(1) {
            out.push(f.to_vec());
        }
    });
    assert_eq!(out.len(), 1, "one tunnel frame per request");
    out.remove(0)
}

/// The Internet's reply to the translated packet `up` (from the remote to the public port)
fn reply(up: &[u8]) -> Vec<u8> {
    let p = ipv4::Packet::parse(&up[ethernet::HEADER_LEN..]).expect("the server sends IPv4");
    let t = p.payload();
    let public = u16::from_be_bytes([t[0], t[1]]);
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(REMOTE_MAC, PUBLIC_MAC)
        .ipv4(REMOTE, p.src().octets(), 64)
        .udp(7, public)
        .write(&mut frame, &[0xa5; PAYLOAD])
        .expect("writes to a Vec");
    frame
}

impl Scaled {
    /// Clients `ids` of a server configured by `config`, with `flows` mapped UDP flows each
    pub(crate) fn new(config: ServerConfig, ids: &[usize], flows: usize) -> Self {
        let clients = ids.len();
        let now = Instant::now();
        let mut server = Server::new(config, now).expect("valid server");
        let mut buf = vec![0u8; MAX_FRAME_LEN];
        let mut per_client = Vec::with_capacity(clients);
        for &i in ids {
            let mut client = connect(&mut server, i, now, &mut buf);
            let frames: Vec<Vec<u8>> = (0..flows)
                .map(|f| request(&mut client, f, now, &mut buf))
                .collect();
            per_client.push(frames);
        }
        let mut requests = Vec::with_capacity(clients * flows);
        let mut owner = Vec::with_capacity(clients * flows);
        for f in 0..flows {
            for (c, frames) in per_client.iter().enumerate() {
                requests.push(frames[f].clone());
                owner.push(c);
            }
        }
        let mut replies = Vec::with_capacity(requests.len());
        for r in &requests {
            server.handle_input(Input::Frame {
                now,
                device: DeviceId(0),
                data: r,
            });
            let mut up = Vec::new();
            drain(&mut |b| server.poll_output(b), &mut buf, |d, f| {
                if d == DeviceId(1) {
                    up.push(reply(f));
                }
            });
            assert_eq!(up.len(), 1, "the server forwards each request");
            replies.extend(up);
        }
        // copies, each its own buffer, of the frames of a case with fewer
        let distinct = requests.len();
        for k in distinct..INPUT_FRAMES {
            requests.push(requests[k % distinct].clone());
            replies.push(replies[k % distinct].clone());
            owner.push(owner[k % distinct]);
        }
        let last = per_client.iter().map(|f| f[flows - 1].clone()).collect();
        let by_addr = ids
            .iter()
            .enumerate()
            .map(|(c, &i)| (Ipv4Addr::from(client_addr(i)), c))
            .collect();
        let mut s = Self {
            server,
            requests,
            replies,
            owner,
            last,
            by_addr,
            now,
            buf,
            fed: 0,
        };
        s.acknowledge();
        assert_eq!(s.server.stats().nat_mappings, clients * flows);
        s
    }

    /// Feeds request `i` to the server and takes what it sends
    #[inline(never)]
    pub(crate) fn request(&mut self, i: usize) {
        self.fed += 1;
        let data = &self.requests[i % self.requests.len()];
        self.server.handle_input(Input::Frame {
            now: self.now,
            device: DeviceId(0),
            data,
        });
        while let Output::Transmit(t) = self.server.poll_output(&mut self.buf) {
            black_box(&self.buf[..t.len]);
        }
    }

    /// Feeds reply `i` to the server and takes what it sends
    #[inline(never)]
    pub(crate) fn reply(&mut self, i: usize) {
        self.fed += 1;
        let data = &self.replies[i % self.replies.len()];
        self.server.handle_input(Input::Frame {
            now: self.now,
            device: DeviceId(1),
            data,
        });
        while let Output::Transmit(t) = self.server.poll_output(&mut self.buf) {
            black_box(&self.buf[..t.len]);
        }
    }

    /// Acknowledges to the server everything it sent to each client (as the clients would), so
    /// that replies never wait for a client's window: one more reply per client, untimed, shows
    /// the server's next sequence number, and the client's last frame carries it back
    pub(crate) fn acknowledge(&mut self) {
        let mut first_reply = vec![usize::MAX; self.last.len()];
        for (i, &c) in self.owner.iter().enumerate().rev() {
            first_reply[c] = i;
        }
        let mut next = vec![None; self.last.len()];
        for &i in &first_reply {
            let data = &self.replies[i];
            self.server.handle_input(Input::Frame {
                now: self.now,
                device: DeviceId(1),
                data,
            });
            let by_addr = &self.by_addr;
            drain(
                &mut |b| self.server.poll_output(b),
                &mut self.buf,
                |d, f| {
                    let Ok(p) = ipv4::Packet::parse(&f[ethernet::HEADER_LEN..]) else {
                        return;
                    };
                    let Some(seg) = tcp::Segment::parse(p.payload(), p.src(), p.dst()) else {
                        return;
                    };
                    if d == DeviceId(0)
                        && !seg.payload().is_empty()
                        && let Some(&c) = by_addr.get(&p.dst())
                    {
                        next[c] = Some(seg.seq().wrapping_add(seg.payload().len() as u32));
                    }
                },
            );
        }
        for (c, ack) in next.into_iter().enumerate() {
            let Some(ack) = ack else { continue };
            let frame = &mut self.last[c];
            let p = ipv4::Packet::parse(&frame[ethernet::HEADER_LEN..]).expect("a tunnel frame");
            let (src, dst, hl) = (p.src(), p.dst(), p.header_len());
            let seg = &mut frame[ethernet::HEADER_LEN + hl..];
            seg[8..12].copy_from_slice(&ack.to_be_bytes());
            tcp::fill_checksum(seg, src, dst);
            let data = &self.last[c];
            self.server.handle_input(Input::Frame {
                now: self.now,
                device: DeviceId(0),
                data,
            });
            drain(
                &mut |b| self.server.poll_output(b),
                &mut self.buf,
                |_, _| {},
            );
        }
    }

    /// Packets fed so far that the server dropped
    pub(crate) fn drops(&self) -> u64 {
        self.server.stats().drops.total()
    }
}
