//! Every AES-256-GCM backend of this build (`AeadBackend::ALL`: RustCrypto's `aes-gcm`
//! always, `ring` with the `ring` feature) on the same known answers, and on each other's
//! output. The vectors (tests/data/aes256gcm_kat.txt) are NIST CAVP's `gcmEncryptExtIV256`
//! and Project Wycheproof's 96-bit-nonce AES-256-GCM cases, valid and invalid.
//!
//! The raw GCM entry points live behind the `fuzzing` feature (CI tests with
//! `--all-features`).

#![cfg(feature = "fuzzing")]
#![allow(
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on unexpected errors"
)]

use credvault::KeyVersion;
use credvault::crypto::{AeadBackend, AeadKey, Context, aead};
use credvault::fuzzing::{gcm_backends, gcm_open_raw, gcm_seal_raw};
use proptest::prelude::*;

struct Kat {
    line: usize,
    source: String,
    valid: bool,
    key: [u8; 32],
    nonce: [u8; 12],
    aad: Vec<u8>,
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
    tag: [u8; 16],
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn kats() -> Vec<Kat> {
    include_str!("data/aes256gcm_kat.txt")
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.is_empty())
        .map(|(i, l)| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 8, "line {}", i + 1);
            Kat {
                line: i + 1,
                source: f[0].to_owned(),
                valid: f[1] == "pass",
                key: hex(f[2]).try_into().unwrap(),
                nonce: hex(f[3]).try_into().unwrap(),
                aad: hex(f[4]),
                plaintext: hex(f[5]),
                ciphertext: hex(f[6]),
                tag: hex(f[7]).try_into().unwrap(),
            }
        })
        .collect()
}

#[test]
fn the_vector_file_has_nist_and_wycheproof_valid_and_invalid_cases() {
    let all = kats();
    assert!(all.iter().filter(|k| k.source == "nist").count() >= 300);
    assert!(all.iter().any(|k| k.source == "wycheproof" && k.valid));
    assert!(all.iter().any(|k| k.source == "wycheproof" && !k.valid));
}

#[test]
fn every_backend_matches_every_known_answer() {
    let all = kats();
    for &backend in AeadBackend::ALL {
        for k in &all {
            let opened = gcm_open_raw(backend, &k.key, k.nonce, &k.aad, &k.ciphertext, &k.tag);
            if k.valid {
                let (ct, tag) = gcm_seal_raw(backend, &k.key, k.nonce, &k.aad, &k.plaintext);
                assert_eq!(ct, k.ciphertext, "{backend:?} line {}", k.line);
                assert_eq!(tag, k.tag, "{backend:?} line {}", k.line);
                let opened = opened.unwrap_or_else(|| panic!("{backend:?} line {}", k.line));
                assert_eq!(opened.expose_secret(), k.plaintext.as_slice());
            } else {
                assert!(
                    opened.is_none(),
                    "{backend:?} opened invalid line {}",
                    k.line
                );
            }
        }
    }
}

/// The pure-Rust backend is reachable in every build, whatever the default: the fallback a
/// build with `ring` can still be told to use.
#[test]
fn rust_crypto_backend_is_forced_by_from_bytes_with() {
    let key = AeadKey::from_bytes_with(&[1; 32], AeadBackend::RustCrypto);
    assert_eq!(key.backend(), AeadBackend::RustCrypto);
    assert!(AeadBackend::ALL.contains(&AeadBackend::DEFAULT));
    assert_eq!(
        AeadKey::from_bytes(&[1; 32]).backend(),
        AeadBackend::DEFAULT
    );
    #[cfg(feature = "ring")]
    assert_eq!(AeadBackend::DEFAULT, AeadBackend::Ring);
}

#[test]
fn records_sealed_on_one_backend_open_on_every_other_at_every_size() {
    let ctx = Context::record("acme", "oauth_token", "github").unwrap();
    for size in [0, 1, 15, 16, 17, 31, 32, 33, 255, 256, 4096, 65_536, 65_537] {
        let plaintext: Vec<u8> = (0..=255u8).cycle().take(size).collect();
        let blobs: Vec<Vec<u8>> = AeadBackend::ALL
            .iter()
            .map(|&b| {
                let key = AeadKey::from_bytes_with(&[9; 32], b);
                aead::danger_seal_with_nonce(&key, KeyVersion::FIRST, &plaintext, &ctx, [3; 12])
                    .unwrap()
            })
            .collect();
        assert!(blobs.windows(2).all(|w| w[0] == w[1]), "size {size}");
        for &b in AeadBackend::ALL {
            let key = AeadKey::from_bytes_with(&[9; 32], b);
            let opened = aead::open(&key, &blobs[0], &ctx).unwrap();
            assert_eq!(opened.expose_secret(), plaintext.as_slice(), "{b:?} {size}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The fuzz target's checks (same bytes on every backend, each opens the others' records,
    /// a flipped bit is refused) on random inputs, so `cargo test` covers them too.
    #[test]
    fn fuzz_target_invariants_hold(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        gcm_backends(&data);
    }
}
