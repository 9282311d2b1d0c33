//! The command line every runner shares: `client`, `server`, `check` and `list-devices`
//!
//! `check client ...` and `check server ...` take exactly the options of `client` and `server`.
//!
//! The role options come from `ikago-config` (the original's options with two dashes, `-r -s -p
//! -c -v` short). Run with no arguments at all, the binary reads `config.json` from the working
//! directory when it exists, as the original did, and picks the role from its keys: a file with
//! `server` or `sources` configures a client, any other a server.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ikago_config::{ClientArgs, CommonArgs, RecordArgs, RoleCommand, ServerArgs};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The config file read when the program gets no arguments
const DEFAULT_CONFIG: &str = "config.json";

/// The long help, which is also the man page's description
const LONG_ABOUT: &str = "\
IkaGo-rs carries the TCP, UDP and ICMP traffic of LAN devices through networks that block or
throttle UDP, and through NAT firewalls, by wrapping every packet in a fake TCP connection. The
client runs on a LAN machine that the devices use as their gateway; the server runs on a public
host, opens the packets and NATs them to the Internet (full cone). ikago-async and ikago-sync are
the same program, on async tasks or on blocking threads.

CONFIG FILE. -c FILE reads a JSON file whose keys are the long options (\"sources\", \"server\",
\"method\", \"password\", \"kcp-tuning\": {\"sndwnd\": ...}), with # comment lines and $VAR or
${VAR} expanded from the environment; options on the command line override it, and a key that no
option has is an error. With no arguments at all, config.json in the working directory is read.

PRIVILEGES. Capturing and injecting need root or CAP_NET_RAW, --rule also CAP_NET_ADMIN.

LOG. Info on stdout, warnings and errors on stderr, verbose lines with -v; --log FILE appends every
line to FILE with a timestamp; --log-format json writes one JSON object per line (time, level,
message, and the event's fields). Under systemd, when stderr is the journal, every line goes to
stderr with its syslog priority and no timestamp of its own.

SYSTEMD. The Debian package's units run `ikago-async server -c /etc/ikago/server.json`
(ikago-server.service) and `ikago-async client -c /etc/ikago/NAME.json` (ikago-client@NAME.service)
as the user ikago with CAP_NET_RAW and CAP_NET_ADMIN. Started with NOTIFY_SOCKET set, the program
tells the service manager it is ready (the server once it captures, the client once its handshake
with the server has completed), how the tunnel is doing (STATUS=) and when it stops.

ENVIRONMENT. IKAGO_PASSWORD: the password, unless --password or the config file gives one.
NOTIFY_SOCKET, JOURNAL_STREAM: set by systemd, see above.

EXIT CODES. 0: stopped by SIGINT or SIGTERM, the rules removed; 1: a failure while running (a
device went away, a rule that could not be removed); 2: a mistake found before the run (options,
config file, devices, privileges, a port in use), said in one line.";

/// IkaGo-rs: carry LAN devices' TCP, UDP and ICMP through fake TCP to a server
#[derive(Debug, Parser)]
#[command(version, long_about = LONG_ABOUT)]
pub struct Cli {
    /// What to do
    #[command(subcommand)]
    pub command: Command,
    /// The flight recorder (client and server)
    #[command(flatten)]
    pub record: RecordArgs,
}

/// The subcommands
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as client or server
    #[command(flatten)]
    Role(Box<RoleCommand>),
    /// Print every network device: name, MAC, IPv4 addresses and flags
    ListDevices,
    /// Say, without changing anything, what will and will not work for `client` or `server`
    /// with these options, one line each; exit code 0 when all is well, 1 when something will
    /// fail
    Check(Box<CheckArgs>),
}

/// `check client OPTIONS` or `check server OPTIONS`: the role to check, with its options
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The role and its options, as they would be given to run it
    #[command(subcommand)]
    pub role: RoleCommand,
}

/// The command line of the binary `name` (`ikago-sync` or `ikago-async`): what it parses, and
/// what its man pages and shell completions are generated from (`ikago-dist`)
pub fn command(name: &'static str) -> clap::Command {
    Cli::command().name(name).bin_name(name)
}

