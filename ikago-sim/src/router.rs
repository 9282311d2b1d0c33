//! A router between two segments: the WAN router between the client-side and the server-side
//! WAN, and the edge router between the Internet segment and the segment beyond it
//!
//! It answers ARP and IPv6 neighbour solicitations for its addresses, resolves next hops by ARP
//! or neighbour discovery (queueing packets meanwhile), and forwards IPv4 and IPv6 between its
//! sides, rewriting the Ethernet header and decrementing the TTL or hop limit. On the way it can
//! act as the networks our users face do, in this order: a firewall that drops UDP, ICMP and
//! ICMPv6 from the client side (neighbour discovery is on-link and never forwarded, so it is
//! unaffected), the masquerading NAT's inbound translation (IPv4 only: IPv6 is routed as it
//! is), a strict conntrack middlebox (TCP over either version; IPv6 fragments are held until
//! their datagram is whole and judged as one, as Linux's `nf_defrag_ipv6` does), the NAT's
//! outbound translation.
//! Every forwarded packet then crosses the [`Link`](crate::link) with its impairments; an IPv6
//! packet larger than the link's MTU is not forwarded (IPv6 routers never fragment) and its
//! sender gets an ICMPv6 Packet Too Big.

use crate::addr::{PREFIX_LEN, PREFIX_LEN6};
use crate::conntrack::{Conntrack, Segment};
use crate::defrag::{Defrag6, Defragged};
use crate::drops::{Drops, SimDrop};
use crate::ipv6::{self, ETHERTYPE_IPV6, ICMPV6, Ipv6};
use crate::link::{Link, LinkConfig};
use crate::nat::Masquerade;
use crate::packet::{self, ETHERTYPE_IPV4, ICMP, Ipv4, TCP, UDP};
use ikago_proto::wire::{arp, ethernet};
use ikago_proto::{Ipv4Net, Mac};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// What the router does besides routing
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterConfig {
    /// Drop UDP, ICMP and ICMPv6 coming from the client side (the networks the tunnel is for)
    pub block_udp_icmp: bool,
    /// Track TCP as strictly as Linux conntrack with `tcp_loose=0` and drop INVALID segments
    /// (counted by [`ConntrackInvalid`](crate::ConntrackInvalid) reason)
    pub conntrack: bool,
    /// Masquerade the client side's IPv4 behind the router's outside address
    pub masquerade: bool,
    /// The WAN link's impairments
    pub link: LinkConfig,
}

impl RouterConfig {
    /// A firewall that blocks UDP, ICMP and ICMPv6 from the client side, over a clean link
    pub fn firewall() -> Self {
        Self {
            block_udp_icmp: true,
            conntrack: false,
            masquerade: false,
            link: LinkConfig::clean(),
        }
    }

    /// A plain router over `link`: no firewall, no conntrack, no NAT
    pub fn open(link: LinkConfig) -> Self {
        Self {
            block_udp_icmp: false,
            conntrack: false,
            masquerade: false,
            link,
        }
    }
}

/// A side's addresses: IPv4, IPv6 and MAC
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Port {
    pub(crate) v4: Ipv4Addr,
    pub(crate) v6: Ipv6Addr,
    pub(crate) mac: [u8; 6],
}

/// One of the router's two sides
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The client-side WAN
    Inside = 0,
    /// The server-side WAN
    Outside = 1,
}

impl Side {
    fn other(self) -> Self {
        match self {
            Self::Inside => Self::Outside,
            Self::Outside => Self::Inside,
        }
    }
}

/// A frame the router sends on `side` after `delay`
#[derive(Debug)]
pub(crate) struct Emit {
    pub(crate) side: Side,
    pub(crate) delay: Duration,
    pub(crate) frame: Vec<u8>,
}

/// The router's state
#[derive(Debug)]
pub(crate) struct Router {
    block_udp_icmp: bool,
    pub(crate) link: Link,
    conntrack: Option<Conntrack>,
    nat: Option<Masquerade>,
    /// Addresses of each side
    ports: [Port; 2],
    neighbors: [BTreeMap<IpAddr, [u8; 6]>; 2],
    /// Packets waiting for ARP or neighbour discovery: side, next hop, IP packet
    pending: Vec<(Side, IpAddr, Vec<u8>)>,
    /// IPv6 fragments held for conntrack until their datagram is whole
    defrag6: Defrag6,
}

impl Router {
    /// A router with `ports` (inside, outside) as configured, its link drawing randomness from
    /// `seed`; a masquerading NAT uses the outside IPv4 address
    pub(crate) fn new(config: &RouterConfig, ports: [Port; 2], seed: u64) -> Self {
        Self {
            block_udp_icmp: config.block_udp_icmp,
            link: Link::new(config.link, seed),
            conntrack: config.conntrack.then(Conntrack::default),
            nat: config.masquerade.then(|| Masquerade::new(ports[1].v4)),
            ports,
            neighbors: [BTreeMap::new(), BTreeMap::new()],
            pending: Vec::new(),
            defrag6: Defrag6::new(),
        }
    }

