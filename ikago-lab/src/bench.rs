//! The lab benchmark: the direct path against the tunnel, throughput, loss, latency and the
//! tunnel's CPU cost side by side
//!
//! A command, not a timed test: it prints figures and judges nothing but the stated targets.
//! Each path gets iperf3 UDP (1200-byte datagrams) at every offered rate, three runs each (the
//! median is reported), the client's and server's CPU time over each run divided by the payload
//! bytes carried (seconds per GB), UDP echo round trips (p50 and p99) against an in-process
//! reflector on the destination, and ping round trips likewise, on an otherwise idle path.

use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::addr::{DESTINATION, RTT_PORT};
use crate::probe::iperf;
use crate::probe::median;
use crate::probe::{ping, udp};
use crate::{
    ClientSite, Daemon, FirewallPolicy, Host, Lab, LabError, Result, Runner, TunnelOptions,
};

/// Offered UDP rates, bits per second
pub const OFFERED_BPS: [u64; 4] = [100_000_000, 200_000_000, 400_000_000, 800_000_000];
/// iperf3 datagram payload, bytes
pub const DATAGRAM: usize = 1200;
/// Runs per offered rate; the median is reported
const RUNS: usize = 3;
/// Duration of each iperf3 run
const IPERF_TIME: Duration = Duration::from_secs(3);
/// UDP echoes per latency measurement, their spacing, size and timeout
const ECHOES: u32 = 1000;
const ECHO_INTERVAL: Duration = Duration::from_millis(1);
const ECHO_SIZE: usize = 64;
const ECHO_TIMEOUT: Duration = Duration::from_millis(500);
/// ICMP echoes per latency measurement and their spacing (the system `ping`, as root)
const PINGS: u32 = 1000;
const PING_INTERVAL: Duration = Duration::from_millis(1);
/// Password of the encrypted rows
const PASSWORD: &str = "ikago-lab-bench";
/// Tunnel methods measured for each runner
pub const METHODS: [&str; 2] = ["plain", "aes-256-gcm"];

/// What to measure
#[derive(Clone, Debug)]
pub struct Plan {
    /// The runners, each with every method of [`METHODS`]
    pub runners: Vec<Runner>,
    /// Extra rows, each the first runner, plain, with these options (`--busy-poll 50`)
    pub extra_rows: Vec<Vec<String>>,
    /// Extra rows, each the first runner, plain, with these options on the server only
    /// (`--threads 1`)
    pub server_rows: Vec<Vec<String>>,
    /// Round trips only, no throughput runs (`--latency-only`: a few seconds per row)
    pub latency_only: bool,
}

/// The median figures of one offered rate
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Offered rate, bits per second
    pub offered_bps: u64,
    /// Received payload rate, bits per second
    pub received_bps: f64,
    /// Fraction of datagrams lost
    pub loss: f64,
    /// Client and server CPU seconds per GB of payload carried (tunnel rows only)
    pub cpu_s_per_gb: Option<f64>,
}

/// One measured path
#[derive(Clone, Debug)]
pub struct Row {
    /// "direct" or "<runner> <method>[ <extra options>]"
    pub label: String,
    /// Runner and method, for comparing the runners (`None` for the direct path)
    pub tunnel: Option<(Runner, &'static str)>,
    /// Whether the row has extra options (it is compared with no other)
    pub extra: bool,
    /// UDP echo round trips, p50 and p99, milliseconds
    pub rtt_ms: Option<(f64, f64)>,
    /// Echoes that never came back, of [`ECHOES`]
    pub echoes_lost: u32,
    /// Ping round trips, p50 and p99, milliseconds
    pub ping_ms: Option<(f64, f64)>,
    /// Pings that never came back, of [`PINGS`]
    pub pings_lost: u32,
    /// One entry per [`OFFERED_BPS`]
    pub rates: Vec<Rate>,
}

/// Measures the direct path (firewall open, kernel forwarding) then each runner's tunnel
pub fn run(plan: &Plan) -> Result<Vec<Row>> {
    let mut lab = Lab::build(FirewallPolicy::open())?;
    let reflector = lab
        .ns(Host::Destination)
        .enter(|| UdpSocket::bind(SocketAddrV4::new(DESTINATION, RTT_PORT)))?
        .map_err(LabError::io("bind the echo reflector"))?;
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reflecting = scope.spawn(|| udp::reflect(&reflector, &stop));
        let rows = measure_all(&mut lab, plan);
        stop.store(true, Ordering::Relaxed);
        reflecting.join().expect("the reflector does not panic")?;
        rows
    })
}

