//! The lab benchmark: the direct path against the tunnel, latency and UDP throughput side by side
//!
//! A command, not a timed test: it prints figures and judges nothing but the stated targets.

use std::time::Duration;

use crate::addr::DESTINATION;
use crate::probe::iperf::{self, UdpReport};
use crate::probe::ping::{self, PingReport};
use crate::{ClientSite, FirewallPolicy, Host, Lab, Result, Runner, TunnelOptions};

/// Offered UDP rates, bits per second
pub const OFFERED_BPS: [u64; 2] = [200_000_000, 400_000_000];
/// iperf3 datagram payload, bytes
pub const DATAGRAM: usize = 1200;
/// Duration of each iperf3 run
const IPERF_TIME: Duration = Duration::from_secs(3);
/// Pings per latency measurement, and their spacing
const PINGS: u32 = 100;
const PING_INTERVAL: Duration = Duration::from_millis(10);
/// Password of the encrypted rows
const PASSWORD: &str = "ikago-lab-bench";
/// Tunnel methods measured for each runner
pub const METHODS: [&str; 2] = ["plain", "aes-256-gcm"];

/// One measured path
#[derive(Clone, Debug)]
pub struct Row {
    /// "direct" or "<runner> <method>"
    pub label: String,
    /// Latency from host A to the destination
    pub ping: PingReport,
    /// One report per [`OFFERED_BPS`]
    pub udp: Vec<UdpReport>,
}

/// Measures the direct path (firewall open, kernel forwarding) then each runner's tunnel
pub fn run(runners: &[Runner]) -> Result<Vec<Row>> {
    let mut lab = Lab::build(FirewallPolicy::open())?;
    lab.set_direct_routing(true)?;
    let mut rows = vec![measure(&lab, "direct".into())?];
    lab.set_direct_routing(false)?;
    lab.set_policy(FirewallPolicy::default())?;
    for &runner in runners {
        for method in METHODS {
            let tunnel = match method {
                "plain" => TunnelOptions::default(),
                _ => TunnelOptions::encrypted(method, PASSWORD),
            };
            let mut server = lab.start_server(runner, &tunnel)?;
            let mut client = lab.start_client(runner, ClientSite::Main, &tunnel)?;
            rows.push(measure(&lab, format!("{} {method}", runner.name()))?);
            for (side, daemon) in [("client", &mut client), ("server", &mut server)] {
                if let Err(e) = crate::stop(daemon) {
                    eprintln!("ikago-lab bench: {} {side}: {e}; killed", runner.name());
                }
            }
        }
    }
    Ok(rows)
}

fn measure(lab: &Lab, label: String) -> Result<Row> {
    let host = lab.ns(Host::HostA);
    let ping = ping::ping(
        host,
        DESTINATION,
        PINGS,
        PING_INTERVAL,
        Duration::from_secs(1),
    )?;
    let udp = OFFERED_BPS
        .iter()
        .map(|&rate| iperf::udp(host, DESTINATION, rate, DATAGRAM, IPERF_TIME))
        .collect::<Result<Vec<_>>>()?;
    Ok(Row { label, ping, udp })
}

/// The table: one line per path, latency and the UDP figures at each offered rate
pub fn table(rows: &[Row]) -> String {
    let direct = rows.first().and_then(|r| r.ping.median_ms());
    let mut out = format!(
        "{:<20} {:>10} {:>10} {:>6}",
        "path", "ping ms", "added ms", "lost"
    );
    for rate in OFFERED_BPS {
        let mbit = rate / 1_000_000;
        out += &format!(" {:>12} {:>8}", format!("rx@{mbit}M"), "loss");
    }
    out += "\n";
    for row in rows {
        let median = row.ping.median_ms();
        let added = median.zip(direct).map(|(m, d)| m - d);
        let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        out += &format!(
            "{:<20} {:>10} {:>10} {:>6}",
            row.label,
            fmt(median),
            fmt(added),
            format!("{}/{}", row.ping.sent - row.ping.received(), row.ping.sent)
        );
        for udp in &row.udp {
            out += &format!(
                " {:>12} {:>7.2}%",
                format!("{:.1} Mbit/s", udp.received_bps / 1e6),
                udp.loss() * 100.0
            );
        }
        out += "\n";
    }
    out
}

/// Targets of the issue: added median latency at most 1 ms, at least 98% delivered at 200 Mbit/s
pub fn verdicts(rows: &[Row]) -> Vec<String> {
    let direct = rows.first().and_then(|r| r.ping.median_ms());
    rows.iter()
        .skip(1)
        .map(|row| {
            let added = row.ping.median_ms().zip(direct).map(|(m, d)| m - d);
            let latency_ok = added.is_some_and(|a| a <= 1.0);
            let delivered = row.udp.first().map_or(0.0, |u| 1.0 - u.loss());
            format!(
                "{}: added latency {} (target <= 1 ms), delivered at 200 Mbit/s {:.2}% {} (target >= 98%)",
                row.label,
                added.map_or("-".into(), |a| format!("{a:.3} ms {}", if latency_ok { "ok" } else { "MISSED" })),
                delivered * 100.0,
                if delivered >= 0.98 { "ok" } else { "MISSED" },
            )
        })
        .collect()
}
