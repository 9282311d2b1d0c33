//! Whether the server answers a FakeTCP handshake: the core's real client machine, over pcap on
//! the upstream device alone, for at most [`LIMIT`]; in `--mode tcp`, whether it accepts a kernel
//! TCP connection within [`LIMIT`]
//!
//! The machine is the one a run would build from the same options; only its upstream device is
//! opened, with that device's filter for the server's segments (and ARP, to find the gateway),
//! so nothing from the LAN reaches it and nothing is sent there. It sends its SYN (and
//! retransmissions) and resolves the gateway by ARP (over IPv6 by neighbour discovery) as in a
//! run; the server's SYN+ACK completes the check, read from the captured frame itself (on the
//! ikago2 wire the machine says it is connected only once the server answers its first record,
//! which the RST below prevents). Without `--rule`'s drop the kernel answers that SYN+ACK with
//! an RST, which ends the server's side of this short connection, as the end of the check would
//! anyway.

use super::Report;
use crate::app::os_seed;
use crate::capture::{self, IoOptions};
use crate::filter;
use crate::privilege::Held;
use ikago_config::ClientSettings;
use ikago_proto::wire::{ethernet, ip, proto, tcp};
use ikago_proto::{
    Client, DeviceConfig, DeviceId, DeviceRole, Event, Input, MAX_FRAME_LEN, Output,
    PeerLostReason, Transport,
};
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::thread::CapabilitySet;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long the server has to answer
const LIMIT: Duration = Duration::from_secs(3);

/// How the handshake ended
enum Ended {
    /// The server answered after this long
    Answered(Duration),
    /// The server reset it
    Reset,
    /// No answer to this many SYNs within [`LIMIT`]
    Silent(u32),
}

/// Runs the handshake with the server of `settings` over `devices` and reports how it went
pub(super) fn check(report: &mut Report, settings: &ClientSettings, devices: Vec<DeviceConfig>) {
    let server = settings.server;
    if settings.common.mode == Transport::Tcp {
        let start = Instant::now();
        return match std::net::TcpStream::connect_timeout(&server, LIMIT) {
            Ok(_) => report.ok(
                "handshake",
                format!(
                    "the server {server} accepted a TCP connection in {} ms",
                    start.elapsed().as_millis()
                ),
            ),
            Err(e) => report.fail(
                "handshake",
                format!("{server} did not accept a TCP connection: {e}"),
            ),
        };
    }
    if !Held::current().is_ok_and(|h| h.missing(CapabilitySet::NET_RAW).is_empty()) {
        return report.warn(
            "handshake",
            format!("not tried with {server}: capturing needs CAP_NET_RAW, which this check lacks"),
        );
    }
    match handshake(settings, devices) {
        Ok(Ended::Answered(rtt)) => report.ok(
            "handshake",
            format!(
                "the server {server} answered a FakeTCP handshake in {} ms",
                rtt.as_millis()
            ),
        ),
        Ok(Ended::Reset) => report.fail(
            "handshake",
            format!(
                "{server} answered the FakeTCP handshake with a reset: no IkaGo server listens \
                 on that port"
            ),
        ),
        Ok(Ended::Silent(syns)) => report.fail(
            "handshake",
            format!(
                "no answer from {server} to {syns} SYN{} within {} s: the server is down, the \
                 port is wrong, or something on the way drops TCP to it",
                if syns == 1 { "" } else { "s" },
                LIMIT.as_secs()
            ),
        ),
        Err(e) => report.fail("handshake", format!("cannot try it with {server}: {e}")),
    }
}

