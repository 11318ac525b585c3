#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| credvault::fuzzing::wrapped_dek(data));
