//! A rekey survives SIGKILL: a child process rekeys an encrypted file of ~20 MB back and forth
//! between the page keys of two KEK versions, and is killed at random points during the
//! rekeys, 20 times. After each kill the file opens with exactly one of the two keys, passes
//! `PRAGMA integrity_check` and holds every row; `sqlcipher::open` with the keyring then
//! finishes the job (rekeys to the primary version if it was left on the other).
//!
//! The child is this test binary run again with `CREDVAULT_REKEY_CHILD` set (the test
//! `rekey_child` does nothing otherwise), as tests/rotation_crash.rs does.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credvault::backend::BackendErrorKind;
use credvault::backend::sqlcipher;
use credvault::keys::PageKey;
use credvault::{KeyVersion, Keyring};
use sqlx::ConnectOptions as _;

const CHILD: &str = "CREDVAULT_REKEY_CHILD";
const ROWS: i64 = 20_000;
const KILLS: u32 = 20;

fn keyring_from_env() -> Keyring {
    Keyring::from_json(
        &std::env::var("CREDVAULT_REKEY_KEYS").unwrap(),
        "$CREDVAULT_REKEY_KEYS",
    )
    .unwrap()
}

/// Rekeys the file to whichever of the two keys it is not under, forever, saying "rekey" on
/// stdout before each.
#[tokio::test]
async fn rekey_child() {
    let Ok(path) = std::env::var(CHILD) else {
        return;
    };
    let kek = keyring_from_env();
    let v1 = PageKey::derive(&kek, KeyVersion::new(1)).unwrap();
    let v2 = PageKey::derive(&kek, KeyVersion::new(2)).unwrap();
    loop {
        println!("rekey");
        match sqlcipher::rekey(&path, &v1, &v2).await {
            Ok(()) => {}
            Err(e) if e.kind() == BackendErrorKind::WrongKey => {
                sqlcipher::rekey(&path, &v2, &v1).await.unwrap();
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Which of the two keys opens the file now (exactly one must), after an integrity check and
/// a count of the rows and their checksum.
async fn opens_with(path: &str, kek: &Keyring) -> KeyVersion {
    let mut opened = Vec::new();
    for version in [KeyVersion::new(1), KeyVersion::new(2)] {
        let key = PageKey::derive(kek, version).unwrap();
        let options = sqlcipher::options(path, &key)
            .unwrap()
            .create_if_missing(false);
        let Ok(mut conn) = options.connect().await else {
            continue;
        };
        let Ok(check) = sqlx::query_scalar::<_, String>("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
        else {
            continue;
        };
        assert_eq!(check, "ok", "integrity check under {version}");
        let (count, sum): (i64, i64) =
            sqlx::query_as("SELECT count(*), sum(length(payload) + id) FROM filler")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!((count, sum), (ROWS, ROWS * 1000 + ROWS * (ROWS + 1) / 2));
        opened.push(version);
    }
    assert_eq!(opened.len(), 1, "opened with {opened:?}");
    opened[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rekey_killed_at_any_point_leaves_a_file_that_opens_with_the_old_or_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db").display().to_string();
    let mut kek = Keyring::generate().unwrap();
    // The file starts under version 1.
    let (backend, _) = sqlcipher::open(&path, &PageKey::candidates(&kek).unwrap())
        .await
        .unwrap();
    sqlx::query("CREATE TABLE filler (id INTEGER PRIMARY KEY, payload BLOB)")
        .execute(backend.pool())
        .await
        .unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
         INSERT INTO filler (id, payload) SELECT i, randomblob(1000) FROM n",
    )
    .bind(ROWS)
    .execute(backend.pool())
    .await
    .unwrap();
    backend.pool().close().await;
    kek.rotate().unwrap();
    let json = kek.to_json();

    // How long one rekey takes here, to kill inside one.
    let (v1, v2) = (
        PageKey::derive(&kek, KeyVersion::new(1)).unwrap(),
        PageKey::derive(&kek, KeyVersion::new(2)).unwrap(),
    );
    let start = Instant::now();
    sqlcipher::rekey(&path, &v1, &v2).await.unwrap();
    let one = start.elapsed();
    assert_eq!(opens_with(&path, &kek).await, KeyVersion::new(2));

    let mut seen = [0u32; 2];
    for kill in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "rekey_child", "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .env("CREDVAULT_REKEY_KEYS", json.expose_secret())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait for the child's first rekey to start, then kill it somewhere within its first
        // two rekeys (a random point, so kills land in the journal write, the page rewrites,
        // the commit and the switch back to WAL).
        loop {
            let line = lines.next().unwrap().unwrap();
            if line == "rekey" {
                break;
            }
        }
        let micros = u64::try_from(one.as_micros()).unwrap().max(1) * 2;
        std::thread::sleep(Duration::from_micros(rand::random_range(0..micros)));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "kill {kill}: the child exited by itself");
        let version = opens_with(&path, &kek).await;
        seen[usize::try_from(version.get() - 1).unwrap()] += 1;
    }
    eprintln!(
        "{KILLS} SIGKILLs during rekeys of a {} MB file (one rekey: {one:?}): left under v1 {} times, v2 {} times",
        std::fs::metadata(&path).unwrap().len() / 1_000_000,
        seen[0],
        seen[1]
    );

    // The opener finishes the job: the primary (v2) key, whatever the kills left.
    let (backend, opened) = sqlcipher::open(&path, &PageKey::candidates(&kek).unwrap())
        .await
        .unwrap();
    assert_eq!(opened.version, KeyVersion::new(2));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM filler")
        .fetch_one(backend.pool())
        .await
        .unwrap();
    assert_eq!(count, ROWS);
    backend.pool().close().await;
    assert_eq!(opens_with(&path, &kek).await, KeyVersion::new(2));
}
