//! The SQL login throttle (`SqlThrottle`), one set of test bodies per backend: SQLite always (a
//! temporary file), PostgreSQL under the `postgres` feature (a fresh schema per test in the
//! database at `CREDVAULT_PG_URL`, skipped if unreachable unless
//! `CREDVAULT_REQUIRE_POSTGRES=1`).
//!
//! Scripted sequences must give exactly the decisions of `InMemoryThrottle`; two throttles on
//! two pools (two "servers") share one count; concurrent failures are all counted; `prune`
//! forgets only what changes no decision; migrating a version-1 database keeps its data.
#![cfg(any(feature = "sqlite", feature = "postgres"))]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

mod common;

use std::net::IpAddr;

use credvault::backend::{Backend, SCHEMA_VERSION, SqlThrottle, TenantRow};
use credvault::password::{
    Decision, InMemoryThrottle, LoginThrottle, PseudonymKey, ThrottleConfig,
};
use credvault::{KeyVersion, TenantId};

// ---- fixtures

/// Two backend handles with their own pools on one database (two application servers), and
/// raw SQL access to it.
enum Db {
    #[cfg(feature = "sqlite")]
    Sqlite {
        _dir: tempfile::TempDir,
        a: credvault::backend::SqliteBackend,
        b: credvault::backend::SqliteBackend,
    },
    #[cfg(feature = "postgres")]
    Pg {
        a: credvault::backend::PgBackend,
        b: credvault::backend::PgBackend,
        pool: sqlx::PgPool,
        schema: String,
    },
}

