//! Crafted TCP segments through a raw socket: a lone ACK to probe the firewall's conntrack
//! strictness, a bounded SYN flood with spoofed sources to attack the server's tunnel port, and
//! a replay attack: tunnel segments captured on a device and sent again

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use std::io::Read;

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
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
    super::lab_only(*to.ip())?;
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

/// Most segments one capture keeps
pub const MAX_CAPTURED: usize = 10_000;
/// Longest a capture may last
pub const MAX_CAPTURE_TIME: Duration = Duration::from_secs(30);

/// Captures, from inside `ns` on `device` for `duration` (at most [`MAX_CAPTURE_TIME`]), the
/// IPv4 packets that leave or cross it toward `to` carrying TCP payload (at most
/// [`MAX_CAPTURED`]); `while_capturing` runs meanwhile, to make traffic. Both addresses of each
/// packet are checked to be in 198.18.0.0/15
pub fn capture_to(
    ns: &Netns,
    device: &str,
    to: SocketAddrV4,
    duration: Duration,
    while_capturing: impl FnOnce() + Send,
) -> Result<Vec<Vec<u8>>> {
    if duration > MAX_CAPTURE_TIME || !is_lab_address(*to.ip()) {
        return Err(LabError::Check(format!(
            "a capture toward {to} for {duration:?}: outside 198.18.0.0/15 or too long"
        )));
    }
    // ETH_P_IP, in network byte order as packet(7) wants it
    let eth_p_ip = i32::from(0x0800u16.to_be());
    let socket = ns
        .enter(|| Socket::new(Domain::PACKET, Type::DGRAM, Some(Protocol::from(eth_p_ip))))?
        .map_err(LabError::io("open packet socket"))?;
    socket
        .bind_device(Some(device.as_bytes()))
        .map_err(LabError::io(format!("bind the packet socket to {device}")))?;
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .map_err(LabError::io("set the capture's read timeout"))?;
    let deadline = Instant::now() + duration;
    let mut kept = Vec::new();
    std::thread::scope(|scope| {
        let traffic = scope.spawn(while_capturing);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline && kept.len() < MAX_CAPTURED {
            let Ok(n) = (&socket).read(&mut buf) else {
                continue;
            };
            if is_tunnel_payload(&buf[..n], to) {
                kept.push(buf[..n].to_vec());
            }
        }
        traffic
            .join()
            .map_err(|_| LabError::Check("the traffic thread panicked".into()))
    })?;
    Ok(kept)
}

/// Whether `packet` is IPv4 TCP between lab addresses, to `to`, with payload
fn is_tunnel_payload(packet: &[u8], to: SocketAddrV4) -> bool {
    let Ok(p) = SlicedPacket::from_ip(packet) else {
        return false;
    };
    let (Some(NetSlice::Ipv4(ip)), Some(TransportSlice::Tcp(tcp))) = (p.net, p.transport) else {
        return false;
    };
    let (src, dst) = (ip.header().source_addr(), ip.header().destination_addr());
    is_lab_address(src)
        && dst == *to.ip()
        && tcp.destination_port() == to.port()
        && !tcp.payload().is_empty()
}

/// Sends the IPv4 `packets` again, as they are, from inside `ns` (a replay attack); each must
/// be between lab addresses
pub fn replay(ns: &Netns, packets: &[Vec<u8>]) -> Result<()> {
    let socket = raw_socket(ns)?;
    for p in packets {
        let Ok(ip) = etherparse::Ipv4HeaderSlice::from_slice(p) else {
            return Err(LabError::Check("replay: not an IPv4 packet".into()));
        };
        let (src, dst) = (ip.source_addr(), ip.destination_addr());
        if !is_lab_address(src) || !is_lab_address(dst) {
            return Err(LabError::Check(format!(
                "replay: {src} -> {dst} is outside 198.18.0.0/15"
            )));
        }
        socket
            .send_to(p, &SockAddr::from(SocketAddrV4::new(dst, 0)))
            .map_err(LabError::io(format!("replay a segment to {dst}")))?;
    }
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
