//! One set of test bodies, run against every backend: memory always, SQLite under the
//! `sqlite` feature (a temporary file), PostgreSQL under `postgres` (a fresh schema per test
//! in the database at `CREDVAULT_PG_URL`, skipped if unreachable unless
//! `CREDVAULT_REQUIRE_POSTGRES=1`). Then what only the SQL backends have: read-only files,
//! unreachable servers, WAL, table names.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap too"
)]

use std::sync::Arc;

use credvault::backend::{
    AuditQuery, AuditRow, Backend, BackendErrorKind, KeyIdentity, KeyRole, ListQuery, ListedRow,
    MemoryBackend, RecordKey, RowFault, SCHEMA_VERSION, SecretRow, TenantRow, VaultKeyRow,
};
use credvault::{KeyVersion, RecordKind, RecordName, TenantId};

/// A backend under test, and raw access to its storage.
trait Fixture: Sized {
    /// The backend (not yet migrated).
    fn backend(&self) -> &Arc<dyn Backend>;
    /// Another handle, with its own connections, onto the same storage.
    async fn reopen(&self) -> Arc<dyn Backend>;
    /// Runs raw SQL, `{p}` standing for the table prefix and `{blob}` for a one-byte blob
    /// literal. `false` (nothing run) for memory.
    async fn raw(&self, sql: &str) -> bool;
    /// Cleans up.
    async fn finish(self);
}

struct MemFixture(Arc<dyn Backend>);

impl MemFixture {
    async fn new() -> Option<Self> {
        Some(Self(Arc::new(MemoryBackend::new())))
    }
}

impl Fixture for MemFixture {
    fn backend(&self) -> &Arc<dyn Backend> {
        &self.0
    }
    async fn reopen(&self) -> Arc<dyn Backend> {
        Arc::clone(&self.0)
    }
    async fn raw(&self, _sql: &str) -> bool {
        false
    }
    async fn finish(self) {}
}

#[cfg(feature = "sqlite")]
mod sqlite_fixture {
    use super::*;
    use credvault::backend::SqliteBackend;

    pub(crate) struct SqliteFixture {
        pub(crate) dir: tempfile::TempDir,
        pub(crate) sqlite: SqliteBackend,
        backend: Arc<dyn Backend>,
    }

    impl SqliteFixture {
        pub(crate) async fn new() -> Option<Self> {
            let dir = tempfile::tempdir().unwrap();
            let sqlite = SqliteBackend::connect(dir.path().join("vault.db").to_str().unwrap())
                .await
                .unwrap();
            Some(Self {
                dir,
                backend: Arc::new(sqlite.clone()),
                sqlite,
            })
        }

        pub(crate) fn path(&self) -> String {
            self.dir
                .path()
                .join("vault.db")
                .to_str()
                .unwrap()
                .to_owned()
        }
    }

    impl Fixture for SqliteFixture {
        fn backend(&self) -> &Arc<dyn Backend> {
            &self.backend
        }
        async fn reopen(&self) -> Arc<dyn Backend> {
            Arc::new(SqliteBackend::connect(&self.path()).await.unwrap())
        }
        async fn raw(&self, sql: &str) -> bool {
            let sql = sql.replace("{p}", "").replace("{blob}", "x'00'");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(self.sqlite.pool())
                .await
                .unwrap();
            true
        }
        async fn finish(self) {
            self.sqlite.pool().close().await;
        }
    }
}
#[cfg(feature = "sqlite")]
use sqlite_fixture::SqliteFixture;

#[cfg(feature = "postgres")]
mod pg_fixture {
    use super::*;
    use credvault::backend::PgBackend;

    /// The URL without its password, for messages.
    fn redacted(url: &str) -> String {
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let user = &url[scheme + 3..at];
                match user.find(':') {
                    Some(colon) => {
                        format!("{}{}:***{}", &url[..scheme + 3], &user[..colon], &url[at..])
                    }
                    None => url.to_owned(),
                }
            }
            _ => url.to_owned(),
        }
    }

    pub(crate) fn url() -> String {
        std::env::var("CREDVAULT_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// A pool to the test database, or `None` (after saying so) if it cannot be reached and
    /// `CREDVAULT_REQUIRE_POSTGRES` is not `1`.
    pub(crate) async fn pool() -> Option<sqlx::PgPool> {
        let url = url();
        let shown = redacted(&url);
        match sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(3))
            .connect(&url)
            .await
        {
            Ok(pool) => Some(pool),
            Err(e) if std::env::var("CREDVAULT_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
                panic!("cannot reach postgres at {shown} and CREDVAULT_REQUIRE_POSTGRES=1: {e}")
            }
            Err(_) => {
                eprintln!(
                    "postgres tests skipped: cannot reach {shown}; start PostgreSQL or set CREDVAULT_PG_URL (see .ci/run)"
                );
                None
            }
        }
    }

    pub(crate) struct PgFixture {
        pub(crate) schema: String,
        pub(crate) pool: sqlx::PgPool,
        backend: Arc<dyn Backend>,
    }

    impl PgFixture {
        pub(crate) async fn new() -> Option<Self> {
            let pool = pool().await?;
            let schema = format!("cv_test_{:016x}", rand_u64());
            let pg = PgBackend::from_pool(pool.clone())
                .with_schema(&schema)
                .unwrap();
            Some(Self {
                schema,
                pool,
                backend: Arc::new(pg),
            })
        }
    }

    fn rand_u64() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        h.finish()
    }

    impl Fixture for PgFixture {
        fn backend(&self) -> &Arc<dyn Backend> {
            &self.backend
        }
        async fn reopen(&self) -> Arc<dyn Backend> {
            Arc::new(
                PgBackend::connect_with_schema(&url(), &self.schema)
                    .await
                    .unwrap(),
            )
        }
        async fn raw(&self, sql: &str) -> bool {
            let sql = sql
                .replace("{p}", &format!("\"{}\".", self.schema))
                .replace("{blob}", "'\\x00'::bytea");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&self.pool)
                .await
                .unwrap();
            true
        }
        async fn finish(self) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            )))
            .execute(&self.pool)
            .await
            .unwrap();
            self.pool.close().await;
        }
    }
}
#[cfg(feature = "postgres")]
use pg_fixture::PgFixture;

