//! What a user of `credvault::password` can observe: policies, verification, upgrades,
//! refusals, and login throttling.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant, SystemTime};

use credvault::SecretString;
use credvault::password::{
    CostLimits, Decision, HashEncoding, InMemoryThrottle, PasswordError, PasswordPolicy, Scheme,
    SchemeFamily, ThrottleConfig, Upgrade, Verification,
};
use proptest::prelude::*;

const BCRYPT4: Scheme = Scheme::Bcrypt { cost: 4 };
const PBKDF2_1000: Scheme = Scheme::Pbkdf2Sha256 { iterations: 1000 };
const ARGON2_SMALL: Scheme = Scheme::Argon2id {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn weak(scheme: Scheme) -> PasswordPolicy {
    PasswordPolicy::allow_weak_parameters_for_tests(scheme).unwrap()
}

fn pw(text: &str) -> SecretString {
    SecretString::from(text)
}

#[test]
fn presets_write_the_standard_strings() {
    let p = pw("hunter2");
    assert!(weak(BCRYPT4).hash(&p).unwrap().starts_with("$2b$04$"));
    assert!(
        weak(PBKDF2_1000)
            .hash(&p)
            .unwrap()
            .starts_with("$pbkdf2-sha256$i=1000,l=32$")
    );
    assert!(
        weak(ARGON2_SMALL)
            .hash(&p)
            .unwrap()
            .starts_with("$argon2id$v=19$m=64,t=1,p=1$")
    );
    let django = weak(PBKDF2_1000).with_encoding(HashEncoding::Django);
    assert!(django.hash(&p).unwrap().starts_with("pbkdf2_sha256$1000$"));
    let passlib = weak(PBKDF2_1000).with_encoding(HashEncoding::Passlib);
    assert!(
        passlib
            .hash(&p)
            .unwrap()
            .starts_with("$pbkdf2-sha256$1000$")
    );
}

#[test]
fn default_policy_is_argon2id_with_owasp_parameters() {
    let policy = PasswordPolicy::default();
    assert_eq!(
        policy.scheme(),
        Scheme::Argon2id {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1
        }
    );
    // The one test that pays for a real preset.
    let hash = policy.hash(&pw("hunter2")).unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert_eq!(
        policy.verify(&pw("hunter2"), &hash).unwrap(),
        Verification::Accepted {
            needs_rehash: false
        }
    );
}

#[test]
fn rejects_incorrect_password() {
    for scheme in [BCRYPT4, PBKDF2_1000, ARGON2_SMALL] {
        let policy = weak(scheme);
        let hash = policy.hash(&pw("right")).unwrap();
        assert_eq!(
            policy.verify(&pw("wrong"), &hash).unwrap(),
            Verification::Rejected
        );
    }
}

#[test]
fn weak_parameters_are_refused_without_the_opt_in() {
    assert!(matches!(
        PasswordPolicy::bcrypt(9),
        Err(PasswordError::WeakParameters { .. })
    ));
    assert!(PasswordPolicy::bcrypt(12).is_ok());
    assert!(matches!(
        PasswordPolicy::pbkdf2_sha256(599_999),
        Err(PasswordError::WeakParameters { .. })
    ));
    assert!(matches!(
        PasswordPolicy::argon2id(4096, 10, 1),
        Err(PasswordError::WeakParameters { .. })
    ));
    assert!(matches!(
        PasswordPolicy::argon2id(12_288, 2, 1),
        Err(PasswordError::WeakParameters { .. })
    ));
    assert!(PasswordPolicy::argon2id(12_288, 3, 1).is_ok());
    assert!(matches!(
        PasswordPolicy::allow_weak_parameters_for_tests(Scheme::Bcrypt { cost: 3 }),
        Err(PasswordError::InvalidParameters(_))
    ));
}

#[test]
fn bcrypt_refuses_to_hash_more_than_72_bytes() {
    let policy = weak(BCRYPT4);
    let long = "a".repeat(73);
    assert_eq!(
        policy.hash(&pw(&long)),
        Err(PasswordError::PasswordTooLong { len: 73, max: 72 })
    );
    let exact = "a".repeat(72);
    let hash = policy.hash(&pw(&exact)).unwrap();
    assert!(policy.verify(&pw(&exact), &hash).unwrap().is_accepted());
}

#[test]
fn weaker_hashes_are_upgraded_on_login() {
    let password = pw("hunter2");
    let old = weak(PBKDF2_1000).hash(&password).unwrap();
    let policy = weak(BCRYPT4);
    let Upgrade::Accepted {
        new_hash: Some(new),
    } = policy.verify_and_upgrade(&password, &old).unwrap()
    else {
        panic!("expected an upgrade");
    };
    assert!(new.starts_with("$2b$04$"));
    assert_eq!(
        policy.verify_and_upgrade(&password, &new).unwrap(),
        Upgrade::Accepted { new_hash: None }
    );
    assert_eq!(
        policy.verify_and_upgrade(&pw("x"), &old).unwrap(),
        Upgrade::Rejected
    );
    let stronger = weak(Scheme::Bcrypt { cost: 5 });
    assert!(stronger.needs_rehash(&new).unwrap());
    assert!(
        !weak(BCRYPT4)
            .needs_rehash(&stronger.hash(&password).unwrap())
            .unwrap()
    );
}

#[test]
fn stored_costs_above_the_caps_are_refused_before_any_work() {
    let policy = PasswordPolicy::default();
    let bcrypt17 = "$2b$17$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.";
    let pbkdf2 = "pbkdf2_sha256$10000001$salt$aGFzaGhhc2g=";
    let argon2 = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2g";
    for hash in [bcrypt17, pbkdf2, argon2] {
        let start = Instant::now();
        assert!(
            matches!(
                policy.verify(&pw("x"), hash),
                Err(PasswordError::ExcessiveCost { .. })
            ),
            "{hash}"
        );
        assert!(start.elapsed() < Duration::from_millis(100));
    }
    let raised = PasswordPolicy::default()
        .with_cost_limits(CostLimits {
            max_bcrypt_cost: 17,
            ..CostLimits::default()
        })
        .unwrap();
    assert!(raised.needs_rehash(bcrypt17).is_ok());
}

#[test]
fn unknown_and_malformed_hashes_are_typed_errors_that_never_name_the_password() {
    let policy = PasswordPolicy::default();
    let secret = "s3cr3t-password";
    for hash in [
        "",
        "plaintext",
        "$1$md5$hash",
        "$2b$04$short",
        "pbkdf2_sha256$x$y$z",
        "$argon2id$v=19$garbage",
    ] {
        let err = policy.verify(&pw(secret), hash).unwrap_err();
        assert!(
            matches!(
                err,
                PasswordError::UnknownFormat | PasswordError::MalformedHash { .. }
            ),
            "{hash}: {err:?}"
        );
        assert!(!err.to_string().contains(secret));
        assert!(!format!("{err:?}").contains(secret));
    }
}

#[test]
fn policies_can_stop_accepting_a_family() {
    let sha1 = weak(PBKDF2_1000)
        .hash(&pw("a"))
        .unwrap()
        .replace("pbkdf2-sha256", "pbkdf2");
    let policy = weak(BCRYPT4).with_accepted(&[SchemeFamily::Argon2id]);
    assert_eq!(
        policy.verify(&pw("a"), &sha1),
        Err(PasswordError::SchemeNotAccepted(SchemeFamily::Pbkdf2Sha1))
    );
}

#[test]
fn verify_dummy_takes_as_long_as_a_real_verify() {
    let policy = weak(Scheme::Bcrypt { cost: 8 });
    let hash = policy.hash(&pw("hunter2")).unwrap();
    assert_eq!(policy.verify_dummy(&pw("warm up")), Verification::Rejected);
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    // Interleaved, and the fastest of each kept: other work on a loaded machine only ever
    // makes a run slower, so the minimums compare the two computations themselves.
    let (mut real, mut dummy) = (Duration::MAX, Duration::MAX);
    for _ in 0..7 {
        real = real.min(time(&|| {
            let _ = policy.verify(&pw("nope"), &hash).unwrap();
        }));
        dummy = dummy.min(time(&|| {
            let _ = policy.verify_dummy(&pw("nope"));
        }));
    }
    let ratio = dummy.as_secs_f64() / real.as_secs_f64();
    assert!((0.7..1.4).contains(&ratio), "dummy/real = {ratio}");
}

#[test]
fn debug_output_of_public_types_never_contains_the_password() {
    let policy = weak(BCRYPT4);
    let _ = policy.verify_dummy(&pw("topsecret"));
    let hash = policy.hash(&pw("topsecret")).unwrap();
    let verdict = policy.verify(&pw("topsecret"), &hash).unwrap();
    for text in [
        format!("{policy:?}"),
        format!("{verdict:?}"),
        format!("{:?}", pw("topsecret")),
    ] {
        assert!(!text.contains("topsecret"), "{text}");
    }
}

#[test]
fn async_functions_run_on_the_blocking_pool() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let policy = weak(BCRYPT4);
    rt.block_on(async {
        let hash = policy.hash_async(pw("a")).await.unwrap();
        assert!(
            policy
                .verify_async(pw("a"), hash.clone())
                .await
                .unwrap()
                .is_accepted()
        );
        assert_eq!(
            policy.verify_dummy_async(pw("a")).await.unwrap(),
            Verification::Rejected
        );
        assert!(
            policy
                .verify_and_upgrade_async(pw("a"), hash)
                .await
                .unwrap()
                .is_accepted()
        );
    });
}

