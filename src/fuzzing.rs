//! Entry points for the fuzz targets in `fuzz/`: each decoder, with an assertion about what it
//! returns. Not part of the public API (hidden, unstable); here so that the targets stay
//! one-liners and cannot drift from the crate.

pub use crate::crypto::b64::with_scalar as with_scalar_base64;
use crate::crypto::fernet::{Fernet, InvalidTokenReason, MAX_CLOCK_SKEW};
use crate::crypto::{AeadBackend, AeadKey, Context, aead, format};
use crate::keys::Keyring;
use crate::{KeyVersion, SecretBytes};

/// The fixed Fernet key of the fuzz targets: 32 bytes of 0x07.
pub const FERNET_KEY: [u8; 32] = [7; 32];

/// The fixed keyring of the sealed-record targets: version 1 = 32 bytes of 0x07 (primary).
pub const KEYRING_JSON: &str = r#"{"format":"credvault-keyring","version":1,"min_decryption_version":1,"keys":[{"version":1,"state":"primary","created_at":0,"key":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"}]}"#;

/// Arbitrary bytes as a Fernet token. A token that decrypts must re-encrypt, with its own
/// timestamp and IV, to exactly the same text (the decoder accepts only canonical tokens).
///
/// Every call also runs under [`with_scalar_base64`] and must give the same answers, so both
/// base64 codecs (`base64-simd`'s run-time dispatch and the scalar `base64` crate) are fuzzed.
pub fn fernet_decrypt(data: &[u8]) {
    let f = Fernet::from_key_bytes(&FERNET_KEY);
    let simd = (f.decrypt(data), f.extract_timestamp(data));
    let scalar = with_scalar_base64(|| (f.decrypt(data), f.extract_timestamp(data)));
    assert_eq!(simd, scalar, "base64 codecs disagree");
    with_scalar_base64(|| fernet_decrypt_once(&f, data));
    fernet_decrypt_once(&f, data);
}

fn fernet_decrypt_once(f: &Fernet, data: &[u8]) {
    let _ = f.decrypt_at_time(data, 60, 1_000_000);
    let _ = f.extract_timestamp(data);
    if let Ok(plain) = f.decrypt(data) {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::URL_SAFE
            .decode(data.trim_ascii())
            .unwrap_or_default();
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[1..9]);
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&raw[9..25]);
        let again = f.danger_encrypt_with_iv(plain.expose_secret(), u64::from_be_bytes(ts), iv);
        assert_eq!(again.as_bytes(), data.trim_ascii());
    }
}

/// Structured input: timestamp, TTL and now (u64 BE each), then plaintext. The token must
/// round-trip, and the time decision must match Python's rule computed without overflow.
pub fn fernet_time(data: &[u8]) {
    if data.len() < 24 {
        return;
    }
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&data[i * 8..i * 8 + 8]);
        u64::from_be_bytes(w)
    };
    let (ts, ttl, now) = (word(0), word(1), word(2));
    let f = Fernet::from_key_bytes(&FERNET_KEY);
    let token = f.encrypt_at_time(&data[24..], ts);
    let expired = u128::from(ts) + u128::from(ttl) < u128::from(now);
    let future = u128::from(now) + u128::from(MAX_CLOCK_SKEW) < u128::from(ts);
    match f.decrypt_at_time(&token, ttl, now) {
        Ok(plain) => {
            assert!(!expired && !future);
            assert_eq!(plain.expose_secret(), &data[24..]);
        }
        Err(e) if expired => assert_eq!(e.reason(), InvalidTokenReason::Expired),
        Err(e) => {
            assert!(future);
            assert_eq!(e.reason(), InvalidTokenReason::FromTheFuture);
        }
    }
}

/// Arbitrary bytes as a sealed record. Whatever parses must re-serialise to the same header.
pub fn sealed_open(data: &[u8]) {
    let Ok(ring) = Keyring::from_json(KEYRING_JSON, "fuzz") else {
        unreachable!("fixed keyring parses")
    };
    let Ok(ctx) = Context::record("acme", "oauth_token", "github") else {
        unreachable!("short context")
    };
    let _ = ring.open(data, &ctx);
    if let Ok(sealed) = format::parse(data) {
        assert_eq!(&sealed.header.to_bytes()[..], &data[..format::PREFIX_LEN]);
        assert_eq!(sealed.ciphertext.len() + format::OVERHEAD, data.len());
    }
}

/// Arbitrary text as a `cv1.` record: what decodes must encode back to the same text.
pub fn sealed_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(bytes) = format::from_text(text) {
        assert_eq!(format::to_text(&bytes), text.trim_ascii());
    }
}

/// Arbitrary text as a key file: what loads must save and load back to the same keyring.
pub fn key_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ring) = Keyring::from_json(text, "fuzz") {
        let json = ring.to_json();
        let Ok(again) = Keyring::from_json(json.expose_secret(), "fuzz") else {
            panic!("a saved keyring must load")
        };
        assert!(ring.infos().eq(again.infos()));
    }
}

