//! The monitor of IkaGo-rs: the original's JSON (`/`, `/dns`), Prometheus metrics (`/metrics`)
//! and a live dashboard (`/dashboard`) over HTTP, served from snapshots
//!
//! The packet path never touches the monitor. The runner's engine thread keeps a [`Recorder`],
//! shows it the machine's events, and once per second builds a [`Snapshot`] from
//! [`Stats`](ikago_proto::Stats) and hands it to a [`Publisher`], which swaps an `Arc` under a
//! lock held for that pointer swap only. The HTTP threads render from the `Arc` they cloned,
//! with per-connection deadlines, a cap on connections and on request size, so a slow or hostile
//! client costs the runner nothing.
//!
//! # Wiring it into a runner
//!
//! ```no_run
//! use ikago_monitor::{Monitor, Recorder, Role};
//! use std::net::{IpAddr, Ipv4Addr, SocketAddr};
//! use std::time::{Duration, Instant, SystemTime};
//! # fn machine_stats() -> ikago_proto::Stats { Default::default() }
//! # fn next_event() -> Option<ikago_proto::Event> { None }
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // at start-up, before the loop: a port in use fails here, with a one-line message
//! let (start, start_wall) = (Instant::now(), SystemTime::now());
//! let ip = IpAddr::V4(Ipv4Addr::LOCALHOST); // --monitor-address, 127.0.0.1 by default
//! let monitor = Monitor::start(SocketAddr::new(ip, 18080))?; // --monitor / "monitor"
//! let publisher = monitor.publisher();
//! let mut recorder = Recorder::new(Role::Client, env!("CARGO_PKG_VERSION"), start, start_wall)
//!     .with_probe_interval(Duration::from_secs(5)); // the client's TcpTuning::keepalive
//! let mut next_publish = Instant::now();
//! loop {
//!     // ... handle a frame or a timeout; then, while draining poll_output:
//!     while let Some(event) = next_event() {
//!         recorder.record(&event, Instant::now());
//!     }
//!     // once per second (make the loop wake up for it: wait until min(deadline, next_publish))
//!     let now = Instant::now();
//!     if now >= next_publish {
//!         publisher.publish(recorder.snapshot(machine_stats(), now));
//!         next_publish = now + Duration::from_secs(1);
//!     }
//! #   break;
//! }
//! monitor.stop(); // or drop it
//! # Ok(())
//! # }
//! ```
//!
//! On the client, set `ClientConfig::dns_records` when the monitor is on, so that `/dns` is
//! filled from [`Event::DnsRecord`](ikago_proto::Event::DnsRecord), as the original did.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dashboard;
mod http;
pub mod json;
pub mod prometheus;
mod request;
mod snapshot;

pub use http::{IO_TIMEOUT, MAX_CONNECTIONS, MAX_REQUEST_BYTES, Monitor, MonitorError, Publisher};
pub use snapshot::{
    DEFAULT_PROBE_INTERVAL, DNS_CAP, DeviceCounters, DnsRecord, NAT_TABLE_CAP, NatEntry, Ping,
    Recorder, Role, STALE_GRACE, Snapshot,
};
