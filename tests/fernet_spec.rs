//! The published Fernet spec vectors, run as data against `credvault::crypto::fernet`.
//!
//! Source: repository `fernet/spec` (<https://github.com/fernet/spec>), branch master, files
//! `generate.json`, `verify.json` (their version-0x80 entry) and `invalid.json` (all 11
//! entries; the text below matches `invalid.json` at commit
//! 8a219208ed1884505ff1f638028fd6fcc51aeb5a). Field names and values are copied as
//! published; `now` stays an RFC 3339 string and is converted by [`unix_time`].
//!
//! Every invalid case is its own test, so a failure names the case. Each must be an
//! `InvalidToken`; where the reason is meaningful it is asserted too. credvault checks in the
//! order the spec gives: base64 and framing (`Malformed`), then the HMAC (`Unauthenticated`),
//! then the time window (`Expired`, `FromTheFuture`), and only then the padding (`BadPadding`).
//! So a case's reason is the first check it fails, not necessarily the defect it is named for;
//! each case below says which it is and why (checked independently with Python's `hmac`).

#![allow(
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on unexpected errors"
)]

mod common;

use credvault::crypto::fernet::{
    EmptyKeyList, FernetKeyError, InvalidTokenReason, KEY_LEN, MAX_CLOCK_SKEW,
};
use credvault::crypto::{Fernet, InvalidToken, MultiFernet};

/// `secret` of every vector in the three files.
const SECRET: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";

/// `generate.json`, version 0x80 entry.
struct Generate {
    token: &'static str,
    now: &'static str,
    iv: [u8; 16],
    src: &'static str,
    secret: &'static str,
}

const GENERATE: Generate = Generate {
    token: "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
    now: "1985-10-26T01:20:00-07:00",
    iv: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    src: "hello",
    secret: SECRET,
};

/// `verify.json`, version 0x80 entry.
struct Verify {
    token: &'static str,
    now: &'static str,
    ttl_sec: u64,
    src: &'static str,
    secret: &'static str,
}

const VERIFY: Verify = Verify {
    token: "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
    now: "1985-10-26T01:20:01-07:00",
    ttl_sec: 60,
    src: "hello",
    secret: SECRET,
};

/// One entry of `invalid.json`.
struct Invalid {
    desc: &'static str,
    token: &'static str,
    now: &'static str,
    ttl_sec: u64,
    secret: &'static str,
}

