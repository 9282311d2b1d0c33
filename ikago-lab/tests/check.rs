//! `check client ...` and `check server ...` in the lab (root; skipped otherwise): every finding
//! triggered in a namespace set up for it, with ikago-async (the check is shared code), a smoke
//! run of ikago-sync's, and as `nobody` with and without capabilities. Each check must leave the
//! firewall rules, the sysctls and GRO as they were.

use std::net::{SocketAddrV4, TcpListener};

use ikago_lab::addr::{CLIENT_WAN, SERVER_DST, SERVER_WAN, SERVER2_WAN, TUNNEL_PORT};
use ikago_lab::unprivileged::{Grant, Unprivileged};
use ikago_lab::{
    ClientSite, Daemon, FirewallPolicy, Host, Lab, Netns, Runner, STOP_TIMEOUT, TunnelOptions,
};

/// What one check printed, and its exit code
struct Checked {
    code: Option<i32>,
    lines: Vec<String>,
}

impl Checked {
    /// The finding of `level` (`ok`, `warn`, `FAIL`) on `topic` that contains `needle`
    fn find(&self, level: &str, topic: &str, needle: &str) -> Option<&String> {
        let head = format!("{level:<4}  {topic}: ");
        self.lines
            .iter()
            .find(|l| l.starts_with(&head) && l.contains(needle))
    }

    /// Asserts that finding, showing every line when it is missing
    fn has(&self, level: &str, topic: &str, needle: &str) -> &String {
        self.find(level, topic, needle).unwrap_or_else(|| {
            panic!(
                "no `{level} {topic}: ...{needle}...` among:\n{}",
                self.lines.join("\n")
            )
        })
    }

    /// How many findings have `level`
    fn count(&self, level: &str) -> usize {
        let head = format!("{level:<4}  ");
        self.lines.iter().filter(|l| l.starts_with(&head)).count()
    }

    /// Asserts the exit code: 0 with no failure, 1 with some
    fn exits(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code of:\n{}",
            self.lines.join("\n")
        );
        assert_eq!(
            code == 1,
            self.count("FAIL") > 0,
            "{}",
            self.lines.join("\n")
        );
        let last = self.lines.last().expect("a closing line");
        assert!(last.starts_with("check: "), "{last}");
        self
    }
}

