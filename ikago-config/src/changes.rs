//! What a config reload changes: the settings a running machine takes at once, and those that
//! only a restart applies
//!
//! A runner re-reads its sources on SIGHUP and compares the result with the settings in force.
//! The LAN sources (`sources`, IPv4 and IPv6), the proxy-ARP and proxy-NDP addresses (`publish`)
//! and the monitor (`monitor`, `monitor-address`) apply without dropping the tunnel; every other
//! key needs a restart, since devices, filters of the upstream side, firewall rules, keys and
//! the tunnel itself were set up with it.

use crate::settings::{ClientSettings, CommonSettings, ServerSettings};

/// How re-read settings differ from the ones in force, by config-file key
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Changed keys that a running machine takes: `sources`, `publish`, `monitor`,
    /// `monitor-address`
    pub live: Vec<&'static str>,
    /// Changed keys that apply only at a restart
    pub restart: Vec<&'static str>,
}

impl Changes {
    /// Whether nothing changed
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.restart.is_empty()
    }

    fn note(&mut self, live: bool, key: &'static str, changed: bool) {
        if changed {
            match live {
                true => self.live.push(key),
                false => self.restart.push(key),
            }
        }
    }
}

impl CommonSettings {
    /// Adds the keys of the shared settings that differ in `new` to `changes`
    fn changes(&self, new: &Self, changes: &mut Changes) {
        // destructured so that a new setting cannot be forgotten here
        let Self {
            listen_devices,
            upstream_device,
            gateway,
            gateway6,
            mode,
            method,
            password,
            rule,
            monitor,
            monitor_address,
            verbose,
            log,
            log_format,
            mtu,
            fragment,
            kcp,
            kcp_tuning,
            port,
            capture_buffer_mb,
            qdisc_bypass,
            busy_poll,
            protocol,
            padding,
        } = self;
        let restart = [
            ("listen-devices", *listen_devices != new.listen_devices),
            ("upstream-device", *upstream_device != new.upstream_device),
            (
                "gateway",
                *gateway != new.gateway || *gateway6 != new.gateway6,
            ),
            ("mode", *mode != new.mode),
            ("method", *method != new.method),
            ("password", *password != new.password),
            ("rule", *rule != new.rule),
            ("verbose", *verbose != new.verbose),
            ("log", *log != new.log),
            ("log-format", *log_format != new.log_format),
            ("mtu", *mtu != new.mtu),
            ("fragment", *fragment != new.fragment),
            ("kcp", *kcp != new.kcp),
            ("kcp-tuning", *kcp_tuning != new.kcp_tuning),
            ("port", *port != new.port),
            (
                "capture-buffer-mb",
                *capture_buffer_mb != new.capture_buffer_mb,
            ),
            ("qdisc-bypass", *qdisc_bypass != new.qdisc_bypass),
            ("busy-poll", *busy_poll != new.busy_poll),
            ("protocol", *protocol != new.protocol),
            ("padding", *padding != new.padding),
        ];
        for (key, changed) in restart {
            changes.note(false, key, changed);
        }
        changes.note(true, "monitor", *monitor != new.monitor);
        changes.note(
            true,
            "monitor-address",
            *monitor_address != new.monitor_address,
        );
    }

    /// Takes the live settings of `new` (the monitor's)
    fn adopt_live(&mut self, new: &Self) {
        self.monitor = new.monitor;
        self.monitor_address = new.monitor_address;
    }
}

impl ClientSettings {
    /// How `new` differs from these settings
    pub fn changes(&self, new: &Self) -> Changes {
        let Self {
            common,
            sources,
            sources6,
            server,
            fallback,
            failback,
            publish,
            publish6,
            protocol,
        } = self;
        let mut changes = Changes::default();
        common.changes(&new.common, &mut changes);
        // the default protocol follows the password: a change not already noted above
        let default_changed = common.protocol == new.common.protocol;
        changes.note(
            false,
            "protocol",
            *protocol != new.protocol && default_changed,
        );
        changes.note(
            true,
            "sources",
            *sources != new.sources || *sources6 != new.sources6,
        );
        changes.note(
            false,
            "server",
            *server != new.server || *fallback != new.fallback,
        );
        changes.note(false, "failback", *failback != new.failback);
        changes.note(
            true,
            "publish",
            *publish != new.publish || *publish6 != new.publish6,
        );
        changes
    }

