//! Kernel knobs: IPv4 and IPv6 forwarding, the ephemeral port range and GRO

use super::exec::{ExecError, run};
use std::ops::RangeInclusive;
use std::path::Path;

/// The IPv4 forwarding switch
pub(crate) const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
/// The IPv6 forwarding switch of every interface
pub(crate) const IP6_FORWARD: &str = "/proc/sys/net/ipv6/conf/all/forwarding";
/// The range the kernel draws ephemeral ports from
pub(crate) const LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Reads a sysctl file, trimmed
pub(crate) fn read_sysctl(path: &str) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(Path::new(path))?.trim().to_owned())
}

/// Writes a sysctl file
pub(crate) fn write_sysctl(path: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(Path::new(path), value)
}

/// The kernel's ephemeral port range, if readable
pub(crate) fn local_port_range() -> Option<RangeInclusive<u16>> {
    parse_port_range(&read_sysctl(LOCAL_PORT_RANGE).ok()?)
}

/// Parses `ip_local_port_range` (`32768\t60999`)
fn parse_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    Some(it.next()?.ok()?..=it.next()?.ok()?)
}

/// Whether two port ranges share a port
pub(crate) fn overlap(a: &RangeInclusive<u16>, b: &RangeInclusive<u16>) -> bool {
    a.start() <= b.end() && b.start() <= a.end()
}

/// GRO state of a device from `ethtool -k`: `Some(true)` when on and changeable
pub(crate) fn gro_changeable_on(device: &str) -> Result<bool, ExecError> {
    let out = run("ethtool", &["-k", device], None)?;
    Ok(feature(&out, GRO).is_some_and(|f| f.on && !f.fixed))
}

/// `ethtool -k`'s name of generic receive offload
pub(crate) const GRO: &str = "generic-receive-offload";
/// `ethtool -k`'s name of large receive offload
pub(crate) const LRO: &str = "large-receive-offload";

/// One offload feature of a device
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Feature {
    /// Whether it is on
    pub(crate) on: bool,
    /// Whether the driver does not let it change (`[fixed]`)
    pub(crate) fixed: bool,
}

/// The output of `ethtool -k DEVICE`
pub(crate) fn features(device: &str) -> Result<String, ExecError> {
    run("ethtool", &["-k", device], None)
}

/// Turns GRO of `device` on or off
pub(crate) fn set_gro(device: &str, on: bool) -> Result<(), ExecError> {
    run(
        "ethtool",
        &["-K", device, "gro", if on { "on" } else { "off" }],
        None,
    )
    .map(drop)
}

/// Feature `name` in the text of `ethtool -k` (`name: on [fixed]`), `None` when not listed
pub(crate) fn feature(ethtool_k: &str, name: &str) -> Option<Feature> {
    let v = ethtool_k
        .lines()
        .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))?
        .trim();
    Some(Feature {
        on: v.starts_with("on"),
        fixed: v.ends_with("[fixed]"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_text() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_port_range("x"), None);
        assert!(overlap(&(32768..=60999), &(49152..=65535)));
        assert!(!overlap(&(32768..=49151), &(49152..=65535)));
        let k = "Features for veth0:\nrx-checksumming: on\ngeneric-receive-offload: on\n\
                 large-receive-offload: off [fixed]\n";
        let f = |on, fixed| Some(Feature { on, fixed });
        assert_eq!(feature(k, GRO), f(true, false));
        assert_eq!(feature(k, LRO), f(false, true));
        assert_eq!(
            feature("generic-receive-offload: on [fixed]", GRO),
            f(true, true)
        );
        assert_eq!(
            feature("generic-receive-offload: off", GRO),
            f(false, false)
        );
        assert_eq!(feature("nothing", GRO), None);
    }
}
