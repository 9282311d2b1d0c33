//! `/proc`: the TCP sockets `/proc/net/tcp{,6}` lists on a port (listeners and connections), and
//! the processes owning socket inodes (`/proc/<pid>/fd/* -> socket:[inode]`)

use super::Socket;
use std::path::Path;

/// The sockets on local `port` that `/proc/net/tcp` and `/proc/net/tcp6` list
pub(super) fn sockets(port: u16) -> Vec<Socket> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| parse(&text, port))
        .collect()
}

/// The rows of a `/proc/net/tcp{,6}` table whose local port is `port`
fn parse(table: &str, port: u16) -> Vec<Socket> {
    table
        .lines()
        .skip(1)
        .filter_map(|row| {
            let f: Vec<&str> = row.split_whitespace().collect();
            let (_, local_port) = f.get(1)?.rsplit_once(':')?;
            if u16::from_str_radix(local_port, 16).ok()? != port {
                return None;
            }
            Some(Socket {
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// The processes (pid and command name, by pid) with an open fd on one of `inodes`; only those
/// whose `/proc/<pid>/fd` this process may read
pub(super) fn owners(inodes: &[u64]) -> Vec<(u32, String)> {
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<(u32, String)> = procs
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| owns(&Path::new("/proc").join(pid.to_string()), inodes))
        .filter_map(|pid| Some((pid, name(pid)?)))
        .collect();
    found.sort();
    found
}

/// Whether the process at `/proc/<pid>` has an fd on one of `inodes`
fn owns(proc_dir: &Path, inodes: &[u64]) -> bool {
    let Ok(fds) = std::fs::read_dir(proc_dir.join("fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| socket_inode(target.to_str()?))
        .any(|i| inodes.contains(&i))
}

/// The inode of an fd's link target `socket:[N]`
fn socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// A process's command name (`/proc/<pid>/comm`)
pub(super) fn name(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_to_the_sockets_on_the_port() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 00000000:46A1 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0\n   \
            1: 0100007F:9C40 0100007F:46A1 01 00000000:00000000 00:00000000 00000000     0        0 4711 1 0000000000000000 20 4 30 10 -1\n   \
            2: 0100007F:46A1 0100007F:9C41 06 00000000:00000000 03:00001234 00000000     0        0 0 3 0000000000000000\n";
        assert_eq!(
            parse(v4, 18081),
            [
                Socket {
                    inode: 31337,
                    state: 0x0A
                },
                Socket { inode: 0, state: 6 }
            ]
        );
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
            0: 00000000000000000000000000000000:46A1 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(
            parse(v6, 18081),
            [Socket {
                inode: 99,
                state: 0x0A
            }]
        );
        assert!(parse("header\ngarbage row\n: :zz\n", 18081).is_empty());
    }

    #[test]
    fn fd_links_name_socket_inodes() {
        assert_eq!(socket_inode("socket:[31337]"), Some(31337));
        assert_eq!(socket_inode("pipe:[31337]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn our_own_socket_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let inodes: Vec<u64> = sockets(port).iter().map(|s| s.inode).collect();
        let me = std::process::id();
        assert!(owners(&inodes).iter().any(|(pid, _)| *pid == me));
    }
}
