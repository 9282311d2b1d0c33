//! `ikago-sync`: IkaGo-rs over live pcap with blocking threads
//!
//! One capture thread per device copies each frame into a buffer from that device's free list and
//! sends it through a bounded channel to the engine thread (here, the main thread), which owns
//! the machine, feeds it, drains it after every input and at its deadlines, injects what comes
//! out and hands the buffer back. The buffers are allocated once, so the steady state allocates
//! nothing per packet. With `--monitor`, the engine also wakes once per second (it waits until the
//! earlier of the machine's deadline and the next snapshot) to publish a snapshot of the counters,
//! which the monitor's own HTTP threads serve. Everything around the loop (CLI, devices, pcap,
//! firewall, signals, the monitor's socket) is `ikago_host::app`.

mod capture;
mod engine;

use ikago_host::capture::ReadMode;
use std::process::ExitCode;

fn main() -> ExitCode {
    ikago_host::app::main("ikago-sync", ReadMode::Blocking, engine::run)
}
