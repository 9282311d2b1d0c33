//! UDP throughput with `iperf3 -u`, run in a namespace against the destination's server

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;

use crate::addr::IPERF_PORT;
use crate::{LabError, Netns, Result};

/// What arrived of an iperf3 UDP run, as the receiving server counted it
#[derive(Clone, Debug)]
pub struct UdpReport {
    /// Offered rate, bits per second
    pub offered_bps: u64,
    /// Datagrams sent
    pub packets: u64,
    /// Datagrams lost (never arrived, by sequence number)
    pub lost: u64,
    /// Received payload rate, bits per second
    pub received_bps: f64,
}

impl UdpReport {
    /// Fraction of datagrams lost
    pub fn loss(&self) -> f64 {
        self.lost as f64 / self.packets.max(1) as f64
    }
}

/// Sends UDP at `offered_bps` in `len`-byte datagrams from `ns` to `to` for `time`
pub fn udp(
    ns: &Netns,
    to: Ipv4Addr,
    offered_bps: u64,
    len: usize,
    time: Duration,
) -> Result<UdpReport> {
    super::lab_only(to)?;
    let args = [
        "-c".to_owned(),
        to.to_string(),
        "-p".into(),
        IPERF_PORT.to_string(),
        "-u".into(),
        "-b".into(),
        offered_bps.to_string(),
        "-l".into(),
        len.to_string(),
        "-t".into(),
        time.as_secs().to_string(),
        "--connect-timeout".into(),
        "5000".into(),
        "-J".into(),
    ];
    let args = args.iter().map(String::as_str).collect::<Vec<_>>();
    let json = ns.exec("timeout", &[&["30", "iperf3"][..], &args].concat())?;
    let report: Value =
        serde_json::from_str(&json).map_err(|e| LabError::Check(format!("iperf3 json: {e}")))?;
    let sum = &report["end"]["sum"];
    let field = |name: &str| {
        sum[name]
            .as_f64()
            .ok_or_else(|| LabError::Check(format!("iperf3 json has no end.sum.{name}")))
    };
    let (packets, lost, seconds) = (field("packets")?, field("lost_packets")?, field("seconds")?);
    let received_bps = (packets - lost) * len as f64 * 8.0 / seconds.max(f64::EPSILON);
    Ok(UdpReport {
        offered_bps,
        packets: packets as u64,
        lost: lost as u64,
        received_bps,
    })
}
