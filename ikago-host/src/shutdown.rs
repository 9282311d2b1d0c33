//! SIGINT and SIGTERM as a channel message, so that runners shut down gracefully

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Receives one message per SIGINT or SIGTERM (from a background thread)
pub type Shutdown = async_channel::Receiver<()>;

/// Catches SIGINT and SIGTERM from now on; each one becomes a message on the returned channel
pub fn catch() -> std::io::Result<Shutdown> {
    let (tx, rx) = async_channel::bounded(1);
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                log::info!("Receive {name}, shutting down");
                // full means a shutdown is already pending
                let _ = tx.try_send(());
            }
        })?;
    Ok(rx)
}
