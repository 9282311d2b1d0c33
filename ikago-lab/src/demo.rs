//! The demo: a LAN host's DNS, UDP and ping blocked by the firewall, then carried by the tunnel

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use crate::addr::*;
use crate::probe::{dns, ping, tcp, udp};
use crate::{ClientSite, FirewallPolicy, Host, Lab, Result, Runner, TunnelOptions, stop};

/// Method and password of the demo's tunnel
const METHOD: &str = "aes-256-gcm";
const PASSWORD: &str = "ikago-lab-demo";
/// How long each blocked attempt waits
const BLOCKED_WAIT: Duration = Duration::from_millis(800);
/// How long each tunnelled attempt waits
const WAIT: Duration = Duration::from_secs(2);

/// Runs the demo with `runner`, printing every step and figure; the lab is torn down at the end
pub fn run(runner: Runner) -> Result<()> {
    let started = Instant::now();
    println!("== building the lab (namespaces, bridges, firewall, destination services)");
    let lab = Lab::build(FirewallPolicy::default())?;
    println!(
        "   lab {} up in {:.1} s",
        lab.id(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "   host A {HOST_A} (gateway {CLIENT_LAN} = the client), host B {HOST_B} (gateway {PUBLISHED_GATEWAY}, owned by nobody)"
    );
    println!(
        "   client {CLIENT_WAN} -> firewall {FIREWALL_INSIDE}|{FIREWALL_OUTSIDE} (drops UDP and ICMP, strict conntrack) -> server {SERVER_WAN}|{SERVER_DST} -> destination {DESTINATION}"
    );

    println!("== without the tunnel (kernel forwarding on, straight through the firewall)");
    lab.set_direct_routing(true)?;
    let a = lab.ns(Host::HostA);
    let echo = SocketAddrV4::new(DESTINATION, ECHO_PORT);
    let dns_server = SocketAddrV4::new(DESTINATION, DNS_PORT);
    let name = format!("echo.{DNS_DOMAIN}");
    report(
        "host A  TCP echo",
        tcp::echo(a, echo, b"hello\n", BLOCKED_WAIT).map(ms),
    );
    report(
        "host A  DNS",
        dns::query(a, dns_server, &name, BLOCKED_WAIT).map(|(ip, t)| format!("{ip} in {}", ms(t))),
    );
    report(
        "host A  UDP echo 20 B",
        udp::echo(a, echo, 20, BLOCKED_WAIT).map(ms),
    );
    report("host A  ping", pings(&lab, Host::HostA, 3));
    lab.set_direct_routing(false)?;

    println!(
        "== the tunnel: ikago-{} server and client, {METHOD}",
        runner.name()
    );
    let tunnel = TunnelOptions::encrypted(METHOD, PASSWORD);
    let mut server = lab.start_server(runner, &tunnel)?;
    let connecting = Instant::now();
    let mut client = lab.start_client(runner, ClientSite::Main, &tunnel)?;
    println!("   client connected in {}", ms(connecting.elapsed()));
    for (host, label) in [(Host::HostA, "host A"), (Host::HostB, "host B")] {
        let ns = lab.ns(host);
        let answer = dns::query(ns, dns_server, &name, WAIT)
            .map(|(ip, t)| format!("{name} = {ip} in {}", ms(t)));
        report(&format!("{label}  DNS"), answer);
        for size in [20, 1300, 1472] {
            report(
                &format!("{label}  UDP echo {size} B"),
                udp::echo_retry(ns, echo, size, WAIT, 2).map(ms),
            );
        }
        report(&format!("{label}  ping"), pings(&lab, host, 5));
    }

    println!("== stopping (SIGTERM) and tearing down");
    for (name, daemon) in [("client", &mut client), ("server", &mut server)] {
        match stop(daemon) {
            Ok(status) => println!("   {name} exit: {status}"),
            Err(e) => println!("   {name}: {e} (killed)"),
        }
    }
    let id = lab.id().to_owned();
    drop(lab);
    println!(
        "   namespaces of {id} left: {}",
        crate::namespaces_with_prefix(&id).len()
    );
    Ok(())
}

fn pings(lab: &Lab, host: Host, count: u32) -> Result<String> {
    let report = ping::ping(
        lab.ns(host),
        DESTINATION,
        count,
        Duration::from_millis(200),
        Duration::from_secs(1),
    )?;
    match report.median_ms() {
        Some(median) => Ok(format!(
            "{}/{} replies, median {median:.3} ms",
            report.received(),
            report.sent
        )),
        None => Err(crate::LabError::Check(format!("0/{} replies", report.sent))),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn report(what: &str, outcome: Result<String>) {
    match outcome {
        Ok(figure) => println!("   {what:<24} ok       {figure}"),
        Err(e) => println!("   {what:<24} BLOCKED  ({e})"),
    }
}
