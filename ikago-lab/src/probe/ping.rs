//! ICMP and ICMPv6 echo with the system `ping`, run in a namespace

use std::net::IpAddr;
use std::time::Duration;

use super::median;
use crate::{LabError, Netns, Result};

/// What a ping run saw
#[derive(Clone, Debug)]
pub struct PingReport {
    /// Echo requests sent
    pub sent: u32,
    /// Round-trip times of the replies, in milliseconds
    pub rtts_ms: Vec<f64>,
}

impl PingReport {
    /// Replies received
    pub fn received(&self) -> u32 {
        u32::try_from(self.rtts_ms.len()).expect("at most `sent` replies")
    }

    /// Median round trip in milliseconds, if any reply came
    pub fn median_ms(&self) -> Option<f64> {
        median(&self.rtts_ms)
    }
}

/// Pings through a tunnel checked: how many are sent, and how many must come back (one may be
/// lost on any network)
const THROUGH_SENT: u32 = 10;
const THROUGH_BACK: u32 = 9;

/// Pings `to` from `ns` [`THROUGH_SENT`] times, `interval` apart (1 s wait per reply), and fails
/// unless at least [`THROUGH_BACK`] replies came
pub fn through(ns: &Netns, to: impl Into<IpAddr>, interval: Duration) -> Result<PingReport> {
    let to = to.into();
    let report = ping(ns, to, THROUGH_SENT, interval, Duration::from_secs(1))?;
    match report.received() {
        n if n >= THROUGH_BACK => Ok(report),
        n => Err(LabError::Check(format!(
            "{n} of {THROUGH_SENT} pings to {to} came back"
        ))),
    }
}

/// Pings `to` (ICMP echo, or ICMPv6 echo for an IPv6 address) from `ns` `count` times,
/// `interval` apart, waiting at most `wait` per reply
///
/// No `-w`: with a deadline, ping would keep sending until `count` replies came.
pub fn ping(
    ns: &Netns,
    to: impl Into<IpAddr>,
    count: u32,
    interval: Duration,
    wait: Duration,
) -> Result<PingReport> {
    let to = to.into();
    super::lab_only(to)?;
    let count_s = count.to_string();
    let interval_s = format!("{:.3}", interval.as_secs_f64());
    let wait_s = wait.as_secs().max(1).to_string();
    // Exit status 1 just means some replies were missing: the report says how many
    let output = ns.attempt(
        "ping",
        &[
            "-n",
            "-c",
            &count_s,
            "-i",
            &interval_s,
            "-W",
            &wait_s,
            &to.to_string(),
        ],
    )?;
    let text = String::from_utf8_lossy(&output.stdout);
    let rtts_ms = text
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| {
            l.split("time=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    Ok(PingReport {
        sent: count,
        rtts_ms,
    })
}
