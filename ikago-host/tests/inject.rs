//! Batched injection over a veth pair in throwaway namespaces (root only): frames queued in the
//! injection slots leave in order, more than one batch's worth included, through the AF_PACKET
//! socket with and without the queueing-discipline bypass, and the capture on the other end
//! counts them; and the default bypass follows the device's qdiscs

use ikago_config::QdiscBypass;
use ikago_host::capture::{self, IoOptions, drop_counters};
use ikago_host::inject::{Injectors, SLOTS, Sink};
use ikago_host::netns::Netns;
use ikago_host::qdisc;
use ikago_proto::DeviceId;
use std::time::{Duration, Instant};

/// A local experimental EtherType (IEEE 802), so that nothing else in the namespace matches
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

/// A broadcast frame of the test's EtherType carrying `seq`
fn frame(seq: u32, buf: &mut [u8]) -> usize {
    buf[..6].fill(0xff);
    buf[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    buf[12..14].copy_from_slice(&ETHERTYPE);
    buf[14..18].copy_from_slice(&seq.to_be_bytes());
    buf[18..60].fill(0x5a);
    60
}

fn sends_in_order(qdisc_bypass: QdiscBypass) {
    let a = Netns::create("inject-a").unwrap();
    let b = Netns::create("inject-b").unwrap();
    a.veth("v0", "198.18.30.1/24", &b, "v1", "198.18.30.2/24")
        .unwrap();
    let options = IoOptions {
        buffer_mb: 1,
        qdisc_bypass,
    };
    let mut capture = b
        .run(|| capture::open("v1", "ether proto 0x88b5", options))
        .unwrap()
        .unwrap()
        .capture;
    let sink = a.run(|| Sink::open("v0", qdisc_bypass)).unwrap().unwrap();
    assert!(matches!(sink, Sink::Packet(_)), "{sink:?}");
    let mut inject = Injectors::new(vec![sink], vec!["v0".into()]);

    // more than the slots hold: the queue is sent mid-turn once full, the rest at the flush
    let count = u32::try_from(SLOTS * 2 + 7).unwrap();
    for seq in 0..count {
        let len = frame(seq, inject.slot());
        inject.commit(DeviceId(0), len);
    }
    inject.flush();
    let sent = inject.counters().next().unwrap();
    assert_eq!((sent.sent, sent.failed), (u64::from(count), 0));

    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.len() < count as usize && Instant::now() < deadline {
        match capture.next_packet() {
            Ok(p) => seen.push(u32::from_be_bytes(p.data[14..18].try_into().unwrap())),
            Err(pcap::Error::TimeoutExpired) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("capture failed: {e}"),
        }
    }
    assert_eq!(seen, (0..count).collect::<Vec<_>>(), "all, in order");
    let counted = drop_counters(&mut capture);
    assert_eq!(counted.received, u64::from(count));
    assert_eq!(counted.dropped, 0);
}

#[test]
fn batches_leave_in_order() {
    if !ikago_host::netns::is_root() {
        eprintln!("skipped: the injection test needs root (network namespaces, packet sockets)");
        return;
    }
    sends_in_order(QdiscBypass::Off);
    sends_in_order(QdiscBypass::On);
    sends_in_order(QdiscBypass::Auto);
}

#[test]
fn the_default_bypass_reads_the_device_s_qdiscs() {
    if !ikago_host::netns::is_root() {
        eprintln!("skipped: the qdisc test needs root (network namespaces, tc)");
        return;
    }
    let a = Netns::create("qdisc-a").unwrap();
    let b = Netns::create("qdisc-b").unwrap();
    a.veth("v0", "198.18.30.1/24", &b, "v1", "198.18.30.2/24")
        .unwrap();
    let queues_nothing = || a.run(|| qdisc::queues_nothing("v0")).unwrap();
    let tc = |args: &[&str]| {
        let out = a.exec("tc", args).unwrap();
        assert!(out.status.success(), "tc {args:?}: {out:?}");
    };
    assert!(queues_nothing().unwrap(), "a veth's root qdisc is noqueue");
    tc(&["qdisc", "add", "dev", "v0", "clsact"]);
    assert!(!queues_nothing().unwrap(), "tc programs may run on egress");
    tc(&["qdisc", "del", "dev", "v0", "clsact"]);
    tc(&["qdisc", "replace", "dev", "v0", "root", "pfifo"]);
    assert!(!queues_nothing().unwrap(), "a queue that shapes or orders");
    assert!(a.run(|| qdisc::queues_nothing("nosuch0")).unwrap().is_err());
}
