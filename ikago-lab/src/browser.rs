//! Headless Chromium inside a lab namespace, for the runners' monitor dashboard: the DOM after a
//! few polls, and screenshots
//!
//! Debian's `chromium` (`apt-get install chromium`), or the binary [`CHROMIUM_ENV`] names. It runs
//! as `ip netns exec NS chromium --headless ...`, so `127.0.0.1` in a URL is that namespace's
//! loopback, where a runner's monitor listens by default. Each run gets a fresh profile
//! directory (removed afterwards) and is killed, by its pid, after [`BROWSER_TIMEOUT`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{LabError, Netns, Result};

/// Longest a Chromium run may take
pub const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Names the Chromium binary to use instead of looking for one
pub const CHROMIUM_ENV: &str = "IKAGO_CHROMIUM";

/// Flags of every run: headless, no sandbox (root), and nothing that talks to Google
const FLAGS: [&str; 11] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--window-size=1200,900",
    "--lang=en-US",
];

/// A Chromium binary that runs
#[derive(Clone, Debug)]
pub struct Chromium {
    program: String,
}

/// A scratch directory removed on drop
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Chromium {
    /// The binary of [`CHROMIUM_ENV`], else the first of `chromium`, `chromium-browser`,
    /// `google-chrome` and `chrome-headless-shell` whose `--version` succeeds
    pub fn find() -> Option<Self> {
        let names = [
            "chromium",
            "chromium-browser",
            "google-chrome",
            "chrome-headless-shell",
        ];
        std::env::var(CHROMIUM_ENV)
            .into_iter()
            .chain(names.map(String::from))
            .find(|program| {
                Command::new(program)
                    .arg("--version")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .map(|program| Self { program })
    }

    /// The binary
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The DOM of `url` as Chromium in `ns` sees it once `budget` of virtual time has passed
    /// (the dashboard polls once per virtual second)
    pub fn dump_dom(&self, ns: &Netns, url: &str, budget: Duration) -> Result<String> {
        let out = self.run(ns, &["--dump-dom".to_owned()], url, budget)?;
        String::from_utf8(out).map_err(|_| LabError::Check("the DOM is not UTF-8".into()))
    }

    /// Saves a PNG screenshot of `url` as `png` after `budget` of virtual time
    pub fn screenshot(&self, ns: &Netns, url: &str, png: &Path, budget: Duration) -> Result<()> {
        if let Some(dir) = png.parent() {
            std::fs::create_dir_all(dir)
                .map_err(LabError::io(format!("create {}", dir.display())))?;
        }
        let _ = std::fs::remove_file(png);
        let shot = format!("--screenshot={}", png.display());
        self.run(ns, &[shot], url, budget)?;
        let image = std::fs::read(png).map_err(LabError::io(format!("read {}", png.display())))?;
        if !image.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err(LabError::Check(format!("{} is not a PNG", png.display())));
        }
        Ok(())
    }

    /// Runs Chromium in `ns` on `url` with `extra` flags; returns its standard output
    fn run(&self, ns: &Netns, extra: &[String], url: &str, budget: Duration) -> Result<Vec<u8>> {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let run = RUNS.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("ikago-lab-chromium-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile)
            .map_err(LabError::io(format!("create {}", profile.display())))?;
        let scratch = Scratch(dir);
        let (out_path, err_path) = (scratch.0.join("stdout"), scratch.0.join("stderr"));
        let create =
            |p: &Path| File::create(p).map_err(LabError::io(format!("create {}", p.display())));
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns.name(), &self.program])
            .args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--virtual-time-budget={}", budget.as_millis()))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(create(&out_path)?)
            .stderr(create(&err_path)?);
        let what = format!("{} {url}", self.program);
        let mut child = command.spawn().map_err(|source| LabError::Spawn {
            cmd: what.clone(),
            source,
        })?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .map_err(LabError::io(format!("wait for {what}")))?
            {
                break status;
            }
            if started.elapsed() > BROWSER_TIMEOUT {
                // our child, by pid (ip netns exec execs chromium); its helpers die with the
                // namespace's other stragglers when the lab is torn down
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::Timeout {
                    what,
                    after: BROWSER_TIMEOUT,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if !status.success() {
            let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
            let lines = stderr.lines().collect::<Vec<_>>();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            return Err(LabError::Check(format!(
                "{what} failed ({status}):\n{tail}"
            )));
        }
        std::fs::read(&out_path).map_err(LabError::io(format!("read {}", out_path.display())))
    }
}

/// The number in attribute `name` of the element marked `data-peer="peer"` in a dashboard DOM
/// (`data-bytes-out`, `data-packets-in`, ...)
pub fn peer_attribute(dom: &str, peer: &str, name: &str) -> Option<u64> {
    let at = dom.find(&format!("data-peer=\"{peer}\""))?;
    let tag_start = dom[..at].rfind('<')?;
    let tag_end = at + dom[at..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    tag[start..].split('"').next()?.parse().ok()
}

/// How many snapshots the dashboard applied (its `<body data-updates>`)
pub fn dashboard_updates(dom: &str) -> Option<u64> {
    let key = "data-updates=\"";
    let start = dom.find(key)? + key.len();
    dom[start..].split('"').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_peer_attributes() {
        let dom = r#"<body data-updates="3"><section class="peer" data-peer="198.18.21.2" data-bytes-out="1500" data-packets-out="3"><h2>x</h2></section></body>"#;
        assert_eq!(
            peer_attribute(dom, "198.18.21.2", "data-bytes-out"),
            Some(1500)
        );
        assert_eq!(
            peer_attribute(dom, "198.18.21.2", "data-packets-out"),
            Some(3)
        );
        assert_eq!(peer_attribute(dom, "198.18.21.2", "data-bytes-in"), None);
        assert_eq!(peer_attribute(dom, "198.18.21.3", "data-bytes-out"), None);
        assert_eq!(dashboard_updates(dom), Some(3));
    }
}
