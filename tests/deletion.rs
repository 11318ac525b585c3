//! Deletion that keeps the policy's word (issue 14, items 1-3), on a real SQLite file and on
//! PostgreSQL (skipped with a message when no server is reachable, unless
//! CREDVAULT_REQUIRE_POSTGRES=1):
//! - the purge runner, over simulated days, deletes every item before its promised deadline;
//! - deleting a tenant revokes its OAuth tokens through the application's revoker and removes
//!   them at once, a failed revocation is audited and retried by the purge, and the tenant
//!   can still be disconnected, exported and restored during its grace period;
//! - after a disconnect or a purge, a raw scan of the SQLite file and its WAL finds no byte
//!   of the deleted records (their ciphertext, the wrapped data key, metadata strings).

#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credvault::backend::{AuditQuery, Backend, BoxFuture, RecordKey, SqliteBackend};
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{
    ApiKey, Cookie, DAY, DerivedData, ManualClock, OAuthToken, PurgerConfig, RevocationRequest,
    RevokeError, Revoker, SecretKind, SessionCookies, StoreError, Vault,
};
use credvault::{Keyring, RecordKind, RecordName, SecretString, TenantId};
use serde_json::json;
use sqlx::sqlite::SqlitePoolOptions;

const T0: i64 = 1_763_856_000;
const HOUR: i64 = 3_600;
const DAY_SECS: i64 = 86_400;

// ---- 1. On time: the purge runner over simulated days