/// `invalid.json`, in file order.
const INVALID: [Invalid; 11] = [
    Invalid {
        desc: "incorrect mac",
        token: "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFBQUFBQUFBQQ==",
        now: "1985-10-26T01:20:01-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
    Invalid {
        desc: "too short",
        token: "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==",
        now: "1985-10-26T01:20:01-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
    Invalid {
        desc: "invalid base64",
        token: "%%%%%%%%%%%%%AECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==",
        now: "1985-10-26T01:20:01-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
    Invalid {
        desc: "payload size not multiple of block size",
        token: "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPOm73QeoCk9uGib28Xe5vz6oxq5nmxbx_v7mrfyudzUm",
        now: "1985-10-26T01:20:01-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
    Invalid {
        desc: "payload padding error",
        token: "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODz4LEpdELGQAad7aNEHbf-JkLPIpuiYRLQ3RtXatOYREu2FWke6CnJNYIbkuKNqOhw==",
        now: "1985-10-26T01:20:01-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
    Invalid {
        desc: "far-future TS (unacceptable clock skew)",
        token: "gAAAAAAdwStRAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAnja1xKYyhd-Y6mSkTOyTGJmw2Xc2a6kBd-iX9b_qXQcw==",
        now: "1985-10-26T01:20:01-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
    Invalid {
        desc: "expired TTL",
        token: "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==",
        now: "1985-10-26T01:21:31-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
    Invalid {
        desc: "incorrect IV (causes padding error)",
        token: "gAAAAAAdwJ6xBQECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAkLhFLHpGtDBRLRTZeUfWgHSv49TF2AUEZ1TIvcZjK1zQ==",
        now: "1985-10-26T01:20:01-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
    Invalid {
        desc: "trailing characters after b64 padding",
        token: "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==trailingdata",
        now: "1985-10-26T01:20:01-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
    Invalid {
        desc: "invalid characters in b64",
        token: "*gAAAAAAdwJ6wAAECAwQFBgcI!CQoLDA0ODy021?cpGVWKZ_eEwC@GM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
        now: "1985-10-26T01:20:01-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
    Invalid {
        desc: "invalid non-urlsafe characters in b64",
        token: "gAAAAAAdwJ6wAAEC/AwQFBgcICQoLDA0ODy+021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
        now: "1985-10-26T01:20:01-07:00",
        ttl_sec: 60,
        secret: SECRET,
    },
];

/// Seconds since the Unix epoch of an RFC 3339 time `YYYY-MM-DDTHH:MM:SS±HH:MM`, the only form
/// the spec files use (no fractional seconds in the version-0x80 entries).
fn unix_time(rfc3339: &str) -> u64 {
    let b = rfc3339.as_bytes();
    assert_eq!(b.len(), 25, "unexpected time format: {rfc3339}");
    let num = |r: std::ops::Range<usize>| -> i64 { rfc3339[r].parse().expect("digits") };
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(14..16), num(17..19));
    let sign = match b[19] {
        b'+' => 1,
        b'-' => -1,
        _ => panic!("unexpected offset in {rfc3339}"),
    };
    let offset = sign * (num(20..22) * 3600 + num(23..25) * 60);
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss - offset).expect("after 1970")
}

fn invalid(desc: &str) -> &'static Invalid {
    INVALID
        .iter()
        .find(|c| c.desc == desc)
        .unwrap_or_else(|| panic!("no invalid.json case named {desc:?}"))
}

/// Runs `check` on each base64 codec Fernet has: `base64-simd`'s run-time dispatch (AVX2,
/// SSSE3 or its scalar code, whichever this CPU gets), then, with the `fuzzing` feature (CI
/// tests with `--all-features`), the scalar `base64` codec forced.
fn on_every_codec(check: impl Fn()) {
    check();
    #[cfg(feature = "fuzzing")]
    credvault::fuzzing::with_scalar_base64(&check);
}

/// Runs one `invalid.json` case on every base64 codec and returns the error (failing the
/// test if it decrypts, or if the codecs disagree).
fn refuse(desc: &str) -> InvalidToken {
    let err = refuse_once(desc);
    #[cfg(feature = "fuzzing")]
    assert_eq!(
        credvault::fuzzing::with_scalar_base64(|| refuse_once(desc)),
        err,
        "{desc:?}: the scalar base64 codec disagrees"
    );
    err
}

/// One `invalid.json` case on the current codec.
fn refuse_once(desc: &str) -> InvalidToken {
    let case = invalid(desc);
    let f = Fernet::new(case.secret).expect("spec key");
    let now = unix_time(case.now);
    let err = match f.decrypt_at_time(case.token, case.ttl_sec, now) {
        Ok(p) => panic!("{desc:?} decrypted to {} bytes", p.len()),
        Err(e) => e,
    };
    // MultiFernet holding the same key must refuse it for the same reason.
    let m = MultiFernet::new(vec![f]).expect("one key");
    assert_eq!(
        m.decrypt_at_time(case.token, case.ttl_sec, now)
            .expect_err("multifernet refuses it too"),
        err,
        "{desc:?}: MultiFernet disagrees with Fernet"
    );
    err
}

/// One test per `invalid.json` case, asserting the reason (the first check the token fails).
macro_rules! invalid_case {
    ($(#[doc = $why:literal])* $name:ident, $desc:literal, $reason:ident) => {
        $(#[doc = $why])*
        #[test]
        fn $name() {
            assert_eq!(refuse($desc).reason(), InvalidTokenReason::$reason, "{}", $desc);
        }
    };
}

invalid_case!(
    /// The last 32 bytes are `AAAA...` instead of the HMAC.
    spec_invalid_incorrect_mac_is_unauthenticated,
    "incorrect mac",
    Unauthenticated
);
invalid_case!(
    /// 41 bytes: shorter than version + timestamp + IV + one block + HMAC (73).
    spec_invalid_too_short_is_malformed,
    "too short",
    Malformed
);
invalid_case!(
    /// `%` is not in the base64 alphabet.
    spec_invalid_invalid_base64_is_malformed,
    "invalid base64",
    Malformed
);
invalid_case!(
    /// 72 bytes: the ciphertext is 15 bytes, not whole blocks; visible without the key.
    spec_invalid_payload_size_not_multiple_of_block_size_is_malformed,
    "payload size not multiple of block size",
    Malformed
);
invalid_case!(
    /// The HMAC is valid (the spec signed the badly padded ciphertext), so the padding check
    /// is reached and fails.
    spec_invalid_payload_padding_error_is_bad_padding,
    "payload padding error",
    BadPadding
);
invalid_case!(
    /// Valid HMAC; stamped 36 000 s after `now`, far past the 60 s skew allowance.
    spec_invalid_far_future_timestamp_is_from_the_future,
    "far-future TS (unacceptable clock skew)",
    FromTheFuture
);
invalid_case!(
    /// Valid HMAC; stamped 01:20:01, checked at 01:21:31 with a 60 s TTL.
    spec_invalid_expired_ttl_is_expired,
    "expired TTL",
    Expired
);
invalid_case!(
    /// The spec changed the IV's first byte *and re-signed the token*: its HMAC verifies
    /// (checked with Python's `hmac`), so this fails where its name says, at the padding,
    /// not at the HMAC.
    spec_invalid_incorrect_iv_is_bad_padding,
    "incorrect IV (causes padding error)",
    BadPadding
);
invalid_case!(
    /// A valid token followed by `trailingdata`: not canonical base64. (Python's `cryptography`
    /// 48 accepts it, its base64 decoding being lenient: see `fernet_python.rs`.)
    spec_invalid_trailing_characters_after_padding_is_malformed,
    "trailing characters after b64 padding",
    Malformed
);
invalid_case!(
    /// `*`, `!`, `?`, `@` inside the token. (Python's `cryptography` 48 skips them and
    /// accepts the token; credvault refuses non-canonical text, as the spec and its module
    /// documentation say: see `fernet_python.rs`.)
    spec_invalid_invalid_characters_in_base64_is_malformed,
    "invalid characters in b64",
    Malformed
);
invalid_case!(
    /// `/` and `+` belong to standard, not URL-safe, base64.
    spec_invalid_non_urlsafe_characters_in_base64_is_malformed,
    "invalid non-urlsafe characters in b64",
    Malformed
);

#[test]
fn every_invalid_json_case_has_its_own_test() {
    // The macro invocations above name each case by its `desc`; this keeps the table and
    // the tests in step.
    let tested = [
        "incorrect mac",
        "too short",
        "invalid base64",
        "payload size not multiple of block size",
        "payload padding error",
        "far-future TS (unacceptable clock skew)",
        "expired TTL",
        "incorrect IV (causes padding error)",
        "trailing characters after b64 padding",
        "invalid characters in b64",
        "invalid non-urlsafe characters in b64",
    ];
    assert_eq!(INVALID.len(), tested.len());
    for case in &INVALID {
        assert!(tested.contains(&case.desc), "{:?} untested", case.desc);
    }
}

#[test]
fn spec_times_convert_to_the_expected_unix_seconds() {
    assert_eq!(unix_time(GENERATE.now), 499_162_800);
    assert_eq!(unix_time(VERIFY.now), 499_162_801);
    assert_eq!(unix_time("1985-10-26T01:21:31-07:00"), 499_162_891);
    assert_eq!(unix_time("1970-01-01T00:00:00+00:00"), 0);
}

#[test]
fn spec_generate_vector_is_reproduced_exactly() {
    on_every_codec(|| {
        let f = Fernet::new(GENERATE.secret).unwrap();
        let token = f.danger_encrypt_with_iv(
            GENERATE.src.as_bytes(),
            unix_time(GENERATE.now),
            GENERATE.iv,
        );
        assert_eq!(token, GENERATE.token);
    });
}

#[test]
fn spec_verify_vector_decrypts_to_its_source() {
    on_every_codec(spec_verify_vector_decrypts_to_its_source_once);
}

fn spec_verify_vector_decrypts_to_its_source_once() {
    let f = Fernet::new(VERIFY.secret).unwrap();
    let now = unix_time(VERIFY.now);
    let plain = f
        .decrypt_at_time(VERIFY.token, VERIFY.ttl_sec, now)
        .unwrap();
    assert_eq!(plain.expose_secret(), VERIFY.src.as_bytes());
    assert_eq!(f.decrypt(VERIFY.token).unwrap().expose_secret(), b"hello");
    assert_eq!(
        f.extract_timestamp(VERIFY.token).unwrap(),
        unix_time(GENERATE.now)
    );
}

#[test]
fn spec_verify_vector_decrypts_through_multifernet_in_any_key_position() {
    let other = Fernet::new(Fernet::generate_key().expose_secret()).unwrap();
    let spec = Fernet::new(VERIFY.secret).unwrap();
    let now = unix_time(VERIFY.now);
    for keys in [
        vec![spec.clone(), other.clone()],
        vec![other.clone(), spec.clone()],
    ] {
        let m = MultiFernet::new(keys).unwrap();
        let plain = m
            .decrypt_at_time(VERIFY.token, VERIFY.ttl_sec, now)
            .unwrap();
        assert_eq!(plain.expose_secret(), b"hello");
    }
    let only_other = MultiFernet::new(vec![other]).unwrap();
    assert_eq!(
        only_other.decrypt(VERIFY.token).unwrap_err().reason(),
        InvalidTokenReason::Unauthenticated
    );
}

#[test]
fn spec_verify_vector_under_another_key_is_unauthenticated() {
    let f = Fernet::new(Fernet::generate_key().expose_secret()).unwrap();
    let err = f
        .decrypt_at_time(VERIFY.token, VERIFY.ttl_sec, unix_time(VERIFY.now))
        .unwrap_err();
    assert_eq!(err.reason(), InvalidTokenReason::Unauthenticated);
    assert_eq!(
        f.extract_timestamp(VERIFY.token).unwrap_err().reason(),
        InvalidTokenReason::Unauthenticated
    );
}

#[test]
fn spec_verify_token_with_surrounding_newline_still_decrypts() {
    // Documented: leading and trailing ASCII whitespace (a newline read from a file) is ignored.
    on_every_codec(|| {
        let f = Fernet::new(&format!("{SECRET}\n")).unwrap();
        let token = format!("  {}\r\n", VERIFY.token);
        assert_eq!(f.decrypt(&token).unwrap().expose_secret(), b"hello");
    });
}

#[test]
fn spec_time_window_edges_for_the_verify_vector() {
    let f = Fernet::new(SECRET).unwrap();
    let ts = unix_time(GENERATE.now);
    let ok = |ttl, now| f.decrypt_at_time(VERIFY.token, ttl, now).is_ok();
    let reason = |ttl, now| {
        f.decrypt_at_time(VERIFY.token, ttl, now)
            .unwrap_err()
            .reason()
    };
    assert!(ok(60, ts + 60));
    assert_eq!(reason(60, ts + 61), InvalidTokenReason::Expired);
    assert!(ok(60, ts - MAX_CLOCK_SKEW));
    assert_eq!(
        reason(60, ts - MAX_CLOCK_SKEW - 1),
        InvalidTokenReason::FromTheFuture
    );
    assert!(ok(0, ts));
    assert_eq!(reason(0, ts + 1), InvalidTokenReason::Expired);
}

#[test]
fn spec_expired_and_future_tokens_decrypt_without_a_ttl_as_python_does() {
    // Python's `Fernet.decrypt(token)` with no TTL checks no time at all; credvault matches.
    // Both tokens carry an empty plaintext (Python's `cryptography` 48 decrypts them to b"").
    let f = Fernet::new(SECRET).unwrap();
    for desc in ["expired TTL", "far-future TS (unacceptable clock skew)"] {
        let plain = f.decrypt(invalid(desc).token).unwrap();
        assert!(plain.is_empty(), "{desc}");
    }
}

#[test]
fn spec_padding_error_tokens_fail_without_a_ttl_too() {
    let f = Fernet::new(SECRET).unwrap();
    for desc in [
        "payload padding error",
        "incorrect IV (causes padding error)",
    ] {
        assert_eq!(
            f.decrypt(invalid(desc).token).unwrap_err().reason(),
            InvalidTokenReason::BadPadding,
            "{desc}"
        );
    }
}

// ---- Keys ----

#[test]
fn key_that_is_not_base64_is_not_base64() {
    for key in [
        "not base64!",
        // Unpadded (Python refuses it too).
        "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4",
        // Junk before the padding leaves the group incomplete.
        "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4xy=",
        // Non-ASCII text (Python refuses a str that is not ASCII).
        "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4é=",
    ] {
        assert_eq!(
            Fernet::new(key).unwrap_err(),
            FernetKeyError::NotBase64,
            "{key}"
        );
    }
}

/// Python's `Fernet(key)` decodes keys leniently (`base64.urlsafe_b64decode`): the same key
/// in these spellings is the same key here too (tokens stay strict).
#[test]
fn keys_python_accepts_are_the_same_key() {
    let canonical = Fernet::new(SECRET).unwrap();
    let token = canonical.encrypt(b"x");
    let spaced: String = SECRET.chars().flat_map(|c| [c, ' ']).collect();
    for key in [
        // Standard-alphabet characters in a URL-safe key.
        SECRET.replace('-', "+").replace('_', "/"),
        // Trailing junk after the padding is ignored.
        format!("{SECRET}x"),
        format!("{SECRET}==garbage"),
        // Characters outside the alphabet are skipped.
        spaced,
        format!("\t{SECRET}\r\n"),
        SECRET.replacen('w', "w.", 1),
    ] {
        let f = Fernet::new(&key).unwrap_or_else(|e| panic!("{key:?}: {e}"));
        assert_eq!(f.decrypt(&token).unwrap().expose_secret(), b"x", "{key:?}");
    }
}

#[test]
fn key_of_the_wrong_length_reports_its_length() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE;
    for len in [0usize, 1, 16, 31, 33, 64] {
        let key = URL_SAFE.encode(vec![7u8; len]);
        assert_eq!(
            Fernet::new(&key).unwrap_err(),
            FernetKeyError::WrongLength { len },
            "{len}"
        );
    }
    assert_eq!(
        Fernet::new("").unwrap_err(),
        FernetKeyError::WrongLength { len: 0 }
    );
    // Python skips every character outside the alphabet: nothing is left.
    assert_eq!(
        Fernet::new("%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%").unwrap_err(),
        FernetKeyError::WrongLength { len: 0 }
    );
}

#[test]
fn key_error_messages_do_not_contain_the_key() {
    let almost = &SECRET[..40];
    let padded = format!("{almost}====");
    for key in [almost, padded.as_str()] {
        let err = Fernet::new(key).unwrap_err();
        let text = format!("{err} {err:?} {err:#?}");
        assert!(!text.contains(almost), "{text}");
    }
}

#[test]
fn key_bytes_and_base64_key_build_the_same_fernet() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE;
    let raw: [u8; KEY_LEN] = URL_SAFE.decode(SECRET).unwrap().try_into().unwrap();
    let f = Fernet::from_key_bytes(&raw);
    let token = f.danger_encrypt_with_iv(b"hello", unix_time(GENERATE.now), GENERATE.iv);
    assert_eq!(token, GENERATE.token);
}

#[test]
fn generated_keys_are_44_characters_and_distinct() {
    let a = Fernet::generate_key();
    let b = Fernet::generate_key();
    assert_eq!(a.expose_secret().len(), 44);
    assert!(a.expose_secret().ends_with('='));
    assert_ne!(a, b);
    assert!(Fernet::new(a.expose_secret()).is_ok());
}

#[test]
fn multifernet_with_no_keys_is_an_error() {
    assert_eq!(MultiFernet::new(vec![]).unwrap_err(), EmptyKeyList);
}

#[test]
fn multifernet_len_counts_its_keys() {
    let f = Fernet::new(SECRET).unwrap();
    let m = MultiFernet::new(vec![f.clone(), f]).unwrap();
    assert_eq!(m.len(), 2);
    assert!(!m.is_empty());
}

/// Re-signs raw token bytes (everything but the last 32) with the spec key's signing half,
/// so that only the check under test can refuse them.
fn resign(raw: &mut [u8]) {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE;
    use hmac::{Hmac, Mac as _};
    let key = URL_SAFE.decode(SECRET).expect("spec key");
    let mut mac =
        <Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&key[..16]).expect("any key length");
    let signed = raw.len() - 32;
    mac.update(&raw[..signed]);
    raw[signed..].copy_from_slice(&mac.finalize().into_bytes());
}

#[test]
fn resigned_spec_token_still_decrypts() {
    // Control for the test below: re-signing an unchanged token changes nothing.
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE;
    let mut raw = URL_SAFE.decode(VERIFY.token).unwrap();
    resign(&mut raw);
    assert_eq!(URL_SAFE.encode(&raw), VERIFY.token);
}

#[test]
fn token_with_another_version_byte_is_malformed_even_when_its_hmac_verifies() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE;
    let f = Fernet::new(SECRET).unwrap();
    for version in [0x00, 0x7f, 0x81, 0xff] {
        let mut raw = URL_SAFE.decode(VERIFY.token).unwrap();
        raw[0] = version;
        resign(&mut raw);
        let token = URL_SAFE.encode(&raw);
        assert_eq!(
            f.decrypt(&token).unwrap_err().reason(),
            InvalidTokenReason::Malformed,
            "version {version:#x}"
        );
    }
}

/// Tokens of every plaintext length from 0 to 300 bytes (every base64 tail, and lengths on
/// both sides of `base64-simd`'s 32-character vector step), encrypted on one codec and
/// decrypted on the other, byte-identical both ways; one altered character anywhere is
/// refused the same way by both.
#[cfg(feature = "fuzzing")]
#[test]
fn both_base64_codecs_agree_on_tokens_of_every_length() {
    use credvault::fuzzing::with_scalar_base64;
    let f = Fernet::new(SECRET).unwrap();
    for len in 0..=300usize {
        let data: Vec<u8> = (0..=255u8).cycle().skip(len).take(len).collect();
        let iv = [u8::try_from(len % 256).unwrap(); 16];
        let simd = f.danger_encrypt_with_iv(&data, 1_000, iv);
        let scalar = with_scalar_base64(|| f.danger_encrypt_with_iv(&data, 1_000, iv));
        assert_eq!(simd, scalar, "len {len}");
        assert_eq!(
            with_scalar_base64(|| f.decrypt(&simd))
                .unwrap()
                .expose_secret(),
            data.as_slice()
        );
        assert_eq!(f.decrypt(&scalar).unwrap().expose_secret(), data.as_slice());
        if len % 37 == 0 {
            for i in 0..simd.len() {
                for c in [b'A', b'=', b'+', b' '] {
                    let mut t = simd.clone().into_bytes();
                    t[i] = c;
                    assert_eq!(
                        f.decrypt(&t).map(|p| p.len()),
                        with_scalar_base64(|| f.decrypt(&t).map(|p| p.len())),
                        "len {len}, char {i} set to {c}"
                    );
                }
            }
        }
    }
}
