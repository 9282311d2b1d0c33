//! Scenario files: the device facts a capture lacks, and optionally the machine's options
//!
//! Two formats are read (see the crate documentation for the first):
//! - ours: `interfaces` by name (role, mac, address/prefix, gateway, gateway-mac), an optional
//!   `start` and `seed`, and any config-file key (`method`, `sources`, ...) at the top level;
//! - the `scenario.json` of `shared/captures/` (recognised by its `hosts` key): the machine's host
//!   gives the interfaces, its `default_gateway` the gateway (and the host holding that address its
//!   MAC), and `tunnel.command_lines` the options, read by the same parser as the command line.

use crate::Role;
use clap::Parser;
use ikago_config::{ClientArgs, FileLayer, ServerArgs, preprocess};
use ikago_proto::{DeviceConfig, DeviceRole, Ipv4Net, Ipv6Link, Ipv6Net, LinkType, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The machine's options from a scenario, in the config file's keys
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Options {
    /// Client options
    Client(ClientArgs),
    /// Server options
    Server(ServerArgs),
}

/// What a scenario file says about the replayed machine
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Its devices, sorted by interface name (a capture's interface maps to the device of its name)
    pub devices: Vec<DeviceConfig>,
    /// Its options, under the command line's and the `-c` file's
    pub options: Options,
    /// When the machine starts (time since the Unix epoch); by default at the first frame
    pub start: Option<Duration>,
    /// The seed of the machine's random generator, unless `--seed` gives one
    pub seed: Option<[u8; 32]>,
}

/// A scenario file that cannot be used
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not JSON, or a value of the wrong type (serde's message has the line and column)
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A value that parses but makes no sense
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid(msg.into())
}

/// One interface in our format
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct InterfaceSpec {
    role: String,
    mac: String,
    /// `IPV4/PREFIX`, absent on a device with IPv6 only
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    gateway_mac: Option<String>,
    /// `IPV6/PREFIX`, the device's global IPv6 address (a server's NAT66 address)
    #[serde(default)]
    ipv6: Option<String>,
    #[serde(default)]
    ipv6_gateway: Option<String>,
    #[serde(default)]
    ipv6_gateway_mac: Option<String>,
}

/// The scenario-only keys of our format (the options are read apart, as a config file)
#[derive(Debug, Deserialize)]
struct OwnKeys {
    interfaces: BTreeMap<String, InterfaceSpec>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    start: Option<Value>,
    #[serde(default)]
    seed: Option<Value>,
}

/// The `role` key of our format
fn parse_role(s: &str) -> Result<Role, ScenarioError> {
    match s {
        "client" => Ok(Role::Client),
        "server" => Ok(Role::Server),
        _ => Err(invalid(format!(
            "role: unknown role {s:?} (expected client or server)"
        ))),
    }
}

/// The role a scenario describes, for captures whose interfaces are `interfaces`; `None` when
/// it cannot tell
///
/// In our format: the `role` key, else the options (`sources` or `server` are a client's, a
/// `port` without them is a server's tunnel port). In a capture folder's format (`hosts`): the
/// one of `hosts.client` and `hosts.server` that has every capture interface, when only one has.
pub fn infer_role(
    text: &str,
    interfaces: &[&str],
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Role>, ScenarioError> {
    let value: Value = serde_json::from_str(&preprocess(text, env))?;
    if let Some(hosts) = value.get("hosts") {
        let has_all = |key: &str| {
            hosts
                .get(key)
                .and_then(|h| h.get("interfaces"))
                .and_then(Value::as_object)
                .is_some_and(|i| interfaces.iter().all(|n| i.contains_key(*n)))
        };
        return Ok(match (has_all("client"), has_all("server")) {
            (true, false) => Some(Role::Client),
            (false, true) => Some(Role::Server),
            _ => None,
        });
    }
    if let Some(role) = value.get("role") {
        let role = role
            .as_str()
            .ok_or_else(|| invalid("role: expected \"client\" or \"server\""))?;
        return parse_role(role).map(Some);
    }
    let has = |k: &str| value.get(k).is_some_and(|v| !v.is_null());
    Ok(if has("sources") || has("server") {
        Some(Role::Client)
    } else if has("port") {
        Some(Role::Server)
    } else {
        None
    })
}

/// Parses a scenario for `role`, expanding variables with `env` as config files do
pub fn parse(
    text: &str,
    role: Role,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Scenario, ScenarioError> {
    parse_json(&preprocess(text, env), role)
}

/// The role a recording's scenario names (recordings always name it)
pub fn recorded_role(json: &str) -> Result<Role, ScenarioError> {
    let value: Value = serde_json::from_str(json)?;
    let role = value
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("role: missing (a recording's scenario names its role)"))?;
    parse_role(role)
}

/// Parses a recording's scenario for `role`: JSON as the recorder wrote it, no comments or
/// variables
pub fn parse_recorded(json: &str, role: Role) -> Result<Scenario, ScenarioError> {
    parse_json(json, role)
}

/// Parses scenario JSON (comments blanked and variables expanded already) for `role`
fn parse_json(text: &str, role: Role) -> Result<Scenario, ScenarioError> {
    let value: Value = serde_json::from_str(text)?;
    if value.get("hosts").is_some() {
        return from_capture_scenario(&value, role);
    }
    let keys: OwnKeys = serde_json::from_str(text)?;
    if let Some(own) = keys.role.as_deref().map(parse_role).transpose()?
        && own != role
    {
        return Err(invalid(format!(
            "role: the scenario is a {}'s, not a {}'s",
            own.name(),
            role.name()
        )));
    }
    let devices = keys
        .interfaces
        .iter()
        .map(|(name, spec)| device(name, spec))
        .collect::<Result<Vec<_>, _>>()?;
    if devices.is_empty() {
        return Err(invalid("no interfaces"));
    }
    let mut options = match role {
        Role::Client => Options::Client(ClientArgs::from_json(text)?),
        Role::Server => Options::Server(ServerArgs::from_json(text)?),
    };
    // a scenario without `protocol` was recorded before ikago2 existed: it spoke the Go
    // original's wire (a client had no other, a server accepted only it)
    let common = match &mut options {
        Options::Client(a) => &mut a.common,
        Options::Server(a) => &mut a.common,
    };
    common.protocol.get_or_insert_with(|| "ikago".to_owned());
    let start = keys.start.as_ref().map(start_time).transpose()?;
    Ok(Scenario {
        devices,
        options,
        start,
        seed: keys.seed.as_ref().map(seed_of).transpose()?,
    })
}

fn mac(what: &str, s: &str) -> Result<Mac, ScenarioError> {
    s.parse()
        .map_err(|_| invalid(format!("{what}: invalid MAC address {s:?}")))
}

fn ipv4(what: &str, s: &str) -> Result<Ipv4Addr, ScenarioError> {
    s.trim()
        .parse()
        .map_err(|_| invalid(format!("{what}: invalid IPv4 address {s:?}")))
}

/// `a.b.c.d/n`, the prefix required
fn address(what: &str, s: &str) -> Result<Ipv4Net, ScenarioError> {
    match s.parse::<Ipv4Net>() {
        Ok(n) if s.contains('/') => Ok(n),
        _ => Err(invalid(format!(
            "{what}: invalid address {s:?} (expected IP/PREFIX like 198.18.11.1/24)"
        ))),
    }
}

/// `listen`, `upstream` or `both`, as scenarios name a device's role
pub fn device_role_name(role: DeviceRole) -> &'static str {
    match role {
        DeviceRole::Listen => "listen",
        DeviceRole::Upstream => "upstream",
        DeviceRole::Both => "both",
    }
}

fn role_of(what: &str, s: &str) -> Result<DeviceRole, ScenarioError> {
    [DeviceRole::Listen, DeviceRole::Upstream, DeviceRole::Both]
        .into_iter()
        .find(|r| device_role_name(*r) == s)
        .ok_or_else(|| {
            invalid(format!(
                "{what}: unknown role {s:?} (expected listen, upstream or both)"
            ))
        })
}

/// A seed: a number N (the seed of `--seed N`) or 64 hex digits (the 32 bytes themselves, as
/// recordings hold the seed a live machine drew)
fn seed_of(v: &Value) -> Result<[u8; 32], ScenarioError> {
    let bad = || invalid("seed: expected a number or 64 hex digits");
    match v {
        Value::Number(n) => n.as_u64().map(crate::seed_bytes).ok_or_else(bad),
        Value::String(s) if s.len() == 64 && s.is_ascii() => {
            let mut seed = [0; 32];
            for (i, b) in seed.iter_mut().enumerate() {
                *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
            }
            Ok(seed)
        }
        _ => Err(bad()),
    }
}

/// The `interfaces` object of our format for `devices`
pub fn interfaces_json(devices: &[DeviceConfig]) -> Value {
    let mut m = Map::new();
    for d in devices {
        let mut i = Map::new();
        i.insert("role".into(), device_role_name(d.role).into());
        i.insert("mac".into(), d.mac.to_string().into());
        if let Some(a) = d.addr {
            i.insert("address".into(), format!("{a}/{}", d.prefix_len).into());
        }
        if let Some(g) = d.gateway {
            i.insert("gateway".into(), g.to_string().into());
        }
        if let Some(m) = d.gateway_mac {
            i.insert("gateway-mac".into(), m.to_string().into());
        }
        if let Some(link) = d.ipv6 {
            i.insert(
                "ipv6".into(),
                format!("{}/{}", link.addr, link.prefix_len).into(),
            );
            if let Some(g) = link.gateway {
                i.insert("ipv6-gateway".into(), g.to_string().into());
            }
            if let Some(m) = link.gateway_mac {
                i.insert("ipv6-gateway-mac".into(), m.to_string().into());
            }
        }
        m.insert(d.name.clone(), Value::Object(i));
    }
    Value::Object(m)
}

/// A time since the Unix epoch as our format's `start`: decimal seconds, exact to the nanosecond
pub fn start_text(t: Duration) -> String {
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// A machine's scenario in our format, as a recording embeds it: `role`, `interfaces`, `start`,
/// `seed` (64 hex digits) and `options`, config-file keys that must not hold the password
pub fn to_json(
    role: Role,
    devices: &[DeviceConfig],
    start: Duration,
    seed: &[u8; 32],
    mut options: Map<String, Value>,
) -> String {
    options.insert("role".into(), role.name().into());
    options.insert("interfaces".into(), interfaces_json(devices));
    options.insert("start".into(), start_text(start).into());
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    options.insert("seed".into(), hex.into());
    Value::Object(options).to_string()
}

fn device(name: &str, spec: &InterfaceSpec) -> Result<DeviceConfig, ScenarioError> {
    let what = format!("interface {name}");
    let net = spec
        .address
        .as_deref()
        .map(|a| address(&what, a))
        .transpose()?;
    Ok(DeviceConfig {
        name: name.to_owned(),
        role: role_of(&what, &spec.role)?,
        link: LinkType::Ethernet,
        mac: mac(&what, &spec.mac)?,
        addr: net.map(|n| n.addr),
        prefix_len: net.map_or(0, |n| n.prefix_len),
        gateway: spec
            .gateway
            .as_deref()
            .map(|g| ipv4(&what, g))
            .transpose()?,
        gateway_mac: spec
            .gateway_mac
            .as_deref()
            .map(|m| mac(&what, m))
            .transpose()?,
        ipv6: ipv6_link(&what, spec)?,
    })
}

/// The device's IPv6 link: `ipv6` (`IPV6/PREFIX`) with its optional gateway and gateway MAC
fn ipv6_link(what: &str, spec: &InterfaceSpec) -> Result<Option<Ipv6Link>, ScenarioError> {
    let Some(text) = spec.ipv6.as_deref() else {
        return match (&spec.ipv6_gateway, &spec.ipv6_gateway_mac) {
            (None, None) => Ok(None),
            _ => Err(invalid(format!("{what}: ipv6-gateway without ipv6"))),
        };
    };
    let net = match text.parse::<Ipv6Net>() {
        Ok(n) if text.contains('/') => n,
        _ => {
            return Err(invalid(format!(
                "{what}: invalid ipv6 {text:?} (expected IPV6/PREFIX like 2001:db8:13::1/64)"
            )));
        }
    };
    let gateway = spec
        .ipv6_gateway
        .as_deref()
        .map(|g| {
            g.trim()
                .parse::<Ipv6Addr>()
                .map_err(|_| invalid(format!("{what}: invalid IPv6 address {g:?}")))
        })
        .transpose()?;
    Ok(Some(Ipv6Link {
        addr: net.addr,
        prefix_len: net.prefix_len,
        gateway,
        gateway_mac: spec
            .ipv6_gateway_mac
            .as_deref()
            .map(|m| mac(what, m))
            .transpose()?,
    }))
}

/// Decimal seconds since the Unix epoch, as a number or a string, exact to the nanosecond
fn start_time(v: &Value) -> Result<Duration, ScenarioError> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return Err(invalid("start: expected seconds since the Unix epoch")),
    };
    let bad = || {
        invalid(format!(
            "start: invalid time {text:?} (expected seconds like 1764094060.25)"
        ))
    };
    let (secs, frac) = text.split_once('.').unwrap_or((&text, ""));
    if secs.is_empty()
        || frac.len() > 9
        || !(secs.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()))
    {
        return Err(bad());
    }
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    Ok(Duration::new(secs, nanos))
}

