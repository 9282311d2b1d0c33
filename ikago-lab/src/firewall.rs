//! The firewall router between the clients and the server: strict conntrack, UDP and ICMP blocked
//!
//! Interfaces: `in0` faces the clients (198.18.22.0/24), `out0` faces the server
//! (198.18.23.0/24) and `out1` the second server (198.18.26.0/24). The rules are applied
//! atomically with `iptables-restore`, so a policy can be swapped on a running lab (the benchmark
//! opens the firewall for the direct path). A dual-stack lab gets the same policy for IPv6 with
//! `ip6tables-restore`: UDP and ICMPv6 from the clients dropped, conntrack as strict; neighbour
//! discovery is never forwarded, so it is untouched (INPUT and OUTPUT accept).

use crate::{Netns, Result};

/// The firewall's client-side interface
pub const INSIDE: &str = "in0";
/// The firewall's server-side interface
pub const OUTSIDE: &str = "out0";
/// The firewall's interface toward the second server
pub const OUTSIDE2: &str = "out1";
/// Both server-side interfaces, as iptables matches them
const ANY_OUTSIDE: &str = "out+";

/// What the firewall does to the clients' UDP and ICMP
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Blocking {
    /// Drops all UDP and ICMP coming from the client side (the default)
    Drop,
    /// Lets UDP through, shaped to this many kbit/s each way (ISP-style QoS); ICMP passes
    ShapeUdp {
        /// The UDP rate in kbit/s
        kbit: u32,
    },
    /// Forwards everything (the benchmark's direct path)
    Open,
}

/// The firewall's configuration
///
/// Whatever the variant, conntrack is strict: `nf_conntrack_tcp_loose=0` and
/// `--ctstate INVALID -j DROP`, and only connections opened from the client side come back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FirewallPolicy {
    /// What happens to the clients' UDP and ICMP
    pub blocking: Blocking,
    /// Masquerade the client side onto the firewall's outside address (clients behind NAT)
    pub masquerade: bool,
    /// Drop this fraction of forwarded packets at random, each way (`-m statistic`)
    ///
    /// This kernel has no netem (DESIGN §6), so there is loss but no added delay.
    pub loss: Option<f64>,
}

impl Default for FirewallPolicy {
    fn default() -> Self {
        Self {
            blocking: Blocking::Drop,
            masquerade: false,
            loss: None,
        }
    }
}

impl FirewallPolicy {
    /// The default policy with masquerade on
    pub fn masquerading() -> Self {
        Self {
            masquerade: true,
            ..Self::default()
        }
    }

    /// A policy that forwards everything
    pub fn open() -> Self {
        Self {
            blocking: Blocking::Open,
            ..Self::default()
        }
    }

    /// The `iptables-restore` input for this policy
    pub fn ruleset(&self) -> String {
        self.rules_for("icmp")
    }

    /// The `ip6tables-restore` input for this policy: the IPv4 one with ICMPv6 for ICMP
    pub fn ruleset6(&self) -> String {
        self.rules_for("ipv6-icmp")
    }

