//! Properties of the crypto core: round trips, tamper resistance, context isolation, and
//! `Debug` output that never shows a secret.
//!
//! Case counts are kept modest so the file runs in a few seconds in a debug build; the
//! single-bit-flip and truncation properties are also checked exhaustively on small inputs.

#![allow(
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on unexpected errors"
)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use credvault::crypto::fernet::{FernetKeyError, InvalidTokenReason};
use credvault::crypto::{AeadKey, Context, CryptoError, Fernet, MultiFernet, aead, format};
use credvault::{KeyVersion, SecretBytes, SecretString};
use proptest::prelude::*;

fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    v
}

fn random_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    rand::rng().fill_bytes(&mut k);
    k
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

/// Flips one bit of a token's raw bytes and re-encodes it as canonical URL-safe base64.
fn flip_token_bit(token: &str, bit: usize) -> String {
    URL_SAFE.encode(flip(&URL_SAFE.decode(token).expect("token is base64"), bit))
}

/// Why a Fernet token with bit `bit` of its raw bytes flipped must be refused: the version
/// byte is checked without the key, everything else is covered by the HMAC.
fn fernet_flip_reason(bit: usize) -> InvalidTokenReason {
    if bit < 8 {
        InvalidTokenReason::Malformed
    } else {
        InvalidTokenReason::Unauthenticated
    }
}

/// Checks that `token` with bit `bit` flipped fails every way of opening it, for the right
/// reason.
fn assert_fernet_flip_refused(f: &Fernet, token: &str, ts: u64, bit: usize) {
    let bad = flip_token_bit(token, bit);
    let want = fernet_flip_reason(bit);
    match f.decrypt(&bad) {
        Ok(p) => panic!("bit {bit} flipped: decrypted to {} bytes", p.len()),
        Err(e) => assert_eq!(e.reason(), want, "bit {bit}"),
    }
    assert_eq!(
        f.decrypt_at_time(&bad, u64::MAX, ts)
            .expect_err("flipped token refused with a ttl")
            .reason(),
        want,
        "bit {bit}"
    );
    assert_eq!(
        f.extract_timestamp(&bad)
            .expect_err("flipped token has no timestamp")
            .reason(),
        want,
        "bit {bit}"
    );
}

/// The typed error a sealed blob with bit `bit` flipped must give.
fn sealed_flip_error(blob: &[u8], bit: usize) -> CryptoError {
    match bit / 8 {
        0 | 1 => CryptoError::BadMagic,
        2 => CryptoError::UnsupportedFormatVersion(blob[2] ^ (1 << (bit % 8))),
        3 => CryptoError::UnsupportedAlgorithm(blob[3] ^ (1 << (bit % 8))),
        _ => CryptoError::DecryptionFailed,
    }
}

fn context_parts() -> impl Strategy<Value = (String, String, String)> {
    (".{0,16}", ".{0,16}", ".{0,16}")
}

fn record(parts: &(String, String, String)) -> Context {
    Context::record(&parts.0, &parts.1, &parts.2).expect("short context parts")
}

// ---------------------------------------------------------------------------------------------
// Fernet.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn fernet_round_trips_any_data_at_any_time(
        key in any::<[u8; 32]>(),
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        ts in any::<u64>(),
    ) {
        let f = Fernet::from_key_bytes(&key);
        let token = f.encrypt_at_time(&data, ts);
        prop_assert_eq!(f.decrypt(&token).unwrap().expose_secret().to_vec(), data.clone());
        prop_assert_eq!(f.decrypt_at_time(&token, 0, ts).unwrap().expose_secret().to_vec(), data.clone());
        prop_assert_eq!(f.extract_timestamp(&token).unwrap(), ts);
        // Token length: 57 bytes of framing plus the PKCS#7-padded data, in padded base64.
        let raw_len = 57 + (data.len() / 16 + 1) * 16;
        prop_assert_eq!(token.len(), raw_len.div_ceil(3) * 4);
        let m = MultiFernet::new(vec![Fernet::from_key_bytes(&random_key()), f]).unwrap();
        prop_assert_eq!(m.decrypt(&token).unwrap().expose_secret().to_vec(), data.clone());
    }

    #[test]
    fn fernet_token_under_another_key_is_unauthenticated(
        key in any::<[u8; 32]>(),
        other in any::<[u8; 32]>(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        prop_assume!(key != other);
        let token = Fernet::from_key_bytes(&key).encrypt(&data);
        let err = Fernet::from_key_bytes(&other).decrypt(&token).unwrap_err();
        prop_assert_eq!(err.reason(), InvalidTokenReason::Unauthenticated);
    }

    #[test]
    fn fernet_single_bit_flip_anywhere_fails_to_decrypt(
        data in proptest::collection::vec(any::<u8>(), 0..100),
        ts in any::<u64>(),
        bit in any::<proptest::sample::Index>(),
    ) {
        let f = Fernet::from_key_bytes(&random_key());
        let token = f.encrypt_at_time(&data, ts);
        let raw_bits = URL_SAFE.decode(&token).unwrap().len() * 8;
        assert_fernet_flip_refused(&f, &token, ts, bit.index(raw_bits));
    }
}