// ---------------------------------------------------------------------------------------------
// Helpers

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

fn key(t: &str, kind: &str, name: &str) -> RecordKey {
    RecordKey {
        tenant: tenant(t),
        kind: RecordKind::new(kind).unwrap(),
        name: RecordName::new(name).unwrap(),
    }
}

fn tenant_row(id: &str) -> TenantRow {
    TenantRow {
        tenant: tenant(id),
        wrapped_dek: vec![0xde, 0xad, id.len().try_into().unwrap()],
        dek_version: KeyVersion::new(3),
        kek_version: KeyVersion::new(u32::MAX),
        created_at: 1_700_000_000,
        dek_created_at: 1_700_000_000,
        min_dek_version: KeyVersion::new(1),
        deleted_at: None,
        purge_after: None,
        shredded_at: None,
    }
}

fn record(t: &str, kind: &str, name: &str) -> SecretRow {
    SecretRow {
        key: key(t, kind, name),
        version: 1,
        sealed: vec![0x63, 0x76, 1, 1, 0, 0, 0, 7, 0xff, 0x00],
        dek_version: KeyVersion::new(3),
        kek_version: KeyVersion::new(2),
        metadata: r#"{"account":"me@example.com","scopes":["a","b"]}"#.to_owned(),
        provider: Some("github".to_owned()),
        created_at: 1_700_000_000,
        updated_at: 1_700_000_001,
        expires_at: Some(1_700_003_600),
        purge_after: None,
        lease_until: Some(-5),
    }
}

fn event(at: i64, t: Option<&str>, action: &str) -> AuditRow {
    AuditRow {
        at,
        tenant: t.map(tenant),
        kind: Some("api_key".to_owned()),
        name: Some("stripe".to_owned()),
        action: action.into(),
        actor: "user:1".to_owned(),
        outcome: "ok".to_owned(),
    }
}

async fn all_audit(b: &dyn Backend) -> Vec<AuditRow> {
    b.audit(&AuditQuery::default()).await.unwrap()
}

async fn migrated(f: &impl Fixture) -> &dyn Backend {
    let b = f.backend().as_ref();
    b.migrate().await.unwrap();
    b
}

fn list_query(t: &str) -> ListQuery {
    ListQuery {
        tenant: tenant(t),
        kind: None,
        provider: None,
        after: None,
        limit: 100,
    }
}

fn names(rows: &[ListedRow]) -> Vec<(String, String)> {
    rows.iter()
        .map(|r| {
            let r = r.as_ref().expect("every row decodes");
            (r.key.kind.to_string(), r.key.name.to_string())
        })
        .collect()
}

/// Where a listing resumes after `row`.
fn after(row: &ListedRow) -> Option<(String, String)> {
    let r = row.as_ref().expect("every row decodes");
    Some((r.key.kind.to_string(), r.key.name.to_string()))
}

// ---------------------------------------------------------------------------------------------
// The test bodies, one per contract clause.

mod cases {
    use super::*;

