//! Whole-file encryption of the SQLite backend with SQLCipher (feature `sqlcipher`): desktop
//! mode (README, "Desktop mode"; SECURITY.md says what it adds and what it costs).
//!
//! Every page of the database file, its WAL and its rollback journal is encrypted by SQLCipher
//! (AES-256-CBC with an HMAC-SHA512 per page, the header included), so table names, tenant
//! ids, record names, providers, metadata, the audit log, the throttle's rows and the
//! application's own tables in the same file are unreadable without the key.
//!
//! # The page key
//!
//! No second secret: the page key is derived from one KEK version of the vault's keyring
//! ([`PageKey::derive`]: HKDF-SHA256 of the KEK with `"credvault sqlcipher page key v1" ||
//! version` as info; this module sees the derived keys, never the keyring), and given to SQLCipher as a raw key (`PRAGMA key = "x'<64 hex>'"`, the
//! first statement on every connection: sqlx runs `key` before any other pragma), so no
//! PBKDF2 runs per connection.
//!
//! # Which KEK version
//!
//! A new file is keyed under the keyring's primary version. [`open`] takes
//! [`PageKey::candidates`]: it tries the primary version's page key, then every other live
//! version's, newest first, and reports which one
//! opened the file ([`Opened`]); if it was not the primary (the KEK was rotated since), it
//! rekeys the file to the primary's page key before the pool opens ([`rekey`]), so the file
//! follows the KEK. Never destroy a KEK version before the file has been opened once under
//! its successor: the file would be lost with it.
//!
//! # Linking SQLCipher
//!
//! This module is only credvault's code. The application links SQLCipher itself, by
//! enabling `libsqlite3-sys`'s `bundled-sqlcipher` feature (system libcrypto) or
//! `bundled-sqlcipher-vendored-openssl` in its own `Cargo.toml`:
//!
//! ```toml
//! credvault = { version = "0.1", features = ["sqlcipher", "os-keychain"] }
//! libsqlite3-sys = { version = "0.37", features = ["bundled-sqlcipher"] }
//! ```
//!
//! Without it SQLite would ignore `PRAGMA key` and write a plain file: [`open`] checks
//! `PRAGMA cipher_version` on an in-memory connection first and refuses with
//! [`BackendErrorKind::NotSqlCipher`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use credvault::backend::sqlcipher;
//! use credvault::envelope::DirTenantKeys;
//! use credvault::keys::PageKey;
//! use credvault::keys::keychain::{KeychainEntry, KeychainKeys};
//! use credvault::store::Vault;
//!
//! # async fn run() -> Result<(), credvault::Error> {
//! let keys = Arc::new(KeychainKeys::open(&KeychainEntry::new("com.example.app", "kek"))?);
//! let page_keys = PageKey::candidates(&keys.keyring())?;
//! let (backend, opened) = sqlcipher::open("/home/me/.local/share/app/app.db", &page_keys).await?;
//! println!("opened with the page key of KEK version {}", opened.version);
//! let pool = backend.pool().clone(); // the application's own tables go through it too
//! let vault = Vault::builder(backend, keys, DirTenantKeys::open("/home/me/.local/share/app/tenant-keys")?).build();
//! vault.migrate().await?;
//! # let _ = pool; Ok(()) }
//! ```

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};
use zeroize::Zeroizing;

use crate::KeyVersion;
use crate::backend::sql_rows::map_err;
use crate::backend::{BackendError, BackendErrorKind, SqliteBackend};
pub use crate::keys::PageKey;

/// SQLite's `SQLITE_NOTADB`: what SQLCipher answers for a wrong key.
const SQLITE_NOTADB: &str = "26";

/// The first 16 bytes of a plain (unencrypted) SQLite file.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Which key opened an encrypted file, from [`open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Opened {
    /// The KEK version whose page key the file is keyed under now (the keyring's primary).
    pub version: KeyVersion,
    /// The file did not exist (or was empty) and was created.
    pub created: bool,
    /// The file was keyed under this older KEK version and has been rekeyed to `version`.
    pub rekeyed_from: Option<KeyVersion>,
}

/// [`SqliteBackend::options`] keyed with `key`: `PRAGMA key` first on every connection, and
/// sqlx's statement logging off (its log line would show the pragma, key included).
///
/// The options hold the key in clear: never log them (`Debug` shows it).
///
/// # Errors
///
/// As [`SqliteBackend::options`].
pub fn options(url_or_path: &str, key: &PageKey) -> Result<SqliteConnectOptions, BackendError> {
    Ok(SqliteBackend::options(url_or_path)?
        .pragma("key", key.pragma_value())
        .log_statements(log::LevelFilter::Off)
        .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(3600)))
}