    /// Handles a frame seen on `side`; returns what to send
    pub(crate) fn handle_frame(
        &mut self,
        side: Side,
        frame: &[u8],
        drops: &mut Drops,
    ) -> Vec<Emit> {
        let mut out = Vec::new();
        let port = self.ports[side as usize];
        let Some(eth) = ethernet::parse(frame) else {
            return out;
        };
        match eth.ethertype {
            ethernet::ETHERTYPE_ARP => {
                let Some(a) = arp::parse(eth.payload).filter(|a| a.tpa == port.v4) else {
                    return out;
                };
                if a.op == arp::OP_REQUEST {
                    out.push(Emit {
                        side,
                        delay: Duration::ZERO,
                        frame: packet::arp_frame(&packet::arp_reply(&a, Mac(port.mac)), a.sha),
                    });
                }
                self.learned(side, IpAddr::V4(a.spa), a.sha.0, drops, &mut out);
            }
            ETHERTYPE_IPV6 if eth.dst == Mac(port.mac) || ipv6::is_multicast_frame(frame) => {
                if let Some(n) = ipv6::ndp_of(frame) {
                    self.neighbour(side, &n, drops, &mut out);
                } else if eth.dst == Mac(port.mac)
                    && let Err(why) = self.route6(side, eth.payload, &mut out, drops)
                {
                    drops.add(why);
                }
            }
            ETHERTYPE_IPV4 if eth.dst == Mac(port.mac) => {
                if let Err(why) = self.route(side, eth.payload, &mut out, drops) {
                    drops.add(why);
                }
            }
            _ => {}
        }
        out
    }

    /// A neighbour discovery message on `side`: a solicitation for one of the router's
    /// addresses is answered, and every link-layer address it carries about the sender (or the
    /// target, in an advertisement) is learned
    fn neighbour(&mut self, side: Side, n: &ipv6::Ndp, drops: &mut Drops, out: &mut Vec<Emit>) {
        let port = self.ports[side as usize];
        let Some(mac) = n.lladdr else {
            return;
        };
        if n.advert {
            self.learned(side, IpAddr::V6(n.target), mac.0, drops, out);
        } else if n.target == port.v6 {
            out.push(Emit {
                side,
                delay: Duration::ZERO,
                frame: ipv6::advertise(Mac(port.mac), port.v6, n, mac),
            });
            self.learned(side, IpAddr::V6(n.src), mac.0, drops, out);
        }
    }