impl Db {
    #[cfg(feature = "sqlite")]
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        let a = credvault::backend::SqliteBackend::connect(path.to_str().unwrap())
            .await
            .unwrap();
        let b = credvault::backend::SqliteBackend::connect(path.to_str().unwrap())
            .await
            .unwrap();
        a.migrate().await.unwrap();
        Self::Sqlite { _dir: dir, a, b }
    }

    #[cfg(feature = "postgres")]
    async fn pg() -> Option<Self> {
        let (pool, schema) = common::postgres_schema().await?;
        let a = credvault::backend::PgBackend::from_pool(pool.clone())
            .with_schema(&schema)
            .unwrap();
        // The second server: a pool of its own, kept small (tests run in parallel).
        let other = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&common::postgres_url())
            .await
            .unwrap();
        let b = credvault::backend::PgBackend::from_pool(other)
            .with_schema(&schema)
            .unwrap();
        a.migrate().await.unwrap();
        Some(Self::Pg { a, b, pool, schema })
    }

    fn backend(&self) -> &dyn Backend {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite { a, .. } => a,
            #[cfg(feature = "postgres")]
            Self::Pg { a, .. } => a,
        }
    }

    /// A throttle on the first server's pool, rows named under [`key`].
    fn throttle_a(&self, config: ThrottleConfig) -> SqlThrottle {
        self.throttle_a_with(config, key())
    }

    /// A throttle on the first server's pool, rows named under `pseudonyms`.
    fn throttle_a_with(&self, config: ThrottleConfig, pseudonyms: PseudonymKey) -> SqlThrottle {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite { a, .. } => a.login_throttle(config, pseudonyms),
            #[cfg(feature = "postgres")]
            Self::Pg { a, .. } => a.login_throttle(config, pseudonyms),
        }
    }

    /// A throttle on the second server's pool, rows named under [`key`].
    fn throttle_b(&self, config: ThrottleConfig) -> SqlThrottle {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite { b, .. } => b.login_throttle(config, key()),
            #[cfg(feature = "postgres")]
            Self::Pg { b, .. } => b.login_throttle(config, key()),
        }
    }

    /// Every byte the database holds, as text: the SQLite file and its WAL, or every row of
    /// the PostgreSQL schema's throttle and audit tables.
    async fn raw_contents(&self) -> String {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite { _dir, .. } => {
                let mut bytes = Vec::new();
                for name in ["vault.db", "vault.db-wal"] {
                    if let Ok(b) = std::fs::read(_dir.path().join(name)) {
                        bytes.extend(b);
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            #[cfg(feature = "postgres")]
            Self::Pg { pool, schema, .. } => {
                let mut out = String::new();
                for table in ["credvault_throttle", "credvault_audit"] {
                    let sql = format!("SELECT CAST(t.* AS TEXT) FROM \"{schema}\".{table} t");
                    let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_all(pool)
                        .await
                        .unwrap();
                    out.push_str(&rows.join("\n"));
                }
                out
            }
        }
    }

    /// `sql` with `{p}` standing for the table prefix.
    fn sql(&self, sql: &str) -> String {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite { .. } => sql.replace("{p}", ""),
            #[cfg(feature = "postgres")]
            Self::Pg { schema, .. } => sql.replace("{p}", &format!("\"{schema}\".")),
        }
    }

    /// Runs raw SQL (`{p}` is the table prefix).
    async fn exec(&self, sql: &str) {
        let sql = sqlx::AssertSqlSafe(self.sql(sql));
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite { a, .. } => {
                sqlx::raw_sql(sql).execute(a.pool()).await.unwrap();
            }
            #[cfg(feature = "postgres")]
            Self::Pg { pool, .. } => {
                sqlx::raw_sql(sql).execute(pool).await.unwrap();
            }
        }
    }

    /// One integer read by raw SQL (`{p}` is the table prefix); `None` without a row.
    async fn int(&self, sql: &str) -> Option<i64> {
        let sql = sqlx::AssertSqlSafe(self.sql(sql));
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite { a, .. } => sqlx::query_scalar(sql)
                .fetch_optional(a.pool())
                .await
                .unwrap(),
            #[cfg(feature = "postgres")]
            Self::Pg { pool, .. } => sqlx::query_scalar(sql).fetch_optional(pool).await.unwrap(),
        }
    }

    /// The text column read by raw SQL (`{p}` is the table prefix), every row.
    async fn texts(&self, sql: &str) -> Vec<String> {
        let sql = sqlx::AssertSqlSafe(self.sql(sql));
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite { a, .. } => sqlx::query_scalar(sql).fetch_all(a.pool()).await.unwrap(),
            #[cfg(feature = "postgres")]
            Self::Pg { pool, .. } => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        }
    }

    async fn rows(&self) -> i64 {
        self.int("SELECT COUNT(*) FROM {p}credvault_throttle")
            .await
            .unwrap()
    }

    async fn finish(self) {
        match self {
            #[cfg(feature = "sqlite")]
            Self::Sqlite { a, b, _dir } => {
                a.pool().close().await;
                b.pool().close().await;
            }
            #[cfg(feature = "postgres")]
            Self::Pg {
                b, pool, schema, ..
            } => {
                b.pool().close().await;
                common::drop_postgres_schema(pool, schema).await;
            }
        }
    }
}

#[path = "common/throttle_scripts.rs"]
mod scripts;

/// The pseudonym key of the tests' "vault".
fn key() -> PseudonymKey {
    PseudonymKey::from_bytes(&[7; 32])
}

/// The name of `account`'s row.
fn acct(account: &str) -> String {
    format!("acct#{}", key().pseudonym(account))
}

/// The `LIKE` pattern of `account`'s pair rows.
fn pairs_of(account: &str) -> String {
    format!("pair#{}.%", key().pseudonym(account))
}

/// The name of an address's row.
fn addr(address: IpAddr) -> String {
    format!("addr#{}", key().address_pseudonym(address))
}

use scripts::*;

// ---- bodies

mod cases {
    use super::*;

