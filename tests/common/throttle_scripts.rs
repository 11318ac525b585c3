//! Scripted sequences of login attempts and the decisions they must get, shared by the
//! tests of every shared-store throttle (`throttle_sql.rs`, `throttle_redis.rs`): each store
//! must decide exactly as `InMemoryThrottle` does. Included with
//! `#[path = "common/throttle_scripts.rs"] mod scripts;`.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use credvault::password::{Decision, LoginThrottle, ThrottleConfig};

pub(crate) fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

pub(crate) fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Check,
    Fail,
    Success,
    /// `unlock(account)`: the step's decision is `Allow` if something was unlocked or
    /// counted, `Deny(0)` if not.
    Unlock,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Whatever the in-memory throttle answers.
    Same,
    Allow,
    /// `Deny` for this many seconds.
    Deny(u64),
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) op: Op,
    pub(crate) account: String,
    pub(crate) address: IpAddr,
    pub(crate) at: u64,
    pub(crate) want: Want,
}

pub(crate) fn step(op: Op, account: &str, address: IpAddr, at: u64, want: Want) -> Step {
    Step {
        op,
        account: account.to_owned(),
        address,
        at,
        want,
    }
}

/// A sequence of calls under one configuration.
pub(crate) struct Script {
    pub(crate) name: &'static str,
    pub(crate) config: ThrottleConfig,
    pub(crate) steps: Vec<Step>,
}

pub(crate) fn config(max_failures: u32, per_address: u32) -> ThrottleConfig {
    ThrottleConfig {
        max_failures,
        max_failures_per_address: per_address,
        ..ThrottleConfig::default()
    }
}