#[test]
fn fernet_every_single_bit_flip_of_a_small_token_fails_to_decrypt() {
    let f = Fernet::from_key_bytes(&random_key());
    let ts = 1_700_000_000;
    let token = f.encrypt_at_time(&random_bytes(5), ts);
    let raw_len = URL_SAFE.decode(&token).unwrap().len();
    assert_eq!(raw_len, 73);
    for bit in 0..raw_len * 8 {
        assert_fernet_flip_refused(&f, &token, ts, bit);
    }
    // The untouched token still decrypts: the flips above were the only change.
    assert!(f.decrypt(&token).is_ok());
}

#[test]
fn fernet_every_truncation_and_extension_of_a_token_fails() {
    let f = Fernet::from_key_bytes(&random_key());
    let token = f.encrypt(&random_bytes(20));
    let raw = URL_SAFE.decode(&token).unwrap();
    for len in 0..raw.len() {
        let bad = URL_SAFE.encode(&raw[..len]);
        assert!(f.decrypt(&bad).is_err(), "truncated to {len}");
    }
    for extra in 1..=48 {
        let mut longer = raw.clone();
        longer.extend(random_bytes(extra));
        let err = f.decrypt(URL_SAFE.encode(&longer)).unwrap_err();
        let want = if extra.is_multiple_of(16) {
            InvalidTokenReason::Unauthenticated
        } else {
            InvalidTokenReason::Malformed
        };
        assert_eq!(err.reason(), want, "extended by {extra}");
    }
}

