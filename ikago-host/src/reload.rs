//! SIGHUP: the config re-read and applied while the tunnel runs
//!
//! [`Reader`] keeps what the run was started from, the command line: on each SIGHUP it reads the
//! `-c` file again and merges it under the command line as at start, on the signals thread
//! ([`crate::shutdown::catch`]), into a [`Reread`]. [`Reload`] keeps the settings in force; the
//! runner's loop hands it each [`Reread`] ([`crate::shutdown::Signal::Reload`]) with
//! [`Reload::apply`]:
//!
//! - a config that no longer reads or validates is one error line, and nothing changes;
//! - keys that only a restart applies (devices, port, method, password, servers, MTU, KCP,
//!   `--rule`, the log, the recording...) are named in one warning line, `password changed:
//!   restart to apply`, and left as they are, so the next reload names them again;
//! - the live keys apply at once, without a new handshake: `sources` and `publish` go to the
//!   client machine ([`Client::set_sources`], [`Client::set_sources6`], [`Client::set_publish`],
//!   [`Client::set_publish6`]) and the listen devices'
//!   capture filters follow the sources (the loop sets them on its live pcap handles, see
//!   [`crate::capture::refilter`]); `monitor` and `monitor-address` move, start or stop the
//!   monitor ([`Feed::rebind`]), and the client's DNS records follow it.
//!
//! A flight recording ([`crate::record`]) stops at the first reload that changes the machine: a
//! replay starts from the scenario written at the start, and could not follow.
//!
//! Each engine of a server (`--threads`) applies the same [`Reread`] with a [`Reload`] of its
//! own; only the first says what it did ([`Reload::quiet`] for the others), so that the log
//! reads as one server's.

use crate::app::{self, Settings};
use crate::monitor::Feed;
use crate::{filter, record};
use ikago_config::{Changes, RecordArgs, RecordSettings, RoleCommand};
use ikago_proto::{Client, DeviceConfig, Machine};
use std::net::SocketAddr;
use std::time::Instant;

/// The settings and the recorder's settings read again, or why they could not be
pub type Reread = Result<(Settings, Option<RecordSettings>), String>;

/// Reads the config again from the sources a run was started from
#[derive(Clone)]
pub(crate) struct Reader {
    /// The command line as given
    role: RoleCommand,
    record_args: RecordArgs,
}

impl Reader {
    /// Reads from `role` and `record_args`, the command line, and the file it names
    pub(crate) fn new(role: RoleCommand, record_args: RecordArgs) -> Self {
        Self { role, record_args }
    }

    /// The settings and the recorder's settings from the command line and the file, as at start
    pub(crate) fn read(&self) -> Reread {
        let record = app::record_settings(&self.role, self.record_args.clone()).map_err(|e| e.0)?;
        let settings = Settings::load(self.role.clone()).map_err(|e| e.0)?;
        Ok((settings, record))
    }
}

/// The settings in force, and what they were applied to
pub struct Reload {
    /// The recorder's settings in force
    record: Option<RecordSettings>,
    settings: Settings,
    /// The devices in use, in device order
    devices: Vec<DeviceConfig>,
    /// The client's FakeTCP address, which its filters name
    local: Option<SocketAddr>,
    /// The capture filters in force, in device order
    filters: Vec<String>,
    /// Whether to log what a reload does (off for the engines after the first)
    announce: bool,
}

impl std::fmt::Debug for Reload {
    // the settings hold the password
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reload").finish_non_exhaustive()
    }
}

impl Reload {
    /// A run with `settings` and the recorder's `record`, on `devices` with `filters` (and, for
    /// a client, the FakeTCP address `local`)
    pub(crate) fn new(
        settings: Settings,
        record: Option<RecordSettings>,
        (devices, filters): (Vec<DeviceConfig>, Vec<String>),
        local: Option<SocketAddr>,
    ) -> Self {
        Self {
            record,
            settings,
            devices,
            local,
            filters,
            announce: true,
        }
    }

    /// The same, applying reloads without logging (another engine of the server logs them)
    pub(crate) fn quiet(self) -> Self {
        Self {
            announce: false,
            ..self
        }
    }

