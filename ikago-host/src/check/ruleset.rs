//! The firewall rules already on this host, read for what they do to the packets the kernel
//! would answer: the tunnel's segments and, on a server, the replies to its NAT mappings
//!
//! Capture reads frames before netfilter and injection bypasses it, so no rule stops the tunnel
//! itself. What rules decide is whether the kernel answers those packets (no socket of its own
//! owns them): with RSTs for TCP, with ICMP port unreachables for UDP, which reset the peers.
//! `--rule` drops them in an input chain at priority 0; a rule that drops them as well, or that
//! drops the kernel's RSTs on their way out (output and postrouting hooks), keeps the peers safe
//! without it, while one that rejects them before our drop, or redirects them (DNAT) so that our
//! drop no longer matches, makes the kernel answer anyway.
//!
//! The ruleset comes from `nft -j list ruleset`, which shows native nftables tables and those of
//! iptables-nft alike. Each base chain at the hooks the packets pass (IPv4 and inet families) is
//! followed, jumps included, for the packets in question; a match this reading does not know
//! (conntrack state, an xtables match, a rate limit) counts as one that may or may not hold. A
//! finding names the chain and the rule's handle (`nft -a list ruleset` shows them). Rules of
//! legacy iptables (x_tables) are not visible there and are only reported as present. The NAT66
//! rules (IPv6) are not inspected.

use super::Report;
use crate::app::Settings;
use crate::firewall::exec::run;
use crate::firewall::rules::{Protocol, Rule};
use crate::firewall::{Backend, Plan};
use ikago_proto::{DYNAMIC_PORTS, DeviceConfig};
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;

/// Where legacy iptables lists the tables it has loaded
const LEGACY_TABLES: &str = "/proc/net/ip_tables_names";
/// How deep jumps are followed
const MAX_DEPTH: usize = 16;
/// TCP flag bits by the names nft gives them
const TCP_FLAGS: [(&str, u32); 8] = [
    ("fin", 0x01),
    ("syn", 0x02),
    ("rst", 0x04),
    ("psh", 0x08),
    ("ack", 0x10),
    ("urg", 0x20),
    ("ecn", 0x40),
    ("cwr", 0x80),
];
/// The flags of the kernel's RSTs: RST alone (to a segment with ACK), RST with ACK (otherwise)
const RST_FLAGS: [u32; 2] = [0x04, 0x14];

/// Whether a condition holds for the packets in question: for none, some or all of them
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tri {
    /// For none
    Never,
    /// For some, or not known
    Maybe,
    /// For all
    Always,
}

impl Tri {
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Never, _) | (_, Self::Never) => Self::Never,
            (Self::Always, Self::Always) => Self::Always,
            _ => Self::Maybe,
        }
    }

    fn not(self) -> Self {
        match self {
            Self::Never => Self::Always,
            Self::Maybe => Self::Maybe,
            Self::Always => Self::Never,
        }
    }

    /// What is left of the packets after some of them (`taken`) were decided
    fn minus(self, taken: Self) -> Self {
        match taken {
            Self::Always => Self::Never,
            Self::Maybe => self.and(Self::Maybe),
            Self::Never => self,
        }
    }
}

/// The packets in question: every field a set of values (a range), interfaces by name
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Packets {
    /// TCP or UDP
    pub(crate) protocol: Protocol,
    /// Source addresses
    pub(crate) saddr: RangeInclusive<u32>,
    /// Destination addresses
    pub(crate) daddr: RangeInclusive<u32>,
    /// Source ports
    pub(crate) sport: RangeInclusive<u32>,
    /// Destination ports
    pub(crate) dport: RangeInclusive<u32>,
    /// The interface they arrive on (incoming) or leave by (outgoing)
    pub(crate) dev: String,
    /// Whether the kernel sends them (output and postrouting hooks) rather than receives them
    pub(crate) outgoing: bool,
    /// The TCP flags they may carry, each a bit set; empty when any
    pub(crate) flags: Vec<u32>,
}

/// What a chain does with the packets, in the end
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Accepted: they go on to the next chain, or to the kernel
    Accept,
    /// Dropped: the kernel never sees them
    Drop,
    /// Rejected with the answer named
    Reject(String),
    /// Redirected (DNAT, REDIRECT, TPROXY)
    Redirect(String),
}

/// One way a chain may decide the packets' fate
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The fate
    pub(crate) fate: Fate,
    /// For which of the packets
    pub(crate) share: Tri,
    /// `table ip filter, chain INPUT, rule handle 3`
    pub(crate) place: String,
}

