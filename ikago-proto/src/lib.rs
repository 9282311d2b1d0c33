//! The sans-IO core of IkaGo-rs: a FakeTCP tunnel with encryption, fragmentation, NAT and ARP
//!
//! Two machines, [`Client`] and [`Server`], share one drive loop. Neither touches a socket, a
//! clock or the OS random generator: frames and time come in through [`Input`], frames to inject
//! and events come out of `poll_output` into the caller's buffer. [`Machine`] holds either one,
//! for drivers that run both the same way.
//!
//! # Run loop
//!
//! After every input, call `poll_output` until it returns [`Output::Timeout`]; then wait for the
//! next frame or that instant, whichever comes first.
//!
//! ```no_run
//! # use ikago_proto::*;
//! # fn capture() -> Option<(DeviceId, Vec<u8>)> { None }
//! # fn inject(_: DeviceId, _: &[u8]) {}
//! # fn socket(_: StreamOp, _: &[u8]) {}
//! # fn run(mut client: Client) {
//! let mut buf = vec![0u8; MAX_FRAME_LEN];
//! let mut input = Input::Timeout(std::time::Instant::now());
//! loop {
//!     // the frame must outlive handle_input only
//!     client.handle_input(input);
//!     let deadline = loop {
//!         match client.poll_output(&mut buf) {
//!             Output::Transmit(t) => inject(t.device, &buf[..t.len]),
//!             // tcp mode only: connect, write (the bytes are in buf) or close
//!             Output::Stream(op) => socket(op, &buf),
//!             Output::Event(e) => println!("{e:?}"),
//!             Output::Timeout(at) => break at,
//!         }
//!     };
//!     input = match capture() {
//!         Some((device, frame)) => {
//!             client.handle_input(Input::Frame { now: std::time::Instant::now(), device, data: &frame });
//!             Input::Timeout(std::time::Instant::now())
//!         }
//!         None => Input::Timeout(deadline),
//!     };
//! }
//! # }
//! ```
//!
//! # What travels on the wire
//!
//! Each inner IPv4 packet is sealed (see [`crypto`]) into the payload of one FakeTCP segment:
//! Ethernet, IPv4 (or IPv6, see below) and a TCP header whose handshake, sequence and
//! acknowledgment numbers, options, pure ACKs and keepalives look like a Linux connection. A
//! frame larger than the tunnel MTU goes out as IPv4 fragments, which the original Go peers
//! reassemble.
//!
//! In `tcp` mode ([`Transport::Tcp`]) the tunnel is a kernel TCP connection instead: the runner
//! carries out [`Output::Stream`] and reports the connection with [`Input::Stream`]; the
//! [`stream`] module says who does what.
//!
//! # IPv6
//!
//! Inner IPv6 travels only over the `ikago2` wire ([`Protocol::Ikago2`]): the Go original has
//! no IPv6 and cannot speak `ikago2`, so a peer that speaks `ikago2` is always IkaGo-rs and takes
//! inner IPv6. On the `ikago` wire the client drops its sources' IPv6 packets
//! ([`DropReason::Ipv6OnIkago`]) and the Go-compatible wire stays exactly as it was.
//!
//! The tunnel itself may run over IPv6 (outer IPv6), with either wire, every method and KCP,
//! carrying inner IPv4 and (on `ikago2`) inner IPv6 alike:
//!
//! - Tunnel addresses are [`SocketAddr`](std::net::SocketAddr)s throughout. A client whose
//!   server (or a fallback) is IPv6 tunnels from its upstream device's IPv6 address
//!   ([`DeviceConfig::ipv6`], else [`ConfigError::NoIpv6Upstream`]), reaching it through the
//!   device's IPv6 gateway or on-link, by neighbour discovery; failing over may change family.
//!   A server accepts FakeTCP on each listen device's IPv6 address as on its IPv4 address,
//!   keying both kinds of clients in one table ([`Shard::of`] hashes the last 32 bits of an
//!   IPv6 address).
//! - Outer IPv6 packets have hop limit 64, a random flow label per connection and the IPv6 TCP
//!   checksum; handshake, RSTs, challenge ACKs and SYN cookies work as over IPv4. A frame larger
//!   than the connection's frame size leaves in fragments with a fragment header
//!   ([`fragment::fragment6`]), since IPv6 routers never fragment; outer fragments are
//!   reassembled under the reassembly limits.
//! - An ICMPv6 Packet Too Big quoting one of our unacknowledged segments lowers that
//!   connection's frame size (never below 1280; [`Event::PathMtuLowered`]); others are counted
//!   ([`DropReason::BadPacketTooBig`]). Over IPv4 DF stays clear and routers fragment.
//! - A device may have IPv6 only ([`DeviceConfig::addr`] `None`, [`ConfigError::NoAddress`]
//!   without either family): a client reaches an IPv6 server from an IPv6-only upstream device
//!   (an IPv4 server needs its IPv4 address, else [`ConfigError::NoIpv4Upstream`]); a server
//!   whose upstream device has no IPv4 address drops inner IPv4 ([`DropReason::NoIpv4`]) and
//!   NATs inner IPv6 as usual. No ARP request leaves a device without IPv4.
//!
//! - The client tunnels the IPv6 packets of its LAN sources ([`ClientConfig::sources6`]),
//!   answers neighbour solicitations for [`ClientConfig::publish6`] on its listen devices
//!   (proxy NDP, the counterpart of proxy ARP; never for other addresses), and writes replies to
//!   the LAN host's MAC, learned from its frames. A reply larger than its fragment size is not
//!   fragmented: a Packet Too Big goes back through the tunnel to its sender. Fragments from a
//!   LAN host are reassembled (bounded as for IPv4) before they are tunnelled.
//! - The server NATs inner IPv6 (TCP, UDP, ICMPv6 echo) onto its upstream device's IPv6
//!   address ([`DeviceConfig::ipv6`]) with the same full-cone rules, pools and timeouts as
//!   IPv4 (NAT66), translates ICMPv6 errors both ways with their quoted headers, and resolves
//!   its IPv6 gateway by neighbour discovery. Without an upstream IPv6 address inner IPv6 is a
//!   counted drop ([`DropReason::NoIpv6`]). A packet larger than its fragment size is answered
//!   with a Packet Too Big to the LAN host, as IPv6 routers do; replies arriving in fragments
//!   are reassembled before translation. An `ikago2` packet record carries IPv6 with its length
//!   taken from the IPv6 payload length.
//!
//! # Panics, errors and drops
//!
//! `new` returns [`ConfigError`] for configuration mistakes. Network input never fails and never
//! panics: what cannot be used is counted in [`Stats::drops`] by [`DropReason`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod admission;
mod arp;
mod client;
mod config;
pub mod crypto;
mod either;
mod event;
mod faketcp;
pub mod fragment;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod hashing;
pub mod ikago2;
mod io;
mod kcp;
mod machine;
mod nat;
mod openwatch;
mod outer;
mod pmtu;
mod ratelimit;
mod server;
mod shard;
mod stats;
pub mod stream;
mod syncookie;
mod timer;
mod txq;
pub mod wire;

pub use client::{Client, DYNAMIC_PORTS};
pub use config::{
    ClientConfig, ConfigError, DeviceConfig, DeviceRole, Ikago2Config, Ipv4Net, Ipv6Link, Ipv6Net,
    LinkType, MIN_MTU, NatConfig, Protocol, ReassemblyLimits, ServerConfig, TcpTuning, Transport,
};
pub use crypto::Method;
pub use either::{Machine, MachineConfig};
pub use event::{Event, PeerLostReason};
pub use io::{ConnId, DeviceId, Input, MAX_FRAME_LEN, Output, StreamInput, StreamOp, Transmit};
pub use kcp::{KcpConfigError, KcpStats, KcpTuning};
pub use server::Server;
pub use shard::Shard;
pub use stats::{Counter, DropReason, Drops, Peer, PeerStats, Stats};
pub use wire::{Mac, ParseMacError};