/// A host's command line in Go flag syntax, parsed by our option parser
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct ClientLine {
    #[command(flatten)]
    args: ClientArgs,
}

/// A host's command line in Go flag syntax, parsed by our option parser
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct ServerLine {
    #[command(flatten)]
    args: ServerArgs,
}

/// Go's `-name value` flags as ours: one dash before one letter, two before a word
fn go_flags(line: &str) -> Vec<String> {
    line.split_whitespace()
        .skip(1)
        .map(|t| match t.strip_prefix('-') {
            Some(rest)
                if rest.len() > 1
                    && !rest.starts_with('-')
                    && !rest.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                let name_len = rest.find('=').unwrap_or(rest.len());
                if name_len > 1 {
                    format!("--{rest}")
                } else {
                    t.to_owned()
                }
            }
            _ => t.to_owned(),
        })
        .collect()
}

fn clap_line(e: &clap::Error) -> String {
    let s = e.to_string();
    s.lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("error: ")
        .to_owned()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Maps the `hosts` and `tunnel` sections of a capture folder's `scenario.json`
fn from_capture_scenario(v: &Value, role: Role) -> Result<Scenario, ScenarioError> {
    let key = role.name();
    let host = v["hosts"]
        .get(key)
        .ok_or_else(|| invalid(format!("no hosts.{key} section")))?;
    let ifaces = host
        .get("interfaces")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(format!("hosts.{key}.interfaces is missing")))?;
    let gateway = host
        .get("default_gateway")
        .and_then(Value::as_str)
        .map(|g| ipv4(&format!("hosts.{key}.default_gateway"), g))
        .transpose()?;
    let gateway_mac = match gateway {
        Some(g) => find_mac(v, g)?,
        None => None,
    };
    let mut devices = Vec::new();
    for (name, iface) in ifaces {
        let what = format!("hosts.{key}.interfaces.{name}");
        let field = |k: &str| {
            iface
                .get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{what}.{k} is missing")))
        };
        let net = address(&what, field("ip")?)?;
        let role_text = iface
            .get("ikago_role")
            .and_then(Value::as_str)
            .unwrap_or("");
        let role = if role_text.contains("upstream") {
            DeviceRole::Upstream
        } else {
            DeviceRole::Listen
        };
        let mut d = DeviceConfig {
            name: name.clone(),
            role,
            link: LinkType::Ethernet,
            mac: mac(&what, field("mac")?)?,
            addr: Some(net.addr),
            prefix_len: net.prefix_len,
            gateway: None,
            gateway_mac: None,
            ipv6: None,
        };
        if let Some(g) = gateway.filter(|&g| d.on_link(g)) {
            d.gateway = Some(g);
            d.gateway_mac = gateway_mac;
        }
        devices.push(d);
    }
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    let line = str_at(v, &["tunnel", "command_lines", key]).unwrap_or("");
    let flags = go_flags(line);
    let what = format!("tunnel.command_lines.{key}");
    let password = str_at(v, &["tunnel", "password"]).map(str::to_owned);
    let options = match role {
        Role::Client => {
            let mut a = ClientLine::try_parse_from(&flags)
                .map_err(|e| invalid(format!("{what}: {}", clap_line(&e))))?
                .args;
            a.common.password = a.common.password.or(password);
            // the Go original's captures: its wire
            a.common.protocol = Some("ikago".to_owned());
            if a.common.port.is_none() {
                a.common.port = v["tunnel"]
                    .get("client_upstream_port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok());
            }
            Options::Client(a)
        }
        Role::Server => {
            let mut a = ServerLine::try_parse_from(&flags)
                .map_err(|e| invalid(format!("{what}: {}", clap_line(&e))))?
                .args;
            a.common.password = a.common.password.or(password);
            a.common.protocol = Some("ikago".to_owned());
            if a.common.port.is_none() {
                a.common.port = v["tunnel"]
                    .get("server_port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok());
            }
            Options::Server(a)
        }
    };
    Ok(Scenario {
        devices,
        options,
        start: None,
        seed: None,
    })
}

/// The MAC of the interface, on any host, that holds `ip`
fn find_mac(v: &Value, ip: Ipv4Addr) -> Result<Option<Mac>, ScenarioError> {
    let Some(hosts) = v["hosts"].as_object() else {
        return Ok(None);
    };
    for (h, host) in hosts {
        let Some(ifaces) = host.get("interfaces").and_then(Value::as_object) else {
            continue;
        };
        for (name, iface) in ifaces {
            let held = iface
                .get("ip")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<Ipv4Net>().ok());
            if held.is_some_and(|n| n.addr == ip) {
                let m = iface.get("mac").and_then(Value::as_str).unwrap_or("");
                return mac(&format!("hosts.{h}.interfaces.{name}"), m).map(Some);
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const OWN: &str = r#"{
  # our format
  "interfaces": {
    "wan0": { "role": "upstream", "mac": "02:00:00:00:12:02", "address": "198.18.12.2/24",
              "gateway": "198.18.12.1", "gateway-mac": "02:00:00:00:12:01" },
    "lan0": { "role": "listen", "mac": "02:00:00:00:11:01", "address": "198.18.11.1/24" }
  },
  "start": "1764094060.000000001",
  "sources": ["198.18.11.2"],
  "server": "198.18.12.1:18081",
  "method": "aes-256-gcm",
  "password": "$PW"
}"#;

    #[test]
    fn own_format() {
        let s = parse(OWN, Role::Client, |n| (n == "PW").then(|| "pw".to_owned())).unwrap();
        let names: Vec<_> = s
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.role))
            .collect();
        assert_eq!(
            names,
            [("lan0", DeviceRole::Listen), ("wan0", DeviceRole::Upstream)]
        );
        assert_eq!(s.devices[1].gateway_mac, Some(Mac([2, 0, 0, 0, 0x12, 1])));
        assert_eq!(s.start, Some(Duration::new(1_764_094_060, 1)));
        assert_eq!(s.seed, None);
        let Options::Client(a) = s.options else {
            panic!("client options")
        };
        assert_eq!(a.common.password.as_deref(), Some("pw"));
        assert_eq!(
            a.server.as_deref(),
            Some(&["198.18.12.1:18081".to_owned()][..])
        );
    }

    #[test]
    fn ipv6_links_survive_the_round_trip() {
        let s = parse(OWN, Role::Client, |_| Some("pw".to_owned())).unwrap();
        let mut devices = s.devices;
        devices[1].ipv6 = Some(Ipv6Link {
            addr: "2001:db8:13::1".parse().unwrap(),
            prefix_len: 64,
            gateway: Some("fe80::1".parse().unwrap()),
            gateway_mac: Some(Mac([2, 0, 0, 0, 0x13, 0xfe])),
        });
        devices[0].ipv6 = Some(Ipv6Link {
            addr: "fd00:11::1".parse().unwrap(),
            prefix_len: 64,
            gateway: None,
            gateway_mac: None,
        });
        let mut options = Map::new();
        options.insert("sources".into(), vec!["fd00:11::/64"].into());
        options.insert("server".into(), "198.18.12.1:18081".into());
        options.insert("password".into(), "pw".into());
        let text = to_json(
            Role::Client,
            &devices,
            Duration::from_secs(1),
            &[7; 32],
            options,
        );
        let again = parse(&text, Role::Client, no_env).unwrap();
        assert_eq!(again.devices, devices, "{text}");
        let bad = r#"{"interfaces": {"a": {"role": "listen", "mac": "02:00:00:00:00:01", "address": "1.2.3.4/24", "ipv6": "fd00::1"}}}"#;
        let e = parse(bad, Role::Client, no_env).err().unwrap().to_string();
        assert_eq!(
            e,
            "interface a: invalid ipv6 \"fd00::1\" (expected IPV6/PREFIX like 2001:db8:13::1/64)"
        );
    }

    #[test]
    fn bad_scenarios_say_where() {
        let cases = [
            (
                r#"{"interfaces": {"a": {"role": "x", "mac": "02:00:00:00:00:01", "address": "1.2.3.4/24"}}}"#,
                "interface a: unknown role \"x\" (expected listen, upstream or both)",
            ),
            (
                r#"{"interfaces": {"a": {"role": "listen", "mac": "zz", "address": "1.2.3.4/24"}}}"#,
                "interface a: invalid MAC address \"zz\"",
            ),
            (
                r#"{"interfaces": {"a": {"role": "listen", "mac": "02:00:00:00:00:01", "address": "1.2.3.4"}}}"#,
                "interface a: invalid address \"1.2.3.4\" (expected IP/PREFIX like 198.18.11.1/24)",
            ),
            (r#"{"interfaces": {}}"#, "no interfaces"),
            (
                r#"{"interfaces": {"a": {"role": "listen", "mac": "02:00:00:00:00:01", "address": "1.2.3.4/24", "x": 1}}}"#,
                "unknown field `x`, expected one of `role`, `mac`, `address`, `gateway`, `gateway-mac`, `ipv6`, `ipv6-gateway`, `ipv6-gateway-mac` at line 1 column 96",
            ),
            (
                "{\n\"interfaces\": 3}",
                "invalid type: integer `3`, expected a map at line 2 column 15",
            ),
            (
                r#"{"interfaces": {"a": {"role": "listen", "mac": "02:00:00:00:00:01", "address": "1.2.3.4/24"}}, "start": -1}"#,
                "start: invalid time \"-1\" (expected seconds like 1764094060.25)",
            ),
        ];
        for (text, msg) in cases {
            assert_eq!(
                parse(text, Role::Server, no_env).unwrap_err().to_string(),
                msg
            );
        }
    }

    #[test]
    fn roles_are_inferred_when_unambiguous() {
        let infer = |text: &str, names: &[&str]| infer_role(text, names, no_env).unwrap();
        assert_eq!(infer(OWN, &["lan0"]), Some(Role::Client));
        assert_eq!(infer(r#"{"port": 1}"#, &[]), Some(Role::Server));
        assert_eq!(
            infer(r#"{"port": 1, "role": "client"}"#, &[]),
            Some(Role::Client)
        );
        assert_eq!(infer(r#"{"interfaces": {}}"#, &[]), None);
        let hosts = r#"{"hosts": {
            "client": {"interfaces": {"lan0": {}, "wan0": {}}},
            "server": {"interfaces": {"wan0": {}, "dst0": {}}}}}"#;
        assert_eq!(infer(hosts, &["lan0", "wan0"]), Some(Role::Client));
        assert_eq!(infer(hosts, &["dst0"]), Some(Role::Server));
        assert_eq!(infer(hosts, &["wan0"]), None);
        assert_eq!(infer(hosts, &["lan0", "dst0"]), None);
        assert!(infer_role(r#"{"role": 3}"#, &[], no_env).is_err());
    }

    #[test]
    fn go_flags_become_ours() {
        let f = go_flags(
            "ikago-client -r 1.2.3.4 -s 1.2.3.4:1 -listen-devices lan0 -v -kcp -kcp-mtu=1350 -p -1",
        );
        assert_eq!(
            f,
            [
                "-r",
                "1.2.3.4",
                "-s",
                "1.2.3.4:1",
                "--listen-devices",
                "lan0",
                "-v",
                "--kcp",
                "--kcp-mtu=1350",
                "-p",
                "-1"
            ]
        );
    }
}
