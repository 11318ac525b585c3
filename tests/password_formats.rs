//! Foreign password hashes verify exactly as the library that wrote them decides: every
//! hasher Django 5.2 ships, the legacy ones older Django wrote, Django's unusable-password
//! marker, and passlib 1.7.4's common schemes (issue 17). The Python side is
//! `tests/python/password_formats.py` (versions pinned in `tests/python/requirements.txt`).
//!
//! The tests without Python pin what a hostile stored hash can and cannot make us do.

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use credvault::SecretString;
use credvault::password::{PasswordError, PasswordPolicy, SchemeFamily, Verification};
use serde_json::{Value, json};

const MODULES: &[&str] = &["argon2", "bcrypt", "passlib", "django"];
const HELPER: &str = include_str!("python/password_formats.py");

/// Every scheme the helper must cover: a scheme dropped from the Python side fails the test.
const SCHEMES: &[&str] = &[
    "django pbkdf2_sha256",
    "django pbkdf2_sha1",
    "django argon2",
    "django bcrypt_sha256",
    "django bcrypt",
    "django scrypt",
    "django md5",
    "django sha1 (<= 4.2)",
    "django unsalted sha1 (<= 4.2)",
    "django unsalted md5$$ (<= 4.2)",
    "django unsalted bare md5 (<= 4.2)",
    "passlib bcrypt",
    "passlib bcrypt_sha256 v2",
    "passlib bcrypt_sha256 v1",
    "passlib pbkdf2_sha1",
    "passlib pbkdf2_sha256",
    "passlib pbkdf2_sha512",
    "passlib argon2",
    "passlib scrypt",
    "passlib sha256_crypt",
    "passlib sha512_crypt",
    "passlib ldap_md5",
    "passlib ldap_sha1",
    "passlib ldap_salted_md5",
    "passlib ldap_salted_sha1",
    "passlib ldap_salted_sha256",
    "passlib ldap_salted_sha512",
    "passlib ldap_bcrypt",
    "passlib ldap_sha256_crypt",
    "passlib ldap_sha512_crypt",
];

fn passwords() -> Vec<String> {
    vec![
        String::new(),
        "correct horse".to_owned(),
        "pässwörd ☃".to_owned(),
        "a".repeat(1000),
    ]
}

/// The helper's output, made once per test binary (it takes ~20 s: passlib's pure-Python
/// bcrypt backend is slow).
fn made_by_python() -> &'static Value {
    static MADE: OnceLock<Value> = OnceLock::new();
    MADE.get_or_init(|| {
        let request = json!({ "passwords": passwords() });
        let out = common::run_python(HELPER, request.to_string().as_bytes());
        serde_json::from_slice(&out).expect("python printed json")
    })
}

fn pw(text: &str) -> SecretString {
    SecretString::from(text)
}

#[test]
fn every_scheme_verifies_as_the_library_that_made_it_decides() {
    if !common::python_has(MODULES) {
        return;
    }
    let made = made_by_python();
    let policy = PasswordPolicy::default();
    let entries = made["entries"].as_array().expect("entries");
    let mut failures = Vec::new();
    let mut covered = BTreeSet::new();
    for entry in entries {
        let (scheme, label, hash) = (
            entry["scheme"].as_str().expect("scheme"),
            entry["label"].as_str().expect("label"),
            entry["hash"].as_str().expect("hash"),
        );
        covered.insert(scheme);
        for verdict in entry["verdicts"].as_array().expect("verdicts") {
            let candidate = verdict[0].as_str().expect("candidate");
            let expected = verdict[1].as_bool().expect("verdict");
            let which = if candidate.len() == label_len(entry) {
                "right password"
            } else {
                "other password"
            };
            match policy.verify(&pw(candidate), hash) {
                Err(e) => failures.push(format!("{label}, {which}: error: {e}")),
                Ok(v) if v.is_accepted() != expected => failures.push(format!(
                    "{label}, {which}: credvault says {}, the library {expected}",
                    v.is_accepted()
                )),
                // Nothing here is the default policy's argon2id at its cost: all upgrade.
                Ok(v) if expected && !v.needs_rehash() => {
                    failures.push(format!("{label}: accepted without needs_rehash"));
                }
                Ok(_) => {}
            }
        }
    }
    let missing: Vec<_> = SCHEMES.iter().filter(|s| !covered.contains(*s)).collect();
    assert!(missing.is_empty(), "python made no hash for {missing:?}");
    // Each scheme at each cost: the right password accepted, a wrong one refused.
    assert!(entries.len() >= 190, "only {} hashes made", entries.len());
    for skipped in made["skipped"].as_array().expect("skipped") {
        eprintln!("skipped (the library refuses it): {skipped}");
    }
    assert!(
        failures.is_empty(),
        "{} verdicts (of {} hashes) disagree:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n")
    );
}

