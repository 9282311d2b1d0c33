//! The engine thread: owns the machine, feeds frames and deadlines in, injects what comes out,
//! publishes the monitor's snapshots and applies config reloads

use crate::capture::{self, Msg, Wiring};
use ikago_host::app::{Outcome, Session};
use ikago_host::capture::SNAPLEN;
use ikago_host::inject::Injectors;
use ikago_host::machine::drain;
use ikago_host::shutdown::Signal;
use ikago_proto::{DeviceId, Input, MAX_FRAME_LEN};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::Instant;

/// Buffers per device: how many frames can wait for the engine before capture waits too
const POOL: usize = 64;

/// Runs until SIGINT/SIGTERM or a capture failure
pub(crate) fn run(session: Session) -> Outcome {
    let Session {
        mut machine,
        devices,
        signals,
        mut monitor,
        mut reload,
        mut recorder,
    } = session;
    let (frames, rx) = mpsc::sync_channel::<Msg>(POOL * devices.len() + 1);
    let mut free: Vec<SyncSender<Vec<u8>>> = Vec::with_capacity(devices.len());
    let mut threads = Vec::with_capacity(devices.len());
    let mut handles = Vec::with_capacity(devices.len());
    let mut inject = Vec::with_capacity(devices.len());
    let mut names = Vec::with_capacity(devices.len());
    let mut result = Ok(());
    for (i, d) in devices.into_iter().enumerate() {
        let (free_tx, free_rx) = mpsc::sync_channel(POOL);
        for _ in 0..POOL {
            free_tx
                .try_send(vec![0u8; SNAPLEN])
                .expect("the free list holds POOL buffers");
        }
        free.push(free_tx);
        inject.push(d.io.inject);
        names.push(d.name.clone());
        let id = DeviceId(u8::try_from(i).expect("the core takes at most 255 devices"));
        let wiring = Wiring {
            frames: frames.clone(),
            free: free_rx,
        };
        match capture::spawn(id, d.name, d.io.capture, wiring) {
            Ok((t, h)) => {
                threads.push(t);
                handles.push(h);
            }
            Err(e) => result = Err(format!("cannot start a capture thread: {e}")),
        }
    }
    let on_signal = frames.clone();
    // detached: it forwards signals until the first stop or the engine's end
    let forwarder = std::thread::Builder::new()
        .name("signal forwarder".into())
        .spawn(move || {
            while let Ok(signal) = signals.recv_blocking() {
                let (msg, last) = match signal {
                    Signal::Stop => (Msg::Shutdown, true),
                    Signal::Reload(reread) => (Msg::Reload(reread), false),
                };
                if on_signal.send(msg).is_err() || last {
                    return;
                }
            }
        });
    if let Err(e) = forwarder {
        result = Err(format!("cannot start the signal forwarder: {e}"));
    }
    drop(frames);
    let mut inject = Injectors::new(inject, names);
    let mut out = vec![0u8; MAX_FRAME_LEN];
    let start = Instant::now();
    let mut deadline = drain(&mut machine, &mut out, &mut inject, &mut recorder, |e| {
        monitor.record(e, start)
    });
    while result.is_ok() {
        // the machine's deadline or, if earlier, the monitor's next snapshot
        let wait = monitor
            .wake_at(deadline)
            .saturating_duration_since(Instant::now());
        let msg = rx.recv_timeout(wait);
        let now = Instant::now();
        match msg {
            Ok(Msg::Frame { device, buf, len }) => {
                let input = Input::Frame {
                    now,
                    device,
                    data: &buf[..len],
                };
                recorder.input(input);
                machine.handle_input(input);
                // never full: the list has room for every buffer of its device
                let _ = free[device.index()].try_send(buf);
                deadline = drain(&mut machine, &mut out, &mut inject, &mut recorder, |e| {
                    monitor.record(e, now)
                });
            }
            Ok(Msg::Shutdown) => break,
            Ok(Msg::Reload(reread)) => {
                let filters = reload.apply(*reread, &mut machine, &mut monitor, &mut recorder, now);
                for (device, filter) in filters {
                    handles[device].refilter(filter);
                }
            }
            Ok(Msg::Failed(e)) => result = Err(e),
            Err(RecvTimeoutError::Timeout) if now >= deadline => {
                let input = Input::Timeout(now);
                recorder.input(input);
                machine.handle_input(input);
                deadline = drain(&mut machine, &mut out, &mut inject, &mut recorder, |e| {
                    monitor.record(e, now)
                });
            }
            // woken for the monitor only
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                result = Err("every capture thread stopped".into())
            }
        }
        // one comparison per message; a snapshot once per second, also under a frame flood
        monitor.publish_due(&machine, now);
    }
    for h in &handles {
        h.stop();
    }
    drop(free);
    drop(rx);
    for t in threads {
        let _ = t.join();
    }
    Outcome {
        stats: machine.stats(),
        result,
    }
}
