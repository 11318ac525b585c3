//! credvault's AES-256-GCM sealed records next to OpenSSL's AES-256-GCM fed the same
//! associated data, in one run (groups `gcm_seal` and `gcm_open`, as in benches/crypto.rs).
//!
//! The OpenSSL peer keeps one `EVP_CIPHER_CTX` per direction with the key set once and only
//! the nonce set per record (the cheapest way to drive OpenSSL; Python's `cryptography`
//! builds a context per call, which costs it ~1 µs more per record).
//!
//! `CARGO_TARGET_DIR=$PWD/target cargo bench --manifest-path benches/peers/gcm-openssl/Cargo.toml`

#![allow(clippy::unwrap_used, reason = "benches fail loudly on unexpected errors")]

use std::hint::black_box;
use std::time::Duration;

use credvault::KeyVersion;
use credvault::crypto::{AeadBackend, AeadKey, Context, aead};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;

const SIZES: [usize; 4] = [32, 256, 4096, 65536];

struct OpenSsl {
    enc: CipherCtx,
    dec: CipherCtx,
}

impl OpenSsl {
    fn new(key: &[u8; 32]) -> Self {
        let mut enc = CipherCtx::new().unwrap();
        enc.encrypt_init(Some(Cipher::aes_256_gcm()), Some(key), None)
            .unwrap();
        let mut dec = CipherCtx::new().unwrap();
        dec.decrypt_init(Some(Cipher::aes_256_gcm()), Some(key), None)
            .unwrap();
        Self { enc, dec }
    }

    fn seal(&mut self, nonce: &[u8; 12], aad: &[u8], msg: &[u8]) -> Vec<u8> {
        let ctx = &mut self.enc;
        ctx.encrypt_init(None, None, Some(nonce)).unwrap();
        ctx.cipher_update(aad, None).unwrap();
        let mut out = vec![0u8; msg.len() + 16];
        let n = ctx.cipher_update(msg, Some(&mut out)).unwrap();
        ctx.cipher_final(&mut out[n..]).unwrap();
        ctx.tag(&mut out[msg.len()..]).unwrap();
        out
    }

    fn open(&mut self, nonce: &[u8; 12], aad: &[u8], sealed: &[u8]) -> Vec<u8> {
        let (ct, tag) = sealed.split_at(sealed.len() - 16);
        let ctx = &mut self.dec;
        ctx.decrypt_init(None, None, Some(nonce)).unwrap();
        ctx.cipher_update(aad, None).unwrap();
        let mut out = vec![0u8; ct.len() + 16];
        let n = ctx.cipher_update(ct, Some(&mut out)).unwrap();
        ctx.set_tag(tag).unwrap();
        ctx.cipher_final(&mut out[n..]).unwrap();
        out.truncate(ct.len());
        out
    }
}

fn gcm(c: &mut Criterion) {
    let raw = [0x42u8; 32];
    let ours = AeadKey::from_bytes(&raw);
    let rust = AeadKey::from_bytes_with(&raw, AeadBackend::RustCrypto);
    let mut peer = OpenSsl::new(&raw);
    let ctx = Context::record("tenant-0001", "oauth_token", "github").unwrap();
    let aad = [&b"cv\x01\x01\x00\x00\x00\x01"[..], ctx.as_bytes()].concat();
    let nonce = [7u8; 12];
    // Same bytes out of both: the peer really does the same work.
    let check = aead::danger_seal_with_nonce(&ours, KeyVersion::FIRST, b"x", &ctx, nonce).unwrap();
    assert_eq!(&check[8..20], &nonce);
    assert_eq!(&check[20..], peer.seal(&nonce, &aad, b"x").as_slice());

    let mut g = c.benchmark_group("gcm_seal");
    for size in SIZES {
        let data = vec![0x5a; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("credvault-aead", size), |b| {
            b.iter(|| aead::seal(&ours, KeyVersion::FIRST, black_box(&data), &ctx).unwrap());
        });
        if rust.backend() != ours.backend() {
            g.bench_function(BenchmarkId::new("credvault-aead-rustcrypto", size), |b| {
                b.iter(|| aead::seal(&rust, KeyVersion::FIRST, black_box(&data), &ctx).unwrap());
            });
        }
        g.bench_function(BenchmarkId::new("openssl-same-aad", size), |b| {
            b.iter(|| peer.seal(&nonce, &aad, black_box(&data)));
        });
    }
    g.finish();

    let mut g = c.benchmark_group("gcm_open");
    for size in SIZES {
        let data = vec![0x5a; size];
        let blob = aead::seal(&ours, KeyVersion::FIRST, &data, &ctx).unwrap();
        let theirs = peer.seal(&nonce, &aad, &data);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("credvault-aead", size), |b| {
            b.iter(|| aead::open(&ours, black_box(&blob), &ctx).unwrap());
        });
        if rust.backend() != ours.backend() {
            g.bench_function(BenchmarkId::new("credvault-aead-rustcrypto", size), |b| {
                b.iter(|| aead::open(&rust, black_box(&blob), &ctx).unwrap());
            });
        }
        g.bench_function(BenchmarkId::new("openssl-same-aad", size), |b| {
            b.iter(|| peer.open(&nonce, &aad, black_box(&theirs)));
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = gcm
}
criterion_main!(benches);
