//! The engine task: readiness of every capture fd, the machine's deadline, the monitor's next
//! snapshot and signals (shutdown, config reload), in one future

use async_io::{Async, Timer};
use futures_lite::future;
use ikago_host::app::{Outcome, Session};
use ikago_host::capture::refilter;
use ikago_host::inject::Injectors;
use ikago_host::machine::drain;
use ikago_host::reload::Reread;
use ikago_host::shutdown::Signal;
use ikago_proto::{DeviceId, Input, MAX_FRAME_LEN};
use pcap::{Active, Capture};
use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::pin;
use std::task::Poll;
use std::time::Instant;

/// Frames read from one device before the others get a turn
const BATCH: usize = 64;

/// What woke the engine
enum Wake {
    /// SIGINT or SIGTERM
    Shutdown,
    /// SIGHUP, with the config read again
    Reload(Box<Reread>),
    /// The machine's deadline passed
    Deadline,
    /// The monitor's next snapshot is due
    Publish,
    /// Device `i`'s capture fd is readable
    Readable(usize),
    /// Waiting on device `i` failed
    Failed(usize, std::io::Error),
}

/// Runs until SIGINT/SIGTERM or a capture failure
pub(crate) async fn run(session: Session) -> Outcome {
    let Session {
        mut machine,
        devices,
        signals,
        mut monitor,
        mut reload,
        mut recorder,
    } = session;
    let mut captures: Vec<Capture<Active>> = Vec::with_capacity(devices.len());
    let mut ready: Vec<Async<OwnedFd>> = Vec::with_capacity(devices.len());
    let mut inject = Vec::with_capacity(devices.len());
    let mut names = Vec::with_capacity(devices.len());
    let mut result = Ok(());
    for d in devices {
        // a duplicate of the capture's fd: same socket, same readiness, and owned, so that the
        // reactor can watch it without unsafe code while libpcap keeps reading its own fd
        match d
            .io
            .capture
            .as_fd()
            .try_clone_to_owned()
            .and_then(Async::new_nonblocking)
        {
            Ok(fd) => ready.push(fd),
            Err(e) => result = Err(format!("cannot watch {}: {e}", d.name)),
        }
        captures.push(d.io.capture);
        inject.push(d.io.inject);
        names.push(d.name);
    }
    let mut inject = Injectors::new(inject, names.clone());
    let mut out = vec![0u8; MAX_FRAME_LEN];
    let start = Instant::now();
    let mut deadline = drain(&mut machine, &mut out, &mut inject, &mut recorder, |e| {
        monitor.record(e, start)
    });
    let mut timer = Timer::at(deadline);
    let mut armed = Some(deadline);
    // the monitor's own timer, re-armed after each snapshot; never fires with the monitor off
    let mut publish = monitor.next_publish().map_or_else(Timer::never, Timer::at);
    // one receive at a time, replaced once it completed (a reload)
    let mut signal = pin!(signals.recv());
    let mut first = 0;
    while result.is_ok() {
        let wake = future::poll_fn(|cx| {
            match signal.as_mut().poll(cx) {
                Poll::Ready(Ok(Signal::Reload(reread))) => {
                    return Poll::Ready(Wake::Reload(reread));
                }
                // a stop, or the signals thread is gone
                Poll::Ready(_) => return Poll::Ready(Wake::Shutdown),
                Poll::Pending => {}
            }
            // start with the device after the last one served, so that none starves
            for k in 0..ready.len() {
                let i = (first + k) % ready.len();
                match ready[i].poll_readable(cx) {
                    Poll::Ready(Ok(())) => return Poll::Ready(Wake::Readable(i)),
                    Poll::Ready(Err(e)) => return Poll::Ready(Wake::Failed(i, e)),
                    Poll::Pending => {}
                }
            }
            if std::pin::Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Wake::Deadline);
            }
            match std::pin::Pin::new(&mut publish).poll(cx) {
                Poll::Ready(_) => Poll::Ready(Wake::Publish),
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        let fired = matches!(wake, Wake::Publish);
        match wake {
            Wake::Shutdown => break,
            Wake::Reload(reread) => {
                signal.set(signals.recv());
                let now = Instant::now();
                let filters = reload.apply(*reread, &mut machine, &mut monitor, &mut recorder, now);
                for (device, filter) in filters {
                    refilter(&mut captures[device], &names[device], &filter);
                }
                // the monitor may have started, moved or stopped
                publish = monitor.next_publish().map_or_else(Timer::never, Timer::at);
            }
            Wake::Failed(i, e) => result = Err(format!("waiting on {} failed: {e}", names[i])),
            Wake::Deadline => {
                armed = None;
                let now = Instant::now();
                let input = Input::Timeout(now);
                recorder.input(input);
                machine.handle_input(input);
                deadline = drain(&mut machine, &mut out, &mut inject, &mut recorder, |e| {
                    monitor.record(e, now)
                });
            }
            // published below
            Wake::Publish => {}
            Wake::Readable(i) => {
                first = (i + 1) % ready.len();
                let device = DeviceId(u8::try_from(i).expect("the core takes at most 255 devices"));
                for _ in 0..BATCH {
                    match captures[i].next_packet() {
                        Ok(p) => {
                            let now = Instant::now();
                            let input = Input::Frame {
                                now,
                                device,
                                data: p.data,
                            };
                            recorder.input(input);
                            machine.handle_input(input);
                            deadline =
                                drain(&mut machine, &mut out, &mut inject, &mut recorder, |e| {
                                    monitor.record(e, now)
                                });
                        }
                        Err(pcap::Error::TimeoutExpired) => break,
                        Err(e) => {
                            result = Err(format!("capture on {} failed: {e}", names[i]));
                            break;
                        }
                    }
                }
            }
        }
        // re-arming moves the timer in the reactor's table, so only for an earlier deadline or
        // after it fired; a later deadline lets the armed one fire early, which the machine
        // takes as a harmless early timeout
        if armed.is_none_or(|t| deadline < t) {
            timer.set_at(deadline);
            armed = Some(deadline);
        }
        // checked after every wake-up, so that a flood of frames, which the poll above serves
        // before the timers, does not hold snapshots back; the monitor's timer is re-armed after
        // a snapshot, or after it fired (a fired timer never fires again unless re-armed)
        if monitor.is_on() {
            let published = monitor.publish_due(&machine, Instant::now());
            if (published || fired)
                && let Some(at) = monitor.next_publish()
            {
                publish.set_at(at);
            }
        }
    }
    Outcome {
        stats: machine.stats(),
        result,
    }
}