/// The purge runner, every hour, over six simulated days: tenants deleted (2-day promise) and
/// derived data disconnected (24-hour promise) at odd minutes of many hours. After each run
/// nothing may be left whose deadline comes before the next run, every run reports nothing
/// overdue, and nothing is deleted earlier than the runner's lead allows.
async fn runner_deletes_everything_before_its_deadline(backend: Arc<dyn Backend>) {
    let clock = ManualClock::new(T0);
    let vault = Vault::builder(
        Arc::clone(&backend),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .clock(clock.clone())
    .grace_period(2 * DAY)
    .derived_retention(DAY)
    .build();
    vault.migrate().await.unwrap();
    let schedule = PurgerConfig::every(Duration::from_secs(3_600));
    let lead = i64::try_from(schedule.lead().as_secs()).unwrap();

    // Tokio's clock drives the runner's ticks, the manual clock the vault's deadlines: both
    // move together, one hour per step, and only when the test moves them. (A blocking task
    // in flight keeps tokio from advancing its paused clock by itself while the database's
    // I/O is awaited, which would fire the pool's acquire timeout.)
    tokio::time::pause();
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let no_auto_advance = tokio::task::spawn_blocking(move || hold.recv());
    let purger = vault.spawn_purger(schedule).unwrap();
    let mut runs = purger.subscribe();
    let mut tenants: Vec<(TenantId, i64)> = Vec::new();
    let mut derived: Vec<(RecordKey, i64)> = Vec::new();
    for hour in 0..6 * 24 {
        let offset: i64 = (hour * 7 % 60) * 60 + 13;
        clock.advance(Duration::from_secs(offset.unsigned_abs()));
        if hour < 3 * 24 {
            let name = format!("t{hour}");
            let tenant = vault.tenant(&name).unwrap();
            let data = DerivedData {
                provider: "shop".to_owned(),
                value: json!({ "hour": hour }),
            };
            tenant.put("orders", &data).await.unwrap();
            if hour % 3 == 0 {
                let deadline = vault.delete_tenant(&name, "test").await.unwrap();
                assert_eq!(
                    deadline,
                    clock_now(&clock) + 2 * DAY_SECS,
                    "the promise, stated"
                );
                tenants.push((TenantId::new(&name).unwrap(), deadline));
            } else {
                let report = tenant.disconnect("shop", None).await.unwrap();
                let deadline = report.derived_purge_after.unwrap();
                assert_eq!(
                    deadline,
                    clock_now(&clock) + DAY_SECS,
                    "the promise, stated"
                );
                derived.push((key(&name, DerivedData::KIND, "orders"), deadline));
            }
        }
        clock.advance(Duration::from_secs((HOUR - offset).unsigned_abs()));
        let now = clock_now(&clock);
        // (Tokio rounds a timer up to the next millisecond.)
        tokio::time::advance(schedule.interval + Duration::from_millis(1)).await;
        let status = runs
            .wait_for(|s| s.last_started_at.is_some_and(|at| at >= now))
            .await
            .unwrap()
            .clone();
        assert_eq!(status.failures, 0, "{:?}", status.last_error);
        let report = status.last_report.unwrap();
        assert_eq!(report.oldest_overdue, Duration::ZERO, "at {now}");
        let next_run = now + HOUR;
        for (id, deadline) in &tenants {
            let present = backend.tenant(id).await.unwrap().is_some();
            assert!(
                !present || *deadline > next_run,
                "tenant {id} (deadline {deadline}) is still there after the run at {now}: \
                 the next run, at {next_run}, comes too late"
            );
            assert!(
                present || *deadline <= now + lead,
                "tenant {id} purged earlier than the runner's lead allows"
            );
        }
        for (k, deadline) in &derived {
            let present = backend.get(k).await.unwrap().is_some();
            assert!(
                !present || *deadline > next_run,
                "derived record of {} (deadline {deadline}) is still there after the run at \
                 {now}: the next run, at {next_run}, comes too late",
                k.tenant
            );
            assert!(present || *deadline <= now + lead);
        }
    }
    for (id, _) in &tenants {
        assert!(backend.tenant(id).await.unwrap().is_none(), "{id} purged");
    }
    for (k, _) in &derived {
        assert!(backend.get(k).await.unwrap().is_none());
    }
    purger.stop().await;
    release.send(()).unwrap();
    no_auto_advance.await.unwrap().unwrap();
}

#[tokio::test]
async fn purge_runner_deletes_before_every_deadline_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteBackend::options(dir.path().join("vault.db").to_str().unwrap()).unwrap();
    // Every connection opened before tokio's clock is paused (a connection opened while it is
    // paused would let the pool's acquire timeout fire at once).
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(3_600 * 24 * 365))
        .connect_with(options)
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.acquire().await.unwrap());
    }
    drop(held);
    runner_deletes_everything_before_its_deadline(Arc::new(SqliteBackend::from_pool(pool))).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn purge_runner_deletes_before_every_deadline_on_postgres() {
    use credvault::backend::PgBackend;
    let Some((admin, schema)) = common::postgres_schema().await else {
        return;
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(3_600 * 24 * 365))
        .connect(&common::postgres_url())
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.acquire().await.unwrap());
    }
    drop(held);
    let backend = PgBackend::from_pool(pool.clone())
        .with_schema(&schema)
        .unwrap();
    runner_deletes_everything_before_its_deadline(Arc::new(backend)).await;
    pool.close().await;
    tokio::time::resume();
    common::drop_postgres_schema(admin, schema).await;
}

