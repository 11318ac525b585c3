//! Legacy import: Fernet tokens written by Python's `cryptography` (a `MultiFernet` of two
//! keys, some tokens under the old key, some under the new), bad tokens among them, sealed
//! into the vault once, on memory, a real SQLite file and PostgreSQL.
//!
//! The Python tests skip with a message without the `cryptography` package (or fail under
//! `CREDVAULT_REQUIRE_INTEROP=1`); the PostgreSQL one without a server (or fails under
//! `CREDVAULT_REQUIRE_POSTGRES=1`). See `tests/common/mod.rs`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::cell::Cell;
use std::rc::Rc;

use credvault::backend::{AuditQuery, MemoryBackend};
use credvault::crypto::fernet::{Fernet, InvalidTokenReason, MultiFernet};
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{
    ApiKey, FailureCause, ImportReport, LegacyPayload, LegacyValue, MapError, OAuthToken, Progress,
    Vault,
};
use credvault::{Keyring, SecretString, TenantId};
use serde_json::Value;

/// Python makes the keys and every token; `plain` is what a good token holds, `expect` what
/// the import must say about it.
const PYTHON_TOKENS: &str = r#"
import base64, json, os
from cryptography.fernet import Fernet, MultiFernet

new, old, other = Fernet.generate_key(), Fernet.generate_key(), Fernet.generate_key()
f_new, f_old, f_other = Fernet(new), Fernet(old), Fernet(other)
legacy = MultiFernet([f_new, f_old])
rows = []

def row(tenant, name, token, plain, expect):
    rows.append({"tenant": tenant, "name": name, "token": token, "plain": plain, "expect": expect})

def secret(tag):
    return "gho_%s_%s" % (tag, os.urandom(12).hex())

for i in range(6):
    p = secret("old%d" % i)
    row("tenant-%d" % (i % 3), "old-%d" % i, f_old.encrypt(p.encode()).decode(), p, "ok")
for i in range(6):
    p = secret("new%d" % i)
    row("tenant-%d" % (i % 3), "new-%d" % i, legacy.encrypt(p.encode()).decode(), p, "ok")
p = secret("ancient")
ancient = f_old.encrypt_at_time(p.encode(), 1000000000)
row("tenant-0", "ancient", ancient.decode(), p, "ok")
p = secret("rotated")
row("tenant-1", "rotated", legacy.rotate(f_old.encrypt(p.encode())).decode(), p, "ok")

row("tenant-2", "garbage", "gAAAAA-garbage: not base64 at all", None, "malformed")
p = secret("other")
row("tenant-2", "unknown-key", f_other.encrypt(p.encode()).decode(), p, "unauthenticated")
p = secret("truncated")
row("tenant-2", "truncated", f_old.encrypt(p.encode()).decode()[:-7], p, "malformed")
p = secret("tampered")
raw = bytearray(base64.urlsafe_b64decode(f_new.encrypt(p.encode())))
raw[40] ^= 0x01
row("tenant-2", "tampered", base64.urlsafe_b64encode(bytes(raw)).decode(), p, "unauthenticated")
p = secret("clear")
row("tenant-2", "plaintext", p, p, "plaintext")

print(json.dumps({"keys": [new.decode(), old.decode()], "rows": rows}))
"#;

/// Tokens Python opens: 6 under the old key, 6 under the new, one from 2001, one rotated.
const GOOD: u64 = 14;
/// Garbage, unknown key, truncated, tampered, plaintext.
const BAD: u64 = 5;

struct Legacy {
    keys: MultiFernet,
    rows: Vec<Value>,
}

impl Legacy {
    fn from_python() -> Option<Self> {
        if !common::python_has(&["cryptography"]) {
            return None;
        }
        let out: Value = serde_json::from_slice(&common::run_python(PYTHON_TOKENS, b"")).unwrap();
        let keys = out["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| Fernet::new(k.as_str().unwrap()).unwrap())
            .collect();
        Some(Self {
            keys: MultiFernet::new(keys).unwrap(),
            rows: out["rows"].as_array().unwrap().clone(),
        })
    }

    /// The rows as a column reader would give them: classified, one at a time.
    fn values(&self) -> impl Iterator<Item = LegacyValue> + '_ {
        self.rows.iter().map(|r| {
            LegacyValue::new(
                text(&r["tenant"]),
                text(&r["name"]),
                LegacyPayload::from_column(SecretString::from(text(&r["token"]))),
            )
        })
    }

