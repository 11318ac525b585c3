//! The key file on disk, through the `credvault` command line: `key rotate` rewrites it without
//! changing its owner, group or mode and writes through a symbolic link to its target; the
//! library's warnings (a key file others can read) reach the operator on stderr.

#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap freely"
)]

#[path = "common/cli.rs"]
mod cli_common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use credvault::Keyring;
use tempfile::TempDir;

use cli_common::{run, stderr};

const WARNING: &str = "key file is accessible by group or others";

/// A directory with a new key file `keys.json` (mode 0600) made by `key generate`.
fn key_file() -> TempDir {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["key", "generate", "--out", "keys.json"], "").success();
    dir
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn rotate(dir: &Path, keys: &str) {
    run(dir, &["key", "rotate", "--keys", keys], "").success();
}

fn primary(path: &Path) -> u32 {
    Keyring::load(path).unwrap().primary_version().get()
}

#[test]
fn rotate_keeps_a_0640_key_file_0640() {
    let dir = key_file();
    let path = dir.path().join("keys.json");
    set_mode(&path, 0o640);
    rotate(dir.path(), "keys.json");
    assert_eq!(primary(&path), 2);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
}

#[test]
fn rotate_through_a_symlink_keeps_the_link_and_rotates_its_target() {
    let dir = key_file();
    std::fs::create_dir(dir.path().join("real")).unwrap();
    std::fs::rename(
        dir.path().join("keys.json"),
        dir.path().join("real/keys.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink("real/keys.json", dir.path().join("keys.json")).unwrap();
    rotate(dir.path(), "keys.json");
    let link = dir.path().join("keys.json");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("real/keys.json")
    );
    let target = dir.path().join("real/keys.json");
    assert_eq!(primary(&target), 2);
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let names: Vec<_> = std::fs::read_dir(dir.path().join("real"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keys.json"], "temporary files left behind");
}

#[test]
fn rotate_keeps_the_key_files_owner_and_group() {
    let dir = key_file();
    let path = dir.path().join("keys.json");
    if std::fs::metadata(&path).unwrap().uid() != 0 {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    std::os::unix::fs::chown(&path, Some(1), Some(1)).unwrap();
    rotate(dir.path(), "keys.json");
    assert_eq!(primary(&path), 2);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1, 1));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn key_file_others_can_read_is_reported_on_stderr() {
    let dir = key_file();
    set_mode(&dir.path().join("keys.json"), 0o644);
    let a = run(dir.path(), &["key", "list", "--keys", "keys.json"], "").success();
    let err = stderr(&a);
    assert!(err.contains(WARNING), "{err:?}");
    assert!(err.contains("keys.json"), "{err:?}");
    assert!(err.contains("WARN"), "{err:?}");
}

#[test]
fn owner_only_key_file_prints_nothing_on_stderr() {
    let dir = key_file();
    let a = run(dir.path(), &["key", "list", "--keys", "keys.json"], "").success();
    assert_eq!(stderr(&a), "");
}