    pub(crate) async fn schema_version_is_none_before_migrate_and_current_after(f: &impl Fixture) {
        let b = f.backend();
        assert_eq!(b.schema_version().await.unwrap(), None);
        b.migrate().await.unwrap();
        assert_eq!(b.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
    }

    pub(crate) async fn migrating_twice_changes_nothing(f: &impl Fixture) {
        let b = migrated(f).await;
        b.insert(&record("t1", "api_key", "a"), &[]).await.unwrap();
        b.migrate().await.unwrap();
        assert_eq!(b.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
        assert!(b.get(&key("t1", "api_key", "a")).await.unwrap().is_some());
    }

    pub(crate) async fn schema_newer_than_this_build_is_refused(f: &impl Fixture) {
        let b = migrated(f).await;
        let newer = SCHEMA_VERSION + 1;
        if !f
            .raw(&format!(
                "UPDATE {{p}}credvault_schema SET version = {newer}"
            ))
            .await
        {
            return; // the memory backend cannot hold a newer schema
        }
        let err = b.migrate().await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::SchemaTooNew);
        assert!(err.to_string().contains("upgrade credvault"), "{err}");
        assert_eq!(b.schema_version().await.unwrap(), Some(newer));
    }

    pub(crate) async fn concurrent_migrations_from_four_handles_migrate_once(f: &impl Fixture) {
        let mut handles = Vec::new();
        for _ in 0..4 {
            handles.push(f.reopen().await);
        }
        let tasks: Vec<_> = handles
            .iter()
            .map(|h| {
                let h = Arc::clone(h);
                tokio::spawn(async move { h.migrate().await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        for h in &handles {
            assert_eq!(h.schema_version().await.unwrap(), Some(SCHEMA_VERSION));
        }
        // Had two of them run the init script unserialised, one would have failed on
        // `CREATE TABLE` (the script has no `IF NOT EXISTS`).
    }

    pub(crate) async fn insert_tenant_keeps_the_first_row_and_audits_only_it(f: &impl Fixture) {
        let b = migrated(f).await;
        let first = tenant_row("acme");
        let stored = b
            .insert_tenant(&first, &[event(1, Some("acme"), "tenant_create")])
            .await
            .unwrap();
        assert_eq!(stored, first);
        let mut second = tenant_row("acme");
        second.wrapped_dek = vec![9, 9, 9];
        second.created_at = 5;
        let stored = b
            .insert_tenant(&second, &[event(2, Some("acme"), "tenant_create")])
            .await
            .unwrap();
        assert_eq!(stored, first);
        assert_eq!(b.tenant(&tenant("acme")).await.unwrap(), Some(first));
        assert_eq!(b.tenant(&tenant("nobody")).await.unwrap(), None);
        let audit = all_audit(b).await;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].at, 1);
    }

    pub(crate) async fn tenant_deletion_is_set_and_cleared(f: &impl Fixture) {
        let b = migrated(f).await;
        b.insert_tenant(&tenant_row("acme"), &[]).await.unwrap();
        assert!(
            b.set_tenant_deletion(
                &tenant("acme"),
                Some(10),
                Some(20),
                &[event(10, Some("acme"), "tenant_delete")]
            )
            .await
            .unwrap()
        );
        let t = b.tenant(&tenant("acme")).await.unwrap().unwrap();
        assert_eq!((t.deleted_at, t.purge_after), (Some(10), Some(20)));
        assert!(
            b.set_tenant_deletion(
                &tenant("acme"),
                None,
                None,
                &[event(11, Some("acme"), "tenant_restore")]
            )
            .await
            .unwrap()
        );
        let t = b.tenant(&tenant("acme")).await.unwrap().unwrap();
        assert_eq!((t.deleted_at, t.purge_after), (None, None));
        assert!(
            !b.set_tenant_deletion(
                &tenant("ghost"),
                Some(1),
                Some(2),
                &[event(12, Some("ghost"), "tenant_delete")]
            )
            .await
            .unwrap()
        );
        let actions: Vec<_> = all_audit(b).await.into_iter().map(|r| r.action).collect();
        assert_eq!(actions, ["tenant_delete", "tenant_restore"]);
    }

    pub(crate) async fn tenants_due_for_purge_are_those_at_or_before_now(f: &impl Fixture) {
        let b = migrated(f).await;
        for (id, purge_after) in [
            ("c", Some(100)),
            ("a", Some(50)),
            ("b", Some(101)),
            ("d", None),
        ] {
            b.insert_tenant(&tenant_row(id), &[]).await.unwrap();
            b.set_tenant_deletion(&tenant(id), purge_after.map(|p| p - 30), purge_after, &[])
                .await
                .unwrap();
        }
        assert_eq!(
            b.tenants_due_for_purge(100).await.unwrap(),
            [Ok(tenant("a")), Ok(tenant("c"))]
        );
        assert!(b.tenants_due_for_purge(49).await.unwrap().is_empty());
    }

    pub(crate) async fn purge_tenant_removes_only_that_tenant(f: &impl Fixture) {
        let b = migrated(f).await;
        for t in ["gone", "kept"] {
            b.insert_tenant(&tenant_row(t), &[]).await.unwrap();
            b.insert(&record(t, "api_key", "a"), &[]).await.unwrap();
            b.insert(&record(t, "oauth_token", "b"), &[]).await.unwrap();
        }
        let n = b
            .purge_tenant(&tenant("gone"), &[event(5, Some("gone"), "purge")])
            .await
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(b.tenant(&tenant("gone")).await.unwrap(), None);
        assert!(b.list(&list_query("gone")).await.unwrap().is_empty());
        assert!(b.tenant(&tenant("kept")).await.unwrap().is_some());
        assert_eq!(b.list(&list_query("kept")).await.unwrap().len(), 2);
        assert_eq!(all_audit(b).await.len(), 1);
        // An absent tenant: nothing deleted, the audit row is still written.
        assert_eq!(
            b.purge_tenant(&tenant("gone"), &[event(6, None, "purge")])
                .await
                .unwrap(),
            0
        );
        assert_eq!(all_audit(b).await.len(), 2);
    }

    pub(crate) async fn record_round_trips_every_field(f: &impl Fixture) {
        let b = migrated(f).await;
        let mut r = record("t1", "oauth_token", "stripe:acct_123 é ✓");
        r.sealed = (0..=255).collect();
        b.insert(&r, &[]).await.unwrap();
        assert_eq!(b.get(&r.key).await.unwrap(), Some(r.clone()));
        let mut bare = record("t1", "api_key", "x");
        bare.provider = None;
        bare.expires_at = None;
        bare.lease_until = None;
        bare.purge_after = Some(i64::MIN);
        bare.created_at = i64::MAX;
        bare.sealed = Vec::new();
        b.insert(&bare, &[]).await.unwrap();
        assert_eq!(b.get(&bare.key).await.unwrap(), Some(bare.clone()));
        assert_eq!(b.get(&key("t1", "api_key", "absent")).await.unwrap(), None);
        // A read's narrow path gives the same three columns.
        for row in [&r, &bare] {
            let sealed = b.get_sealed(&row.key).await.unwrap().unwrap();
            assert_eq!(
                (sealed.version, &sealed.sealed, sealed.dek_version),
                (row.version, &row.sealed, row.dek_version)
            );
        }
        assert_eq!(
            b.get_sealed(&key("t1", "api_key", "absent")).await.unwrap(),
            None
        );
        assert_eq!(
            b.get(&key("t2", "oauth_token", "stripe:acct_123 é ✓"))
                .await
                .unwrap(),
            None
        );
    }

    pub(crate) async fn inserting_an_existing_record_is_a_conflict_and_writes_nothing(
        f: &impl Fixture,
    ) {
        let b = migrated(f).await;
        let r = record("t1", "api_key", "a");
        b.insert(&r, &[event(1, Some("t1"), "put")]).await.unwrap();
        let mut other = r.clone();
        other.sealed = vec![1, 2, 3];
        let err = b
            .insert(&other, &[event(2, Some("t1"), "put")])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Conflict);
        assert_eq!(b.get(&r.key).await.unwrap(), Some(r));
        assert_eq!(all_audit(b).await.len(), 1);
    }

    pub(crate) async fn update_swaps_only_at_the_expected_version(f: &impl Fixture) {
        let b = migrated(f).await;
        let r = record("t1", "oauth_token", "github");
        b.insert(&r, &[]).await.unwrap();
        let mut next = r.clone();
        next.version = 2;
        next.sealed = vec![7; 40];
        next.provider = None;
        next.lease_until = None;
        next.updated_at = 1_800_000_000;
        assert!(
            b.update(&next, 1, &[event(1, Some("t1"), "update")])
                .await
                .unwrap()
        );
        assert_eq!(b.get(&r.key).await.unwrap(), Some(next.clone()));
        // A stale writer loses and writes nothing.
        let mut stale = r.clone();
        stale.version = 2;
        stale.sealed = vec![0; 3];
        assert!(
            !b.update(&stale, 1, &[event(2, Some("t1"), "update")])
                .await
                .unwrap()
        );
        assert_eq!(b.get(&r.key).await.unwrap(), Some(next));
        // A record that is gone.
        assert!(
            !b.update(
                &record("t1", "oauth_token", "gone"),
                1,
                &[event(3, None, "update")]
            )
            .await
            .unwrap()
        );
        let audit = all_audit(b).await;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].at, 1);
    }

