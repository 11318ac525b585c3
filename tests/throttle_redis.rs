//! The Redis login throttle (`RedisThrottle`, feature `redis`) against the Redis at
//! `CREDVAULT_REDIS_URL` (default `redis://127.0.0.1:6379/`), each test under a prefix of its
//! own. Skipped with a message when Redis cannot be reached, unless
//! `CREDVAULT_REQUIRE_REDIS=1` (set by `.ci/run`).
//!
//! The scripted sequences of the SQL throttle's tests must give exactly the decisions of
//! `InMemoryThrottle`; two handles ("servers") share one count; concurrent failures are all
//! counted; every key expires by itself.
#![cfg(feature = "redis")]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

#[path = "common/throttle_scripts.rs"]
mod scripts;

use std::sync::Arc;

use credvault::password::{
    Decision, InMemoryThrottle, LoginThrottle, PseudonymKey, RedisThrottle, ThrottleConfig,
};
use scripts::*;

fn url() -> String {
    std::env::var("CREDVAULT_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A throttle under a fresh prefix, or `None` (after saying how to enable the test) when no
/// Redis answers and CREDVAULT_REQUIRE_REDIS is not 1.
async fn throttle(config: ThrottleConfig) -> Option<(RedisThrottle, String)> {
    let prefix = format!("credvault-test:{:016x}:", rand::random::<u64>());
    let throttle = RedisThrottle::open(&url(), config, key())
        .unwrap()
        .with_prefix(prefix.clone());
    match throttle.check("probe", v4(1), t(0)).await {
        Ok(_) => Some((throttle, prefix)),
        Err(e) if std::env::var("CREDVAULT_REQUIRE_REDIS").as_deref() == Ok("1") => {
            panic!("cannot reach redis and CREDVAULT_REQUIRE_REDIS=1: {e}")
        }
        Err(_) => {
            eprintln!(
                "redis tests skipped: no Redis at CREDVAULT_REDIS_URL (default \
                 127.0.0.1:6379); install and start redis-server (see .ci/run) to enable them"
            );
            None
        }
    }
}

/// The pseudonym key of the tests' "vault".
fn key() -> PseudonymKey {
    PseudonymKey::from_bytes(&[9; 32])
}

/// Every key name under `prefix`.
async fn names(prefix: &str) -> Vec<String> {
    let mut conn = raw().await;
    let mut names: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    names.sort();
    names
}

async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn scripts_decide_as_the_in_memory_throttle() {
    for script in scripts() {
        let Some((redis, _)) = throttle(script.config).await else {
            return;
        };
        let memory = InMemoryThrottle::new(script.config);
        let expected = play(&memory, &script).await;
        let got = play(&redis, &script).await;
        for ((s, want), got) in script.steps.iter().zip(&expected).zip(&got) {
            assert_eq!(got, want, "script {:?}, step {s:?}", script.name);
            match s.want {
                Want::Same => {}
                Want::Allow => assert_eq!(*got, Some(Decision::Allow), "{s:?}"),
                Want::Deny(secs) => assert_eq!(*got, Some(deny(secs)), "{s:?}"),
            }
        }
    }
}

#[tokio::test]
async fn two_servers_share_one_count_and_a_success_clears_the_pair() {
    let Some((a, prefix)) = throttle(config(3, 1000)).await else {
        return;
    };
    let b = RedisThrottle::open(&url(), config(3, 1000), key())
        .unwrap()
        .with_prefix(prefix);
    let ip = v4(10);
    assert_eq!(
        a.record_failure("alice", ip, t(0)).await.unwrap(),
        Decision::Allow
    );
    assert_eq!(
        b.record_failure("alice", ip, t(1)).await.unwrap(),
        Decision::Allow
    );
    assert_eq!(a.record_failure("alice", ip, t(2)).await.unwrap(), deny(60));
    assert_eq!(b.check("alice", ip, t(3)).await.unwrap(), deny(59));
    assert_eq!(b.check("alice", ip, t(62)).await.unwrap(), Decision::Allow);
    assert_eq!(
        b.record_failure("alice", ip, t(62)).await.unwrap(),
        Decision::Allow
    );
    a.record_success("alice", ip, t(63)).await.unwrap();
    // The pair starts over: two more failures do not lock it.
    for at in [64, 65] {
        assert_eq!(
            b.record_failure("alice", ip, t(at)).await.unwrap(),
            Decision::Allow
        );
    }
}

/// Failures racing on one key from several tasks (each call on a connection of its own) are
/// all counted: with a threshold of 40, 4 x 10 concurrent failures lock the pair exactly once,
/// on the 40th.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_failures_are_all_counted() {
    let config = ThrottleConfig {
        max_failures: 40,
        max_failures_per_address: 1000,
        max_failures_per_account: 1000,
        ..ThrottleConfig::default()
    };
    let Some((throttle, _)) = throttle(config).await else {
        return;
    };
    let throttle = Arc::new(throttle);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let throttle = Arc::clone(&throttle);
        tasks.push(tokio::spawn(async move {
            let mut denied = 0;
            for _ in 0..10 {
                if throttle
                    .record_failure("alice", v4(20), t(5))
                    .await
                    .unwrap()
                    != Decision::Allow
                {
                    denied += 1;
                }
            }
            denied
        }));
    }
    let mut denied = 0;
    for task in tasks {
        denied += task.await.unwrap();
    }
    assert_eq!(denied, 1, "exactly the 40th failure starts the lockout");
    assert_eq!(
        throttle.check("alice", v4(20), t(6)).await.unwrap(),
        deny(59)
    );
}

