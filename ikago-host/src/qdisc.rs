//! What stands between a packet socket and a device's driver: the device's queueing disciplines,
//! read from the kernel's routing netlink (`RTM_GETQDISC`), so that injection skips them
//! (`PACKET_QDISC_BYPASS`) by default where they do nothing
//!
//! A device "queues nothing" when its root qdisc is `noqueue` (a veth's default: every frame goes
//! straight to the driver anyway) and it has no `clsact` qdisc (whose egress hook may run tc
//! programs, which the bypass would skip). Skipping the qdisc layer there changes nothing but the
//! taps: `tcpdump` on that device no longer shows the injected frames (its peer, or the next hop,
//! still does), and nftables `netdev` egress chains are skipped as well.

use crate::netlink::{self, malformed};
use rustix::net::netdevice::name_to_index;
use std::io;

/// `RTM_NEWQDISC`: one qdisc of the dump
const RTM_NEWQDISC: u16 = 36;
/// `RTM_GETQDISC`
const RTM_GETQDISC: u16 = 38;
/// Length of `struct tcmsg`
const TCMSG: usize = 20;
/// `TCA_KIND`: the qdisc's name, NUL-terminated
const TCA_KIND: u16 = 1;
/// `TC_H_ROOT`: the parent of a root qdisc
const TC_H_ROOT: u32 = 0xffff_ffff;

/// The qdiscs of one device that matter here
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Qdiscs {
    /// Kind of the root qdisc (`noqueue`, `mq`, `fq_codel`...)
    root: Option<String>,
    /// Whether a `clsact` qdisc is attached
    clsact: bool,
}

impl Qdiscs {
    fn queue_nothing(&self) -> bool {
        self.root.as_deref() == Some("noqueue") && !self.clsact
    }
}

/// Whether `device` queues nothing (root qdisc `noqueue`, no `clsact`), in the caller's network
/// namespace
pub fn queues_nothing(device: &str) -> io::Result<bool> {
    let fd = netlink::open(None)?; // NETLINK_ROUTE
    let index = name_to_index(&fd, device)?;
    let mut found = Qdiscs::default();
    netlink::dump(&fd, &request(index), |kind, body| {
        add(kind, body, index, &mut found)
    })?;
    Ok(found.queue_nothing())
}

/// A dump request for the qdiscs of the device with index `index` (older kernels dump every
/// device's: the reply is filtered too)
fn request(index: u32) -> Vec<u8> {
    let mut tcmsg = [0u8; TCMSG];
    // tcm_family AF_UNSPEC, then tcm_ifindex
    tcmsg[4..8].copy_from_slice(&index.to_ne_bytes());
    netlink::request(RTM_GETQDISC, 1, &tcmsg)
}

