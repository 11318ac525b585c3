//! A desktop application's data in one encrypted SQLite file (desktop mode): Instagram
//! session cookies in the vault and the app's own `leads` table beside them, the whole file
//! encrypted by SQLCipher under a page key derived from the KEK, and the KEK in the
//! operating system's keychain (on Linux here: the kernel keyutils store).
//!
//! Then it shows that the file alone, copied elsewhere, opens nothing: not as plain SQLite,
//! not with another keyring, and none of its strings are in its bytes.
//!
//! `cargo run --manifest-path desktop/Cargo.toml --example desktop -- DATA_DIR [--forget]`
//!
//! Run it twice on one directory: the second run finds the cookies and the leads stored by
//! the first. `--forget` deletes the keychain entry at the end (and with it, for good, every
//! way to read DATA_DIR).

#![allow(clippy::unwrap_used, reason = "an example fails loudly")]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use credvault::backend::{BackendErrorKind, SqliteBackend, sqlcipher};
use credvault::envelope::DirTenantKeys;
use credvault::keys::PageKey;
use credvault::keys::keychain::{KeychainEntry, KeychainKeys};
use credvault::store::{Cookie, SessionCookies, Vault};
use credvault::{Keyring, SecretString};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data: PathBuf = args
        .next()
        .ok_or("usage: desktop DATA_DIR [--forget]")?
        .into();
    let forget = args.next().as_deref() == Some("--forget");
    std::fs::create_dir_all(&data)?;
    let db = data.join("app.db");
    let service = std::env::var("CREDVAULT_DESKTOP_SERVICE")
        .unwrap_or_else(|_| "com.example.credvault-desktop".to_owned());
    let entry = KeychainEntry::new(service, "credvault-kek");

    // First run (no database yet): create the KEK in the keychain, explicitly. Later runs
    // only open it: a missing key is an error, never a fresh start over existing data.
    let first_run = !db.exists();
    let keys = Arc::new(if first_run {
        KeychainKeys::create(&entry)?
    } else {
        KeychainKeys::open(&entry)?
    });
    let (backend, opened) = sqlcipher::open(
        &db.display().to_string(),
        &PageKey::candidates(&keys.keyring())?,
    )
    .await?;
    println!(
        "{} {} (page key of KEK version {}, SQLCipher {})",
        if opened.created { "created" } else { "opened" },
        db.display(),
        opened.version,
        sqlcipher::cipher_version().await?
    );

    // The app's own table, through the same pool: encrypted like the vault's.
    let pool = backend.pool().clone();
    sqlx::query("CREATE TABLE IF NOT EXISTS leads (id INTEGER PRIMARY KEY, handle TEXT NOT NULL, note TEXT)")
        .execute(&pool)
        .await?;
    let tenant_keys = data.join("tenant-keys");
    let shred = if first_run {
        DirTenantKeys::create(&tenant_keys)?
    } else {
        DirTenantKeys::open(&tenant_keys)?
    };
    let vault = Vault::builder(backend, Arc::clone(&keys), shred).build();
    vault.migrate().await?;
    let me = vault.tenant("local-user")?;

    if first_run {
        let cookies = SessionCookies {
            provider: "instagram".into(),
            cookies: vec![Cookie {
                name: "sessionid".into(),
                value: SecretString::from("IGSC-example-session"),
                domain: ".instagram.com".into(),
                path: "/".into(),
                expires_at: None,
            }],
        };
        me.put("instagram-main", &cookies).await?;
        sqlx::query(
            "INSERT INTO leads (handle, note) VALUES ('@leadgen_jane', 'replied to the DM')",
        )
        .execute(&pool)
        .await?;
        println!("stored the session cookies and a lead");
    } else {
        let cookies = me.get::<SessionCookies>("instagram-main").await?;
        println!(
            "found the session cookies stored earlier: {} for {}",
            cookies.value.cookies[0].name, cookies.value.cookies[0].domain
        );
    }
    let leads: i64 = sqlx::query_scalar("SELECT count(*) FROM leads")
        .fetch_one(&pool)
        .await?;
    println!("{leads} lead(s) in the app's table");
    vault.flush_audit().await?;
    pool.close().await;

    file_alone_opens_nothing(&db).await?;

    if forget {
        keys.entry().delete()?;
        println!(
            "deleted the keychain entry: {} can no longer be read by anyone",
            data.display()
        );
    }
    Ok(())
}

/// The file copied elsewhere, without the keychain: nothing opens it and nothing reads in it.
async fn file_alone_opens_nothing(db: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let elsewhere = tempfile::tempdir()?;
    let copy = elsewhere.path().join("stolen.db");
    std::fs::copy(db, &copy)?;
    let copy = copy.display().to_string();

    let plain = SqliteBackend::connect(&copy).await;
    let err = plain.err().ok_or("the copy opened as plain SQLite")?;
    println!("the copy as plain SQLite: {err}");

    let other = Keyring::generate()?;
    let err = sqlcipher::open(&copy, &PageKey::candidates(&other)?)
        .await
        .err()
        .ok_or("opened with another key")?;
    assert_eq!(err.kind(), BackendErrorKind::WrongKey);
    println!("the copy with another keyring: {err}");

    let bytes = std::fs::read(&copy)?;
    for needle in [
        "SQLite format 3",
        "instagram",
        "sessionid",
        "leadgen_jane",
        "leads",
    ] {
        if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return Err(format!("{needle:?} is readable in the file").into());
        }
    }
    println!(
        "none of \"SQLite format 3\", instagram, sessionid, leadgen_jane, leads is in its {} bytes",
        bytes.len()
    );
    Ok(())
}