// ---------------------------------------------------------------------------------------------
// Sealed AES-256-GCM records.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sealed_record_round_trips_any_data_and_context(
        key in any::<[u8; 32]>(),
        version in any::<u32>(),
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        parts in context_parts(),
    ) {
        let key = AeadKey::from_bytes(&key);
        let ctx = record(&parts);
        let blob = aead::seal(&key, KeyVersion::new(version), &data, &ctx).unwrap();
        prop_assert_eq!(blob.len(), data.len() + format::OVERHEAD);
        let parsed = format::parse(&blob).unwrap();
        prop_assert_eq!(parsed.header.key_version, KeyVersion::new(version));
        prop_assert_eq!(aead::open(&key, &blob, &ctx).unwrap().expose_secret().to_vec(), data.clone());
        // And through the text form.
        let text = format::to_text(&blob);
        prop_assert!(text.starts_with("cv1."));
        let back = format::from_text(&text).unwrap();
        prop_assert_eq!(&back, &blob);
        prop_assert_eq!(aead::open(&key, &back, &ctx).unwrap().expose_secret().to_vec(), data.clone());
    }

    #[test]
    fn cv1_text_round_trips_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let text = format::to_text(&bytes);
        prop_assert!(text.starts_with(format::TEXT_PREFIX));
        prop_assert!(!text.contains('='));
        prop_assert!(text[4..].bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        prop_assert_eq!(format::from_text(&text).unwrap(), bytes);
    }

    #[test]
    fn sealed_record_single_bit_flip_is_an_error_not_another_plaintext(
        data in proptest::collection::vec(any::<u8>(), 0..100),
        parts in context_parts(),
        bit in any::<proptest::sample::Index>(),
    ) {
        let key = AeadKey::from_bytes(&random_key());
        let ctx = record(&parts);
        let blob = aead::seal(&key, KeyVersion::new(3), &data, &ctx).unwrap();
        let bit = bit.index(blob.len() * 8);
        let bad = flip(&blob, bit);
        match aead::open(&key, &bad, &ctx) {
            Ok(p) => {
                return Err(TestCaseError::fail(format!(
                    "bit {bit} flipped: opened to {} bytes",
                    p.len()
                )));
            }
            Err(e) => prop_assert_eq!(e, sealed_flip_error(&blob, bit)),
        }
    }

    #[test]
    fn sealed_record_opened_under_any_other_context_fails(
        data in proptest::collection::vec(any::<u8>(), 0..64),
        parts in context_parts(),
        other in ".{0,16}",
        which in 0usize..3,
    ) {
        let key = AeadKey::from_bytes(&random_key());
        let ctx = record(&parts);
        let blob = aead::seal(&key, KeyVersion::new(1), &data, &ctx).unwrap();
        let mut moved = parts.clone();
        match which {
            0 => moved.0 = other,
            1 => moved.1 = other,
            _ => moved.2 = other,
        }
        if moved != parts {
            prop_assert_eq!(
                aead::open(&key, &blob, &record(&moved)).unwrap_err(),
                CryptoError::DecryptionFailed
            );
        }
        // Swapping the fields among themselves is another context too.
        let (t, k, n) = &parts;
        for perm in [(k, t, n), (n, k, t), (t, n, k), (k, n, t), (n, t, k)] {
            let swapped = (perm.0.clone(), perm.1.clone(), perm.2.clone());
            if swapped != parts {
                prop_assert_eq!(
                    aead::open(&key, &blob, &record(&swapped)).unwrap_err(),
                    CryptoError::DecryptionFailed
                );
            }
        }
    }

    #[test]
    fn sealed_record_truncated_or_extended_by_any_amount_fails(
        data in proptest::collection::vec(any::<u8>(), 0..64),
        cut in any::<proptest::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let key = AeadKey::from_bytes(&random_key());
        let ctx = Context::record("acme", "oauth_token", "github").unwrap();
        let blob = aead::seal(&key, KeyVersion::new(1), &data, &ctx).unwrap();
        let len = cut.index(blob.len());
        prop_assert!(aead::open(&key, &blob[..len], &ctx).is_err());
        let mut longer = blob.clone();
        longer.extend_from_slice(&extra);
        prop_assert_eq!(aead::open(&key, &longer, &ctx).unwrap_err(), CryptoError::DecryptionFailed);
    }
}

#[test]
fn sealed_record_every_single_bit_flip_of_a_small_blob_fails_to_open() {
    let key = AeadKey::from_bytes(&random_key());
    let ctx = Context::record("acme", "oauth_token", "github").unwrap();
    let blob = aead::seal(&key, KeyVersion::new(7), b"hello", &ctx).unwrap();
    assert_eq!(blob.len(), 41);
    for bit in 0..blob.len() * 8 {
        let bad = flip(&blob, bit);
        match aead::open(&key, &bad, &ctx) {
            Ok(p) => panic!("bit {bit} flipped: opened to {} bytes", p.len()),
            Err(e) => assert_eq!(e, sealed_flip_error(&blob, bit), "bit {bit}"),
        }
    }
    assert_eq!(
        aead::open(&key, &blob, &ctx).unwrap().expose_secret(),
        b"hello"
    );
}

