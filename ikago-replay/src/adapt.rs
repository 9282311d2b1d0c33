//! Peer adaptation: make the capture's peers answer our machine rather than the recorded one
//!
//! The peers in a capture answered the machine that was recorded, whose random choices differ from
//! ours: its initial sequence numbers, its client port, its NAT ports and ICMP ids. Fed as they
//! are, the server's SYN+ACK would acknowledge an ISN our client never sent, and the destination's
//! replies would reach NAT ports our server never allocated.
//!
//! So both machines' transmissions are observed per flow (IP protocol and remote endpoint): the
//! recorded one's in the capture (frames from its own MAC), ours as they come out. The k-th local
//! port (or ICMP id) the recorded machine used toward a remote endpoint stands for the k-th one
//! ours used, and TCP acknowledgment numbers shift by the difference of the latest SYN sequence
//! numbers. A frame from that remote endpoint to one of the machine's addresses then gets our
//! port (or id) and acknowledgment number, with the checksum updated incrementally (RFC 1624), so
//! the first fragment of a fragmented datagram is adapted too. Nothing else is touched.
//!
//! A client with KCP also takes over the recorded client's conversation id
//! ([`recorded_conversation`]), which the recorded server's datagrams carry.

use crate::capture::Frame;
use crate::decode::TunnelDecoder;
use crate::packet::{be16, be32};
use ikago_proto::ClientConfig;
use ikago_proto::wire::proto::{ICMP, TCP, UDP};
use ikago_proto::wire::{checksum, ethernet, icmp, ipv4, tcp};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// A local port (or ICMP id) used toward one remote endpoint, with the latest SYN's sequence number
#[derive(Debug, Clone, Copy)]
struct Local {
    port: u16,
    isn: Option<u32>,
}

/// What each machine used toward one remote endpoint, in order of first use
#[derive(Debug, Default)]
struct Flow {
    recorded: Vec<Local>,
    ours: Vec<Local>,
}

/// Which machine a transmission came from
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The machine recorded in the capture
    Recorded,
    /// The machine being replayed
    Ours,
}

/// The transport view of a first fragment or whole IPv4 packet inside an Ethernet frame
struct View {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    /// Offset of the transport header in the frame
    at: usize,
}

fn view(frame: &[u8]) -> Option<View> {
    let eth = ethernet::parse(frame)?;
    if eth.ethertype != ethernet::ETHERTYPE_IPV4 {
        return None;
    }
    let ip = ipv4::Packet::parse(eth.payload).ok()?;
    if ip.fragment_offset() != 0 {
        return None;
    }
    let need = match ip.protocol() {
        TCP => 18,
        UDP | ICMP => 8,
        _ => return None,
    };
    let v = View {
        src: ip.src(),
        dst: ip.dst(),
        protocol: ip.protocol(),
        at: ethernet::HEADER_LEN + ip.header_len(),
    };
    (ip.payload().len() >= need).then_some(v)
}

/// The KCP conversation id of the recorded client: the first one its tunnel segments carry
///
/// Ours draws a random one, as the original does; with the recorded one instead, the recorded
/// server's datagrams belong to our conversation. `None` without KCP or without such a segment.
pub fn recorded_conversation(frames: &[Frame], config: &ClientConfig) -> Option<u32> {
    let tuning = config.kcp?;
    let up = config.devices.iter().find(|d| d.role.is_upstream())?;
    let mut tunnel = TunnelDecoder::new(config.method, &config.password, config.server.port());
    let own = frames
        .iter()
        .filter(|f| f.interface == up.name && f.data.get(6..12) == Some(&up.mac.0[..]));
    for frame in own {
        let Some(seg) = tunnel.segment(frame) else {
            continue;
        };
        if SocketAddr::V4(seg.dst) != config.server || seg.payload.is_empty() {
            continue;
        }
        if let Some(conv) = tunnel
            .open(&seg.payload)
            .and_then(|datagram| tuning.conversation_of(&datagram))
        {
            return Some(conv);
        }
    }
    None
}

/// Replaces the 16-bit word at `at` and updates the checksum at `sum` (RFC 1624 eqn. 3); a zero
/// UDP checksum means "none" (RFC 768): it stays zero, and a computed zero is sent as all ones
fn replace16(b: &mut [u8], at: usize, new: u16, sum: usize, udp: bool) {
    let old = be16(b, at);
    b[at..at + 2].copy_from_slice(&new.to_be_bytes());
    let hc = be16(b, sum);
    if udp && hc == 0 {
        return;
    }
    let c = match checksum::update16(hc, old, new) {
        0 if udp => 0xffff,
        c => c,
    };
    b[sum..sum + 2].copy_from_slice(&c.to_be_bytes());
}

