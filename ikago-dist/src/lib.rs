//! The Debian package of IkaGo-rs: what goes into it besides the binaries
//!
//! `scripts/package.sh` builds the binaries and this crate's `ikago-dist`, runs it to generate
//! the man pages and shell completions, and packs everything with `cargo deb` (the metadata is in
//! this crate's Cargo.toml). The files of the package that are not generated live beside this crate:
//!
//! - `systemd/ikago-server.service` and `systemd/ikago-client@.service`: the units, run as the
//!   user `ikago` with CAP_NET_RAW and CAP_NET_ADMIN only, `Type=notify`;
//! - `etc/server.json` and `etc/client.json`: the commented example configs of `/etc/ikago`;
//! - `debian/`: the maintainer scripts (the user `ikago`, the permissions of `/etc/ikago`).
//!
//! The man pages and completions come from the very clap definitions the binaries parse with
//! ([`commands`]), so they cannot drift from the options.

use clap::Command;
use clap_complete::Shell;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// The packaged binaries' command lines: `ikago-async`, `ikago-sync` and `ikago-replay`
pub fn commands() -> Vec<Command> {
    vec![
        ikago_host::cli::command("ikago-async"),
        ikago_host::cli::command("ikago-sync"),
        <ikago_replay::cli::Cli as clap::CommandFactory>::command(),
    ]
}

/// Writes every generated file under `out`: the man pages of each command and of each of its
/// visible subcommands (`man/ikago-async.1`, `man/ikago-async-client.1`, ...) and its
/// completions (`bash/NAME`, `zsh/_NAME`, `fish/NAME.fish`, named as each shell's completion
/// directory expects); returns the files written
pub fn generate(out: &Path) -> io::Result<Vec<PathBuf>> {
    let man = out.join("man");
    fs::create_dir_all(&man)?;
    let mut written = Vec::new();
    for command in commands() {
        clap_mangen::generate_to(command.clone(), &man)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            written.push(completion(command.clone(), shell, out)?);
        }
    }
    for page in fs::read_dir(&man)? {
        written.push(page?.path());
    }
    written.sort();
    Ok(written)
}

/// Writes the completion script of `command` for `shell` under `out/SHELL/`
fn completion(mut command: Command, shell: Shell, out: &Path) -> io::Result<PathBuf> {
    let name = command.get_name().to_owned();
    let dir = out.join(shell.to_string());
    fs::create_dir_all(&dir)?;
    let path = dir.join(match shell {
        Shell::Zsh => format!("_{name}"),
        Shell::Fish => format!("{name}.fish"),
        _ => name.clone(),
    });
    clap_complete::generate(shell, &mut command, name, &mut File::create(&path)?);
    Ok(path)
}