/// A base chain with the ways it may decide
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decided {
    /// `table inet fw, chain input`
    pub(crate) chain: String,
    /// 0 for prerouting (output), 1 for input (postrouting)
    pub(crate) hook: u8,
    /// Its priority
    pub(crate) prio: i64,
    /// Whether it is iptables' INPUT chain of the filter table (where our jump goes first)
    pub(crate) iptables_input: bool,
    /// Its outcomes, in rule order
    pub(crate) outcomes: Vec<Outcome>,
}

/// The ruleset as `nft -j` lists it
pub(crate) struct Ruleset {
    items: Vec<Value>,
}

impl Ruleset {
    /// Parses the text of `nft -j list ruleset`
    pub(crate) fn parse(json: &str) -> Result<Self, String> {
        let doc: Value =
            serde_json::from_str(json).map_err(|e| format!("cannot parse nft's JSON: {e}"))?;
        let items = doc["nftables"]
            .as_array()
            .ok_or("nft's JSON has no `nftables` list")?
            .clone();
        Ok(Self { items })
    }

    /// Every base chain of an IPv4 family at the hooks the packets pass (prerouting and input
    /// for received ones, output and postrouting for sent ones), in the order the kernel runs
    /// them, with what it does to `packets`
    pub(crate) fn decide(&self, packets: &Packets) -> Vec<Decided> {
        let mut chains: Vec<Decided> = self
            .items
            .iter()
            .filter_map(|i| i.get("chain"))
            .filter(|c| matches!(c["family"].as_str(), Some("ip" | "inet")))
            .filter_map(|c| {
                let hook = match (c["hook"].as_str()?, packets.outgoing) {
                    ("prerouting", false) | ("output", true) => 0,
                    ("input", false) | ("postrouting", true) => 1,
                    _ => return None,
                };
                let (family, table, name) = (
                    c["family"].as_str()?,
                    c["table"].as_str()?,
                    c["name"].as_str()?,
                );
                let (mut outcomes, left) =
                    self.follow(family, table, name, packets, Tri::Always, 0);
                if left != Tri::Never && c["policy"].as_str() == Some("drop") {
                    outcomes.push(Outcome {
                        fate: Fate::Drop,
                        share: left,
                        place: format!("table {family} {table}, chain {name}, its policy"),
                    });
                }
                Some(Decided {
                    chain: format!("table {family} {table}, chain {name}"),
                    hook,
                    prio: c["prio"].as_i64().unwrap_or(0),
                    iptables_input: family == "ip" && table == "filter" && name == "INPUT",
                    outcomes,
                })
            })
            .collect();
        chains.sort_by_key(|c| (c.hook, c.prio));
        chains
    }

    /// The outcomes of chain `name` for the share `reach` of the packets, and the share that
    /// leaves it undecided
    fn follow(
        &self,
        family: &str,
        table: &str,
        name: &str,
        packets: &Packets,
        mut reach: Tri,
        depth: usize,
    ) -> (Vec<Outcome>, Tri) {
        let mut outcomes = Vec::new();
        if depth > MAX_DEPTH {
            return (outcomes, reach);
        }
        let rules = self
            .items
            .iter()
            .filter_map(|i| i.get("rule"))
            .filter(|r| r["family"] == family && r["table"] == table && r["chain"] == name);
        for rule in rules {
            if reach == Tri::Never {
                break;
            }
            let Some(expr) = rule["expr"].as_array() else {
                continue;
            };
            let here = reach.and(matches(expr, packets));
            if here == Tri::Never {
                continue;
            }
            let place = format!(
                "table {family} {table}, chain {name}, rule handle {}",
                rule["handle"]
            );
            match verdict(expr) {
                Verdict::Continue => {}
                Verdict::Fate(fate) => {
                    outcomes.push(Outcome {
                        fate,
                        share: here,
                        place,
                    });
                    reach = reach.minus(here);
                }
                Verdict::Jump(target) => {
                    let (sub, back) = self.follow(family, table, &target, packets, here, depth + 1);
                    let decided = if sub.is_empty() {
                        Tri::Never
                    } else if back == Tri::Never {
                        here
                    } else {
                        Tri::Maybe
                    };
                    outcomes.extend(sub);
                    reach = reach.minus(decided);
                }
                Verdict::Return => reach = reach.minus(here),
            }
        }
        (outcomes, reach)
    }
}

/// What a rule does when it matches
enum Verdict {
    /// Nothing final (a counter, a log line, a mark)
    Continue,
    /// Decides the fate
    Fate(Fate),
    /// Jumps to (or goes to) a chain
    Jump(String),
    /// Returns to the calling chain
    Return,
}

