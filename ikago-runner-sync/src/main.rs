//! `ikago-sync`: IkaGo-rs over live pcap with blocking threads
//!
//! One thread (the main thread) drives the shared `ikago_host::engine::Engine`: it blocks in one
//! `poll(2)` over every device's nonblocking capture fd and a socket the signal forwarder writes
//! to, until the earlier of the machine's deadline and the monitor's next snapshot; then it reads
//! the ready frames straight from libpcap's ring into the machine, which writes its frames straight
//! into the injection slots, sent at the end of the turn (one `sendmmsg` per device). No frame is
//! copied between threads, and the steady state allocates nothing per packet. With `--monitor`,
//! the monitor's own HTTP threads serve the snapshot the engine publishes once per second; with
//! `--busy-poll`, the engine polls the devices for a while before it sleeps. A server of
//! `--threads N` runs N such loops, each on a thread of its own with its own machine and captures.
//! Everything around the loop (CLI, devices, pcap, firewall, signals, the monitor's socket) is
//! `ikago_host::app`.

mod engine;

use std::process::ExitCode;

fn main() -> ExitCode {
    ikago_host::app::main("ikago-sync", engine::run)
}
