//! The drain loop both runners share around [`Machine`], and what they report about it

use crate::inject::Injectors;
use crate::record::Recorder;
use crate::stream::Streams;
use ikago_monitor::{DeviceCounters, Role};
use ikago_proto::{Event, Machine, Output, Stats, StreamOp};
use std::time::Instant;

/// Polls `machine` until [`Output::Timeout`]: records every frame and queues it for injection
/// (the machine writes it straight into the injection slot; [`Injectors::flush`] sends it at the
/// end of the turn), hands every tunnel connection operation to `streams` (`--mode tcp`), logs
/// every event, reports it to the service manager ([`crate::notify::event`]) and hands it to
/// `on_event` (the monitor's [`Feed::record`](crate::monitor::Feed::record)), and returns the
/// instant the machine wants [`Input::Timeout`](ikago_proto::Input::Timeout) at; call after
/// every input.
pub fn drain(
    machine: &mut Machine,
    inject: &mut Injectors,
    streams: &mut Streams,
    recorder: &mut Recorder,
    mut on_event: impl FnMut(&Event),
) -> Instant {
    let role = role(machine);
    loop {
        let slot = inject.slot();
        match machine.poll_output(slot) {
            Output::Transmit(t) => {
                recorder.output(t.device, &slot[..t.len]);
                inject.commit(t.device, t.len);
            }
            Output::Stream(op) => {
                let bytes = match op {
                    StreamOp::Write { len, .. } => &slot[..len],
                    StreamOp::Connect { .. } | StreamOp::Close { .. } => &[],
                };
                streams.handle(op, bytes);
            }
            Output::Event(e) => {
                crate::events::log(role, &e);
                crate::notify::event(&e);
                on_event(&e);
            }
            Output::Timeout(at) => return at,
        }
    }
}

/// Which machine it is, for the monitor
pub fn role(machine: &Machine) -> Role {
    match machine {
        Machine::Client(_) => Role::Client,
        Machine::Server(_) => Role::Server,
    }
}

/// One line per device for the log at exit: where frames died outside the machine
pub fn device_summary(d: &DeviceCounters) -> String {
    format!(
        "Device {}: {} frames captured, {} dropped (capture buffer full), {} dropped by the \
         interface; {} injected, {} refused, {} short batches",
        d.device,
        d.captured,
        d.capture_dropped,
        d.interface_dropped,
        d.injected,
        d.inject_failed,
        d.inject_short
    )
}

/// One line of counters for the log at exit
pub fn summary(s: &Stats) -> String {
    format!(
        "Tunnel {} packets ({} bytes) out, {} packets ({} bytes) in; inner {} out, {} in; \
         local {} out, {} in; drops: {}",
        s.tunnel_tx.packets,
        s.tunnel_tx.bytes,
        s.tunnel_rx.packets,
        s.tunnel_rx.bytes,
        s.inner_tx.packets,
        s.inner_rx.packets,
        s.local_tx.packets,
        s.local_rx.packets,
        s.drops
    )
}
