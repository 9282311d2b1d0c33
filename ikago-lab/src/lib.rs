//! Network-namespace lab of IkaGo-rs: a LAN, a UDP-blocking firewall, a server and a destination
//!
//! Everything lives in network namespaces that this crate creates with unique names
//! (`ikl-<pid>-<n>-<role>`), on addresses in 198.18.0.0/15 only (see [`addr`]); a lab built with
//! [`Lab::build_dual_stack`] adds an IPv6 plane on 2001:db8::/32 and fd00::/8 only, with an
//! IPv6-only LAN host D and a third Internet host behind the destination. Each namespace,
//! process and link is owned by a guard ([`Netns`], [`Daemon`]) that removes it on drop, so a
//! failing or panicking test leaves nothing behind; [`sweep_stale`] removes what a killed run left.
//!
//! ```text
//!  host A .21.2 ─┐                                                             ┌ destination .24.2
//!  host B .21.3 ─┤ LAN bridge ── client lan0 .21.1 │ wan0 .22.2 ─┐              │ DNS, echo, iperf3
//!                                                               ├ WAN bridge ─ firewall .22.1 │ .23.1 ─ server wan0 .23.2 │ dst0 .24.1 ┘
//!  host C .25.2 ──────────────── client2 lan0 .25.1 │ wan0 .22.3 ─┘                           └ .26.1 ─ server2 wan0 .26.2 │ dst0 .27.1 ─ destination .27.2
//! ```
//!
//! Build a [`Lab`] with a [`FirewallPolicy`], start the runners with [`Lab::start_server`] and
//! [`Lab::start_client`], and measure with [`probe`] (the runners' monitor with [`probe::http`]
//! and, in headless Chromium, [`browser`]); [`unprivileged`] runs them as `nobody` with
//! capabilities. Lab work needs root: call [`require_root`] first, which prints `skipped: lab
//! tests need root` elsewhere.

pub mod addr;
pub mod bench;
pub mod browser;
mod cmd;
pub mod demo;
mod error;
pub mod firewall;
mod link;
mod netns;
mod privilege;
pub mod probe;
mod process;
pub mod runner;
mod services;
mod topology;
pub mod unprivileged;
mod watchdog;

pub use error::{LabError, Result};
pub use firewall::{Blocking, FirewallPolicy};
pub use netns::{Netns, namespaces_with_prefix, sweep_stale};
pub use privilege::require_root;
pub use process::{Daemon, STOP_TIMEOUT, stop};
pub use runner::{ClientSite, Runner, ServerSite, TunnelOptions};
pub use topology::{CONNECT_TIMEOUT, Host, Lab};