fn measure_all(lab: &mut Lab, plan: &Plan) -> Result<Vec<Row>> {
    lab.set_direct_routing(true)?;
    let mut rows = vec![measure(lab, plan, "direct".into(), None, None)?];
    lab.set_direct_routing(false)?;
    lab.set_policy(FirewallPolicy::default())?;
    let mut tunnels = plan
        .runners
        .iter()
        .flat_map(|&r| METHODS.map(|m| (r, m, Vec::new(), Vec::new())))
        .collect::<Vec<_>>();
    if let Some(&runner) = plan.runners.first() {
        let both = plan.extra_rows.iter().map(|o| (o.clone(), Vec::new()));
        let server = plan.server_rows.iter().map(|o| (Vec::new(), o.clone()));
        tunnels.extend(both.chain(server).map(|(b, s)| (runner, "plain", b, s)));
    }
    for (runner, method, extra, server_extra) in tunnels {
        let mut tunnel = match method {
            "plain" => TunnelOptions::default(),
            _ => TunnelOptions::encrypted(method, PASSWORD),
        };
        let mut label = format!("{} {method}", runner.name());
        for option in &extra {
            label += " ";
            label += option.trim_start_matches('-');
        }
        if !server_extra.is_empty() {
            label += " server";
        }
        for option in &server_extra {
            label += " ";
            label += option.trim_start_matches('-');
        }
        tunnel.extra = extra;
        tunnel.server_extra = server_extra;
        let mut server = lab.start_server(runner, &tunnel)?;
        let mut client = lab.start_client(runner, ClientSite::Main, &tunnel)?;
        let daemons = Some([&client, &server]);
        let row = measure(lab, plan, label, Some((runner, method)), daemons).map(|row| Row {
            extra: !tunnel.extra.is_empty() || !tunnel.server_extra.is_empty(),
            ..row
        });
        for (side, daemon) in [("client", &mut client), ("server", &mut server)] {
            if let Err(e) = crate::stop(daemon) {
                eprintln!("ikago-lab bench: {} {side}: {e}; killed", runner.name());
            }
        }
        rows.push(row?);
    }
    Ok(rows)
}

fn measure(
    lab: &Lab,
    plan: &Plan,
    label: String,
    tunnel: Option<(Runner, &'static str)>,
    daemons: Option<[&Daemon; 2]>,
) -> Result<Row> {
    let host = lab.ns(Host::HostA);
    let to = SocketAddrV4::new(DESTINATION, RTT_PORT);
    let rtts = udp::rtts(host, to, ECHO_SIZE, ECHOES, ECHO_INTERVAL, ECHO_TIMEOUT)?;
    let ms = rtts
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect::<Vec<_>>();
    let rtt_ms = p50_p99(ms);
    let echoes_lost = ECHOES - u32::try_from(rtts.len()).expect("at most ECHOES replies");
    let pings = ping::ping(
        host,
        DESTINATION,
        PINGS,
        PING_INTERVAL,
        Duration::from_secs(1),
    )?;
    let pings_lost = pings.sent - pings.received();
    let ping_ms = p50_p99(pings.rtts_ms);
    let cpu =
        || -> Option<Duration> { daemons.map(|d| d.iter().filter_map(|d| d.cpu_time()).sum()) };
    let mut rates = Vec::new();
    let offered: &[u64] = if plan.latency_only { &[] } else { &OFFERED_BPS };
    for &offered_bps in offered {
        let (mut received, mut loss, mut s_per_gb) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let before = cpu();
            let report = iperf::udp(host, DESTINATION, offered_bps, DATAGRAM, IPERF_TIME)?;
            let used = cpu().zip(before).map(|(after, before)| after - before);
            let carried_gb = (report.packets - report.lost) as f64 * DATAGRAM as f64 / 1e9;
            received.push(report.received_bps);
            loss.push(report.loss());
            if let Some(used) = used.filter(|_| carried_gb > 0.0) {
                s_per_gb.push(used.as_secs_f64() / carried_gb);
            }
        }
        rates.push(Rate {
            offered_bps,
            received_bps: median(&received).unwrap_or(0.0),
            loss: median(&loss).unwrap_or(1.0),
            cpu_s_per_gb: median(&s_per_gb),
        });
    }
    Ok(Row {
        label,
        tunnel,
        extra: false,
        rtt_ms,
        echoes_lost,
        ping_ms,
        pings_lost,
        rates,
    })
}

/// The median and 99th percentile of round trips in milliseconds; `None` when none came back
fn p50_p99(mut ms: Vec<f64>) -> Option<(f64, f64)> {
    ms.sort_by(f64::total_cmp);
    median(&ms).zip(percentile(&ms, 0.99))
}

/// The `q` quantile of sorted `values` (nearest rank); `None` when empty
fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