    /// Applies what the running machine can take of the config read again (see the module's
    /// documentation); returns the capture filters that changed, by device index, for the caller
    /// to set on its live capture handles
    pub fn apply(
        &mut self,
        reread: Reread,
        machine: &mut Machine,
        monitor: &mut Feed,
        recorder: &mut record::Recorder,
        now: Instant,
    ) -> Vec<(usize, String)> {
        let (new, record) = match reread {
            Ok(read) => read,
            Err(e) => {
                if self.announce {
                    log::error!("Cannot reload the config, the running one is kept: {e}");
                }
                return Vec::new();
            }
        };
        let mut changes = self.settings.changes(&new);
        if record != self.record {
            changes.restart.push("record");
        }
        if changes.is_empty() {
            if self.announce {
                log::info!("The config is unchanged");
            }
            return Vec::new();
        }
        if !changes.restart.is_empty() && self.announce {
            log::warn!("{} changed: restart to apply", names(&changes.restart));
        }
        self.settings.adopt_live(&new);
        let was_on = monitor.is_on();
        self.move_monitor(&changes, monitor, now);
        let mut reconfigured = false;
        if let (Settings::Client(c), Machine::Client(m)) = (&self.settings, machine) {
            reconfigured = self.apply_client(m, monitor.is_on() != was_on, monitor.is_on());
            if reconfigured {
                app::describe_proxy(&c.sources, &c.sources6, m.local_addr(), m.server_addr());
            }
        }
        if reconfigured {
            recorder.stop_reconfigured();
        }
        let filters = self.settings_filters();
        let changed = filters
            .iter()
            .zip(&self.filters)
            .enumerate()
            .filter(|(_, (new, old))| new != old)
            .map(|(i, (new, _))| (i, new.clone()))
            .collect();
        self.filters = filters;
        changed
    }

    /// Moves, starts or stops the monitor as the settings in force say, if they changed
    fn move_monitor(&self, changes: &Changes, monitor: &mut Feed, now: Instant) {
        if !changes.live.iter().any(|k| k.starts_with("monitor")) {
            return;
        }
        let moved = (
            monitor.rebind(self.settings.common().monitor_addr(), now),
            monitor.local_addr(),
        );
        if !self.announce {
            return;
        }
        match moved {
            (Err(e), _) => log::error!("Cannot move the monitor: {e}"),
            (Ok(()), Some(addr)) => app::describe_monitor(addr),
            (Ok(()), None) => log::info!("Monitor off"),
        }
    }

    /// Gives the client machine the sources and published addresses in force, and DNS records
    /// when the monitor was turned on or off; returns whether anything changed
    fn apply_client(&self, m: &mut Client, monitor_toggled: bool, monitor_on: bool) -> bool {
        let Settings::Client(c) = &self.settings else {
            return false;
        };
        let mut changed = false;
        // resolved settings always hold a source: the family that keeps some goes first, so
        // that the machine never holds none
        let v4_first = !c.sources.is_empty();
        for v4 in [v4_first, !v4_first] {
            let set = match v4 {
                true if m.sources() != c.sources.as_slice() => m.set_sources(c.sources.clone()),
                false if m.sources6() != c.sources6.as_slice() => {
                    m.set_sources6(c.sources6.clone())
                }
                _ => continue,
            };
            match set {
                Ok(()) => changed = true,
                Err(e) => log::error!("Cannot change the sources: {e}"),
            }
        }
        if m.publish() != c.publish.as_slice() || m.publish6() != c.publish6.as_slice() {
            m.set_publish(c.publish.clone());
            m.set_publish6(c.publish6.clone());
            let list = (c.publish.iter().map(ToString::to_string))
                .chain(c.publish6.iter().map(ToString::to_string))
                .collect::<Vec<_>>();
            match list.is_empty() {
                true => log::info!("Publish no address"),
                false => log::info!("Publish {}", list.join(", ")),
            }
            changed = true;
        }
        if monitor_toggled {
            m.set_dns_records(monitor_on);
            changed = true;
        }
        changed
    }

    /// The capture filters of the settings in force
    fn settings_filters(&self) -> Vec<String> {
        match (&self.settings, self.local) {
            (Settings::Client(c), Some(local)) => {
                filter::client(&c.client_config(self.devices.clone(), [0; 32]), local)
            }
            _ => self.filters.clone(),
        }
    }
}

/// `a`, `a and b`, `a, b and c`
fn names(keys: &[&str]) -> String {
    match keys {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_as_a_list() {
        assert_eq!(names(&["password"]), "password");
        assert_eq!(names(&["method", "password"]), "method and password");
        assert_eq!(names(&["port", "method", "mtu"]), "port, method and mtu");
    }
}
