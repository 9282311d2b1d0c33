//! The address plan of every World (all inside 198.18.0.0/15, RFC 2544's benchmarking block)
//!
//! ```text
//! LAN of client i    198.18.11.0/24   client .1, LAN hosts .2 and up (every client has its own
//!                                     LAN, so two clients may hold identical LAN addresses)
//! client-side WAN    198.18.12.0/24   router inside .1, client i's upstream .(2 + i)
//! server-side WAN    198.18.14.0/24   router outside .1 (the masquerade address), server .2
//! Internet           198.18.13.0/24   server public .1, Internet hosts .2 and up, all on-link,
//!                                     the edge router .254
//! beyond the edge      198.18.15.0/24   edge router .1, remote hosts .2 and up
//! ```
//!
//! The IPv6 plane mirrors it, one /64 per segment (the LANs unique-local, the rest from the
//! documentation prefix), with the same last numbers:
//!
//! ```text
//! LAN of client i    fd00:11::/64       client ::1, LAN hosts ::2 and up
//! client-side WAN    2001:db8:12::/64   router inside ::1, client i's upstream ::(2 + i)
//! server-side WAN    2001:db8:14::/64   router outside ::1, server ::2
//! Internet           2001:db8:13::/64   server public ::1 (its NAT66 address), Internet hosts
//!                                       ::2 and up, the edge router ::fe (the server's gateway)
//! beyond the edge    2001:db8:15::/64   edge router ::1, remote hosts ::2 and up
//! ```
//!
//! MACs are `02:00:00:00:ss:nn`: `ss` names the segment ([`TAG_INTERNET`], [`TAG_CLIENT_WAN`],
//! [`TAG_SERVER_WAN`], [`TAG_REMOTE`] or [`lan_tag`] of a client) and `nn` is the last octet of
//! the address (the IPv4 one of a dual-stack station).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Prefix length of every segment
pub const PREFIX_LEN: u8 = 24;
/// The client's address on its LAN (the LAN hosts' default gateway)
pub const CLIENT_LAN: Ipv4Addr = Ipv4Addr::new(198, 18, 11, 1);
/// The router's address on the client-side WAN (the clients' gateway)
pub const ROUTER_INSIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 12, 1);
/// The router's address on the server-side WAN (also the masquerading NAT's outer address)
pub const ROUTER_OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 14, 1);
/// The server's tunnel (listen) address
pub const SERVER_WAN: Ipv4Addr = Ipv4Addr::new(198, 18, 14, 2);
/// The server's public (NAT) address on the Internet segment
pub const SERVER_PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 1);
/// The server's FakeTCP port
pub const SERVER_PORT: u16 = 443;
/// Prefix length of every IPv6 segment
pub const PREFIX_LEN6: u8 = 64;
/// The client's IPv6 address on its LAN (the LAN hosts' IPv6 gateway)
pub const CLIENT_LAN6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, 1);
/// The router's IPv6 address on the client-side WAN
pub const ROUTER_INSIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 1);
/// The router's IPv6 address on the server-side WAN
pub const ROUTER_OUTSIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x14, 0, 0, 0, 0, 1);
/// The server's IPv6 tunnel (listen) address
pub const SERVER_WAN6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x14, 0, 0, 0, 0, 2);
/// The server's IPv6 public (NAT66) address on the Internet segment
pub const SERVER_PUBLIC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 1);
/// The edge router's address on the Internet segment
pub const EDGE_INTERNET: Ipv4Addr = Ipv4Addr::new(198, 18, 13, 254);
/// The edge router's IPv6 address on the Internet segment (the server's IPv6 gateway)
pub const EDGE_INTERNET6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, 0xfe);
/// The edge router's address beyond the edge (the remote hosts' gateway)
pub const EDGE_REMOTE: Ipv4Addr = Ipv4Addr::new(198, 18, 15, 1);
/// The edge router's IPv6 address beyond the edge (the remote hosts' IPv6 gateway)
pub const EDGE_REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x15, 0, 0, 0, 0, 1);
/// Segment tag of the segment beyond the edge router
pub const TAG_REMOTE: u8 = 0x15;
/// Segment tag of the Internet segment
pub const TAG_INTERNET: u8 = 0x13;
/// Segment tag of the client-side WAN
pub const TAG_CLIENT_WAN: u8 = 0x12;
/// Segment tag of the server-side WAN
pub const TAG_SERVER_WAN: u8 = 0x14;

/// The upstream address of client `index` (0-based)
///
/// # Panics
/// If `index` is above 250.
pub fn client_wan(index: usize) -> Ipv4Addr {
    let octet = u8::try_from(index + 2)
        .ok()
        .filter(|&o| o < 255)
        .expect("at most 251 clients");
    Ipv4Addr::new(198, 18, 12, octet)
}

/// An address on a client's LAN: `198.18.11.n`
pub fn lan(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 11, n)
}

/// An address on the Internet segment: `198.18.13.n`
pub fn internet(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 13, n)
}

/// The IPv6 upstream address of client `index` (0-based): `2001:db8:12::(2 + index)`
///
/// # Panics
/// If `index` is above 250.
pub fn client_wan6(index: usize) -> Ipv6Addr {
    let n = u16::from(client_wan(index).octets()[3]);
    Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, n)
}

/// An IPv6 address on a client's LAN: `fd00:11::n`
pub fn lan6(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x11, 0, 0, 0, 0, 0, u16::from(n))
}

/// An IPv6 address on the Internet segment: `2001:db8:13::n`
pub fn internet6(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x13, 0, 0, 0, 0, u16::from(n))
}

/// An IPv6 address beyond the edge router: `2001:db8:15::n`
pub fn remote6(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x15, 0, 0, 0, 0, u16::from(n))
}

/// An IPv6 address on the client-side WAN: `2001:db8:12::n`
pub fn client_side6(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, u16::from(n))
}

/// An IPv6 address on the server-side WAN: `2001:db8:14::n`
pub fn server_side6(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x14, 0, 0, 0, 0, u16::from(n))
}

/// Segment tag of client `index`'s LAN
pub fn lan_tag(index: usize) -> u8 {
    0x20u8.wrapping_add(index as u8)
}

/// The MAC of address `ip` on the segment tagged `tag`
pub fn mac(tag: u8, ip: Ipv4Addr) -> [u8; 6] {
    [2, 0, 0, 0, tag, ip.octets()[3]]
}

/// The MAC of IPv6 address `ip` on the segment tagged `tag` (for an IPv6-only station)
pub fn mac6(tag: u8, ip: Ipv6Addr) -> [u8; 6] {
    [2, 0, 0, 0, tag, ip.octets()[15]]
}
