//! Fuzz target `dns_decoder`: the body is `ikago_proto::fuzzing::dns_decoder`, which a plain test also runs on the corpus

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ikago_proto::fuzzing::dns_decoder(data));