/// Arbitrary bytes as a tenant's wrapped data key: unwrapping must fail cleanly (no key can
/// be forged without the KEK), whatever the bytes.
pub fn wrapped_dek(data: &[u8]) {
    let Ok(ring) = Keyring::from_json(KEYRING_JSON, "fuzz") else {
        unreachable!("fixed keyring parses")
    };
    let Ok(tenant) = crate::TenantId::new("acme") else {
        unreachable!("valid tenant id")
    };
    let shred = SecretBytes::new(vec![9; 32]);
    let unwrapped =
        crate::envelope::TenantDek::unwrap(&ring, &shred, &tenant, KeyVersion::FIRST, data);
    assert!(
        unwrapped.is_err(),
        "a wrapped key was forged without the KEK"
    );
}

/// AES-256-GCM without the sealed-record framing, on one backend: ciphertext and tag. For
/// the known-answer tests (NIST, Wycheproof) of every backend.
pub fn gcm_seal_raw(
    backend: AeadBackend,
    key: &[u8; 32],
    nonce: [u8; 12],
    aad: &[u8],
    plaintext: &[u8],
) -> (Vec<u8>, [u8; 16]) {
    let mut out = plaintext.to_vec();
    let Ok(tag) = AeadKey::from_bytes_with(key, backend).seal_in_place(nonce, aad, &mut out) else {
        panic!("gcm refused a short plaintext")
    };
    (out, tag)
}

/// The opening half of [`gcm_seal_raw`]: `None` when the tag does not verify.
pub fn gcm_open_raw(
    backend: AeadBackend,
    key: &[u8; 32],
    nonce: [u8; 12],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8; 16],
) -> Option<SecretBytes> {
    let mut out = SecretBytes::copy_from_slice(ciphertext);
    AeadKey::from_bytes_with(key, backend)
        .open_in_place(nonce, aad, out.expose_secret_mut(), tag)
        .ok()
        .map(|()| out)
}

/// Every AES-GCM backend of this build on the same input. Structured input: nonce (12 bytes),
/// an AAD length byte, then AAD and plaintext. All backends must seal to the same bytes, open
/// each other's records, and refuse the record with one bit flipped (a bit the input picks);
/// the input itself, as a sealed record, must open (or fail) the same way on every backend.
pub fn gcm_backends(data: &[u8]) {
    let Ok(ctx) = Context::record("acme", "oauth_token", "github") else {
        unreachable!("short context")
    };
    let keys: Vec<AeadKey> = AeadBackend::ALL
        .iter()
        .map(|&b| AeadKey::from_bytes_with(&[7; 32], b))
        .collect();
    let opened: Vec<_> = keys.iter().map(|k| aead::open(k, data, &ctx)).collect();
    assert!(
        opened.windows(2).all(|w| w[0] == w[1]),
        "backends disagree on open"
    );

    if data.len() < 13 {
        return;
    }
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&data[..12]);
    let rest = &data[13..];
    let (aad, plaintext) = rest.split_at(usize::from(data[12]).min(rest.len()));
    let sealed: Vec<_> = keys
        .iter()
        .map(|k| gcm_seal_raw(k.backend(), &[7; 32], nonce, aad, plaintext))
        .collect();
    assert!(
        sealed.windows(2).all(|w| w[0] == w[1]),
        "backends disagree on seal"
    );
    let (ct, tag) = &sealed[0];
    let flip = usize::from(data[12]) * 8 % ((ct.len() + 16) * 8);
    let (mut bad_ct, mut bad_tag) = (ct.clone(), *tag);
    if flip / 8 < ct.len() {
        bad_ct[flip / 8] ^= 1 << (flip % 8);
    } else {
        bad_tag[flip / 8 - ct.len()] ^= 1 << (flip % 8);
    }
    for k in &keys {
        let back = gcm_open_raw(k.backend(), &[7; 32], nonce, aad, ct, tag);
        assert_eq!(
            back.as_ref().map(SecretBytes::expose_secret),
            Some(plaintext)
        );
        assert!(gcm_open_raw(k.backend(), &[7; 32], nonce, aad, &bad_ct, &bad_tag).is_none());
        // The framed record too: sealed on one backend, opened on every other.
        let Ok(record) = aead::danger_seal_with_nonce(k, KeyVersion::FIRST, plaintext, &ctx, nonce)
        else {
            unreachable!("short plaintext")
        };
        for other in &keys {
            let Ok(p) = aead::open(other, &record, &ctx) else {
                panic!(
                    "a record sealed on {:?} does not open on {:?}",
                    k.backend(),
                    other.backend()
                )
            };
            assert_eq!(p.expose_secret(), plaintext);
        }
    }
}