/// The verdict of a rule's statements
fn verdict(expr: &[Value]) -> Verdict {
    for e in expr {
        let Some((key, v)) = e.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        return match key.as_str() {
            "accept" | "queue" => Verdict::Fate(Fate::Accept),
            "drop" => Verdict::Fate(Fate::Drop),
            "reject" => Verdict::Fate(Fate::Reject(reject_kind(v))),
            "dnat" | "redirect" | "tproxy" => Verdict::Fate(Fate::Redirect(key.clone())),
            "jump" | "goto" => match v["target"].as_str() {
                Some(t) => Verdict::Jump(t.to_owned()),
                None => continue,
            },
            "return" => Verdict::Return,
            "xt" if v["type"] == "target" => match v["name"].as_str().unwrap_or("") {
                "REJECT" => Verdict::Fate(Fate::Reject("REJECT (an RST or an ICMP error)".into())),
                "DNAT" | "REDIRECT" | "TPROXY" => {
                    Verdict::Fate(Fate::Redirect(v["name"].as_str().unwrap_or("").into()))
                }
                "DROP" => Verdict::Fate(Fate::Drop),
                "ACCEPT" => Verdict::Fate(Fate::Accept),
                _ => continue,
            },
            _ => continue,
        };
    }
    Verdict::Continue
}

/// The answer of a `reject` statement
fn reject_kind(v: &Value) -> String {
    match (v["type"].as_str(), v["expr"].as_str()) {
        (Some("tcp reset"), _) => "a TCP reset".to_owned(),
        (Some(t), Some(code)) if t.starts_with("icmp") => format!("an ICMP {code}"),
        (Some(t), Some(code)) => format!("{t} {code}"),
        _ => "an ICMP error".to_owned(),
    }
}

/// Whether every match of a rule holds for the packets
fn matches(expr: &[Value], packets: &Packets) -> Tri {
    expr.iter().fold(Tri::Always, |acc, e| {
        let this = if let Some(m) = e.get("match") {
            match_one(m, packets)
        } else if e.get("xt").is_some_and(|x| x["type"] == "match")
            || e.get("limit").is_some()
            || e.get("quota").is_some()
        {
            Tri::Maybe
        } else {
            Tri::Always
        };
        acc.and(this)
    })
}

/// What a match compares
#[derive(Clone, Copy)]
enum Kind {
    Addr,
    Port,
    Proto,
}

/// One `match` statement against the packets
fn match_one(m: &Value, p: &Packets) -> Tri {
    let left = &m["left"];
    let right = &m["right"];
    let negate = match m["op"].as_str() {
        Some("==" | "in") => false,
        Some("!=") => true,
        _ => return Tri::Maybe,
    };
    let payload = &left["payload"];
    // a transport header field implies its protocol (nft adds that dependency itself)
    match payload["protocol"].as_str() {
        Some("tcp") if p.protocol != Protocol::Tcp => return Tri::Never,
        Some("udp") if p.protocol != Protocol::Udp => return Tri::Never,
        _ => {}
    }
    let proto = u32::from(match p.protocol {
        Protocol::Tcp => 6u8,
        Protocol::Udp => 17,
    });
    let (value, kind) = match (
        payload["protocol"].as_str(),
        payload["field"].as_str(),
        left["meta"]["key"].as_str(),
    ) {
        (Some("ip"), Some("saddr"), _) => (p.saddr.clone(), Kind::Addr),
        (Some("ip"), Some("daddr"), _) => (p.daddr.clone(), Kind::Addr),
        (Some("tcp" | "udp" | "th"), Some("sport"), _) => (p.sport.clone(), Kind::Port),
        (Some("tcp" | "udp" | "th"), Some("dport"), _) => (p.dport.clone(), Kind::Port),
        (Some("ip"), Some("protocol"), _) | (_, _, Some("l4proto")) => (proto..=proto, Kind::Proto),
        (_, _, Some("nfproto")) => {
            let ipv4 = match right.as_str() {
                Some("ipv4") => Tri::Always,
                Some("ipv6") => Tri::Never,
                _ => return Tri::Maybe,
            };
            return if negate { ipv4.not() } else { ipv4 };
        }
        (_, _, Some(key @ ("iifname" | "oifname"))) => {
            if (key == "oifname") != p.outgoing {
                return Tri::Maybe;
            }
            let t = name_in(&p.dev, right);
            return if negate { t.not() } else { t };
        }
        (Some("tcp"), Some("flags"), _) => {
            let Some(v) = flag_bits(right) else {
                return Tri::Maybe;
            };
            let op = m["op"].as_str().unwrap_or("");
            return flags_match(&p.flags, |f| match op {
                "in" => f & v != 0,
                "!=" => f != v,
                _ => f == v,
            });
        }
        _ if left.get("&").is_some() => return masked_flags(m, p),
        _ => return Tri::Maybe,
    };
    let Some(set) = ranges(right, kind) else {
        return Tri::Maybe;
    };
    let t = compare(&value, &set);
    if negate { t.not() } else { t }
}

