//! A masquerading NAT on the router's outer address, like Linux `MASQUERADE`
//!
//! Each outbound TCP or UDP flow (protocol, inside endpoint, remote endpoint) gets an outer port:
//! its own source port when no other flow to the same remote already uses it, otherwise the next
//! free one. Inbound packets are let in only for a known flow (address- and port-dependent
//! filtering). Checksums are updated incrementally, so a wrong checksum stays wrong. Mappings
//! never expire.

use crate::drops::SimDrop;
use crate::packet::{self, Ipv4, TCP, UDP};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Lowest outer port chosen when the source port is taken
const FIRST_PORT: u16 = 1024;

/// (protocol, inside endpoint, remote endpoint)
type Flow = (u8, SocketAddrV4, SocketAddrV4);
/// (protocol, outer port, remote endpoint)
type Outer = (u8, u16, SocketAddrV4);

/// The NAT table
#[derive(Debug)]
pub(crate) struct Masquerade {
    outer: Ipv4Addr,
    out: BTreeMap<Flow, u16>,
    back: BTreeMap<Outer, SocketAddrV4>,
}

/// Offset of the transport checksum in a TCP or UDP header
fn checksum_at(protocol: u8) -> usize {
    if protocol == TCP { 16 } else { 6 }
}

/// The checksum fields to update when the pseudo-header or a port changes
fn sums(pkt: &[u8], hl: usize, protocol: u8) -> Vec<usize> {
    let at = hl + checksum_at(protocol);
    // a UDP datagram without checksum (RFC 768: zero) keeps none
    if protocol == UDP && pkt[at..at + 2] == [0, 0] {
        Vec::new()
    } else {
        vec![at]
    }
}

impl Masquerade {
    /// A NAT that puts inside flows on `outer`
    pub(crate) fn new(outer: Ipv4Addr) -> Self {
        Self {
            outer,
            out: BTreeMap::new(),
            back: BTreeMap::new(),
        }
    }

    /// The address packets are masqueraded to
    pub(crate) fn outer(&self) -> Ipv4Addr {
        self.outer
    }

    /// Rewrites the source of an outbound packet to the outer address and port
    pub(crate) fn outbound(&mut self, pkt: &mut [u8]) -> Result<(), SimDrop> {
        let (flow, hl) = flow_of(pkt, true)?;
        let (protocol, inside, remote) = flow;
        let port = match self.out.get(&flow) {
            Some(&p) => p,
            None => {
                let mut p = inside.port();
                while self.back.contains_key(&(protocol, p, remote)) {
                    p = if p == u16::MAX { FIRST_PORT } else { p + 1 };
                }
                self.out.insert(flow, p);
                self.back.insert((protocol, p, remote), inside);
                p
            }
        };
        let transport = sums(pkt, hl, protocol);
        let mut ip_and_transport = transport.clone();
        ip_and_transport.push(10);
        packet::rewrite(pkt, 12, &self.outer.octets(), &ip_and_transport);
        packet::rewrite(pkt, hl, &port.to_be_bytes(), &transport);
        Ok(())
    }

    /// Rewrites the destination of an inbound packet (to the outer address) back to the inside
    pub(crate) fn inbound(&mut self, pkt: &mut [u8]) -> Result<(), SimDrop> {
        let ((protocol, local, remote), hl) = flow_of(pkt, false)?;
        let Some(&inside) = self.back.get(&(protocol, local.port(), remote)) else {
            return Err(SimDrop::NatNoMapping);
        };
        let transport = sums(pkt, hl, protocol);
        let mut ip_and_transport = transport.clone();
        ip_and_transport.push(10);
        packet::rewrite(pkt, 16, &inside.ip().octets(), &ip_and_transport);
        packet::rewrite(pkt, hl + 2, &inside.port().to_be_bytes(), &transport);
        Ok(())
    }
}

/// The flow of a packet as (protocol, local endpoint, remote endpoint), where local is the
/// source of an outbound packet and the destination of an inbound one; and the header length
fn flow_of(pkt: &[u8], outbound: bool) -> Result<(Flow, usize), SimDrop> {
    let ip = Ipv4::parse(pkt).ok_or(SimDrop::NotRouted)?;
    if ip.is_fragment() {
        return Err(SimDrop::UntrackedFragment);
    }
    let (sport, dport) = ip.ports().ok_or(SimDrop::NatUnsupported)?;
    let src = SocketAddrV4::new(ip.src(), sport);
    let dst = SocketAddrV4::new(ip.dst(), dport);
    let (local, remote) = if outbound { (src, dst) } else { (dst, src) };
    Ok(((ip.protocol(), local, remote), ip.header_len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(src, dst, 64)
            .udp(sport, dport)
            .write(&mut out, b"payload")
            .expect("vec");
        out
    }

    fn ports(p: &[u8]) -> (u16, u16) {
        match SlicedPacket::from_ip(p).expect("valid").transport {
            Some(TransportSlice::Udp(u)) => (u.source_port(), u.destination_port()),
            _ => panic!("not UDP"),
        }
    }

    #[test]
    fn two_inside_hosts_share_the_outer_address() {
        let mut nat = Masquerade::new(Ipv4Addr::new(198, 18, 14, 1));
        let server = [198, 18, 14, 2];
        let mut a = udp([198, 18, 12, 2], 50000, server, 443);
        let mut b = udp([198, 18, 12, 3], 50000, server, 443);
        nat.outbound(&mut a).expect("a");
        nat.outbound(&mut b).expect("b");
        assert_eq!(ports(&a).0, 50000);
        assert_eq!(ports(&b).0, 50001);
        assert_eq!(a, udp([198, 18, 14, 1], 50000, server, 443));
        let mut reply = udp(server, 443, [198, 18, 14, 1], 50001);
        nat.inbound(&mut reply).expect("known flow");
        assert_eq!(reply, udp(server, 443, [198, 18, 12, 3], 50000));
        let mut stranger = udp([198, 18, 14, 9], 443, [198, 18, 14, 1], 50001);
        assert_eq!(nat.inbound(&mut stranger), Err(SimDrop::NatNoMapping));
    }
}
