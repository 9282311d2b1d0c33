//! Whether the lab can run here: it needs root for namespaces, links and firewall rules

/// Whether the process runs as root; if not, prints `skipped: lab tests need root`
///
/// Call it first in every lab test and return early (passing) when it is false.
pub fn require_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        println!("skipped: lab tests need root");
        eprintln!("skipped: lab tests need root");
    }
    root
}