    /// Every token and plaintext, to look for in what the import reports.
    fn secrets(&self) -> Vec<&str> {
        let mut all: Vec<&str> = self.rows.iter().map(|r| text(&r["token"])).collect();
        all.extend(self.rows.iter().filter_map(|r| r["plain"].as_str()));
        all
    }
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn memory_vault() -> Vault {
    Vault::builder(
        MemoryBackend::new(),
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .build()
}

async fn import(vault: &Vault, legacy: &Legacy, allow_plaintext: bool) -> ImportReport {
    vault
        .import_fernet(&legacy.keys, |plain, _| {
            Ok(OAuthToken::bearer("github", plain))
        })
        .allow_plaintext(allow_plaintext)
        .run(legacy.values())
        .await
        .unwrap()
}

/// The whole story on one vault: import, check, import again, then allow plaintext.
async fn python_tokens_import_once(vault: &Vault, legacy: &Legacy) {
    let first = import(vault, legacy, false).await;
    assert_eq!(
        (first.imported, first.already_present, first.failed),
        (GOOD, 0, BAD),
        "{first:?}"
    );
    assert!(!first.failures_truncated());
    for row in &legacy.rows {
        let name = text(&row["name"]);
        let failure = first
            .failures
            .iter()
            .find(|f| f.name.as_deref() == Some(name));
        let expected = match text(&row["expect"]) {
            "ok" => None,
            "malformed" => Some(FailureCause::InvalidToken(InvalidTokenReason::Malformed)),
            "unauthenticated" => Some(FailureCause::InvalidToken(
                InvalidTokenReason::Unauthenticated,
            )),
            "plaintext" => Some(FailureCause::PlaintextNotAllowed),
            other => panic!("unknown expectation {other}"),
        };
        assert_eq!(failure.map(|f| f.cause), expected, "{name}");
        if let Some(f) = failure {
            assert_eq!(f.tenant.as_deref(), Some(text(&row["tenant"])));
        }
    }
    let unauthenticated = first
        .failures
        .iter()
        .find(|f| f.name.as_deref() == Some("unknown-key"))
        .unwrap();
    assert_eq!(
        unauthenticated.reason,
        "invalid fernet token (hmac does not verify)"
    );

    // Every imported record opens to what Python encrypted.
    for row in legacy.rows.iter().filter(|r| r["expect"] == "ok") {
        let got = vault
            .tenant(text(&row["tenant"]))
            .unwrap()
            .get::<OAuthToken>(text(&row["name"]))
            .await
            .unwrap();
        assert_eq!(got.value.access_token.expose_secret(), text(&row["plain"]));
        assert_eq!(got.value.provider, "github");
    }

    // The report names values, never their contents.
    let shown = format!("{first:?}");
    for secret in legacy.secrets() {
        assert!(!shown.contains(secret), "report shows a secret: {shown}");
        assert!(
            !shown.contains(&secret[secret.len() - 12..]),
            "report shows part of a secret: {shown}"
        );
    }

    // The audit log names the import job.
    let audit = vault
        .audit(&AuditQuery {
            tenant: Some(TenantId::new("tenant-0").unwrap()),
            since: None,
            limit: None,
        })
        .await
        .unwrap();
    let puts: Vec<_> = audit.iter().filter(|a| a.action == "put").collect();
    assert_eq!(puts.len(), 5, "{audit:?}");
    assert!(puts.iter().all(|a| a.actor == "job:import"), "{audit:?}");

    // Running it again imports nothing twice.
    let second = import(vault, legacy, false).await;
    assert_eq!(
        (second.imported, second.already_present, second.failed),
        (0, GOOD, BAD)
    );

    // Allowing plaintext imports the one value in clear, and nothing else.
    let third = import(vault, legacy, true).await;
    assert_eq!(
        (third.imported, third.already_present, third.failed),
        (1, GOOD, BAD - 1)
    );
    let clear = legacy
        .rows
        .iter()
        .find(|r| r["expect"] == "plaintext")
        .unwrap();
    let got = vault
        .tenant("tenant-2")
        .unwrap()
        .get::<OAuthToken>("plaintext")
        .await
        .unwrap();
    assert_eq!(
        got.value.access_token.expose_secret(),
        text(&clear["plain"])
    );
}

#[tokio::test]
async fn python_multifernet_tokens_import_once_in_memory() {
    let Some(legacy) = Legacy::from_python() else {
        return;
    };
    let vault = memory_vault();
    vault.migrate().await.unwrap();
    python_tokens_import_once(&vault, &legacy).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn python_multifernet_tokens_import_once_into_a_sqlite_file() {
    let Some(legacy) = Legacy::from_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vault.db").display());
    let vault = Vault::init(
        &url,
        Keyring::generate().unwrap(),
        credvault::envelope::DirTenantKeys::create(dir.path().join("tenant-keys")).unwrap(),
    )
    .await
    .unwrap();
    python_tokens_import_once(&vault, &legacy).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn python_multifernet_tokens_import_once_into_postgres() {
    let Some(legacy) = Legacy::from_python() else {
        return;
    };
    let Some((pool, schema)) = common::postgres_schema().await else {
        return;
    };
    let backend =
        credvault::backend::PgBackend::connect_with_schema(&common::postgres_url(), &schema)
            .await
            .unwrap();
    let vault = Vault::builder(
        backend,
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .build();
    vault.migrate().await.unwrap();
    python_tokens_import_once(&vault, &legacy).await;
    common::drop_postgres_schema(pool, schema).await;
}

// ---------------------------------------------------------------------------------------------
// without Python

fn keys() -> (Fernet, MultiFernet) {
    let key = Fernet::generate_key();
    let f = Fernet::new(key.expose_secret()).unwrap();
    (f.clone(), MultiFernet::new(vec![f]).unwrap())
}

fn token_value(f: &Fernet, tenant: &str, name: &str, plain: &[u8]) -> LegacyValue {
    LegacyValue::new(tenant, name, LegacyPayload::Fernet(f.encrypt(plain)))
}

#[tokio::test]
async fn the_source_is_read_one_value_at_a_time() {
    let vault = memory_vault();
    vault.migrate().await.unwrap();
    let (f, legacy) = keys();
    let pulled = Rc::new(Cell::new(0u64));
    let mapped = Rc::new(Cell::new(0u64));
    let source = {
        let pulled = Rc::clone(&pulled);
        (0..50).map(move |i| {
            pulled.set(pulled.get() + 1);
            token_value(&f, "acme", &format!("key-{i}"), b"sk_live_x")
        })
    };
    let mapped_in = Rc::clone(&mapped);
    let report = vault
        .import_fernet(&legacy, |plain, v| {
            mapped_in.set(mapped_in.get() + 1);
            assert_eq!(pulled.get(), mapped_in.get(), "the source was read ahead");
            Ok(ApiKey {
                provider: "stripe".to_owned(),
                key: plain,
                label: Some(v.name.clone()),
            })
        })
        .run(source)
        .await
        .unwrap();
    assert_eq!(report.imported, 50);
    assert_eq!(mapped.get(), 50);
}

#[tokio::test]
async fn progress_is_reported_every_hundred_values_and_at_the_end() {
    let vault = memory_vault();
    vault.migrate().await.unwrap();
    let (f, legacy) = keys();
    let values: Vec<_> = (0..250)
        .map(|i| token_value(&f, "acme", &format!("k{i}"), b"v"))
        .collect();
    let mut seen: Vec<Progress> = Vec::new();
    let mut record = |p: Progress| seen.push(p);
    vault
        .import_fernet(&legacy, |plain, _| {
            Ok(ApiKey {
                provider: "p".to_owned(),
                key: plain,
                label: None,
            })
        })
        .progress(&mut record)
        .run(values)
        .await
        .unwrap();
    let done: Vec<u64> = seen.iter().map(|p| p.done).collect();
    assert_eq!(done, [100, 200, 250]);
    assert!(seen.iter().all(|p| p.total == 250));
}

#[tokio::test]
async fn record_level_problems_are_counted_and_the_import_goes_on() {
    let vault = memory_vault();
    vault.migrate().await.unwrap();
    let (f, legacy) = keys();
    // A tenant being deleted accepts no new records.
    vault
        .tenant("leaving")
        .unwrap()
        .put("x", &OAuthToken::bearer("github", "gho_x".into()))
        .await
        .unwrap();
    vault.delete_tenant("leaving", "admin").await.unwrap();
    // An existing record is left as it is.
    vault
        .tenant("acme")
        .unwrap()
        .put("kept", &OAuthToken::bearer("github", "gho_current".into()))
        .await
        .unwrap();
    let values = vec![
        token_value(&f, "Not A Tenant!", "github", b"gho_1"),
        token_value(&f, "acme", "bad\nname", b"gho_2"),
        token_value(&f, "acme", "refused", b"gho_3"),
        token_value(&f, "acme", "binary", &[0xff, 0xfe, 0x00]),
        token_value(&f, "leaving", "github", b"gho_4"),
        token_value(&f, "acme", "kept", b"gho_legacy"),
        token_value(&f, "acme", "fine", b"gho_5"),
    ];
    let mut import = vault.import_fernet(&legacy, |plain, v| {
        if v.name == "refused" {
            return Err(MapError::new("not a token set"));
        }
        Ok(OAuthToken::bearer("github", plain))
    });
    for v in values {
        import.push(v).await.unwrap();
    }
    import.push_unreadable("line 9: not valid json");
    let report = import.finish();
    assert_eq!(
        (report.imported, report.already_present, report.failed),
        (1, 1, 6),
        "{report:?}"
    );
    let causes: Vec<FailureCause> = report.failures.iter().map(|f| f.cause).collect();
    assert_eq!(
        causes,
        [
            FailureCause::InvalidRecord,
            FailureCause::InvalidRecord,
            FailureCause::MappingFailed,
            FailureCause::NotUtf8,
            FailureCause::TenantNotWritable,
            FailureCause::UnreadableSource,
        ]
    );
    assert_eq!(report.failures[2].reason, "mapping: not a token set");
    assert_eq!(report.failures[5].tenant, None);
    let kept = vault
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("kept")
        .await
        .unwrap();
    assert_eq!(kept.value.access_token.expose_secret(), "gho_current");
    assert_eq!(kept.version, 1);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_storage_failure_stops_the_import_with_the_report_so_far() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("vault.db").display());
    let backend = credvault::backend::SqliteBackend::connect(&url)
        .await
        .unwrap();
    let pool = backend.pool().clone();
    let vault = Vault::builder(
        backend,
        Keyring::generate().unwrap(),
        MemoryTenantKeys::new(),
    )
    .build();
    vault.migrate().await.unwrap();
    let (f, legacy) = keys();
    let values: Vec<_> = (0..10)
        .map(|i| token_value(&f, "acme", &format!("k{i}"), b"v"))
        .collect();
    let mut mapped = 0;
    let err = vault
        .import_fernet(&legacy, |plain, _| {
            mapped += 1;
            if mapped == 4 {
                // The database goes away in the middle of the import.
                drop(pool.close());
            }
            Ok(ApiKey {
                provider: "p".to_owned(),
                key: plain,
                label: None,
            })
        })
        .run(values)
        .await
        .unwrap_err();
    assert_eq!(err.report.imported, 3, "{err}");
    assert_eq!(err.report.failed, 0, "{err}");
    assert_eq!(mapped, 4, "the import went on after the database failed");
    assert!(
        err.to_string().starts_with("import stopped after 3 values"),
        "{err}"
    );
}
