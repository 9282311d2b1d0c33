//! Kernel knobs: IP forwarding, the ephemeral port range and GRO

use super::exec::{ExecError, run};
use std::ops::RangeInclusive;
use std::path::Path;

/// The IPv4 forwarding switch
pub(crate) const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
/// The range the kernel draws ephemeral ports from
const LOCAL_PORT_RANGE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

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
    Ok(parse_gro(&out) == Some(true))
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

/// `Some(true)` if `generic-receive-offload` is on and not fixed, `Some(false)` otherwise
fn parse_gro(ethtool_k: &str) -> Option<bool> {
    let v = ethtool_k
        .lines()
        .find_map(|l| l.trim().strip_prefix("generic-receive-offload:"))?
        .trim();
    Some(v == "on")
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
        let k = "Features for veth0:\nrx-checksumming: on\ngeneric-receive-offload: on\n";
        assert_eq!(parse_gro(k), Some(true));
        assert_eq!(
            parse_gro("generic-receive-offload: on [fixed]"),
            Some(false)
        );
        assert_eq!(parse_gro("generic-receive-offload: off"), Some(false));
        assert_eq!(parse_gro("nothing"), None);
    }
}
