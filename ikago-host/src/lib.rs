//! What the live runners `ikago-sync` and `ikago-async` share
//!
//! - [`cli`]: the `client`, `server`, `check` and `list-devices` subcommands over `ikago-config`;
//! - [`check`]: `check client|server ...`, what will and will not work, changing nothing;
//! - [`discover`]: interfaces, routes and neighbours into the core's device list;
//! - [`filter`]: per-device BPF filters that admit only what the machine wants;
//! - [`capture`]: pcap capture handles and their drop counters;
//! - [`inject`] and [`packet`]: batched injection (`sendmmsg` on AF_PACKET, pcap as fallback);
//! - [`engine`]: the machine and its devices advanced in turns, which both runners drive;
//! - [`engines`]: a server's engines (`--threads`) on threads of their own, stopped together;
//! - [`firewall`]: `--rule`, undone on exit;
//! - [`logging`] and [`events`]: the log (text, JSON, or the journal's priorities under systemd)
//!   and the machines' events in it;
//! - [`notify`]: readiness and status for systemd's `Type=notify` units;
//! - [`machine`]: the drain loop around [`ikago_proto::Machine`];
//! - [`monitor`]: `--monitor`, fed from the engine thread with a snapshot per second;
//! - [`port`]: the tunnel port held for the process's lifetime, and who holds a port in use;
//! - [`record`]: `--record`, the flight recorder the engines feed every input and output;
//! - [`shard`]: each engine's share of the traffic when a server runs several (`--threads`);
//! - [`shutdown`]: SIGINT/SIGTERM and SIGHUP as channel messages;
//! - [`reload`]: SIGHUP's config re-read, applied where the running machine can take it;
//! - [`stream`]: `--mode tcp`'s kernel TCP connections, for both runners;
//! - [`privilege`]: CAP_NET_RAW and CAP_NET_ADMIN, for root and unprivileged users alike;
//! - [`app`]: the program around the runner's loop;
//! - [`netns`] and [`smoke`]: throwaway namespaces and the smoke test both runners run (root).

pub mod app;
pub mod capture;
pub mod check;
pub mod cli;
pub mod discover;
pub mod engine;
pub mod engines;
pub mod events;
pub mod filter;
pub mod firewall;
pub mod inject;
pub mod logging;
pub mod machine;
pub mod monitor;
mod netlink;
pub mod netns;
pub mod notify;
pub mod packet;
pub mod port;
pub mod privilege;
pub mod qdisc;
pub mod record;
pub mod reload;
pub mod shard;
pub mod shutdown;
pub mod smoke;
pub mod stream;
