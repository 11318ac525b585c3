//! Known-answer vectors for the sealed-record format, version 1 (`src/crypto/format.rs`).
//!
//! Each expected blob was computed once, independently of credvault, with Python's
//! `cryptography` 48.0.0 (`cryptography.hazmat.primitives.ciphers.aead.AESGCM`), following the
//! format as written in `format.rs`: the 8-byte header (`63 76 01 01` + key version u32 BE),
//! the 12-byte nonce, then AES-256-GCM ciphertext and tag, with associated data = the 8-byte
//! header followed by the context encoding (each part prefixed by its length, u32 BE). The
//! Python is pasted above each constant so the vector can be re-derived; the tests themselves
//! do not need Python.

#![allow(
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on unexpected errors"
)]

mod common;

use credvault::KeyVersion;
use credvault::crypto::format::{self, Algorithm};
use credvault::crypto::{AeadBackend, AeadKey, Context, CryptoError, aead};

/// Key bytes 0x00..=0x1f.
fn kat_key() -> AeadKey {
    let raw: [u8; 32] = core::array::from_fn(|i| u8::try_from(i).expect("< 256"));
    AeadKey::from_bytes(&raw)
}

/// Nonce bytes 0xa0..=0xab.
fn kat_nonce() -> [u8; 12] {
    core::array::from_fn(|i| 0xa0 + u8::try_from(i).expect("< 256"))
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ```python
// import struct
// from cryptography.hazmat.primitives.ciphers.aead import AESGCM
// key = bytes(range(32))
// nonce = bytes(range(0xa0, 0xac))
// header = bytes([0x63, 0x76, 0x01, 0x01]) + struct.pack(">I", 7)
// ctx = b"".join(struct.pack(">I", len(p)) + p for p in (b"acme", b"oauth_token", b"github"))
// ct_tag = AESGCM(key).encrypt(nonce, b"hello", header + ctx)
// print((header + nonce + ct_tag).hex())
// ```
const HELLO_BLOB: &str =
    "6376010100000007a0a1a2a3a4a5a6a7a8a9aaab8e7d10412a01ff40b971c18adbff1be54f0eaeb96b";

// Same key, nonce and key version 7; empty plaintext and context ("", "", ""):
// ```python
// ctx0 = b"".join(struct.pack(">I", 0) for _ in range(3))
// print((header + nonce + AESGCM(key).encrypt(nonce, b"", header + ctx0)).hex())
// ```
const EMPTY_BLOB: &str = "6376010100000007a0a1a2a3a4a5a6a7a8a9aaababe5d383d6c49f874c8721ca52e8de7c";

// Same key and nonce; key version 0x01020304; context ("acme", "oauth_token", "n" * 300), whose
// associated data (8 + 4+4 + 4+11 + 4+300 = 335 bytes) is longer than the 256 bytes `aead.rs`
// builds on the stack, so this exercises the heap path; plaintext bytes 0..40:
// ```python
// header = bytes([0x63, 0x76, 0x01, 0x01]) + struct.pack(">I", 0x01020304)
// ctx = b"".join(struct.pack(">I", len(p)) + p for p in (b"acme", b"oauth_token", b"n" * 300))
// ct_tag = AESGCM(key).encrypt(nonce, bytes(range(40)), header + ctx)
// print((header + nonce + ct_tag).hex())
// ```
const LONG_CONTEXT_BLOB: &str = "6376010101020304a0a1a2a3a4a5a6a7a8a9aaabe6197e2e41ce04b86a6c8dd80b77ced160bd4b0386a2547b84173c9d63b66b1ef25765dc8b07751a99f2dfaf814ab6aa6ea29d8f24701aa5";

fn hello_context() -> Context {
    Context::record("acme", "oauth_token", "github").expect("short context")
}

fn long_context() -> Context {
    Context::record("acme", "oauth_token", &"n".repeat(300)).expect("short context")
}

fn long_plaintext() -> Vec<u8> {
    (0u8..40).collect()
}

#[test]
fn hello_vector_matches_python_aesgcm_byte_for_byte() {
    let blob = aead::danger_seal_with_nonce(
        &kat_key(),
        KeyVersion::new(7),
        b"hello",
        &hello_context(),
        kat_nonce(),
    )
    .unwrap();
    assert_eq!(to_hex(&blob), HELLO_BLOB);
}

#[test]
fn hello_vector_opens_to_hello() {
    let opened = aead::open(&kat_key(), &hex(HELLO_BLOB), &hello_context()).unwrap();
    assert_eq!(opened.expose_secret(), b"hello");
}

#[test]
fn hello_vector_header_parses_to_its_fields() {
    let blob = hex(HELLO_BLOB);
    let sealed = format::parse(&blob).unwrap();
    assert_eq!(sealed.header.algorithm, Algorithm::Aes256Gcm);
    assert_eq!(sealed.header.key_version, KeyVersion::new(7));
    assert_eq!(sealed.header.nonce, kat_nonce());
    assert_eq!(sealed.ciphertext.len(), 5);
    assert_eq!(
        &blob[..8],
        &[0x63, 0x76, 0x01, 0x01, 0x00, 0x00, 0x00, 0x07]
    );
    assert_eq!(blob.len(), 5 + format::OVERHEAD);
    assert_eq!(sealed.tag.as_slice(), &blob[blob.len() - 16..]);
}

#[test]
fn empty_plaintext_and_empty_context_vector_matches_python() {
    let ctx = Context::record("", "", "").unwrap();
    let blob = aead::danger_seal_with_nonce(&kat_key(), KeyVersion::new(7), b"", &ctx, kat_nonce())
        .unwrap();
    assert_eq!(to_hex(&blob), EMPTY_BLOB);
    assert_eq!(blob.len(), format::OVERHEAD);
    assert!(aead::open(&kat_key(), &blob, &ctx).unwrap().is_empty());
}

#[test]
fn long_context_vector_matches_python() {
    let blob = aead::danger_seal_with_nonce(
        &kat_key(),
        KeyVersion::new(0x0102_0304),
        &long_plaintext(),
        &long_context(),
        kat_nonce(),
    )
    .unwrap();
    assert_eq!(to_hex(&blob), LONG_CONTEXT_BLOB);
    let opened = aead::open(&kat_key(), &blob, &long_context()).unwrap();
    assert_eq!(opened.expose_secret(), long_plaintext().as_slice());
}

/// The three Python vectors above through every AES-GCM backend of this build (the tests
/// above use the default one; with `--features ring` that is `ring`, and this test keeps the
/// pure-Rust backend on the same bytes).
#[test]
fn python_vectors_match_on_every_backend() {
    let raw: [u8; 32] = core::array::from_fn(|i| u8::try_from(i).expect("< 256"));
    let cases = [
        (
            KeyVersion::new(7),
            b"hello".to_vec(),
            hello_context(),
            HELLO_BLOB,
        ),
        (
            KeyVersion::new(7),
            Vec::new(),
            Context::record("", "", "").unwrap(),
            EMPTY_BLOB,
        ),
        (
            KeyVersion::new(0x0102_0304),
            long_plaintext(),
            long_context(),
            LONG_CONTEXT_BLOB,
        ),
    ];
    for &backend in AeadBackend::ALL {
        let key = AeadKey::from_bytes_with(&raw, backend);
        assert_eq!(key.backend(), backend);
        for (version, plaintext, ctx, expected) in &cases {
            let blob =
                aead::danger_seal_with_nonce(&key, *version, plaintext, ctx, kat_nonce()).unwrap();
            assert_eq!(to_hex(&blob), *expected, "{backend:?}");
            let opened = aead::open(&key, &hex(expected), ctx).unwrap();
            assert_eq!(opened.expose_secret(), plaintext.as_slice(), "{backend:?}");
            let mut altered = hex(expected);
            let last = altered.len() - 1;
            altered[last] ^= 1;
            assert_eq!(
                aead::open(&key, &altered, ctx).unwrap_err(),
                CryptoError::DecryptionFailed,
                "{backend:?}"
            );
        }
    }
}

#[test]
fn hello_vector_text_form_is_cv1_and_url_safe_base64_without_padding() {
    let blob = hex(HELLO_BLOB);
    let text = format::to_text(&blob);
    assert!(text.starts_with("cv1."), "{text}");
    let body = &text[4..];
    assert!(
        body.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "{text}"
    );
    assert_eq!(format::from_text(&text).unwrap(), blob);
    assert_eq!(format::from_text(&format!("  {text}\n")).unwrap(), blob);
}

#[test]
fn ciphertext_moved_to_other_tenant_fails_to_open() {
    let blob = hex(HELLO_BLOB);
    let other = Context::record("evil", "oauth_token", "github").unwrap();
    assert_eq!(
        aead::open(&kat_key(), &blob, &other).unwrap_err(),
        CryptoError::DecryptionFailed
    );
}

#[test]
fn key_version_rewritten_in_header_fails_to_open() {
    // The key version is in the associated data: relabelling a record under another version
    // must not open.
    let mut blob = hex(HELLO_BLOB);
    blob[7] = 8;
    assert_eq!(
        aead::open(&kat_key(), &blob, &hello_context()).unwrap_err(),
        CryptoError::DecryptionFailed
    );
}

// ---- Header defects: one test per defect, each the right typed error. ----

#[test]
fn bad_magic_is_bad_magic() {
    for (i, b) in [(0usize, b'x'), (1, b'x'), (0, 0x76), (1, 0x63)] {
        let mut blob = hex(HELLO_BLOB);
        blob[i] = b;
        assert_eq!(format::parse(&blob).unwrap_err(), CryptoError::BadMagic);
        assert_eq!(
            aead::open(&kat_key(), &blob, &hello_context()).unwrap_err(),
            CryptoError::BadMagic
        );
    }
}

#[test]
fn format_version_2_is_unsupported_format_version() {
    let mut blob = hex(HELLO_BLOB);
    blob[2] = 2;
    assert_eq!(
        format::parse(&blob).unwrap_err(),
        CryptoError::UnsupportedFormatVersion(2)
    );
    assert_eq!(
        aead::open(&kat_key(), &blob, &hello_context()).unwrap_err(),
        CryptoError::UnsupportedFormatVersion(2)
    );
}

#[test]
fn format_version_0_is_unsupported_format_version() {
    let mut blob = hex(HELLO_BLOB);
    blob[2] = 0;
    assert_eq!(
        format::parse(&blob).unwrap_err(),
        CryptoError::UnsupportedFormatVersion(0)
    );
}

#[test]
fn algorithm_2_is_unsupported_algorithm() {
    let mut blob = hex(HELLO_BLOB);
    blob[3] = 2;
    assert_eq!(
        format::parse(&blob).unwrap_err(),
        CryptoError::UnsupportedAlgorithm(2)
    );
    assert_eq!(
        aead::open(&kat_key(), &blob, &hello_context()).unwrap_err(),
        CryptoError::UnsupportedAlgorithm(2)
    );
}

#[test]
fn algorithm_0_is_unsupported_algorithm() {
    let mut blob = hex(HELLO_BLOB);
    blob[3] = 0;
    assert_eq!(
        format::parse(&blob).unwrap_err(),
        CryptoError::UnsupportedAlgorithm(0)
    );
}

#[test]
fn truncated_below_overhead_is_truncated() {
    let blob = hex(HELLO_BLOB);
    for len in 0..format::OVERHEAD {
        assert_eq!(
            format::parse(&blob[..len]).unwrap_err(),
            CryptoError::Truncated {
                len,
                min: format::OVERHEAD
            },
            "length {len}"
        );
        assert_eq!(
            aead::open(&kat_key(), &blob[..len], &hello_context()).unwrap_err(),
            CryptoError::Truncated {
                len,
                min: format::OVERHEAD
            },
            "length {len}"
        );
    }
}

#[test]
fn truncated_into_the_ciphertext_parses_but_fails_to_open() {
    // 36..41 bytes frame as a record with a shorter ciphertext: parse cannot tell, the tag can.
    let blob = hex(HELLO_BLOB);
    for len in format::OVERHEAD..blob.len() {
        assert!(format::parse(&blob[..len]).is_ok(), "length {len}");
        assert_eq!(
            aead::open(&kat_key(), &blob[..len], &hello_context()).unwrap_err(),
            CryptoError::DecryptionFailed,
            "length {len}"
        );
    }
}

#[test]
fn magic_is_checked_before_version_and_algorithm() {
    // A blob wrong in every header field reports the first defect.
    let mut blob = hex(HELLO_BLOB);
    blob[0] = 0;
    blob[2] = 9;
    blob[3] = 9;
    assert_eq!(format::parse(&blob).unwrap_err(), CryptoError::BadMagic);
    blob[0] = 0x63;
    assert_eq!(
        format::parse(&blob).unwrap_err(),
        CryptoError::UnsupportedFormatVersion(9)
    );
}

#[test]
fn text_without_cv1_prefix_or_with_padding_is_not_sealed_text() {
    let text = format::to_text(&hex(HELLO_BLOB));
    let body = &text[4..];
    for bad in [
        body.to_owned(),
        format!("cv2.{body}"),
        format!("CV1.{body}"),
        format!("cv1.{body}="),
        format!("cv1.{}", body.replace('-', "+").replace('_', "/") + "+/"),
        format!("cv1.{body}!"),
    ] {
        assert_eq!(
            format::from_text(&bad).unwrap_err(),
            CryptoError::NotSealedText,
            "{bad}"
        );
    }
}