    /// The ruleset with `icmp` naming the family's ICMP protocol
    fn rules_for(&self, icmp: &str) -> String {
        let mut filter = vec![
            "*filter",
            ":INPUT ACCEPT [0:0]",
            ":FORWARD DROP [0:0]",
            ":OUTPUT ACCEPT [0:0]",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        if let Some(p) = self.loss {
            filter.push(format!(
                "-A FORWARD -m statistic --mode random --probability {p} -j DROP"
            ));
        }
        filter.push("-A FORWARD -m conntrack --ctstate INVALID -j DROP".into());
        if self.blocking == Blocking::Drop {
            filter.push(format!("-A FORWARD -i {INSIDE} -p udp -j DROP"));
            filter.push(format!("-A FORWARD -i {INSIDE} -p {icmp} -j DROP"));
        }
        filter.push(format!("-A FORWARD -i {INSIDE} -o {ANY_OUTSIDE} -j ACCEPT"));
        let back = match self.blocking {
            Blocking::Open => String::new(),
            _ => " -m conntrack --ctstate ESTABLISHED,RELATED".into(),
        };
        filter.push(format!(
            "-A FORWARD -i {ANY_OUTSIDE} -o {INSIDE}{back} -j ACCEPT"
        ));
        filter.push("COMMIT".into());
        filter
            .extend(["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]"].map(String::from));
        filter.extend([":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]"].map(String::from));
        if self.masquerade {
            filter.push(format!("-A POSTROUTING -o {ANY_OUTSIDE} -j MASQUERADE"));
        }
        filter.push("COMMIT".into());
        filter.join("\n") + "\n"
    }

    /// Applies the policy to the firewall namespace (to IPv6 as well when `ipv6`), replacing any
    /// previous one
    pub(crate) fn apply(&self, fw: &Netns, ipv6: bool) -> Result<()> {
        fw.exec_with_input("iptables-restore", &[], &self.ruleset())?;
        if ipv6 {
            fw.exec_with_input("ip6tables-restore", &[], &self.ruleset6())?;
        }
        // The conntrack sysctls exist once a conntrack rule loaded the module in this namespace
        fw.sysctl("net.netfilter.nf_conntrack_tcp_loose", "0")?;
        fw.sysctl("net.netfilter.nf_conntrack_tcp_be_liberal", "0")?;
        for dev in [INSIDE, OUTSIDE, OUTSIDE2] {
            // Absent when no shaping was set: nothing to delete
            let _ = fw.attempt("tc", &["qdisc", "del", "dev", dev, "root"]);
            if let Blocking::ShapeUdp { kbit } = self.blocking {
                shape_udp(fw, dev, kbit, ipv6)?;
            }
        }
        Ok(())
    }

    /// Packets dropped so far by the INVALID rule (`iptables -L FORWARD -v`)
    pub fn invalid_drops(fw: &Netns) -> Result<u64> {
        Self::invalid_drops_of(fw, "iptables")
    }

    /// IPv6 packets dropped so far by the INVALID rule (`ip6tables -L FORWARD -v`)
    pub fn invalid_drops6(fw: &Netns) -> Result<u64> {
        Self::invalid_drops_of(fw, "ip6tables")
    }

    fn invalid_drops_of(fw: &Netns, tool: &str) -> Result<u64> {
        let listing = fw.exec(tool, &["-L", "FORWARD", "-v", "-n", "-x"])?;
        Ok(listing
            .lines()
            .find(|l| l.contains("ctstate INVALID"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }
}

/// HTB on `dev`'s egress: UDP (over IPv6 too when `ipv6`) into a `kbit` class, everything else
/// into a 10 Gbit/s one
///
/// No tc police on this kernel (DESIGN §6): a shaping qdisc is the way.
fn shape_udp(fw: &Netns, dev: &str, kbit: u32, ipv6: bool) -> Result<()> {
    let rate = format!("{kbit}kbit");
    fw.exec(
        "tc",
        &[
            "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10",
        ],
    )?;
    fw.exec(
        "tc",
        &[
            "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit",
        ],
    )?;
    fw.exec(
        "tc",
        &[
            "class", "add", "dev", dev, "parent", "1:", "classid", "1:20", "htb", "rate", &rate,
            "ceil", &rate,
        ],
    )?;
    fw.exec(
        "tc",
        &[
            "qdisc", "add", "dev", dev, "parent", "1:20", "pfifo", "limit", "50",
        ],
    )?;
    fw.exec(
        "tc",
        &[
            "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "u32", "match", "ip",
            "protocol", "17", "0xff", "flowid", "1:20",
        ],
    )?;
    if ipv6 {
        fw.exec(
            "tc",
            &[
                "filter", "add", "dev", dev, "parent", "1:", "protocol", "ipv6", "u32", "match",
                "ip6", "protocol", "17", "0xff", "flowid", "1:20",
            ],
        )?;
    }
    Ok(())
}
