//! Crafted TCP segments through a raw socket: a lone ACK to probe the firewall's conntrack
//! strictness, and a bounded SYN flood with spoofed sources to attack the server's tunnel port

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::addr::is_lab_address;
use crate::{LabError, Netns, Result};

/// IPPROTO_RAW: the caller writes the IPv4 header (raw(7))
const IPPROTO_RAW: i32 = 255;

/// A raw socket opened inside `ns`
fn raw_socket(ns: &Netns) -> Result<Socket> {
    ns.enter(|| Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_RAW))))?
        .map_err(LabError::io("open raw socket"))
}

/// Sends, from inside `ns`, a lone TCP ACK from `from` to `to` that belongs to no connection
///
/// With `nf_conntrack_tcp_loose=0` a middlebox's conntrack must call it INVALID; with loose
/// pickup it would become a new ESTABLISHED flow.
pub fn lone_ack(ns: &Netns, from: SocketAddrV4, to: SocketAddrV4) -> Result<()> {
    let socket = raw_socket(ns)?;
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

/// Most SYNs one flood may send
pub const MAX_FLOOD_SYNS: u32 = 100_000;
/// Longest a flood may last
pub const MAX_FLOOD_TIME: Duration = Duration::from_secs(30);

/// A SYN flood: `count` SYNs to `target`, each from a random address among `hosts` addresses
/// starting at `first_source`, a random port (1024 and up) and a random sequence number, spread
/// evenly over `duration`. Every address involved must be in 198.18.0.0/15, and the flood is
/// bounded by [`MAX_FLOOD_SYNS`] and [`MAX_FLOOD_TIME`]: [`SynFlood::check`].
#[derive(Clone, Copy, Debug)]
pub struct SynFlood {
    /// Where the SYNs go
    pub target: SocketAddrV4,
    /// The first spoofed source address
    pub first_source: Ipv4Addr,
    /// How many consecutive addresses the sources are drawn from
    pub hosts: u32,
    /// SYNs to send
    pub count: u32,
    /// Time to spread them over
    pub duration: Duration,
    /// Seed of the sources, ports and sequence numbers
    pub seed: u64,
}

/// What a flood did
#[derive(Clone, Copy, Debug)]
pub struct FloodReport {
    /// SYNs sent
    pub sent: u32,
    /// From the first SYN to the last
    pub elapsed: Duration,
}

impl SynFlood {
    /// `Err` unless the target and every source are in 198.18.0.0/15 and the flood is within
    /// its bounds
    pub fn check(&self) -> Result<()> {
        let last = u32::from(self.first_source)
            .checked_add(self.hosts.saturating_sub(1))
            .map(Ipv4Addr::from);
        let outside = [Some(*self.target.ip()), Some(self.first_source), last]
            .into_iter()
            .find(|a| !a.is_some_and(is_lab_address));
        if let Some(a) = outside {
            return Err(LabError::Check(format!(
                "SYN flood refused: {} is outside 198.18.0.0/15",
                a.map_or_else(|| "the source range".to_owned(), |a| a.to_string())
            )));
        }
        if self.hosts == 0 || self.count > MAX_FLOOD_SYNS || self.duration > MAX_FLOOD_TIME {
            return Err(LabError::Check(format!(
                "SYN flood refused: {} SYNs from {} hosts over {:?} (at most {MAX_FLOOD_SYNS} \
                 over {MAX_FLOOD_TIME:?})",
                self.count, self.hosts, self.duration
            )));
        }
        Ok(())
    }

    /// Sends the flood from inside `ns`, after [`SynFlood::check`]
    pub fn send(&self, ns: &Netns) -> Result<FloodReport> {
        self.check()?;
        let socket = raw_socket(ns)?;
        let to = SockAddr::from(SocketAddrV4::new(*self.target.ip(), 0));
        let mut rng = self.seed;
        let mut packet = Vec::with_capacity(64);
        let start = Instant::now();
        for i in 0..self.count {
            // evenly paced: SYN i leaves no earlier than i/count of the way through
            let due = self.duration.mul_f64(f64::from(i) / f64::from(self.count));
            if let Some(ahead) = due.checked_sub(start.elapsed())
                && ahead >= Duration::from_millis(2)
            {
                std::thread::sleep(ahead);
            }
            packet.clear();
            self.syn(&mut rng, &mut packet)?;
            socket
                .send_to(&packet, &to)
                .map_err(LabError::io(format!("send SYN {i} to {}", self.target)))?;
        }
        Ok(FloodReport {
            sent: self.count,
            elapsed: start.elapsed(),
        })
    }

    /// Writes the next SYN into `packet`
    fn syn(&self, rng: &mut u64, packet: &mut Vec<u8>) -> Result<()> {
        let r = splitmix64(rng);
        let source = Ipv4Addr::from(u32::from(self.first_source) + (r as u32) % self.hosts);
        let port = 1024 + ((r >> 32) as u16) % (u16::MAX - 1024);
        let seq = (splitmix64(rng) >> 16) as u32;
        PacketBuilder::ipv4(source.octets(), self.target.ip().octets(), 64)
            .tcp(port, self.target.port(), seq, 64240)
            .syn()
            .write(packet, &[])
            .map_err(|e| LabError::Check(format!("build SYN: {e}")))
    }
}

/// The next value of a SplitMix64 sequence
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    fn flood() -> SynFlood {
        SynFlood {
            target: SocketAddrV4::new(Ipv4Addr::new(198, 18, 23, 2), 18081),
            first_source: Ipv4Addr::new(198, 18, 22, 10),
            hosts: 240,
            count: 20_000,
            duration: Duration::from_secs(5),
            seed: 7,
        }
    }

    #[test]
    fn only_lab_addresses_and_bounded_floods_pass_the_check() {
        flood().check().expect("a lab flood");
        let outside = [
            SynFlood {
                target: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 18081),
                ..flood()
            },
            SynFlood {
                first_source: Ipv4Addr::new(10, 0, 0, 1),
                ..flood()
            },
            // the last source, 198.20.0.9, leaves the range
            SynFlood {
                first_source: Ipv4Addr::new(198, 19, 255, 250),
                hosts: 16,
                ..flood()
            },
            SynFlood {
                first_source: Ipv4Addr::new(255, 255, 255, 250),
                hosts: 16,
                ..flood()
            },
        ];
        for f in outside {
            let e = f.check().unwrap_err().to_string();
            assert!(e.contains("outside 198.18.0.0/15"), "{f:?}: {e}");
        }
        for f in [
            SynFlood {
                count: MAX_FLOOD_SYNS + 1,
                ..flood()
            },
            SynFlood {
                duration: MAX_FLOOD_TIME + Duration::from_secs(1),
                ..flood()
            },
            SynFlood {
                hosts: 0,
                ..flood()
            },
        ] {
            assert!(f.check().is_err(), "{f:?}");
        }
    }

    #[test]
    fn syns_come_from_the_source_range_to_the_target() {
        let f = flood();
        let (mut rng, mut packet) = (f.seed, Vec::new());
        let mut ports = std::collections::HashSet::new();
        for _ in 0..1000 {
            packet.clear();
            f.syn(&mut rng, &mut packet).unwrap();
            let p = SlicedPacket::from_ip(&packet).unwrap();
            let Some(NetSlice::Ipv4(ip)) = p.net else {
                panic!("IPv4")
            };
            let src = ip.header().source_addr();
            assert!((10..250).contains(&src.octets()[3]) && src.octets()[..3] == [198, 18, 22]);
            assert_eq!(ip.header().destination_addr(), *f.target.ip());
            let Some(TransportSlice::Tcp(tcp)) = p.transport else {
                panic!("TCP")
            };
            assert!(tcp.syn() && !tcp.ack() && tcp.destination_port() == 18081);
            assert!(tcp.source_port() >= 1024);
            ports.insert(tcp.source_port());
        }
        assert!(ports.len() > 900, "random ports: {}", ports.len());
    }
}
