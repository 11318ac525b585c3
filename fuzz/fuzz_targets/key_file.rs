#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| credvault::fuzzing::key_file(data));