/// `tcp flags & MASK == VALUE` (and `!=`), as iptables' `--tcp-flags MASK VALUE` reads in nft
fn masked_flags(m: &Value, p: &Packets) -> Tri {
    let Some([field, mask]) = m["left"]["&"].as_array().map(Vec::as_slice) else {
        return Tri::Maybe;
    };
    if field["payload"]["protocol"] != "tcp" || field["payload"]["field"] != "flags" {
        return Tri::Maybe;
    }
    let (Some(mask), Some(value)) = (flag_bits(mask), flag_bits(&m["right"])) else {
        return Tri::Maybe;
    };
    let negate = m["op"] == "!=";
    flags_match(&p.flags, |f| (f & mask == value) != negate)
}

/// Whether `test` holds for all, some or none of the flag sets; `Maybe` when they are unknown
fn flags_match(flags: &[u32], test: impl Fn(u32) -> bool) -> Tri {
    let hits = flags.iter().filter(|&&f| test(f)).count();
    match hits {
        _ if flags.is_empty() => Tri::Maybe,
        0 => Tri::Never,
        n if n == flags.len() => Tri::Always,
        _ => Tri::Maybe,
    }
}

/// TCP flag bits from a name (`rst`), a number or an or-list of them (`{"|": ["syn", "rst"]}`)
fn flag_bits(v: &Value) -> Option<u32> {
    if let Some(n) = v.as_u64() {
        return u32::try_from(n).ok();
    }
    if let Some(name) = v.as_str() {
        return TCP_FLAGS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, bit)| *bit);
    }
    v.get("|")
        .and_then(Value::as_array)?
        .iter()
        .try_fold(0, |acc, x| Some(acc | flag_bits(x)?))
}

/// Whether interface `name` is matched by a name, a `prefix*` pattern or a set of them
fn name_in(name: &str, right: &Value) -> Tri {
    let one = |v: &Value| {
        v.as_str()
            .is_some_and(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            })
    };
    let hit = match right.get("set").and_then(Value::as_array) {
        Some(items) => items.iter().any(one),
        None if right.is_string() => one(right),
        None => return Tri::Maybe,
    };
    if hit { Tri::Always } else { Tri::Never }
}

/// The values of the right-hand side of a match as ranges; `None` when not understood
fn ranges(right: &Value, kind: Kind) -> Option<Vec<RangeInclusive<u32>>> {
    if let Some(n) = right.as_u64() {
        let n = u32::try_from(n).ok()?;
        return Some(vec![n..=n]);
    }
    if let Some(s) = right.as_str() {
        let n = match kind {
            Kind::Addr => u32::from(s.parse::<Ipv4Addr>().ok()?),
            Kind::Proto => match s {
                "tcp" => 6,
                "udp" => 17,
                "icmp" => 1,
                _ => s.parse().ok()?,
            },
            Kind::Port => s.parse().ok()?,
        };
        return Some(vec![n..=n]);
    }
    if let Some(prefix) = right.get("prefix") {
        let addr = u32::from(prefix["addr"].as_str()?.parse::<Ipv4Addr>().ok()?);
        let len = u32::try_from(prefix["len"].as_u64()?).ok()?.min(32);
        let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
        return Some(vec![addr & mask..=(addr & mask) | !mask]);
    }
    if let Some([a, b]) = right
        .get("range")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        let (a, b) = (ranges(a, kind)?, ranges(b, kind)?);
        return Some(vec![*a.first()?.start()..=*b.first()?.end()]);
    }
    if let Some(items) = right.get("set").and_then(Value::as_array) {
        let mut all = Vec::new();
        for i in items {
            all.extend(ranges(i, kind)?);
        }
        return Some(all);
    }
    None
}

