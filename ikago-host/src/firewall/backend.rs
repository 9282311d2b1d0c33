//! The two ways to install the rules: an iptables chain or an nftables table of our own

use super::exec::{ExecError, available, run};
use super::rules::Rule;

/// The iptables tools of the two families: IPv4 rules go to `iptables`, IPv6 ones (NAT66) to
/// `ip6tables`, each into a chain of the same name
const IPTABLES: [(&str, bool); 2] = [("iptables", false), ("ip6tables", true)];

/// The firewall tool used
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `iptables` (legacy or nf_tables flavour, same command line): chain `IKAGO-<pid>` in the
    /// filter table, jumped to from the top of INPUT; with IPv6 rules the same with `ip6tables`
    Iptables,
    /// `nft`: table `inet ikago_<pid>` with its own input chain
    Nft,
}

impl Backend {
    /// `iptables` when it runs, else `nft` when it runs
    pub fn detect() -> Option<Self> {
        if available("iptables") {
            Some(Self::Iptables)
        } else if available("nft") {
            Some(Self::Nft)
        } else {
            None
        }
    }

    /// The name of our chain (iptables) or table (nft) for process `pid`
    pub fn object_name(self, pid: u32) -> String {
        match self {
            Self::Iptables => format!("IKAGO-{pid}"),
            Self::Nft => format!("ikago_{pid}"),
        }
    }

    /// Our chains or tables left by processes that no longer run (killed with SIGKILL)
    pub(crate) fn stale(self) -> Vec<String> {
        let listing = match self {
            // a host without IPv6 has no ip6tables listing: its part is empty
            Self::Iptables => IPTABLES
                .iter()
                .filter_map(|(tool, _)| run(tool, &["-w", "-S"], None).ok())
                .collect::<Vec<_>>()
                .join("\n"),
            Self::Nft => run("nft", &["list", "tables"], None).unwrap_or_default(),
        };
        let mut names = stale_names(self, &listing, |pid| {
            std::path::Path::new("/proc").join(pid.to_string()).exists()
        });
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Installs `rules` under `name`; on failure, what was installed is removed again
    pub(crate) fn install(self, name: &str, rules: &[Rule]) -> Result<(), ExecError> {
        match self {
            Self::Iptables => IPTABLES
                .iter()
                .filter(|(_, v6)| !v6 || rules.iter().any(|r| r.to.is_ipv6()))
                .try_for_each(|&(tool, v6)| {
                    ipt(tool, &["-N", name])?;
                    rules
                        .iter()
                        .filter(|r| r.to.is_ipv6() == v6)
                        .try_for_each(|r| {
                            let args = r.iptables_args();
                            let mut a: Vec<&str> = vec!["-A", name];
                            a.extend(args.iter().map(String::as_str));
                            a.extend(["-j", "DROP"]);
                            ipt(tool, &a)
                        })?;
                    ipt(tool, &["-I", "INPUT", "1", "-j", name])
                })
                .inspect_err(|_| {
                    let _ = self.remove(name);
                }),
            Self::Nft => run("nft", &["-f", "-"], Some(&nft_script(name, rules))).map(drop),
        }
    }

    /// Removes everything installed under `name`, trying every step even when one fails
    ///
    /// The IPv4 chain is always there; the IPv6 one only with IPv6 rules, so its absence is
    /// no failure.
    pub(crate) fn remove(self, name: &str) -> Result<(), ExecError> {
        match self {
            Self::Iptables => IPTABLES
                .iter()
                .filter(|&&(tool, v6)| !v6 || run(tool, &["-w", "-S", name], None).is_ok())
                .map(|&(tool, _)| {
                    let jump = ipt(tool, &["-D", "INPUT", "-j", name]);
                    let flush = ipt(tool, &["-F", name]);
                    let delete = ipt(tool, &["-X", name]);
                    jump.and(flush).and(delete)
                })
                .fold(Ok(()), Result::and),
            Self::Nft => run("nft", &["delete", "table", "inet", name], None).map(drop),
        }
    }

    /// The current text of our chain or table (both chains with IPv6 rules), empty when it does
    /// not exist
    pub fn show(self, name: &str) -> String {
        match self {
            Self::Iptables => IPTABLES
                .iter()
                .filter_map(|(tool, _)| run(tool, &["-w", "-S", name], None).ok())
                .collect(),
            Self::Nft => run("nft", &["list", "table", "inet", name], None).unwrap_or_default(),
        }
    }
}

/// The names of our chains (`-N IKAGO-PID` in `iptables -S`) or tables (`table inet ikago_PID` in
/// `nft list tables`) in `listing` whose process is not `alive`
fn stale_names(backend: Backend, listing: &str, alive: impl Fn(u32) -> bool) -> Vec<String> {
    let prefix = backend.object_name(0);
    let prefix = prefix.trim_end_matches('0');
    listing
        .lines()
        .filter_map(|l| match backend {
            Backend::Iptables => l.strip_prefix("-N "),
            Backend::Nft => l.strip_prefix("table inet "),
        })
        .map(str::trim)
        .filter(|name| {
            name.strip_prefix(prefix)
                .and_then(|pid| pid.parse::<u32>().ok())
                .is_some_and(|pid| !alive(pid))
        })
        .map(str::to_owned)
        .collect()
}

/// Runs one command of `tool` (`iptables` or `ip6tables`), waiting for the xtables lock
fn ipt(tool: &str, args: &[&str]) -> Result<(), ExecError> {
    let mut a = vec!["-w"];
    a.extend_from_slice(args);
    run(tool, &a, None).map(drop)
}

/// The `nft -f` script creating table `inet NAME` with an input chain holding `rules`
pub(crate) fn nft_script(name: &str, rules: &[Rule]) -> String {
    let mut s = format!(
        "table inet {name} {{\n\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;\n"
    );
    for r in rules {
        s += &format!("\t\t{}\n", r.nft());
    }
    s + "\t}\n}\n"
}

#[cfg(test)]
mod tests {
    use super::super::rules::Protocol;
    use super::*;

    #[test]
    fn nft_script_text() {
        let r = Rule {
            protocol: Protocol::Udp,
            from: None,
            to: "198.19.0.1".parse().unwrap(),
            ports: 49152..=65535,
        };
        assert_eq!(
            nft_script("ikago_42", &[r]),
            "table inet ikago_42 {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\
             \t\tip daddr 198.19.0.1 udp dport 49152-65535 drop\n\t}\n}\n"
        );
        assert_eq!(Backend::Iptables.object_name(42), "IKAGO-42");
    }

    #[test]
    fn finds_stale_objects() {
        let alive = |pid| pid == 7;
        let ipt = "-P INPUT ACCEPT\n-N IKAGO-7\n-N IKAGO-99\n-N IKAGO-x\n-N OTHER-5\n-A INPUT -j IKAGO-99\n";
        assert_eq!(stale_names(Backend::Iptables, ipt, alive), ["IKAGO-99"]);
        let nft = "table ip filter\ntable inet ikago_7\ntable inet ikago_12\ntable ip ikago_13\n";
        assert_eq!(stale_names(Backend::Nft, nft, alive), ["ikago_12"]);
    }
}