// ---- login guard ----

mod guard {
    use super::*;
    use credvault::password::{
        InMemoryThrottle, LoginError, LoginGuard, LoginOutcome, ThrottleConfig,
    };

    fn guard(policy: PasswordPolicy) -> LoginGuard<InMemoryThrottle> {
        LoginGuard::new(policy, InMemoryThrottle::new(ThrottleConfig::default()))
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap()
    }

    #[test]
    fn a_right_password_logs_in_and_hands_back_the_upgraded_hash() {
        let old = weak(BCRYPT4).hash(&pw("right")).unwrap();
        let g = guard(weak(Scheme::Bcrypt { cost: 5 }));
        let outcome = rt()
            .block_on(g.login_at("alice", IP, pw("right"), Some(&old), t(0)))
            .unwrap();
        let LoginOutcome::Success {
            new_hash: Some(new),
        } = outcome
        else {
            panic!("{outcome:?}");
        };
        assert!(new.starts_with("$2b$05$"), "{new}");
        let again = rt()
            .block_on(g.login_at("alice", IP, pw("right"), Some(&new), t(1)))
            .unwrap();
        assert_eq!(again, LoginOutcome::Success { new_hash: None });
    }

    #[test]
    fn failures_lock_out_and_a_locked_attempt_is_not_verified() {
        let stored = weak(BCRYPT4).hash(&pw("right")).unwrap();
        let g = guard(weak(BCRYPT4));
        let rt = rt();
        for i in 0..4 {
            let outcome = rt
                .block_on(g.login_at("alice", IP, pw("wrong"), Some(&stored), t(i)))
                .unwrap();
            assert_eq!(outcome, LoginOutcome::Failure { locked_for: None });
        }
        let outcome = rt
            .block_on(g.login_at("alice", IP, pw("wrong"), Some(&stored), t(4)))
            .unwrap();
        assert_eq!(
            outcome,
            LoginOutcome::Failure {
                locked_for: Some(Duration::from_secs(60))
            }
        );
        // Locked: not verified at all (an unreadable hash would be an error if it were),
        // and the right password does not get through either.
        for hash in ["not a hash", stored.as_str()] {
            let outcome = rt
                .block_on(g.login_at("alice", IP, pw("right"), Some(hash), t(5)))
                .unwrap();
            assert_eq!(
                outcome,
                LoginOutcome::Locked {
                    retry_after: Duration::from_secs(59)
                }
            );
        }
        // After the lockout the right password logs in and clears the count.
        let outcome = rt
            .block_on(g.login_at("alice", IP, pw("right"), Some(&stored), t(64)))
            .unwrap();
        assert!(outcome.is_success(), "{outcome:?}");
    }

