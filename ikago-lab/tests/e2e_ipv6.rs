//! Inner IPv6 end to end (root; skipped otherwise), with both runners, in a dual-stack lab:
//! `--rule` drops the server's NAT66 ports with ip6tables and turns the client's IPv6
//! forwarding off, all undone when SIGTERM stops them.

use ikago_lab::addr::SERVER_DST6;
use ikago_lab::{ClientSite, FirewallPolicy, Host, Lab, Runner, TunnelOptions, stop};

/// The ikago2 password of these tests
const PASSWORD: &str = "ipv6-lab";

/// `--rule` with IPv6: the server drops its NAT66 ports in an ip6tables chain, the client with
/// IPv6 sources turns IPv6 forwarding off; after SIGTERM both exit 0 and everything is as before
pub(crate) fn sigterm_removes_the_ipv6_rules(runner: Runner) {
    let lab = Lab::build_dual_stack(FirewallPolicy::default()).expect("lab builds");
    lab.set_direct_routing(true).expect("forwarding on");
    let forwarding = || {
        lab.ns(Host::Client)
            .read_sysctl("net.ipv6.conf.all.forwarding")
            .expect("sysctl")
    };
    let before = [Host::Client, Host::Server].map(|h| lab.firewall_rules(h).expect("rules"));
    let options = TunnelOptions::dual_stack(PASSWORD);
    let mut server = lab.start_server(runner, &options).expect("server starts");
    let mut client = lab
        .start_client(runner, ClientSite::Main, &options)
        .expect("client connects");
    let during = lab.firewall_rules(Host::Server).expect("rules");
    let nat66 = format!("-d {SERVER_DST6}/128 -p udp -m udp --dport 49152:65535 -j DROP");
    assert!(
        during.iter().any(|r| r.contains(&nat66)),
        "the NAT66 ports are dropped: {during:#?}"
    );
    assert_eq!(forwarding(), "0", "the client turned IPv6 forwarding off");
    for (name, daemon) in [("client", &mut client), ("server", &mut server)] {
        let status = stop(daemon).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(status.code(), Some(0), "{name} exits 0 on SIGTERM");
    }
    let after = [Host::Client, Host::Server].map(|h| lab.firewall_rules(h).expect("rules"));
    assert_eq!(after, before, "no firewall rule is left behind");
    assert_eq!(forwarding(), "1", "IPv6 forwarding is restored");
}

macro_rules! both_runners {
    ($($name:ident),+ $(,)?) => {
        mod sync {
            $(
                #[test]
                fn $name() {
                    if ikago_lab::require_root() {
                        super::$name(ikago_lab::Runner::Sync);
                    }
                }
            )+
        }
        mod r#async {
            $(
                #[test]
                fn $name() {
                    if ikago_lab::require_root() {
                        super::$name(ikago_lab::Runner::Async);
                    }
                }
            )+
        }
    };
}

both_runners!(sigterm_removes_the_ipv6_rules);