/// The right password's length in bytes, from the label ("... password of N bytes").
fn label_len(entry: &Value) -> usize {
    entry["label"]
        .as_str()
        .and_then(|l| l.rsplit("of ").next())
        .and_then(|l| l.strip_suffix(" bytes"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

#[test]
fn djangos_unusable_marker_is_false_not_an_error() {
    if !common::python_has(MODULES) {
        return;
    }
    let made = made_by_python();
    let marker = made["unusable"]["hash"].as_str().expect("marker");
    assert!(marker.starts_with('!'));
    let policy = PasswordPolicy::default();
    for verdict in made["unusable"]["verdicts"].as_array().expect("verdicts") {
        let candidate = verdict[0].as_str().expect("candidate");
        assert_eq!(verdict[1], json!(false), "django accepted its own marker");
        assert_eq!(
            policy.verify(&pw(candidate), marker),
            Ok(Verification::Rejected)
        );
    }
    assert_eq!(policy.needs_rehash(marker), Ok(false));
}

#[test]
fn the_unusable_marker_takes_the_time_of_a_real_verify() {
    // Django runs its default hasher once for an unusable password, so that response times
    // do not tell such accounts apart: the marker takes `verify_dummy`'s path.
    let policy = PasswordPolicy::default();
    let _ = policy.verify_dummy(&pw("warm up"));
    let start = Instant::now();
    assert_eq!(
        policy.verify(&pw("anything"), "!"),
        Ok(Verification::Rejected)
    );
    let marker_time = start.elapsed();
    let start = Instant::now();
    let _ = policy.verify_dummy(&pw("anything"));
    let dummy_time = start.elapsed();
    assert!(
        marker_time * 3 >= dummy_time,
        "marker {marker_time:?} vs dummy {dummy_time:?}"
    );
}

#[test]
fn hostile_costs_in_new_formats_are_refused_before_any_work() {
    let policy = PasswordPolicy::default();
    let b64_64 = format!("{}==", "A".repeat(86));
    let checksum = "ZCelbAhL8Pz7aIjVKwn4rrF3mdd20VYW7XTzvsNZk.9";
    for hash in [
        // 2^31 x 8 x 128 bytes = 2 TiB.
        format!("scrypt${}$salt$8$1${b64_64}", 1u64 << 31),
        format!("scrypt$16384$salt$8$17${b64_64}"),
        // r x p would overflow u32 inside the scrypt crate.
        format!("scrypt$2$salt$4294967295$4294967295${b64_64}"),
        "$scrypt$ln=31,r=8,p=1$c2FsdA$ysiHJLmPmwPDA2fMC6NuiLPLU5chBTZ6K/X+ljgDtxk".to_owned(),
        format!("$5$rounds=999999999$salt${checksum}"),
        format!("{{CRYPT}}$5$rounds=10000001$salt${checksum}"),
    ] {
        let start = Instant::now();
        assert!(
            matches!(
                policy.verify(&pw("x"), &hash),
                Err(PasswordError::ExcessiveCost { .. })
            ),
            "{hash}"
        );
        assert!(start.elapsed() < Duration::from_millis(100), "{hash}");
    }
}

#[test]
fn legacy_families_always_upgrade_and_can_be_refused() {
    for family in [
        SchemeFamily::Md5Digest,
        SchemeFamily::Sha1Digest,
        SchemeFamily::Sha256Digest,
        SchemeFamily::Sha512Digest,
        SchemeFamily::Sha256Crypt,
        SchemeFamily::Sha512Crypt,
        SchemeFamily::Pbkdf2Sha1,
    ] {
        assert!(family.is_legacy(), "{family}");
    }
    assert!(!SchemeFamily::Scrypt.is_legacy());
    // md5("") as Django's UnsaltedMD5PasswordHasher wrote it.
    let empty_md5 = "d41d8cd98f00b204e9800998ecf8427e";
    let policy = PasswordPolicy::default();
    assert_eq!(
        policy.verify(&pw(""), empty_md5),
        Ok(Verification::Accepted { needs_rehash: true })
    );
    let strict = PasswordPolicy::default().with_accepted(&[SchemeFamily::Argon2id]);
    assert_eq!(
        strict.verify(&pw(""), empty_md5),
        Err(PasswordError::SchemeNotAccepted(SchemeFamily::Md5Digest))
    );
}

#[test]
fn errors_about_new_formats_never_name_the_hash() {
    let policy = PasswordPolicy::default();
    for hash in [
        "md5$s3cr3tsalt$NOTHEX-s3cr3tdigest-s3cr3tdigest".to_owned(),
        "{SSHA}s3cr3tdigests3cr3t".to_owned(),
        "$5$rounds=1000$s3cr3tsalt$s3cr3t".to_owned(),
        "scrypt$16384$s3cr3tsalt$8$1$s3cr3t".to_owned(),
        "{CRYPT}$1$s3cr3tsalt$s3cr3t".to_owned(),
    ] {
        let err = policy.verify(&pw("s3cr3t-password"), &hash).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}

mod mutated_seeds {
    use proptest::prelude::*;

    /// The committed fuzz seeds (`fuzz/corpus/password_hash`), one per format.
    fn seeds() -> Vec<Vec<u8>> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/password_hash");
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .expect("seed corpus")
            .map(|e| std::fs::read(e.expect("seed").path()).expect("seed bytes"))
            .collect();
        seeds.sort();
        seeds
    }

    proptest! {
        /// What the fuzz target asserts, on mutations of every seed: parsing never panics
        /// (debug builds catch overflow), and what parses re-encodes to the same hash.
        #[test]
        fn mutated_hashes_never_panic_and_round_trip(
            index in 0usize..64,
            edits in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..4),
        ) {
            let seeds = seeds();
            let mut bytes = seeds[index % seeds.len()].clone();
            for (at, byte) in edits {
                let at = usize::from(at) % bytes.len();
                bytes[at] = byte;
            }
            #[cfg(feature = "fuzzing")]
            credvault::password::fuzz_parse_hash(&bytes);
        }
    }
}
