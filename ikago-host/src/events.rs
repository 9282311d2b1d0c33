//! The machines' events as log lines in the original's words (reference §11)

use ikago_proto::{Event, PeerLostReason};
use log::Level;

/// Logs one event: connections at info, per-flow detail (NAT, ARP, retries) at verbose
pub fn log(e: &Event) {
    let (level, line) = line(e);
    log::log!(level, "{line}");
}

/// The level and text of an event's line
pub fn line(e: &Event) -> (Level, String) {
    match e {
        Event::Connecting { server, retry: 0 } => {
            (Level::Info, format!("Connect to server {server}"))
        }
        Event::Connecting { server, retry } => (
            Level::Debug,
            format!("Send TCP SYN to server {server} again (retry {retry})"),
        ),
        Event::Connected { server, rtt } => (
            Level::Info,
            format!("Connected to server {server} in {} ms", rtt.as_millis()),
        ),
        Event::PeerLost {
            server,
            reason: PeerLostReason::Reset,
        } => (
            Level::Error,
            format!("Receive TCP RST from server {server}, reconnecting"),
        ),
        Event::PeerLost {
            server,
            reason: PeerLostReason::Timeout,
        } => (
            Level::Error,
            format!("Cannot receive response from server {server}, is your network down?"),
        ),
        Event::ClientConnected { client } => (Level::Info, format!("Connect from client {client}")),
        Event::ClientExpired { client } => (
            Level::Info,
            format!("Disconnect from client {client} (silent)"),
        ),
        Event::SourceJoined { ip, mac, device } => (
            Level::Info,
            format!("Device {ip} [{mac}] joined the network on {device}"),
        ),
        Event::ArpReplied { publish, requester } => (
            Level::Debug,
            format!("Reply an ARP request for {publish} from {requester}"),
        ),
        Event::NeighborResolved { ip, mac } => (Level::Debug, format!("Resolve {ip} at [{mac}]")),
        Event::NatMapped {
            inner,
            public,
            protocol,
            ..
        } => (
            Level::Debug,
            format!("NAT {inner} -> {public} ({})", protocol_name(*protocol)),
        ),
        Event::NatExpired { public, protocol } => (
            Level::Debug,
            format!("Recycle NAT {public} ({})", protocol_name(*protocol)),
        ),
        Event::Dropped { reason, count } => (
            Level::Warn,
            format!("Drop {count} packet(s): {}", reason.label()),
        ),
        other => (Level::Debug, format!("{other:?}")),
    }
}

/// `TCP`, `UDP`, `ICMP` or the number
fn protocol_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        n => format!("protocol {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikago_proto::DropReason;
    use std::time::Duration;

    #[test]
    fn lines_users_expect() {
        let server = "1.2.3.4:18081".parse().unwrap();
        let e = Event::Connected {
            server,
            rtt: Duration::from_micros(12_400),
        };
        assert_eq!(
            line(&e),
            (
                Level::Info,
                "Connected to server 1.2.3.4:18081 in 12 ms".into()
            )
        );
        let e = Event::ClientConnected {
            client: "198.18.2.1:50000".parse().unwrap(),
        };
        assert_eq!(line(&e).1, "Connect from client 198.18.2.1:50000");
        let e = Event::NatMapped {
            client: "198.18.2.1:50000".parse().unwrap(),
            protocol: 17,
            inner: "198.18.11.2:40000".parse().unwrap(),
            public: "198.18.13.1:49152".parse().unwrap(),
        };
        assert_eq!(
            line(&e),
            (
                Level::Debug,
                "NAT 198.18.11.2:40000 -> 198.18.13.1:49152 (UDP)".into()
            )
        );
        let e = Event::Dropped {
            reason: DropReason::DecryptFailed,
            count: 3,
        };
        assert_eq!(
            line(&e),
            (Level::Warn, "Drop 3 packet(s): decrypt_failed".into())
        );
    }
}
