//! `ikago-async`: IkaGo-rs over live pcap with async tasks
//!
//! The engine task owns the machine and every device's nonblocking capture handle. It waits, on
//! the async-io reactor, for whichever comes first: a capture fd turning readable, the machine's
//! deadline (`async_io::Timer`) or a shutdown message (`async-channel`); then it reads the ready
//! frames straight from libpcap's ring into the machine, so no frame is copied or allocated on the
//! way. With `--monitor`, a second timer wakes it once per second to publish a snapshot of the
//! counters, which the monitor's own HTTP threads serve. Everything around the loop (CLI, devices,
//! pcap, firewall, signals, the monitor's socket) is `ikago_host::app`.

mod engine;

use ikago_host::capture::ReadMode;
use std::process::ExitCode;

fn main() -> ExitCode {
    ikago_host::app::main("ikago-async", ReadMode::NonBlocking, |session| {
        // The one place that names an executor. async-std is discontinued upstream
        // (RUSTSEC-2025-0052); it stays because the user's design names it. The engine is written
        // against the runtime-neutral async-io, async-channel and futures-lite, so switching to
        // smol or async-executor is this line.
        async_std::task::block_on(engine::run(session))
    })
}
