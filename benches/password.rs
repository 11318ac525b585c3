//! Password hashing at each preset, next to the raw crate call (same group, so one run
//! gives the ratio); a whole `LoginGuard::login` (throttle check, verify on the blocking
//! pool, success recorded) next to the plain verify it wraps; and a table of a tokio timer's
//! latency while both cores verify bcrypt-12 hashes: through `verify_async` against plain
//! `verify` inside async tasks.

use std::hint::black_box;
use std::time::Duration;

use credvault::SecretString;
use credvault::password::PasswordPolicy;
use criterion::{Criterion, criterion_group};
use sha2::Sha256;

const PASSWORD: &str = "correct horse battery staple";

fn configure<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group
}

fn bcrypt12(c: &mut Criterion) {
    let policy = PasswordPolicy::bcrypt(12).expect("preset");
    let password = SecretString::from(PASSWORD);
    let ours = policy.hash(&password).expect("hash");
    let raw = bcrypt::hash(PASSWORD, 12).expect("raw hash");
    let mut group = configure(c, "bcrypt-12");
    group.bench_function("credvault hash", |b| {
        b.iter(|| policy.hash(black_box(&password)))
    });
    group.bench_function("bcrypt crate hash", |b| {
        b.iter(|| bcrypt::hash(black_box(PASSWORD), 12))
    });
    group.bench_function("credvault verify", |b| {
        b.iter(|| policy.verify(black_box(&password), &ours))
    });
    group.bench_function("bcrypt crate verify", |b| {
        b.iter(|| bcrypt::verify(black_box(PASSWORD), &raw))
    });
    group.finish();
}

fn pbkdf2_600k(c: &mut Criterion) {
    let policy = PasswordPolicy::pbkdf2_sha256(600_000).expect("preset");
    let password = SecretString::from(PASSWORD);
    let ours = policy.hash(&password).expect("hash");
    let salt = [7u8; 16];
    let mut group = configure(c, "pbkdf2-sha256-600000");
    group.bench_function("credvault hash", |b| {
        b.iter(|| policy.hash(black_box(&password)))
    });
    group.bench_function("credvault verify", |b| {
        b.iter(|| policy.verify(black_box(&password), &ours))
    });
    group.bench_function("pbkdf2 crate", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(black_box(PASSWORD.as_bytes()), &salt, 600_000, &mut out);
            out
        });
    });
    group.finish();
}

fn argon2id_owasp(c: &mut Criterion) {
    let policy = PasswordPolicy::default();
    let password = SecretString::from(PASSWORD);
    let ours = policy.hash(&password).expect("hash");
    let params = argon2::Params::new(19_456, 2, 1, Some(32)).expect("params");
    let raw = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = [7u8; 16];
    let mut group = configure(c, "argon2id-19456-2-1");
    group.bench_function("credvault hash", |b| {
        b.iter(|| policy.hash(black_box(&password)))
    });
    group.bench_function("credvault verify", |b| {
        b.iter(|| policy.verify(black_box(&password), &ours))
    });
    group.bench_function("argon2 crate", |b| {
        b.iter(|| {
            let mut out = [0u8; 32];
            raw.hash_password_into(black_box(PASSWORD.as_bytes()), &salt, &mut out)
                .expect("argon2");
            out
        });
    });
    group.finish();
}