    #[test]
    fn an_unknown_account_fails_like_a_wrong_password_and_is_counted() {
        let g = guard(weak(BCRYPT4));
        let rt = rt();
        let mut outcomes = Vec::new();
        for i in 0..5 {
            outcomes.push(
                rt.block_on(g.login_at("nobody", IP, pw("guess"), None, t(i)))
                    .unwrap(),
            );
        }
        assert_eq!(outcomes[0], LoginOutcome::Failure { locked_for: None });
        assert_eq!(
            outcomes[4],
            LoginOutcome::Failure {
                locked_for: Some(Duration::from_secs(60))
            }
        );
        // The dummy verify spent a real bcrypt verify's time, not nothing.
        let start = Instant::now();
        let _ = rt
            .block_on(g.login_at("nobody-else", IP, pw("guess"), None, t(10)))
            .unwrap();
        assert!(
            start.elapsed() >= Duration::from_micros(500),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn an_unreadable_stored_hash_is_an_error_and_still_counts() {
        let g = guard(weak(BCRYPT4));
        let rt = rt();
        for i in 0..4 {
            let err = rt
                .block_on(g.login_at("alice", IP, pw("x"), Some("garbage"), t(i)))
                .unwrap_err();
            assert!(matches!(err, LoginError::Password(_)), "{err:?}");
            assert!(!err.to_string().contains("garbage"), "{err}");
        }
        let _ = rt.block_on(g.login_at("alice", IP, pw("x"), Some("garbage"), t(4)));
        let outcome = rt
            .block_on(g.login_at("alice", IP, pw("x"), Some("garbage"), t(5)))
            .unwrap();
        assert!(
            matches!(outcome, LoginOutcome::Locked { .. }),
            "{outcome:?}"
        );
    }
}

// ---- throttle ----

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));

