//! Command-line parsing, config-file merging and validation of the shared options

use clap::{CommandFactory, Parser};
use ikago_config::{
    ClientArgs, ClientSettings, CommonSettings, DEFAULT_CAPTURE_BUFFER_MB, DEFAULT_MONITOR_ADDRESS,
    LogFormat, QdiscBypass, RoleCommand, ServerArgs, ServerSettings, parse_str,
};
use ikago_proto::{DeviceConfig, DeviceRole, LinkType, Mac, Method, Protocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// A runner's command line, as every binary builds it
#[derive(Debug, Parser)]
#[command(name = "ikago")]
struct Cli {
    #[command(subcommand)]
    role: RoleCommand,
}

fn parse(args: &[&str]) -> RoleCommand {
    Cli::try_parse_from(std::iter::once("ikago").chain(args.iter().copied()))
        .expect("valid command line")
        .role
}

fn client(args: &[&str]) -> ClientArgs {
    match parse(&[&["client"], args].concat()) {
        RoleCommand::Client(c) => c,
        RoleCommand::Server(_) => unreachable!(),
    }
}

fn server(args: &[&str]) -> ServerArgs {
    match parse(&[&["server"], args].concat()) {
        RoleCommand::Server(s) => s,
        RoleCommand::Client(_) => unreachable!(),
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn command_is_well_formed() {
    Cli::command().debug_assert();
}

/// The help of an option, as `client --help` prints it
fn help_of(option: &str) -> String {
    let mut cli = Cli::command();
    let help = cli
        .find_subcommand_mut("client")
        .expect("a client subcommand")
        .render_long_help()
        .to_string();
    let start = help.find(option).expect("the option is listed");
    let rest = &help[start..];
    let end = rest[option.len()..]
        .find("\n  -")
        .map_or(rest.len(), |i| i + option.len());
    rest[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn help_says_what_is_implemented() {
    let kcp = help_of("--kcp[=<BOOL>]");
    assert!(kcp.contains("KCP with FEC"), "{kcp}");
    let mode = help_of("--mode <MODE>");
    assert!(
        mode.contains("faketcp") && mode.contains("kernel TCP connection"),
        "{mode}"
    );
    for h in [kcp, mode] {
        assert!(!h.contains("not supported"), "{h}");
    }
}

#[test]
fn every_original_option_parses() {
    let c = client(&[
        "-r",
        "198.18.11.2,198.18.20.0/24",
        "-s",
        "198.18.12.1:18081",
        "-p",
        "50000",
        "-c",
        "c.json",
        "-v",
        "--listen-devices",
        "lan0,lan1",
        "--upstream-device",
        "wan0",
        "--gateway",
        "198.18.12.254",
        "--mode",
        "faketcp",
        "--method",
        "aes-256-gcm",
        "--password",
        "pw",
        "--rule",
        "--monitor",
        "8080",
        "--log",
        "x.log",
        "--mtu",
        "1400",
        "--kcp=false",
        "--kcp-mtu",
        "1350",
        "--kcp-sndwnd",
        "64",
        "--kcp-rcvwnd",
        "64",
        "--kcp-datashard",
        "5",
        "--kcp-parityshard",
        "2",
        "--kcp-acknodelay",
        "--kcp-nodelay=true",
        "--kcp-interval",
        "10",
        "--kcp-resend",
        "2",
        "--kcp-nc",
        "1",
        "--fragment",
        "1300",
        "--publish",
        "198.18.11.254",
    ]);
    assert_eq!(
        c.sources.as_deref(),
        Some(&["198.18.11.2".to_owned(), "198.18.20.0/24".to_owned()][..])
    );
    assert_eq!(
        c.common.listen_devices.as_deref(),
        Some(&["lan0".to_owned(), "lan1".to_owned()][..])
    );
    assert_eq!(c.common.rule, Some(true));
    assert_eq!(c.common.kcp, Some(false));
    assert!(c.common.verbose);
    assert_eq!(c.common.kcp_tuning.acknodelay, Some(true));
    assert_eq!(c.common.kcp_tuning.interval, Some(10));
    let s = ClientSettings::resolve(&c).unwrap();
    assert_eq!(s.common.method, Method::Aes256Gcm);
    assert_eq!(s.common.mtu, 1400);
    assert_eq!(s.common.kcp_tuning.mtu, 1350);
    assert_eq!(
        s.server,
        SocketAddr::from(SocketAddrV4::new(Ipv4Addr::new(198, 18, 12, 1), 18081))
    );
    assert_eq!(s.publish, vec![Ipv4Addr::new(198, 18, 11, 254)]);
    assert_eq!(s.common.monitor, Some(8080));
    let sv = ServerSettings::resolve(&server(&["-p", "18081", "--method", "PLAIN"])).unwrap();
    assert_eq!((sv.common.port, sv.common.method), (18081, Method::Plain));
}

#[test]
fn errors_are_one_clear_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["-s", "1.2.3.4:1"], "no sources given (-r ADDR[,ADDR...])"),
        (&["-r", "1.2.3.4"], "no server given (-s HOST:PORT)"),
        (
            &["-r", "1.2.3.4/40", "-s", "1.2.3.4:1"],
            "invalid source \"1.2.3.4/40\" (expected an IPv4 or IPv6 address or CIDR block like 198.18.11.0/24 or 2001:db8:1::/64)",
        ),
        (
            &["-r", "2001:db8:1::/129", "-s", "1.2.3.4:1"],
            "invalid source \"2001:db8:1::/129\" (expected an IPv4 or IPv6 address or CIDR block like 198.18.11.0/24 or 2001:db8:1::/64)",
        ),
        (
            &["-r", "2001:db8:1:::1", "-s", "1.2.3.4:1"],
            "invalid source \"2001:db8:1:::1\" (expected an IPv4 or IPv6 address or CIDR block like 198.18.11.0/24 or 2001:db8:1::/64)",
        ),
        (
            &["-r", "2001:db8:1::/64", "-s", "1.2.3.4:1"],
            "IPv6 sources travel over the ikago2 wire only (give a password, and no --kcp or --protocol ikago)",
        ),
        (
            &[
                "-r",
                "1.2.3.4,2001:db8:1::/64",
                "-s",
                "1.2.3.4:1",
                "--password",
                "pw",
                "--protocol",
                "ikago",
            ],
            "IPv6 sources travel over the ikago2 wire only (give a password, and no --kcp or --protocol ikago)",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3.4:1,2001:db8::1"],
            "invalid server \"2001:db8::1\" (expected HOST:PORT with an IPv4 address, [ADDR]:PORT with an IPv6 address, or a resolvable name)",
        ),
        (
            &["-r", "1.2.3.4", "-s", "2001:db8::1:18081"],
            "invalid server \"2001:db8::1:18081\" (expected HOST:PORT with an IPv4 address, [ADDR]:PORT with an IPv6 address, or a resolvable name)",
        ),
        (
            &["-r", "1.2.3.4", "-s", "[2001:db8::1]:0"],
            "server \"[2001:db8::1]:0\" has port 0",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3.4:0"],
            "server \"1.2.3.4:0\" has port 0",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3:5"],
            "invalid server \"1.2.3:5\" (expected HOST:PORT with an IPv4 address, [ADDR]:PORT with an IPv6 address, or a resolvable name)",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3.4"],
            "invalid server \"1.2.3.4\" (expected HOST:PORT with an IPv4 address, [ADDR]:PORT with an IPv6 address, or a resolvable name)",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3.4:1", "--method", "rot13"],
            "unknown method \"rot13\" (expected plain, aes-128-gcm, aes-192-gcm, aes-256-gcm, chacha20-poly1305 or xchacha20-poly1305)",
        ),
        (
            &[
                "-r",
                "1.2.3.4",
                "-s",
                "1.2.3.4:1",
                "--method",
                "aes-128-gcm",
            ],
            "method aes-128-gcm needs a password (--password, IKAGO_PASSWORD or the config file's \"password\")",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3.4:1", "--mode", "udp"],
            "unknown mode \"udp\" (expected faketcp or tcp)",
        ),
        (
            &[
                "-r",
                "1.2.3.4",
                "-s",
                "1.2.3.4:1",
                "--kcp",
                "--kcp-datashard",
                "200",
                "--kcp-parityshard",
                "100",
            ],
            "kcp data shards (200) plus parity shards (100) exceed 255",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3.4:1", "--kcp-sndwnd", "0"],
            "kcp-sndwnd 0 out of range (1-65535)",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3.4:1", "--gateway", "1.2.3"],
            "invalid gateway address \"1.2.3\" (expected an IPv4 or IPv6 address like 198.18.0.1 or 2001:db8:24::ff)",
        ),
        (
            &[
                "-r",
                "1.2.3.4",
                "-s",
                "1.2.3.4:1",
                "--gateway",
                "198.18.0.1,198.18.0.2",
            ],
            "two IPv4 gateways (198.18.0.1 and 198.18.0.2): give at most one of each family",
        ),
        (
            &[
                "-r",
                "1.2.3.4",
                "-s",
                "1.2.3.4:1",
                "--gateway",
                "2001:db8:24::ff",
                "--gateway",
                "fe80::1",
            ],
            "two IPv6 gateways (2001:db8:24::ff and fe80::1): give at most one of each family",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3.4:1", "--publish", "x"],
            "invalid publish address \"x\" (expected an IPv4 or IPv6 address like 198.18.11.254 or 2001:db8:1::1)",
        ),
        (
            &[
                "-r",
                "1.2.3.4",
                "-s",
                "1.2.3.4:1",
                "--publish",
                "fd00::1::2",
            ],
            "invalid publish address \"fd00::1::2\" (expected an IPv4 or IPv6 address like 198.18.11.254 or 2001:db8:1::1)",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3.4:1", "--mtu", "575"],
            "mtu 575 out of range 576-65535",
        ),
        (
            &["-r", "1.2.3.4", "-s", "1.2.3.4:1", "--fragment", "100"],
            "fragment 100 out of range 576-65535",
        ),
    ];
    for (args, msg) in cases {
        let e = ClientSettings::resolve(&client(args))
            .unwrap_err()
            .to_string();
        assert_eq!(&e, msg, "{args:?}");
        assert!(!e.contains('\n'));
    }
    for args in [&[][..], &["-p", "0"][..]] {
        let e = ServerSettings::resolve(&server(args)).unwrap_err();
        assert_eq!(e.to_string(), "server port must be given with -p (1-65535)");
    }
}

#[test]
fn command_line_errors_come_from_clap() {
    for args in [
        &["client", "--mtu", "70000"][..],
        &["client", "--bogus"],
        &["server", "-p", "x"],
    ] {
        assert!(
            Cli::try_parse_from(std::iter::once("ikago").chain(args.iter().copied())).is_err(),
            "{args:?}"
        );
    }
}

const FILE: &str = r#"
# the original's client.json keys
{
  "listen-devices": ["lan0"],
  "upstream-device": "wan0",
  "mode": "faketcp",
  "method": "chacha20-poly1305",
  # a comment inside the object
  "password": "${PW}",
  "rule": true,
  "verbose": true,
  "mtu": 1400,
  "kcp": false,
  "kcp-tuning": { "mtu": 1350, "sndwnd": 128, "interval": 10 },
  "port": 0,
  "publish": "10.6.0.1",
  "sources": ["10.6.0.2", "10.6.0.3"],
  "server": "$SERVER",
  "destination": "unused"
}
"#;

fn file_env(name: &str) -> Option<String> {
    match name {
        "PW" => Some("from-env".into()),
        "SERVER" => Some("198.18.12.1:18081".into()),
        _ => None,
    }
}

#[test]
fn config_file_keys_comments_and_variables() {
    let f: ClientArgs = parse_str(FILE, file_env).unwrap();
    let s = ClientSettings::resolve(&f).unwrap();
    assert_eq!(s.common.password, "from-env");
    assert_eq!(s.common.method, Method::ChaCha20Poly1305);
    assert_eq!(s.common.listen_devices, vec!["lan0"]);
    assert_eq!(s.common.upstream_device.as_deref(), Some("wan0"));
    assert!(s.common.rule && s.common.verbose);
    assert_eq!(
        (
            s.common.mtu,
            s.common.kcp_tuning.mtu,
            s.common.kcp_tuning.sndwnd
        ),
        (1400, 1350, 128)
    );
    assert_eq!(
        s.common.kcp_tuning.rcvwnd, 32,
        "kcp-tuning merges into the defaults field by field"
    );
    assert_eq!(s.common.kcp_tuning.interval_ms, 10);
    assert_eq!(s.sources.len(), 2);
    assert_eq!(s.publish, vec![Ipv4Addr::new(10, 6, 0, 1)]);
    assert_eq!(s.server.port(), 18081);
}

#[test]
fn command_line_overrides_the_file() {
    let file: ClientArgs = parse_str(FILE, file_env).unwrap();
    let cli = client(&[
        "--mtu",
        "1200",
        "--rule=false",
        "-r",
        "10.6.0.9",
        "--kcp-sndwnd",
        "8",
    ]);
    let s = ClientSettings::resolve(&cli.or(file)).unwrap();
    assert_eq!(s.common.mtu, 1200);
    assert!(!s.common.rule);
    assert_eq!(s.sources, vec!["10.6.0.9".parse().unwrap()]);
    assert_eq!(
        (s.common.kcp_tuning.sndwnd, s.common.kcp_tuning.mtu),
        (8, 1350)
    );
    assert_eq!(
        s.common.password, "from-env",
        "the rest comes from the file"
    );
    assert!(s.common.verbose, "verbose is on when either turns it on");
}

#[test]
fn load_reads_the_file_named_by_c() {
    let dir = std::env::temp_dir().join(format!("ikago-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.json");
    std::fs::write(&path, "{\n  \"port\": 18081,\n  \"mtu\": 1300\n}\n").unwrap();
    let p = path.to_str().unwrap();
    let s = ServerSettings::resolve(&server(&["-c", p, "--mtu", "1350"]).load().unwrap()).unwrap();
    assert_eq!((s.common.port, s.common.mtu), (18081, 1350));

    std::fs::write(&path, "{\n  \"port\": 18081,\n  \"mtu\": \"big\"\n}\n").unwrap();
    let e = server(&["-c", p]).load().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("bad config file {p}: ")) && e.ends_with("at line 3 column 14"),
        "{e}"
    );
    assert!(!e.contains('\n'));

    std::fs::write(&path, "{\n  \"port\": 18081,\n  \"pasword\": \"x\"\n}\n").unwrap();
    let e = server(&["-c", p]).load().unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "bad config file {p}: unknown key \"pasword\" (did you mean \"password\"?) at line 3 column 11"
        )
    );

    let missing = dir.join("missing.json");
    let e = server(&["-c", missing.to_str().unwrap()])
        .load()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cannot read config file"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn log_format_from_the_command_line_or_the_file() {
    let format = |a: &ServerArgs| CommonSettings::resolve(&a.common).unwrap().log_format;
    assert_eq!(format(&server(&[])), LogFormat::Text);
    assert_eq!(format(&server(&["--log-format", "json"])), LogFormat::Json);
    let file: ServerArgs = parse_str(r#"{"log-format": "json"}"#, no_env).unwrap();
    assert_eq!(format(&file), LogFormat::Json);
    assert_eq!(
        format(&server(&["--log-format", "text"]).or(file)),
        LogFormat::Text
    );
    let e = parse_str::<ServerArgs>(r#"{"log-format": "xml"}"#, no_env).unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown variant `xml`, expected `text` or `json` at line 1 column 20"
    );
    assert!(
        Cli::try_parse_from(["ikago", "server", "--log-format", "xml"]).is_err(),
        "clap refuses other formats"
    );
}

