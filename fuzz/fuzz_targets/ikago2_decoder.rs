//! Fuzz target `ikago2_decoder`: the body is `ikago_proto::fuzzing::ikago2_decoder` (records,
//! anti-replay, rekeying and the handshake), which a plain test also runs on the corpus

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ikago_proto::fuzzing::ikago2_decoder(data));
