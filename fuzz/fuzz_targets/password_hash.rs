//! Foreign password-hash strings: parsing never panics, and what parses re-encodes to a
//! string that parses back the same (see `credvault::password::fuzz_parse_hash`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| credvault::password::fuzz_parse_hash(data));
