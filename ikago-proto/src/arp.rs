//! Neighbour resolution: a neighbour cache per device (IPv4 by ARP, IPv6 by neighbour
//! discovery), a bounded queue of frames waiting for a MAC, request retries, and the frames of
//! requests and proxy-ARP replies

use crate::io::DeviceId;
use crate::txq::{FrameBuf, TxQueue};
use crate::wire::{Mac, arp, ethernet, icmpv6};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Interval between ARP requests for one address (Linux `retrans_time_ms`: 1 s)
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Requests sent before the waiting frames are dropped (Linux `mcast_solicit`: 3)
const MAX_REQUESTS: u8 = 3;
/// Age after which a cached entry is re-confirmed by a unicast request while still in use
const REFRESH_AFTER: Duration = Duration::from_secs(60);
/// Frames waiting per unresolved address (Linux `unres_qlen` is 101; this is per next hop)
const MAX_PENDING_PER_HOP: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: Mac,
    confirmed: Instant,
    probed: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Resolving {
    sent: u8,
    next: Instant,
}

/// The link identity of one device, for the requests it sends
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinkAddr {
    /// The device's MAC
    pub(crate) mac: Mac,
    /// The device's IPv4 address, when it has one (the source of its ARP requests)
    pub(crate) ip: Option<Ipv4Addr>,
    /// The device's IPv6 address, when it has one (the source of its solicitations)
    pub(crate) ip6: Option<Ipv6Addr>,
}

/// Frames dropped because their next hop never answered, by family
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Unresolved {
    /// IPv4 next hops (ARP)
    pub(crate) arp: usize,
    /// IPv6 next hops (neighbour discovery)
    pub(crate) ndp: usize,
}

/// ARP cache, resolution state and waiting frames for all devices of a machine
#[derive(Debug)]
pub(crate) struct Neighbors {
    links: Vec<LinkAddr>,
    entries: BTreeMap<(DeviceId, IpAddr), Entry>,
    resolving: BTreeMap<(DeviceId, IpAddr), Resolving>,
    pending: Vec<(DeviceId, IpAddr, FrameBuf)>,
}

/// What [`Neighbors::send`] did with a frame
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Queued for transmission with the destination MAC filled in
    Now,
    /// Waiting for an ARP reply or a neighbour advertisement
    Waiting,
    /// Dropped: too many frames already wait for this address
    QueueFull,
}

impl Neighbors {
    /// A cache for devices whose link addresses are `links` (indexed by [`DeviceId`])
    pub(crate) fn new(links: Vec<LinkAddr>) -> Self {
        Self {
            links,
            entries: BTreeMap::new(),
            resolving: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    /// Seeds a MAC the runner already knows (e.g. the gateway's from the kernel's table)
    pub(crate) fn insert_static(&mut self, now: Instant, device: DeviceId, ip: IpAddr, mac: Mac) {
        self.entries.insert(
            (device, ip),
            Entry {
                mac,
                confirmed: now,
                probed: None,
            },
        );
    }

    /// Sends `buf` (a whole Ethernet frame whose destination MAC is to be filled) to `next_hop`
    ///
    /// With a cached MAC the frame is queued at once (and an old entry is re-confirmed in the
    /// background); otherwise it waits while requests go out.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        device: DeviceId,
        next_hop: IpAddr,
        mut buf: FrameBuf,
        tx: &mut TxQueue,
    ) -> Sent {
        if let Some(e) = self.entries.get_mut(&(device, next_hop)) {
            buf.bytes[0..6].copy_from_slice(&e.mac.0);
            tx.push(device, buf);
            let stale = now.saturating_duration_since(e.confirmed) >= REFRESH_AFTER;
            let probe_due = e
                .probed
                .is_none_or(|p| now.saturating_duration_since(p) >= RETRY_INTERVAL * 3);
            if stale && probe_due {
                e.probed = Some(now);
                let target = e.mac;
                self.request(device, next_hop, Some(target), tx);
            }
            return Sent::Now;
        }
        let waiting = self
            .pending
            .iter()
            .filter(|(d, ip, _)| *d == device && *ip == next_hop)
            .count();
        if waiting >= MAX_PENDING_PER_HOP {
            tx.recycle(buf);
            return Sent::QueueFull;
        }
        self.pending.push((device, next_hop, buf));
        if let std::collections::btree_map::Entry::Vacant(e) =
            self.resolving.entry((device, next_hop))
        {
            e.insert(Resolving {
                sent: 1,
                next: now + RETRY_INTERVAL,
            });
            self.request(device, next_hop, None, tx);
        }
        Sent::Waiting
    }

    /// Learns `mac` for `ip` on `device` from an ARP packet or a neighbour advertisement;
    /// flushes the frames waiting for it
    ///
    /// Only addresses already cached or being resolved are learned (no cache pollution by
    /// unsolicited ARP or advertisements). Returns true when a new or changed mapping was learned.
    pub(crate) fn learn(
        &mut self,
        now: Instant,
        device: DeviceId,
        ip: IpAddr,
        mac: Mac,
        tx: &mut TxQueue,
    ) -> bool {
        let key = (device, ip);
        let was_resolving = self.resolving.remove(&key).is_some();
        let changed = match self.entries.get_mut(&key) {
            Some(e) => {
                let changed = e.mac != mac;
                *e = Entry {
                    mac,
                    confirmed: now,
                    probed: None,
                };
                changed
            }
            None if was_resolving => {
                self.entries.insert(
                    key,
                    Entry {
                        mac,
                        confirmed: now,
                        probed: None,
                    },
                );
                true
            }
            None => return false,
        };
        let mut i = 0;
        while i < self.pending.len() {
            if self.pending[i].0 == device && self.pending[i].1 == ip {
                let (d, _, mut buf) = self.pending.remove(i);
                buf.bytes[0..6].copy_from_slice(&mac.0);
                tx.push(d, buf);
            } else {
                i += 1;
            }
        }
        changed
    }

    /// The next retry deadline
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.resolving.values().map(|r| r.next).min()
    }