/// The flow key and local port (or ICMP id) of a frame sent by a machine from `local`
fn sent(frame: &[u8], locals: &[Ipv4Addr]) -> Option<((u8, SocketAddrV4), Local)> {
    let v = view(frame)?;
    if !locals.contains(&v.src) {
        return None;
    }
    let t = v.at;
    match v.protocol {
        TCP => {
            let syn = frame[t + 13] & tcp::SYN != 0;
            let local = Local {
                port: be16(frame, t),
                isn: syn.then(|| be32(frame, t + 4)),
            };
            Some(((TCP, SocketAddrV4::new(v.dst, be16(frame, t + 2))), local))
        }
        UDP => Some((
            (UDP, SocketAddrV4::new(v.dst, be16(frame, t + 2))),
            Local {
                port: be16(frame, t),
                isn: None,
            },
        )),
        ICMP if frame[t] == icmp::ECHO_REQUEST => Some((
            (ICMP, SocketAddrV4::new(v.dst, 0)),
            Local {
                port: be16(frame, t + 4),
                isn: None,
            },
        )),
        _ => None,
    }
}

/// Rewrites the peers' frames toward the replayed machine's addresses
#[derive(Debug)]
pub struct Adapter {
    locals: Vec<Ipv4Addr>,
    flows: HashMap<(u8, SocketAddrV4), Flow>,
    adapted: u64,
}

impl Adapter {
    /// An adapter for a machine whose devices have the addresses `locals`
    pub fn new(locals: Vec<Ipv4Addr>) -> Self {
        Self {
            locals,
            flows: HashMap::new(),
            adapted: 0,
        }
    }

    /// Frames adapted so far
    pub fn adapted(&self) -> u64 {
        self.adapted
    }

    /// Notes a frame transmitted by `sender`
    pub fn observe(&mut self, sender: Sender, frame: &[u8]) {
        let Some((key, local)) = sent(frame, &self.locals) else {
            return;
        };
        let flow = self.flows.entry(key).or_default();
        let list = match sender {
            Sender::Recorded => &mut flow.recorded,
            Sender::Ours => &mut flow.ours,
        };
        match list.iter_mut().find(|l| l.port == local.port) {
            Some(l) => l.isn = local.isn.or(l.isn),
            None => list.push(local),
        }
    }

    /// The frame as our machine should see it, or `None` when it needs no change
    pub fn adapt(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let v = view(frame)?;
        if !self.locals.contains(&v.dst) {
            return None;
        }
        let t = v.at;
        let (remote, local_at, sum_at) = match v.protocol {
            TCP => (SocketAddrV4::new(v.src, be16(frame, t)), t + 2, t + 16),
            UDP => (SocketAddrV4::new(v.src, be16(frame, t)), t + 2, t + 6),
            ICMP if frame[t] == icmp::ECHO_REPLY => (SocketAddrV4::new(v.src, 0), t + 4, t + 2),
            _ => return None,
        };
        let flow = self.flows.get(&(v.protocol, remote))?;
        let port = be16(frame, local_at);
        let i = flow.recorded.iter().position(|l| l.port == port)?;
        let (rec, ours) = (flow.recorded[i], *flow.ours.get(i)?);
        let mut out = frame.to_vec();
        let udp = v.protocol == UDP;
        if ours.port != rec.port {
            replace16(&mut out, local_at, ours.port, sum_at, udp);
        }
        if let (TCP, Some(r), Some(o)) = (v.protocol, rec.isn, ours.isn)
            && out[t + 13] & tcp::ACK != 0
        {
            let ack = be32(&out, t + 8).wrapping_add(o.wrapping_sub(r));
            replace16(&mut out, t + 8, (ack >> 16) as u16, sum_at, false);
            replace16(&mut out, t + 10, ack as u16, sum_at, false);
        }
        if out == frame {
            return None;
        }
        self.adapted += 1;
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    const ME: Ipv4Addr = Ipv4Addr::new(198, 18, 12, 2);
    const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 12, 1);

