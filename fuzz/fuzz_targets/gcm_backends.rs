#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| credvault::fuzzing::gcm_backends(data));
