//! Measurements taken from inside lab namespaces: DNS, UDP, TCP, ping, iperf3, crafted TCP, and
//! HTTP for the runners' monitor
//!
//! Socket probes open their sockets in the host's namespace ([`crate::Netns::enter`]) and run in
//! this process; `ping` and `iperf3` run as commands in the namespace. Every probe is bounded in
//! count and time.

pub mod dns;
pub mod http;
pub mod iperf;
pub mod ping;
pub mod raw;
pub mod tcp;
pub mod udp;

/// The median of `values` (the lower middle for an even count); `None` when empty
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len().checked_sub(1)? / 2).copied()
}