/// The SQLCipher version of the SQLite library this process links, or
/// [`BackendErrorKind::NotSqlCipher`] if it is plain SQLite (which would ignore `PRAGMA key`
/// and write files in clear).
///
/// # Errors
///
/// [`BackendErrorKind::NotSqlCipher`]; an in-memory connection that fails.
pub async fn cipher_version() -> Result<String, BackendError> {
    let context = "checking that sqlite is sqlcipher";
    let mut conn = SqliteConnectOptions::new()
        .filename(":memory:")
        .log_statements(log::LevelFilter::Off)
        .connect()
        .await
        .map_err(|e| map_err(e, context, classify))?;
    let version: Option<String> = sqlx::query_scalar("PRAGMA cipher_version")
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| map_err(e, context, classify))?;
    let _ = conn.close().await;
    match version {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(BackendError::new(
            BackendErrorKind::NotSqlCipher,
            "this build's SQLite is not SQLCipher, so it cannot encrypt the file: the \
             application must enable libsqlite3-sys's `bundled-sqlcipher` (or \
             `bundled-sqlcipher-vendored-openssl`) feature in its own Cargo.toml \
             (README, \"Desktop mode\")",
        )),
    }
}

/// Opens (creating if missing) the encrypted database at `url_or_path` with `keys`, the
/// keyring's [`PageKey::candidates`]: the primary version's first (a new file is keyed under
/// it), then the other live versions', newest first. A file keyed under another one is
/// rekeyed to the first ([`rekey`]) before the pool opens; [`Opened`] says which key worked
/// and whether it was rekeyed.
///
/// Run it while no other connection has the file open (a desktop application at start-up):
/// the probe and the rekey use one connection of their own.
///
/// # Errors
///
/// [`BackendErrorKind::NotSqlCipher`] if the process's SQLite is not SQLCipher;
/// [`BackendErrorKind::WrongKey`] if no key in `keys` opens the file (the wrong keyring, a KEK
/// version destroyed while the file was still keyed under it, a plain SQLite file, or not a
/// database) or `keys` is empty; [`SqliteBackend::connect`]'s errors.
pub async fn open(
    url_or_path: &str,
    keys: &[PageKey],
) -> Result<(SqliteBackend, Opened), BackendError> {
    cipher_version().await?;
    let base = SqliteBackend::options(url_or_path)?;
    let path = base.get_filename().to_owned();
    let Some(primary) = keys.first() else {
        return Err(wrong_key(&path, "no page key given"));
    };
    let existing = std::fs::metadata(&path)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    let mut opened = Opened {
        version: primary.version(),
        created: !existing,
        rekeyed_from: None,
    };
    if existing {
        let (mut conn, key) = probe(url_or_path, &path, keys).await?;
        if key.version() != primary.version() {
            rekey_connection(&mut conn, primary).await?;
            tracing::info!(
                path = %path.display(),
                from = %key.version(),
                to = %primary.version(),
                "encrypted sqlite file rekeyed to the primary KEK version's page key"
            );
            opened.rekeyed_from = Some(key.version());
        }
        conn.close()
            .await
            .map_err(|e| map_err(e, "closing the key probe", classify))?;
    }
    let mut options = options(url_or_path, primary)?;
    if existing {
        options = options.create_if_missing(false);
    }
    let backend = SqliteBackend::connect_with(options).await.map_err(|e| {
        if e.kind() == BackendErrorKind::Corrupt {
            wrong_key(
                &path,
                "the primary KEK version's page key stopped opening it",
            )
        } else {
            e
        }
    })?;
    // A new file is written (keyed) by its first statement: make it exist now.
    sqlx::query("SELECT count(*) FROM sqlite_master")
        .execute(backend.pool())
        .await
        .map_err(|e| map_err(e, "reading the encrypted database", classify))?;
    Ok((backend, opened))
}

