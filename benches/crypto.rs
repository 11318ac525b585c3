//! Fernet and sealed-record throughput, next to the peers in the same run.
//!
//! Peers: the raw `aes-gcm` crate (this file); the `fernet` crate with its default OpenSSL
//! backend (`benches/peers/fernet-openssl`) and with its `rustcrypto` feature
//! (`benches/peers/fernet-rustcrypto`), each a crate of its own, which benchmarks credvault's
//! Fernet beside it in one run: cargo unifies the two backends' features in one build, and
//! credvault's own dev-dependencies stay free of C libraries.
//! Compare ratios within one run: machines here are shared and noisy.
//!
//! `cargo bench --bench crypto` (add `-- --quick` for a fast pass); `--features ring` adds
//! credvault's `ring` backend (then its default), raw `ring` as a peer, and keeps the
//! pure-Rust backend beside them as `credvault-aead-rustcrypto`. OpenSSL's AES-GCM is a peer
//! in `benches/peers/gcm-openssl`. `python3 benches/report.py` prints the ratios.

#![allow(
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on unexpected errors"
)]

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use credvault::crypto::fernet::Fernet;
use credvault::crypto::{AeadKey, Context, aead};
use credvault::{KeyVersion, Keyring};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::Rng as _;

const SIZES: [usize; 4] = [32, 256, 4096, 65536];
const FIXED_TIME: u64 = 1_763_856_000;

fn fernet_encrypt(c: &mut Criterion) {
    let key = Fernet::generate_key();
    let ours = Fernet::new(key.expose_secret()).unwrap();
    let mut g = c.benchmark_group("fernet_encrypt");
    for size in SIZES {
        let data = vec![0x5a; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("credvault", size), &data, |b, d| {
            b.iter(|| ours.encrypt_at_time(black_box(d), FIXED_TIME));
        });
    }
    g.finish();
}

fn fernet_decrypt(c: &mut Criterion) {
    let key = Fernet::generate_key();
    let ours = Fernet::new(key.expose_secret()).unwrap();
    let mut g = c.benchmark_group("fernet_decrypt");
    for size in SIZES {
        let token = ours.encrypt(&vec![0x5a; size]);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("credvault", size), &token, |b, t| {
            b.iter(|| ours.decrypt(black_box(t)).unwrap());
        });
    }
    g.finish();
}

