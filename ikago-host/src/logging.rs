//! The log: info and verbose lines on stdout, warnings and errors on stderr, and with `--log FILE`
//! every line (verbose ones too, as the original did) appended to the file with a timestamp
//!
//! Everything goes through the `log` facade: `info!` for what users expect to see, `debug!` for
//! what `-v` adds, `warn!`/`error!` for trouble. Two more layouts:
//!
//! - under systemd, when stderr is the journal's stream ([`journal`]), every line goes to stderr
//!   with its syslog priority before it (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug),
//!   and no time of our own: the journal keeps the time, and the priority, of each line;
//! - `--log-format json` ([`format`]) writes one JSON object per line, on stdout and in the file:
//!   `time`, `level`, `message`, and the fields of the event the line is about ([`with_fields`]).

pub mod format;
pub mod journal;

use ikago_config::LogFormat;
use log::kv::Value;
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// Whether [`init`] installed the logger
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Where the console lines go
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Console {
    /// Info and verbose on stdout, warnings and errors on stderr (text, as the original)
    Split,
    /// Every line on stdout (JSON: one stream keeps the order)
    Stdout,
    /// Every line on stderr, which is the journal's stream, after its syslog priority
    Journal,
}

/// The process-wide logger
struct Logger {
    verbose: bool,
    format: LogFormat,
    console: Console,
    file: Option<Mutex<File>>,
}

/// Installs the logger: verbose lines on the console only with `verbose`; every line also in
/// `file` when given (opened for append, created if missing), laid out as `format` says
pub fn init(verbose: bool, file: Option<&Path>, format: LogFormat) -> std::io::Result<()> {
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
    let console = if journal::stderr_is_journal() {
        Console::Journal
    } else if format == LogFormat::Json {
        Console::Stdout
    } else {
        Console::Split
    };
    let logger = Logger {
        verbose,
        format,
        console,
        file,
    };
    // a second init (tests) keeps the first logger
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
        INSTALLED.store(true, Ordering::Release);
    }
    Ok(())
}

/// Logs `message` at `level` with `fields` (name and value), which the JSON layout writes as
/// members of the line's object and the text layouts leave out
pub fn with_fields(level: Level, message: &str, fields: &[(&str, Value<'_>)]) {
    if level > log::max_level() {
        return;
    }
    log::logger().log(
        &Record::builder()
            .level(level)
            .target(module_path!())
            .args(format_args!("{message}"))
            .key_values(&fields)
            .build(),
    );
}

/// Writes an error line: through the logger once [`init`] has installed it, else (a bad option,
/// say) on stderr, after the error priority when that is the journal
pub fn error(message: &str) {
    if INSTALLED.load(Ordering::Acquire) {
        log::error!("{message}");
        return;
    }
    let priority = if journal::stderr_is_journal() {
        journal::prefix(Level::Error)
    } else {
        ""
    };
    let _ = writeln!(std::io::stderr().lock(), "{priority}{message}");
}

impl Logger {
    /// Writes `line` to the console stream of `level`
    fn console(&self, level: Level, line: &dyn Display) {
        let _ = match self.console {
            Console::Journal => {
                writeln!(std::io::stderr().lock(), "{}{line}", journal::prefix(level))
            }
            Console::Split if level <= Level::Warn => writeln!(std::io::stderr().lock(), "{line}"),
            Console::Split | Console::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
        };
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= Level::Debug && m.target().starts_with("ikago")
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let now = SystemTime::now();
        let json = match self.format {
            LogFormat::Json => Some(format::json(now, r.level(), r.args(), r.key_values())),
            LogFormat::Text => None,
        };
        if self.verbose || r.level() <= Level::Info {
            match &json {
                Some(j) => self.console(r.level(), j),
                None => self.console(r.level(), r.args()),
            }
        }
        if let Some(f) = &self.file {
            let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
            let _ = match &json {
                Some(j) => writeln!(f, "{j}"),
                None => writeln!(f, "{} {}", format::timestamp(now), r.args()),
            };
        }
    }

    fn flush(&self) {
        if let Some(f) = &self.file {
            let _ = f.lock().unwrap_or_else(|p| p.into_inner()).flush();
        }
    }
}
