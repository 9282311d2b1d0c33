//! `ikago-async`: IkaGo-rs over live pcap with async tasks
//!
//! The engine task drives the shared `ikago_host::engine::Engine` (the machine and every device's
//! nonblocking capture and batched injection). It waits, on the async-io reactor, for whichever
//! comes first: a capture fd turning readable, the machine's deadline (`async_io::Timer`) or a
//! shutdown message (`async-channel`); then it reads the ready frames straight from libpcap's
//! ring into the machine, which writes its frames straight into the injection slots, sent at the
//! end of the turn: no frame is copied or allocated on the way. With `--monitor`, a second timer
//! wakes it once per second to publish a snapshot of the counters, which the monitor's own HTTP
//! threads serve; with `--busy-poll`, it polls the devices for a while before it sleeps. A server
//! of `--threads N` runs N engine tasks, each blocked on by a thread of its own with its own
//! machine and captures. Everything around the loop (CLI, devices, pcap, firewall, signals, the
//! monitor's socket) is `ikago_host::app`.

mod engine;

use std::process::ExitCode;

fn main() -> ExitCode {
    // called once per engine, on the engine's own thread
    ikago_host::app::main("ikago-async", |session| {
        // The one place that names an executor. async-std is discontinued upstream
        // (RUSTSEC-2025-0052); it stays because the user's design names it. The engine is written
        // against the runtime-neutral async-io, async-channel and futures-lite, so switching to
        // smol or async-executor is this line.
        async_std::task::block_on(engine::run(session))
    })
}