/// Changes the page key of the encrypted file at `url_or_path` from `from` to `to` with
/// SQLCipher's `PRAGMA rekey`, crash-safely: the file is switched to a rollback journal first
/// (SQLCipher cannot rekey in WAL mode), whose pages keep the old key, so a process killed
/// during the rekey leaves a hot journal that rolls the file back to `from` when it is next
/// opened with `from`; after the commit the file opens with `to`. [`open`] tries both, so
/// it finishes an interrupted rekey by itself. The file is back in WAL mode afterwards.
///
/// No other connection may have the file open (close the pool first).
///
/// # Errors
///
/// [`BackendErrorKind::WrongKey`] if `from` does not open the file;
/// [`BackendErrorKind::Unavailable`] if another connection holds it; other SQLite errors.
pub async fn rekey(url_or_path: &str, from: &PageKey, to: &PageKey) -> Result<(), BackendError> {
    cipher_version().await?;
    let path = SqliteBackend::options(url_or_path)?
        .get_filename()
        .to_owned();
    let mut conn = match try_key(url_or_path, from).await? {
        Some(conn) => conn,
        None => {
            return Err(wrong_key(
                &path,
                &format!(
                    "the page key of KEK version {} does not open it",
                    from.version()
                ),
            ));
        }
    };
    rekey_connection(&mut conn, to).await?;
    conn.close()
        .await
        .map_err(|e| map_err(e, "closing after the rekey", classify))
}

/// The connection opened by the first page key that reads the file, and that key.
async fn probe<'k>(
    url_or_path: &str,
    path: &Path,
    keys: &'k [PageKey],
) -> Result<(SqliteConnection, &'k PageKey), BackendError> {
    for key in keys {
        if let Some(conn) = try_key(url_or_path, key).await? {
            return Ok((conn, key));
        }
    }
    let versions: Vec<KeyVersion> = keys.iter().map(PageKey::version).collect();
    let plain = std::fs::File::open(path)
        .and_then(|mut f| {
            let mut head = [0u8; 16];
            std::io::Read::read_exact(&mut f, &mut head).map(|()| head)
        })
        .is_ok_and(|head| &head == PLAIN_HEADER);
    let listed: Vec<String> = versions.iter().map(ToString::to_string).collect();
    Err(wrong_key(
        path,
        &if plain {
            "it is a plain (unencrypted) SQLite file, not an encrypted one".to_owned()
        } else {
            format!(
                "no page key of the keyring's live KEK versions ({}) opens it: the wrong keys, \
                 a KEK version destroyed while the file was keyed under it, or not an \
                 encrypted credvault file",
                listed.join(", ")
            )
        },
    ))
}

/// One connection keyed with `key`, or `None` if SQLCipher says the key is wrong.
async fn try_key(
    url_or_path: &str,
    key: &PageKey,
) -> Result<Option<SqliteConnection>, BackendError> {
    let context = "opening the encrypted sqlite database";
    let options = options(url_or_path, key)?.create_if_missing(false);
    let mut conn = match options.connect().await {
        Ok(conn) => conn,
        Err(e) if is_notadb(&e) => return Ok(None),
        Err(e) => return Err(map_err(e, context, classify)),
    };
    match sqlx::query("SELECT count(*) FROM sqlite_master")
        .execute(&mut conn)
        .await
    {
        Ok(_) => Ok(Some(conn)),
        Err(e) if is_notadb(&e) => Ok(None),
        Err(e) => Err(map_err(e, context, classify)),
    }
}

/// Rollback journal, `PRAGMA rekey`, WAL again, on the only connection to the file.
async fn rekey_connection(conn: &mut SqliteConnection, to: &PageKey) -> Result<(), BackendError> {
    let context = "rekeying the encrypted sqlite database";
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = DELETE")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| map_err(e, context, classify))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(BackendError::new(
            BackendErrorKind::Unavailable,
            format!(
                "{context}: another connection holds the file (journal mode stays {mode}); close it and retry"
            ),
        ));
    }
    let rekey = Zeroizing::new(format!("PRAGMA rekey = {}", to.pragma_value()));
    sqlx::raw_sql(sqlx::AssertSqlSafe(rekey.as_str().to_owned()))
        .execute(&mut *conn)
        .await
        .map_err(|e| map_err(e, context, classify))?;
    let _: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| map_err(e, context, classify))?;
    Ok(())
}

fn is_notadb(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(SQLITE_NOTADB))
}

fn wrong_key(path: &Path, why: &str) -> BackendError {
    BackendError::new(
        BackendErrorKind::WrongKey,
        format!("encrypted sqlite file {}: {why}", path.display()),
    )
}

fn classify(err: &dyn sqlx::error::DatabaseError) -> Option<BackendErrorKind> {
    crate::backend::sqlite::classify(err)
}