    pub(crate) async fn delete_removes_many_skips_absent_and_audits_with_the_change(
        f: &impl Fixture,
    ) {
        let b = migrated(f).await;
        for n in ["a", "b", "c"] {
            b.insert(&record("t1", "api_key", n), &[]).await.unwrap();
        }
        let keys = [
            key("t1", "api_key", "a"),
            key("t1", "api_key", "c"),
            key("t1", "api_key", "absent"),
            key("t1", "api_key", "a"),
        ];
        let audit = [
            event(1, Some("t1"), "delete"),
            event(1, Some("t1"), "disconnect"),
        ];
        assert_eq!(b.delete(&keys, &audit).await.unwrap(), 2);
        assert_eq!(
            names(&b.list(&list_query("t1")).await.unwrap()),
            [("api_key".into(), "b".into())]
        );
        assert_eq!(all_audit(b).await, audit);
        assert_eq!(b.delete(&[], &[event(2, None, "delete")]).await.unwrap(), 0);
        assert_eq!(all_audit(b).await.len(), 3);
    }

    pub(crate) async fn list_pages_in_kind_then_name_byte_order(f: &impl Fixture) {
        let b = migrated(f).await;
        let all = [
            ("api_key", "B"),
            ("api_key", "a"),
            ("api_key", "a b"),
            ("api_key", "é"),
            ("oauth_token", "A"),
            ("oauth_token", "z"),
        ];
        for (k, n) in all.iter().rev() {
            b.insert(&record("t1", k, n), &[]).await.unwrap();
        }
        b.insert(&record("t0", "api_key", "other tenant"), &[])
            .await
            .unwrap();
        let expected: Vec<(String, String)> = all
            .iter()
            .map(|(k, n)| ((*k).to_owned(), (*n).to_owned()))
            .collect();
        assert_eq!(names(&b.list(&list_query("t1")).await.unwrap()), expected);

        let mut q = list_query("t1");
        q.limit = 4;
        let page1 = b.list(&q).await.unwrap();
        assert_eq!(names(&page1), expected[..4]);
        let last = page1.last().unwrap();
        q.after = after(last);
        let page2 = b.list(&q).await.unwrap();
        assert_eq!(names(&page2), expected[4..]);
        let last = page2.last().unwrap();
        q.after = after(last);
        assert!(b.list(&q).await.unwrap().is_empty());

        q.after = None;
        q.limit = 0;
        assert!(b.list(&q).await.unwrap().is_empty());
        assert!(b.list(&list_query("nobody")).await.unwrap().is_empty());
    }

