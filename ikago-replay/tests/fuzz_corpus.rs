//! Replays the fuzz corpora and crash artifacts (`fuzz/corpus/<target>`, `fuzz/artifacts/<target>`)
//! through the targets' bodies on stable, so that every input the fuzzer kept stays a regression
//! test. The core's targets run here too (through its `fuzzing` feature), beside the replay's own.

use std::path::PathBuf;

/// Every file of the corpus and artifacts folders of `target`
fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files: Vec<PathBuf> = ["corpus", "artifacts"]
        .iter()
        .filter_map(|kind| std::fs::read_dir(fuzz.join(kind).join(target)).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, body: fn(&[u8])) {
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no corpus for {target}: run `cargo run -p ikago-replay --example fuzz_seeds`"
    );
    for f in files {
        let data = std::fs::read(&f).expect("corpus files are readable");
        let run = std::panic::catch_unwind(|| body(&data));
        assert!(run.is_ok(), "{target} panicked on {}", f.display());
    }
}

#[test]
fn pcapng_reader_corpus() {
    replay("pcapng_reader", ikago_replay::fuzzing::pcapng_reader);
}

#[test]
fn open_frame_corpus() {
    replay("open_frame", ikago_proto::fuzzing::open_frame);
}

#[test]
fn client_input_corpus() {
    replay("client_input", ikago_proto::fuzzing::client_input);
}

#[test]
fn server_input_corpus() {
    replay("server_input", ikago_proto::fuzzing::server_input);
}

#[test]
fn dns_decoder_corpus() {
    replay("dns_decoder", ikago_proto::fuzzing::dns_decoder);
}

#[test]
fn ipv6_decoder_corpus() {
    replay("ipv6_decoder", ikago_proto::fuzzing::ipv6_decoder);
}

#[test]
fn reassembly_corpus() {
    replay("reassembly", ikago_proto::fuzzing::reassembly);
}

#[test]
fn kcp_datagrams_corpus() {
    replay("kcp_datagrams", ikago_proto::fuzzing::kcp_datagrams);
}

#[test]
fn stream_input_corpus() {
    replay("stream_input", ikago_proto::fuzzing::stream_input);
}

#[test]
fn ikago2_decoder_corpus() {
    replay("ikago2_decoder", ikago_proto::fuzzing::ikago2_decoder);
}
