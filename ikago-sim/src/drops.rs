//! Why the simulated network (link and router) dropped a frame, and the counters

use std::collections::BTreeMap;
use std::fmt;

/// Why a strict conntrack middlebox judged a TCP segment INVALID (the checks of Linux
/// `nf_conntrack_proto_tcp.c` with `nf_conntrack_tcp_loose=0`)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConntrackInvalid {
    /// No entry, and the segment is not a SYN that could open one (no mid-stream pickup)
    NoEntry,
    /// The state table says invalid (e.g. an ACK from the initiator before the SYN+ACK)
    State,
    /// The sequence number is beyond the highest the receiver allowed (`td_maxend`)
    SeqOverUpperBound,
    /// The segment ends before the receiver's window (already acknowledged data)
    SeqUnderLowerBound,
    /// It acknowledges data the peer never sent (beyond the peer's `td_end`)
    AckOverUpperBound,
    /// Its acknowledgment is too old (more than a window behind the peer's `td_end`)
    AckUnderLowerBound,
}

/// Why the link or the router dropped a frame
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimDrop {
    /// Random loss on the WAN link
    LinkLoss,
    /// Larger than the link MTU (and the link drops oversize packets, or DF was set)
    LinkMtu,
    /// The firewall blocks UDP and ICMP from the client side
    Firewall,
    /// Strict conntrack judged the TCP segment INVALID
    Conntrack(ConntrackInvalid),
    /// An IPv4 fragment reached the conntrack or NAT model, which does not reassemble
    UntrackedFragment,
    /// An inbound packet to the masquerade address matched no NAT mapping
    NatNoMapping,
    /// The masquerading NAT only translates TCP and UDP
    NatUnsupported,
    /// The router has no route to the destination (not on either of its sides)
    NoRoute,
    /// Not addressed to the router's MAC, malformed, or a TTL that ran out
    NotRouted,
}

impl fmt::Display for SimDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Conntrack(why) => write!(f, "conntrack_invalid({why:?})"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Drop counters by reason
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drops(BTreeMap<SimDrop, u64>);

impl Drops {
    /// Counts one drop
    pub(crate) fn add(&mut self, reason: SimDrop) {
        *self.0.entry(reason).or_default() += 1;
    }
    /// Drops counted for `reason`
    pub fn get(&self, reason: SimDrop) -> u64 {
        self.0.get(&reason).copied().unwrap_or(0)
    }
    /// Drops by any conntrack INVALID verdict
    pub fn conntrack_invalid(&self) -> u64 {
        self.0
            .iter()
            .filter(|(r, _)| matches!(r, SimDrop::Conntrack(_)))
            .map(|(_, n)| n)
            .sum()
    }
    /// Non-zero counters
    pub fn iter(&self) -> impl Iterator<Item = (SimDrop, u64)> + '_ {
        self.0.iter().map(|(&r, &n)| (r, n))
    }
}

impl fmt::Display for Drops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        for (i, (r, n)) in self.iter().enumerate() {
            write!(f, "{}{r}={n}", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}