#[test]
fn io_options_from_the_command_line_or_the_file() {
    let common = |a: &ServerArgs| CommonSettings::resolve(&a.common);
    let s = common(&server(&[])).unwrap();
    assert_eq!(
        (s.capture_buffer_mb, s.qdisc_bypass, s.busy_poll),
        (DEFAULT_CAPTURE_BUFFER_MB, QdiscBypass::Auto, None)
    );
    let s = common(&server(&[
        "--capture-buffer-mb",
        "32",
        "--qdisc-bypass",
        "--busy-poll",
        "50",
    ]))
    .unwrap();
    assert_eq!(
        (s.capture_buffer_mb, s.qdisc_bypass, s.busy_poll),
        (32, QdiscBypass::On, Some(Duration::from_micros(50)))
    );
    let file: ServerArgs = parse_str(
        r#"{"capture-buffer-mb": 16, "qdisc-bypass": true, "busy-poll": 0}"#,
        no_env,
    )
    .unwrap();
    let s = common(&server(&["--qdisc-bypass=false"]).or(file)).unwrap();
    assert_eq!(
        (s.capture_buffer_mb, s.qdisc_bypass, s.busy_poll),
        (16, QdiscBypass::Off, None)
    );
    for (args, message) in [
        (
            &["--capture-buffer-mb", "0"][..],
            "capture-buffer-mb 0 out of range 1-1024",
        ),
        (
            &["--capture-buffer-mb", "4096"][..],
            "capture-buffer-mb 4096 out of range 1-1024",
        ),
        (
            &["--busy-poll", "2000000"][..],
            "busy-poll 2000000 out of range 0-1000000 microseconds",
        ),
    ] {
        assert_eq!(common(&server(args)).unwrap_err().to_string(), message);
    }
}

