//! systemd's journal: whether stderr is its stream, and the syslog priority prefixes it reads
//!
//! systemd sets `JOURNAL_STREAM` to the device and inode numbers (`DEV:INODE`) of the stream it
//! connects a service's stdout and stderr to. The variable alone is not enough: a process started
//! from a service's shell inherits it with its output sent elsewhere. So stderr's own numbers
//! must match (systemd.exec(5)).

use log::Level;
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

/// Whether stderr is the journal stream named by `JOURNAL_STREAM`
pub fn stderr_is_journal() -> bool {
    let Some(named) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    stderr_ids().is_ok_and(|ids| named.to_str().and_then(parse) == Some(ids))
}

/// The device and inode numbers of what stderr is
fn stderr_ids() -> io::Result<(u64, u64)> {
    let fd = io::stderr().as_fd().try_clone_to_owned()?;
    let meta = File::from(fd).metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// Parses `JOURNAL_STREAM`'s `DEV:INODE`
fn parse(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// The priority prefix of a line at `level` (sd-daemon(3)): error 3, warning 4, info 6, debug 7
pub fn prefix(level: Level) -> &'static str {
    match level {
        Level::Error => "<3>",
        Level::Warn => "<4>",
        Level::Info => "<6>",
        Level::Debug | Level::Trace => "<7>",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids() {
        assert_eq!(parse("8:12345"), Some((8, 12345)));
        assert_eq!(parse("8:"), None);
        assert_eq!(parse("12345"), None);
        assert_eq!(parse("a:1"), None);
    }

    #[test]
    fn priorities() {
        assert_eq!(prefix(Level::Error), "<3>");
        assert_eq!(prefix(Level::Warn), "<4>");
        assert_eq!(prefix(Level::Info), "<6>");
        assert_eq!(prefix(Level::Debug), "<7>");
    }
}