    /// `ip` is at `mac` on `side`: remembers it and sends what waited for it
    fn learned(
        &mut self,
        side: Side,
        ip: IpAddr,
        mac: [u8; 6],
        drops: &mut Drops,
        out: &mut Vec<Emit>,
    ) {
        if ip.is_unspecified() {
            return;
        }
        self.neighbors[side as usize].insert(ip, mac);
        let (ready, waiting) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(s, hop, _)| *s == side && *hop == ip);
        self.pending = waiting;
        for (_, _, pkt) in ready {
            self.carry(side, mac, &pkt, drops, out);
        }
    }

    /// The side whose subnet holds `ip`, unless `ip` is the router's own
    fn side_of(&self, ip: IpAddr) -> Option<Side> {
        [Side::Inside, Side::Outside].into_iter().find(|&s| {
            let own = self.ports[s as usize];
            match ip {
                IpAddr::V4(ip) => {
                    ip != own.v4
                        && Ipv4Net {
                            addr: own.v4,
                            prefix_len: PREFIX_LEN,
                        }
                        .contains(ip)
                }
                IpAddr::V6(ip) => {
                    let prefix = u128::MAX << (128 - u32::from(PREFIX_LEN6));
                    ip != own.v6 && (u128::from(ip) ^ u128::from(own.v6)) & prefix == 0
                }
            }
        })
    }

    fn route(
        &mut self,
        from: Side,
        bytes: &[u8],
        out: &mut Vec<Emit>,
        drops: &mut Drops,
    ) -> Result<(), SimDrop> {
        let p = Ipv4::parse(bytes).ok_or(SimDrop::NotRouted)?;
        if self.block_udp_icmp && from == Side::Inside && matches!(p.protocol(), UDP | ICMP) {
            return Err(SimDrop::Firewall);
        }
        let mut pkt = p.bytes().to_vec();
        if let Some(nat) = &mut self.nat
            && from == Side::Outside
            && p.dst() == nat.outer()
        {
            nat.inbound(&mut pkt)?;
        }
        let p = Ipv4::parse(&pkt).expect("translation keeps the packet valid");
        let dst = p.dst();
        let to = self.forward_side(from, IpAddr::V4(dst))?;
        if let Some(ct) = &mut self.conntrack
            && p.protocol() == TCP
        {
            if p.is_fragment() {
                return Err(SimDrop::UntrackedFragment);
            }
            let seg = Segment::parse(p.src().into(), p.dst().into(), p.payload())
                .ok_or(SimDrop::NotRouted)?;
            ct.check(&seg).map_err(SimDrop::Conntrack)?;
        }
        if let Some(nat) = &mut self.nat
            && from == Side::Inside
        {
            nat.outbound(&mut pkt)?;
        }
        let ttl = pkt[8];
        if ttl <= 1 {
            return Err(SimDrop::NotRouted);
        }
        let protocol = pkt[9];
        packet::rewrite(&mut pkt, 8, &[ttl - 1, protocol], &[10]);
        self.send(to, IpAddr::V4(dst), pkt, drops, out);
        Ok(())
    }

    /// The side a packet from `from` to `dst` leaves on (always the other one)
    fn forward_side(&self, from: Side, dst: IpAddr) -> Result<Side, SimDrop> {
        self.side_of(dst)
            .filter(|&s| s == from.other())
            .ok_or(SimDrop::NoRoute)
    }

    fn route6(
        &mut self,
        from: Side,
        bytes: &[u8],
        out: &mut Vec<Emit>,
        drops: &mut Drops,
    ) -> Result<(), SimDrop> {
        let p = Ipv6::parse(bytes).ok_or(SimDrop::NotRouted)?;
        if self.block_udp_icmp && from == Side::Inside && matches!(p.protocol(), UDP | ICMPV6) {
            return Err(SimDrop::Firewall);
        }
        let to = self.forward_side(from, IpAddr::V6(p.dst()))?;
        if let Some(ct) = &mut self.conntrack
            && p.protocol() == TCP
        {
            if p.is_fragment() {
                let Defragged::Whole(whole, pieces) = self.defrag6.add(p.bytes()) else {
                    return Ok(());
                };
                let w = Ipv6::parse(&whole).ok_or(SimDrop::NotRouted)?;
                let seg = Segment::parse(w.src().into(), w.dst().into(), w.payload())
                    .ok_or(SimDrop::NotRouted)?;
                ct.check(&seg).map_err(SimDrop::Conntrack)?;
                for piece in pieces {
                    self.forward6(from, to, &piece, out, drops)?;
                }
                return Ok(());
            }
            let seg = Segment::parse(p.src().into(), p.dst().into(), p.payload())
                .ok_or(SimDrop::NotRouted)?;
            ct.check(&seg).map_err(SimDrop::Conntrack)?;
        }
        self.forward6(from, to, p.bytes(), out, drops)
    }

    /// Forwards the IPv6 packet `bytes` from `from` to side `to`: hop limit decremented, or a
    /// Packet Too Big back to its sender when it exceeds the link's MTU
    fn forward6(
        &mut self,
        from: Side,
        to: Side,
        bytes: &[u8],
        out: &mut Vec<Emit>,
        drops: &mut Drops,
    ) -> Result<(), SimDrop> {
        let p = Ipv6::parse(bytes).ok_or(SimDrop::NotRouted)?;
        let hop_limit = p.bytes()[7];
        if hop_limit <= 1 {
            return Err(SimDrop::NotRouted);
        }
        let mtu = self.link.config.mtu;
        if p.bytes().len() > mtu {
            let own = self.ports[from as usize].v6;
            if let Some(ptb) = ipv6::packet_too_big(own, &p, mtu as u32) {
                self.send(from, IpAddr::V6(p.src()), ptb, drops, out);
            }
            return Err(SimDrop::LinkMtu);
        }
        let mut pkt = p.bytes().to_vec();
        pkt[7] = hop_limit - 1;
        self.send(to, IpAddr::V6(p.dst()), pkt, drops, out);
        Ok(())
    }

    /// Sends `pkt` to its on-link destination `dst` on side `to`, resolving it first when its
    /// MAC is not known (ARP or a neighbour solicitation; the packet waits)
    fn send(
        &mut self,
        to: Side,
        dst: IpAddr,
        pkt: Vec<u8>,
        drops: &mut Drops,
        out: &mut Vec<Emit>,
    ) {
        if let Some(&mac) = self.neighbors[to as usize].get(&dst) {
            self.carry(to, mac, &pkt, drops, out);
            return;
        }
        if !self
            .pending
            .iter()
            .any(|(s, hop, _)| *s == to && *hop == dst)
        {
            let port = self.ports[to as usize];
            let frame = match dst {
                IpAddr::V4(dst) => packet::arp_frame(
                    &packet::arp_request(Mac(port.mac), port.v4, dst),
                    Mac::BROADCAST,
                ),
                IpAddr::V6(dst) => ipv6::solicit(Mac(port.mac), port.v6, dst),
            };
            out.push(Emit {
                side: to,
                delay: Duration::ZERO,
                frame,
            });
        }
        self.pending.push((to, dst, pkt));
    }

    /// Sends `pkt` over the link to `dst_mac` on side `to`
    fn carry(
        &mut self,
        to: Side,
        dst_mac: [u8; 6],
        pkt: &[u8],
        drops: &mut Drops,
        out: &mut Vec<Emit>,
    ) {
        let src = self.ports[to as usize].mac;
        let ethertype = if pkt.first().is_some_and(|b| b >> 4 == 6) {
            ETHERTYPE_IPV6
        } else {
            ETHERTYPE_IPV4
        };
        for (delay, p) in self.link.carry(pkt, drops) {
            out.push(Emit {
                side: to,
                delay,
                frame: packet::frame(Mac(dst_mac), Mac(src), ethertype, &p),
            });
        }
    }
}