/// The handshake itself; `Err` when it could not be tried
fn handshake(settings: &ClientSettings, devices: Vec<DeviceConfig>) -> Result<Ended, String> {
    let up = devices
        .iter()
        .position(|d| d.role.is_upstream())
        .ok_or("no upstream device")?;
    let name = devices[up].name.clone();
    let seed = os_seed().map_err(|e| e.0)?;
    let mut config = settings.client_config(devices, seed);
    config.ikago2.unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let start = Instant::now();
    let mut client = Client::new(config.clone(), start).map_err(|e| e.to_string())?;
    let mut upstream_only = config;
    upstream_only.devices[up].role = DeviceRole::Upstream;
    let filter = filter::client(&upstream_only, client.local_addr()).swap_remove(up);
    let mut io = capture::open(&name, &filter, IoOptions::of(&settings.common))
        .map_err(|e| e.to_string())?;
    let device = DeviceId(u8::try_from(up).map_err(|_| "too many devices")?);
    let deadline = start + LIMIT;
    let mut buf = vec![0u8; MAX_FRAME_LEN];
    let mut syns = 0;
    loop {
        // everything the machine has to say, up to its next deadline
        let wake = loop {
            match client.poll_output(&mut buf) {
                Output::Transmit(t) if t.device == device => {
                    io.inject
                        .send_one(&buf[..t.len])
                        .map_err(|e| format!("cannot send on {name}: {e}"))?;
                }
                Output::Transmit(_) | Output::Stream(_) => {}
                Output::Event(Event::Connected { rtt, .. }) => return Ok(Ended::Answered(rtt)),
                Output::Event(Event::PeerLost {
                    reason: PeerLostReason::Reset,
                    ..
                }) => return Ok(Ended::Reset),
                Output::Event(Event::Connecting { .. }) => syns += 1,
                Output::Event(_) => {}
                Output::Timeout(at) => break at,
            }
        };
        let now = Instant::now();
        if now >= deadline {
            return Ok(Ended::Silent(syns));
        }
        let wait = wake.min(deadline).saturating_duration_since(now);
        let timeout = Timespec::try_from(wait).map_err(|e| e.to_string())?;
        let mut fds = [PollFd::new(&io.capture, PollFlags::IN)];
        poll(&mut fds, Some(&timeout)).map_err(|e| format!("cannot wait on {name}: {e}"))?;
        loop {
            match io.capture.next_packet() {
                Ok(p) if syn_ack_from(p.data, settings.server) => {
                    return Ok(Ended::Answered(start.elapsed()));
                }
                Ok(p) => client.handle_input(Input::Frame {
                    now: Instant::now(),
                    device,
                    data: p.data,
                }),
                Err(pcap::Error::TimeoutExpired) => break,
                Err(e) => return Err(format!("capture on {name} failed: {e}")),
            }
        }
        let now = Instant::now();
        if now >= wake {
            client.handle_input(Input::Timeout(now));
        }
    }
}

/// Whether `frame` is a SYN+ACK from `server` (IPv4 or IPv6, its checksum right)
fn syn_ack_from(frame: &[u8], server: SocketAddr) -> bool {
    let Some(p) = ethernet::parse(frame).and_then(|f| ip::Packet::parse(f.payload)) else {
        return false;
    };
    if p.is_fragment() || p.src() != server.ip() || p.protocol() != proto::TCP {
        return false;
    }
    tcp::Segment::parse(p.payload(), p.src(), p.dst()).is_some_and(|t| {
        t.src_port() == server.port() && t.flags() & (tcp::SYN | tcp::ACK) == tcp::SYN | tcp::ACK
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use std::net::IpAddr;

    /// A TCP segment from `from` to port 50000 with SYN, and ACK when `ack`
    fn segment(from: SocketAddr, ack: bool) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ip = match from.ip() {
            IpAddr::V4(a) => eth.ipv4(a.octets(), [198, 18, 22, 2], 64),
            IpAddr::V6(a) => eth.ipv6(
                a.octets(),
                "2001:db8:22::2"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
                64,
            ),
        };
        let mut t = ip.tcp(from.port(), 50000, 7, 65535).syn();
        if ack {
            t = t.ack(1);
        }
        let mut v = Vec::new();
        t.write(&mut v, &[]).unwrap();
        v
    }

    #[test]
    fn the_servers_syn_ack_is_the_answer_in_either_family() {
        for server in ["198.18.23.2:18081", "[2001:db8:23::2]:18081"] {
            let server: SocketAddr = server.parse().unwrap();
            assert!(syn_ack_from(&segment(server, true), server), "{server}");
            assert!(!syn_ack_from(&segment(server, false), server), "a SYN");
            let mut other_port = server;
            other_port.set_port(18082);
            assert!(!syn_ack_from(&segment(other_port, true), server));
            let mut broken = segment(server, true);
            let last = broken.len() - 1;
            broken[last] ^= 1;
            assert!(!syn_ack_from(&broken, server), "a bad checksum");
        }
        let v6: SocketAddr = "[2001:db8:23::2]:18081".parse().unwrap();
        let v4: SocketAddr = "198.18.23.2:18081".parse().unwrap();
        assert!(!syn_ack_from(&segment(v4, true), v6), "another host");
        assert!(!syn_ack_from(&[0; 10], v6), "not a frame");
    }
}