fn deny(d: Decision) -> Duration {
    match d {
        Decision::Deny { retry_after } => retry_after,
        Decision::Allow => panic!("expected Deny"),
    }
}

#[test]
fn lockout_backoff_doubles_and_is_capped() {
    let config = ThrottleConfig {
        max_failures: 3,
        ..ThrottleConfig::default()
    };
    let throttle = InMemoryThrottle::new(config);
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..8 {
        assert_eq!(
            throttle.record_failure_at("alice", IP, t(now)),
            Decision::Allow
        );
        assert_eq!(
            throttle.record_failure_at("alice", IP, t(now)),
            Decision::Allow
        );
        let wait = deny(throttle.record_failure_at("alice", IP, t(now)));
        assert_eq!(deny(throttle.check_at("alice", IP, t(now))), wait);
        waits.push(wait.as_secs());
        now += wait.as_secs();
        assert_eq!(throttle.check_at("alice", IP, t(now)), Decision::Allow);
    }
    assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
}

#[test]
fn success_resets_the_account_but_not_the_address() {
    let config = ThrottleConfig {
        max_failures: 3,
        max_failures_per_address: 4,
        ..ThrottleConfig::default()
    };
    let throttle = InMemoryThrottle::new(config);
    assert_eq!(
        throttle.record_failure_at("alice", IP, t(0)),
        Decision::Allow
    );
    let _ = throttle.record_failure_at("alice", IP, t(1));
    throttle.record_success_at("alice", IP, t(2));
    assert_eq!(
        throttle.record_failure_at("alice", IP, t(3)),
        Decision::Allow
    );
    // Fourth failure from the address: the address is locked for every account.
    let _ = deny(throttle.record_failure_at("bob", IP, t(4)));
    let _ = deny(throttle.check_at("carol", IP, t(5)));
    assert_eq!(throttle.check_at("carol", OTHER_IP, t(5)), Decision::Allow);
}

#[test]
fn an_attacker_elsewhere_cannot_lock_a_user_out() {
    let throttle = InMemoryThrottle::new(ThrottleConfig::default());
    for _ in 0..10 {
        let _ = throttle.record_failure_at("alice", OTHER_IP, t(0));
    }
    let _ = deny(throttle.check_at("alice", OTHER_IP, t(0)));
    assert_eq!(throttle.check_at("alice", IP, t(0)), Decision::Allow);
}

#[test]
fn an_empty_account_never_locks_anyone() {
    let config = ThrottleConfig {
        max_failures: 2,
        max_failures_per_address: 1000,
        ..ThrottleConfig::default()
    };
    let throttle = InMemoryThrottle::new(config);
    for _ in 0..20 {
        assert_eq!(throttle.record_failure_at("", IP, t(0)), Decision::Allow);
    }
    assert_eq!(throttle.check_at("", OTHER_IP, t(0)), Decision::Allow);
    assert_eq!(throttle.check_at("alice", IP, t(0)), Decision::Allow);
}

