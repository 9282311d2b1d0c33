//! `--rule` in a throwaway network namespace (root only): both backends install exactly our
//! chain or table (with its ip6tables twin for the NAT66 rule), turn IPv4 and IPv6 forwarding
//! and GRO off, and leave nothing behind, whether the guard is removed explicitly or dropped on
//! an error path

use ikago_host::firewall::rules::{Protocol, Rule};
use ikago_host::firewall::{Backend, Firewall, Plan};
use ikago_host::netns::{Netns, sh};

/// The IPv6 forwarding switch
const FORWARD6: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

fn plan() -> Plan {
    Plan {
        rules: vec![
            Rule {
                protocol: Protocol::Tcp,
                from: Some("198.18.2.2:18081".parse().unwrap()),
                to: "198.18.2.1".parse().unwrap(),
                ports: 50000..=50000,
            },
            Rule {
                protocol: Protocol::Udp,
                from: None,
                to: "198.18.2.1".parse().unwrap(),
                ports: 49152..=65535,
            },
            Rule {
                protocol: Protocol::Udp,
                from: None,
                to: "2001:db8:2::1".parse().unwrap(),
                ports: 40000..=40999,
            },
        ],
        ip_forward_off: true,
        ip6_forward_off: true,
        gro_devices: vec!["v0".into()],
        reserved_ports: vec![49152..=65535],
    }
}

/// Everything the host's firewall and knobs show, for the before/after comparison
fn snapshot() -> String {
    let text = |p: &str, a: &[&str]| {
        sh(p, a)
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    [
        text("iptables", &["-w", "-S"]),
        text("ip6tables", &["-w", "-S"]),
        text("nft", &["list", "ruleset"]),
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        std::fs::read_to_string(FORWARD6).unwrap(),
        text("ethtool", &["-k", "v0"])
            .lines()
            .filter(|l| l.contains("generic-receive"))
            .collect(),
    ]
    .join("\n")
}

fn gro_on() -> bool {
    let out = sh("ethtool", &["-k", "v0"]).unwrap();
    String::from_utf8_lossy(&out.stdout).contains("generic-receive-offload: on")
}

#[test]
fn rules_come_and_go_in_a_namespace() {
    if !ikago_host::netns::is_root() {
        eprintln!("skipped: the firewall test needs root (network namespaces, iptables, nft)");
        return;
    }
    let ns = Netns::create("fw").expect("a namespace");
    ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        .unwrap();
    ns.ip(&["addr", "add", "198.18.2.1/24", "dev", "v0"])
        .unwrap();
    ns.ip(&["link", "set", "v0", "up"]).unwrap();
    ns.exec("ethtool", &["-K", "v0", "gro", "on"]).unwrap();
    ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])
        .unwrap();
    ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"])
        .unwrap();
    ns.run(|| {
        // iptables-nft creates its table and INPUT chain on first use, and keeps them: let that
        // happen before the baseline
        for tool in ["iptables", "ip6tables"] {
            sh(tool, &["-w", "-I", "INPUT", "-j", "ACCEPT"]).unwrap();
            sh(tool, &["-w", "-D", "INPUT", "-j", "ACCEPT"]).unwrap();
        }
        let before = snapshot();
        for backend in [Backend::Iptables, Backend::Nft] {
            let fw = Firewall::install(&plan(), Some(backend)).unwrap();
            let shown = backend.show(fw.name());
            assert!(
                shown.contains("198.18.2.2"),
                "{backend:?} rules missing:\n{shown}"
            );
            assert!(
                shown.contains("49152"),
                "{backend:?} rules missing:\n{shown}"
            );
            assert!(
                shown.contains("2001:db8:2::1") && shown.contains("40000"),
                "{backend:?} IPv6 rule missing:\n{shown}"
            );
            if backend == Backend::Iptables {
                for tool in ["iptables", "ip6tables"] {
                    let input = sh(tool, &["-w", "-S", "INPUT"]).unwrap();
                    let input = String::from_utf8_lossy(&input.stdout).into_owned();
                    assert!(
                        input.contains(&format!("-A INPUT -j {}", fw.name())),
                        "{tool}: {input}"
                    );
                }
            }
            assert_eq!(
                std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
                "0\n"
            );
            assert_eq!(std::fs::read_to_string(FORWARD6).unwrap(), "0\n");
            assert!(!gro_on());
            let name = fw.name().to_owned();
            assert!(fw.remove(), "{backend:?}: removal reported a failure");
            assert_eq!(backend.show(&name), "");
            assert_eq!(snapshot(), before, "{backend:?} left something behind");

            // an error path: the guard is dropped, not removed
            drop(Firewall::install(&plan(), Some(backend)).unwrap());
            assert_eq!(
                snapshot(),
                before,
                "{backend:?} left something behind on drop"
            );
        }
        assert!(gro_on());
    })
    .expect("a thread in the namespace");
}
