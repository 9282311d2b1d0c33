//! Network namespaces with unique names, removed when their guard drops

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cmd;
use crate::{LabError, Result};

/// Prefix of every namespace the lab creates: `ikl-<pid>-<lab number>-<role>`
const PREFIX: &str = "ikl-";
/// Where `ip netns` keeps its named namespaces
const NETNS_DIR: &str = "/run/netns";

static LAB_NUMBER: AtomicU32 = AtomicU32::new(0);

/// A fresh identifier for one lab of this process: `ikl-<pid>-<n>`
pub(crate) fn new_lab_id() -> String {
    let n = LAB_NUMBER.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-{n}", std::process::id())
}

/// A named network namespace, deleted (with every link in it) on drop
///
/// Created with loopback up and reverse-path filtering off (the lab's asymmetric routes are
/// deliberate); IPv6 off (nothing leaves 198.18.0.0/15) unless the lab has an IPv6 plane, and
/// then on without router advertisements, autoconfiguration or duplicate address detection: the
/// only IPv6 addresses are the plan's (and each link's link-local one, which NDP needs).
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `<lab_id>-<role>`, with IPv6 on when `ipv6`
    pub(crate) fn create(lab_id: &str, role: &str, ipv6: bool) -> Result<Self> {
        let name = format!("{lab_id}-{role}");
        cmd::run("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        for scope in ["all", "default"] {
            if ipv6 {
                for (key, value) in [
                    ("accept_ra", "0"),
                    ("autoconf", "0"),
                    ("accept_dad", "0"),
                    ("router_solicitations", "0"),
                ] {
                    ns.sysctl(&format!("net.ipv6.conf.{scope}.{key}"), value)?;
                }
            } else {
                ns.sysctl(&format!("net.ipv6.conf.{scope}.disable_ipv6"), "1")?;
            }
        }
        for key in [
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.default.rp_filter",
        ] {
            ns.sysctl(key, "0")?;
        }
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `program args` inside the namespace; a non-zero exit is an error
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        cmd::run("ip", &self.exec_args(program, args))
    }

    /// Runs `program args` inside the namespace and returns whatever happened
    pub fn attempt(&self, program: &str, args: &[&str]) -> Result<std::process::Output> {
        cmd::attempt("ip", &self.exec_args(program, args), None)
    }

    /// Runs `program args` inside the namespace with `input` on standard input
    pub fn exec_with_input(&self, program: &str, args: &[&str], input: &str) -> Result<String> {
        cmd::run_with_input("ip", &self.exec_args(program, args), input)
    }

    /// Runs `ip args` against the namespace
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        cmd::run("ip", &all)
    }

    /// Sets a sysctl of this namespace (`net.*` keys are per namespace)
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(drop)
    }

    /// Reads a sysctl of this namespace
    pub fn read_sysctl(&self, key: &str) -> Result<String> {
        Ok(self.exec("sysctl", &["-n", key])?.trim().to_owned())
    }

    /// Runs `f` on a thread that has entered this namespace
    ///
    /// Sockets created by `f` stay in the namespace for their whole life, whichever thread
    /// uses them afterwards: this is how the probes talk from a host without a helper binary.
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> Result<R> {
        let path = Path::new(NETNS_DIR).join(&self.name);
        let file = File::open(&path).map_err(LabError::io(format!("open {}", path.display())))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    setns(&file, CloneFlags::CLONE_NEWNET)
                        .map_err(|e| LabError::io(format!("setns {}", self.name))(e.into()))?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn exec_args<'a>(&'a self, program: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        all
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Stragglers such as socat's forked children: started by this lab, in its namespace
        kill_all_in(&self.name);
        if let Err(e) = cmd::run("ip", &["netns", "del", &self.name]) {
            eprintln!("ikago-lab: cannot delete namespace {}: {e}", self.name);
        }
    }
}

/// Deletes lab namespaces left by lab processes that no longer exist, and the processes in them
///
/// Only names of the form `ikl-<pid>-...` whose `<pid>` is gone are touched: a run that was
/// killed (SIGKILL, power loss) had no chance to drop its guards.
pub fn sweep_stale() -> Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        kill_all_in(&name);
        cmd::run("ip", &["netns", "del", &name])?;
        removed.push(name);
    }
    Ok(removed)
}

/// Kills (SIGKILL) every process left in a lab namespace: only lab processes run there
pub(crate) fn kill_all_in(name: &str) {
    for pid in pids_in(name) {
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        // Gone already is fine
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// The processes in namespace `name` (`ip netns pids`); none if it cannot be read
pub(crate) fn pids_in(name: &str) -> Vec<u32> {
    cmd::run("ip", &["netns", "pids", name])
        .map(|pids| {
            pids.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Names of the namespaces that exist now whose name starts with `prefix`
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}