#[test]
fn lists_accept_a_string_or_an_array() {
    let a: ClientArgs = parse_str(
        r#"{"sources": "1.2.3.4, 1.2.3.5", "listen-devices": "a,b"}"#,
        no_env,
    )
    .unwrap();
    assert_eq!(a.sources.unwrap(), vec!["1.2.3.4", "1.2.3.5"]);
    assert_eq!(a.common.listen_devices.unwrap(), vec!["a", "b"]);
}

#[test]
fn several_servers_make_a_failover_list() {
    let s = ClientSettings::resolve(&client(&[
        "-r",
        "198.18.11.2",
        "-s",
        "198.18.12.1:18081,198.18.12.9:18082",
        "--failback",
        "60",
    ]))
    .unwrap();
    assert_eq!(s.server, "198.18.12.1:18081".parse().unwrap());
    assert_eq!(s.fallback, ["198.18.12.9:18082".parse().unwrap()]);
    assert_eq!(s.failback, Some(Duration::from_secs(60)));
    let f: ClientArgs = parse_str(
        r#"{"sources": "198.18.11.2", "server": ["198.18.12.1:18081", "198.18.12.9:18082"]}"#,
        no_env,
    )
    .unwrap();
    assert_eq!(ClientSettings::resolve(&f).unwrap().fallback, s.fallback);
    let e = ClientSettings::resolve(&client(&["-r", "198.18.11.2", "-s", "198.18.12.1:1,x"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"x\""), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn ipv6_servers_in_brackets_alone_mixed_and_in_the_config_file() {
    let s = ClientSettings::resolve(&client(&[
        "-r",
        "198.18.11.2",
        "-s",
        "[2001:db8:23::2]:18081, 198.18.12.9:18082,[fd00:9::1]:18083",
    ]))
    .unwrap();
    assert_eq!(s.server, "[2001:db8:23::2]:18081".parse().unwrap());
    assert_eq!(
        s.fallback,
        [
            "198.18.12.9:18082".parse().unwrap(),
            "[fd00:9::1]:18083".parse().unwrap()
        ]
    );
    assert_eq!(
        s.machine_keys()["server"],
        "[2001:db8:23::2]:18081,198.18.12.9:18082,[fd00:9::1]:18083",
        "a recording gives them back as they were"
    );
    let f: ClientArgs = parse_str(
        r#"{"sources": "198.18.11.2", "server": "[2001:db8:23::2]:18081"}"#,
        no_env,
    )
    .unwrap();
    let c = ClientSettings::resolve(&f).unwrap();
    assert_eq!(c.server, "[2001:db8:23::2]:18081".parse().unwrap());
    assert_eq!(
        c.client_config(Vec::new(), [0; 32]).server,
        c.server,
        "the core gets it as it is"
    );
}

#[test]
fn gateway_takes_an_address_of_each_family() {
    let v4 = Ipv4Addr::new(198, 18, 0, 1);
    let v6: Ipv6Addr = "2001:db8:24::ff".parse().unwrap();
    let gateways = |args: &ClientArgs| {
        let s = CommonSettings::resolve(&args.common).unwrap();
        (s.gateway, s.gateway6)
    };
    for (given, expected) in [
        ("198.18.0.1,2001:db8:24::ff", (Some(v4), Some(v6))),
        ("2001:db8:24::ff, 198.18.0.1", (Some(v4), Some(v6))),
        ("198.18.0.1", (Some(v4), None)),
        ("2001:db8:24::ff", (None, Some(v6))),
    ] {
        assert_eq!(
            gateways(&client(&["--gateway", given])),
            expected,
            "{given}"
        );
    }
    assert_eq!(gateways(&client(&[])), (None, None));
    // the config file's key takes a string or a list, and the command line overrides it
    for file in [
        r#"{"gateway": "198.18.0.1,2001:db8:24::ff"}"#,
        r#"{"gateway": ["2001:db8:24::ff", "198.18.0.1"]}"#,
    ] {
        let f: ClientArgs = parse_str(file, no_env).unwrap();
        assert_eq!(gateways(&f), (Some(v4), Some(v6)), "{file}");
        let merged = client(&["--gateway", "fe80::1"]).or(f);
        assert_eq!(
            gateways(&merged),
            (None, Some("fe80::1".parse().unwrap())),
            "{file}"
        );
    }
    let f: ClientArgs = parse_str(r#"{"gateway": ["fe80::1", "fe80::2"]}"#, no_env).unwrap();
    let e = CommonSettings::resolve(&f.common).unwrap_err().to_string();
    assert_eq!(
        e,
        "two IPv6 gateways (fe80::1 and fe80::2): give at most one of each family"
    );
}

fn device(name: &str, role: DeviceRole) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        role,
        link: LinkType::Ethernet,
        mac: Mac([2, 0, 0, 0, 0, 1]),
        addr: Some(Ipv4Addr::new(198, 18, 0, 1)),
        prefix_len: 24,
        gateway: None,
        gateway_mac: None,
        ipv6: None,
    }
}

#[test]
fn device_options_set_roles() {
    let devices = vec![
        device("lan0", DeviceRole::Listen),
        device("wan0", DeviceRole::Upstream),
        device("x", DeviceRole::Listen),
    ];
    let s = CommonSettings::resolve(&client(&["--listen-devices", "lan0,wan0"]).common).unwrap();
    let out = s.apply_device_roles(devices.clone()).unwrap();
    let roles: Vec<_> = out.iter().map(|d| (d.name.as_str(), d.role)).collect();
    assert_eq!(
        roles,
        [("lan0", DeviceRole::Listen), ("wan0", DeviceRole::Both)]
    );
    let s = CommonSettings::resolve(&client(&["--upstream-device", "eth9"]).common).unwrap();
    assert_eq!(
        s.apply_device_roles(devices).unwrap_err().to_string(),
        "unknown upstream device \"eth9\" (devices: lan0, wan0, x)"
    );
}

#[test]
fn settings_become_core_configs() {
    let s = ClientSettings::resolve(&client(&[
        "-r",
        "198.18.11.2",
        "-s",
        "198.18.12.1:18081",
        "-p",
        "60837",
        "--method",
        "aes-128-gcm",
        "--password",
        "pw",
    ]))
    .unwrap();
    let devices = vec![
        device("lan0", DeviceRole::Listen),
        device("wan0", DeviceRole::Upstream),
    ];
    let c = s.client_config(devices.clone(), [7; 32]);
    assert_eq!(
        (c.port, c.method, c.password.as_str(), c.rng_seed),
        (60837, Method::Aes128Gcm, "pw", [7; 32])
    );
    let sv = ServerSettings::resolve(&server(&["-p", "18081", "--fragment", "1000"])).unwrap();
    let c = sv.server_config(devices, [1; 32]);
    assert_eq!((c.port, c.fragment), (18081, 1000));
}

#[test]
fn a_client_with_a_password_speaks_ikago2_in_either_mode() {
    let devices = vec![
        device("lan0", DeviceRole::Listen),
        device("wan0", DeviceRole::Upstream),
    ];
    for mode in ["faketcp", "tcp"] {
        let base = [
            "-r",
            "198.18.11.2",
            "-s",
            "198.18.12.1:18081",
            "--mode",
            mode,
        ];
        let with = [&base[..], &["--password", "pw"]].concat();
        let c = ClientSettings::resolve(&client(&with))
            .unwrap()
            .client_config(devices.clone(), [7; 32]);
        assert_eq!(c.protocol, Protocol::Ikago2, "{mode}");
        assert_ne!(c.method, Method::Plain, "{mode}: ikago2 always encrypts");
        let c = ClientSettings::resolve(&client(&base))
            .unwrap()
            .client_config(devices.clone(), [7; 32]);
        assert_eq!(
            (c.protocol, c.method),
            (Protocol::Ikago, Method::Plain),
            "{mode}"
        );
    }
}

#[test]
fn ipv6_sources_and_published_addresses_mix_with_ipv4() {
    let s = ClientSettings::resolve(&client(&[
        "-r",
        "198.18.1.0/24, 2001:db8:1::/64,fd00:21::4",
        "-s",
        "198.18.12.1:18081",
        "--password",
        "pw",
        "--publish",
        "198.18.1.254,fd00:21::fe",
    ]))
    .unwrap();
    assert_eq!(s.sources, ["198.18.1.0/24".parse().unwrap()]);
    assert_eq!(
        s.sources6,
        [
            "2001:db8:1::/64".parse().unwrap(),
            "fd00:21::4".parse().unwrap()
        ]
    );
    assert_eq!(s.publish, [Ipv4Addr::new(198, 18, 1, 254)]);
    assert_eq!(s.publish6, ["fd00:21::fe".parse::<Ipv6Addr>().unwrap()]);
    assert_eq!(s.protocol, Protocol::Ikago2);
    let config = s.client_config(vec![device("lan0", DeviceRole::Both)], [0; 32]);
    assert_eq!(config.sources6, s.sources6);
    assert_eq!(config.publish6, s.publish6);
    // an IPv6 LAN alone is enough, and the file's keys are the same
    let file = r#"{"sources": ["2001:db8:1::/64"], "server": "198.18.12.1:18081",
                   "password": "pw", "publish": "2001:db8:1::1"}"#;
    let s = ClientSettings::resolve(&parse_str::<ClientArgs>(file, no_env).unwrap()).unwrap();
    assert!(s.sources.is_empty());
    assert_eq!(s.sources6, ["2001:db8:1::/64".parse().unwrap()]);
    assert_eq!(s.publish6, ["2001:db8:1::1".parse::<Ipv6Addr>().unwrap()]);
    // changed IPv6 items apply at once, as IPv4 ones do
    let changed = ClientSettings::resolve(&client(&[
        "-r",
        "2001:db8:2::/64,198.18.1.0/24",
        "-s",
        "198.18.12.1:18081",
        "--password",
        "pw",
        "--publish",
        "2001:db8:1::1",
    ]))
    .unwrap();
    let c = s.changes(&changed);
    assert_eq!(c.live, ["sources"]);
    assert!(c.restart.is_empty(), "{c:?}");
    let mut live = s.clone();
    live.adopt_live(&changed);
    assert_eq!(live.sources6, changed.sources6);
    assert_eq!(live.sources, changed.sources);
}

#[test]
fn machine_keys_give_the_same_machine_without_the_password() {
    let devices = vec![
        device("lan0", DeviceRole::Listen),
        device("wan0", DeviceRole::Upstream),
    ];
    // the keys as a recording holds them, with the password given apart as a replay takes it
    let with_password = |keys: serde_json::Map<String, serde_json::Value>, password: &str| {
        assert!(!keys.contains_key("password"), "{keys:?}");
        let mut keys = keys;
        keys.insert("password".into(), password.into());
        serde_json::Value::Object(keys).to_string()
    };
    for line in [
        &[
            "-r",
            "198.18.11.2,198.18.11.0/28",
            "-s",
            "198.18.12.1:18081",
            "--method",
            "aes-128-gcm",
            "--password",
            "pw",
            "--publish",
            "198.18.11.254,198.18.11.253",
            "--mtu",
            "1400",
            "--fragment",
            "1000",
            "--kcp",
            "--kcp-nodelay",
            "--kcp-interval",
            "10",
            "--kcp-nc",
            "1",
            "--kcp-datashard",
            "0",
            "--monitor",
            "9000",
            "--rule",
            "--listen-devices",
            "lan0",
        ][..],
        &[
            "-r",
            "198.18.11.2",
            "-s",
            "198.18.12.1:18081",
            "-p",
            "60837",
        ],
        &[
            "-r",
            "fd00:21::/64,198.18.11.2,2001:db8:5::7",
            "-s",
            "198.18.12.1:18081",
            "--password",
            "pw",
            "--publish",
            "fd00:21::fe,198.18.11.254",
        ],
    ] {
        let s = ClientSettings::resolve(&client(line)).unwrap();
        let json = with_password(s.machine_keys(), &s.common.password);
        let again =
            ClientSettings::resolve(&parse_str::<ClientArgs>(&json, no_env).unwrap()).unwrap();
        assert_eq!(
            format!("{:?}", again.client_config(devices.clone(), [3; 32])),
            format!("{:?}", s.client_config(devices.clone(), [3; 32])),
            "{json}"
        );
    }
    let s = ServerSettings::resolve(&server(&[
        "-p",
        "18081",
        "--method",
        "xchacha20-poly1305",
        "--password",
        "pw",
        "--kcp",
    ]))
    .unwrap();
    let json = with_password(s.machine_keys(), "pw");
    let again = ServerSettings::resolve(&parse_str::<ServerArgs>(&json, no_env).unwrap()).unwrap();
    assert_eq!(
        format!("{:?}", again.server_config(devices.clone(), [3; 32])),
        format!("{:?}", s.server_config(devices, [3; 32])),
    );
}

fn monitor_of(args: &[&str]) -> Option<SocketAddr> {
    CommonSettings::resolve(&client(args).common)
        .unwrap()
        .monitor_addr()
}

#[test]
fn monitor_listens_on_loopback_unless_told_otherwise() {
    for args in [
        &[][..],
        &["--monitor", "0"],
        &["--monitor-address", "0.0.0.0"],
        &["--monitor=0", "--monitor-address", "198.18.21.1"],
    ] {
        assert_eq!(monitor_of(args), None, "off: {args:?}");
    }
    let s = CommonSettings::resolve(&client(&["--monitor", "18080"]).common).unwrap();
    assert_eq!(s.monitor, Some(18080));
    assert_eq!(s.monitor_address, DEFAULT_MONITOR_ADDRESS);
    assert_eq!(s.monitor_address, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(s.monitor_addr(), Some("127.0.0.1:18080".parse().unwrap()));
    for (ip, want) in [
        ("0.0.0.0", "0.0.0.0:18080"),
        (" 198.18.21.1 ", "198.18.21.1:18080"),
        ("::1", "[::1]:18080"),
        ("::", "[::]:18080"),
        ("", "127.0.0.1:18080"),
    ] {
        let got = monitor_of(&["--monitor", "18080", "--monitor-address", ip]);
        assert_eq!(got, Some(want.parse().unwrap()), "{ip:?}");
    }
    let got = monitor_of(&["--monitor-address=198.18.21.1", "--monitor=9"]);
    assert_eq!(got, Some("198.18.21.1:9".parse().unwrap()));
    for bad in [
        "localhost",
        "127.0.0.1:18080",
        "198.18.21",
        "[::1]",
        "0.0.0.0/0",
    ] {
        let a = client(&["--monitor", "18080", "--monitor-address", bad]);
        let e = CommonSettings::resolve(&a.common).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "invalid monitor address {:?} (expected an IP address like 127.0.0.1, or 0.0.0.0 \
                 for every interface)",
                bad.trim()
            )
        );
    }
    // the server takes them too, and a bad address is refused even with the monitor off
    let sv = ServerSettings::resolve(&server(&[
        "-p",
        "18081",
        "--monitor",
        "18080",
        "--monitor-address",
        "0.0.0.0",
    ]))
    .unwrap();
    assert_eq!(
        sv.common.monitor_addr(),
        Some("0.0.0.0:18080".parse().unwrap())
    );
    let e = ServerSettings::resolve(&server(&["-p", "1", "--monitor-address", "x"])).unwrap_err();
    assert!(
        e.to_string().starts_with("invalid monitor address \"x\""),
        "{e}"
    );
    for args in [
        &["client", "--monitor", "65536"][..],
        &["client", "--monitor", "-1"],
    ] {
        assert!(
            Cli::try_parse_from(std::iter::once("ikago").chain(args.iter().copied())).is_err(),
            "{args:?}"
        );
    }
}

