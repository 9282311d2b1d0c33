//! Bad input is one `error:` line and exit code 2, before any traffic (root only: each case runs in
//! an empty network namespace, so that nothing could leave even if a case went through)

use ikago_host::netns::{Netns, is_root};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

const BIN: &str = env!("CARGO_BIN_EXE_ikago-sync");

/// A scratch directory, removed when dropped (even when an assertion fails)
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary in `ns` with `args` from directory `cwd`, behind `prefix` (e.g. setpriv)
fn run(ns: &Netns, cwd: &Path, prefix: &[&str], args: &[&str]) -> Output {
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", ns.name()])
        .args(prefix)
        .arg(BIN)
        .args(args)
        .current_dir(cwd);
    c.output().expect("the binary runs")
}

/// Checks exit code 2 and a single stderr line starting with `error: ` and containing `needle`
fn fails(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line expected:\n{err}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "{needle:?} expected:\n{err}"
    );
}

#[test]
fn bad_input_is_one_line_and_exit_code_2() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces, dropping privileges)");
        return;
    }
    let ns = Netns::create("err").expect("a namespace");
    let scratch =
        Scratch(std::env::temp_dir().join(format!("ikago-errors-{}", std::process::id())));
    let dir = scratch.0.clone();
    std::fs::create_dir_all(&dir).unwrap();
    let client = ["client", "-r", "198.18.1.2", "-s", "198.19.0.1:18081"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        client.iter().chain(extra).copied().collect()
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["client", "-s", "198.19.0.1:18081"], "no sources given"),
        (with(&["--method", "rot13"]), "unknown method \"rot13\""),
        (with(&["--method", "aes-256-gcm"]), "needs a password"),
        (with(&["--gateway", "198.18.1"]), "invalid gateway address"),
        (
            vec!["client", "-r", "198.18.1.2", "-s", "198.19.0.1"],
            "invalid server",
        ),
        (
            vec!["server", "--method", "plain"],
            "server port must be given",
        ),
        (with(&["--mode", "udp"]), "unknown mode"),
        (
            with(&["--monitor", "18080", "--monitor-address", "localhost"]),
            "invalid monitor address \"localhost\"",
        ),
        (
            with(&["--monitor", "18080", "--monitor-address", "198.18.99.1"]),
            "cannot start the monitor on 198.18.99.1:18080: no local interface has this address",
        ),
        (with(&["-c", "missing.json"]), "cannot read config file"),
        (with(&["-c", "bad.json"]), "bad config file"),
        (
            with(&["--listen-devices", "nope0"]),
            "unknown listen device \"nope0\"",
        ),
        (client.to_vec(), "no usable network device"),
        (
            with(&["--record", "r.pcapng", "--record-max-mb", "0"]),
            "record-max-mb 0 out of range",
        ),
        (
            vec!["list-devices", "--record", "r.pcapng"],
            "--record and --record-max-mb record a client or a server",
        ),
    ];
    std::fs::write(
        dir.join("bad.json"),
        "{\n# a comment\n\"mtu\": \"big\"\n}\n",
    )
    .unwrap();
    for (args, needle) in &cases {
        fails(&run(&ns, &dir, &[], args), needle);
    }

    // a monitor port in use (in the runner's namespace): found before the devices are looked at
    let taken = ns
        .run(|| TcpListener::bind("127.0.0.1:0"))
        .expect("a thread in the namespace")
        .expect("a free port");
    let port = taken.local_addr().unwrap().port().to_string();
    for role in [&client[..], &["server", "-p", "18081"]] {
        let args: Vec<&str> = role.iter().copied().chain(["--monitor", &port]).collect();
        fails(
            &run(&ns, &dir, &[], &args),
            &format!("cannot start the monitor on 127.0.0.1:{port}: the address is already in use"),
        );
    }
    drop(taken);

    // a tunnel port any TCP socket holds (a listener here): found before the devices too, and
    // the holder named
    let taken = ns
        .run(|| TcpListener::bind("0.0.0.0:0"))
        .expect("a thread in the namespace")
        .expect("a free port");
    let port = taken.local_addr().unwrap().port().to_string();
    let me = std::fs::read_to_string("/proc/self/comm").unwrap();
    let holder = format!("by {} (pid {})", me.trim_end(), std::process::id());
    for (role, what) in [
        (vec!["server", "-p", &port], "tunnel port"),
        (
            client.iter().copied().chain(["-p", &port]).collect(),
            "local port",
        ),
    ] {
        fails(
            &run(&ns, &dir, &[], &role),
            &format!("{what} {port} is in use {holder}"),
        );
    }
    drop(taken);

    // a device, but no route to the server
    ns.ip(&["link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        .unwrap();
    ns.ip(&["addr", "add", "198.18.1.1/24", "dev", "v0"])
        .unwrap();
    ns.ip(&["link", "set", "v0", "up"]).unwrap();
    fails(
        &run(&ns, &dir, &[], &client),
        "no gateway: no route to 198.19.0.1",
    );

    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let out = run(&ns, &dir, &nobody, &client);
    fails(
        &out,
        "capturing needs CAP_NET_RAW, which this process lacks: run as root, or grant it with \
         `sudo setcap cap_net_raw,cap_net_admin+ep",
    );

    // no arguments: config.json in the working directory, its role from its keys
    let conf = "{\n# client\n\"sources\": [\"198.18.1.2\"],\n\"server\": \"198.19.0.1:$PORT\",\n\"method\": \"rot13\"\n}\n";
    std::fs::write(dir.join("config.json"), conf).unwrap();
    fails(&run(&ns, &dir, &[], &[]), "unknown method \"rot13\"");

    let list = run(&ns, &dir, &[], &["list-devices"]);
    assert!(list.status.success());
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("lo: 127.0.0.1/8 (up, running, loopback")
    );

    // a recording that cannot be created: found once the devices are open, before any traffic
    std::fs::remove_file(dir.join("config.json")).unwrap();
    ns.ip(&["route", "add", "default", "via", "198.18.1.254"])
        .unwrap();
    let unwritable = with(&["--record", "no-such-folder/r.pcapng"]);
    fails(
        &run(&ns, &dir, &[], &unwritable),
        "cannot record to no-such-folder/r.pcapng: No such file or directory",
    );
}
