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
    Decision, InMemoryThrottle, LoginThrottle, RedisThrottle, ThrottleConfig,
};
use scripts::*;

fn url() -> String {
    std::env::var("CREDVAULT_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A throttle under a fresh prefix, or `None` (after saying how to enable the test) when no
/// Redis answers and CREDVAULT_REQUIRE_REDIS is not 1.
async fn throttle(config: ThrottleConfig) -> Option<(RedisThrottle, String)> {
    let prefix = format!("credvault-test:{:016x}:", rand::random::<u64>());
    let throttle = RedisThrottle::open(&url(), config)
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
    let b = RedisThrottle::open(&url(), config(3, 1000))
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
    let pair = format!("{prefix}pair:192.0.2.30/bob");
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
        .arg(format!("{prefix}addr:192.0.2.30"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(addr > 0, "{addr}");
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_panic_and_the_url_stays_private() {
    let throttle = RedisThrottle::open("redis://:hunter2@127.0.0.1:1/", config(3, 100)).unwrap();
    assert!(!format!("{throttle:?}").contains("hunter2"));
    let err = throttle
        .record_failure("alice", v4(1), t(0))
        .await
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}