#[test]
fn monitor_keys_merge_with_the_file() {
    let file = "{\n# the original's key, and ours\n\"monitor\": 18080,\n\"monitor-address\": \"0.0.0.0\"\n}";
    let f: ServerArgs = parse_str(file, no_env).unwrap();
    assert_eq!(f.common.monitor, Some(18080));
    assert_eq!(f.common.monitor_address.as_deref(), Some("0.0.0.0"));
    let resolve = |cli: &[&str]| {
        let args = server(&[&["-p", "18081"], cli].concat()).or(f.clone());
        ServerSettings::resolve(&args)
            .unwrap()
            .common
            .monitor_addr()
    };
    let addr = |s: &str| Some(s.parse::<SocketAddr>().unwrap());
    assert_eq!(resolve(&[]), addr("0.0.0.0:18080"), "the file alone");
    assert_eq!(
        resolve(&["--monitor-address", "127.0.0.1"]),
        addr("127.0.0.1:18080"),
        "the command line's address wins, the file's port stays"
    );
    assert_eq!(
        resolve(&["--monitor", "9100"]),
        addr("0.0.0.0:9100"),
        "the command line's port wins, the file's address stays"
    );
    assert_eq!(resolve(&["--monitor", "0"]), None, "0 turns it off");
    // a file with the port only listens on loopback
    let f: ClientArgs = parse_str(
        r#"{"monitor": 18080, "sources": "10.6.0.2", "server": "198.18.12.1:1"}"#,
        no_env,
    )
    .unwrap();
    let s = ClientSettings::resolve(&f).unwrap();
    assert_eq!(s.common.monitor_addr(), addr("127.0.0.1:18080"));
    // and an empty address in a file is the default
    let f: ServerArgs = parse_str(r#"{"monitor": 1, "monitor-address": " "}"#, no_env).unwrap();
    let s = ServerSettings::resolve(&server(&["-p", "18081"]).or(f)).unwrap();
    assert_eq!(s.common.monitor_addr(), addr("127.0.0.1:1"));
    let f: ServerArgs = parse_str(r#"{"monitor-address": "nope"}"#, no_env).unwrap();
    let e = ServerSettings::resolve(&server(&["-p", "18081"]).or(f)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid monitor address \"nope\""),
        "{e}"
    );
}

#[test]
fn the_client_reports_dns_names_only_for_the_monitor() {
    let devices = vec![
        device("lan0", DeviceRole::Listen),
        device("wan0", DeviceRole::Upstream),
    ];
    let base = ["-r", "198.18.11.2", "-s", "198.18.12.1:18081"];
    for (extra, on) in [
        (&[][..], false),
        (&["--monitor", "0"], false),
        (&["--monitor", "18080"], true),
        (
            &["--monitor", "18080", "--monitor-address", "0.0.0.0"],
            true,
        ),
    ] {
        let s = ClientSettings::resolve(&client(&[&base[..], extra].concat())).unwrap();
        let c = s.client_config(devices.clone(), [0; 32]);
        assert_eq!(c.dns_records, on, "{extra:?}");
    }
}

#[test]
fn threads_is_a_server_option_with_a_file_key() {
    let s = ServerSettings::resolve(&server(&["-p", "18081", "--threads", "2"])).unwrap();
    assert_eq!(s.threads, Some(2));
    assert_eq!(s.engines(false).unwrap(), 2);
    // the file's key, under the command line's
    let f: ServerArgs = parse_str(r#"{"port": 18081, "threads": 3}"#, no_env).unwrap();
    assert_eq!(ServerSettings::resolve(&f).unwrap().threads, Some(3));
    let over = server(&["--threads", "1"]).or(f.clone());
    let s = ServerSettings::resolve(&over).unwrap();
    assert_eq!((s.threads, s.engines(false).unwrap()), (Some(1), 1));
    // a client reads a shared file and leaves the key alone, and refuses the option
    let c: ClientArgs = parse_str(
        r#"{"threads": 4, "sources": "198.18.11.2", "server": "198.18.12.1:1"}"#,
        no_env,
    )
    .unwrap();
    ClientSettings::resolve(&c).unwrap();
    let e = ClientSettings::resolve(&client(&["-r", "198.18.11.2", "--threads", "2"])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--threads is a server option (a client runs one engine)"
    );
    let help = Cli::command()
        .find_subcommand_mut("client")
        .expect("a client subcommand")
        .render_long_help()
        .to_string();
    assert!(!help.contains("--threads"), "not offered to a client");
    for (args, msg) in [
        (
            &["-p", "1", "--threads", "0"][..],
            "threads 0 out of range 1-256",
        ),
        (
            &["-p", "1", "--threads", "257"],
            "threads 257 out of range 1-256",
        ),
        (
            &["-p", "1", "--threads", "2", "--mode", "tcp"],
            "threads 2 with mode tcp: the tunnel's kernel connections run on one engine",
        ),
    ] {
        let e = ServerSettings::resolve(&server(args)).unwrap_err();
        assert_eq!(e.to_string(), msg, "{args:?}");
    }
}

#[test]
fn engines_default_to_the_cores_and_to_one_for_a_recording_or_tcp() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let s = ServerSettings::resolve(&server(&["-p", "18081"])).unwrap();
    assert_eq!(s.threads, None);
    assert_eq!(usize::from(s.engines(false).unwrap()), cores.min(256));
    assert_eq!(
        s.engines(true).unwrap(),
        1,
        "a recording replays one engine"
    );
    let tcp = ServerSettings::resolve(&server(&["-p", "18081", "--mode", "tcp"])).unwrap();
    assert_eq!(tcp.engines(false).unwrap(), 1);
    let one = ServerSettings::resolve(&server(&["-p", "18081", "--threads", "1"])).unwrap();
    assert_eq!(one.engines(true).unwrap(), 1);
    let two = ServerSettings::resolve(&server(&["-p", "18081", "--threads", "2"])).unwrap();
    assert_eq!(
        two.engines(true).unwrap_err().to_string(),
        "threads 2 with record: a recording replays one engine (give threads 1, or leave it out)"
    );
}
