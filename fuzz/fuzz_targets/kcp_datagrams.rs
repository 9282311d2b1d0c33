//! Fuzz target `kcp_datagrams`: the body is `ikago_proto::fuzzing::kcp_datagrams`, which a plain test also runs on the corpus

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ikago_proto::fuzzing::kcp_datagrams(data));
