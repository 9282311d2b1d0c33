//! SIGINT, SIGTERM and SIGHUP as channel messages: runners shut down gracefully on the first two
//! and re-read their config on the third ([`crate::reload`])
//!
//! A server of several engines (`--threads`) gets one channel per engine: each signal goes to
//! every engine, a SIGHUP's config read once and handed to each; [`StopAll`] ends them all.

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

/// Ends every engine's channel: each engine, once it has taken the messages waiting, stops as
/// on SIGTERM (a closed channel reads as a stop)
#[derive(Debug, Clone)]
pub struct StopAll<R>(Vec<async_channel::Sender<Signal<R>>>);

impl<R> StopAll<R> {
    /// Stops every engine; when one engine ends for a failure the others end with it
    pub fn stop(&self) {
        for tx in &self.0 {
            tx.close();
        }
    }
}

/// Catches SIGINT, SIGTERM and SIGHUP from now on for `engines` engines (at least one); each
/// signal becomes a message on every engine's channel, a SIGHUP with what `reread` returns
///
/// `reread` runs once per SIGHUP on the signals thread, so that reading files and resolving
/// names never holds up the runners' loops. A reload that finds an engine's channel full is
/// dropped for it (the ones waiting read the same files); a stop waits for room, so that it is
/// never lost.
pub fn catch<R: Clone + Send + 'static>(
    engines: usize,
    mut reread: impl FnMut() -> R + Send + 'static,
) -> std::io::Result<(Vec<Signals<R>>, StopAll<R>)> {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..engines.max(1))
        .map(|_| async_channel::bounded(PENDING))
        .unzip();
    let stop_all = StopAll(txs.clone());
    let mut caught = Caught::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in caught.forever() {
                if sig == SIGHUP {
                    log::info!("Receive SIGHUP, reloading the config");
                    let reread = reread();
                    for tx in &txs {
                        let _ = tx.try_send(Signal::Reload(Box::new(reread.clone())));
                    }
                    continue;
                }
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                log::info!("Receive {name}, shutting down");
                for tx in &txs {
                    // fails once the engine stopped listening: it is shutting down already
                    let _ = tx.send_blocking(Signal::Stop);
                }
            }
        })?;
    Ok((rxs, stop_all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_all_ends_every_engines_channel_after_its_messages() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| async_channel::bounded(PENDING)).unzip();
        txs[1].try_send(Signal::Reload(Box::new(7u8))).unwrap();
        StopAll(txs).stop();
        assert!(matches!(rxs[1].try_recv(), Ok(Signal::Reload(r)) if *r == 7));
        for rx in &rxs {
            assert!(rx.try_recv().is_err() && rx.is_closed());
        }
    }
}