/// Runs `RUNNER check ARGS` as root in `host`'s namespace
fn check(lab: &Lab, host: Host, runner: Runner, args: &[String]) -> Checked {
    let binary = runner.binary().expect("the runner's binary");
    let mut all = vec!["check"];
    all.extend(args.iter().map(String::as_str));
    let out = lab.ns(host).attempt(&binary, &all).expect("check runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("--- check {}\n{text}", args.join(" "));
    Checked {
        code: out.status.code(),
        lines: text.lines().map(str::to_owned).collect(),
    }
}

/// The client's options as the lab runs them, `--rule` included or not
fn client_args(rule: bool, extra: &[&str]) -> Vec<String> {
    let options = TunnelOptions {
        extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        ..TunnelOptions::default()
    };
    options
        .client_args(ClientSite::Main)
        .into_iter()
        .filter(|a| rule || a != "--rule")
        .collect()
}

/// The server's options as the lab runs them (with `--rule`)
fn server_args(extra: &[&str]) -> Vec<String> {
    TunnelOptions {
        extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        ..TunnelOptions::default()
    }
    .server_args()
}

/// Starts the server of `runner` and waits until its rules are in place: from then on it answers
/// handshakes
fn serve(lab: &Lab, runner: Runner) -> Daemon {
    let server = lab
        .start_server(runner, &TunnelOptions::default())
        .expect("server starts");
    server
        .wait_for_line("Install firewall rules", 0, STOP_TIMEOUT)
        .expect("the server is ready");
    server
}

/// What a check must not change on `host`: its rules, forwarding and GRO on its devices
fn state(lab: &Lab, host: Host) -> (Vec<String>, String, String) {
    let ns = lab.ns(host);
    let gro = ns
        .exec(
            "sh",
            &[
                "-c",
                "for d in /sys/class/net/*; do ethtool -k ${d##*/} | grep generic-receive; done",
            ],
        )
        .expect("ethtool");
    (
        lab.firewall_rules(host).expect("rules"),
        ns.read_sysctl("net.ipv4.ip_forward").expect("sysctl"),
        gro,
    )
}

fn nft(ns: &Netns, script: &str) {
    ns.exec_with_input("nft", &["-f", "-"], script)
        .unwrap_or_else(|e| panic!("nft -f: {e}"));
}

#[test]
fn client_all_well_then_kernel_settings() {
    if !ikago_lab::require_root() {
        return;
    }
    let runner = Runner::Async;
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let _server = serve(&lab, runner);
    let c = lab.ns(Host::Client);
    let before = state(&lab, Host::Client);

    let r = check(&lab, Host::Client, runner, &client_args(true, &[]));
    r.exits(0);
    r.has("ok", "privileges", "root: enough to capture and for --rule");
    r.has(
        "ok",
        "devices",
        "lan0 [02:00:00:00:15:01] 198.18.21.1/24 listens",
    );
    r.has(
        "ok",
        "devices",
        "198.18.22.2/24 is upstream, to gateway 198.18.22.1",
    );
    r.has("ok", "offloads", "GRO and LRO are off on lan0, wan0");
    r.has("ok", "ip_forward", "0: only the tunnel carries");
    r.has("ok", "rp_filter", "off on lan0, off on wan0");
    r.has(
        "ok",
        "mtu",
        "tunnel frames up to --mtu 1500 fit the MTU 1500 of wan0",
    );
    r.has(
        "ok",
        "mtu",
        "packets toward the local side up to --fragment 1500 fit the MTU 1500 of lan0",
    );
    r.has("ok", "firewall", "--rule will use iptables (nf_tables)");
    r.has(
        "ok",
        "rules",
        "--rule will drop the server's segments (tcp from 198.18.23.2:18081 to 198.18.22.2)",
    );
    r.has(
        "ok",
        "handshake",
        "the server 198.18.23.2:18081 answered a FakeTCP handshake in",
    );
    assert_eq!(r.count("warn"), 0, "{}", r.lines.join("\n"));

    // GRO and forwarding on, rp_filter strict: what --rule handles, then what it would
    c.exec("ethtool", &["-K", "lan0", "gro", "on"])
        .expect("GRO on");
    c.sysctl("net.ipv4.ip_forward", "1").expect("forwarding on");
    c.sysctl("net.ipv4.conf.wan0.rp_filter", "1")
        .expect("rp_filter");
    let changed = state(&lab, Host::Client);
    let r = check(&lab, Host::Client, runner, &client_args(true, &[]));
    r.exits(0);
    r.has(
        "ok",
        "offloads",
        "GRO is on on lan0; --rule turns it off while running",
    );
    r.has("ok", "offloads", "GRO and LRO are off on wan0");
    r.has("ok", "ip_forward", "1; --rule turns it off while running");
    r.has(
        "ok",
        "rp_filter",
        "off on lan0, strict on wan0: it does not affect the tunnel",
    );
    let r = check(&lab, Host::Client, runner, &client_args(false, &[]));
    r.exits(1);
    r.has(
        "warn",
        "offloads",
        "GRO is on on lan0: it merges received segments before capture",
    );
    r.has(
        "warn",
        "ip_forward",
        "1: the kernel also forwards the sources' packets itself",
    );
    r.has("ok", "firewall", "--rule is off; it would use iptables");
    r.has(
        "FAIL",
        "rules",
        "nothing here drops the server's segments (tcp from 198.18.23.2:18081 to 198.18.22.2): \
         the kernel will answer them with RSTs",
    );
    assert_eq!(
        state(&lab, Host::Client),
        changed,
        "the checks changed nothing"
    );
    c.exec("ethtool", &["-K", "lan0", "gro", "off"])
        .expect("GRO off");
    c.sysctl("net.ipv4.ip_forward", "0")
        .expect("forwarding off");
    c.sysctl("net.ipv4.conf.wan0.rp_filter", "0")
        .expect("rp_filter");

    // a device MTU below --mtu
    c.ip(&["link", "set", "wan0", "mtu", "1400"]).expect("mtu");
    let r = check(&lab, Host::Client, runner, &client_args(true, &[]));
    r.exits(1);
    r.has(
        "FAIL",
        "mtu",
        "--mtu 1500 is above the MTU 1400 of wan0: larger tunnel frames cannot be sent there; give --mtu 1400",
    );
    c.ip(&["link", "set", "wan0", "mtu", "1500"]).expect("mtu");
    assert_eq!(
        state(&lab, Host::Client),
        before,
        "the checks changed nothing"
    );
}

#[test]
fn client_rules_of_others() {
    if !ikago_lab::require_root() {
        return;
    }
    let runner = Runner::Async;
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let _server = serve(&lab, runner);
    let c = lab.ns(Host::Client);

    // an nftables chain that runs before --rule's drop and answers with RSTs
    nft(
        c,
        "table inet guard {\n chain input {\n  type filter hook input priority -10; policy accept;\n  \
         ip saddr 198.18.23.2 tcp sport 18081 reject with tcp reset\n }\n}\n",
    );
    let before = state(&lab, Host::Client);
    let r = check(&lab, Host::Client, runner, &client_args(true, &[]));
    r.exits(1);
    let line = r.has(
        "FAIL",
        "rules",
        "table inet guard, chain input, rule handle ",
    );
    assert!(
        line.contains(
            "answer the server's segments (tcp from 198.18.23.2:18081 to 198.18.22.2) with a \
             TCP reset before --rule's drop, which resets the peer"
        ),
        "{line}"
    );
    assert_eq!(
        state(&lab, Host::Client),
        before,
        "the check changed nothing"
    );
    c.exec("nft", &["delete", "table", "inet", "guard"])
        .expect("delete the table");

    // a DNAT of the server's segments: --rule's drop would no longer match them
    let dnat = [
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-p",
        "tcp",
        "-s",
        "198.18.23.2",
        "--sport",
        "18081",
        "-j",
        "DNAT",
        "--to-destination",
        "198.18.22.2:80",
    ];
    c.exec("iptables", &dnat).expect("DNAT rule");
    let r = check(&lab, Host::Client, runner, &client_args(true, &[]));
    r.exits(1);
    r.has("FAIL", "rules", "chain PREROUTING, rule handle ");
    r.has("FAIL", "rules", ": redirect (DNAT) the server's segments");
    let mut undo = dnat.to_vec();
    undo[2] = "-D";
    c.exec("iptables", &undo).expect("remove the DNAT rule");

    // without --rule, a drop of the host's own keeps the kernel quiet
    let drop = [
        "-A",
        "INPUT",
        "-p",
        "tcp",
        "-s",
        "198.18.23.2",
        "--sport",
        "18081",
        "-j",
        "DROP",
    ];
    c.exec("iptables", &drop).expect("drop rule");
    let r = check(&lab, Host::Client, runner, &client_args(false, &[]));
    r.exits(0);
    r.has(
        "ok",
        "rules",
        "drops the server's segments (tcp from 198.18.23.2:18081 to 198.18.22.2), so the kernel \
         does not answer them (as --rule would)",
    );
    let mut undo = drop.to_vec();
    undo[0] = "-D";
    c.exec("iptables", &undo).expect("remove the drop rule");

    // without --rule, a drop of the kernel's RSTs on their way out spares the server
    let rsts = [
        "-A",
        "OUTPUT",
        "-p",
        "tcp",
        "--tcp-flags",
        "RST",
        "RST",
        "-j",
        "DROP",
    ];
    c.exec("iptables", &rsts).expect("RST drop rule");
    let r = check(&lab, Host::Client, runner, &client_args(false, &[]));
    r.exits(0);
    r.has("ok", "rules", "chain OUTPUT, rule handle ");
    r.has(
        "ok",
        "rules",
        "drops the kernel's RSTs answering the server's segments (tcp from 198.18.23.2:18081 to \
         198.18.22.2), so they do not reach the peer",
    );
    let mut undo = rsts.to_vec();
    undo[0] = "-D";
    c.exec("iptables", &undo).expect("remove the RST drop rule");
}

#[test]
fn client_handshake_ports_and_devices() {
    if !ikago_lab::require_root() {
        return;
    }
    let runner = Runner::Async;
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");

    // no server yet: the server host's kernel answers with a reset
    let r = check(&lab, Host::Client, runner, &client_args(true, &[]));
    r.exits(1);
    r.has(
        "FAIL",
        "handshake",
        "198.18.23.2:18081 answered the FakeTCP handshake with a reset: no IkaGo server listens",
    );
    // a server host that drops them: nothing answers the SYNs
    let s = lab.ns(Host::Server);
    let silent = ["INPUT", "-p", "tcp", "--dport", "18081", "-j", "DROP"];
    s.exec("iptables", &[&["-A"], &silent[..]].concat())
        .expect("drop rule");
    let r = check(&lab, Host::Client, runner, &client_args(true, &[]));
    r.exits(1);
    r.has("FAIL", "handshake", "no answer from 198.18.23.2:18081 to ");
    r.has("FAIL", "handshake", "SYNs within 3 s: the server is down");
    s.exec("iptables", &[&["-D"], &silent[..]].concat())
        .expect("remove the drop rule");

    let _server = serve(&lab, runner);

    // each server on its own: the first answers, the fallback (no server runs there) resets
    let mut args = client_args(true, &[]);
    let at = args.iter().position(|a| a == "-s").expect("-s") + 1;
    args[at] = format!("{SERVER_WAN}:{TUNNEL_PORT},{SERVER2_WAN}:{TUNNEL_PORT}");
    let r = check(&lab, Host::Client, runner, &args);
    r.exits(1);
    r.has(
        "ok",
        "handshake",
        "the server 198.18.23.2:18081 answered a FakeTCP handshake",
    );
    r.has(
        "FAIL",
        "handshake",
        "198.18.26.2:18081 answered the FakeTCP handshake with a reset",
    );

    // the monitor's port in use, and a fixed local port in use
    let monitor = lab
        .ns(Host::Client)
        .enter(|| TcpListener::bind("127.0.0.1:18070"))
        .expect("enter")
        .expect("a listener on the monitor's port");
    let local = lab
        .ns(Host::Client)
        .enter(|| TcpListener::bind(SocketAddrV4::new(CLIENT_WAN, 50123)))
        .expect("enter")
        .expect("a listener on the local port");
    let r = check(
        &lab,
        Host::Client,
        runner,
        &client_args(true, &["--monitor", "18070", "-p", "50123"]),
    );
    r.exits(1);
    r.has(
        "FAIL",
        "ports",
        "the monitor cannot listen on 127.0.0.1:18070",
    );
    r.has("FAIL", "ports", "local port 50123 is in use");
    drop((monitor, local));

    // the upstream link down: no carrier, and no handshake
    lab.ns(Host::WanSwitch)
        .ip(&["link", "set", "pclient", "down"])
        .expect("link down");
    let r = check(&lab, Host::Client, runner, &client_args(true, &[]));
    r.exits(1);
    r.has("FAIL", "devices", "198.18.22.2/24 is upstream");
    r.has("FAIL", "devices", "but has no carrier");
    // the lab's veth devices queue nothing, so injection bypasses the qdisc layer, and the
    // kernel refuses a frame outright on a device without carrier (ENOBUFS)
    r.has(
        "FAIL",
        "handshake",
        "cannot try it with 198.18.23.2:18081: cannot send on wan0: No buffer space available",
    );
    lab.ns(Host::WanSwitch)
        .ip(&["link", "set", "pclient", "up"])
        .expect("link up");

    // a device that does not exist here
    let r = check(
        &lab,
        Host::Client,
        runner,
        &client_args(true, &[])
            .into_iter()
            .map(|a| if a == "wan0" { "wan9".to_owned() } else { a })
            .collect::<Vec<_>>(),
    );
    r.exits(1);
    r.has("FAIL", "devices", "wan9");
    // bad input stays exit code 2
    let r = check(
        &lab,
        Host::Client,
        runner,
        &["client".to_owned(), "-s".to_owned()],
    );
    assert_eq!(r.code, Some(2), "{}", r.lines.join("\n"));
}

#[test]
fn server_findings() {
    if !ikago_lab::require_root() {
        return;
    }
    let runner = Runner::Async;
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let s = lab.ns(Host::Server);
    s.sysctl("net.ipv4.ip_local_port_range", "32768 60999")
        .expect("the usual ephemeral ports");
    let before = state(&lab, Host::Server);

    let r = check(&lab, Host::Server, runner, &server_args(&[]));
    r.exits(0);
    r.has("ok", "ports", "tunnel port 18081 is free");
    r.has("ok", "devices", &format!("{SERVER_WAN}/24 listens"));
    r.has(
        "ok",
        "devices",
        &format!("{SERVER_DST}/24 is upstream, to gateway 198.18.24.2"),
    );
    r.has(
        "warn",
        "nat ports",
        "49152-65535 overlap the kernel's ephemeral ports 32768-60999: this host's own \
         connections there get no replies, since --rule drops them; narrow them with `sysctl -w \
         net.ipv4.ip_local_port_range=\"32768 49151\"`",
    );
    r.has(
        "ok",
        "rules",
        "--rule will drop the clients' segments (tcp to 198.18.23.2:18081)",
    );
    r.has(
        "ok",
        "rules",
        "--rule will drop replies to NAT mappings (udp to 198.18.24.1:49152-65535)",
    );
    assert!(
        r.find("ok", "handshake", "").is_none(),
        "a server has no handshake to try"
    );

    s.sysctl("net.ipv4.ip_local_port_range", "32768 49151")
        .expect("narrower ephemeral ports");
    nft(
        s,
        "table inet guard {\n chain input {\n  type filter hook input priority -5; policy accept;\n  \
         udp dport 40000-65535 reject\n }\n}\n",
    );
    s.ip(&["link", "set", "dst0", "mtu", "1400"]).expect("mtu");
    let r = check(&lab, Host::Server, runner, &server_args(&[]));
    r.exits(1);
    r.has(
        "ok",
        "nat ports",
        "49152-65535 are clear of the kernel's ephemeral ports 32768-49151",
    );
    let line = r.has(
        "FAIL",
        "rules",
        "table inet guard, chain input, rule handle ",
    );
    assert!(
        line.contains(
            "answer replies to NAT mappings (udp to 198.18.24.1:49152-65535) with an ICMP \
             port-unreachable before --rule's drop"
        ),
        "{line}"
    );
    r.has(
        "FAIL",
        "mtu",
        "--fragment 1500 is above the MTU 1400 of dst0: larger packets toward the local side cannot be sent there",
    );
    r.has("ok", "rules", "--rule will drop the clients' segments");
    s.exec("nft", &["delete", "table", "inet", "guard"])
        .expect("delete the table");
    s.ip(&["link", "set", "dst0", "mtu", "1500"]).expect("mtu");
    s.sysctl("net.ipv4.ip_local_port_range", "32768 60999")
        .expect("the usual ephemeral ports");
    assert_eq!(
        state(&lab, Host::Server),
        before,
        "the checks changed nothing"
    );

    // a running server holds the port
    let server = serve(&lab, runner);
    let r = check(&lab, Host::Server, runner, &server_args(&[]));
    r.exits(1);
    r.has(
        "FAIL",
        "ports",
        &format!(
            "tunnel port {TUNNEL_PORT} is in use by ikago-async (pid {})",
            server.pid()
        ),
    );
}

/// Inner IPv6: a client's IPv6 sources with IPv6 forwarding and their gateways, a server's NAT66
/// address (or none)
#[test]
fn ipv6_findings() {
    if !ikago_lab::require_root() {
        return;
    }
    let runner = Runner::Async;
    let lab = Lab::build_dual_stack(FirewallPolicy::default()).expect("lab builds");
    // the findings of the settings and the host; the handshake is another test's concern
    let dual = TunnelOptions::dual_stack("check-pw");
    let r = check(
        &lab,
        Host::Client,
        runner,
        &dual.client_args(ClientSite::Main),
    );
    r.has(
        "ok",
        "ipv6",
        "forwarding 0: only the tunnel carries the IPv6 sources' packets",
    );
    r.has(
        "ok",
        "ipv6",
        "the IPv6 sources' gateway can be fd00:21::1 on lan0, fd00:21::fe (published)",
    );
    let c = lab.ns(Host::Client);
    c.sysctl("net.ipv6.conf.all.forwarding", "1")
        .expect("forwarding on");
    let without_rule: Vec<String> = dual
        .client_args(ClientSite::Main)
        .into_iter()
        .filter(|a| a != "--rule")
        .collect();
    let r = check(&lab, Host::Client, runner, &without_rule);
    r.has(
        "warn",
        "ipv6",
        "forwarding 1: the kernel also forwards the IPv6 sources' packets itself",
    );
    c.sysctl("net.ipv6.conf.all.forwarding", "0")
        .expect("forwarding off");
    let r = check(&lab, Host::Server, runner, &server_args(&[]));
    r.has(
        "ok",
        "ipv6",
        "inner IPv6 from ikago2 clients is NATed onto 2001:db8:24::1 on dst0, to gateway \
         2001:db8:24::2",
    );
    // an IPv4-only client says nothing of IPv6; a server without IPv6 says it drops it
    let r = check(&lab, Host::Client, runner, &client_args(true, &[]));
    assert!(r.find("ok", "ipv6", "").is_none(), "{}", r.lines.join("\n"));
    lab.ns(Host::Server)
        .ip(&["-6", "addr", "flush", "dev", "dst0", "scope", "global"])
        .expect("flush");
    let r = check(&lab, Host::Server, runner, &server_args(&[]));
    r.has(
        "ok",
        "ipv6",
        "dst0 has no global IPv6 address: inner IPv6 from clients is dropped (no_ipv6)",
    );
}

#[test]
fn unprivileged_check() {
    if !ikago_lab::require_root() {
        return;
    }
    let runner = Runner::Async;
    let copies = Unprivileged::prepare(runner).expect("copies of the binary");
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    let _server = serve(&lab, runner);
    let run = |grant| {
        let mut args = vec!["check".to_owned()];
        args.extend(client_args(true, &[]));
        let mut d = copies
            .spawn(lab.ns(Host::Client), "check", grant, &args)
            .expect("check starts");
        let status = d.wait_exit(STOP_TIMEOUT).expect("check ends");
        let lines = d.lines();
        println!("--- {grant:?}\n{}", lines.join("\n"));
        Checked {
            code: status.code(),
            lines,
        }
    };
    let r = run(Grant::File);
    r.exits(0);
    r.has(
        "ok",
        "privileges",
        "uid 65534 with CAP_NET_RAW, CAP_NET_ADMIN: enough to capture and for --rule",
    );
    r.has("ok", "rules", "--rule will drop the server's segments");
    r.has("ok", "handshake", "answered a FakeTCP handshake");
    let r = run(Grant::Nothing);
    r.exits(1);
    r.has(
        "FAIL",
        "privileges",
        "uid 65534 without network capabilities: capturing needs CAP_NET_RAW and --rule \
         CAP_NET_ADMIN, which this process lacks",
    );
    r.has("warn", "rules", "cannot read this host's firewall rules");
    r.has(
        "warn",
        "handshake",
        "not tried with 198.18.23.2:18081: capturing needs CAP_NET_RAW",
    );
}

#[test]
fn sync_smoke() {
    if !ikago_lab::require_root() {
        return;
    }
    let runner = Runner::Sync;
    let lab = Lab::build(FirewallPolicy::default()).expect("lab builds");
    lab.ns(Host::Server)
        .sysctl("net.ipv4.ip_local_port_range", "32768 49151")
        .expect("narrower ephemeral ports");
    let r = check(&lab, Host::Server, runner, &server_args(&[]));
    r.exits(0);
    assert_eq!(r.count("warn"), 0, "{}", r.lines.join("\n"));
    let _server = serve(&lab, runner);
    let r = check(&lab, Host::Client, runner, &client_args(true, &[]));
    r.exits(0);
    r.has(
        "ok",
        "handshake",
        "the server 198.18.23.2:18081 answered a FakeTCP handshake in",
    );
}
