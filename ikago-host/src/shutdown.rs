//! SIGINT, SIGTERM and SIGHUP as channel messages: runners shut down gracefully on the first two
//! and re-read their config on the third ([`crate::reload`])

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals as Caught;

/// What a signal asks of the runner
#[derive(Debug)]
pub enum Signal<R> {
    /// SIGINT or SIGTERM: stop
    Stop,
    /// SIGHUP: apply the config, read again into `R`
    Reload(Box<R>),
}

/// Receives one message per signal caught (from a background thread)
pub type Signals<R> = async_channel::Receiver<Signal<R>>;

/// Messages that can wait for the runner: a stop behind a few reloads
const PENDING: usize = 4;

/// Catches SIGINT, SIGTERM and SIGHUP from now on; each one becomes a message on the returned
/// channel, a SIGHUP with what `reread` returns
///
/// `reread` runs on the signals thread, so that reading files and resolving names never holds
/// up the runner's loop. A reload that finds the channel full is dropped (the ones waiting read
/// the same files); a stop waits for room, so that it is never lost.
pub fn catch<R: Send + 'static>(
    mut reread: impl FnMut() -> R + Send + 'static,
) -> std::io::Result<Signals<R>> {
    let (tx, rx) = async_channel::bounded(PENDING);
    let mut caught = Caught::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in caught.forever() {
                if sig == SIGHUP {
                    log::info!("Receive SIGHUP, reloading the config");
                    let _ = tx.try_send(Signal::Reload(Box::new(reread())));
                    continue;
                }
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                log::info!("Receive {name}, shutting down");
                // fails once the runner stopped listening: it is shutting down already
                let _ = tx.send_blocking(Signal::Stop);
            }
        })?;
    Ok(rx)
}