/// Keys expire by themselves once forgetting them changes no decision: a plain failure's key
/// lives about a window (15 minutes); a locked key until `max_lockout + window` after its
/// lockout ends. The clock here is the system's, as Redis' is.
#[tokio::test]
async fn keys_expire_by_themselves() {
    let Some((throttle, prefix)) = throttle(config(2, 1000)).await else {
        return;
    };
    let now = std::time::SystemTime::now();
    assert_eq!(
        throttle.record_failure("bob", v4(30), now).await.unwrap(),
        Decision::Allow
    );
    let mut conn = raw().await;
    let pairs: Vec<String> = names(&prefix)
        .await
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}pair#{}.", key().pseudonym("bob"))))
        .collect();
    assert_eq!(pairs.len(), 1, "{pairs:?}");
    let pair = pairs[0].clone();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&pair)
        .query_async(&mut conn)
        .await
        .unwrap();
    let window = 15 * 60 * 1000;
    assert!(ttl > window - 5_000 && ttl <= window + 1, "{ttl}");
    assert_eq!(
        throttle.record_failure("bob", v4(30), now).await.unwrap(),
        deny(60)
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&pair)
        .query_async(&mut conn)
        .await
        .unwrap();
    // Locked for 60 s, remembered for max_lockout (1 h) + window after that.
    let horizon = (60 + 3600 + 15 * 60) * 1000;
    assert!(ttl > horizon - 5_000 && ttl <= horizon + 1, "{ttl}");
    let addr: i64 = redis::cmd("PTTL")
        .arg(format!("{prefix}addr#{}", key().address_pseudonym(v4(30))))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(addr > 0, "{addr}");
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_panic_and_the_url_stays_private() {
    let throttle =
        RedisThrottle::open("redis://:hunter2@127.0.0.1:1/", config(3, 100), key()).unwrap();
    assert!(!format!("{throttle:?}").contains("hunter2"));
    let err = throttle
        .record_failure("alice", v4(1), t(0))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

/// After a lockout, a known-address mark and an unlock, no key name (nor value) under the
/// prefix holds the account name or the address: only keyed hashes.
#[tokio::test]
async fn keys_name_no_account_and_no_address() {
    let Some((throttle, prefix)) = throttle(config(2, 1000)).await else {
        return;
    };
    let account = "zoe.private@example.com";
    let (home, away) = (
        "198.51.100.77".parse().unwrap(),
        "2001:db8:77::5".parse().unwrap(),
    );
    throttle.record_success(account, home, t(0)).await.unwrap();
    for at in 1..3 {
        let _ = throttle.record_failure(account, away, t(at)).await.unwrap();
    }
    assert_eq!(throttle.check(account, away, t(3)).await.unwrap(), deny(59));
    let before = names(&prefix).await;
    assert_eq!(before.len(), 4, "pair, account, address, known: {before:?}");
    let mut conn = raw().await;
    for name in &before {
        let value: String = redis::cmd("GET")
            .arg(name)
            .query_async(&mut conn)
            .await
            .unwrap();
        let text = format!("{name} {value}");
        for needle in ["zoe", "example.com", "198.51.100", "2001:db8", "2001:0db8"] {
            assert!(!text.contains(needle), "{needle} in {text}");
        }
    }
    // Unlock still finds the account's pair by its pseudonym.
    assert!(throttle.unlock(account, "support", t(4)).await.unwrap());
    assert_eq!(
        throttle.check(account, away, t(4)).await.unwrap(),
        Decision::Allow
    );
}

/// A throttle under another vault's key shares the Redis and the prefix but sees none of the
/// counts.
#[tokio::test]
async fn another_key_sees_none_of_the_counts() {
    let Some((throttle, prefix)) = throttle(config(2, 1000)).await else {
        return;
    };
    for at in 0..2 {
        let _ = throttle
            .record_failure("yann", v4(60), t(at))
            .await
            .unwrap();
    }
    assert_eq!(
        throttle.check("yann", v4(60), t(2)).await.unwrap(),
        deny(59)
    );
    let other = RedisThrottle::open(&url(), config(2, 1000), PseudonymKey::from_bytes(&[10; 32]))
        .unwrap()
        .with_prefix(prefix);
    assert_eq!(
        other.check("yann", v4(60), t(2)).await.unwrap(),
        Decision::Allow
    );
}

/// Keys an earlier version named in clear (`pair:<address>/<account>`...) are renamed by the
/// handle's first call, keeping their state: a lockout in force stays in force.
#[tokio::test]
async fn keys_named_in_clear_are_renamed_with_their_state() {
    if throttle(config(5, 1000)).await.is_none() {
        return;
    }
    let prefix = format!("credvault-test:{:016x}:", rand::random::<u64>());
    let mut conn = raw().await;
    let ms = |secs: u64| (1_700_000_000 + secs) * 1000;
    for (name, value) in [
        (
            "pair:192.0.2.80/hal",
            format!("0,{},1,{},{}", ms(100), ms(700), ms(100)),
        ),
        ("acct:hal", format!("3,{},0,,{}", ms(100), ms(100))),
        ("addr:192.0.2.80", format!("3,{},0,,{}", ms(100), ms(100))),
        ("pair:nonsense/hal", "1,2,3".to_owned()),
    ] {
        redis::cmd("SET")
            .arg(format!("{prefix}{name}"))
            .arg(value)
            .arg("PX")
            .arg(3_600_000)
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
    }
    let throttle = RedisThrottle::open(&url(), config(5, 1000), key())
        .unwrap()
        .with_prefix(prefix.clone());
    assert_eq!(
        throttle.check("hal", v4(80), t(200)).await.unwrap(),
        deny(500)
    );
    let after = names(&prefix).await;
    assert_eq!(after.len(), 3, "{after:?}");
    for name in &after {
        assert!(!name.contains("hal") && !name.contains("192.0.2"), "{name}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(name)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 3_000_000, "{name} keeps its expiry: {ttl}");
    }
}
