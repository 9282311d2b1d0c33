//! The engine thread: owns the machine, feeds frames and deadlines in, injects what comes out,
//! and publishes the monitor's snapshots

use crate::capture::{self, Msg, Wiring};
use ikago_host::app::{Outcome, Session};
use ikago_host::capture::SNAPLEN;
use ikago_host::inject::Injectors;
use ikago_host::machine::drain;
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
        shutdown,
        mut monitor,
        mut recorder,
    } = session;
    let (frames, rx) = mpsc::sync_channel::<Msg>(POOL * devices.len() + 1);
    let mut free: Vec<SyncSender<Vec<u8>>> = Vec::with_capacity(devices.len());
    let mut threads = Vec::with_capacity(devices.len());
    let mut breakers = Vec::with_capacity(devices.len());
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
        let mut cap = d.io.capture;
        breakers.push(cap.breakloop_handle());
        match capture::spawn(id, d.name, cap, wiring) {
            Ok(t) => threads.push(t),
            Err(e) => result = Err(format!("cannot start a capture thread: {e}")),
        }
    }
    let on_signal = frames.clone();
    // detached: it waits for a signal for as long as the process lives
    let forwarder = std::thread::Builder::new()
        .name("shutdown".into())
        .spawn(move || {
            if shutdown.recv_blocking().is_ok() {
                let _ = on_signal.send(Msg::Shutdown);
            }
        });
    if let Err(e) = forwarder {
        result = Err(format!("cannot start the shutdown thread: {e}"));
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
    for b in &breakers {
        b.breakloop();
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