/// The table: one line per path; echo and ping round trips, received rate and loss at each
/// offered rate, and CPU seconds per GB at each offered rate
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<30} {:>15} {:>15}",
        "path", "echo p50/p99 ms", "ping p50/p99 ms"
    );
    let offered = rows.first().map_or(&[][..], |r| &r.rates[..]);
    for rate in offered {
        out += &format!(
            " {:>15}",
            format!("rx,loss@{}M", rate.offered_bps / 1_000_000)
        );
    }
    for rate in offered {
        out += &format!(" {:>8}", format!("s/GB@{}", rate.offered_bps / 1_000_000));
    }
    out += "\n";
    for row in rows {
        out += &format!(
            "{:<30} {:>15} {:>15}",
            row.label,
            round_trips(row.rtt_ms, row.echoes_lost),
            round_trips(row.ping_ms, row.pings_lost)
        );
        for rate in &row.rates {
            out += &format!(
                " {:>15}",
                format!("{:.0}, {:.1}%", rate.received_bps / 1e6, rate.loss * 100.0)
            );
        }
        for rate in &row.rates {
            let cpu = rate.cpu_s_per_gb.map_or("-".into(), |s| format!("{s:.1}"));
            out += &format!(" {cpu:>8}");
        }
        out += "\n";
    }
    out
}

/// "p50/p99" in milliseconds, and how many never came back
fn round_trips(ms: Option<(f64, f64)>, lost: u32) -> String {
    let rtt = ms.map_or("-".to_owned(), |(p50, p99)| format!("{p50:.3}/{p99:.3}"));
    match lost {
        0 => rtt,
        n => format!("{rtt} ({n} lost)"),
    }
}

/// The targets of the issue, per tunnel row: CPU at most 13 s/GB at 400 Mbit/s and 18 at 100;
/// at 800 Mbit/s at least 92% of what the direct path received; echo and ping p50 at most 1.5×
/// and p99 at most 2× the direct path's; and each sync row within 10% of the async row of its
/// method
pub fn verdicts(rows: &[Row]) -> Vec<String> {
    let Some(direct) = rows.first() else {
        return Vec::new();
    };
    let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
    let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    rows.iter()
        .skip(1)
        .map(|row| {
            let cpu400 = at(row, 400).and_then(|r| r.cpu_s_per_gb);
            let cpu100 = at(row, 100).and_then(|r| r.cpu_s_per_gb);
            let share800 = at(row, 800)
                .zip(at(direct, 800))
                .map(|(t, d)| t.received_bps / d.received_bps.max(1.0));
            let mut line = format!("{}: ", row.label);
            if !row.rates.is_empty() {
                line += &format!(
                    "{} s/GB at 400 {} (<= 13), {} at 100 {} (<= 18); {} of direct at 800 {} (>= 0.92); ",
                    fmt(cpu400),
                    mark(cpu400.is_some_and(|c| c <= 13.0)),
                    fmt(cpu100),
                    mark(cpu100.is_some_and(|c| c <= 18.0)),
                    fmt(share800),
                    mark(share800.is_some_and(|s| s >= 0.92)),
                );
            }
            line += &format!(
                "echo {}; ping {}",
                latency(row.rtt_ms, direct.rtt_ms),
                latency(row.ping_ms, direct.ping_ms),
            );
            if let Some((Runner::Sync, method)) = row.tunnel
                && let Some(peer) = rows.iter().find(|r| {
                    r.tunnel == Some((Runner::Async, method)) && !r.extra
                })
                && !row.extra
            {
                line += &format!("; against async: {}", against(row, peer));
            }
            line
        })
        .collect()
}

/// Round trips (p50, p99) against the direct path's: "p50 <x>x ok (<= 1.5), p99 <x>x ok (<= 2)"
fn latency(tunnel: Option<(f64, f64)>, direct: Option<(f64, f64)>) -> String {
    let ratios = tunnel.zip(direct).map(|(t, d)| (t.0 / d.0, t.1 / d.1));
    let judged = |ratio: Option<f64>, limit: f64| {
        let mark = if ratio.is_some_and(|r| r <= limit) {
            "ok"
        } else {
            "MISSED"
        };
        let ratio = ratio.map_or("-".to_owned(), |r| format!("{r:.2}"));
        format!("{ratio}x {mark} (<= {limit})")
    };
    format!(
        "p50 {}, p99 {}",
        judged(ratios.map(|r| r.0), 1.5),
        judged(ratios.map(|r| r.1), 2.0)
    )
}

/// The figures of `row` at `mbit` Mbit/s offered
fn at(row: &Row, mbit: u64) -> Option<Rate> {
    row.rates
        .iter()
        .find(|r| r.offered_bps == mbit * 1_000_000)
        .copied()
}

