//! The router between the client-side and the server-side WAN
//!
//! It answers ARP for its two addresses, resolves next hops by ARP (queueing packets meanwhile),
//! and forwards IPv4 between its sides, rewriting the Ethernet header and decrementing the TTL.
//! On the way it can act as the networks our users face do, in this order: a firewall that drops
//! UDP and ICMP from the client side, the masquerading NAT's inbound translation, a strict
//! conntrack middlebox, the NAT's outbound translation. Every forwarded packet then crosses the
//! [`Link`](crate::link) with its impairments.

use crate::addr::{
    self, PREFIX_LEN, ROUTER_INSIDE, ROUTER_OUTSIDE, TAG_CLIENT_WAN, TAG_SERVER_WAN,
};
use crate::conntrack::{Conntrack, Segment};
use crate::drops::{Drops, SimDrop};
use crate::link::{Link, LinkConfig};
use crate::nat::Masquerade;
use crate::packet::{self, ETHERTYPE_IPV4, ICMP, Ipv4, TCP, UDP};
use ikago_proto::wire::{arp, ethernet};
use ikago_proto::{Ipv4Net, Mac};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// What the router does besides routing
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouterConfig {
    /// Drop UDP and ICMP coming from the client side (the networks the tunnel is for)
    pub block_udp_icmp: bool,
    /// Track TCP as strictly as Linux conntrack with `tcp_loose=0` and drop INVALID segments
    /// (counted by [`ConntrackInvalid`](crate::ConntrackInvalid) reason)
    pub conntrack: bool,
    /// Masquerade the client side behind the router's outside address
    pub masquerade: bool,
    /// The WAN link's impairments
    pub link: LinkConfig,
}

impl RouterConfig {
    /// A firewall that blocks UDP and ICMP from the client side, over a clean link
    pub fn firewall() -> Self {
        Self {
            block_udp_icmp: true,
            conntrack: false,
            masquerade: false,
            link: LinkConfig::clean(),
        }
    }
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
    /// Address and MAC of each side
    ports: [(Ipv4Addr, [u8; 6]); 2],
    neighbors: [BTreeMap<Ipv4Addr, [u8; 6]>; 2],
    /// Packets waiting for ARP: side, next hop, IPv4 packet
    pending: Vec<(Side, Ipv4Addr, Vec<u8>)>,
}

impl Router {
    /// A router as configured, its link drawing randomness from `seed`
    pub(crate) fn new(config: &RouterConfig, seed: u64) -> Self {
        Self {
            block_udp_icmp: config.block_udp_icmp,
            link: Link::new(config.link, seed),
            conntrack: config.conntrack.then(Conntrack::default),
            nat: config.masquerade.then(|| Masquerade::new(ROUTER_OUTSIDE)),
            ports: [
                (ROUTER_INSIDE, addr::mac(TAG_CLIENT_WAN, ROUTER_INSIDE)),
                (ROUTER_OUTSIDE, addr::mac(TAG_SERVER_WAN, ROUTER_OUTSIDE)),
            ],
            neighbors: [BTreeMap::new(), BTreeMap::new()],
            pending: Vec::new(),
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
        let (ip, mac) = self.ports[side as usize];
        let Some(eth) = ethernet::parse(frame) else {
            return out;
        };
        match eth.ethertype {
            ethernet::ETHERTYPE_ARP => {
                let Some(a) = arp::parse(eth.payload).filter(|a| a.tpa == ip) else {
                    return out;
                };
                self.neighbors[side as usize].insert(a.spa, a.sha.0);
                if a.op == arp::OP_REQUEST {
                    out.push(Emit {
                        side,
                        delay: Duration::ZERO,
                        frame: packet::arp_frame(&packet::arp_reply(&a, Mac(mac)), a.sha),
                    });
                }
                let (ready, waiting) = std::mem::take(&mut self.pending)
                    .into_iter()
                    .partition(|(s, hop, _)| *s == side && *hop == a.spa);
                self.pending = waiting;
                for (_, _, pkt) in ready {
                    self.carry(side, a.sha.0, &pkt, drops, &mut out);
                }
            }
            ETHERTYPE_IPV4 if eth.dst == Mac(mac) => {
                if let Err(why) = self.route(side, eth.payload, &mut out, drops) {
                    drops.add(why);
                }
            }
            _ => {}
        }
        out
    }

    /// The side whose subnet holds `ip`, unless `ip` is the router's own
    fn side_of(&self, ip: Ipv4Addr) -> Option<Side> {
        [Side::Inside, Side::Outside].into_iter().find(|&s| {
            let own = self.ports[s as usize].0;
            ip != own
                && Ipv4Net {
                    addr: own,
                    prefix_len: PREFIX_LEN,
                }
                .contains(ip)
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
        let to = self
            .side_of(dst)
            .filter(|&s| s == from.other())
            .ok_or(SimDrop::NoRoute)?;
        if let Some(ct) = &mut self.conntrack
            && p.protocol() == TCP
        {
            if p.is_fragment() {
                return Err(SimDrop::UntrackedFragment);
            }
            let seg = Segment::parse(&p).ok_or(SimDrop::NotRouted)?;
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
        match self.neighbors[to as usize].get(&dst) {
            Some(&mac) => self.carry(to, mac, &pkt, drops, out),
            None => {
                if !self
                    .pending
                    .iter()
                    .any(|(s, hop, _)| *s == to && *hop == dst)
                {
                    let (ip, mac) = self.ports[to as usize];
                    let req = packet::arp_request(Mac(mac), ip, dst);
                    out.push(Emit {
                        side: to,
                        delay: Duration::ZERO,
                        frame: packet::arp_frame(&req, Mac::BROADCAST),
                    });
                }
                self.pending.push((to, dst, pkt));
            }
        }
        Ok(())
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
        let src = self.ports[to as usize].1;
        for (delay, p) in self.link.carry(pkt, drops) {
            out.push(Emit {
                side: to,
                delay,
                frame: packet::frame(Mac(dst_mac), Mac(src), ETHERTYPE_IPV4, &p),
            });
        }
    }
}
