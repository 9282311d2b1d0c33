//! The engine task: readiness of every capture fd (and in `--mode tcp` of the tunnel
//! connections' socket), the machine's deadline, the monitor's next
//! snapshot and signals (shutdown, config reload), in one future, each wake-up one turn of the
//! shared [`Engine`]

use async_io::{Async, Timer};
use futures_lite::future;
use ikago_host::app::{Outcome, Session};
use ikago_host::engine::Engine;
use ikago_host::reload::Reread;
use ikago_host::shutdown::Signal;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::pin;
use std::task::Poll;
use std::time::Instant;

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
    /// The tunnel's connections have news (`--mode tcp`)
    Streams,
    /// Waiting on the tunnel's connections failed
    StreamsFailed(std::io::Error),
    /// Waiting on device `i` failed
    Failed(usize, std::io::Error),
}

/// Runs until SIGINT/SIGTERM or a capture failure
pub(crate) async fn run(session: Session) -> Outcome {
    let (mut engine, signals) = Engine::new(session);
    let mut ready: Vec<Async<OwnedFd>> = Vec::with_capacity(engine.devices());
    for i in 0..engine.devices() {
        // a duplicate of the capture's fd: same socket, same readiness, and owned, so that the
        // reactor can watch it without unsafe code while libpcap keeps reading its own fd
        match engine
            .capture_fd(i)
            .try_clone_to_owned()
            .and_then(Async::new_nonblocking)
        {
            Ok(fd) => ready.push(fd),
            Err(e) => {
                let reason = format!("cannot watch {}: {e}", engine.name(i));
                engine.fail(reason);
            }
        }
    }
    let tunnel = match engine
        .stream_fd()
        .map(|fd| fd.try_clone_to_owned().and_then(Async::new_nonblocking))
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            engine.fail(format!("cannot watch the tunnel connections: {e}"));
            None
        }
    };
    let mut timer = Timer::at(engine.deadline());
    let mut armed = Some(engine.deadline());
    // the monitor's own timer, re-armed after each snapshot; never fires with the monitor off
    let mut publish = engine.next_publish().map_or_else(Timer::never, Timer::at);
    // one receive at a time, replaced once it completed (a reload)
    let mut signal = pin!(signals.recv());
    let mut first = 0;
    while engine.running() {
        if engine.spin() {
            engine.end_turn();
            continue;
        }
        let wake = future::poll_fn(|cx| {
            match signal.as_mut().poll(cx) {
                Poll::Ready(Ok(Signal::Reload(reread))) => {
                    return Poll::Ready(Wake::Reload(reread));
                }
                // a stop, or the signals thread is gone
                Poll::Ready(_) => return Poll::Ready(Wake::Shutdown),
                Poll::Pending => {}
            }
            if let Some(t) = &tunnel {
                match t.poll_readable(cx) {
                    Poll::Ready(Ok(())) => return Poll::Ready(Wake::Streams),
                    Poll::Ready(Err(e)) => return Poll::Ready(Wake::StreamsFailed(e)),
                    Poll::Pending => {}
                }
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
                engine.reload(*reread);
                // the monitor may have started, moved or stopped
                publish = engine.next_publish().map_or_else(Timer::never, Timer::at);
            }
            Wake::StreamsFailed(e) => {
                engine.fail(format!("waiting on the tunnel connections failed: {e}"));
            }
            Wake::Failed(i, e) => {
                let reason = format!("waiting on {} failed: {e}", engine.name(i));
                engine.fail(reason);
            }
            Wake::Streams => {
                engine.read_streams();
            }
            Wake::Deadline => {
                armed = None;
                engine.tick(Instant::now());
            }
            // published at the end of the turn
            Wake::Publish => {}
            Wake::Readable(i) => {
                first = (i + 1) % ready.len();
                engine.read(i);
            }
        }
        // sends what the turn produced; the monitor's timer is re-armed after a snapshot, or
        // after it fired (a fired timer never fires again unless re-armed). Checked after every
        // wake-up, so that a flood of frames, which the poll above serves before the timers,
        // does not hold snapshots back
        let published = engine.end_turn();
        if (published || fired)
            && let Some(at) = engine.next_publish()
        {
            publish.set_at(at);
        }
        // re-arming moves the timer in the reactor's table, so only for an earlier deadline or
        // after it fired; a later deadline lets the armed one fire early, which the machine
        // takes as a harmless early timeout
        let deadline = engine.deadline();
        if armed.is_none_or(|t| deadline < t) {
            timer.set_at(deadline);
            armed = Some(deadline);
        }
    }
    engine.finish()
}
