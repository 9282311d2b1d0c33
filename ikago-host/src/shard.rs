//! A server's engines (`--threads N`): each engine's share of the traffic as capture-filter parts
//!
//! A server of N engines runs N whole [`ikago_proto::Server`]s, engine `k` configured with
//! [`Shard`] `k` of N, each with its own capture and injection handles. Its capture filter
//! admits only its share, so that no frame is handed between threads and each client's frames
//! keep their order:
//!
//! - tunnel segments whose source hashes to `k`: `(a ^ (a >> 16) ^ p) % N = k` over the source
//!   address `a` (an IPv6 source: its low 32 bits) and port `p`, the hash of [`Shard::of`] in
//!   BPF arithmetic (32-bit, unsigned);
//! - Internet replies to its slice of each NAT pool ([`Shard::slice`]), TCP and UDP by
//!   destination port, ICMP echo replies by id;
//! - what cannot be told apart by its first header, every engine: ARP (each resolves its
//!   gateway itself), IPv4 and IPv6 fragments and ICMP and ICMPv6 errors (Packet Too Big among
//!   them; the engine that does not own them drops them, counted as `other_shard` or
//!   `no_nat_mapping`).
//!
//! Inner IPv6 (NAT66) shares the same way: replies by destination port and ICMPv6 echo id;
//! IPv6 fragments, ICMPv6 errors and neighbour discovery reach every engine.

use ikago_proto::{NatConfig, Shard};
use std::ops::RangeInclusive;

/// The filter part that admits the IPv4 tunnel segments of `shard`'s clients (`None` for a
/// whole server, which takes them all)
pub fn tunnel_share(shard: Shard) -> Option<String> {
    hash_share(shard, "ip[12:4]", "tcp[0:2]")
}

/// The filter part that admits the IPv6 tunnel segments of `shard`'s clients: the hash over
/// the low 32 bits of the source address (`ip6[20:4]`) and the TCP source port, which follows
/// the fixed header (`ip6[40:2]`; the caller matches `tcp`, which libpcap checks as the next
/// header of the fixed one); `None` for a whole server
pub fn tunnel_share6(shard: Shard) -> Option<String> {
    hash_share(shard, "ip6[20:4]", "ip6[40:2]")
}

/// `(a ^ (a >> 16) ^ port) % N = k` with `a` and `port` loaded by the BPF expressions given
fn hash_share(shard: Shard, addr: &str, port: &str) -> Option<String> {
    (shard.count > 1).then(|| {
        format!(
            "(({addr} ^ ({addr} >> 16) ^ {port}) % {} = {})",
            shard.count, shard.index
        )
    })
}

/// `nat` with each pool narrowed to `shard`'s slice (pools too small for the shards stay whole:
/// the core refuses such a configuration before any filter is set)
pub fn nat_share(nat: &NatConfig, shard: Shard) -> NatConfig {
    let slice = |r: &RangeInclusive<u16>| shard.slice(r).unwrap_or_else(|| r.clone());
    NatConfig {
        tcp_ports: slice(&nat.tcp_ports),
        udp_ports: slice(&nat.udp_ports),
        icmp_ids: slice(&nat.icmp_ids),
        ..nat.clone()
    }
}

/// The filter part for ICMP to the public address: echo replies to `ids` only when the server
/// is sharded, every other ICMP message (errors, requests to the host) always
pub fn icmp_share(shard: Shard, ids: &RangeInclusive<u16>) -> String {
    if shard.count > 1 {
        format!(
            "(icmp and (icmp[0] != 0 or (icmp[4:2] >= {} and icmp[4:2] <= {})))",
            ids.start(),
            ids.end()
        )
    } else {
        "icmp".to_owned()
    }
}

