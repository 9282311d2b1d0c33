//! Fuzz target `open_frame`: the body is `ikago_proto::fuzzing::open_frame`, which a plain test also runs on the corpus

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ikago_proto::fuzzing::open_frame(data));