#[test]
fn sealed_record_every_truncation_and_extension_fails_to_open() {
    let key = AeadKey::from_bytes(&random_key());
    let ctx = Context::record("acme", "oauth_token", "github").unwrap();
    let blob = aead::seal(&key, KeyVersion::new(7), b"hello", &ctx).unwrap();
    for len in 0..blob.len() {
        let err = aead::open(&key, &blob[..len], &ctx).unwrap_err();
        if len < format::OVERHEAD {
            assert_eq!(
                err,
                CryptoError::Truncated {
                    len,
                    min: format::OVERHEAD
                }
            );
        } else {
            assert_eq!(err, CryptoError::DecryptionFailed, "truncated to {len}");
        }
    }
    for extra in 1..=64 {
        let mut longer = blob.clone();
        longer.extend(random_bytes(extra));
        assert_eq!(
            aead::open(&key, &longer, &ctx).unwrap_err(),
            CryptoError::DecryptionFailed,
            "extended by {extra}"
        );
    }
}

#[test]
fn ciphertext_moved_to_other_tenant_fails_to_open() {
    let key = AeadKey::from_bytes(&random_key());
    let mine = Context::record("acme", "oauth_token", "github").unwrap();
    let blob = aead::seal(&key, KeyVersion::new(1), b"gho_secret", &mine).unwrap();
    for other in [
        Context::record("evil", "oauth_token", "github").unwrap(),
        Context::record("acme", "api_key", "github").unwrap(),
        Context::record("acme", "oauth_token", "gitlab").unwrap(),
        // Same bytes, other boundaries: the length prefixes keep them apart.
        Context::record("acmeo", "auth_token", "github").unwrap(),
        Context::record("", "acmeoauth_token", "github").unwrap(),
        Context::wrapped_dek("acme", KeyVersion::new(1)).unwrap(),
    ] {
        assert_eq!(
            aead::open(&key, &blob, &other).unwrap_err(),
            CryptoError::DecryptionFailed
        );
    }
}

#[test]
fn sealed_record_under_another_key_fails_to_open() {
    let ctx = Context::record("acme", "oauth_token", "github").unwrap();
    let blob = aead::seal(
        &AeadKey::from_bytes(&random_key()),
        KeyVersion::new(1),
        b"x",
        &ctx,
    )
    .unwrap();
    let other = AeadKey::from_bytes(&random_key());
    assert_eq!(
        aead::open(&other, &blob, &ctx).unwrap_err(),
        CryptoError::DecryptionFailed
    );
}

#[test]
fn sealing_twice_draws_a_fresh_nonce() {
    let key = AeadKey::from_bytes(&random_key());
    let ctx = Context::record("acme", "oauth_token", "github").unwrap();
    let a = aead::seal(&key, KeyVersion::new(1), b"same", &ctx).unwrap();
    let b = aead::seal(&key, KeyVersion::new(1), b"same", &ctx).unwrap();
    assert_ne!(
        format::parse(&a).unwrap().header.nonce,
        format::parse(&b).unwrap().header.nonce
    );
}

// ---------------------------------------------------------------------------------------------
// Debug output never shows a secret.

/// Every rendering of a secret that must not appear in `Debug` output.
fn forbidden_renderings(key_raw: &[u8], key_b64: &str, plaintext: &[u8]) -> Vec<String> {
    let mut out = vec![
        key_b64.to_owned(),
        // Rust's own rendering of the raw key, compact and pretty.
        format!("{key_raw:?}"),
        format!("{key_raw:#?}"),
        // A leading run of the byte list, in case only part of the key is shown.
        format!("{:?}", &key_raw[..8])
            .trim_end_matches(']')
            .to_owned(),
        key_raw.iter().map(|b| format!("{b:02x}")).collect(),
        format!("{plaintext:?}"),
        format!("{plaintext:#?}"),
    ];
    if let Ok(text) = std::str::from_utf8(plaintext) {
        out.push(text.to_owned());
    }
    out
}

fn assert_debug_hides(what: &str, value: &dyn std::fmt::Debug, forbidden: &[String]) {
    let rendered = [format!("{value:?}"), format!("{value:#?}")];
    for r in &rendered {
        for f in forbidden {
            assert!(!r.contains(f.as_str()), "{what} Debug shows a secret: {r}");
        }
    }
}

