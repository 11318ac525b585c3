//! Desktop mode's cost: the vault's get and put on an encrypted SQLite file (SQLCipher, page
//! key from the KEK) next to the same vault on a plain SQLite file, in the same run and the
//! same build (this crate links SQLCipher; a file opened without a key is plain SQLite).
//! `desktop_open` is opening the file: `sqlcipher::open` (SQLCipher check, key probe, pool)
//! against `SqliteBackend::connect`.
//!
//! Wall times swing on a loaded machine; for a steady figure count instructions per operation
//! with callgrind: `CREDVAULT_BENCH_OPS=W:OP:N` (W = plain or sqlcipher, OP = get or put) does
//! N operations and no benchmark. Build with `cargo bench --bench encrypted_vault --no-run`,
//! run `valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/encrypted_vault-*`
//! with N = 1000 and 3000, and take (I3000 - I1000) / 2000.
//!
//! `cargo bench --manifest-path desktop/Cargo.toml --bench encrypted_vault`

#![allow(
    clippy::unwrap_used,
    reason = "benches fail loudly on unexpected errors"
)]

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use credvault::backend::{SqliteBackend, sqlcipher};
use credvault::envelope::MemoryTenantKeys;
use credvault::keys::PageKey;
use credvault::store::{OAuthToken, Tenant, Vault};
use credvault::{Keyring, SecretString};
use criterion::{Criterion, criterion_group, criterion_main};

fn token(i: u64) -> OAuthToken {
    OAuthToken {
        refresh_token: Some(SecretString::from(format!("ghr_{i:040}"))),
        expires_at: Some(1_900_000_000),
        scopes: vec!["repo".into(), "read:user".into()],
        account: Some("octocat".into()),
        ..OAuthToken::bearer("github", SecretString::from(format!("gho_{i:040}")))
    }
}

async fn filled(backend: SqliteBackend, kek: &Keyring) -> (Vault, Tenant) {
    let vault = Vault::builder(backend, kek.clone(), MemoryTenantKeys::new()).build();
    vault.migrate().await.unwrap();
    let acme = vault.tenant("acme").unwrap();
    for i in 0..1000 {
        acme.put(&format!("conn-{i}"), &token(i)).await.unwrap();
    }
    (vault, acme)
}

fn desktop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name).display().to_string();
    let kek = Keyring::generate().unwrap();
    let (plain_path, encrypted_path) = (at("plain.db"), at("encrypted.db"));
    let ((plain_vault, plain), (encrypted_vault, encrypted)) = rt.block_on(async {
        let plain = filled(SqliteBackend::connect(&plain_path).await.unwrap(), &kek).await;
        let (backend, _) = sqlcipher::open(&encrypted_path, &PageKey::candidates(&kek).unwrap())
            .await
            .unwrap();
        (plain, filled(backend, &kek).await)
    });
    assert!(
        std::fs::read(Path::new(&plain_path))
            .unwrap()
            .starts_with(b"SQLite format 3")
    );
    assert!(
        !std::fs::read(Path::new(&encrypted_path))
            .unwrap()
            .starts_with(b"SQLite format 3")
    );
    let get = |t: &Tenant, i: u64| {
        rt.block_on(t.get::<OAuthToken>(black_box(&format!("conn-{i}"))))
            .unwrap()
    };
    let put = |t: &Tenant, n: u64| rt.block_on(t.put(&format!("put-{n}"), &token(n))).unwrap();

    if let Ok(spec) = std::env::var("CREDVAULT_BENCH_OPS") {
        let mut parts = spec.split(':');
        let (which, op, n) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let n: u64 = n.parse().unwrap();
        let tenant = match which {
            "plain" => &plain,
            "sqlcipher" => &encrypted,
            other => panic!("CREDVAULT_BENCH_OPS={other}:..: plain or sqlcipher"),
        };
        for i in 0..n {
            match op {
                "get" => drop(black_box(get(tenant, (i * 7) % 1000))),
                "put" => drop(black_box(put(tenant, i))),
                other => panic!("CREDVAULT_BENCH_OPS=..:{other}:N: get or put"),
            }
        }
        std::process::exit(0);
    }

    let mut g = c.benchmark_group("desktop_get");
    let mut i = 0u64;
    g.bench_function("credvault-sqlite", |b| {
        b.iter(|| {
            i = (i + 7) % 1000;
            get(&plain, i)
        });
    });
    g.bench_function("credvault-sqlcipher", |b| {
        b.iter(|| {
            i = (i + 7) % 1000;
            get(&encrypted, i)
        });
    });
    g.finish();

    let mut g = c.benchmark_group("desktop_put");
    let mut n = 0u64;
    g.bench_function("credvault-sqlite", |b| {
        b.iter(|| {
            n += 1;
            put(&plain, n)
        });
    });
    g.bench_function("credvault-sqlcipher", |b| {
        b.iter(|| {
            n += 1;
            put(&encrypted, n)
        });
    });
    g.finish();
    rt.block_on(async {
        plain_vault.flush_audit().await.unwrap();
        encrypted_vault.flush_audit().await.unwrap();
    });

    let mut g = c.benchmark_group("desktop_open");
    g.bench_function("credvault-sqlite", |b| {
        b.iter(|| {
            rt.block_on(async {
                let backend = SqliteBackend::connect(&plain_path).await.unwrap();
                sqlx::query("SELECT count(*) FROM sqlite_master")
                    .execute(backend.pool())
                    .await
                    .unwrap();
                backend.pool().close().await;
            });
        });
    });
    g.bench_function("credvault-sqlcipher", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (backend, _) =
                    sqlcipher::open(&encrypted_path, &PageKey::candidates(&kek).unwrap())
                        .await
                        .unwrap();
                backend.pool().close().await;
            });
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = desktop
}
criterion_main!(benches);
