//! What the scenarios share: one client with a LAN host, an Internet echo host, and helpers
//!
//! Each test file includes this module and uses a part of it.

#![allow(dead_code)]

use ikago_proto::{ClientConfig, Event};
use ikago_sim::{ClientId, HostConfig, HostId, HostIpv6, Origin, World, WorldConfig, addr};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

/// Steps a handshake may take (a few SYN retransmissions included)
pub(crate) const CONNECT_STEPS: u64 = 100_000;
/// Steps one request and its reply may take
pub(crate) const EXCHANGE_STEPS: u64 = 100_000;
/// The UDP echo port of the Internet host
pub(crate) const ECHO_PORT: u16 = 7;

/// The usual World: one client, its LAN host `pc` (198.18.11.2) and the Internet host `far`
/// (198.18.13.2), which echoes UDP on port 7
pub(crate) struct Basic {
    /// The World
    pub(crate) world: World,
    /// Its only client
    pub(crate) client: ClientId,
    /// The client's LAN host
    pub(crate) pc: HostId,
    /// The Internet host
    pub(crate) far: HostId,
}

impl Basic {
    /// The usual World, its client as [`World::add_client`] makes it
    pub(crate) fn new(config: WorldConfig) -> Self {
        Self::with_client(config, |_| {})
    }

    /// The usual World, its client configured by `configure`
    pub(crate) fn with_client(
        config: WorldConfig,
        configure: impl FnOnce(&mut ClientConfig),
    ) -> Self {
        let mut world = World::new(config);
        let client = world.add_client(configure);
        let pc = world.add_lan_host(client, HostConfig::lan("pc", addr::lan(2)));
        let far = world.add_internet_host(HostConfig::internet("far", addr::internet(2)));
        world.host_mut(far).udp_echo(ECHO_PORT);
        Self {
            world,
            client,
            pc,
            far,
        }
    }

    /// The echo service of `far`
    pub(crate) fn echo_addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(
            self.world
                .host(self.far)
                .config()
                .addr
                .expect("an IPv4 host"),
            ECHO_PORT,
        )
    }
}

/// A dual-stack LAN host `name` at 198.18.11.`n` and fd00:11::`n`
pub(crate) fn dual_stack_lan(name: &str, n: u8) -> HostConfig {
    HostConfig::lan(name, addr::lan(n)).with_ipv6(HostIpv6::lan(addr::lan6(n)))
}

/// Adds the dual-stack Internet host `far` (198.18.13.2, 2001:db8:13::2), echoing UDP on
/// [`ECHO_PORT`]
pub(crate) fn add_dual_stack_far(world: &mut World) -> HostId {
    let far = world.add_internet_host(
        HostConfig::internet("far", addr::internet(2))
            .with_ipv6(HostIpv6::internet(addr::internet6(2))),
    );
    world.host_mut(far).udp_echo(ECHO_PORT);
    far
}

/// Runs until `client` has completed its handshake; returns the virtual time it took
pub(crate) fn connect(world: &mut World, client: ClientId) -> Duration {
    world.run_until(|w| w.client(client).is_connected(), CONNECT_STEPS)
}

/// Sends `payload` from `host`'s `port` to `to` and runs until one more datagram arrives on
/// that port
pub(crate) fn exchange(
    world: &mut World,
    host: HostId,
    port: u16,
    to: impl Into<SocketAddr>,
    payload: &[u8],
) {
    let before = world.host(host).payloads_on(port).len();
    world.host_mut(host).udp_send(port, to, payload);
    world.run_until(
        |w| w.host(host).payloads_on(port).len() > before,
        EXCHANGE_STEPS,
    );
}

/// The events `origin` reported, in order
pub(crate) fn events_of(world: &World, origin: Origin) -> Vec<Event> {
    world
        .events()
        .iter()
        .filter(|e| e.origin == origin)
        .map(|e| e.event.clone())
        .collect()
}

/// `len` bytes counting up from `tag` (so that payloads of different tags differ)
pub(crate) fn payload(tag: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| tag.wrapping_add(i as u8)).collect()
}