    /// Takes the settings of `new` that a running client applies (see [`Changes::live`]),
    /// keeping the others as they are
    pub fn adopt_live(&mut self, new: &Self) {
        self.common.adopt_live(&new.common);
        self.sources.clone_from(&new.sources);
        self.sources6.clone_from(&new.sources6);
        self.publish.clone_from(&new.publish);
        self.publish6.clone_from(&new.publish6);
    }
}

impl ServerSettings {
    /// How `new` differs from these settings
    pub fn changes(&self, new: &Self) -> Changes {
        let Self { common, threads } = self;
        let mut changes = Changes::default();
        common.changes(&new.common, &mut changes);
        changes.note(false, "threads", *threads != new.threads);
        changes
    }

    /// Takes the settings of `new` that a running server applies (the monitor's), keeping the
    /// others as they are
    pub fn adopt_live(&mut self, new: &Self) {
        self.common.adopt_live(&new.common);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientArgs, ServerArgs, parse_str};

    use serde_json::{Value, json};

    /// A client's settings: a base config with `over`'s keys replaced or added
    fn with(over: Value) -> ClientSettings {
        let mut config = json!({
            "sources": ["198.18.21.2"],
            "server": "198.18.23.2:18081",
            "method": "aes-256-gcm",
            "password": "one",
            "monitor": 18080
        });
        for (k, v) in over.as_object().unwrap() {
            config[k] = v.clone();
        }
        let args: ClientArgs = parse_str(&config.to_string(), |_| None).unwrap();
        ClientSettings::resolve(&args).unwrap()
    }

    #[test]
    fn same_settings_change_nothing() {
        assert!(with(json!({})).changes(&with(json!({}))).is_empty());
    }

    #[test]
    fn sources_publish_and_monitor_are_live() {
        let old = with(json!({}));
        let new = with(json!({
            "sources": ["198.18.21.3/32"],
            "publish": "198.18.21.254",
            "monitor-address": "0.0.0.0"
        }));
        let c = old.changes(&new);
        assert_eq!(c.live, ["monitor-address", "sources", "publish"]);
        assert!(c.restart.is_empty(), "{c:?}");
        let mut adopted = old.clone();
        adopted.adopt_live(&new);
        assert_eq!(adopted, new);
    }

    #[test]
    fn the_rest_needs_a_restart_and_is_not_adopted() {
        let old = with(json!({}));
        let new = with(json!({
            "password": "two",
            "server": ["198.18.23.2:18081", "198.18.26.2:18081"],
            "mtu": 1400,
            "listen-devices": "lan0",
            "port": 5000,
            "sources": ["198.18.21.0/24"]
        }));
        let c = old.changes(&new);
        assert_eq!(
            c.restart,
            ["listen-devices", "password", "mtu", "port", "server"]
        );
        assert_eq!(c.live, ["sources"]);
        let mut adopted = old.clone();
        adopted.adopt_live(&new);
        assert_eq!(adopted.sources, new.sources);
        assert_eq!(adopted.common.password, "one");
        assert_eq!(adopted.common.mtu, old.common.mtu);
        assert!(adopted.fallback.is_empty());
    }

    #[test]
    fn an_ipv6_gateway_needs_a_restart() {
        let old = with(json!({"gateway": "198.18.21.1"}));
        let new = with(json!({"gateway": ["198.18.21.1", "2001:db8:21::1"]}));
        let c = old.changes(&new);
        assert_eq!((c.restart, c.live), (vec!["gateway"], vec![]));
    }

    #[test]
    fn a_server_takes_the_monitor_only() {
        let server = |json: &str| {
            let args: ServerArgs = parse_str(json, |_| None).unwrap();
            ServerSettings::resolve(&args).unwrap()
        };
        let old = server(r#"{"port": 18081}"#);
        let new = server(r#"{"port": 18081, "monitor": 18080, "kcp": true, "threads": 2}"#);
        let c = old.changes(&new);
        assert_eq!(
            (c.live, c.restart),
            (vec!["monitor"], vec!["kcp", "threads"])
        );
        let mut adopted = old.clone();
        adopted.adopt_live(&new);
        assert_eq!(adopted.common.monitor, Some(18080));
        assert!(!adopted.common.kcp);
        assert_eq!(adopted.threads, None);
    }
}
