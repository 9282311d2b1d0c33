//! Runners as an unprivileged user: `nobody` holding CAP_NET_RAW and CAP_NET_ADMIN, granted as
//! file capabilities on a copy of the binary or as ambient capabilities (as systemd's
//! `AmbientCapabilities=` does)
//!
//! [`Unprivileged::prepare`] copies the runner's binary twice into a directory of its own under
//! the system's temporary directory, readable by everyone: `caps/NAME` with `setcap
//! cap_net_raw,cap_net_admin+ep`, and `plain/NAME` without. Dropping the guard removes the
//! directory. [`Unprivileged::spawn`] starts one of them in a namespace through `setpriv`, as
//! user and group 65534 (`nobody`, `nogroup`) with no supplementary groups.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Daemon, LabError, Netns, Result, Runner, cmd};

/// User and group id the runners get: `nobody` and `nogroup`
pub const NOBODY: u32 = 65534;

/// How the unprivileged runner gets its capabilities
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// File capabilities on the binary (`setcap cap_net_raw,cap_net_admin+ep`)
    File,
    /// Ambient capabilities passed down by `setpriv`, on the binary without file capabilities
    Ambient,
    /// Only CAP_NET_RAW, ambient: enough to capture, not for `--rule`
    AmbientRawOnly,
    /// None at all
    Nothing,
}

/// Copies of one runner's binary for unprivileged runs; the directory is removed on drop
pub struct Unprivileged {
    dir: PathBuf,
    name: String,
}

impl Unprivileged {
    /// Copies `runner`'s binary into a fresh directory: one copy with file capabilities, one
    /// without
    pub fn prepare(runner: Runner) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let binary = PathBuf::from(runner.binary()?);
        let name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| LabError::Check(format!("no file name in {}", binary.display())))?
            .to_owned();
        let dir = std::env::temp_dir().join(format!(
            "ikago-lab-{}-{}-unprivileged",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let guard = Self { dir, name };
        for sub in ["caps", "plain"] {
            let folder = guard.dir.join(sub);
            std::fs::create_dir_all(&folder)
                .map_err(LabError::io(format!("create {}", folder.display())))?;
            let to = folder.join(&guard.name);
            std::fs::copy(&binary, &to).map_err(LabError::io(format!(
                "copy {} to {}",
                binary.display(),
                to.display()
            )))?;
        }
        for folder in [
            guard.dir.clone(),
            guard.dir.join("caps"),
            guard.dir.join("plain"),
        ] {
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755))
                .map_err(LabError::io(format!("chmod {}", folder.display())))?;
        }
        cmd::run(
            "setcap",
            &[
                "cap_net_raw,cap_net_admin+ep",
                &path_str(&guard.binary(Grant::File))?,
            ],
        )?;
        Ok(guard)
    }

    /// The copy a grant runs: the one with file capabilities for [`Grant::File`], else the plain
    /// one
    pub fn binary(&self, grant: Grant) -> PathBuf {
        let sub = if grant == Grant::File {
            "caps"
        } else {
            "plain"
        };
        self.dir.join(sub).join(&self.name)
    }

    /// Starts the runner with `args` in `ns` as `nobody`, its capabilities given by `grant`
    pub fn spawn(&self, ns: &Netns, label: &str, grant: Grant, args: &[String]) -> Result<Daemon> {
        let id = NOBODY.to_string();
        let mut all = vec![
            format!("--reuid={id}"),
            format!("--regid={id}"),
            "--clear-groups".to_owned(),
        ];
        let ambient = match grant {
            Grant::Ambient => Some("+net_raw,+net_admin"),
            Grant::AmbientRawOnly => Some("+net_raw"),
            Grant::File | Grant::Nothing => None,
        };
        if let Some(caps) = ambient {
            all.push(format!("--inh-caps={caps}"));
            all.push(format!("--ambient-caps={caps}"));
        }
        all.push("--".to_owned());
        all.push(path_str(&self.binary(grant))?);
        all.extend(args.iter().cloned());
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        Daemon::spawn(ns, label, "setpriv", &all)
    }
}

impl Drop for Unprivileged {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("ikago-lab: cannot remove {}: {e}", self.dir.display());
        }
    }
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| LabError::Check(format!("not UTF-8: {}", path.display())))
}

/// The effective user id of process `pid`, from `/proc/PID/status`
pub fn effective_uid(pid: u32) -> Result<u32> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(LabError::io(format!("read {path}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|uid| uid.parse().ok())
        .ok_or_else(|| LabError::Check(format!("no effective uid in {path}")))
}
