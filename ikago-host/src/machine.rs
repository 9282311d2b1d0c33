//! Either machine behind one type, and the drain loop both runners share

use crate::inject::Injectors;
use ikago_monitor::Role;
use ikago_proto::{Client, Event, Input, Output, Server, Stats};
use std::time::Instant;

/// The machine a runner drives
#[derive(Debug)]
pub enum Machine {
    /// The client role
    Client(Box<Client>),
    /// The server role
    Server(Box<Server>),
}

impl Machine {
    /// Feeds a frame or the passage of time
    pub fn handle_input(&mut self, input: Input<'_>) {
        match self {
            Self::Client(c) => c.handle_input(input),
            Self::Server(s) => s.handle_input(input),
        }
    }

    /// The next output; `buf` must hold [`ikago_proto::MAX_FRAME_LEN`] bytes
    pub fn poll_output(&mut self, buf: &mut [u8]) -> Output {
        match self {
            Self::Client(c) => c.poll_output(buf),
            Self::Server(s) => s.poll_output(buf),
        }
    }

    /// A snapshot of the counters
    pub fn stats(&self) -> Stats {
        match self {
            Self::Client(c) => c.stats(),
            Self::Server(s) => s.stats(),
        }
    }

    /// Which machine it is, for the monitor
    pub fn role(&self) -> Role {
        match self {
            Self::Client(_) => Role::Client,
            Self::Server(_) => Role::Server,
        }
    }

    /// Polls until [`Output::Timeout`]: injects every frame, logs every event and hands it to
    /// `on_event` (the monitor's [`Feed::record`](crate::monitor::Feed::record)), and returns
    /// the instant the machine wants [`Input::Timeout`] at; call after every input
    pub fn drain(
        &mut self,
        buf: &mut [u8],
        inject: &mut Injectors,
        mut on_event: impl FnMut(&Event),
    ) -> Instant {
        loop {
            match self.poll_output(buf) {
                Output::Transmit(t) => inject.send(t.device, &buf[..t.len]),
                Output::Event(e) => {
                    crate::events::log(&e);
                    on_event(&e);
                }
                Output::Timeout(at) => return at,
            }
        }
    }
}

/// One line of counters for the log at exit
pub fn summary(s: &Stats) -> String {
    format!(
        "Tunnel {} packets ({} bytes) out, {} packets ({} bytes) in; inner {} out, {} in; \
         local {} out, {} in; drops: {}",
        s.tunnel_tx.packets,
        s.tunnel_tx.bytes,
        s.tunnel_rx.packets,
        s.tunnel_rx.bytes,
        s.inner_tx.packets,
        s.inner_rx.packets,
        s.local_tx.packets,
        s.local_rx.packets,
        s.drops
    )
}