/// Adds the reply message of type `kind` to `found` when it is a qdisc of device `index`
fn add(kind: u16, body: &[u8], index: u32, found: &mut Qdiscs) -> io::Result<()> {
    let u32_at = |at: usize| {
        body.get(at..at + 4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")))
            .ok_or_else(malformed)
    };
    if kind == RTM_NEWQDISC {
        let ifindex = u32_at(4)?;
        let parent = u32_at(12)?;
        if ifindex == index
            && let Some(name) = qdisc_kind(body.get(TCMSG..).ok_or_else(malformed)?)
        {
            if parent == TC_H_ROOT {
                found.root = Some(name.to_owned());
            }
            found.clsact |= name == "clsact";
        }
    }
    Ok(())
}

/// The `TCA_KIND` attribute among `attrs`, when it is there and readable
fn qdisc_kind(mut attrs: &[u8]) -> Option<&str> {
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        let value = attrs.get(4..len)?;
        if kind == TCA_KIND {
            let name = value.split(|&b| b == 0).next()?;
            return std::str::from_utf8(name).ok();
        }
        attrs = attrs.get(len.next_multiple_of(4)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{HEADER, NLMSG_DONE, NLMSG_ERROR, message};

    /// Parses one datagram of a dump for the qdiscs of device `index`; `Ok(true)` at its end
    fn parse(data: &[u8], index: u32, found: &mut Qdiscs) -> io::Result<bool> {
        netlink::parse(data, |kind, body| add(kind, body, index, found))
    }

    /// A qdisc of device `index` with parent `parent`, named `name`, after another attribute
    fn qdisc(index: u32, parent: u32, name: &str) -> Vec<u8> {
        let mut b = vec![0u8; TCMSG];
        b[4..8].copy_from_slice(&index.to_ne_bytes());
        b[12..16].copy_from_slice(&parent.to_ne_bytes());
        // TCA_STATS2-like filler first: the kind is found wherever it is
        b.extend_from_slice(&8u16.to_ne_bytes());
        b.extend_from_slice(&7u16.to_ne_bytes());
        b.extend_from_slice(&[1, 2, 3, 4]);
        let attr_len = 4 + name.len() + 1;
        b.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        b.extend_from_slice(&TCA_KIND.to_ne_bytes());
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.resize(b.len().next_multiple_of(4), 0);
        message(RTM_NEWQDISC, &b)
    }

    fn dump(messages: &[Vec<u8>]) -> io::Result<Qdiscs> {
        let mut found = Qdiscs::default();
        let data = messages.concat();
        assert!(parse(&data, 3, &mut found)?, "the dump ends");
        Ok(found)
    }

    #[test]
    fn a_noqueue_root_without_clsact_queues_nothing() {
        let done = message(NLMSG_DONE, &[0; 4]);
        let veth = dump(&[
            qdisc(2, TC_H_ROOT, "mq"),
            qdisc(3, TC_H_ROOT, "noqueue"),
            done.clone(),
        ])
        .unwrap();
        assert_eq!(veth.root.as_deref(), Some("noqueue"));
        assert!(veth.queue_nothing());
        let with_clsact = dump(&[
            qdisc(3, TC_H_ROOT, "noqueue"),
            qdisc(3, 0xffff_fff1, "clsact"),
            done.clone(),
        ])
        .unwrap();
        assert!(!with_clsact.queue_nothing());
        let shaped = dump(&[
            qdisc(3, TC_H_ROOT, "htb"),
            qdisc(3, 0x0001_0001, "noqueue"),
            done,
        ])
        .unwrap();
        assert!(!shaped.queue_nothing(), "{shaped:?}");
        assert!(
            !Qdiscs::default().queue_nothing(),
            "nothing known: keep the qdisc"
        );
    }

    #[test]
    fn errors_and_truncation_are_errors_never_panics() {
        let mut found = Qdiscs::default();
        assert!(!parse(&qdisc(3, TC_H_ROOT, "noqueue"), 3, &mut found).unwrap());
        let err = parse(&message(NLMSG_ERROR, &(-1i32).to_ne_bytes()), 3, &mut found);
        assert_eq!(err.unwrap_err().raw_os_error(), Some(1));
        let whole = qdisc(3, TC_H_ROOT, "noqueue");
        let cut = |at: usize| {
            let mut short = whole[..at].to_vec();
            short[0..4].copy_from_slice(&(at as u32).to_ne_bytes());
            let mut found = Qdiscs::default();
            parse(&short, 3, &mut found).map(|_| found)
        };
        assert!(cut(HEADER + 2).is_err(), "no ifindex");
        assert!(cut(HEADER + 10).is_err(), "no parent");
        assert_eq!(
            cut(whole.len() - 4).unwrap(),
            Qdiscs::default(),
            "kind cut short"
        );
        assert!(
            parse(&whole[..HEADER + 4], 3, &mut found).is_err(),
            "longer than the data"
        );
    }

    #[test]
    fn requests_name_the_device() {
        let r = request(7);
        assert_eq!(u32::from_ne_bytes(r[0..4].try_into().unwrap()), 36);
        assert_eq!(u16::from_ne_bytes([r[4], r[5]]), RTM_GETQDISC);
        assert_eq!(u32::from_ne_bytes(r[20..24].try_into().unwrap()), 7);
    }
}