    /// A failure that starts a lockout writes a `login_lockout` row (in its transaction), a
    /// failure while locked does not, and support's unlock writes `login_unlock` with its actor.
    pub(crate) async fn lockouts_and_unlocks_are_audited(db: &Db) {
        let throttle = db.throttle_a(config(2, 1000));
        let ip = v4(40);
        let events = || async {
            db.backend()
                .audit(&credvault::backend::AuditQuery::default())
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.action.as_str().starts_with("login_"))
                .map(|r| {
                    (
                        r.action.to_string(),
                        r.name.unwrap_or_default(),
                        r.actor,
                        r.outcome,
                    )
                })
                .collect::<Vec<_>>()
        };
        let _ = throttle.record_failure("grace", ip, t(0)).await.unwrap();
        assert!(events().await.is_empty());
        assert_eq!(
            throttle.record_failure("grace", ip, t(1)).await.unwrap(),
            deny(60)
        );
        let _ = throttle.record_failure("grace", ip, t(2)).await.unwrap();
        let got = events().await;
        assert_eq!(got.len(), 1, "{got:?}");
        // The pair's row, named by the account's pseudonym: never the account or address.
        let pair = got[0].1.clone();
        assert!(
            pair.starts_with(&pairs_of("grace").replace('%', "")),
            "{pair}"
        );
        assert!(
            !pair.contains("grace") && !pair.contains("192.0.2"),
            "{pair}"
        );
        let locked = (
            "login_lockout".to_owned(),
            pair,
            "throttle".to_owned(),
            "locked for 60 s".to_owned(),
        );
        assert_eq!(got, std::slice::from_ref(&locked));
        assert!(throttle.unlock("grace", "support:ann", t(3)).await.unwrap());
        assert!(!throttle.unlock("grace", "support:ann", t(4)).await.unwrap());
        let unlocked = (
            "login_unlock".to_owned(),
            acct("grace"),
            "support:ann".to_owned(),
            "ok: 2 lock rows cleared".to_owned(),
        );
        assert_eq!(events().await, [locked, unlocked]);
        assert_eq!(
            throttle.check("grace", ip, t(4)).await.unwrap(),
            Decision::Allow
        );
    }

    pub(crate) async fn scripts_decide_as_the_in_memory_throttle(db: &Db) {
        for script in scripts() {
            let memory = InMemoryThrottle::new(script.config);
            let expected = play(&memory, &script).await;
            // Half the scripts through each server's pool: the same table either way.
            let sql = if script.name.len() % 2 == 0 {
                db.throttle_a(script.config)
            } else {
                db.throttle_b(script.config)
            };
            let got = play(&sql, &script).await;
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

    pub(crate) async fn two_servers_share_one_count(db: &Db) {
        let config = config(3, 1000);
        let (a, b) = (db.throttle_a(config), db.throttle_b(config));
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
        // A success on one server clears the pair for the other.
        assert_eq!(
            b.record_failure("alice", ip, t(62)).await.unwrap(),
            Decision::Allow
        );
        a.record_success("alice", ip, t(63)).await.unwrap();
        assert_eq!(
            db.int("SELECT COUNT(*) FROM {p}credvault_throttle WHERE throttle_key LIKE 'pair#%'")
                .await,
            Some(0)
        );
        // The lockout count is gone too: the next lockout is the first again.
        for at in 64..66 {
            assert_eq!(
                b.record_failure("alice", ip, t(at)).await.unwrap(),
                Decision::Allow
            );
        }
        assert_eq!(
            a.record_failure("alice", ip, t(66)).await.unwrap(),
            deny(60)
        );
    }

    pub(crate) async fn concurrent_failures_from_two_pools_are_all_counted(db: &Db) {
        let config = ThrottleConfig {
            max_failures_per_account: 1000,
            ..config(21, 1000)
        };
        let (a, b) = (db.throttle_a(config), db.throttle_b(config));
        let ip = v4(11);
        let mut tasks = Vec::new();
        for i in 0..20u64 {
            let throttle = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                throttle.record_failure("alice", ip, t(i)).await.unwrap()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Decision::Allow);
        }
        for key in [
            format!("LIKE '{}'", pairs_of("alice")),
            format!("= '{}'", addr(ip)),
        ] {
            let sql =
                format!("SELECT failures FROM {{p}}credvault_throttle WHERE throttle_key {key}");
            assert_eq!(db.int(&sql).await, Some(20), "{key}");
        }
        // The 21st locks with the first backoff; the one after that, while locked, is refused.
        assert_eq!(
            b.record_failure("alice", ip, t(30)).await.unwrap(),
            deny(60)
        );
        assert_eq!(a.check("alice", ip, t(40)).await.unwrap(), deny(50));

        // And exactly the 20th of 20 concurrent failures locks a pair with max_failures 20.
        let config = self::config(20, 1000);
        let (a, b) = (db.throttle_a(config), db.throttle_b(config));
        let ip = v4(12);
        let mut tasks = Vec::new();
        for i in 0..20 {
            let throttle = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                throttle.record_failure("bob", ip, t(100)).await.unwrap()
            }));
        }
        let mut denied = 0;
        for task in tasks {
            if task.await.unwrap() != Decision::Allow {
                denied += 1;
            }
        }
        assert_eq!(denied, 1);
        assert_eq!(a.check("bob", ip, t(100)).await.unwrap(), deny(60));
        let sql = format!(
            "SELECT lockouts FROM {{p}}credvault_throttle WHERE throttle_key LIKE '{}'",
            pairs_of("bob")
        );
        assert_eq!(db.int(&sql).await, Some(1));
    }

    pub(crate) async fn prune_removes_idle_rows_and_keeps_locked_ones(db: &Db) {
        // Default config: window 15 min, max_lockout 1 h.
        let config = ThrottleConfig::default();
        let sql = db.throttle_a(config);
        let memory = InMemoryThrottle::new(config);
        let now = 20_000;
        let mut script: Vec<(&str, IpAddr, u64)> = Vec::new();
        // Idle since t0, never locked: forgotten (pair and address).
        script.push(("bob", v4(20), 0));
        // Locked long ago (at t0, 60 s), quiet since: forgotten.
        script.extend((0..5).map(|_| ("alice", v4(21), 0)));
        // Locked now: kept (pair, and the address seen recently).
        script.extend((0..5).map(|_| ("carol", v4(22), now - 10)));
        // Idle for over an hour, but its lockout ended less than max_lockout + window ago:
        // kept, so its next lockout still doubles.
        script.extend((0..5).map(|_| ("dave", v4(23), now - 3700)));
        for (account, ip, at) in &script {
            let _ = sql.record_failure(account, *ip, t(*at)).await.unwrap();
            let _ = memory.record_failure_at(account, *ip, t(*at));
        }
        // A pair, an account and an address row each.
        assert_eq!(db.rows().await, 12);
        // Deleted: bob's three rows, alice's three, dave's address and account (idle, never
        // locked).
        assert_eq!(sql.prune(t(now)).await.unwrap(), 8);
        assert_eq!(db.rows().await, 4);
        for key in [
            format!("LIKE '{}'", pairs_of("carol")),
            format!("= '{}'", acct("carol")),
            format!("= '{}'", addr(v4(22))),
            format!("LIKE '{}'", pairs_of("dave")),
        ] {
            let q =
                format!("SELECT COUNT(*) FROM {{p}}credvault_throttle WHERE throttle_key {key}");
            assert_eq!(db.int(&q).await, Some(1), "{key} kept");
        }
        // Pruning changed no decision.
        for (account, ip) in [
            ("bob", v4(20)),
            ("alice", v4(21)),
            ("carol", v4(22)),
            ("dave", v4(23)),
        ] {
            for _ in 0..5 {
                assert_eq!(
                    sql.record_failure(account, ip, t(now)).await.unwrap(),
                    memory.record_failure_at(account, ip, t(now)),
                    "{account}"
                );
            }
        }
        assert_eq!(sql.check("dave", v4(23), t(now)).await.unwrap(), deny(120));
        // Nothing left to prune right after.
        assert_eq!(sql.prune(t(now)).await.unwrap(), 0);
    }

    pub(crate) async fn migrating_a_version_1_database_keeps_its_data(db: &Db) {
        let backend = db.backend();
        let row = TenantRow {
            tenant: TenantId::new("acme").unwrap(),
            wrapped_dek: vec![1, 2, 3],
            dek_version: KeyVersion::new(1),
            kek_version: KeyVersion::new(2),
            created_at: 1_700_000_000,
            dek_created_at: 1_700_000_000,
            min_dek_version: KeyVersion::new(1),
            deleted_at: None,
            purge_after: None,
            shredded_at: None,
        };
        backend.insert_tenant(&row, &[]).await.unwrap();
        // Back to version 1: what 0002 to 0006 added is gone.
        db.exec(
            "DROP TABLE {p}credvault_vault_keys; \
             DROP TABLE {p}credvault_keys; DROP TABLE {p}credvault_vault; \
             ALTER TABLE {p}credvault_tenants DROP COLUMN shredded_at; \
             DROP TABLE {p}credvault_throttle; DROP TABLE {p}credvault_tenant_deks; \
             DROP INDEX {p}credvault_tenants_kek; \
             ALTER TABLE {p}credvault_tenants DROP COLUMN dek_created_at; \
             ALTER TABLE {p}credvault_tenants DROP COLUMN min_dek_version; \
             UPDATE {p}credvault_schema SET version = 1",
        )
        .await;
        assert_eq!(backend.schema_version().await.unwrap(), Some(1));
        backend.migrate().await.unwrap();
        assert_eq!(
            backend.schema_version().await.unwrap(),
            Some(SCHEMA_VERSION)
        );
        assert_eq!(SCHEMA_VERSION, 6);
        // Version 4 starts the newest KEK version at the newest one in use.
        assert_eq!(backend.key_registry().await.unwrap().newest_kek, 2);
        assert_eq!(
            backend.tenant(&row.tenant).await.unwrap(),
            Some(row.clone())
        );
        assert_eq!(db.rows().await, 0);
        // Idempotent.
        backend.migrate().await.unwrap();
        assert_eq!(
            backend.schema_version().await.unwrap(),
            Some(SCHEMA_VERSION)
        );
        let throttle = db.throttle_b(config(1, 1000));
        assert_eq!(
            throttle
                .record_failure("alice", v4(30), t(0))
                .await
                .unwrap(),
            deny(60)
        );
        assert_eq!(db.rows().await, 3, "pair, account and address rows");
    }

    /// After a lockout, a known-address mark and an unlock, the database (the SQLite file and
    /// its WAL, read as bytes; every row of the PostgreSQL tables) holds neither the account
    /// name nor the addresses: only keyed hashes, in the throttle's rows and its audit rows.
    pub(crate) async fn the_database_holds_no_account_and_no_address(db: &Db) {
        let throttle = db.throttle_a(config(2, 1000));
        let account = "xavier.private@example.com";
        let home: IpAddr = "198.51.100.99".parse().unwrap();
        let away: IpAddr = "203.0.113.98".parse().unwrap();
        throttle.record_success(account, home, t(0)).await.unwrap();
        let _ = throttle.record_failure(account, away, t(1)).await.unwrap();
        assert_eq!(
            throttle.record_failure(account, away, t(2)).await.unwrap(),
            deny(60)
        );
        assert_eq!(db.rows().await, 4, "known, pair, account and address rows");
        let lockouts = db
            .int("SELECT COUNT(*) FROM {p}credvault_audit WHERE action = 'login_lockout'")
            .await;
        assert_eq!(lockouts, Some(1));
        let contents = db.raw_contents().await;
        for needle in ["xavier", "example.com", "198.51.100", "203.0.113"] {
            assert!(!contents.contains(needle), "{needle} found in the database");
        }
        // The same pseudonyms find the rows again: unlock clears the lock.
        assert!(throttle.unlock(account, "support:ann", t(3)).await.unwrap());
        assert_eq!(
            throttle.check(account, away, t(3)).await.unwrap(),
            Decision::Allow
        );
        let contents = db.raw_contents().await;
        for needle in ["xavier", "example.com", "198.51.100", "203.0.113"] {
            assert!(!contents.contains(needle), "{needle} found after unlock");
        }
    }

    /// A throttle under another key (another vault's) on the same table sees none of the
    /// counts, and cannot unlock them.
    pub(crate) async fn another_key_sees_none_of_the_counts(db: &Db) {
        let throttle = db.throttle_a(config(2, 1000));
        let other = db.throttle_a_with(config(2, 1000), PseudonymKey::from_bytes(&[8; 32]));
        let _ = throttle.record_failure("yann", v4(60), t(0)).await.unwrap();
        assert_eq!(
            throttle.record_failure("yann", v4(60), t(1)).await.unwrap(),
            deny(60)
        );
        assert_eq!(
            other.check("yann", v4(60), t(2)).await.unwrap(),
            Decision::Allow
        );
        assert!(!other.unlock("yann", "support:ann", t(2)).await.unwrap());
        assert_eq!(
            throttle.check("yann", v4(60), t(2)).await.unwrap(),
            deny(59)
        );
    }

    /// A version-4 database whose rows (and lockout audit rows) name accounts and addresses
    /// in clear: migrating to version 5 and the throttle's first call rename them to their
    /// pseudonyms, keeping each state (a lockout in force stays in force, a known address
    /// stays known), merging two rows that map to one, and dropping names it cannot read.
    pub(crate) async fn clear_rows_of_a_version_4_database_are_renamed(db: &Db) {
        // Back to version 4, as an earlier build left it.
        db.exec(
            "DROP TABLE {p}credvault_vault_keys; \
             ALTER TABLE {p}credvault_vault DROP COLUMN throttle_clear_names; \
             ALTER TABLE {p}credvault_vault DROP COLUMN last_purge_at; \
             ALTER TABLE {p}credvault_vault DROP COLUMN last_purge_overdue; \
             UPDATE {p}credvault_schema SET version = 4",
        )
        .await;
        let ms = |secs: u64| (1_700_000_000 + secs) * 1000;
        let row = |name: &str, failures: u32, lockouts: u32, until: Option<u64>, seen: u64| {
            format!(
                "INSERT INTO {{p}}credvault_throttle VALUES ('{name}', {failures}, {}, {lockouts}, {}, {});",
                ms(seen),
                until.map_or("NULL".to_owned(), |u| ms(u).to_string()),
                ms(seen)
            )
        };
        let mut sql = String::new();
        // erin: her pair from .50 locked until t(600) (third lockout), her account counted;
        // .51 known for her.
        sql += &row("pair:192.0.2.50/erin", 0, 3, Some(600), 100);
        sql += &row("acct:erin", 4, 0, None, 100);
        sql += &row("addr:192.0.2.50", 4, 0, None, 100);
        sql += &row("known:192.0.2.51/erin", 0, 0, None, 90);
        // One IPv6 /64 under two names (an earlier row, and the form written today): merged.
        sql += &row("addr:2001:db8:5::/64", 3, 0, None, 100);
        sql += &row("addr:2001:db8:5::9", 4, 0, None, 100);
        // Not a name credvault wrote: dropped.
        sql += &row("pair:not-an-address/erin", 1, 0, None, 100);
        sql += "INSERT INTO {p}credvault_audit (at, tenant_id, kind, name, action, actor, outcome) \
                VALUES (1700000100, NULL, NULL, 'pair:192.0.2.50/erin', 'login_lockout', 'throttle', 'locked for 240 s');";
        db.exec(&sql).await;
        db.backend().migrate().await.unwrap();
        assert_eq!(
            db.backend().schema_version().await.unwrap(),
            Some(SCHEMA_VERSION)
        );
        // Migrating alone cannot hash: the rows are still there, flagged.
        assert_eq!(db.rows().await, 7);

        let throttle = db.throttle_b(config(5, 8));
        assert_eq!(throttle.rename_clear_rows().await.unwrap(), 7);
        assert_eq!(
            db.rows().await,
            5,
            "pair, account, address, known, IPv6 block"
        );
        // The lockout in force survived.
        assert_eq!(
            throttle.check("erin", v4(50), t(200)).await.unwrap(),
            deny(400)
        );
        // So did the counts: the account's 4 of 5... (per-account limit 20, untouched) and the
        // address's 4 of 8 (four more lock it).
        for at in 0..3 {
            assert_eq!(
                throttle
                    .record_failure("frank", v4(50), t(201 + at))
                    .await
                    .unwrap(),
                Decision::Allow
            );
        }
        assert_eq!(
            throttle
                .record_failure("frank", v4(50), t(204))
                .await
                .unwrap(),
            deny(60)
        );
        // The two IPv6 rows were merged: 3 + 4 failures, the 8th locks the block.
        assert_eq!(
            throttle
                .record_failure("gus", "2001:db8:5::1".parse().unwrap(), t(205))
                .await
                .unwrap(),
            deny(60)
        );
        // .51 is still known for erin: her account lock would not hold it back.
        let known = "SELECT COUNT(*) FROM {p}credvault_throttle WHERE throttle_key LIKE 'known#%'";
        assert_eq!(db.int(known).await, Some(1));
        // The audit row names the pair's pseudonym now.
        let audit = db
            .backend()
            .audit(&credvault::backend::AuditQuery::default())
            .await
            .unwrap();
        let lockout = audit
            .iter()
            .find(|r| r.outcome == "locked for 240 s")
            .unwrap();
        let name = lockout.name.clone().unwrap();
        assert!(
            name.starts_with(&pairs_of("erin").replace('%', "")),
            "{name}"
        );
        // Every name, in the throttle and in the audit log (the bytes of the deleted rows may
        // stay in SQLite's free pages until reused: see SECURITY.md).
        let mut names = db
            .texts("SELECT throttle_key FROM {p}credvault_throttle")
            .await;
        names.extend(audit.iter().filter_map(|r| r.name.clone()));
        for needle in ["erin", "192.0.2.5", "2001:db8"] {
            assert!(
                names.iter().all(|n| !n.contains(needle)),
                "{needle} still in {names:?}"
            );
        }
        // Done once: nothing more to rename, on this handle or a new one.
        assert_eq!(throttle.rename_clear_rows().await.unwrap(), 0);
        assert_eq!(
            db.throttle_a(config(5, 8))
                .rename_clear_rows()
                .await
                .unwrap(),
            0
        );
    }
}

macro_rules! backend_tests {
    ($($case:ident),* $(,)?) => {
        #[cfg(feature = "sqlite")]
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let db = Db::sqlite().await;
                    cases::$case(&db).await;
                    db.finish().await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(db) = Db::pg().await else {
                        return;
                    };
                    cases::$case(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

backend_tests!(
    lockouts_and_unlocks_are_audited,
    scripts_decide_as_the_in_memory_throttle,
    two_servers_share_one_count,
    concurrent_failures_from_two_pools_are_all_counted,
    prune_removes_idle_rows_and_keeps_locked_ones,
    migrating_a_version_1_database_keeps_its_data,
    the_database_holds_no_account_and_no_address,
    another_key_sees_none_of_the_counts,
    clear_rows_of_a_version_4_database_are_renamed,
);