/// The filter part for ICMPv6 to the NAT66 address: echo replies (type 129) to `ids` only when
/// the server is sharded, every other ICMPv6 message always
pub fn icmp6_share(shard: Shard, ids: &RangeInclusive<u16>) -> String {
    if shard.count > 1 {
        format!(
            "(icmp6 and (icmp6[0] != 129 or (icmp6[4:2] >= {} and icmp6[4:2] <= {})))",
            ids.start(),
            ids.end()
        )
    } else {
        "icmp6".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter;
    use etherparse::PacketBuilder;
    use ikago_proto::{DeviceConfig, DeviceRole, LinkType, Mac, ServerConfig};
    use std::net::{Ipv4Addr, SocketAddrV4};

    const SERVER: [u8; 4] = [198, 18, 12, 1];
    const PUBLIC: [u8; 4] = [198, 18, 13, 1];

    fn device(name: &str, role: DeviceRole, addr: [u8; 4]) -> DeviceConfig {
        DeviceConfig {
            name: name.into(),
            role,
            link: LinkType::Ethernet,
            mac: Mac([2, 0, 0, 0, addr[2], addr[3]]),
            addr: Some(addr.into()),
            prefix_len: 24,
            gateway: None,
            gateway_mac: None,
            ipv6: None,
        }
    }

    /// The filters of engine `index` of `count`: listen device, then upstream device
    fn filters(index: u16, count: u16) -> Vec<pcap::BpfProgram> {
        let mut c = ServerConfig::new(
            vec![
                device("wan0", DeviceRole::Listen, SERVER),
                device("dst0", DeviceRole::Upstream, PUBLIC),
            ],
            18081,
        );
        c.shard = Shard::new(index, count).expect("a valid shard");
        let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).expect("a dead capture");
        filter::server(&c)
            .iter()
            .map(|f| dead.compile(f, true).unwrap_or_else(|e| panic!("{f}: {e}")))
            .collect()
    }

    fn frame(
        src: [u8; 4],
        dst: [u8; 4],
        build: impl FnOnce(etherparse::PacketBuilderStep<etherparse::IpHeaders>) -> Vec<u8>,
    ) -> Vec<u8> {
        build(PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1]).ipv4(src, dst, 64))
    }

    fn tcp(src: SocketAddrV4, dst: ([u8; 4], u16)) -> Vec<u8> {
        frame(src.ip().octets(), dst.0, |b| {
            let mut v = Vec::new();
            b.tcp(src.port(), dst.1, 1, 1000)
                .write(&mut v, b"x")
                .unwrap();
            v
        })
    }

    fn udp(dport: u16) -> Vec<u8> {
        frame([198, 18, 13, 2], PUBLIC, |b| {
            let mut v = Vec::new();
            b.udp(53, dport).write(&mut v, b"x").unwrap();
            v
        })
    }

    fn icmp(ty: u8, id: u16) -> Vec<u8> {
        frame([198, 18, 13, 2], PUBLIC, |b| {
            let mut v = Vec::new();
            let t = match ty {
                0 => etherparse::Icmpv4Type::EchoReply(etherparse::IcmpEchoHeader { id, seq: 1 }),
                _ => etherparse::Icmpv4Type::Unknown {
                    type_u8: ty,
                    code_u8: 0,
                    bytes5to8: [0; 4],
                },
            };
            b.icmpv4(t).write(&mut v, &[0; 28]).unwrap();
            v
        })
    }

    /// The engines (of `engines`) whose filter on device `dev` admits `frame`
    fn takers(engines: &[Vec<pcap::BpfProgram>], dev: usize, frame: &[u8]) -> Vec<u16> {
        (0..engines.len() as u16)
            .filter(|&k| engines[usize::from(k)][dev].filter(frame))
            .collect()
    }

    #[test]
    fn every_segment_and_reply_reaches_exactly_its_engine() {
        for count in [2u16, 3] {
            let engines: Vec<_> = (0..count).map(|k| filters(k, count)).collect();
            for host in [1u8, 2, 77, 200, 254] {
                for port in [1024u16, 40000, 40001, 49152, 65535] {
                    let peer = SocketAddrV4::new(Ipv4Addr::new(198, 18, 16, host), port);
                    let seg = tcp(peer, (SERVER, 18081));
                    assert_eq!(
                        takers(&engines, 0, &seg),
                        [Shard::of(peer.into(), count)],
                        "{peer}"
                    );
                }
            }
            let nat = NatConfig::default();
            for k in 0..count {
                let mine = nat_share(&nat, Shard::new(k, count).unwrap());
                for port in [*mine.udp_ports.start(), *mine.udp_ports.end()] {
                    assert_eq!(takers(&engines, 1, &udp(port)), [k], "udp {port}");
                    let reply = tcp(
                        SocketAddrV4::new([198, 18, 13, 2].into(), 443),
                        (PUBLIC, port),
                    );
                    assert_eq!(takers(&engines, 1, &reply), [k], "tcp {port}");
                }
                for id in [*mine.icmp_ids.start(), *mine.icmp_ids.end()] {
                    assert_eq!(takers(&engines, 1, &icmp(0, id)), [k], "echo reply {id}");
                }
            }
            // an ICMP error quoting who knows which flow: every engine looks
            let all: Vec<u16> = (0..count).collect();
            assert_eq!(takers(&engines, 1, &icmp(3, 0)), all);
        }
    }

    /// An IPv6 tunnel segment from `src` to the server's IPv6 address at the tunnel port
    fn tcp6(src: std::net::SocketAddrV6) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1])
            .ipv6(src.ip().octets(), SERVER6.octets(), 64)
            .tcp(src.port(), 18081, 1, 1000)
            .write(&mut v, b"x")
            .unwrap();
        v
    }

    const SERVER6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 1);

    #[test]
    fn every_ipv6_segment_reaches_exactly_its_engine_and_fragments_reach_all() {
        let mut wan = device("wan0", DeviceRole::Listen, SERVER);
        wan.ipv6 = Some(ikago_proto::Ipv6Link {
            addr: SERVER6,
            prefix_len: 64,
            gateway: None,
            gateway_mac: None,
        });
        let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).expect("a dead capture");
        for count in [2u16, 3] {
            let engines: Vec<pcap::BpfProgram> = (0..count)
                .map(|k| {
                    let mut c = ServerConfig::new(vec![wan.clone()], 18081);
                    c.shard = Shard::new(k, count).expect("a valid shard");
                    let f = filter::server(&c).remove(0);
                    dead.compile(&f, true)
                        .unwrap_or_else(|e| panic!("{f}: {e}"))
                })
                .collect();
            let takers = |frame: &[u8]| -> Vec<u16> {
                (0..count)
                    .filter(|&k| engines[usize::from(k)].filter(frame))
                    .collect()
            };
            for host in [1u16, 2, 0x77, 0xc8ff, 0xfffe] {
                for port in [1024u16, 40000, 40001, 49152, 65535] {
                    let ip = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0x16, 0, 0, 0x1234, host, 7);
                    let peer = std::net::SocketAddrV6::new(ip, port, 0, 0);
                    assert_eq!(
                        takers(&tcp6(peer)),
                        [Shard::of(peer.into(), count)],
                        "{peer}"
                    );
                }
            }
            let mut fragment = tcp6("[2001:db8:16::2]:1".parse().unwrap());
            fragment[14 + 6] = 44;
            let all: Vec<u16> = (0..count).collect();
            assert_eq!(takers(&fragment), all, "a fragment: every engine");
        }
    }

    #[test]
    fn a_whole_server_keeps_its_filters() {
        assert_eq!(tunnel_share(Shard::WHOLE), None);
        assert_eq!(tunnel_share6(Shard::WHOLE), None);
        assert_eq!(icmp_share(Shard::WHOLE, &(0..=65535)), "icmp");
        let nat = NatConfig::default();
        assert_eq!(nat_share(&nat, Shard::WHOLE).udp_ports, nat.udp_ports);
    }
}