/// `LoginGuard::login` against the plain `verify` it wraps, bcrypt-12 (the policies' promise):
/// the guard's own cost (throttle, blocking-pool hop, success record) must stay within 5%.
fn login_guard(c: &mut Criterion) {
    use credvault::password::{InMemoryThrottle, LoginGuard, ThrottleConfig};
    use std::net::{IpAddr, Ipv4Addr};
    let policy = PasswordPolicy::bcrypt(12).expect("preset");
    let password = SecretString::from(PASSWORD);
    let stored = policy.hash(&password).expect("hash");
    let guard = LoginGuard::new(
        policy.clone(),
        InMemoryThrottle::new(ThrottleConfig::default()),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let mut group = configure(c, "login-bcrypt-12");
    group.bench_function("plain verify", |b| {
        b.iter(|| policy.verify(black_box(&password), &stored))
    });
    group.bench_function("LoginGuard::login", |b| {
        b.iter(|| {
            rt.block_on(guard.login("alice@example.com", ip, password.clone(), Some(&stored)))
        })
    });
    group.finish();
}

/// What the shared throttles (SQL, Redis) add to every attempt to keep names out of their
/// store: the keyed hashes of one attempt's keys (the account, the address, the pair and the
/// known-address mark: four HMAC-SHA256), to set beside a verify.
fn throttle_pseudonyms(c: &mut Criterion) {
    use credvault::password::PseudonymKey;
    use std::net::{IpAddr, Ipv4Addr};
    let key = PseudonymKey::from_bytes(&[7; 32]);
    let ip = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    let mut group = configure(c, "throttle-pseudonyms");
    group.bench_function("4 keyed hashes (one attempt's names)", |b| {
        b.iter(|| {
            (
                key.pseudonym(black_box("alice@example.com")),
                key.pseudonym(black_box("alice@example.com")),
                key.address_pseudonym(black_box(ip)),
                key.address_pseudonym(black_box(ip)),
            )
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bcrypt12,
    pbkdf2_600k,
    argon2id_owasp,
    login_guard,
    throttle_pseudonyms
);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    latency::table();
}

mod latency {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use credvault::SecretString;
    use credvault::password::PasswordPolicy;

    const TICK: Duration = Duration::from_millis(1);
    const RUN: Duration = Duration::from_secs(4);

    #[derive(Clone, Copy)]
    enum Load {
        None,
        BlockingInTask,
        VerifyAsync,
    }

    pub(super) fn table() {
        println!(
            "\ntokio timer lateness (1 ms sleeps) while 2 tasks verify bcrypt-12 in a loop, 2 workers"
        );
        println!("| load | p50 | p99 | max | verifies |");
        println!("|---|---:|---:|---:|---:|");
        for (name, load) in [
            ("idle", Load::None),
            ("plain verify in async tasks", Load::BlockingInTask),
            ("verify_async (spawn_blocking)", Load::VerifyAsync),
        ] {
            let (p50, p99, max, n) = measure(load);
            println!("| {name} | {p50:.2?} | {p99:.2?} | {max:.2?} | {n} |");
        }
    }

    fn measure(load: Load) -> (Duration, Duration, Duration, usize) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .expect("runtime");
        let policy = PasswordPolicy::bcrypt(12).expect("preset");
        let hash = policy.hash(&SecretString::from("pw")).expect("hash");
        let stop = Arc::new(AtomicBool::new(false));
        rt.block_on(async {
            let mut workers = Vec::new();
            for _ in 0..2 {
                let (policy, hash, stop) = (policy.clone(), hash.clone(), stop.clone());
                workers.push(tokio::spawn(async move {
                    let mut n = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        match load {
                            Load::None => return 0,
                            Load::BlockingInTask => {
                                let _ = policy.verify(&SecretString::from("pw"), &hash);
                            }
                            Load::VerifyAsync => {
                                let _ = policy
                                    .verify_async(SecretString::from("pw"), hash.clone())
                                    .await;
                            }
                        }
                        n += 1;
                        tokio::task::yield_now().await;
                    }
                    n
                }));
            }
            let timer = tokio::spawn(async move {
                let mut late = Vec::new();
                let start = Instant::now();
                while start.elapsed() < RUN {
                    let t0 = Instant::now();
                    tokio::time::sleep(TICK).await;
                    late.push(t0.elapsed().saturating_sub(TICK));
                }
                late
            });
            let mut late = timer.await.expect("timer task");
            stop.store(true, Ordering::Relaxed);
            let mut n = 0;
            for w in workers {
                n += w.await.expect("worker");
            }
            late.sort();
            let at = |percent: usize| late[(late.len() - 1) * percent / 100];
            (at(50), at(99), late[late.len() - 1], n)
        })
    }
}
