//! Throwaway network namespaces for root-only tests: the firewall test and the runners' smoke test
//!
//! A [`Netns`] is deleted when dropped, so a failing test leaves nothing behind; a [`Process`]
//! started in one is killed when dropped. Addresses used with them stay in 198.18.0.0/15
//! (RFC 2544 benchmarking space), and IPv6 is off inside, so nothing leaves the test.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether this process runs as root (the tests that need namespaces skip otherwise)
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs `program args...`, failing with its stderr when it exits non-zero
pub fn sh(program: &str, args: &[&str]) -> io::Result<Output> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(io::Error::other(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A network namespace of our own, deleted on drop
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `ikago-test-<pid>-<n>-<tag>` with loopback up and IPv6 off
    pub fn create(tag: &str) -> io::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("ikago-test-{}-{n}-{tag}", std::process::id());
        sh("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
        Ok(ns)
    }

    /// Its name
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args...`
    pub fn ip(&self, args: &[&str]) -> io::Result<Output> {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        sh("ip", &a)
    }

    /// Runs `program args...` inside, waiting for it
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        let mut a = vec!["netns", "exec", &self.name, program];
        a.extend_from_slice(args);
        sh("ip", &a)
    }

    /// A command running `program` inside (`ip netns exec NAME program`)
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs `f` on a thread that entered the namespace: sockets it opens live inside, commands it
    /// spawns run inside, and `/proc/sys/net` shows the namespace's settings
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        let file = File::open(Path::new("/run/netns").join(&self.name))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&file),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(io::Error::from)?;
                Ok(f())
            })
            .join()
            .map_err(|_| io::Error::other("the thread in the namespace panicked"))?
        })
    }

    /// Adds a veth pair `a` (here) and `b` (in `peer`), with addresses in CIDR form, up, and
    /// offloads off (or pcap sees unchecksummed frames)
    pub fn veth(
        &self,
        a: &str,
        a_addr: &str,
        peer: &Self,
        b: &str,
        b_addr: &str,
    ) -> io::Result<()> {
        sh(
            "ip",
            &[
                "link", "add", a, "netns", &self.name, "type", "veth", "peer", "name", b, "netns",
                &peer.name,
            ],
        )?;
        for (ns, dev, addr) in [(self, a, a_addr), (peer, b, b_addr)] {
            ns.ip(&["addr", "add", addr, "dev", dev])?;
            ns.ip(&["link", "set", dev, "up"])?;
            // missing ethtool leaves the offloads on, which only costs checksum noise
            let _ = ns.exec(
                "ethtool",
                &[
                    "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
                ],
            );
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = sh("ip", &["netns", "pids", &self.name]) {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = sh("kill", &["-KILL", pid]);
            }
        }
        let _ = sh("ip", &["netns", "del", &self.name]);
    }
}

/// A child process, killed when dropped
#[derive(Debug)]
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `cmd` with stdout and stderr going to `log` (appended)
    pub fn spawn(mut cmd: Command, log: &Path) -> io::Result<Self> {
        let out = File::options().create(true).append(true).open(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Self { child })
    }

    /// Sends SIGTERM and waits up to `limit` for the exit
    pub fn terminate(mut self, limit: Duration) -> io::Result<ExitStatus> {
        sh("kill", &["-TERM", &self.child.id().to_string()])?;
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if start.elapsed() > limit {
                return Err(io::Error::other("did not exit after SIGTERM"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Our own child, not reaped yet; a process stuck in the kernel is left behind after a
            // bounded wait rather than hanging the test
            let _ = self.child.kill();
            let start = Instant::now();
            while matches!(self.child.try_wait(), Ok(None)) {
                if start.elapsed() > REAP_LIMIT {
                    eprintln!("pid {} did not exit after SIGKILL", self.child.id());
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// How long a killed process gets to be reaped
const REAP_LIMIT: Duration = Duration::from_secs(10);

/// Waits up to `limit` for `path` to contain `needle`
pub fn wait_for_text(path: &Path, needle: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
