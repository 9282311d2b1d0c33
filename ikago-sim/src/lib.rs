//! Deterministic simulation of IkaGo-rs: LAN hosts, Client, a seeded lossy link, Server and
//! Internet hosts, exchanging Ethernet frames on a virtual clock
//!
//! No sockets, no sleeps, no root and no real clock: a [`World`] takes one `Instant` when it is
//! created and from then on time is virtual. Hosts are real IP stacks (smoltcp); the client and
//! the server are the `ikago_proto` machines driven as a runner drives them; the router between
//! them can block UDP and ICMP, track TCP as strictly as Linux conntrack, and masquerade. In
//! `tcp` mode the tunnel's kernel TCP connections are an ideal byte stream beside the router,
//! delayed and read in pieces of random size ([`WorldConfig::stream_delay`],
//! [`WorldConfig::stream_read_max`]).
//!
//! The World is dual-stack when asked ([`WorldConfig::dual_stack`]): hosts may have IPv6
//! addresses as well or only ([`HostIpv6`]), the machines get theirs (the server its NAT66
//! address, the clients their LAN's IPv6 prefix as a source), the routers forward IPv6 with
//! neighbour discovery, the firewall blocks ICMPv6 as it blocks ICMP, and an edge router beyond
//! the Internet segment answers oversize IPv6 packets with Packet Too Big.
//!
//! ```
//! use ikago_sim::{HostConfig, World, WorldConfig, addr};
//! use std::net::SocketAddrV4;
//!
//! let mut world = World::new(WorldConfig::new(1));
//! let client = world.add_client(|_| {});
//! let pc = world.add_lan_host(client, HostConfig::lan("pc", addr::lan(2)));
//! let echo = world.add_internet_host(HostConfig::internet("echo", addr::internet(2)));
//! world.host_mut(echo).udp_echo(7);
//! world.host_mut(pc).udp_send(5000, SocketAddrV4::new(addr::internet(2), 7), b"hello");
//! world.run_until(|w| !w.host(pc).datagrams().is_empty(), 10_000);
//! assert_eq!(world.host(pc).payloads_on(5000), [b"hello"]);
//! ```
//!
//! The address plan is in [`addr`]; the topology and the step rule in [`World`]'s module docs.

pub mod addr;
mod capture;
mod conntrack;
mod defrag;
pub mod dns;
mod drops;
mod fabric;
mod host;
mod ipv6;
mod link;
mod machine;
mod nat;
mod packet;
mod router;
mod streams;
mod world;

pub use capture::{Capture, CapturedFrame, Direction, Tap};
pub use drops::{ConntrackInvalid, Drops, SimDrop};
pub use fabric::{LoggedEvent, Origin};
pub use host::{
    Datagram, EchoReply, Host, HostConfig, HostIpv6, TcpStream, Transfer, stream_bytes,
};
pub use ipv6::Icmp6Error;
pub use link::{LinkConfig, Oversize};
pub use router::RouterConfig;
pub use world::{ClientId, HostId, UNIX_EPOCH_OFFSET, World, WorldConfig, cached_psk};