impl Cli {
    /// Parses `args` (the program name first) for the binary `name`; with no arguments and a
    /// `config.json` in the working directory, that file; clap exits with code 2 on a usage error
    pub fn parse_args(
        name: &'static str,
        args: Vec<OsString>,
    ) -> Result<Self, ikago_config::Error> {
        let default = Path::new(DEFAULT_CONFIG);
        if args.len() == 1 && default.is_file() {
            return from_file(default).map(|command| Self {
                command,
                record: RecordArgs::default(),
            });
        }
        let matches = command(name).get_matches_from(args);
        Ok(Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
    }
}

/// The role a config file describes, with the file as its `-c`
fn from_file(path: &Path) -> Result<Command, ikago_config::Error> {
    let file: ClientArgs = ikago_config::load_file(path)?;
    let common = CommonArgs {
        config: Some(PathBuf::from(path)),
        ..CommonArgs::default()
    };
    Ok(Command::Role(Box::new(
        if file.server.is_some() || file.sources.is_some() {
            RoleCommand::Client(ClientArgs {
                common,
                ..ClientArgs::default()
            })
        } else {
            RoleCommand::Server(ServerArgs {
                common,
                ..ServerArgs::default()
            })
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Cli {
        Cli::try_parse_from(line.split_whitespace()).unwrap()
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_and_short_options() {
        let c = parse(
            "ikago client -r 198.18.1.2,198.18.3.0/24 -s 198.19.0.1:18081 -p 5000 -v --rule --method aes-128-gcm --password x --listen-devices a,b --upstream-device c --kcp-sndwnd 64",
        );
        let Command::Role(role) = c.command else {
            panic!("a role expected");
        };
        let RoleCommand::Client(a) = *role else {
            panic!("client expected");
        };
        assert_eq!(a.sources.unwrap(), ["198.18.1.2", "198.18.3.0/24"]);
        assert_eq!(
            a.server.as_deref(),
            Some(&["198.19.0.1:18081".to_owned()][..])
        );
        assert_eq!(a.common.port, Some(5000));
        assert!(a.common.verbose);
        assert_eq!(a.common.rule, Some(true));
        assert_eq!(a.common.listen_devices.unwrap(), ["a", "b"]);
        assert_eq!(a.common.kcp_tuning.sndwnd, Some(64));
        let c =
            parse("ikago client -r 198.18.1.2 -s 198.19.0.1:1 --record r.pcapng --record-max-mb 5");
        assert_eq!(c.record.record, Some(PathBuf::from("r.pcapng")));
        assert_eq!(c.record.record_max_mb, Some(5));
        let c = parse("ikago --record s.pcapng server -p 1");
        assert_eq!(c.record.record, Some(PathBuf::from("s.pcapng")));
        let c = parse("ikago server -p 18081 -c s.json --log /tmp/x.log");
        let Command::Role(role) = c.command else {
            panic!("a role expected");
        };
        let RoleCommand::Server(s) = *role else {
            panic!("server expected");
        };
        assert_eq!(s.common.port, Some(18081));
        assert_eq!(s.common.config, Some(PathBuf::from("s.json")));
        assert!(matches!(
            parse("ikago list-devices").command,
            Command::ListDevices
        ));
        let Command::Check(check) =
            parse("ikago check client -r 198.18.1.2 -s 198.19.0.1:18081 --rule").command
        else {
            panic!("check expected");
        };
        let RoleCommand::Client(a) = check.role else {
            panic!("a client to check");
        };
        assert_eq!(a.common.rule, Some(true));
        assert!(matches!(
            parse("ikago check server -p 18081").command,
            Command::Check(c) if matches!(c.role, RoleCommand::Server(_))
        ));
        assert!(Cli::try_parse_from(["ikago", "check"]).is_err());
        assert!(Cli::try_parse_from(["ikago", "client", "--bogus"]).is_err());
    }

    #[test]
    fn config_file_role_comes_from_its_keys() {
        let dir = std::env::temp_dir().join(format!("ikago-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let client = dir.join("client.json");
        std::fs::write(
            &client,
            "{\n# comment\n\"sources\": [\"198.18.1.2\"],\n\"server\": \"198.19.0.1:18081\"\n}",
        )
        .unwrap();
        let server = dir.join("server.json");
        std::fs::write(&server, "{\"port\": 18081}").unwrap();
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{\"port\": }").unwrap();
        let role = |c| match c {
            Ok(Command::Role(r)) => *r,
            _ => panic!("a role expected"),
        };
        assert!(matches!(role(from_file(&client)), RoleCommand::Client(_)));
        assert!(matches!(role(from_file(&server)), RoleCommand::Server(_)));
        assert!(
            from_file(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("bad config file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
