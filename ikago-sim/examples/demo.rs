//! The simulation in one run: a LAN host resolves a name, gets a UDP echo and a ping reply from
//! the Internet through the tunnel, while the router between client and server blocks UDP and
//! ICMP; then every FakeTCP segment on the client's WAN device, with the inner packet decoded
//! (method plain), and both machines' counters
//!
//! `cargo run -p ikago-sim --example demo`

use etherparse::{Icmpv4Type, NetSlice, SlicedPacket, TransportSlice};
use ikago_proto::wire::dns::parse_answer;
use ikago_proto::{Method, Stats};
use ikago_sim::{Direction, HostConfig, World, WorldConfig, addr};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// Steps each exchange may take
const STEPS: u64 = 10_000;

/// One line about an inner IPv4 packet
fn describe_inner(ip: &[u8]) -> String {
    let p = match SlicedPacket::from_ip(ip) {
        Ok(p) => p,
        Err(e) => return format!("undecodable ({e})"),
    };
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        return "not IPv4".to_owned();
    };
    let (src, dst) = (v4.header().source_addr(), v4.header().destination_addr());
    match &p.transport {
        Some(TransportSlice::Udp(u)) => format!(
            "UDP {src}:{} -> {dst}:{} ({} bytes)",
            u.source_port(),
            u.destination_port(),
            u.payload().len()
        ),
        Some(TransportSlice::Icmpv4(i)) => match i.icmp_type() {
            Icmpv4Type::EchoRequest(e) => {
                format!("ICMP echo request {src} -> {dst} id {} seq {}", e.id, e.seq)
            }
            Icmpv4Type::EchoReply(e) => {
                format!("ICMP echo reply {src} -> {dst} id {} seq {}", e.id, e.seq)
            }
            other => format!("ICMP {other:?} {src} -> {dst}"),
        },
        Some(TransportSlice::Tcp(t)) => format!(
            "TCP {src}:{} -> {dst}:{} ({} bytes)",
            t.source_port(),
            t.destination_port(),
            t.payload().len()
        ),
        _ => format!("IP protocol {:?} {src} -> {dst}", v4.header().protocol()),
    }
}

/// One line about a frame on the client's WAN device, if it is a FakeTCP segment (or a fragment
/// of one)
fn describe_tunnel_frame(frame: &[u8]) -> Option<String> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let Some(NetSlice::Ipv4(v4)) = &p.net else {
        return None;
    };
    if v4.is_payload_fragmented() {
        return Some("an IPv4 fragment of a FakeTCP frame".to_owned());
    }
    let Some(TransportSlice::Tcp(t)) = &p.transport else {
        return None;
    };
    let flags = match (t.syn(), t.ack()) {
        (true, false) => "SYN",
        (true, true) => "SYN+ACK",
        _ => "ACK",
    };
    let what = if t.payload().is_empty() {
        flags.to_owned()
    } else {
        format!("data: {}", describe_inner(t.payload()))
    };
    Some(format!("seq {:>10} {what}", t.sequence_number()))
}

/// One line of a machine's counters
fn print_stats(name: &str, s: &Stats) {
    println!(
        " {name}: tunnel {} frames out, {} in | inner {} out, {} in | handshakes {} | drops: {}",
        s.tunnel_tx.packets,
        s.tunnel_rx.packets,
        s.inner_tx.packets,
        s.inner_rx.packets,
        s.handshakes,
        s.drops
    );
}

fn main() {
    let mut config = WorldConfig::new(2024);
    config.capture = true;
    // plain, so that the inner packets can be decoded from the capture
    config.server.method = Method::Plain;
    let mut world = World::new(config);
    let client = world.add_client(|_| {});
    let pc = world.add_lan_host(client, HostConfig::lan("pc", addr::lan(2)));
    let name_server = addr::internet(53);
    let ns = world.add_internet_host(HostConfig::internet("ns", name_server));
    let www = Ipv4Addr::new(198, 18, 13, 80);
    world.host_mut(ns).dns_server(&[("www.example.test", www)]);
    let echo = world.add_internet_host(HostConfig::internet("echo", addr::internet(2)));
    world.host_mut(echo).udp_echo(7);

    let handshake = world.run_until(|w| w.client(client).is_connected(), STEPS);
    println!("tunnel up after {handshake:?} (UDP and ICMP are blocked between client and server)");

    world
        .host_mut(pc)
        .dns_query(5353, name_server, 7, "www.example.test");
    world.run_until(|w| !w.host(pc).payloads_on(5353).is_empty(), STEPS);
    world.host_mut(pc).udp_send(
        5000,
        SocketAddrV4::new(addr::internet(2), 7),
        b"hello through the tunnel",
    );
    world.run_until(|w| !w.host(pc).payloads_on(5000).is_empty(), STEPS);
    world
        .host_mut(pc)
        .ping(addr::internet(2), 1, 1, b"ping payload");
    world.run_until(|w| !w.host(pc).echo_replies().is_empty(), STEPS);
    // the pure ACKs that follow
    world.run_for(Duration::from_millis(100));

    let host = world.host(pc);
    let a = parse_answer(host.payloads_on(5353)[0]).expect("the name server answered");
    println!("\npc: DNS answer #{}: {} -> {:?}", a.id, a.name, a.addrs);
    println!(
        "pc: UDP echo: {:?}",
        String::from_utf8_lossy(host.payloads_on(5000)[0])
    );
    let r = &host.echo_replies()[0];
    println!(
        "pc: ping reply from {} ident {} seq {}: {:?}",
        r.from,
        r.ident,
        r.seq,
        String::from_utf8_lossy(&r.payload)
    );

    print!("\nwhat crossed the tunnel (client WAN device):\n");
    let tap = world
        .capture()
        .tap("client0.wan")
        .expect("the client's WAN device is tapped");
    for f in &tap.frames {
        let Some(line) = describe_tunnel_frame(&f.data) else {
            continue;
        };
        let dir = match f.direction {
            Direction::Out => "client -> server",
            Direction::In => "server -> client",
        };
        println!("{:>11.3} ms  {dir}  {line}", f.at.as_secs_f64() * 1000.0);
    }
    println!();
    print_stats("client", &world.client(client).stats());
    print_stats("server", &world.server().stats());
    println!("network drops: {}", world.drops());
}