    pub(crate) async fn list_filters_by_kind_and_provider(f: &impl Fixture) {
        let b = migrated(f).await;
        let mut r = record("t1", "api_key", "k1");
        r.provider = Some("stripe".into());
        b.insert(&r, &[]).await.unwrap();
        let mut r = record("t1", "api_key", "k2");
        r.provider = None;
        b.insert(&r, &[]).await.unwrap();
        b.insert(&record("t1", "oauth_token", "gh"), &[])
            .await
            .unwrap();
        b.insert(&record("t1", "session_cookies", "gh"), &[])
            .await
            .unwrap();

        let mut q = list_query("t1");
        q.kind = Some(RecordKind::new("api_key").unwrap());
        assert_eq!(
            names(&b.list(&q).await.unwrap()),
            [
                ("api_key".into(), "k1".into()),
                ("api_key".into(), "k2".into())
            ]
        );
        q.kind = None;
        q.provider = Some("github".into());
        assert_eq!(
            names(&b.list(&q).await.unwrap()),
            [
                ("oauth_token".into(), "gh".into()),
                ("session_cookies".into(), "gh".into())
            ]
        );
        q.kind = Some(RecordKind::new("session_cookies").unwrap());
        assert_eq!(
            names(&b.list(&q).await.unwrap()),
            [("session_cookies".into(), "gh".into())]
        );
        q.after = Some(("session_cookies".to_owned(), "gh".to_owned()));
        assert!(b.list(&q).await.unwrap().is_empty());
        q.kind = None;
        q.after = None;
        q.provider = Some("nobody".into());
        assert!(b.list(&q).await.unwrap().is_empty());
    }

    pub(crate) async fn set_purge_after_marks_existing_records_with_audit(f: &impl Fixture) {
        let b = migrated(f).await;
        b.insert(&record("t1", "api_key", "a"), &[]).await.unwrap();
        b.insert(&record("t1", "api_key", "b"), &[]).await.unwrap();
        let keys = [key("t1", "api_key", "a"), key("t1", "api_key", "absent")];
        assert_eq!(
            b.set_purge_after(&keys, 500, &[event(1, Some("t1"), "disconnect")])
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            b.get(&keys[0]).await.unwrap().unwrap().purge_after,
            Some(500)
        );
        assert_eq!(
            b.get(&key("t1", "api_key", "b"))
                .await
                .unwrap()
                .unwrap()
                .purge_after,
            None
        );
        assert_eq!(all_audit(b).await.len(), 1);
    }

    pub(crate) async fn purge_records_deletes_due_records_and_audits_each(f: &impl Fixture) {
        let b = migrated(f).await;
        for (t, n, p) in [
            ("t2", "x", Some(100)),
            ("t1", "b", Some(99)),
            ("t1", "a", Some(101)),
            ("t1", "c", None),
            ("t1", "d", Some(100)),
        ] {
            let mut r = record(t, "api_key", n);
            r.purge_after = p;
            b.insert(&r, &[]).await.unwrap();
        }
        // Due by 100, run at 90 (a purge running ahead of its deadlines): audited at 90.
        let purged: Vec<RecordKey> = b
            .purge_records(100, 90, "job:purge")
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.expect("every key decodes"))
            .collect();
        assert_eq!(
            purged,
            [
                key("t1", "api_key", "b"),
                key("t1", "api_key", "d"),
                key("t2", "api_key", "x")
            ]
        );
        assert_eq!(names(&b.list(&list_query("t1")).await.unwrap()).len(), 2);
        assert!(b.list(&list_query("t2")).await.unwrap().is_empty());
        let audit = all_audit(b).await;
        let expected: Vec<AuditRow> = purged
            .iter()
            .map(|k| AuditRow {
                at: 90,
                tenant: Some(k.tenant.clone()),
                kind: Some(k.kind.to_string()),
                name: Some(k.name.to_string()),
                action: "purge".into(),
                actor: "job:purge".into(),
                outcome: "ok".into(),
            })
            .collect();
        assert_eq!(audit, expected);
        assert!(
            b.purge_records(100, 90, "job:purge")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(all_audit(b).await.len(), 3);
    }