    /// Retries due requests; gives up on addresses that never answered
    ///
    /// Returns how many waiting frames were dropped (counted as `ArpUnresolved` and
    /// `NdpUnresolved`).
    pub(crate) fn handle_timeout(&mut self, now: Instant, tx: &mut TxQueue) -> Unresolved {
        let due: Vec<_> = self
            .resolving
            .iter()
            .filter(|(_, r)| r.next <= now)
            .map(|(&k, &r)| (k, r))
            .collect();
        let mut dropped = Unresolved::default();
        for ((device, ip), r) in due {
            if r.sent >= MAX_REQUESTS {
                self.resolving.remove(&(device, ip));
                let mut i = 0;
                while i < self.pending.len() {
                    if self.pending[i].0 == device && self.pending[i].1 == ip {
                        let (_, _, buf) = self.pending.remove(i);
                        tx.recycle(buf);
                        match ip {
                            IpAddr::V4(_) => dropped.arp += 1,
                            IpAddr::V6(_) => dropped.ndp += 1,
                        }
                    } else {
                        i += 1;
                    }
                }
            } else {
                self.resolving.insert(
                    (device, ip),
                    Resolving {
                        sent: r.sent + 1,
                        next: now + RETRY_INTERVAL,
                    },
                );
                self.request(device, ip, None, tx);
            }
        }
        dropped
    }

    /// Queues an ARP request or a neighbour solicitation for `ip` from `device`, broadcast
    /// (solicited-node multicast) or unicast to `to`
    fn request(&self, device: DeviceId, ip: IpAddr, to: Option<Mac>, tx: &mut TxQueue) {
        let link = self.links[device.index()];
        match ip {
            IpAddr::V4(ip) => {
                // a device without IPv4 never has IPv4 next hops: the machines check first
                let Some(spa) = link.ip else { return };
                let req = arp::Arp {
                    op: arp::OP_REQUEST,
                    sha: link.mac,
                    spa,
                    tha: Mac::ZERO,
                    tpa: ip,
                };
                tx.push_with(device, ethernet::MIN_FRAME_LEN, |b| {
                    write_arp_frame(b, to.unwrap_or(Mac::BROADCAST), link.mac, &req)
                });
            }
            IpAddr::V6(ip) => {
                // a device without IPv6 never has IPv6 next hops: the machines check first
                let Some(src) = link.ip6 else { return };
                let dst = to.unwrap_or_else(|| icmpv6::multicast_mac(icmpv6::solicited_node(ip)));
                let len = ethernet::HEADER_LEN + 40 + icmpv6::NDP_LEN;
                tx.push_with(device, len, |b| {
                    let n = ethernet::write(b, dst, link.mac, ethernet::ETHERTYPE_IPV6);
                    n + icmpv6::write_solicit(&mut b[n..], src, link.mac, ip, to.is_some())
                });
            }
        }
    }
}

