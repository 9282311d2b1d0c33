//! The address plan of every World (all inside 198.18.0.0/15, RFC 2544's benchmarking block)
//!
//! ```text
//! LAN of client i    198.18.11.0/24   client .1, LAN hosts .2 and up (every client has its own
//!                                     LAN, so two clients may hold identical LAN addresses)
//! client-side WAN    198.18.12.0/24   router inside .1, client i's upstream .(2 + i)
//! server-side WAN    198.18.14.0/24   router outside .1 (the masquerade address), server .2
//! Internet           198.18.13.0/24   server public .1, Internet hosts .2 and up, all on-link
//! ```
//!
//! MACs are `02:00:00:00:ss:nn`: `ss` names the segment ([`TAG_INTERNET`], [`TAG_CLIENT_WAN`],
//! [`TAG_SERVER_WAN`], or [`lan_tag`] of a client) and `nn` is the last octet of the address.

use std::net::Ipv4Addr;

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

/// Segment tag of client `index`'s LAN
pub fn lan_tag(index: usize) -> u8 {
    0x20u8.wrapping_add(index as u8)
}

/// The MAC of address `ip` on the segment tagged `tag`
pub fn mac(tag: u8, ip: Ipv4Addr) -> [u8; 6] {
    [2, 0, 0, 0, tag, ip.octets()[3]]
}