    pub(crate) async fn audit_reads_oldest_first_with_filters(f: &impl Fixture) {
        let b = migrated(f).await;
        let rows = [
            event(30, Some("t1"), "get"),
            event(10, Some("t2"), "get"),
            event(20, Some("t1"), "put"),
            event(20, None, "export"),
            event(10, Some("t1"), "delete"),
        ];
        b.append_audit(&rows).await.unwrap();
        b.append_audit(&[]).await.unwrap();
        let ats = |rows: Vec<AuditRow>| -> Vec<(i64, String)> {
            rows.into_iter()
                .map(|r| (r.at, r.action.to_string()))
                .collect()
        };
        // Oldest first; equal times in the order written.
        assert_eq!(
            ats(all_audit(b).await),
            [
                (10, "get".into()),
                (10, "delete".into()),
                (20, "put".into()),
                (20, "export".into()),
                (30, "get".into())
            ]
        );
        let q = AuditQuery {
            tenant: Some(tenant("t1")),
            ..AuditQuery::default()
        };
        assert_eq!(
            ats(b.audit(&q).await.unwrap()),
            [
                (10, "delete".into()),
                (20, "put".into()),
                (30, "get".into())
            ]
        );
        let q = AuditQuery {
            since: Some(20),
            ..AuditQuery::default()
        };
        assert_eq!(
            ats(b.audit(&q).await.unwrap()),
            [
                (20, "put".into()),
                (20, "export".into()),
                (30, "get".into())
            ]
        );
        let q = AuditQuery {
            tenant: Some(tenant("t1")),
            since: Some(11),
            limit: Some(1),
        };
        assert_eq!(ats(b.audit(&q).await.unwrap()), [(20, "put".into())]);
        let q = AuditQuery {
            limit: Some(0),
            ..AuditQuery::default()
        };
        assert!(b.audit(&q).await.unwrap().is_empty());
        let full = all_audit(b).await;
        assert_eq!(full[3], rows[3]);
    }

    pub(crate) async fn purge_audit_removes_only_older_rows(f: &impl Fixture) {
        let b = migrated(f).await;
        b.append_audit(&[
            event(10, None, "a"),
            event(20, None, "b"),
            event(30, None, "c"),
        ])
        .await
        .unwrap();
        assert_eq!(b.purge_audit(20).await.unwrap(), 1);
        let left: Vec<i64> = all_audit(b).await.iter().map(|r| r.at).collect();
        assert_eq!(left, [20, 30]);
        assert_eq!(b.purge_audit(0).await.unwrap(), 0);
    }

    /// A vault key is inserted once (a second insert gets the first row back, unaudited), not
    /// under a KEK older than the newest presented, and rewrapped by compare-and-swap on its
    /// KEK version.
    pub(crate) async fn vault_keys_insert_once_and_rewrap_by_compare_and_swap(f: &impl Fixture) {
        let b = migrated(f).await;
        let newest = KeyIdentity {
            role: KeyRole::Kek,
            version: 2,
            fingerprint: "f2".to_owned(),
            recorded_at: 0,
            last_primary_at: None,
        };
        b.register_keys(&[newest], None, 0).await.unwrap();
        let row = |wrapped: &[u8], kek: u32| VaultKeyRow {
            name: "throttle_pseudonyms".to_owned(),
            wrapped_key: wrapped.to_vec(),
            kek_version: KeyVersion::new(kek),
            created_at: 1_700_000_000,
        };
        let audit = |action: &str| AuditRow {
            at: 1_700_000_000,
            tenant: None,
            kind: None,
            name: Some("throttle_pseudonyms".to_owned()),
            action: action.into(),
            actor: "vault".to_owned(),
            outcome: "ok".to_owned(),
        };
        let err = b
            .insert_vault_key(&row(b"old", 1), &[audit("vault_key_create")])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::StaleKey);
        assert!(b.vault_keys().await.unwrap().is_empty());
        let first = row(b"first", 2);
        let stored = b
            .insert_vault_key(&first, &[audit("vault_key_create")])
            .await
            .unwrap();
        assert_eq!(stored, first);
        let again = b
            .insert_vault_key(&row(b"second", 2), &[audit("vault_key_create")])
            .await
            .unwrap();
        assert_eq!(again, first);
        assert_eq!(b.vault_keys().await.unwrap(), std::slice::from_ref(&first));
        // Rewrapped only from the KEK it is under, never to an older one than the newest.
        let rewrap = |old: u32, new: u32| {
            let audit = [audit("vault_key_rewrap")];
            async move {
                b.rewrap_vault_key(
                    "throttle_pseudonyms",
                    KeyVersion::new(old),
                    b"third",
                    KeyVersion::new(new),
                    &audit,
                )
                .await
            }
        };
        assert!(!rewrap(1, 3).await.unwrap());
        assert_eq!(
            rewrap(2, 1).await.unwrap_err().kind(),
            BackendErrorKind::StaleKey
        );
        assert!(rewrap(2, 3).await.unwrap());
        assert_eq!(b.vault_keys().await.unwrap(), [row(b"third", 3)]);
        let actions: Vec<String> = all_audit(b)
            .await
            .into_iter()
            .map(|r| r.action.to_string())
            .collect();
        assert_eq!(actions, ["vault_key_create", "vault_key_rewrap"]);
    }

    pub(crate) async fn corrupted_row_is_corrupt_and_other_rows_still_read(f: &impl Fixture) {
        let b = migrated(f).await;
        b.insert(&record("t1", "api_key", "good"), &[])
            .await
            .unwrap();
        b.insert(&record("t1", "api_key", "bad"), &[])
            .await
            .unwrap();
        if !f
            .raw("UPDATE {p}credvault_secrets SET version = -3 WHERE name = 'bad'")
            .await
        {
            return; // nothing can corrupt the memory backend
        }
        let err = b.get(&key("t1", "api_key", "bad")).await.unwrap_err();
        let narrow = b
            .get_sealed(&key("t1", "api_key", "bad"))
            .await
            .unwrap_err();
        for err in [err, narrow] {
            assert_eq!(err.kind(), BackendErrorKind::Corrupt);
            let msg = err.to_string();
            for part in [
                "credvault_secrets",
                "t1",
                "api_key",
                "bad",
                "column version",
            ] {
                assert!(msg.contains(part), "{msg}");
            }
        }
        assert!(
            b.get(&key("t1", "api_key", "good"))
                .await
                .unwrap()
                .is_some()
        );

        // A kind no RecordKind accepts: listed as unreadable in its place, named, and the
        // tenant's other rows still listed (one bad row never fails a listing).
        f.raw("INSERT INTO {p}credvault_secrets (tenant_id, kind, name, version, sealed, dek_version, kek_version, metadata, created_at, updated_at) VALUES ('t9', 'Bad Kind', 'n', 1, {blob}, 1, 1, '{}', 0, 0)").await;
        let listed = b.list(&list_query("t9")).await.unwrap();
        let skipped = listed[0].as_ref().unwrap_err();
        assert_eq!(
            (skipped.kind.as_str(), skipped.name.as_str(), skipped.reason),
            ("Bad Kind", "n", RowFault::InvalidKind)
        );
        let listed = b.list(&list_query("t1")).await.unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            listed[0].as_ref().unwrap_err().reason,
            RowFault::UnreadableColumn,
            "bad (negative version) sorts first"
        );
        assert_eq!(listed[1].as_ref().unwrap().key.name.as_str(), "good");
        b.insert(&record("t2", "api_key", "fine"), &[])
            .await
            .unwrap();
        assert_eq!(b.list(&list_query("t2")).await.unwrap().len(), 1);

        // A tenant id no TenantId accepts, and a key version out of range.
        f.raw("INSERT INTO {p}credvault_tenants (tenant_id, wrapped_dek, dek_version, kek_version, created_at, purge_after) VALUES ('a/b', {blob}, 1, 1, 0, 5)").await;
        let due = b.tenants_due_for_purge(10).await.unwrap();
        let skipped = due[0].as_ref().unwrap_err();
        assert_eq!(
            (skipped.tenant.as_str(), skipped.reason),
            ("a/b", RowFault::InvalidTenant)
        );
        b.insert_tenant(&tenant_row("ok"), &[]).await.unwrap();
        f.raw("UPDATE {p}credvault_tenants SET kek_version = 4294967296 WHERE tenant_id = 'ok'")
            .await;
        let err = b.tenant(&tenant("ok")).await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Corrupt);
        assert!(err.to_string().contains("kek_version"), "{err}");
    }
}

