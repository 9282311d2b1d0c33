//! The engine thread: one `poll(2)` over every device's capture fd, the signal forwarder's
//! socket and, in `--mode tcp`, the tunnel connections' socket, until the machine's deadline or the monitor's next snapshot; each wake-up one turn of
//! the shared [`Engine`]

use ikago_host::app::{Outcome, Session};
use ikago_host::engine::Engine;
use ikago_host::reload::Reread;
use ikago_host::shutdown::Signal;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, TryRecvError};
use std::time::Instant;

/// Runs until SIGINT/SIGTERM or a capture failure
pub(crate) fn run(session: Session) -> Outcome {
    let (mut engine, signals) = Engine::new(session);
    let (wake, messages) = match forward(signals) {
        Ok(forwarded) => forwarded,
        Err(e) => {
            engine.fail(format!("cannot start the signal forwarder: {e}"));
            return engine.finish();
        }
    };
    let devices = engine.devices();
    // duplicates of the capture fds (same sockets, same readiness), so that the poll set, built
    // once, does not borrow the engine
    let watched = match (0..devices)
        .map(|i| engine.capture_fd(i).try_clone_to_owned())
        .chain(engine.stream_fd().map(|fd| fd.try_clone_to_owned()))
        .collect::<std::io::Result<Vec<OwnedFd>>>()
    {
        Ok(fds) => fds,
        Err(e) => {
            engine.fail(format!("cannot watch the devices: {e}"));
            return engine.finish();
        }
    };
    let mut fds = watched
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .chain([PollFd::new(&wake, PollFlags::IN)])
        .collect::<Vec<_>>();
    let mut drained = [0u8; 64];
    'run: while engine.running() {
        if engine.spin() {
            engine.end_turn();
            continue;
        }
        let wait = engine.wake_at().saturating_duration_since(Instant::now());
        let timeout = Timespec::try_from(wait).unwrap_or(Timespec {
            tv_sec: i64::MAX,
            tv_nsec: 0,
        });
        if let Err(e) = poll(&mut fds, Some(&timeout))
            && e != rustix::io::Errno::INTR
        {
            engine.fail(format!("cannot wait on the devices: {e}"));
            break;
        }
        let tunnel = watched.len() > devices;
        if tunnel && !fds[devices].revents().is_empty() {
            engine.read_streams();
        }
        let signalled = fds.last().is_some_and(|fd| !fd.revents().is_empty());
        if signalled {
            // the bytes only wake the poll: the messages say what happened
            let _ = (&wake).read(&mut drained);
            loop {
                match messages.try_recv() {
                    Ok(Signal::Stop) | Err(TryRecvError::Disconnected) => break 'run,
                    Ok(Signal::Reload(reread)) => engine.reload(*reread),
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
        for (i, fd) in fds[..devices].iter().enumerate() {
            if !fd.revents().is_empty() {
                engine.read(i);
            }
        }
        engine.tick(Instant::now());
        engine.end_turn();
    }
    engine.finish()
}

/// Starts the thread that turns each signal into a message on the returned channel and a byte
/// on the returned socket, which the engine's poll watches; it ends after the first stop
fn forward(
    signals: ikago_host::shutdown::Signals<Reread>,
) -> std::io::Result<(UnixStream, Receiver<Signal<Reread>>)> {
    let (wake, mut ring) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("signal forwarder".into())
        .spawn(move || {
            use std::io::Write;
            while let Ok(signal) = signals.recv_blocking() {
                let last = matches!(signal, Signal::Stop);
                if tx.send(signal).is_err() || ring.write_all(&[1]).is_err() || last {
                    return;
                }
            }
            // the signals thread is gone: say so as a stop
            let _ = tx.send(Signal::Stop);
            let _ = ring.write_all(&[1]);
        })?;
    Ok((wake, rx))
}