fn check_debug_hides_secrets(key_raw: [u8; 32], plaintext: &[u8]) {
    let key_b64 = URL_SAFE.encode(key_raw);
    let forbidden = forbidden_renderings(&key_raw, &key_b64, plaintext);

    let f = Fernet::new(&key_b64).expect("valid key");
    assert_debug_hides("Fernet", &f, &forbidden);
    let m = MultiFernet::new(vec![f.clone(), Fernet::from_key_bytes(&key_raw)]).expect("two keys");
    assert_debug_hides("MultiFernet", &m, &forbidden);
    let token = f.encrypt(plaintext);
    let decrypted = f.decrypt(&token).expect("own token decrypts");
    assert_debug_hides("decrypted SecretBytes", &decrypted, &forbidden);
    assert_debug_hides("Result<SecretBytes>", &f.decrypt(&token), &forbidden);

    let aead_key = AeadKey::from_bytes(&key_raw);
    assert_debug_hides("AeadKey", &aead_key, &forbidden);
    let ctx = Context::record("acme", "oauth_token", "github").expect("short context");
    let blob = aead::seal(&aead_key, KeyVersion::new(1), plaintext, &ctx).expect("seal");
    assert_debug_hides("opened", &aead::open(&aead_key, &blob, &ctx), &forbidden);

    assert_debug_hides(
        "SecretBytes(key)",
        &SecretBytes::copy_from_slice(&key_raw),
        &forbidden,
    );
    assert_debug_hides(
        "SecretBytes(plaintext)",
        &SecretBytes::copy_from_slice(plaintext),
        &forbidden,
    );
    assert_debug_hides(
        "SecretString(key)",
        &SecretString::from(key_b64.as_str()),
        &forbidden,
    );
    if let Ok(text) = std::str::from_utf8(plaintext) {
        assert_debug_hides(
            "SecretString(plaintext)",
            &SecretString::from(text),
            &forbidden,
        );
    }
    assert_debug_hides(
        "Vec<SecretBytes>",
        &vec![decrypted.clone(), decrypted],
        &forbidden,
    );

    // Errors: InvalidToken of each kind, key errors made from the key, CryptoError.
    let other = Fernet::from_key_bytes(&random_key());
    assert_debug_hides(
        "InvalidToken",
        &other.decrypt(&token).expect_err("wrong key"),
        &forbidden,
    );
    assert_debug_hides(
        "InvalidToken (malformed)",
        &f.decrypt(&key_b64).expect_err("a key is not a token"),
        &forbidden,
    );
    let short_key = &key_b64[..40];
    assert_debug_hides(
        "FernetKeyError",
        &Fernet::new(short_key).expect_err("30-byte key"),
        &[short_key.to_owned()],
    );
    assert_debug_hides(
        "FernetKeyError",
        &Fernet::new(&format!("{}!", &key_b64[..43])).expect_err("unpadded key with junk"),
        &forbidden,
    );
    let wrong = AeadKey::from_bytes(&random_key());
    assert_debug_hides(
        "CryptoError",
        &aead::open(&wrong, &blob, &ctx).expect_err("wrong key"),
        &forbidden,
    );
    assert_debug_hides(
        "CryptoError",
        &aead::open(&aead_key, &blob[..10], &ctx).expect_err("truncated"),
        &forbidden,
    );
}

#[test]
fn debug_of_keys_secrets_and_errors_shows_no_secret() {
    check_debug_hides_secrets(random_key(), b"correct horse battery staple");
    let key: [u8; 32] = core::array::from_fn(|i| u8::try_from(200 + i).unwrap());
    check_debug_hides_secrets(key, b"gho_16C7e42F292c6912E7710c838347Ae178B4a");
}

#[test]
fn key_error_display_and_debug_show_no_key() {
    let err = Fernet::new("c2VjcmV0LWtleS1tYXRlcmlhbA==").unwrap_err();
    assert_eq!(err, FernetKeyError::WrongLength { len: 19 });
    let text = format!("{err} {err:?} {err:#?}");
    assert!(!text.contains("c2VjcmV0"), "{text}");
    assert!(!text.contains("secret-key-material"), "{text}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn debug_shows_no_secret_for_any_key_and_plaintext(
        key in any::<[u8; 32]>(),
        plaintext in "[a-zA-Z0-9]{24,40}",
    ) {
        check_debug_hides_secrets(key, plaintext.as_bytes());
    }
}