fn gcm(c: &mut Criterion) {
    let ring = Keyring::generate().unwrap();
    let (key, raw) = AeadKey::generate().unwrap();
    let raw_key: [u8; 32] = raw.expose_secret().try_into().unwrap();
    let peer = Aes256Gcm::new(&raw_key.into());
    let ctx = Context::record("tenant-0001", "oauth_token", "github").unwrap();
    // The associated data a sealed record feeds GCM (8-byte header, then the context), for
    // the peer that authenticates the same bytes: the difference is the framing alone.
    let aad = [&b"cv\x01\x01\x00\x00\x00\x01"[..], ctx.as_bytes()].concat();
    // With `--features ring` credvault's default backend is ring; the pure-Rust one is
    // measured beside it, and raw ring fed the same AAD is a peer.
    #[cfg(feature = "ring")]
    let rust = AeadKey::from_bytes_with(&raw_key, credvault::crypto::AeadBackend::RustCrypto);
    #[cfg(feature = "ring")]
    let ring_peer = {
        use ring::aead::{AES_256_GCM, LessSafeKey, UnboundKey};
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw_key).unwrap())
    };
    for (name, open) in [("gcm_seal", false), ("gcm_open", true)] {
        let mut g = c.benchmark_group(name);
        for size in SIZES {
            let data = vec![0x5a; size];
            g.throughput(Throughput::Bytes(size as u64));
            if open {
                let ours = aead::seal(&key, KeyVersion::FIRST, &data, &ctx).unwrap();
                let in_ring = ring.seal(&data, &ctx).unwrap();
                let nonce = Nonce::from([7u8; 12]);
                let theirs = peer.encrypt(&nonce, data.as_slice()).unwrap();
                g.bench_function(BenchmarkId::new("credvault-aead", size), |b| {
                    b.iter(|| aead::open(&key, black_box(&ours), &ctx).unwrap());
                });
                g.bench_function(BenchmarkId::new("credvault-keyring", size), |b| {
                    b.iter(|| ring.open(black_box(&in_ring), &ctx).unwrap());
                });
                g.bench_function(BenchmarkId::new("aes-gcm", size), |b| {
                    b.iter(|| peer.decrypt(&nonce, black_box(theirs.as_slice())).unwrap());
                });
                let with_aad = peer
                    .encrypt(
                        &nonce,
                        Payload {
                            msg: &data,
                            aad: &aad,
                        },
                    )
                    .unwrap();
                g.bench_function(BenchmarkId::new("aes-gcm-same-aad", size), |b| {
                    b.iter(|| {
                        let msg = black_box(with_aad.as_slice());
                        peer.decrypt(&nonce, Payload { msg, aad: &aad }).unwrap()
                    });
                });
                #[cfg(feature = "ring")]
                {
                    g.bench_function(BenchmarkId::new("credvault-aead-rustcrypto", size), |b| {
                        b.iter(|| aead::open(&rust, black_box(&ours), &ctx).unwrap());
                    });
                    g.bench_function(BenchmarkId::new("ring-same-aad", size), |b| {
                        b.iter(|| {
                            let mut buf = black_box(with_aad.as_slice()).to_vec();
                            let n = ring::aead::Nonce::assume_unique_for_key([7u8; 12]);
                            let aad = ring::aead::Aad::from(&aad);
                            let len = ring_peer.open_in_place(n, aad, &mut buf).unwrap().len();
                            buf.truncate(len);
                            buf
                        });
                    });
                }
            } else {
                g.bench_function(BenchmarkId::new("credvault-aead", size), |b| {
                    b.iter(|| aead::seal(&key, KeyVersion::FIRST, black_box(&data), &ctx).unwrap());
                });
                g.bench_function(BenchmarkId::new("credvault-keyring", size), |b| {
                    b.iter(|| ring.seal(black_box(&data), &ctx).unwrap());
                });
                g.bench_function(BenchmarkId::new("aes-gcm", size), |b| {
                    b.iter(|| {
                        let mut nonce = [0u8; 12];
                        rand::rng().fill_bytes(&mut nonce);
                        peer.encrypt(&Nonce::from(nonce), black_box(data.as_slice()))
                            .unwrap()
                    });
                });
                g.bench_function(BenchmarkId::new("aes-gcm-same-aad", size), |b| {
                    b.iter(|| {
                        let mut nonce = [0u8; 12];
                        rand::rng().fill_bytes(&mut nonce);
                        let msg = black_box(data.as_slice());
                        peer.encrypt(&Nonce::from(nonce), Payload { msg, aad: &aad })
                            .unwrap()
                    });
                });
                #[cfg(feature = "ring")]
                {
                    g.bench_function(BenchmarkId::new("credvault-aead-rustcrypto", size), |b| {
                        b.iter(|| {
                            aead::seal(&rust, KeyVersion::FIRST, black_box(&data), &ctx).unwrap()
                        });
                    });
                    g.bench_function(BenchmarkId::new("ring-same-aad", size), |b| {
                        b.iter(|| {
                            let mut nonce = [0u8; 12];
                            rand::rng().fill_bytes(&mut nonce);
                            let mut buf = Vec::with_capacity(data.len() + 16);
                            buf.extend_from_slice(black_box(&data));
                            let n = ring::aead::Nonce::assume_unique_for_key(nonce);
                            ring_peer
                                .seal_in_place_append_tag(n, ring::aead::Aad::from(&aad), &mut buf)
                                .unwrap();
                            buf
                        });
                    });
                }
            }
        }
        g.finish();
    }
}