pub(crate) fn scripts() -> Vec<Script> {
    use Op::{Check, Fail, Success, Unlock};
    use Want::{Allow, Deny, Same};
    let mut scripts = Vec::new();

    // Lockout after max_failures, doubling capped backoff, failures while locked not counted,
    // and the backoff starting over after a long quiet time.
    let ip = v4(1);
    let mut steps = Vec::new();
    let mut now = 0;
    for wait in [60, 120, 240, 480, 960, 1920, 3600, 3600] {
        steps.push(step(Fail, "alice", ip, now, Allow));
        steps.push(step(Fail, "alice", ip, now, Allow));
        steps.push(step(Fail, "alice", ip, now, Deny(wait)));
        steps.push(step(Check, "alice", ip, now, Deny(wait)));
        steps.push(step(Fail, "alice", ip, now + 10, Deny(wait - 10)));
        steps.push(step(Check, "alice", ip, now + wait - 1, Deny(1)));
        steps.push(step(Check, "bob", ip, now + 1, Allow));
        now += wait;
        steps.push(step(Check, "alice", ip, now, Allow));
    }
    now += 3600 + 900 + 1;
    steps.push(step(Fail, "alice", ip, now, Allow));
    steps.push(step(Fail, "alice", ip, now, Allow));
    steps.push(step(Fail, "alice", ip, now, Deny(60)));
    scripts.push(Script {
        name: "backoff",
        config: config(3, 1000),
        steps,
    });

    // Failures outside the window are forgotten.
    let ip = v4(2);
    scripts.push(Script {
        name: "window",
        config: config(3, 1000),
        steps: vec![
            step(Fail, "alice", ip, 0, Allow),
            step(Fail, "alice", ip, 1, Allow),
            step(Fail, "alice", ip, 16 * 60, Allow),
            step(Fail, "alice", ip, 16 * 60 + 1, Allow),
            step(Check, "alice", ip, 16 * 60 + 1, Allow),
            step(Fail, "alice", ip, 16 * 60 + 2, Deny(60)),
        ],
    });

    // A success clears the pair, not the address; the locked address refuses every account
    // from it, not from elsewhere; an attacker elsewhere cannot lock the user out.
    let ip = v4(3);
    let other = v4(4);
    scripts.push(Script {
        name: "success",
        config: config(3, 4),
        steps: vec![
            step(Fail, "alice", ip, 0, Allow),
            step(Fail, "alice", ip, 1, Allow),
            step(Success, "alice", ip, 2, Same),
            step(Fail, "alice", ip, 3, Allow),
            step(Fail, "bob", ip, 4, Deny(60)),
            step(Check, "erin", ip, 5, Deny(59)),
            step(Check, "erin", other, 5, Allow),
            step(Fail, "frank", other, 6, Allow),
            step(Fail, "frank", other, 6, Allow),
            step(Fail, "frank", other, 6, Deny(60)),
            step(Check, "frank", v4(5), 6, Allow),
            step(Success, "frank", v4(5), 7, Same),
            step(Check, "frank", other, 7, Deny(59)),
        ],
    });

    // An empty account never locks a pair (only its address counts).
    let ip = v4(6);
    let mut steps: Vec<Step> = (0..20).map(|_| step(Fail, "", ip, 0, Allow)).collect();
    steps.push(step(Check, "", ip, 0, Allow));
    steps.push(step(Check, "", v4(7), 0, Allow));
    steps.push(step(Check, "alice", ip, 0, Allow));
    steps.push(step(Success, "", ip, 1, Same));
    scripts.push(Script {
        name: "empty account",
        config: config(2, 1000),
        steps,
    });
    let ip = v4(8);
    let mut steps: Vec<Step> = (0..4).map(|_| step(Fail, "", ip, 0, Allow)).collect();
    steps.push(step(Fail, "", ip, 0, Deny(60)));
    steps.push(step(Check, "alice", ip, 1, Deny(59)));
    scripts.push(Script {
        name: "empty account, address threshold",
        config: config(2, 5),
        steps,
    });

    // IPv6 counts per /64 for the address, per full address for the pair.
    let v6 = |g: u16, i: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, g, 0, 0, 0, i));
    scripts.push(Script {
        name: "ipv6",
        config: config(2, 4),
        steps: vec![
            step(Fail, "user0", v6(1, 0), 0, Allow),
            step(Fail, "user1", v6(1, 1), 0, Allow),
            step(Fail, "user2", v6(1, 2), 0, Allow),
            step(Check, "anyone", v6(1, 9), 0, Allow),
            step(Fail, "user3", v6(1, 3), 0, Deny(60)),
            step(
                Check,
                "anyone",
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 9, 9, 9, 9)),
                1,
                Deny(59),
            ),
            step(Check, "anyone", v6(2, 0), 1, Allow),
            // The pair is per full address.
            step(Fail, "user0", v6(2, 0), 2, Allow),
            step(Fail, "user0", v6(2, 1), 2, Allow),
            step(Fail, "user0", v6(2, 0), 2, Deny(60)),
            step(Check, "user0", v6(2, 1), 3, Allow),
            step(Check, "user0", v6(2, 0), 3, Deny(59)),
        ],
    });

    // The many-address attack: 2 guesses at carol from each of 10 addresses (under the pair
    // limit of 3 everywhere) lock carol's account (limit 20 per window)
    // for every address she has not logged in from...
    let per_account = ThrottleConfig {
        max_failures: 3,
        max_failures_per_address: 1000,
        max_failures_per_account: 20,
        ..ThrottleConfig::default()
    };
    let home = v4(210);
    let mut steps = vec![
        // carol logs in from home once: home is known from now on.
        step(Success, "erin", home, 0, Same),
    ];
    for (i, last) in (101..=110).enumerate() {
        let at = 10 + i as u64;
        steps.push(step(Fail, "erin", v4(last), at, Allow));
        let want = if last == 110 { Deny(60) } else { Allow };
        steps.push(step(Fail, "erin", v4(last), at, want));
    }
    steps.extend([
        // A fresh address is held back by the account's lock...
        step(Check, "erin", v4(177), 21, Deny(58)),
        step(Fail, "erin", v4(177), 21, Deny(58)),
        // ...the lock-out-the-user attack fails: carol's own address is not...
        step(Check, "erin", home, 21, Allow),
        // ...and other accounts are not affected.
        step(Check, "frank", v4(177), 21, Allow),
        // Failures from home still count against the home pair (3 locks it), not more.
        step(Fail, "erin", home, 22, Allow),
        step(Check, "erin", home, 22, Allow),
        // Her success resets the account's count: a fresh address may try again.
        step(Success, "erin", home, 23, Same),
        step(Check, "erin", v4(177), 24, Allow),
        // An address she logged in from 31 days ago is no longer known.
        step(Check, "erin", home, 24 + 31 * 86_400, Allow),
    ]);
    // Support unlocks: the account's lock and its pairs' locks go; the address's count and
    // other accounts stay.
    let later = 100_000;
    for (i, last) in (111..=117).enumerate() {
        let at = later + i as u64;
        steps.push(step(Fail, "erin", v4(last), at, Same));
        steps.push(step(Fail, "erin", v4(last), at, Same));
        steps.push(step(Fail, "erin", v4(last), at, Same));
    }
    steps.extend([
        step(Check, "erin", v4(111), later + 8, Same),
        step(Fail, "frank", v4(150), later + 8, Same),
        step(Unlock, "erin", v4(111), later + 9, Allow),
        step(Check, "erin", v4(111), later + 9, Allow),
        step(Check, "erin", v4(190), later + 9, Allow),
        step(Unlock, "erin", v4(111), later + 9, Deny(0)),
        step(Unlock, "nobody", v4(111), later + 9, Deny(0)),
    ]);
    scripts.push(Script {
        name: "many-address attack locks the account except where its owner logs in",
        config: per_account,
        steps,
    });
    scripts
}

/// Plays `script` on `throttle`: the decision of each step (`None` for a success).
pub(crate) async fn play<T: LoginThrottle>(throttle: &T, script: &Script) -> Vec<Option<Decision>>
where
    T::Error: std::fmt::Debug,
{
    let mut out = Vec::with_capacity(script.steps.len());
    for s in &script.steps {
        let at = t(s.at);
        let d = match s.op {
            Op::Check => Some(throttle.check(&s.account, s.address, at).await.unwrap()),
            Op::Fail => Some(
                throttle
                    .record_failure(&s.account, s.address, at)
                    .await
                    .unwrap(),
            ),
            Op::Success => {
                throttle
                    .record_success(&s.account, s.address, at)
                    .await
                    .unwrap();
                None
            }
            Op::Unlock => Some(
                if throttle
                    .unlock(&s.account, "support:test", at)
                    .await
                    .unwrap()
                {
                    Decision::Allow
                } else {
                    deny(0)
                },
            ),
        };
        out.push(d);
    }
    out
}

pub(crate) fn deny(secs: u64) -> Decision {
    Decision::Deny {
        retry_after: Duration::from_secs(secs),
    }
}