/// Generates a module of `#[tokio::test]`s, one per body in [`cases`], for one backend.
/// `$make` is an async expression giving `Option<impl Fixture>` (`None`: skip).
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        conformance!(@tests $backend, $make;
            schema_version_is_none_before_migrate_and_current_after,
            migrating_twice_changes_nothing,
            schema_newer_than_this_build_is_refused,
            concurrent_migrations_from_four_handles_migrate_once,
            insert_tenant_keeps_the_first_row_and_audits_only_it,
            tenant_deletion_is_set_and_cleared,
            tenants_due_for_purge_are_those_at_or_before_now,
            purge_tenant_removes_only_that_tenant,
            record_round_trips_every_field,
            inserting_an_existing_record_is_a_conflict_and_writes_nothing,
            update_swaps_only_at_the_expected_version,
            delete_removes_many_skips_absent_and_audits_with_the_change,
            list_pages_in_kind_then_name_byte_order,
            list_filters_by_kind_and_provider,
            set_purge_after_marks_existing_records_with_audit,
            purge_records_deletes_due_records_and_audits_each,
            audit_reads_oldest_first_with_filters,
            purge_audit_removes_only_older_rows,
            corrupted_row_is_corrupt_and_other_rows_still_read,
            vault_keys_insert_once_and_rewrap_by_compare_and_swap,
        );
    };
    (@tests $backend:ident, $make:expr; $($case:ident,)*) => {
        mod $backend {
            #[allow(unused_imports, reason = "each backend uses a different fixture")]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(fixture) = $make.await else { return };
                    super::cases::$case(&fixture).await;
                    fixture.finish().await;
                }
            )*
        }
    };
}

conformance!(memory, MemFixture::new());
#[cfg(feature = "sqlite")]
conformance!(sqlite, SqliteFixture::new());
#[cfg(feature = "postgres")]
conformance!(postgres, PgFixture::new());

// ---------------------------------------------------------------------------------------------
// What only the SQL backends have.

#[cfg(feature = "sqlite")]
mod sqlite_only {
    use super::*;
    use credvault::backend::SqliteBackend;
    use sqlx::sqlite::SqliteConnectOptions;