/// Whether `value` lies within the union of `set`: wholly, partly or not at all
fn compare(value: &RangeInclusive<u32>, set: &[RangeInclusive<u32>]) -> Tri {
    let mut sorted: Vec<(u64, u64)> = set
        .iter()
        .map(|r| (u64::from(*r.start()), u64::from(*r.end())))
        .collect();
    sorted.sort_unstable();
    let (lo, hi) = (u64::from(*value.start()), u64::from(*value.end()));
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (a, b) in sorted {
        match merged.last_mut() {
            Some(last) if a <= last.1 + 1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    if merged.iter().any(|&(a, b)| a <= lo && hi <= b) {
        Tri::Always
    } else if merged.iter().any(|&(a, b)| a <= hi && lo <= b) {
        Tri::Maybe
    } else {
        Tri::Never
    }
}

/// The packets of one `--rule` drop rule to `to` (its IPv4 destination), arriving on `iif`; a
/// client's own port when drawn at random is any of the dynamic ports
fn packets_of(rule: &Rule, to: Ipv4Addr, iif: &str, random_port: bool) -> Packets {
    let any = 0..=u32::MAX;
    let (saddr, sport) = match rule.from {
        // the rules to an IPv4 address come from IPv4 addresses
        Some(SocketAddr::V4(from)) => {
            let (a, p) = (u32::from(*from.ip()), u32::from(from.port()));
            (a..=a, p..=p)
        }
        _ => (any.clone(), 0..=u32::from(u16::MAX)),
    };
    let to = u32::from(to);
    let dport = if random_port {
        u32::from(*DYNAMIC_PORTS.start())..=u32::from(*DYNAMIC_PORTS.end())
    } else {
        u32::from(*rule.ports.start())..=u32::from(*rule.ports.end())
    };
    Packets {
        protocol: rule.protocol,
        saddr,
        daddr: to..=to,
        sport,
        dport,
        dev: iif.to_owned(),
        outgoing: false,
        flags: Vec::new(),
    }
}

/// The RSTs the kernel sends back for `packets` (TCP), out of the device they came in on
fn rsts_for(packets: &Packets) -> Packets {
    Packets {
        protocol: Protocol::Tcp,
        saddr: packets.daddr.clone(),
        daddr: packets.saddr.clone(),
        sport: packets.dport.clone(),
        dport: packets.sport.clone(),
        dev: packets.dev.clone(),
        outgoing: true,
        flags: RST_FLAGS.to_vec(),
    }
}

/// The place of the first rule that drops all of the packets, past the chains that decide some
/// of them otherwise
fn dropped_by(chains: &[Decided]) -> Option<&str> {
    let mut left = Tri::Always;
    for c in chains {
        for o in &c.outcomes {
            let share = o.share.and(left);
            if o.fate == Fate::Drop && share == Tri::Always {
                return Some(&o.place);
            }
        }
        left = left.minus(decided(c));
        if left == Tri::Never {
            return None;
        }
    }
    None
}

/// Which share of the packets a chain decides for good: an accept ends that chain only, and the
/// next ones still see the packets
fn decided(c: &Decided) -> Tri {
    c.outcomes
        .iter()
        .filter(|o| o.fate != Fate::Accept)
        .fold(Tri::Never, |acc, o| match (acc, o.share) {
            (Tri::Always, _) | (_, Tri::Always) => Tri::Always,
            (Tri::Maybe, _) | (_, Tri::Maybe) => Tri::Maybe,
            _ => Tri::Never,
        })
}

/// `the server's segments (tcp from 198.18.23.2:18081 to 198.18.22.2)`, and the like
fn describe(rule: &Rule, client: bool, random_port: bool) -> String {
    let ports = if random_port {
        String::new()
    } else if rule.ports.start() == rule.ports.end() {
        format!(":{}", rule.ports.start())
    } else {
        format!(":{}-{}", rule.ports.start(), rule.ports.end())
    };
    match (client, rule.from) {
        (true, Some(from)) => format!(
            "the server's segments ({} from {from} to {}{ports})",
            rule.protocol, rule.to
        ),
        (_, None) if rule.ports.start() == rule.ports.end() => format!(
            "the clients' segments ({} to {}{ports})",
            rule.protocol, rule.to
        ),
        _ => format!(
            "replies to NAT mappings ({} to {}{ports})",
            rule.protocol, rule.to
        ),
    }
}

/// What the kernel answers packets of `protocol` with when nothing owns them
fn answer(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "RSTs",
        Protocol::Udp => "ICMP port unreachables",
    }
}

/// Whether chain `c` runs before `--rule`'s drop: `Always`, `Maybe` (same priority, order not
/// defined) or `Never`
fn before_ours(c: &Decided, backend: Option<Backend>) -> Tri {
    if c.hook == 0 || c.prio < 0 {
        Tri::Always
    } else if c.prio > 0 || (c.iptables_input && backend == Some(Backend::Iptables)) {
        Tri::Never
    } else {
        Tri::Maybe
    }
}

/// The findings for the packets of each of `plan`'s rules
pub(super) fn check(
    report: &mut Report,
    settings: &Settings,
    devices: &[DeviceConfig],
    plan: &Plan,
    backend: Option<Backend>,
) {
    if std::fs::read_to_string(LEGACY_TABLES).is_ok_and(|t| !t.trim().is_empty()) {
        report.warn(
            "rules",
            "legacy iptables tables are loaded; their rules are not inspected \
             (`iptables-legacy-save` lists them)",
        );
    }
    let ruleset = match run("nft", &["-j", "list", "ruleset"], None)
        .map_err(|e| e.to_string())
        .and_then(|json| Ruleset::parse(&json))
    {
        Ok(r) => r,
        Err(e) => {
            return report.warn(
                "rules",
                format!("cannot read this host's firewall rules, so they are not inspected: {e}"),
            );
        }
    };
    let client = matches!(settings, Settings::Client(_));
    let random_port = client && settings.common().port == 0;
    let rule = settings.common().rule && backend.is_some();
    for r in &plan.rules {
        let IpAddr::V4(to) = r.to else {
            continue;
        };
        let iif = devices
            .iter()
            .find(|d| d.addr == Some(to))
            .map_or("", |d| d.name.as_str());
        let packets = packets_of(r, to, iif, random_port);
        let what = describe(r, client, random_port);
        let chains = ruleset.decide(&packets);
        // without --rule, a drop of the kernel's RSTs on their way out also keeps the peer safe
        let rsts = ruleset.decide(&rsts_for(&packets));
        let rsts_dropped = match r.protocol {
            Protocol::Tcp if !rule => dropped_by(&rsts),
            _ => None,
        };
        let judged = judge(
            &chains,
            &what,
            answer(r.protocol),
            rule,
            backend,
            rsts_dropped,
        );
        for (level, text) in judged {
            report.add(level, "rules", text);
        }
    }
}

/// The findings for one kind of packets over the chains that see them, in order
fn judge(
    chains: &[Decided],
    what: &str,
    answer: &str,
    rule: bool,
    backend: Option<Backend>,
    rsts_dropped: Option<&str>,
) -> Vec<(super::Level, String)> {
    use super::Level;
    let mut out = Vec::new();
    let mut left = Tri::Always;
    let mut dropped: Option<&str> = None;
    let mut may_drop: Option<&str> = None;
    for c in chains {
        let first = if rule {
            before_ours(c, backend)
        } else {
            Tri::Always
        };
        for o in &c.outcomes {
            let share = o.share.and(left);
            if share == Tri::Never {
                continue;
            }
            let sure = share.and(first);
            let (fail, may) = match sure {
                Tri::Always => (Level::Fail, ""),
                _ => (Level::Warn, "may "),
            };
            let before = if rule { " before --rule's drop" } else { "" };
            match &o.fate {
                Fate::Reject(how) if first != Tri::Never => out.push((
                    fail,
                    format!(
                        "{}: {may}answer {what} with {how}{before}, which resets the peer",
                        o.place
                    ),
                )),
                Fate::Redirect(how) => out.push((
                    fail,
                    format!(
                        "{}: {may}redirect ({how}) {what}, which the kernel then answers \
                         elsewhere, past --rule's drop",
                        o.place
                    ),
                )),
                Fate::Drop if share == Tri::Always => dropped = Some(&o.place),
                Fate::Drop => may_drop = may_drop.or(Some(&o.place)),
                _ => {}
            }
        }
        left = left.minus(decided(c));
        if left == Tri::Never {
            break;
        }
    }
    if out.iter().any(|(l, _)| *l == Level::Fail) {
        return out;
    }
    out.push(match (rule, dropped.or(rsts_dropped), may_drop) {
        (false, Some(place), _) if dropped.is_none() => (
            Level::Ok,
            format!(
                "{place} drops the kernel's RSTs answering {what}, so they do not reach the peer"
            ),
        ),
        (true, _, _) => (
            Level::Ok,
            format!("--rule will drop {what}, and no rule here answers them first"),
        ),
        (false, Some(place), _) => (
            Level::Ok,
            format!("{place} drops {what}, so the kernel does not answer them (as --rule would)"),
        ),
        (false, None, Some(place)) => (
            Level::Warn,
            format!(
                "only some of {what} may be dropped ({place}): the kernel answers the rest with \
                 {answer}; add --rule"
            ),
        ),
        (false, None, None) => (
            Level::Fail,
            format!(
                "nothing here drops {what}: the kernel will answer them with {answer}, which \
                 reset the peer; add --rule"
            ),
        ),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ruleset of a host with iptables-nft rules and an nftables table, as `nft -j` lists it
    const RULESET: &str = r#"{"nftables": [
      {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
      {"table": {"family": "ip", "name": "filter", "handle": 1}},
      {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
      {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "198.18.23.2"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "sport"}}, "right": 18081}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
      {"chain": {"family": "ip", "table": "filter", "name": "OUTPUT", "handle": 4, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}},
      {"rule": {"family": "ip", "table": "filter", "chain": "OUTPUT", "handle": 5, "expr": [{"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, "rst"]}, "right": "rst"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
      {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 6, "expr": [{"xt": {"type": "match", "name": "conntrack"}}, {"drop": null}]}},
      {"table": {"family": "ip", "name": "nat", "handle": 2}},
      {"chain": {"family": "ip", "table": "nat", "name": "PREROUTING", "handle": 1, "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}},
      {"rule": {"family": "ip", "table": "nat", "chain": "PREROUTING", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 18090}}, {"xt": {"type": "target", "name": "DNAT"}}]}},
      {"table": {"family": "inet", "name": "fw", "handle": 3}},
      {"chain": {"family": "inet", "table": "fw", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}},
      {"chain": {"family": "inet", "table": "fw", "name": "sub", "handle": 2}},
      {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": {"set": [18081, 18082]}}}, {"reject": {"type": "tcp reset"}}]}},
      {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "198.18.0.0", "len": 15}}}}, {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}}, "right": {"range": [49152, 65535]}}}, {"reject": {"type": "icmp", "expr": "port-unreachable"}}]}},
      {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 7, "expr": [{"jump": {"target": "sub"}}]}},
      {"rule": {"family": "inet", "table": "fw", "chain": "sub", "handle": 8, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "wan*"}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, {"drop": null}]}}
    ]}"#;

    fn tcp_to(port: u16, iif: &str) -> Packets {
        Packets {
            protocol: Protocol::Tcp,
            saddr: 0..=u32::MAX,
            daddr: u32::from(Ipv4Addr::new(198, 18, 23, 2))
                ..=u32::from(Ipv4Addr::new(198, 18, 23, 2)),
            sport: 0..=65535,
            dport: u32::from(port)..=u32::from(port),
            dev: iif.into(),
            outgoing: false,
            flags: Vec::new(),
        }
    }

    #[test]
    fn chains_in_kernel_order_with_their_outcomes() {
        let rs = Ruleset::parse(RULESET).unwrap();
        let chains = rs.decide(&tcp_to(18081, "wan0"));
        let names: Vec<&str> = chains.iter().map(|c| c.chain.as_str()).collect();
        assert_eq!(
            names,
            [
                "table ip nat, chain PREROUTING",
                "table inet fw, chain input",
                "table ip filter, chain INPUT"
            ]
        );
        // the DNAT rule is for another port
        assert!(chains[0].outcomes.is_empty());
        // the reject takes them all: nothing reaches the jump
        assert_eq!(
            chains[1].outcomes,
            [Outcome {
                fate: Fate::Reject("a TCP reset".into()),
                share: Tri::Always,
                place: "table inet fw, chain input, rule handle 4".into()
            }]
        );
        // from any source: the drop for one source and the conntrack drop may apply
        assert_eq!(chains[2].outcomes.len(), 2);
        assert!(chains[2].outcomes.iter().all(|o| o.share == Tri::Maybe));
    }

    #[test]
    fn follows_jumps_and_interface_patterns() {
        let rs = Ruleset::parse(RULESET).unwrap();
        let fw = |p: &Packets| rs.decide(p).remove(1).outcomes;
        let on_wan = fw(&tcp_to(18083, "wan0"));
        assert_eq!(on_wan.len(), 1);
        assert_eq!(
            (&on_wan[0].fate, on_wan[0].share),
            (&Fate::Drop, Tri::Always)
        );
        assert_eq!(on_wan[0].place, "table inet fw, chain sub, rule handle 8");
        assert!(fw(&tcp_to(18083, "lan0")).is_empty());
    }

    #[test]
    fn judges_rejects_redirects_and_drops() {
        use super::super::Level;
        let rs = Ruleset::parse(RULESET).unwrap();
        let judged = |port, rule| {
            judge(
                &rs.decide(&tcp_to(port, "lan0")),
                "them",
                "RSTs",
                rule,
                Some(Backend::Iptables),
                None,
            )
        };
        let rejected = judged(18081, true);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, Level::Fail);
        assert!(
            rejected[0]
                .1
                .contains("answer them with a TCP reset before --rule's drop"),
            "{rejected:?}"
        );
        let redirected = judged(18090, true);
        assert_eq!(redirected[0].0, Level::Fail);
        assert!(
            redirected[0]
                .1
                .starts_with("table ip nat, chain PREROUTING, rule handle 2: redirect (DNAT)")
        );
        assert_eq!(
            judged(18083, true),
            [(
                Level::Ok,
                "--rule will drop them, and no rule here answers them first".to_owned()
            )]
        );
        let without = judged(18083, false);
        assert_eq!(
            without[0].0,
            Level::Warn,
            "only conditional drops: {without:?}"
        );
        let dropped = judge(
            &rs.decide(&tcp_to(18083, "wan0")),
            "them",
            "RSTs",
            false,
            None,
            None,
        );
        assert_eq!(dropped[0].0, Level::Ok);
        assert!(
            dropped[0]
                .1
                .starts_with("table inet fw, chain sub, rule handle 8 drops them")
        );
        assert_eq!(
            judge(&[], "them", "RSTs", false, None, None)[0].0,
            Level::Fail
        );
        // the kernel's RSTs dropped on their way out: quiet enough without --rule
        let rsts = rs.decide(&rsts_for(&tcp_to(18083, "lan0")));
        let place = dropped_by(&rsts).expect("the OUTPUT drop of RSTs");
        assert_eq!(place, "table ip filter, chain OUTPUT, rule handle 5");
        let spared = judge(&[], "them", "RSTs", false, None, Some(place));
        assert_eq!(
            spared,
            [(
                Level::Ok,
                "table ip filter, chain OUTPUT, rule handle 5 drops the kernel's RSTs answering \
                 them, so they do not reach the peer"
                    .to_owned()
            )]
        );
        // segments that are not RSTs pass it
        let mut acks = rsts_for(&tcp_to(18083, "lan0"));
        acks.flags = vec![0x10];
        assert_eq!(dropped_by(&rs.decide(&acks)), None);
        let mut unknown = acks;
        unknown.flags.clear();
        assert_eq!(rs.decide(&unknown)[0].outcomes[0].share, Tri::Maybe);
    }

    #[test]
    fn reads_tcp_flags() {
        let p = |flags: Vec<u32>| Packets {
            flags,
            outgoing: true,
            ..tcp_to(1, "wan0")
        };
        let m = |mask: Value, value: Value| serde_json::json!({"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, mask]}, "right": value});
        let syn_rst = serde_json::json!({"|": ["syn", "rst"]});
        assert_eq!(
            match_one(&m(syn_rst.clone(), "rst".into()), &p(RST_FLAGS.to_vec())),
            Tri::Always
        );
        assert_eq!(
            match_one(&m(syn_rst, "syn".into()), &p(RST_FLAGS.to_vec())),
            Tri::Never
        );
        assert_eq!(
            match_one(&m("ack".into(), "ack".into()), &p(RST_FLAGS.to_vec())),
            Tri::Maybe
        );
        let plain = serde_json::json!({"op": "in", "left": {"payload": {"protocol": "tcp", "field": "flags"}}, "right": "rst"});
        assert_eq!(match_one(&plain, &p(RST_FLAGS.to_vec())), Tri::Always);
        let oif =
            serde_json::json!({"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "wan0"});
        assert_eq!(match_one(&oif, &p(Vec::new())), Tri::Always);
        assert_eq!(match_one(&oif, &tcp_to(1, "wan0")), Tri::Maybe);
    }

    #[test]
    fn compares_ranges_and_prefixes() {
        let set = ranges(&serde_json::json!({"set": [{"range": [1, 5]}, 6, {"prefix": {"addr": "0.0.0.8", "len": 30}}]}), Kind::Port).unwrap();
        assert_eq!(compare(&(2..=6), &set), Tri::Always);
        assert_eq!(compare(&(8..=11), &set), Tri::Always);
        assert_eq!(compare(&(6..=7), &set), Tri::Maybe);
        assert_eq!(compare(&(12..=20), &set), Tri::Never);
        assert_eq!(ranges(&serde_json::json!({"map": 1}), Kind::Port), None);
        assert_eq!(Tri::Always.minus(Tri::Maybe), Tri::Maybe);
        assert_eq!(Tri::Maybe.minus(Tri::Always), Tri::Never);
    }
}
