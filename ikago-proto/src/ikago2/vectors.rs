//! The test vectors of `docs/protocol.md`, computed here: the document must hold them exactly,
//! so that the specification and the code cannot drift apart

use super::handshake::{Initiator, Responder};
use super::keys::{Psk, RecordCipher, kdf};
use super::probe;
use super::record::Kind;
use super::session::{Rekey, Session};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

const DOC: &str = include_str!("../../../docs/protocol.md");

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The first 32 bytes of ChaCha20 (the generator ephemeral keys are drawn from) under `seed`
fn first32(seed: [u8; 32]) -> [u8; 32] {
    let mut k = [0u8; 32];
    ChaCha20Rng::from_seed(seed).fill_bytes(&mut k);
    k
}

fn vectors() -> String {
    let mut v = String::new();
    let mut line = |name: &str, value: String| writeln!(v, "{name:<22} {value}").unwrap();
    let psk = Psk::derive("correct horse", 18081);
    line("password", "\"correct horse\"".into());
    line("port", "18081".into());
    line("psk", hex(psk.bytes()));
    line("syn_key", hex(&psk.syn_key()));
    let server = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 18081);
    line("syn.unix_time", "1700000000".into());
    line("syn.server", server.to_string());
    line("syn.tsval", "0x01020304".into());
    let isn = probe::syn_isn(&psk.syn_key(), 1_700_000_000, server, 0x0102_0304);
    line("syn.isn", format!("0x{isn:08x}"));
    let server6 = SocketAddr::new(
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        18081,
    );
    line("syn.server6", server6.to_string());
    let isn6 = probe::syn_isn(&psk.syn_key(), 1_700_000_000, server6, 0x0102_0304);
    line("syn.isn6", format!("0x{isn6:08x}"));
    let (seed_i, seed_r) = ([1u8; 32], [2u8; 32]);
    line("initiator.e_private", hex(&first32(seed_i)));
    line("responder.e_private", hex(&first32(seed_r)));
    let init = Initiator::new(&psk, RecordCipher::Aes256Gcm, 1_700_000_000, seed_i);
    line("initiation", hex(init.record()));
    let now = Instant::now();
    let a = Responder::new(psk.clone(), now)
        .accept(init.record(), now, 1_700_000_000, seed_r)
        .expect("a valid initiation");
    line("response", hex(&a.response));
    let keys = init.finish(&a.response).expect("a valid response");
    line("key.client_to_server", hex(keys.tx.raw()));
    line("key.server_to_client", hex(keys.rx.raw()));
    line("key.c2s_phase1", hex(keys.tx.next().raw()));
    let mut client = Session::new(keys, Rekey::default(), now);
    let mut out = [0u8; 256];
    let n = client.seal(
        now,
        Kind::Ping,
        &0x0102_0304_0506_0708u64.to_be_bytes(),
        None,
        &mut out,
    );
    line("record.ping", hex(&out[..n]));
    // a 20-byte IPv4 header alone (total length 20), padded to a 128-byte record
    let packet = hex_bytes("4500001400004000400600000a0000010a000002");
    let n = client.seal(now, Kind::Packet, &packet, Some(1400), &mut out);
    line("record.packet_padded", hex(&out[..n]));
    line("kdf(0x00..,\"label\")", hex(&kdf(&[0; 32], b"label", &[])));
    v
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn the_specification_holds_these_vectors() {
    let v = vectors();
    let block = format!("```text\n{v}```");
    assert!(
        DOC.contains(&block),
        "docs/protocol.md must hold the test vectors exactly:\n{block}"
    );
}
