//! The summary printed after every replay: frames per device, inner packets per peer and per
//! destination, tunnel segments, events and drops

use crate::Role;
use crate::decode::{Defragmenter, tcp_flags};
use crate::drive::Replay;
use ikago_proto::wire::proto::{ICMP, TCP, UDP};
use ikago_proto::wire::{ethernet, ipv4, tcp};
use ikago_proto::{Counter, DeviceRole};
use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Events listed one by one unless verbose; beyond, only counted
const EVENTS_LISTED: usize = 10;

/// Inner packets our machine wrote toward one destination on the local side
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivered {
    /// ICMP packets
    pub icmp: u64,
    /// UDP packets
    pub udp: u64,
    /// TCP packets
    pub tcp: u64,
    /// Other protocols
    pub other: u64,
    /// IPv4 bytes in all
    pub bytes: u64,
}

/// What the replay did, ready to print
#[derive(Debug, Clone)]
pub struct Summary<'a> {
    replay: &'a Replay,
    role: Role,
    verbose: bool,
    /// Inner packets written to the local side (client: LAN; server: toward destinations), by
    /// destination address, parsed from the output after reassembly
    pub delivered: BTreeMap<Ipv4Addr, Delivered>,
    /// FakeTCP segments our machine sent, by flags (`S`, `SA`, `A`, `PA`, ...)
    pub tunnel: BTreeMap<String, u64>,
    /// ARP frames our machine sent
    pub arp: u64,
}

impl<'a> Summary<'a> {
    /// Sorts the output of `replay` into tunnel segments, ARP and inner packets; `port` is the
    /// server's tunnel port
    pub fn new(replay: &'a Replay, role: Role, port: u16, verbose: bool) -> Self {
        let addrs: Vec<Ipv4Addr> = replay.devices.iter().filter_map(|d| d.addr).collect();
        let mut s = Self {
            replay,
            role,
            verbose,
            delivered: BTreeMap::new(),
            tunnel: BTreeMap::new(),
            arp: 0,
        };
        let mut defrag = Defragmenter::default();
        for f in &replay.output {
            let Some(eth) = ethernet::parse(&f.data) else {
                continue;
            };
            match eth.ethertype {
                ethernet::ETHERTYPE_ARP => s.arp += 1,
                ethernet::ETHERTYPE_IPV4 => {
                    let Some(whole) = defrag.push(f.time, eth.payload) else {
                        continue;
                    };
                    let Ok(ip) = ipv4::Packet::parse(whole) else {
                        continue;
                    };
                    let ours = addrs.contains(&ip.src()) || addrs.contains(&ip.dst());
                    if ip.protocol() == TCP
                        && ours
                        && let Some(t) =
                            tcp::Segment::parse_tunnel(ip.payload(), ip.src(), ip.dst())
                        && (t.src_port() == port || t.dst_port() == port)
                    {
                        *s.tunnel.entry(tcp_flags(t.flags())).or_default() += 1;
                        continue;
                    }
                    let d = s.delivered.entry(ip.dst()).or_default();
                    d.bytes += ip.bytes().len() as u64;
                    match ip.protocol() {
                        ICMP => d.icmp += 1,
                        UDP => d.udp += 1,
                        TCP => d.tcp += 1,
                        _ => d.other += 1,
                    }
                }
                _ => {}
            }
        }
        s
    }
}

fn counter(c: Counter) -> String {
    format!("{} ({} B)", c.packets, c.bytes)
}

fn role_name(r: DeviceRole) -> &'static str {
    match r {
        DeviceRole::Listen => "listen",
        DeviceRole::Upstream => "upstream",
        DeviceRole::Both => "listen+upstream",
    }
}

/// An event's variant name, from its `Debug` form
fn event_kind(e: &impl fmt::Debug) -> String {
    let s = format!("{e:?}");
    s.split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn secs(d: Duration) -> String {
    format!("+{}.{:09}s", d.as_secs(), d.subsec_nanos())
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.replay;
        let st = &r.stats;
        let role = self.role.name();
        let end = r
            .output
            .last()
            .map_or(Duration::ZERO, |o| o.time.saturating_sub(r.start));
        writeln!(
            f,
            "replayed {role}: {} frames out, last at {}",
            r.output.len(),
            secs(end)
        )?;
        writeln!(
            f,
            "frames per device (in = fed to the machine, own = sent by the recorded machine, not fed):"
        )?;
        for (d, c) in r.devices.iter().zip(&r.counts) {
            writeln!(
                f,
                "  {:<8} {:<16} in {:>6}  own {:>6}  out {:>6}",
                d.name,
                role_name(d.role),
                c.fed,
                c.own,
                c.out
            )?;
        }
        writeln!(
            f,
            "tunnel: sent {}, received {}; inner sealed {}, opened {}; handshakes {}, reconnects {}",
            counter(st.tunnel_tx),
            counter(st.tunnel_rx),
            counter(st.inner_tx),
            counter(st.inner_rx),
            st.handshakes,
            st.reconnects
        )?;
        let segs: Vec<String> = self
            .tunnel
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(
            f,
            "tunnel segments sent by flags: {}",
            if segs.is_empty() {
                "none".into()
            } else {
                segs.join(", ")
            }
        )?;
        let peer = match self.role {
            Role::Client => "source",
            Role::Server => "client",
        };
        writeln!(
            f,
            "inner packets per {peer} (sent into the tunnel / delivered to it):"
        )?;
        if st.peers.is_empty() {
            writeln!(f, "  none")?;
        }
        for p in &st.peers {
            writeln!(
                f,
                "  {:<22} sent {}  delivered {}",
                p.peer.to_string(),
                counter(p.out),
                counter(p.r#in)
            )?;
        }
        let side = match self.role {
            Role::Client => "to the LAN",
            Role::Server => "toward destinations",
        };
        writeln!(f, "inner packets written {side}, by destination:")?;
        if self.delivered.is_empty() {
            writeln!(f, "  none")?;
        }
        for (ip, d) in &self.delivered {
            writeln!(
                f,
                "  {:<15} ICMP {}  UDP {}  TCP {}  other {}  ({} B)",
                ip.to_string(),
                d.icmp,
                d.udp,
                d.tcp,
                d.other,
                d.bytes
            )?;
        }
        writeln!(f, "ARP frames sent: {}", self.arp)?;
        if self.role == Role::Server {
            writeln!(
                f,
                "NAT mappings in use: {} of {}",
                st.nat_mappings, st.nat_capacity
            )?;
        }
        let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
        for (_, e) in &r.events {
            *kinds.entry(event_kind(e)).or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(
            f,
            "events ({}): {}",
            r.events.len(),
            if kinds.is_empty() {
                "none".into()
            } else {
                kinds.join(", ")
            }
        )?;
        let shown = if self.verbose {
            r.events.len()
        } else {
            EVENTS_LISTED
        };
        for (t, e) in r.events.iter().take(shown) {
            writeln!(f, "  {} {e:?}", secs(t.saturating_sub(r.start)))?;
        }
        if r.events.len() > shown {
            writeln!(
                f,
                "  ... {} more (-v lists them all)",
                r.events.len() - shown
            )?;
        }
        write!(f, "drops: {}", st.drops)?;
        match r.adapted {
            Some(n) => write!(f, "\npeer frames adapted to our ISNs and ports: {n}"),
            None => Ok(()),
        }
    }
}