    fn tcp(
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        seq: u32,
        ack: Option<u32>,
        syn: bool,
    ) -> Vec<u8> {
        let mut b = PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4(src.0.octets(), dst.0.octets(), 64)
            .tcp(src.1, dst.1, seq, 65535);
        if syn {
            b = b.syn();
        }
        if let Some(a) = ack {
            b = b.ack(a);
        }
        let mut out = Vec::new();
        b.write(&mut out, b"data").unwrap();
        out
    }

    fn checksum_ok(frame: &[u8]) -> bool {
        let p = SlicedPacket::from_ethernet(frame).unwrap();
        let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
            return false;
        };
        match p.transport {
            Some(TransportSlice::Tcp(t)) => {
                t.calc_checksum_ipv4(ip.header().source(), ip.header().destination())
                    .unwrap()
                    == t.checksum()
            }
            _ => false,
        }
    }

    #[test]
    fn syn_ack_is_shifted_to_our_isn_and_port() {
        let mut a = Adapter::new(vec![ME]);
        a.observe(
            Sender::Recorded,
            &tcp((ME, 60837), (PEER, 18081), 0, None, true),
        );
        a.observe(
            Sender::Ours,
            &tcp((ME, 50000), (PEER, 18081), 123_456, None, true),
        );
        let reply = tcp((PEER, 18081), (ME, 60837), 0, Some(1), true);
        let out = a.adapt(&reply).unwrap();
        assert_eq!(out, tcp((PEER, 18081), (ME, 50000), 0, Some(123_457), true));
        assert!(checksum_ok(&out));
        assert_eq!(a.adapted(), 1);
        // not from the flow's remote endpoint, or to another address: untouched
        assert!(
            a.adapt(&tcp((PEER, 18082), (ME, 60837), 0, Some(1), false))
                .is_none()
        );
        assert!(
            a.adapt(&tcp(
                (PEER, 18081),
                (Ipv4Addr::new(9, 9, 9, 9), 60837),
                0,
                Some(1),
                false
            ))
            .is_none()
        );
    }

    #[test]
    fn a_udp_checksum_that_becomes_zero_is_sent_as_all_ones() {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4(PEER.octets(), ME.octets(), 64)
            .udp(7, 49152)
            .write(&mut frame, b"x")
            .unwrap();
        let (port_at, sum_at) = (ethernet::HEADER_LEN + 20 + 2, ethernet::HEADER_LEN + 20 + 6);
        let (old, hc) = (be16(&frame, port_at), be16(&frame, sum_at));
        let port = (1..=u16::MAX)
            .find(|&p| checksum::update16(hc, old, p) == 0)
            .expect("some port sums to zero");
        replace16(&mut frame, port_at, port, sum_at, true);
        assert_eq!(be16(&frame, sum_at), 0xffff);
        let reference = {
            let p = SlicedPacket::from_ethernet(&frame).unwrap();
            let (Some(etherparse::NetSlice::Ipv4(ip)), Some(TransportSlice::Udp(u))) =
                (&p.net, &p.transport)
            else {
                panic!("a UDP frame");
            };
            let h = ip.header();
            u.to_header()
                .calc_checksum_ipv4_raw(h.source(), h.destination(), u.payload())
        };
        assert_eq!(reference, Ok(0xffff));
        // no checksum stays none
        frame[sum_at..sum_at + 2].fill(0);
        replace16(&mut frame, port_at, 49152, sum_at, true);
        assert_eq!(be16(&frame, sum_at), 0);
    }

    #[test]
    fn ports_pair_in_order_of_first_use() {
        let mut a = Adapter::new(vec![ME]);
        let udp = |sport: u16, dport: u16, from_me: bool| {
            let (s, d) = if from_me { (ME, PEER) } else { (PEER, ME) };
            let mut out = Vec::new();
            PacketBuilder::ethernet2([2; 6], [3; 6])
                .ipv4(s.octets(), d.octets(), 64)
                .udp(sport, dport)
                .write(&mut out, b"x")
                .unwrap();
            out
        };
        a.observe(Sender::Recorded, &udp(49152, 7, true));
        a.observe(Sender::Recorded, &udp(49153, 7, true));
        a.observe(Sender::Ours, &udp(61000, 7, true));
        a.observe(Sender::Ours, &udp(52000, 7, true));
        assert_eq!(
            a.adapt(&udp(7, 49153, false)).unwrap(),
            udp(7, 52000, false)
        );
        assert_eq!(
            a.adapt(&udp(7, 49152, false)).unwrap(),
            udp(7, 61000, false)
        );
        assert!(a.adapt(&udp(7, 49154, false)).is_none());
    }
}
