//! Whether this process may capture: root, or the CAP_NET_RAW capability

/// Bit of CAP_NET_RAW in the capability sets (linux/capability.h)
const CAP_NET_RAW: u32 = 13;

/// The one-line error for a process that may not capture, naming the binary to `setcap`
pub fn missing_message() -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "<binary>".to_owned());
    format!(
        "capturing needs root or CAP_NET_RAW: run as root or `setcap cap_net_raw,cap_net_admin+ep {exe}`"
    )
}

/// Whether the process has CAP_NET_RAW in its effective set (root normally has every capability)
pub fn can_capture() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| has_net_raw(&s))
}

/// Whether the `CapEff` line of a `/proc/PID/status` text holds CAP_NET_RAW
fn has_net_raw(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_NET_RAW) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_effective_set() {
        assert!(has_net_raw("Name:\tx\nCapEff:\t000001ffffffffff\n"));
        assert!(has_net_raw("CapEff:\t0000000000002000\n"));
        assert!(!has_net_raw("CapEff:\t0000000000001000\n"));
        assert!(!has_net_raw("CapInh:\t0000000000002000\n"));
        assert!(!has_net_raw("CapEff:\tzz\n"));
    }

    #[test]
    fn message_says_how() {
        let m = missing_message();
        assert!(m.starts_with("capturing needs root or CAP_NET_RAW: run as root or `setcap cap_net_raw,cap_net_admin+ep /"));
    }
}
