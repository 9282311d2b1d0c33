//! The log: info and verbose lines on stdout, warnings and errors on stderr, and with `--log FILE`
//! every line (verbose ones too, as the original did) appended to the file with a timestamp
//!
//! Everything goes through the `log` facade: `info!` for what users expect to see, `debug!` for
//! what `-v` adds, `warn!`/`error!` for trouble.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The process-wide logger
struct Logger {
    verbose: bool,
    file: Option<Mutex<File>>,
}

/// Installs the logger: verbose lines on the console only with `verbose`; every line also in
/// `file` when given (opened for append, created if missing)
pub fn init(verbose: bool, file: Option<&Path>) -> std::io::Result<()> {
    let file = match file {
        Some(p) => Some(Mutex::new(
            OpenOptions::new().create(true).append(true).open(p)?,
        )),
        None => None,
    };
    let level = if verbose || file.is_some() {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    // a second init (tests) keeps the first logger
    if log::set_boxed_logger(Box::new(Logger { verbose, file })).is_ok() {
        log::set_max_level(level);
    }
    Ok(())
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= Level::Debug && m.target().starts_with("ikago")
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        match r.level() {
            Level::Error | Level::Warn => eprintln!("{}", r.args()),
            Level::Info => println!("{}", r.args()),
            _ if self.verbose => println!("{}", r.args()),
            _ => {}
        }
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(f, "{} {}", timestamp(SystemTime::now()), r.args());
        }
    }

    fn flush(&self) {
        if let Some(f) = &self.file {
            let _ = f.lock().unwrap_or_else(|p| p.into_inner()).flush();
        }
    }
}

/// `YYYY/MM/DD HH:MM:SS` in UTC, the original's layout
fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm)
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_in_the_originals_layout() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970/01/01 00:00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_210_096); // leap day 2024
        assert_eq!(timestamp(t), "2024/02/29 12:34:56");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(timestamp(t), "2099/12/31 23:59:59");
    }
}