/// How far `sync` is from `async` on every figure: CPU at 100 and 400, received at 800, echo and
/// ping p50 and p99, each within 10% (or better)
fn against(sync: &Row, async_: &Row) -> String {
    type Figure = fn(&Row) -> Option<f64>;
    // (figure, how to read it, whether more is better)
    let read: [(&str, Figure, bool); 7] = [
        (
            "CPU@100",
            |r| at(r, 100).and_then(|r| r.cpu_s_per_gb),
            false,
        ),
        (
            "CPU@400",
            |r| at(r, 400).and_then(|r| r.cpu_s_per_gb),
            false,
        ),
        ("rx@800", |r| at(r, 800).map(|r| r.received_bps), true),
        ("echo p50", |r| r.rtt_ms.map(|t| t.0), false),
        ("echo p99", |r| r.rtt_ms.map(|t| t.1), false),
        ("ping p50", |r| r.ping_ms.map(|t| t.0), false),
        ("ping p99", |r| r.ping_ms.map(|t| t.1), false),
    ];
    // (figure, sync / async, whether more is better); a figure neither row has (the throughput
    // runs' with `--latency-only`) is left out
    let figures = read
        .into_iter()
        .filter(|(_, figure, _)| figure(sync).is_some() || figure(async_).is_some())
        .map(|(name, figure, more_is_better)| {
            let ratio = figure(sync)
                .zip(figure(async_))
                .map(|(s, a)| s / a.max(f64::MIN_POSITIVE));
            (name, ratio, more_is_better)
        })
        .collect::<Vec<_>>();
    let within = figures.iter().all(|&(_, r, more_is_better)| {
        r.is_some_and(|r| if more_is_better { r >= 0.9 } else { r <= 1.1 })
    });
    let listed = figures
        .iter()
        .map(|(name, r, _)| format!("{name} {}x", r.map_or("-".into(), |r| format!("{r:.2}"))))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{listed} {} (within 10%)",
        if within { "ok" } else { "MISSED" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(runner: Runner, cpu: f64, rx800: f64, echo: (f64, f64), ping: (f64, f64)) -> Row {
        Row {
            label: runner.name().into(),
            tunnel: Some((runner, "plain")),
            extra: false,
            rtt_ms: Some(echo),
            echoes_lost: 0,
            ping_ms: Some(ping),
            pings_lost: 0,
            rates: OFFERED_BPS
                .map(|offered_bps| Rate {
                    offered_bps,
                    received_bps: if offered_bps == 800_000_000 {
                        rx800
                    } else {
                        offered_bps as f64
                    },
                    loss: 0.0,
                    cpu_s_per_gb: Some(cpu),
                })
                .to_vec(),
        }
    }

    #[test]
    fn sync_is_judged_against_async_on_every_figure() {
        let async_ = row(Runner::Async, 10.0, 700e6, (0.1, 0.2), (0.05, 0.1));
        let better = row(Runner::Sync, 9.0, 750e6, (0.09, 0.2), (0.05, 0.1));
        assert!(against(&better, &async_).ends_with(" ok (within 10%)"));
        let slow_ping = row(Runner::Sync, 9.0, 750e6, (0.09, 0.2), (0.05, 0.12));
        let verdict = against(&slow_ping, &async_);
        assert!(verdict.contains("ping p99 1.20x"), "{verdict}");
        assert!(verdict.ends_with(" MISSED (within 10%)"), "{verdict}");
        let less_rx = row(Runner::Sync, 9.0, 600e6, (0.09, 0.2), (0.05, 0.1));
        assert!(against(&less_rx, &async_).ends_with(" MISSED (within 10%)"));
        // round trips alone: only they are compared
        let latency_only = |row: Row| Row {
            rates: Vec::new(),
            ..row
        };
        let verdict = against(&latency_only(better), &latency_only(async_));
        assert!(verdict.starts_with("echo p50 0.90x"), "{verdict}");
        assert!(verdict.ends_with(" ok (within 10%)"), "{verdict}");
    }

    #[test]
    fn latency_is_judged_against_the_direct_path() {
        let judged = latency(Some((0.03, 0.1)), Some((0.02, 0.05)));
        assert_eq!(judged, "p50 1.50x ok (<= 1.5), p99 2.00x ok (<= 2)");
        let judged = latency(Some((0.04, 0.11)), Some((0.02, 0.05)));
        assert_eq!(judged, "p50 2.00x MISSED (<= 1.5), p99 2.20x MISSED (<= 2)");
        assert!(latency(None, Some((0.02, 0.05))).contains("-x MISSED"));
    }

    #[test]
    fn percentile_is_the_nearest_rank() {
        let values = (1..=200).map(f64::from).collect::<Vec<_>>();
        assert_eq!(percentile(&values, 0.99), Some(198.0));
        assert_eq!(percentile(&values, 0.5), Some(100.0));
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
        assert_eq!(percentile(&[], 0.99), None);
    }
}
