//! `tcp` mode captures: the tunnel's kernel TCP connections reassembled into the byte streams a
//! runner would have read
//!
//! In `tcp` mode the machine never sees tunnel frames: its runner reads the connection and hands
//! it the bytes. So a capture of the tunnel leg (`tcpdump` or `dumpcap` on the WAN device) is
//! turned into what that runner would have reported, for the peer-to-machine direction of every
//! connection of the tunnel port: opened (the client: the server's SYN+ACK; the server: the
//! client's ACK that completes the handshake), the payload bytes in sequence order (duplicates and
//! retransmitted overlaps cut, segments after a gap held until the gap is filled), and closed (a
//! FIN or RST from the peer). Connections are numbered in the order their SYN appears; the
//! replay maps the k-th to the k-th connection our client asked for, or gives the server's
//! k-th the id k + 1.

use crate::packet::{be16, be32};
use ikago_proto::wire::{ethernet, ipv4, proto, tcp};
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// Which end of the tunnel the capture's machine is
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client: connections to `server`
    Client {
        /// The server's tunnel address
        server: SocketAddr,
    },
    /// The server: connections to `port` on one of its addresses
    Server {
        /// The tunnel port
        port: u16,
    },
}

/// What a runner reports about connection number `index`
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Opened, with the peer's address
    Opened(SocketAddrV4),
    /// Bytes read
    Data(Vec<u8>),
    /// Closed by the peer
    Closed,
}

/// One report at `time` about the `index`-th connection of the capture
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// When the segment that caused it was captured
    pub time: Duration,
    /// The connection's number, from 0, in the order of the SYNs
    pub index: usize,
    /// What happened
    pub kind: Kind,
}

/// One connection's peer-to-machine direction
#[derive(Debug)]
struct Conn {
    index: usize,
    /// The next sequence number expected from the peer, once its SYN was seen
    next: Option<u32>,
    /// Segments after a gap, by sequence number
    held: BTreeMap<u32, Vec<u8>>,
    opened: bool,
    closed: bool,
}

/// The TCP segment of a frame: source and destination, flags, sequence number, payload
struct Segment<'a> {
    src: SocketAddrV4,
    dst: SocketAddrV4,
    flags: u8,
    seq: u32,
    payload: &'a [u8],
}

fn segment(frame: &[u8]) -> Option<Segment<'_>> {
    let eth = ethernet::parse(frame)?;
    if eth.ethertype != ethernet::ETHERTYPE_IPV4 {
        return None;
    }
    let ip = ipv4::Packet::parse(eth.payload).ok()?;
    if ip.protocol() != proto::TCP || ip.is_fragment() {
        return None;
    }
    let t = ip.payload();
    let offset = usize::from(*t.get(12)? >> 4) * 4;
    if offset < 20 || t.len() < offset {
        return None;
    }
    Some(Segment {
        src: SocketAddrV4::new(ip.src(), be16(t, 0)),
        dst: SocketAddrV4::new(ip.dst(), be16(t, 2)),
        flags: t[13],
        seq: be32(t, 4),
        payload: &t[offset..],
    })
}

/// Reassembles the tunnel connections of `frames` (time, Ethernet frame) captured on the
/// machine's tunnel device, whose addresses are `locals`; other frames are ignored
pub fn reassemble<'a>(
    frames: impl IntoIterator<Item = (Duration, &'a [u8])>,
    end: End,
    locals: &[Ipv4Addr],
) -> Vec<Report> {
    let mut conns: HashMap<(SocketAddrV4, SocketAddrV4), Conn> = HashMap::new();
    let mut reports = Vec::new();
    let mut count = 0;
    for (time, frame) in frames {
        let Some(s) = segment(frame) else { continue };
        // (peer, local) and whether the peer sent it
        let (key, from_peer) = match end {
            End::Client { server }
                if SocketAddr::V4(s.src) == server && locals.contains(s.dst.ip()) =>
            {
                ((s.src, s.dst), true)
            }
            End::Client { server }
                if SocketAddr::V4(s.dst) == server && locals.contains(s.src.ip()) =>
            {
                ((s.dst, s.src), false)
            }
            End::Server { port } if s.dst.port() == port && locals.contains(s.dst.ip()) => {
                ((s.src, s.dst), true)
            }
            End::Server { port } if s.src.port() == port && locals.contains(s.src.ip()) => {
                ((s.dst, s.src), false)
            }
            _ => continue,
        };
        let syn = s.flags & tcp::SYN != 0;
        let opening_syn = syn && s.flags & tcp::ACK == 0;
        if opening_syn && conns.get(&key).is_none_or(|c| c.closed || c.opened) {
            conns.insert(
                key,
                Conn {
                    index: count,
                    next: None,
                    held: BTreeMap::new(),
                    opened: false,
                    closed: false,
                },
            );
            count += 1;
        }
        let Some(c) = conns.get_mut(&key) else {
            continue;
        };
        if !from_peer || c.closed {
            continue;
        }
        let mut report = |kind| {
            reports.push(Report {
                time,
                index: c.index,
                kind,
            })
        };
        if syn {
            c.next = Some(s.seq.wrapping_add(1));
            if matches!(end, End::Client { .. }) && s.flags & tcp::ACK != 0 && !c.opened {
                c.opened = true;
                report(Kind::Opened(key.0));
            }
            continue;
        }
        if !c.opened && matches!(end, End::Server { .. }) && s.flags & tcp::ACK != 0 {
            c.opened = true;
            report(Kind::Opened(key.0));
        }
        let Some(next) = c.next else { continue };
        let mut data = Vec::new();
        take(&mut data, next, s.seq, s.payload, &mut c.next);
        while let Some((&seq, _)) = c.held.first_key_value() {
            let expected = c.next.unwrap_or(next);
            if (seq.wrapping_sub(expected) as i32) > 0 {
                break;
            }
            let held = c.held.remove(&seq).unwrap_or_default();
            take(&mut data, expected, seq, &held, &mut c.next);
        }
        let ahead = s.seq.wrapping_sub(next) as i32;
        if ahead > 0 && !s.payload.is_empty() {
            c.held.insert(s.seq, s.payload.to_vec());
        }
        if !data.is_empty() {
            report(Kind::Data(data));
        }
        if s.flags & (tcp::FIN | tcp::RST) != 0 {
            c.closed = true;
            report(Kind::Closed);
        }
    }
    reports
}

/// Appends the part of `payload` (at `seq`) that starts at or before `expected` and goes past it
fn take(data: &mut Vec<u8>, expected: u32, seq: u32, payload: &[u8], next: &mut Option<u32>) {
    let behind = expected.wrapping_sub(seq) as i32;
    if behind < 0 {
        return;
    }
    let skip = behind as usize;
    if skip < payload.len() {
        data.extend_from_slice(&payload[skip..]);
        *next = Some(expected.wrapping_add((payload.len() - skip) as u32));
    }
}