    #[tokio::test]
    async fn connect_turns_on_wal() {
        let f = SqliteFixture::new().await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(f.sqlite.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(f.sqlite.pool())
            .await
            .unwrap();
        assert_eq!(sync, 1, "synchronous = NORMAL");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(f.sqlite.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);
        f.finish().await;
    }

    #[tokio::test]
    async fn tables_carry_the_prefix_and_no_sqlx_migrations_table_is_made() {
        let f = SqliteFixture::new().await.unwrap();
        f.backend().migrate().await.unwrap();
        let mut tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(f.sqlite.pool())
        .await
        .unwrap();
        tables.sort();
        assert_eq!(
            tables,
            [
                "credvault_audit",
                "credvault_keys",
                "credvault_schema",
                "credvault_secrets",
                "credvault_tenant_deks",
                "credvault_tenants",
                "credvault_throttle",
                "credvault_vault",
                "credvault_vault_keys"
            ]
        );
        f.finish().await;
    }

    #[tokio::test]
    async fn from_pool_changes_no_schema() {
        let f = SqliteFixture::new().await.unwrap();
        let b = SqliteBackend::from_pool(f.sqlite.pool().clone());
        assert_eq!(b.schema_version().await.unwrap(), None);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master")
            .fetch_one(f.sqlite.pool())
            .await
            .unwrap();
        assert_eq!(n, 0);
        f.finish().await;
    }

    #[tokio::test]
    async fn read_only_database_refuses_writes_as_read_only() {
        let f = SqliteFixture::new().await.unwrap();
        f.backend().migrate().await.unwrap();
        f.backend()
            .insert(&record("t1", "api_key", "a"), &[])
            .await
            .unwrap();
        let path = f.path();
        f.sqlite.pool().close().await;
        let ro = SqliteBackend::connect_with(
            SqliteConnectOptions::new().filename(&path).read_only(true),
        )
        .await
        .unwrap();
        assert!(ro.get(&key("t1", "api_key", "a")).await.unwrap().is_some());
        // An up-to-date schema needs no write: migrating a read-only file succeeds.
        ro.migrate().await.unwrap();
        let err = ro
            .insert(&record("t1", "api_key", "b"), &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::ReadOnly, "{err}");
        assert!(err.to_string().contains("read-only"), "{err}");
        let err = ro.append_audit(&[event(1, None, "get")]).await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::ReadOnly, "{err}");
        let err = ro.purge_audit(10).await.unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::ReadOnly, "{err}");
    }

    #[tokio::test]
    async fn missing_directory_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/vault.db");
        let err = SqliteBackend::connect(path.to_str().unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Unavailable, "{err}");
    }

    #[tokio::test]
    async fn in_memory_url_keeps_one_database() {
        let b = SqliteBackend::connect("sqlite::memory:").await.unwrap();
        b.migrate().await.unwrap();
        b.insert(&record("t1", "api_key", "a"), &[]).await.unwrap();
        assert!(b.get(&key("t1", "api_key", "a")).await.unwrap().is_some());
    }
}

#[cfg(feature = "postgres")]
mod postgres_only {
    use super::*;
    use credvault::backend::PgBackend;

    #[tokio::test]
    async fn unreachable_server_is_unavailable() {
        let err = PgBackend::connect("postgres://postgres@127.0.0.1:1/test")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::Unavailable, "{err}");
        assert!(!err.to_string().contains("127.0.0.1"), "{err}");
    }

    #[tokio::test]
    async fn invalid_schema_names_are_refused_before_connecting() {
        for bad in [
            "",
            "Upper",
            "1abc",
            "a-b",
            "a\"b",
            "pg_mine",
            &"a".repeat(64),
        ] {
            let err = PgBackend::connect_with_schema("postgres://postgres@127.0.0.1:1/test", bad)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), BackendErrorKind::Other, "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn tables_carry_the_prefix_and_no_sqlx_migrations_table_is_made() {
        let Some(f) = PgFixture::new().await else {
            return;
        };
        f.backend().migrate().await.unwrap();
        let mut tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
        )
        .bind(&f.schema)
        .fetch_all(&f.pool)
        .await
        .unwrap();
        tables.sort();
        assert_eq!(
            tables,
            [
                "credvault_audit",
                "credvault_keys",
                "credvault_schema",
                "credvault_secrets",
                "credvault_tenant_deks",
                "credvault_tenants",
                "credvault_throttle",
                "credvault_vault",
                "credvault_vault_keys"
            ]
        );
        let sqlx_tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations' AND table_schema = $1",
        )
        .bind(&f.schema)
        .fetch_one(&f.pool)
        .await
        .unwrap();
        assert_eq!(sqlx_tables, 0);
        f.finish().await;
    }

    #[tokio::test]
    async fn read_only_transaction_is_read_only() {
        let Some(f) = PgFixture::new().await else {
            return;
        };
        f.backend().migrate().await.unwrap();
        let url = pg_fixture::url();
        let sep = if url.contains('?') { '&' } else { '?' };
        let ro_url = format!("{url}{sep}options=-c%20default_transaction_read_only%3Don");
        let ro = PgBackend::connect_with_schema(&ro_url, &f.schema)
            .await
            .unwrap();
        let err = ro
            .insert(&record("t1", "api_key", "a"), &[])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), BackendErrorKind::ReadOnly, "{err}");
        ro.pool().close().await;
        f.finish().await;
    }
}
