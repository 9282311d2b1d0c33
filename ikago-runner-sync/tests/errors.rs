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
            with(&["--gateway", "198.18.1.254,198.18.1.253"]),
            "two IPv4 gateways (198.18.1.254 and 198.18.1.253): give at most one of each family",
        ),
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
            vec!["server", "-c", "syntax.json"],
            "bad config file syntax.json: trailing comma at line 3 column 1",
        ),
        (
            vec!["client", "-c", "typo.json"],
            "bad config file typo.json: unknown key \"pasword\" (did you mean \"password\"?) at line 4 column 9",
        ),
        (
            vec!["server", "-c", "nopass.json"],
            "method aes-256-gcm needs a password",
        ),
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
    std::fs::write(dir.join("syntax.json"), "{\n\"port\": 18081,\n}\n").unwrap();
    std::fs::write(
        dir.join("typo.json"),
        "{\n\"sources\": [\"198.18.1.2\"],\n\"server\": \"198.19.0.1:18081\",\n\"pasword\": \"x\"\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("nopass.json"),
        "{\n# the password is missing\n\"port\": 18081,\n\"method\": \"aes-256-gcm\"\n}\n",
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
    // an IPv6 gateway for an upstream device without IPv6, then off its prefix
    let gateways = with(&["--gateway", "198.18.1.254,2001:db8:1::fe"]);
    fails(
        &run(&ns, &dir, &[], &gateways),
        "IPv6 gateway 2001:db8:1::fe given, but upstream device v0 has no global IPv6 address",
    );
    ns.exec("sysctl", &["-qw", "net.ipv6.conf.v0.disable_ipv6=0"])
        .unwrap();
    ns.ip(&["addr", "add", "2001:db8:2::1/64", "dev", "v0", "nodad"])
        .unwrap();
    fails(
        &run(&ns, &dir, &[], &gateways),
        "IPv6 gateway 2001:db8:1::fe is not on a subnet of upstream device v0",
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

/// Runs the binary in `ns` with stdout and stderr on one pipe, with `JOURNAL_STREAM` set to what
/// `journal` returns for that pipe (its `DEV:INODE` when `Some`); the exit code and every line
fn run_merged(
    ns: &Netns,
    cwd: &Path,
    args: &[&str],
    journal: impl Fn(String) -> Option<String>,
) -> (Option<i32>, Vec<String>) {
    use std::io::Read;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let (mut reader, writer) = std::io::pipe().expect("a pipe");
    let meta = std::fs::File::from(writer.as_fd().try_clone_to_owned().unwrap())
        .metadata()
        .unwrap();
    let mut c = std::process::Command::new("ip");
    c.args(["netns", "exec", ns.name(), BIN])
        .args(args)
        .current_dir(cwd)
        .env_remove("JOURNAL_STREAM")
        .stdout(writer.try_clone().unwrap())
        .stderr(writer);
    if let Some(v) = journal(format!("{}:{}", meta.dev(), meta.ino())) {
        c.env("JOURNAL_STREAM", v);
    }
    let mut child = c.spawn().expect("the binary runs");
    // the parent's copies of the writer went with `c`
    drop(c);
    let mut out = String::new();
    reader.read_to_string(&mut out).unwrap();
    let status = child.wait().unwrap();
    (status.code(), out.lines().map(str::to_owned).collect())
}

#[test]
fn log_lines_for_the_journal_and_for_collectors() {
    if !is_root() {
        eprintln!("skipped: needs root (network namespaces)");
        return;
    }
    // an empty namespace: the client logs its banner, then finds no device and stops
    let ns = Netns::create("log").expect("a namespace");
    let dir = std::env::temp_dir();
    let client = ["client", "-r", "198.18.1.2", "-s", "198.19.0.1:18081"];
    let banner = format!("IkaGo-rs client {} (ikago-sync)", env!("CARGO_PKG_VERSION"));

    // under the journal: every line with its priority, no time of our own
    let (code, lines) = run_merged(&ns, &dir, &client, Some);
    assert_eq!(code, Some(2), "{lines:?}");
    assert_eq!(lines[0], format!("<6>{banner}"));
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("<3>error: no usable network device"),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l.starts_with('<')), "{lines:?}");
    // a mistake found before the log is set up has the priority too
    let (code, lines) = run_merged(&ns, &dir, &client[..3], Some);
    assert_eq!(code, Some(2));
    assert_eq!(lines, ["<3>error: no server given (-s HOST:PORT)"]);
    // JOURNAL_STREAM naming another stream (a child of a service writing elsewhere): plain lines
    let (_, lines) = run_merged(&ns, &dir, &client, |_| Some("1:1".into()));
    assert_eq!(lines[0], banner);

    // --log-format json: one object per line, the error among them
    let args: Vec<&str> = client
        .iter()
        .copied()
        .chain(["--log-format", "json"])
        .collect();
    let (code, lines) = run_merged(&ns, &dir, &args, |_| None);
    assert_eq!(code, Some(2));
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(objects[0]["level"], "info");
    assert_eq!(objects[0]["message"], banner.as_str());
    assert!(objects[0]["time"].as_str().unwrap().ends_with('Z'));
    let last = objects.last().unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .starts_with("error: no usable network device"),
        "{last}"
    );
}
