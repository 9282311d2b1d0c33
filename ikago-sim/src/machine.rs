//! Drives a core machine (Client or Server) as a runner does, plus the part of its host's kernel
//! the simulation needs
//!
//! Every input is followed by draining `poll_output` until [`Output::Timeout`] (the core's rule).
//! The kernel answers ARP and IPv6 neighbour solicitations for the device's own addresses, which
//! the core leaves to the OS (it answers only for published addresses); the rest
//! of the kernel is taken as configured the way the runners configure it (no IP forwarding, and
//! firewall rules that keep it from answering the tunnel's and the NAT's packets).

use crate::fabric::{Fabric, Origin, PortId};
use crate::ipv6;
use crate::packet;
use ikago_proto::wire::arp;
use ikago_proto::{
    ConnId, DeviceConfig, DeviceId, Input, MAX_FRAME_LEN, Mac, Machine, Output, StreamInput,
    StreamOp,
};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Outputs drained after one input before the machine is declared stuck
const MAX_OUTPUTS_PER_INPUT: usize = 1_000_000;

/// A machine with its ports, its kernel's addresses and its next deadline
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) machine: Machine,
    /// Port of each device, by `DeviceId`
    ports: Vec<PortId>,
    /// IPv4 address, IPv6 address and MAC of each device, answered by the kernel's ARP and NDP
    own: Vec<(Option<Ipv4Addr>, Option<Ipv6Addr>, [u8; 6])>,
    origin: Origin,
    /// When to feed the next `Input::Timeout`
    pub(crate) deadline: Duration,
    buf: Vec<u8>,
}

impl Node {
    /// Wraps a new machine and drains its first outputs (the client's SYN)
    pub(crate) fn new(
        machine: Machine,
        devices: &[DeviceConfig],
        ports: Vec<PortId>,
        origin: Origin,
        fabric: &mut Fabric,
    ) -> Self {
        let own = devices
            .iter()
            .map(|d| (d.addr, d.ipv6.map(|l| l.addr), d.mac.0))
            .collect();
        let mut node = Self {
            machine,
            ports,
            own,
            origin,
            deadline: Duration::ZERO,
            buf: vec![0; MAX_FRAME_LEN],
        };
        node.drain(fabric);
        node
    }

    /// Replaces the machine (a restart) and drains the new one
    pub(crate) fn replace(&mut self, machine: Machine, fabric: &mut Fabric) {
        self.machine = machine;
        self.drain(fabric);
    }

    /// A frame arrived on device `device`
    pub(crate) fn frame(&mut self, device: usize, frame: &[u8], fabric: &mut Fabric) {
        let (ip, ip6, mac) = self.own[device];
        if let Some(a) =
            packet::arp_of(frame).filter(|a| a.op == arp::OP_REQUEST && Some(a.tpa) == ip)
        {
            let reply = packet::arp_reply(&a, Mac(mac));
            fabric.send(
                self.ports[device],
                &packet::arp_frame(&reply, a.sha),
                Duration::ZERO,
            );
        }
        if let Some(own) = ip6
            && let Some(n) = ipv6::ndp_of(frame).filter(|n| !n.advert && n.target == own)
            && let Some(to) = n.lladdr
        {
            let advert = ipv6::advertise(Mac(mac), own, &n, to);
            fabric.send(self.ports[device], &advert, Duration::ZERO);
        }
        let device = DeviceId(u8::try_from(device).expect("at most 255 devices"));
        self.machine.handle_input(Input::Frame {
            now: fabric.instant(),
            device,
            data: frame,
        });
        self.drain(fabric);
    }

    /// Something happened on a tunnel connection (`tcp` mode)
    pub(crate) fn stream(&mut self, conn: ConnId, event: StreamInput<'_>, fabric: &mut Fabric) {
        self.machine.handle_input(Input::Stream {
            now: fabric.instant(),
            conn,
            event,
        });
        self.drain(fabric);
    }

    /// The deadline passed
    pub(crate) fn timeout(&mut self, fabric: &mut Fabric) {
        self.machine.handle_input(Input::Timeout(fabric.instant()));
        self.drain(fabric);
    }

    fn drain(&mut self, fabric: &mut Fabric) {
        for _ in 0..MAX_OUTPUTS_PER_INPUT {
            match self.machine.poll_output(&mut self.buf) {
                Output::Transmit(t) => fabric.send(
                    self.ports[t.device.index()],
                    &self.buf[..t.len],
                    Duration::ZERO,
                ),
                Output::Event(e) => fabric.log(self.origin, e),
                Output::Stream(op) => {
                    let bytes = match op {
                        StreamOp::Write { len, .. } => self.buf[..len].to_vec(),
                        StreamOp::Connect { .. } | StreamOp::Close { .. } => Vec::new(),
                    };
                    fabric.stream_ops.push((self.origin, op, bytes));
                }
                Output::Timeout(at) => {
                    self.deadline = fabric.virtual_time(at);
                    return;
                }
            }
        }
        panic!(
            "{:?}: poll_output never returned Timeout after {MAX_OUTPUTS_PER_INPUT} outputs",
            self.origin
        );
    }
}
