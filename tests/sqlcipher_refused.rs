//! Desktop mode (feature `sqlcipher`) in a build whose SQLite is not SQLCipher (this
//! workspace links plain SQLite: the tests that link SQLCipher are in desktop/): opening an
//! encrypted file is refused with a typed error naming the fix, and nothing is written, so a
//! missing `bundled-sqlcipher` never leaves the data in a plain file.

#![cfg(feature = "sqlcipher")]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use credvault::Keyring;
use credvault::backend::BackendErrorKind;
use credvault::backend::sqlcipher;
use credvault::keys::PageKey;

#[tokio::test]
async fn plain_sqlite_is_refused_and_no_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db").display().to_string();
    let kek = Keyring::generate().unwrap();

    let err = sqlcipher::open(&path, &PageKey::candidates(&kek).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::NotSqlCipher, "{err}");
    assert!(err.to_string().contains("bundled-sqlcipher"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "a file was written"
    );

    let key = PageKey::primary(&kek).unwrap();
    let err = sqlcipher::rekey(&path, &key, &key).await.unwrap_err();
    assert_eq!(err.kind(), BackendErrorKind::NotSqlCipher, "{err}");
    assert!(sqlcipher::cipher_version().await.is_err());
}

#[test]
fn page_keys_depend_on_the_kek_version_and_debug_shows_no_bytes() {
    let mut kek = Keyring::generate().unwrap();
    let v1 = PageKey::primary(&kek).unwrap();
    kek.rotate().unwrap();
    let v2 = PageKey::primary(&kek).unwrap();
    assert_eq!((v1.version().get(), v2.version().get()), (1, 2));
    let again = PageKey::derive(&kek, v1.version()).unwrap();
    // Options show the pragma: compare through them (the only place the key leaves).
    let shown = |k: &PageKey| format!("{:?}", sqlcipher::options("x.db", k).unwrap());
    assert_eq!(shown(&v1), shown(&again));
    assert_ne!(shown(&v1), shown(&v2));
    assert_eq!(format!("{v1:?}"), "PageKey { version: KeyVersion(1), .. }");
    kek.destroy(v1.version()).unwrap();
    assert!(PageKey::derive(&kek, v1.version()).is_err());
}
