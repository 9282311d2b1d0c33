//! Fuzz target `stream_input`: the body is `ikago_proto::fuzzing::stream_input`, which a plain test also runs on the corpus

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ikago_proto::fuzzing::stream_input(data));