/// Writes an Ethernet frame carrying `packet`, padded to the Ethernet minimum
pub(crate) fn write_arp_frame(buf: &mut [u8], dst: Mac, src: Mac, packet: &arp::Arp) -> usize {
    let n = ethernet::write(buf, dst, src, ethernet::ETHERTYPE_ARP);
    let n = n + packet.write(&mut buf[n..]);
    ethernet::pad(buf, n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::Output;

    const DEV: DeviceId = DeviceId(0);
    const GW: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 12, 1));
    const GW6: IpAddr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 1));
    const GW_MAC: Mac = Mac([2, 0, 0, 0, 0x12, 1]);

    fn setup() -> (Neighbors, TxQueue) {
        let links = vec![LinkAddr {
            mac: Mac([2, 0, 0, 0, 0x12, 2]),
            ip: Some(Ipv4Addr::new(198, 18, 12, 2)),
            ip6: Some(Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 2)),
        }];
        (Neighbors::new(links), TxQueue::new())
    }

    fn frame(tx: &mut TxQueue) -> FrameBuf {
        let mut b = tx.take(60);
        b.len = 60;
        b
    }

    fn drain(tx: &mut TxQueue) -> Vec<Vec<u8>> {
        let mut out = vec![0u8; 2000];
        let mut v = Vec::new();
        while let Some(Output::Transmit(t)) = tx.poll(&mut out) {
            v.push(out[..t.len].to_vec());
        }
        v
    }

    #[test]
    fn resolves_then_flushes_waiting_frames() {
        let t0 = Instant::now();
        let (mut n, mut tx) = setup();
        let b = frame(&mut tx);
        assert_eq!(n.send(t0, DEV, GW, b, &mut tx), Sent::Waiting);
        let b = frame(&mut tx);
        assert_eq!(n.send(t0, DEV, GW, b, &mut tx), Sent::Waiting);
        let sent = drain(&mut tx);
        assert_eq!(sent.len(), 1, "one request for two frames");
        let req = arp::parse(&sent[0][14..]).unwrap();
        assert_eq!((req.op, IpAddr::V4(req.tpa)), (arp::OP_REQUEST, GW));
        assert!(n.learn(t0, DEV, GW, GW_MAC, &mut tx));
        let flushed = drain(&mut tx);
        assert_eq!(flushed.len(), 2);
        assert!(flushed.iter().all(|f| f[0..6] == GW_MAC.0));
        let b = frame(&mut tx);
        assert_eq!(n.send(t0, DEV, GW, b, &mut tx), Sent::Now);
    }

    #[test]
    fn retries_then_gives_up() {
        let t0 = Instant::now();
        let (mut n, mut tx) = setup();
        let b = frame(&mut tx);
        n.send(t0, DEV, GW, b, &mut tx);
        let mut requests = drain(&mut tx).len();
        let mut now = t0;
        let mut dropped = Unresolved::default();
        while let Some(at) = n.poll_timeout() {
            now = at;
            let u = n.handle_timeout(now, &mut tx);
            dropped.arp += u.arp;
            dropped.ndp += u.ndp;
            requests += drain(&mut tx).len();
        }
        assert_eq!(requests, 3);
        assert_eq!(dropped, Unresolved { arp: 1, ndp: 0 });
        assert_eq!(now, t0 + RETRY_INTERVAL * 3);
        assert!(
            !n.learn(now, DEV, GW, GW_MAC, &mut tx),
            "unsolicited replies are not cached"
        );
    }

    #[test]
    fn resolves_ipv6_by_solicitation() {
        let t0 = Instant::now();
        let (mut n, mut tx) = setup();
        let b = frame(&mut tx);
        assert_eq!(n.send(t0, DEV, GW6, b, &mut tx), Sent::Waiting);
        let sent = drain(&mut tx);
        assert_eq!(sent.len(), 1);
        let eth = ethernet::parse(&sent[0]).unwrap();
        assert_eq!(eth.ethertype, ethernet::ETHERTYPE_IPV6);
        assert_eq!(eth.dst, Mac([0x33, 0x33, 0xff, 0, 0, 1]));
        let p = crate::wire::ipv6::Packet::parse(eth.payload).unwrap();
        assert!(matches!(
            icmpv6::parse_ndp(&p),
            Some(Ok(icmpv6::Ndp::Solicit { target, .. })) if IpAddr::V6(target) == GW6
        ));
        assert!(n.learn(t0, DEV, GW6, GW_MAC, &mut tx));
        let flushed = drain(&mut tx);
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0][0..6], GW_MAC.0);
        let mut now = t0;
        let b = frame(&mut tx);
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x12, 0, 0, 0, 0, 9));
        n.send(now, DEV, other, b, &mut tx);
        let mut dropped = Unresolved::default();
        while let Some(at) = n.poll_timeout() {
            now = at;
            dropped = n.handle_timeout(now, &mut tx);
        }
        assert_eq!(dropped, Unresolved { arp: 0, ndp: 1 });
    }

    #[test]
    fn bounded_waiting_queue() {
        let t0 = Instant::now();
        let (mut n, mut tx) = setup();
        for _ in 0..MAX_PENDING_PER_HOP {
            let b = frame(&mut tx);
            assert_eq!(n.send(t0, DEV, GW, b, &mut tx), Sent::Waiting);
        }
        let b = frame(&mut tx);
        assert_eq!(n.send(t0, DEV, GW, b, &mut tx), Sent::QueueFull);
    }
}