/// The cost of one 12-byte draw from each source `credvault::crypto`'s randomness could use
/// (see `src/crypto/rng.rs`): `rand::rng()` (fast but repeats across `fork()`), the OS per draw
/// (`getrandom`), `std::process::id()` alone (a `getpid` call: glibc does not cache it), a
/// thread-local ChaCha12 generator checked against the process id on every draw, and
/// `chacha_atfork_counter`, the same generator checked against a counter a `pthread_atfork`
/// child handler bumps, so no system call per draw: what the crate uses (through the
/// `forkguard` crate, which holds the one `unsafe` call).
fn rng(c: &mut Criterion) {
    use std::cell::RefCell;

    use rand::rngs::{StdRng, SysRng};
    use rand::{SeedableRng as _, TryRng as _};

    thread_local! {
        static STATE: RefCell<Option<(u32, StdRng)>> = const { RefCell::new(None) };
    }
    fn pid_checked(buf: &mut [u8]) {
        let pid = std::process::id();
        STATE.with_borrow_mut(|state| {
            if !matches!(state, Some((p, _)) if *p == pid) {
                *state = Some((pid, StdRng::try_from_rng(&mut SysRng).unwrap()));
            }
            if let Some((_, rng)) = state {
                rng.fill_bytes(buf);
            }
        });
    }

    let mut g = c.benchmark_group("rng_12_bytes");
    g.bench_function("thread_rng", |b| {
        b.iter(|| {
            let mut nonce = [0u8; 12];
            rand::rng().fill_bytes(&mut nonce);
            black_box(nonce)
        });
    });
    g.bench_function("os_getrandom", |b| {
        b.iter(|| {
            let mut nonce = [0u8; 12];
            SysRng.try_fill_bytes(&mut nonce).unwrap();
            black_box(nonce)
        });
    });
    g.bench_function("getpid", |b| b.iter(|| black_box(std::process::id())));
    g.bench_function("chacha_pid_checked", |b| {
        b.iter(|| {
            let mut nonce = [0u8; 12];
            pid_checked(&mut nonce);
            black_box(nonce)
        });
    });
    #[cfg(unix)]
    g.bench_function("chacha_atfork_counter", |b| {
        b.iter(|| {
            let mut nonce = [0u8; 12];
            atfork::fill(&mut nonce);
            black_box(nonce)
        });
    });
    g.finish();
}

/// The `pthread_atfork` alternative of `rng`, for its price only.
#[cfg(unix)]
mod atfork {
    use std::cell::RefCell;
    use std::sync::Once;
    use std::sync::atomic::{AtomicU64, Ordering};

    use rand::rngs::{StdRng, SysRng};
    use rand::{Rng as _, SeedableRng as _};

    static FORKS: AtomicU64 = AtomicU64::new(0);
    static REGISTER: Once = Once::new();

    thread_local! {
        static STATE: RefCell<Option<(u64, StdRng)>> = const { RefCell::new(None) };
    }

    extern "C" fn child() {
        FORKS.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn fill(buf: &mut [u8]) {
        REGISTER.call_once(|| {
            #[allow(unsafe_code, reason = "a bench-only prototype of the FFI alternative")]
            // SAFETY: registers a handler that only bumps an atomic.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(child)) };
            assert_eq!(rc, 0);
        });
        let forks = FORKS.load(Ordering::Relaxed);
        STATE.with_borrow_mut(|state| {
            if !matches!(state, Some((f, _)) if *f == forks) {
                *state = Some((forks, StdRng::try_from_rng(&mut SysRng).unwrap()));
            }
            if let Some((_, rng)) = state {
                rng.fill_bytes(buf);
            }
        });
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = fernet_encrypt, fernet_decrypt, gcm, rng
}
criterion_main!(benches);
