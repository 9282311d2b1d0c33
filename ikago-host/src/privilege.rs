//! What this process may do without root: CAP_NET_RAW to capture and inject, CAP_NET_ADMIN for
//! `--rule`, and handing them on to the firewall tools that `--rule` runs
//!
//! A process holds the two capabilities as root, through file capabilities (`setcap
//! cap_net_raw,cap_net_admin+ep` on the binary) or as ambient capabilities (systemd's
//! `AmbientCapabilities=`). [`acquire`] makes the ones a role needs effective and, for a process
//! that is not root, ambient too: `iptables`, `nft` and `ethtool` carry no file capabilities, so
//! without that they would start with none and fail.

use rustix::thread::{
    CapabilitySet, CapabilitySets, capabilities, capability_is_in_ambient_set,
    configure_capability_in_ambient_set, no_new_privs, set_capabilities,
};

/// The capabilities a role uses: CAP_NET_RAW always, CAP_NET_ADMIN with `--rule`
pub fn needed(rule: bool) -> CapabilitySet {
    if rule {
        CapabilitySet::NET_RAW | CapabilitySet::NET_ADMIN
    } else {
        CapabilitySet::NET_RAW
    }
}

/// The capabilities this thread holds and whether it runs as root
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Effective, permitted and inheritable sets
    pub sets: CapabilitySets,
    /// Whether the effective user is root
    pub root: bool,
}

impl Held {
    /// The calling thread's capabilities
    pub fn current() -> Result<Self, String> {
        let sets = capabilities(None).map_err(|e| format!("cannot read capabilities: {e}"))?;
        Ok(Self {
            sets,
            root: rustix::process::geteuid().is_root(),
        })
    }

    /// Which of `needed` this process cannot have: those not in its permitted set
    pub fn missing(&self, needed: CapabilitySet) -> CapabilitySet {
        needed - self.sets.permitted
    }

    /// `root`, or `uid N with CAP_NET_RAW, CAP_NET_ADMIN` (the two network capabilities held)
    pub fn describe(&self) -> String {
        if self.root {
            return "root".to_owned();
        }
        let held: Vec<&str> = [CapabilitySet::NET_RAW, CapabilitySet::NET_ADMIN]
            .into_iter()
            .filter(|&c| self.sets.permitted.contains(c))
            .map(name)
            .collect();
        let uid = rustix::process::geteuid().as_raw();
        match held.is_empty() {
            true => format!("uid {uid} without network capabilities"),
            false => format!("uid {uid} with {}", held.join(", ")),
        }
    }
}

/// The capability's name as the man pages write it
fn name(cap: CapabilitySet) -> &'static str {
    if cap == CapabilitySet::NET_ADMIN {
        "CAP_NET_ADMIN"
    } else {
        "CAP_NET_RAW"
    }
}

/// Makes the capabilities of a role (`rule`: with `--rule`) effective, and with `--rule` hands
/// them on to the firewall tools it starts ([`raise`]); `Err` is the one line naming what is
/// missing and how to grant it
///
/// Capabilities belong to threads: call it on the main thread before any other starts.
pub fn acquire(rule: bool) -> Result<(), String> {
    let held = Held::current()?;
    let missing = held.missing(needed(rule));
    if !missing.is_empty() {
        return Err(missing_message(missing, no_new_privs().unwrap_or(false)));
    }
    raise(&held, needed(rule), rule)
}

/// Makes `caps`, which `held` must permit, effective; with `pass_on`, for a process that is not
/// root, also inheritable and ambient, so that the programs it starts hold them too
pub fn raise(held: &Held, caps: CapabilitySet, pass_on: bool) -> Result<(), String> {
    let mut sets = held.sets;
    sets.effective |= caps;
    let pass_on = pass_on && !held.root;
    if pass_on {
        sets.inheritable |= caps;
    }
    if sets != held.sets {
        set_capabilities(None, sets).map_err(|e| format!("cannot raise capabilities: {e}"))?;
    }
    if pass_on {
        // already ambient under systemd's AmbientCapabilities=: nothing to raise
        let raise = caps
            .iter()
            .filter(|&cap| !capability_is_in_ambient_set(cap).unwrap_or(false));
        for cap in raise {
            configure_capability_in_ambient_set(cap, true).map_err(|e| {
                format!(
                    "cannot hand {} on to the firewall tools (ambient set): {e}",
                    name(cap)
                )
            })?;
        }
    }
    Ok(())
}

/// The one-line error for a process lacking `missing`, naming the binary to `setcap`;
/// `no_new_privs` adds that file capabilities do not apply under it
pub fn missing_message(missing: CapabilitySet, no_new_privs: bool) -> String {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "<binary>".to_owned());
    let (raw, admin) = (
        missing.contains(CapabilitySet::NET_RAW),
        missing.contains(CapabilitySet::NET_ADMIN),
    );
    let what = match (raw, admin) {
        (true, true) => {
            "capturing needs CAP_NET_RAW and --rule CAP_NET_ADMIN, which this process lacks"
        }
        (true, false) => "capturing needs CAP_NET_RAW, which this process lacks",
        _ => "--rule needs CAP_NET_ADMIN, which this process lacks",
    };
    let them = if raw && admin { "them" } else { "it" };
    let nnp = if no_new_privs {
        " (file capabilities do not apply to it: it runs with no_new_privs)"
    } else {
        ""
    };
    format!(
        "{what}{nnp}: run as root, or grant {them} with `sudo setcap cap_net_raw,cap_net_admin+ep \
         {exe}`, or with AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in a systemd unit"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(permitted: CapabilitySet, root: bool) -> Held {
        Held {
            sets: CapabilitySets {
                effective: CapabilitySet::empty(),
                permitted,
                inheritable: CapabilitySet::empty(),
            },
            root,
        }
    }

    #[test]
    fn missing_is_what_is_not_permitted() {
        let raw = held(CapabilitySet::NET_RAW, false);
        assert!(raw.missing(needed(false)).is_empty());
        assert_eq!(raw.missing(needed(true)), CapabilitySet::NET_ADMIN);
        let none = held(CapabilitySet::empty(), false);
        assert_eq!(none.missing(needed(true)), needed(true));
        assert!(
            held(CapabilitySet::all(), true)
                .missing(needed(true))
                .is_empty()
        );
        assert_eq!(held(CapabilitySet::all(), true).describe(), "root");
        assert!(
            raw.describe().ends_with(" with CAP_NET_RAW"),
            "{}",
            raw.describe()
        );
        assert!(none.describe().ends_with(" without network capabilities"));
    }

    #[test]
    fn messages_say_which_and_how() {
        let m = missing_message(CapabilitySet::NET_RAW, false);
        assert!(
            m.starts_with("capturing needs CAP_NET_RAW, which this process lacks: run as root, or grant it with `sudo setcap cap_net_raw,cap_net_admin+ep /"),
            "{m}"
        );
        assert!(m.ends_with("AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in a systemd unit"));
        let m = missing_message(CapabilitySet::NET_ADMIN, false);
        assert!(
            m.starts_with(
                "--rule needs CAP_NET_ADMIN, which this process lacks: run as root, or grant it"
            ),
            "{m}"
        );
        let m = missing_message(needed(true), true);
        assert!(m.starts_with("capturing needs CAP_NET_RAW and --rule CAP_NET_ADMIN, which this process lacks (file capabilities do not apply to it: it runs with no_new_privs): run as root, or grant them"), "{m}");
        assert!(!m.contains('\n'));
    }
}
