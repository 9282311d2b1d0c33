//! What the Debian package holds besides the binaries: generated man pages and completions,
//! example configs that load, and units that match them

use ikago_config::{ClientArgs, ClientSettings, Error, ServerArgs, ServerSettings, load_file};
use std::path::{Path, PathBuf};

/// A file of this crate
fn here(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A scratch directory, removed when dropped (even when an assertion fails)
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ikago-dist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn man_pages_and_completions_for_every_binary() {
    let out = Scratch::new("generated");
    let written = ikago_dist::generate(&out.0).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.strip_prefix(&out.0).unwrap().display().to_string())
        .collect();
    for expected in [
        "man/ikago-async.1",
        "man/ikago-async-client.1",
        "man/ikago-async-server.1",
        "man/ikago-async-list-devices.1",
        "man/ikago-sync.1",
        "man/ikago-sync-client.1",
        "man/ikago-replay.1",
        "man/ikago-replay-client.1",
        "man/ikago-replay-server.1",
        "bash/ikago-async",
        "zsh/_ikago-async",
        "fish/ikago-async.fish",
        "bash/ikago-sync",
        "bash/ikago-replay",
        "zsh/_ikago-replay",
        "fish/ikago-replay.fish",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.contains("-help")),
        "no page for the help subcommand: {names:?}"
    );

    let page = read(&out.0.join("man/ikago-async.1"));
    assert!(page.starts_with(".ie"), "roff: {}", &page[..40]);
    assert!(page.contains(".TH ikago-async 1"), "{page}");
    assert!(
        page.contains("EXIT CODES"),
        "the long help is the description"
    );
    let client = read(&out.0.join("man/ikago-async-client.1"));
    for option in [
        r"\-\-sources",
        r"\-\-server",
        r"\-\-log\-format",
        r"\-\-kcp\-sndwnd",
    ] {
        assert!(client.contains(option), "{option} in the client's page");
    }
    assert!(client.contains(".TH ikago-async-client 1"));

    let bash = read(&out.0.join("bash/ikago-async"));
    assert!(bash.contains("complete -F") && bash.contains("ikago-async"));
    assert!(bash.contains("--listen-devices") && bash.contains("list-devices"));
    let zsh = read(&out.0.join("zsh/_ikago-async"));
    assert!(zsh.starts_with("#compdef ikago-async"), "{}", &zsh[..40]);
    let fish = read(&out.0.join("fish/ikago-async.fish"));
    assert!(fish.contains("complete -c ikago-async") && fish.contains("-l log-format"));
    assert!(
        fish.contains("text") && fish.contains("json"),
        "values of --log-format"
    );
}

/// The config of an example with every commented-out key line (`# "key": ...`) turned on
fn with_every_key(text: &str) -> String {
    text.lines()
        .map(|l| match l.trim_start().strip_prefix("# \"") {
            Some(rest) => format!("\"{rest}"),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_configs_load_and_want_a_password() {
    let server: ServerArgs = load_file(&here("etc/server.json")).unwrap();
    assert!(matches!(
        ServerSettings::resolve(&server),
        Err(Error::MissingPassword(_))
    ));
    let mut with_password = server.clone();
    with_password.common.password = Some("secret".into());
    let s = ServerSettings::resolve(&with_password).unwrap();
    assert_eq!((s.common.port, s.common.rule), (18081, true));

    let client: ClientArgs = load_file(&here("etc/client.json")).unwrap();
    assert!(matches!(
        ClientSettings::resolve(&client),
        Err(Error::MissingPassword(_))
    ));
    let mut with_password = client.clone();
    with_password.common.password = Some("secret".into());
    let c = ClientSettings::resolve(&with_password).unwrap();
    assert_eq!(c.server.to_string(), "203.0.113.5:18081");
    assert_eq!(c.sources.len(), 1);
    assert!(c.common.rule);

    // every key shown commented out is a valid one, with a valid value
    let scratch = Scratch::new("examples");
    for (name, is_client) in [("server.json", false), ("client.json", true)] {
        let text = with_every_key(&read(&here("etc").join(name)));
        let path = scratch.0.join(name);
        std::fs::write(&path, &text).unwrap();
        if is_client {
            let mut a: ClientArgs = load_file(&path).unwrap();
            a.common.password = Some("secret".into());
            let c = ClientSettings::resolve(&a).unwrap();
            assert!(c.common.kcp && !c.publish.is_empty() && c.common.monitor.is_some());
        } else {
            let mut a: ServerArgs = load_file(&path).unwrap();
            a.common.password = Some("secret".into());
            let s = ServerSettings::resolve(&a).unwrap();
            assert!(s.common.kcp && s.common.verbose && s.common.gateway.is_some());
        }
    }
}

/// The value of every `KEY=` line of a unit
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_units_run_the_packaged_binary_on_the_example_configs() {
    let server = read(&here("systemd/ikago-server.service"));
    let client = read(&here("systemd/ikago-client@.service"));
    assert_eq!(
        values(&server, "ExecStart"),
        ["/usr/bin/ikago-async server -c /etc/ikago/server.json"]
    );
    assert_eq!(
        values(&client, "ExecStart"),
        ["/usr/bin/ikago-async client -c /etc/ikago/%i.json"]
    );
    // the examples are what the units read: server.json, and client.json for the instance
    // `client`
    assert!(here("etc/server.json").is_file() && here("etc/client.json").is_file());
    for unit in [&server, &client] {
        assert_eq!(values(unit, "Type"), ["notify"]);
        assert_eq!(values(unit, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
        assert_eq!(values(unit, "User"), ["ikago"]);
        assert_eq!(values(unit, "Restart"), ["on-failure"]);
        for key in ["AmbientCapabilities", "CapabilityBoundingSet"] {
            assert_eq!(values(unit, key), ["CAP_NET_RAW CAP_NET_ADMIN"], "{key}");
        }
        assert_eq!(
            values(unit, "RestrictAddressFamilies"),
            ["AF_PACKET AF_NETLINK AF_INET AF_INET6 AF_UNIX"]
        );
        for key in ["NoNewPrivileges", "ProtectHome", "PrivateTmp"] {
            assert_eq!(values(unit, key), ["yes"], "{key}");
        }
        assert_eq!(values(unit, "ProtectSystem"), ["strict"]);
        assert_eq!(
            values(unit, "SystemCallFilter"),
            ["@system-service", "~@resources"]
        );
    }
    // the maintainer scripts create the user the units run as
    assert!(read(&here("debian/postinst")).contains("useradd --system --gid ikago"));
}
