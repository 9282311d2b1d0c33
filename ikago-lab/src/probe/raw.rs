//! Crafted TCP segments through a raw socket, to probe the firewall's conntrack strictness

use std::net::SocketAddrV4;

use etherparse::PacketBuilder;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::{LabError, Netns, Result};

/// IPPROTO_RAW: the caller writes the IPv4 header (raw(7))
const IPPROTO_RAW: i32 = 255;

/// Sends, from inside `ns`, a lone TCP ACK from `from` to `to` that belongs to no connection
///
/// With `nf_conntrack_tcp_loose=0` a middlebox's conntrack must call it INVALID; with loose
/// pickup it would become a new ESTABLISHED flow.
pub fn lone_ack(ns: &Netns, from: SocketAddrV4, to: SocketAddrV4) -> Result<()> {
    let socket = ns
        .enter(|| Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW))))?
        .map_err(LabError::io("open raw socket"))?;
    let builder = PacketBuilder::ipv4(from.ip().octets(), to.ip().octets(), 64)
        .tcp(from.port(), to.port(), 0x1000_0000, 65535)
        .ack(0x2000_0000);
    let mut packet = Vec::with_capacity(builder.size(0));
    builder
        .write(&mut packet, &[])
        .map_err(|e| LabError::Check(format!("build ack: {e}")))?;
    let target = SockAddr::from(SocketAddrV4::new(*to.ip(), 0));
    socket
        .send_to(&packet, &target)
        .map_err(LabError::io(format!("send ack to {to}")))?;
    Ok(())
}