#[tokio::test]
async fn a_schedule_that_cannot_keep_the_shortest_promise_is_refused() {
    let vault = Vault::builder(
        credvault::backend::MemoryBackend::new(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .derived_retention(DAY)
    .build();
    vault.migrate().await.unwrap();
    for schedule in [
        PurgerConfig::every(Duration::from_secs(86_400)),
        PurgerConfig::every(Duration::from_secs(86_400 - 300)),
        PurgerConfig::every(Duration::ZERO),
    ] {
        assert!(matches!(
            vault.spawn_purger(schedule),
            Err(StoreError::InvalidPurgeSchedule { .. })
        ));
        assert!(matches!(
            vault.purge_on_schedule(&schedule).await,
            Err(StoreError::InvalidPurgeSchedule { .. })
        ));
    }
    let ok = vault
        .spawn_purger(PurgerConfig::every(Duration::from_secs(3_600)))
        .unwrap();
    ok.stop().await;
}

#[test]
fn spawning_the_purger_outside_a_runtime_is_an_error_not_a_panic() {
    let vault = Vault::builder(
        credvault::backend::MemoryBackend::new(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .build();
    assert!(matches!(
        vault.spawn_purger(PurgerConfig::default()),
        Err(StoreError::NoRuntime)
    ));
}

/// A purge that ran too rarely says by how much it missed the promise.
#[tokio::test]
async fn a_late_purge_reports_its_oldest_overdue_item() {
    let made = common::sqlite_made().await;
    let clock = ManualClock::new(T0);
    let vault = Vault::builder(
        made.backend(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .clock(clock.clone())
    .build();
    vault.migrate().await.unwrap();
    let acme = vault.tenant("acme").unwrap();
    let data = DerivedData {
        provider: "shop".to_owned(),
        value: json!({}),
    };
    acme.put("orders", &data).await.unwrap();
    acme.disconnect("shop", None).await.unwrap();
    clock.advance(DAY);
    assert_eq!(vault.purge().await.unwrap().oldest_overdue, Duration::ZERO);
    acme.put("orders", &data).await.unwrap();
    acme.disconnect("shop", None).await.unwrap();
    clock.advance(DAY + Duration::from_secs(90));
    let report = vault.purge().await.unwrap();
    assert_eq!(report.expired_records, 1);
    assert_eq!(report.oldest_overdue, Duration::from_secs(90));
}

// ---- 2. Account deletion revokes

/// A revoker that records what it was asked to revoke and fails for some record names a given
/// number of times (`http 503`).
#[derive(Debug, Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<(String, String)>>>,
    failures: Arc<Mutex<HashMap<String, usize>>>,
}

impl Recorder {
    fn failing(name: &str, times: usize) -> Self {
        let r = Self::default();
        r.failures.lock().unwrap().insert(name.to_owned(), times);
        r
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().unwrap().clone()
    }
}

impl Revoker for Recorder {
    fn revoke<'a>(
        &'a self,
        request: &'a RevocationRequest,
    ) -> BoxFuture<'a, Result<(), RevokeError>> {
        Box::pin(async move {
            let token = request.oauth_token().unwrap();
            let refresh = token.refresh_token.unwrap().expose_secret().to_owned();
            self.seen
                .lock()
                .unwrap()
                .push((request.name.clone(), refresh));
            let mut failures = self.failures.lock().unwrap();
            match failures.get_mut(&request.name) {
                Some(left) if *left > 0 => {
                    *left -= 1;
                    Err(RevokeError("http 503".to_owned()))
                }
                _ => Ok(()),
            }
        })
    }
}

fn token(provider: &str, access: &str) -> OAuthToken {
    OAuthToken {
        refresh_token: Some(SecretString::from(format!("refresh-{access}"))),
        ..OAuthToken::bearer(provider, SecretString::from(access))
    }
}

fn key(tenant: &str, kind: &str, name: &str) -> RecordKey {
    RecordKey {
        tenant: TenantId::new(tenant).unwrap(),
        kind: RecordKind::new(kind).unwrap(),
        name: RecordName::new(name).unwrap(),
    }
}

fn clock_now(clock: &ManualClock) -> i64 {
    use credvault::store::Clock as _;
    clock.now()
}

async fn delete_tenant_revokes_and_removes_its_tokens(backend: Arc<dyn Backend>) {
    let clock = ManualClock::new(T0);
    let revoker = Recorder::failing("gitlab", 2);
    let vault = Vault::builder(
        Arc::clone(&backend),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .clock(clock.clone())
    .revoker(revoker.clone())
    .build();
    vault.migrate().await.unwrap();
    let acme = vault.tenant("acme").unwrap();
    acme.put("github", &token("github", "gh-access"))
        .await
        .unwrap();
    acme.put("gitlab", &token("gitlab", "gl-access"))
        .await
        .unwrap();
    let api_key = ApiKey {
        provider: "stripe".to_owned(),
        key: SecretString::from("sk_live_example"),
        label: None,
    };
    acme.put("stripe", &api_key).await.unwrap();
    let profile = DerivedData {
        provider: "github".to_owned(),
        value: json!({ "login": "octocat" }),
    };
    acme.put("profile", &profile).await.unwrap();

    let deadline = vault.delete_tenant("acme", "admin:bob").await.unwrap();
    assert_eq!(deadline, T0 + 30 * DAY_SECS);
    assert_eq!(
        revoker.seen(),
        [
            ("github".to_owned(), "refresh-gh-access".to_owned()),
            ("gitlab".to_owned(), "refresh-gl-access".to_owned()),
        ],
        "every token went to the revoker at once"
    );
    let github = key("acme", OAuthToken::KIND, "github");
    let gitlab = key("acme", OAuthToken::KIND, "gitlab");
    assert!(
        backend.get(&github).await.unwrap().is_none(),
        "revoked: gone"
    );
    assert!(
        backend.get(&gitlab).await.unwrap().is_some(),
        "revocation failed: kept, sealed, for a retry"
    );
    let audit = vault
        .audit(&AuditQuery {
            tenant: Some(TenantId::new("acme").unwrap()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let rows = |name: &str, action: &str| -> Vec<String> {
        audit
            .iter()
            .filter(|r| r.name.as_deref() == Some(name) && r.action == action)
            .map(|r| format!("{} {}", r.actor, r.outcome))
            .collect()
    };
    assert_eq!(rows("github", "revoke"), ["admin:bob ok"]);
    assert_eq!(rows("github", "delete"), ["admin:bob ok: tenant deleted"]);
    assert_eq!(
        rows("gitlab", "revoke"),
        ["admin:bob failed: http 503; kept for a retry by the purge"]
    );

    // The rest stays exportable during the grace period, and disconnect still works.
    let mut out = Vec::new();
    let exported = acme.export_json(&mut out).await.unwrap();
    assert_eq!(exported.records, 3, "gitlab (kept), stripe, profile");
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("sk_live_example") && !text.contains("gh-access"));
    let report = acme.disconnect("github", None).await.unwrap();
    assert_eq!(report.derived_scheduled, 1, "the derived profile");

    // The purge retries the failed revocation until the provider accepts it.
    let report = vault.purge().await.unwrap();
    assert_eq!((report.tokens_revoked, report.revocation_failures), (0, 1));
    assert!(backend.get(&gitlab).await.unwrap().is_some());
    let report = vault.purge().await.unwrap();
    assert_eq!((report.tokens_revoked, report.tokens_removed), (1, 1));
    assert!(backend.get(&gitlab).await.unwrap().is_none());
    assert_eq!(revoker.seen().len(), 4, "two retries of gitlab");
    let audit = vault.audit(&AuditQuery::default()).await.unwrap();
    let retried: Vec<&str> = audit
        .iter()
        .filter(|r| r.name.as_deref() == Some("gitlab") && r.actor == "job:purge")
        .map(|r| r.outcome.as_str())
        .collect();
    assert_eq!(
        retried,
        [
            "failed: http 503; kept for a retry by the purge",
            "ok",
            "ok: tenant deleted"
        ]
    );

    // Restored within the grace period: everything but the tokens is back.
    vault.restore_tenant("acme", "admin:bob").await.unwrap();
    assert_eq!(
        acme.get::<ApiKey>("stripe")
            .await
            .unwrap()
            .value
            .key
            .expose_secret(),
        "sk_live_example"
    );
    assert!(matches!(
        acme.get::<OAuthToken>("github").await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test]
async fn delete_tenant_revokes_and_removes_its_tokens_on_sqlite() {
    let made = common::sqlite_made().await;
    delete_tenant_revokes_and_removes_its_tokens(made.backend()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn delete_tenant_revokes_and_removes_its_tokens_on_postgres() {
    let Some(made) = common::postgres_made().await else {
        return;
    };
    delete_tenant_revokes_and_removes_its_tokens(made.backend()).await;
    made.finish().await;
}

/// `delete_tenant_with` uses the revoker it is given; without any revoker, `delete_tenant`
/// still removes the tokens at once (unrevoked, as the audit log shows: no `revoke` row).
#[tokio::test]
async fn delete_tenant_with_a_revoker_or_none() {
    let made = common::sqlite_made().await;
    let vault = Vault::builder(
        made.backend(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .build();
    vault.migrate().await.unwrap();
    for t in ["acme", "globex"] {
        let tenant = vault.tenant(t).unwrap();
        tenant
            .put("github", &token("github", &format!("{t}-access")))
            .await
            .unwrap();
    }
    let revoker = Recorder::failing("none", 0);
    let done = vault
        .delete_tenant_with("acme", "admin", &revoker)
        .await
        .unwrap();
    assert_eq!(
        (
            done.tokens_revoked,
            done.tokens_removed,
            done.revocation_failures
        ),
        (1, 1, 0)
    );
    assert_eq!(revoker.seen().len(), 1);
    vault.delete_tenant("globex", "admin").await.unwrap();
    let globex = key("globex", OAuthToken::KIND, "github");
    assert!(made.backend().get(&globex).await.unwrap().is_none());
    let audit = vault.audit(&AuditQuery::default()).await.unwrap();
    assert!(!audit.iter().any(
        |r| r.tenant.as_ref().is_some_and(|t| t.as_str() == "globex") && r.action == "revoke"
    ));
}

// ---- 3. Physically gone (SQLite)

/// The live database file and its WAL, concatenated.
fn live_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join("vault.db")).unwrap();
    if let Ok(wal) = std::fs::read(dir.join("vault.db-wal")) {
        bytes.extend(wal);
    }
    bytes
}

/// Every 16-byte piece of `secret` (and its tail) that `hay` still holds.
fn pieces_found(hay: &[u8], secret: &[u8]) -> usize {
    let mut starts: Vec<usize> = (0..secret.len().saturating_sub(16)).step_by(16).collect();
    starts.push(secret.len().saturating_sub(16));
    starts
        .into_iter()
        .filter(|&i| {
            let piece = &secret[i..(i + 16).min(secret.len())];
            hay.windows(piece.len()).any(|w| w == piece)
        })
        .count()
}

fn assert_gone(dir: &Path, what: &str, secret: &[u8]) {
    let found = pieces_found(&live_bytes(dir), secret);
    assert_eq!(
        found, 0,
        "{found} piece(s) of {what} still in the database file or its WAL"
    );
}

struct SqliteVault {
    dir: tempfile::TempDir,
    backend: Arc<SqliteBackend>,
    vault: Vault,
    clock: ManualClock,
}

async fn sqlite_vault() -> SqliteVault {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    let backend = Arc::new(
        SqliteBackend::connect(path.to_str().unwrap())
            .await
            .unwrap(),
    );
    let clock = ManualClock::new(T0);
    let vault = Vault::builder(
        Arc::clone(&backend),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .clock(clock.clone())
    .build();
    vault.migrate().await.unwrap();
    // Neighbours on the same pages.
    let globex = vault.tenant("globex").unwrap();
    for i in 0..40 {
        globex
            .put(
                &format!("key-{i}"),
                &token("github", &format!("globex-{i}")),
            )
            .await
            .unwrap();
    }
    SqliteVault {
        dir,
        backend,
        vault,
        clock,
    }
}

#[tokio::test]
async fn every_pooled_sqlite_connection_runs_with_secure_delete() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::connect(dir.path().join("vault.db").to_str().unwrap())
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut conn = backend.pool().acquire().await.unwrap();
        let on: i64 = sqlx::query_scalar("PRAGMA secure_delete")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(on, 1);
        held.push(conn);
    }
}

#[tokio::test]
async fn disconnect_leaves_no_byte_of_the_token_in_the_sqlite_file_or_wal() {
    let f = sqlite_vault().await;
    let acme = f.vault.tenant("acme").unwrap();
    let leaving = OAuthToken {
        account: Some("leaving.user.q7@example.com".to_owned()),
        scopes: vec!["scope-unique-k9".to_owned()],
        ..token("provider-zx81", "zx81-access")
    };
    acme.put("zx81", &leaving).await.unwrap();
    let k = key("acme", OAuthToken::KIND, "zx81");
    let sealed = f.backend.get(&k).await.unwrap().unwrap().sealed;
    let strings: [&[u8]; 3] = [
        b"leaving.user.q7@example.com",
        b"scope-unique-k9",
        b"provider-zx81",
    ];
    let before = live_bytes(f.dir.path());
    assert!(
        pieces_found(&before, &sealed) > 0,
        "the scan sees the record"
    );
    // The provider is a clear column; the metadata (account, scopes) is sealed from the start
    // (tests/personal_data.rs).
    assert!(pieces_found(&before, b"provider-zx81") > 0);

    let report = acme.disconnect("provider-zx81", None).await.unwrap();
    assert_eq!(report.deleted, 1);
    assert_gone(f.dir.path(), "the sealed token", &sealed);
    for s in strings {
        assert_gone(f.dir.path(), &String::from_utf8_lossy(s), s);
    }
    // The neighbours are intact.
    let globex = f.vault.tenant("globex").unwrap();
    assert_eq!(globex.list(None).await.unwrap().len(), 40);
}

#[tokio::test]
async fn purge_leaves_no_byte_of_the_tenant_in_the_sqlite_file_or_wal() {
    let f = sqlite_vault().await;
    let acme = f.vault.tenant("acme").unwrap();
    let api_key = ApiKey {
        provider: "provider-qq42".to_owned(),
        key: SecretString::from("sk_live_qq42"),
        label: Some("label-unique-w3".to_owned()),
    };
    acme.put("billing", &api_key).await.unwrap();
    let cookies = SessionCookies {
        provider: "site-unique-v5".to_owned(),
        cookies: vec![Cookie {
            name: "sid_unique_cookie_m2".to_owned(),
            value: SecretString::from("cookie-value"),
            domain: "unique-domain-x4.example".to_owned(),
            path: "/".to_owned(),
            expires_at: None,
        }],
    };
    acme.put("session", &cookies).await.unwrap();
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for (kind, name) in [(ApiKey::KIND, "billing"), (SessionCookies::KIND, "session")] {
        let row = f
            .backend
            .get(&key("acme", kind, name))
            .await
            .unwrap()
            .unwrap();
        secrets.push((format!("the sealed {kind}"), row.sealed));
    }
    let id = TenantId::new("acme").unwrap();
    let wrapped = f.backend.tenant(&id).await.unwrap().unwrap().wrapped_dek;
    secrets.push(("the wrapped data key".to_owned(), wrapped));
    for s in [
        "provider-qq42",
        "label-unique-w3",
        "site-unique-v5",
        "sid_unique_cookie_m2",
        "unique-domain-x4.example",
    ] {
        secrets.push((s.to_owned(), s.as_bytes().to_vec()));
    }
    let before = live_bytes(f.dir.path());
    for (what, bytes) in &secrets {
        // Metadata strings are sealed from the start (tests/personal_data.rs); the rest is
        // seen before the purge.
        let sealed_metadata = [
            "label-unique-w3",
            "sid_unique_cookie_m2",
            "unique-domain-x4.example",
        ]
        .contains(&what.as_str());
        assert_eq!(
            pieces_found(&before, bytes) > 0,
            !sealed_metadata,
            "the scan sees {what}"
        );
    }

    f.vault.delete_tenant("acme", "admin").await.unwrap();
    f.clock.advance(30 * DAY);
    let report = f.vault.purge().await.unwrap();
    assert_eq!(report.tenant_records, 2);
    for (what, bytes) in &secrets {
        assert_gone(f.dir.path(), what, bytes);
    }
}
