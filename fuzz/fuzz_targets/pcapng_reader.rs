//! Fuzz target `pcapng_reader`: the body is `ikago_replay::fuzzing::pcapng_reader` (parse a
//! capture, map its interfaces, drive the client and server), which a plain test also runs

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ikago_replay::fuzzing::pcapng_reader(data));