#[test]
fn ipv6_addresses_count_per_slash_64() {
    let config = ThrottleConfig {
        max_failures_per_address: 3,
        ..ThrottleConfig::default()
    };
    let throttle = InMemoryThrottle::new(config);
    for i in 0..3u16 {
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i));
        let _ = throttle.record_failure_at(&format!("user{i}"), ip, t(0));
    }
    let neighbour = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9));
    let _ = deny(throttle.check_at("anyone", neighbour, t(0)));
}

#[test]
fn failures_outside_the_window_are_forgotten() {
    let config = ThrottleConfig {
        max_failures: 3,
        ..ThrottleConfig::default()
    };
    let throttle = InMemoryThrottle::new(config);
    let _ = throttle.record_failure_at("alice", IP, t(0));
    let _ = throttle.record_failure_at("alice", IP, t(1));
    assert_eq!(
        throttle.record_failure_at("alice", IP, t(16 * 60)),
        Decision::Allow
    );
}

#[test]
fn memory_stays_bounded() {
    let config = ThrottleConfig {
        capacity: 100,
        ..ThrottleConfig::default()
    };
    let throttle = InMemoryThrottle::new(config);
    for i in 0..5000u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(i));
        let _ = throttle.record_failure_at("alice", ip, t(u64::from(i)));
    }
    assert!(throttle.len() <= 100, "{}", throttle.len());
}

#[test]
fn the_trait_works_through_its_async_methods() {
    use credvault::password::LoginThrottle;
    let throttle = InMemoryThrottle::new(ThrottleConfig::default());
    let fut = async {
        assert_eq!(throttle.check("alice", IP, t(0)).await, Ok(Decision::Allow));
        assert_eq!(
            throttle.record_failure("alice", IP, t(0)).await,
            Ok(Decision::Allow)
        );
        throttle.record_success("alice", IP, t(0)).await.unwrap();
    };
    // The in-memory store never waits, so one poll completes it.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(std::pin::pin!(fut).poll(&mut cx).is_ready());
}

// ---- properties ----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_bytes_round_trip_and_a_different_password_never_verifies(
        password in proptest::collection::vec(any::<u8>(), 0..100),
        other in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        for scheme in [PBKDF2_1000, ARGON2_SMALL] {
            let policy = weak(scheme);
            let hash = policy.hash_bytes(&password).unwrap();
            prop_assert!(policy.verify_bytes(&password, &hash).unwrap().is_accepted());
            if other != password {
                prop_assert!(!policy.verify_bytes(&other, &hash).unwrap().is_accepted());
            }
        }
    }

    #[test]
    fn bcrypt_round_trips_up_to_72_bytes(
        password in proptest::collection::vec(any::<u8>(), 0..=72),
        other in proptest::collection::vec(any::<u8>(), 0..=72),
    ) {
        let policy = weak(BCRYPT4);
        let hash = policy.hash_bytes(&password).unwrap();
        prop_assert!(policy.verify_bytes(&password, &hash).unwrap().is_accepted());
        // bcrypt keys are NUL-terminated: trailing NULs aside, different passwords differ.
        let trim = |p: &[u8]| p.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if other[..trim(&other)] != password[..trim(&password)] {
            prop_assert!(!policy.verify_bytes(&other, &hash).unwrap().is_accepted());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn malformed_hash_strings_never_panic(hash in "\\PC{0,120}") {
        let _ = PasswordPolicy::default().needs_rehash(&hash);
        #[cfg(feature = "fuzzing")]
        credvault::password::fuzz_parse_hash(hash.as_bytes());
    }

    #[test]
    fn mutated_hashes_never_panic(
        index in 0usize..4,
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let hashes = [
            "$2b$04$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
            "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
            "$bcrypt-sha256$v=2,t=2b,r=4$DCq7YPn5Rq63x1Lad4cll.$TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
            "pbkdf2_sha256$1000$abc$aGFzaGhhc2hoYXNoaGFzaA==",
        ];
        let mut bytes = hashes[index].as_bytes().to_vec();
        let at = position.index(bytes.len());
        bytes[at] = byte;
        #[cfg(feature = "fuzzing")]
        credvault::password::fuzz_parse_hash(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = weak(BCRYPT4).verify(&pw("x"), text);
        }
    }
}
