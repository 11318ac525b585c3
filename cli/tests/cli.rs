//! The `credvault` command line, run as a user runs it: arguments, stdin, stdout, stderr and
//! the exit status (0 ok, 1 failed check, 2 error).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions unwrap freely"
)]

#[path = "common/cli.rs"]
mod cli_common;
// The Python helpers live with the library's tests.
#[path = "../../tests/common/python.rs"]
mod common;

use std::path::Path;

use assert_cmd::assert::Assert;
use tempfile::TempDir;

use cli_common::{credvault, fails_with, run, stderr, stdout};

const SECRET: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";

fn token_json(secret: &str) -> String {
    format!(r#"{{"provider": "github", "access_token": "{secret}", "token_type": "Bearer"}}"#)
}

/// A directory with an initialised vault holding acme's github token.
fn vault_with_token() -> TempDir {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["vault", "init"], "").success();
    run(
        dir.path(),
        &[
            "vault",
            "put",
            "--tenant",
            "acme",
            "--kind",
            "oauth_token",
            "--name",
            "github",
        ],
        &token_json(SECRET),
    )
    .success();
    dir
}

fn get_github(dir: &Path, extra: &[&str]) -> Assert {
    let mut args = vec!["vault", "get", "--tenant", "acme", "--kind", "oauth_token"];
    args.extend_from_slice(&["--name", "github"]);
    args.extend_from_slice(extra);
    run(dir, &args, "")
}

fn json(a: &Assert) -> serde_json::Value {
    serde_json::from_str(&stdout(a)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// key

#[test]
fn key_generate_writes_a_key_file_that_key_list_reads() {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["key", "generate", "--out", "keys.json"], "").success();
    let list = run(
        dir.path(),
        &["key", "list", "--keys", "keys.json", "--json"],
        "",
    )
    .success();
    let v = json(&list);
    assert_eq!(v["primary"], 1);
    assert_eq!(v["keys"][0]["state"], "primary");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("keys.json"))
            .unwrap()
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o600);
    }
}

#[test]
fn key_generate_refuses_to_overwrite_an_existing_file() {
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("keys.json"), "precious").unwrap();
    for format in ["keyring", "fernet"] {
        let a = run(
            dir.path(),
            &["key", "generate", "--format", format, "--out", "keys.json"],
            "",
        );
        fails_with(a, 2, "already exists");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keys.json")).unwrap(),
        "precious"
    );
}

#[test]
fn key_generate_without_out_prints_the_key_on_stdout() {
    let dir = TempDir::new().unwrap();
    let ring = run(dir.path(), &["key", "generate"], "").success();
    let v = json(&ring);
    assert_eq!(v["format"], "credvault-keyring");
    let fernet = run(dir.path(), &["key", "generate", "--format", "fernet"], "").success();
    let key = stdout(&fernet);
    assert_eq!(key.trim_end().len(), 44, "{key}");
    assert!(credvault::crypto::fernet::Fernet::new(key.trim_end()).is_ok());
}

#[test]
fn key_rotate_adds_a_primary_and_key_list_never_shows_key_bytes() {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["key", "generate", "--out", "k.json"], "").success();
    run(dir.path(), &["key", "rotate", "--keys", "k.json"], "").success();
    let file = std::fs::read_to_string(dir.path().join("k.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&file).unwrap();
    let list = run(dir.path(), &["key", "list", "--keys", "k.json"], "").success();
    let text = stdout(&list);
    assert!(
        text.contains("decrypt-only") && text.contains("primary"),
        "{text}"
    );
    let list_json = run(
        dir.path(),
        &["key", "list", "--keys", "k.json", "--json"],
        "",
    )
    .success();
    for key in doc["keys"].as_array().unwrap() {
        let bytes = key["key"].as_str().unwrap();
        assert!(!text.contains(bytes) && !stdout(&list_json).contains(bytes));
    }
    assert_eq!(json(&list_json)["primary"], 2);
}

#[test]
fn key_destroy_refuses_the_primary_and_wants_confirmation() {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["key", "generate", "--out", "k.json"], "").success();
    run(dir.path(), &["key", "rotate", "--keys", "k.json"], "").success();
    let a = run(
        dir.path(),
        &["key", "destroy", "2", "--keys", "k.json", "--yes"],
        "",
    );
    fails_with(a, 2, "primary");
    let a = run(
        dir.path(),
        &["key", "destroy", "7", "--keys", "k.json", "--yes"],
        "",
    );
    fails_with(a, 2, "not in the keyring");
    let a = run(dir.path(), &["key", "destroy", "1", "--keys", "k.json"], "");
    fails_with(a, 2, "irreversible");
    run(
        dir.path(),
        &["key", "destroy", "1", "--keys", "k.json", "--yes"],
        "",
    )
    .success();
    let v = json(
        &run(
            dir.path(),
            &["key", "list", "--keys", "k.json", "--json"],
            "",
        )
        .success(),
    );
    assert_eq!(v["keys"][0]["state"], "destroyed");
}

#[test]
fn key_min_version_marks_older_versions_below_minimum() {
    let dir = TempDir::new().unwrap();
    run(dir.path(), &["key", "generate", "--out", "k.json"], "").success();
    let a = run(
        dir.path(),
        &["key", "min-version", "2", "--keys", "k.json"],
        "",
    );
    fails_with(a, 2, "primary");
    run(dir.path(), &["key", "rotate", "--keys", "k.json"], "").success();
    run(
        dir.path(),
        &["key", "min-version", "2", "--keys", "k.json"],
        "",
    )
    .success();
    let v = json(
        &run(
            dir.path(),
            &["key", "list", "--keys", "k.json", "--json"],
            "",
        )
        .success(),
    );
    assert_eq!(v["keys"][0]["below_minimum"], true);
    assert_eq!(v["min_decryption_version"], 2);
}

#[test]
fn key_commands_on_a_missing_or_corrupt_key_file_exit_2_with_a_hint() {
    let dir = TempDir::new().unwrap();
    fails_with(
        run(dir.path(), &["key", "list", "--keys", "nope.json"], ""),
        2,
        "nope.json",
    );
    std::fs::write(dir.path().join("bad.json"), "{\"format\": 1").unwrap();
    let err = fails_with(
        run(dir.path(), &["key", "rotate", "--keys", "bad.json"], ""),
        2,
        "bad.json",
    );
    assert!(err.contains("restore it from your backup"), "{err}");
    let a = run(
        dir.path(),
        &["key", "generate", "--out", "no/such/dir/k.json"],
        "",
    );
    fails_with(a, 2, "no/such/dir/k.json");
}

// ---------------------------------------------------------------------------------------------
// fernet

fn fernet_keys(dir: &Path, name: &str, count: usize) {
    let keys: Vec<String> = (0..count)
        .map(|_| {
            credvault::crypto::fernet::Fernet::generate_key()
                .expose_secret()
                .to_owned()
        })
        .collect();
    std::fs::write(dir.join(name), keys.join("\n") + "\n").unwrap();
}

#[test]
fn fernet_encrypt_then_decrypt_returns_stdin_exactly() {
    let dir = TempDir::new().unwrap();
    fernet_keys(dir.path(), "f.keys", 1);
    let data = "line one\nline two\n";
    let enc = run(
        dir.path(),
        &["fernet", "encrypt", "--key-file", "f.keys"],
        data,
    )
    .success();
    let token = stdout(&enc);
    assert!(token.starts_with("gAAAAA") && token.ends_with('\n'));
    let dec = run(
        dir.path(),
        &["fernet", "decrypt", "--key-file", "f.keys"],
        &token,
    )
    .success();
    assert_eq!(stdout(&dec), data);
}

#[test]
fn fernet_ttl_and_at_follow_the_token_timestamp() {
    let dir = TempDir::new().unwrap();
    fernet_keys(dir.path(), "f.keys", 1);
    let enc = run(
        dir.path(),
        &[
            "fernet",
            "encrypt",
            "--key-file",
            "f.keys",
            "--at",
            "1000000000",
        ],
        "x",
    )
    .success();
    let token = stdout(&enc);
    let decrypt_at = |at: &str| {
        run(
            dir.path(),
            &[
                "fernet",
                "decrypt",
                "--key-file",
                "f.keys",
                "--ttl",
                "60",
                "--at",
                at,
            ],
            &token,
        )
    };
    assert_eq!(stdout(&decrypt_at("1000000030").success()), "x");
    fails_with(decrypt_at("1000000100"), 1, "invalid token (expired)");
    // Without --ttl the age does not matter.
    run(
        dir.path(),
        &["fernet", "decrypt", "--key-file", "f.keys"],
        &token,
    )
    .success();
}

#[test]
fn fernet_decrypt_of_a_bad_token_exits_1_with_invalid_token() {
    let dir = TempDir::new().unwrap();
    fernet_keys(dir.path(), "f.keys", 1);
    fernet_keys(dir.path(), "other.keys", 1);
    let a = run(
        dir.path(),
        &["fernet", "decrypt", "--key-file", "f.keys"],
        "not a token\n",
    );
    fails_with(a, 1, "invalid token (not a fernet token)");
    let token = stdout(
        &run(
            dir.path(),
            &["fernet", "encrypt", "--key-file", "other.keys"],
            "s",
        )
        .success(),
    );
    let a = run(
        dir.path(),
        &["fernet", "decrypt", "--key-file", "f.keys"],
        &token,
    );
    let err = fails_with(a, 1, "invalid token (hmac does not verify)");
    assert!(err.contains("--key-file"), "{err}");
    a_flipped_byte_is_refused(dir.path(), &token);
}

fn a_flipped_byte_is_refused(dir: &Path, token: &str) {
    let mut bytes = token.trim_end().as_bytes().to_vec();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    let a = run(
        dir,
        &["fernet", "decrypt", "--key-file", "other.keys"],
        &tampered,
    );
    fails_with(a, 1, "invalid token");
}

#[test]
fn fernet_rotate_moves_a_token_to_the_first_key_keeping_its_timestamp() {
    let dir = TempDir::new().unwrap();
    fernet_keys(dir.path(), "old.keys", 1);
    fernet_keys(dir.path(), "new.keys", 1);
    let both = format!(
        "{}{}",
        std::fs::read_to_string(dir.path().join("new.keys")).unwrap(),
        std::fs::read_to_string(dir.path().join("old.keys")).unwrap()
    );
    std::fs::write(dir.path().join("both.keys"), both).unwrap();
    let args = [
        "fernet",
        "encrypt",
        "--key-file",
        "old.keys",
        "--at",
        "1000000000",
    ];
    let old = stdout(&run(dir.path(), &args, "payload").success());
    let new = stdout(
        &run(
            dir.path(),
            &["fernet", "rotate", "--key-file", "both.keys"],
            &old,
        )
        .success(),
    );
    let args = [
        "fernet",
        "decrypt",
        "--key-file",
        "new.keys",
        "--ttl",
        "10",
        "--at",
        "1000000005",
    ];
    assert_eq!(stdout(&run(dir.path(), &args, &new).success()), "payload");
    let a = run(
        dir.path(),
        &["fernet", "decrypt", "--key-file", "old.keys"],
        &new,
    );
    fails_with(a, 1, "invalid token");
}

#[test]
fn fernet_with_a_missing_empty_or_bad_key_file_exits_2() {
    let dir = TempDir::new().unwrap();
    let a = run(
        dir.path(),
        &["fernet", "encrypt", "--key-file", "none.keys"],
        "x",
    );
    fails_with(a, 2, "none.keys");
    std::fs::write(dir.path().join("empty.keys"), "\n\n").unwrap();
    let a = run(
        dir.path(),
        &["fernet", "encrypt", "--key-file", "empty.keys"],
        "x",
    );
    fails_with(a, 2, "at least one key");
    std::fs::write(dir.path().join("bad.keys"), "c2hvcnQ=\n").unwrap();
    let a = run(
        dir.path(),
        &["fernet", "decrypt", "--key-file", "bad.keys"],
        "x",
    );
    let err = fails_with(a, 2, "line 1");
    assert!(!err.contains("c2hvcnQ"), "the key line leaked: {err}");
}

#[test]
fn fernet_tokens_interoperate_with_python_cryptography() {
    if !common::python_has(&["cryptography"]) {
        return;
    }
    let dir = TempDir::new().unwrap();
    fernet_keys(dir.path(), "f.keys", 2);
    let keys = std::fs::read_to_string(dir.path().join("f.keys")).unwrap();
    let (first, second) = keys.split_once('\n').unwrap();
    let second = second.trim_end();
    // credvault encrypts (first key); Python's MultiFernet decrypts.
    let token = stdout(
        &run(
            dir.path(),
            &["fernet", "encrypt", "--key-file", "f.keys"],
            "from rust",
        )
        .success(),
    );
    let script = format!(
        "import sys\nfrom cryptography.fernet import MultiFernet, Fernet\n\
         f = MultiFernet([Fernet(b'{second}'), Fernet(b'{first}')])\n\
         sys.stdout.buffer.write(f.decrypt(sys.stdin.buffer.read().strip()))"
    );
    assert_eq!(common::run_python(&script, token.as_bytes()), b"from rust");
    // Python encrypts with the second key; credvault decrypts with the file.
    let script = format!(
        "import sys\nfrom cryptography.fernet import Fernet\n\
         sys.stdout.buffer.write(Fernet(b'{second}').encrypt(sys.stdin.buffer.read()) + b'\\n')"
    );
    let token = common::run_python(&script, b"from python");
    let token = String::from_utf8(token).unwrap();
    let dec = run(
        dir.path(),
        &["fernet", "decrypt", "--key-file", "f.keys", "--ttl", "600"],
        &token,
    );
    assert_eq!(stdout(&dec.success()), "from python");
}

// ---------------------------------------------------------------------------------------------
// password

#[test]
fn password_hash_then_verify_matches_and_a_wrong_password_exits_1() {
    let dir = TempDir::new().unwrap();
    let args = ["password", "hash", "--scheme", "bcrypt", "--cost", "10"];
    let hash = stdout(&run(dir.path(), &args, "hunter2\n").success());
    let hash = hash.trim_end();
    assert!(hash.starts_with("$2b$10$"), "{hash}");
    let args = [
        "password", "verify", "--hash", hash, "--scheme", "bcrypt", "--cost", "10", "--json",
    ];
    // One trailing newline of stdin is not part of the password.
    let ok = run(dir.path(), &args, "hunter2\n").success();
    assert_eq!(
        json(&ok),
        serde_json::json!({"match": true, "needs_rehash": false})
    );
    let bad = run(dir.path(), &args, "hunter3");
    let v = json(&bad);
    assert_eq!(v["match"], false);
    fails_with(bad, 1, "does not match");
    let plain = run(
        dir.path(),
        &["password", "verify", "--hash", hash],
        "hunter2\n\n",
    );
    fails_with(plain, 1, "does not match");
}

#[test]
fn password_verify_says_a_hash_weaker_than_the_policy_needs_rehash() {
    let dir = TempDir::new().unwrap();
    let args = ["password", "hash", "--scheme", "bcrypt", "--cost", "10"];
    let hash = stdout(&run(dir.path(), &args, "pw").success());
    // The default policy is argon2id: a bcrypt hash verifies but should be replaced.
    let args = ["password", "verify", "--hash", hash.trim_end(), "--json"];
    let v = json(&run(dir.path(), &args, "pw").success());
    assert_eq!(v["needs_rehash"], true);
}

#[test]
fn password_hash_defaults_to_argon2id_and_reads_a_pbkdf2_policy() {
    let dir = TempDir::new().unwrap();
    let out = run(dir.path(), &["password", "hash", "--json"], "pw").success();
    let hash = json(&out)["hash"].as_str().unwrap().to_owned();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let args = [
        "password",
        "verify",
        "--hash",
        &hash,
        "--scheme",
        "pbkdf2-sha256",
    ];
    let text = stdout(&run(dir.path(), &args, "pw").success());
    assert!(text.starts_with("match"), "{text}");
}

#[test]
fn password_weak_cost_and_bad_hash_exit_2() {
    let dir = TempDir::new().unwrap();
    let a = run(
        dir.path(),
        &["password", "hash", "--scheme", "bcrypt", "--cost", "4"],
        "pw",
    );
    fails_with(a, 2, "below the safe minimum");
    let a = run(
        dir.path(),
        &[
            "password",
            "hash",
            "--scheme",
            "pbkdf2-sha256",
            "--cost",
            "1000",
        ],
        "pw",
    );
    fails_with(a, 2, "below the safe minimum");
    let a = run(
        dir.path(),
        &["password", "verify", "--hash", "md5:abc"],
        "pw",
    );
    fails_with(a, 2, "unrecognised password hash format");
    let long = "x".repeat(100);
    let a = run(
        dir.path(),
        &["password", "hash", "--scheme", "bcrypt", "--cost", "10"],
        &long,
    );
    let err = fails_with(a, 2, "bcrypt uses at most 72");
    assert!(!err.contains(&long));
}

// ---------------------------------------------------------------------------------------------
// vault

#[test]
fn vault_put_get_and_list_round_trip_a_token() {
    let dir = vault_with_token();
    let got = get_github(dir.path(), &[]).success();
    let record: serde_json::Value = serde_json::from_str(&stdout(&got)).unwrap();
    assert_eq!(record["access_token"], SECRET);
    let got = get_github(dir.path(), &["--json"]).success();
    assert_eq!(json(&got)["version"], 1);
    assert_eq!(json(&got)["record"]["provider"], "github");
    let list = run(dir.path(), &["vault", "list", "--tenant", "acme"], "").success();
    assert!(stdout(&list).contains("github") && !stdout(&list).contains(SECRET));
    let list = run(
        dir.path(),
        &[
            "vault", "list", "--tenant", "acme", "--kind", "api_key", "--json",
        ],
        "",
    );
    assert_eq!(json(&list.success()), serde_json::json!([]));
}

#[test]
fn vault_put_refuses_to_overwrite_unless_update() {
    let dir = vault_with_token();
    let put = [
        "vault",
        "put",
        "--tenant",
        "acme",
        "--kind",
        "oauth_token",
        "--name",
        "github",
    ];
    fails_with(
        run(dir.path(), &put, &token_json("gho_second")),
        2,
        "already exists",
    );
    let mut update = put.to_vec();
    update.extend(["--update", "--json"]);
    let out = run(dir.path(), &update, &token_json("gho_second")).success();
    assert_eq!(json(&out)["version"], 2);
    assert!(stdout(&get_github(dir.path(), &[]).success()).contains("gho_second"));
    let mut missing = update.clone();
    missing[7] = "gitlab";
    fails_with(
        run(dir.path(), &missing, &token_json("x")),
        2,
        "no oauth_token record named",
    );
}

#[test]
fn vault_put_of_malformed_json_exits_2_without_echoing_it() {
    let dir = vault_with_token();
    let put = [
        "vault", "put", "--tenant", "acme", "--kind", "api_key", "--name", "stripe",
    ];
    let err = fails_with(
        run(dir.path(), &put, r#"{"provider": "stripe", "key": 42}"#),
        2,
        "line 1",
    );
    assert!(!err.contains("42"), "{err}");
    let err = fails_with(
        run(
            dir.path(),
            &put,
            r#"{"provider": "stripe", "kee": "sk_live_zzz"}"#,
        ),
        2,
        "does not match",
    );
    assert!(!err.contains("sk_live_zzz"), "{err}");
    fails_with(
        run(dir.path(), &put, "{\"provider\": \"str"),
        2,
        "ends early",
    );
}

#[test]
fn vault_get_still_works_after_a_key_rotation() {
    let dir = vault_with_token();
    run(
        dir.path(),
        &[
            "key",
            "rotate",
            "--keys",
            "credvault-keys/credvault-keys.json",
        ],
        "",
    )
    .success();
    assert!(stdout(&get_github(dir.path(), &[]).success()).contains(SECRET));
    let put = [
        "vault", "put", "--tenant", "globex", "--kind", "api_key", "--name", "stripe",
    ];
    run(
        dir.path(),
        &put,
        r#"{"provider": "stripe", "key": "sk_live_1"}"#,
    )
    .success();
    // acme's data key is wrapped under version 1: destroying it makes acme unreadable.
    run(
        dir.path(),
        &[
            "key",
            "destroy",
            "1",
            "--keys",
            "credvault-keys/credvault-keys.json",
            "--yes",
        ],
        "",
    )
    .success();
    let a = get_github(dir.path(), &[]);
    a.code(2);
    let get = [
        "vault", "get", "--tenant", "globex", "--kind", "api_key", "--name", "stripe",
    ];
    assert!(stdout(&run(dir.path(), &get, "").success()).contains("sk_live_1"));
}

#[test]
fn vault_commands_before_init_exit_2_and_create_nothing() {
    let dir = TempDir::new().unwrap();
    let a = run(dir.path(), &["vault", "list", "--tenant", "acme"], "");
    fails_with(a, 2, "credvault-keys/credvault-keys.json");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    std::fs::create_dir(dir.path().join("credvault-keys")).unwrap();
    run(
        dir.path(),
        &[
            "key",
            "generate",
            "--out",
            "credvault-keys/credvault-keys.json",
        ],
        "",
    )
    .success();
    let a = run(dir.path(), &["vault", "list", "--tenant", "acme"], "");
    let err = fails_with(a, 2, "tenant-key store ./credvault-keys/tenant-keys");
    assert!(err.contains("credvault vault init"), "{err}");
    // An empty directory (an unmounted volume's mount point) is not a tenant-key store.
    std::fs::create_dir(dir.path().join("credvault-keys/tenant-keys")).unwrap();
    let a = run(dir.path(), &["vault", "list", "--tenant", "acme"], "");
    fails_with(a, 2, "not a credvault tenant-key directory");
    std::fs::write(
        dir.path()
            .join("credvault-keys/tenant-keys/credvault-tenant-keys.json"),
        r#"{"format": "credvault-tenant-keys", "version": 1, "store_id": "x", "created_at": 0}"#,
    )
    .unwrap();
    let a = run(dir.path(), &["vault", "list", "--tenant", "acme"], "");
    fails_with(
        a,
        2,
        "database ./credvault-data/credvault.db does not exist",
    );
    assert!(!dir.path().join("credvault-data/credvault.db").exists());
}

#[test]
fn vault_with_other_keys_or_tenant_keys_cannot_open_records() {
    let dir = vault_with_token();
    run(dir.path(), &["key", "generate", "--out", "other.json"], "").success();
    let a = get_github(dir.path(), &["--keys", "other.json"]);
    let err = stderr(&a);
    a.code(2);
    assert!(!err.contains(SECRET) && err.contains("hint:"), "{err}");
    std::fs::create_dir(dir.path().join("empty-dir")).unwrap();
    let a = get_github(dir.path(), &["--tenant-keys", "empty-dir"]);
    fails_with(a, 2, "not a credvault tenant-key directory");
    let a = get_github(dir.path(), &["--keys", "missing.json"]);
    fails_with(a, 2, "missing.json");
}

#[test]
fn vault_on_a_bad_database_path_or_file_exits_2() {
    let dir = vault_with_token();
    // Tests run as root here, where chmod 0444 does not stop writes: use SQLite's read-only
    // mode, a directory that does not exist and a file that is not a database instead.
    let a = run(
        dir.path(),
        &["vault", "init", "--db", "sqlite:./no/such/dir/v.db"],
        "",
    );
    fails_with(
        a,
        2,
        "directory of database ./no/such/dir/v.db does not exist",
    );
    // Nothing was created on the way.
    let fresh = TempDir::new().unwrap();
    let a = run(
        fresh.path(),
        &["vault", "init", "--db", "sqlite:./no/v.db"],
        "",
    );
    fails_with(a, 2, "does not exist");
    assert_eq!(std::fs::read_dir(fresh.path()).unwrap().count(), 0);
    // A database path that is a directory.
    let a = run(
        dir.path(),
        &["vault", "init", "--db", "sqlite:./credvault-keys"],
        "",
    );
    fails_with(a, 2, "unable to open database file");
    std::fs::write(dir.path().join("junk.db"), vec![b'x'; 8192]).unwrap();
    let a = run(
        dir.path(),
        &[
            "vault",
            "list",
            "--tenant",
            "acme",
            "--db",
            "sqlite:./junk.db",
        ],
        "",
    );
    fails_with(a, 2, "not a database");
    let ro = "sqlite:./credvault-data/credvault.db?mode=ro";
    let put = [
        "vault", "put", "--tenant", "acme", "--kind", "api_key", "--name", "k", "--db", ro,
    ];
    fails_with(
        run(dir.path(), &put, r#"{"provider": "p", "key": "k"}"#),
        2,
        "read-only",
    );
    let a = run(
        dir.path(),
        &["vault", "list", "--tenant", "acme", "--db", "mysql://x"],
        "",
    );
    fails_with(a, 2, "cannot open a database");
}

#[test]
fn vault_delete_and_disconnect_remove_records() {
    let dir = vault_with_token();
    let put = [
        "vault", "put", "--tenant", "acme", "--kind", "api_key", "--name", "stripe",
    ];
    run(dir.path(), &put, r#"{"provider": "stripe", "key": "sk_1"}"#).success();
    let del = [
        "vault", "delete", "--tenant", "acme", "--kind", "api_key", "--name", "stripe",
    ];
    run(dir.path(), &del, "").success();
    fails_with(run(dir.path(), &del, ""), 2, "no api_key record named");
    let out = run(
        dir.path(),
        &[
            "vault",
            "disconnect",
            "--tenant",
            "acme",
            "--provider",
            "github",
            "--json",
        ],
        "",
    )
    .success();
    assert_eq!(json(&out)["deleted"], 1);
    fails_with(
        get_github(dir.path(), &[]),
        2,
        "no oauth_token record named",
    );
    // A tenant that never stored anything has no records (issue 13: one "not found").
    let a = run(
        dir.path(),
        &["vault", "list", "--tenant", "nobody", "--json"],
        "",
    )
    .success();
    assert_eq!(json(&a), serde_json::json!([]));
}

#[test]
fn vault_export_no_secrets_leaves_the_payloads_out() {
    let dir = vault_with_token();
    let out = run(
        dir.path(),
        &["vault", "export", "--tenant", "acme", "--no-secrets"],
        "",
    )
    .success();
    assert!(
        !stdout(&out).contains(SECRET),
        "a secret in a --no-secrets export"
    );
    let doc = json(&out);
    assert_eq!(doc["records"][0]["kind"], "oauth_token");
    assert!(doc["records"][0].get("payload").is_none());
}

#[test]
fn vault_export_writes_json_with_secrets_and_csv_without() {
    let dir = vault_with_token();
    let json_out = run(dir.path(), &["vault", "export", "--tenant", "acme"], "").success();
    let doc = json(&json_out);
    assert_eq!(doc["records"][0]["payload"]["access_token"], SECRET);
    let csv = run(
        dir.path(),
        &["vault", "export", "--tenant", "acme", "--format", "csv"],
        "",
    )
    .success();
    assert!(stdout(&csv).starts_with("kind,name,version") && !stdout(&csv).contains(SECRET));
    let args = ["vault", "export", "--tenant", "acme", "--out", "acme.json"];
    run(dir.path(), &args, "").success();
    let file = std::fs::read_to_string(dir.path().join("acme.json")).unwrap();
    assert!(file.contains(SECRET));
    fails_with(run(dir.path(), &args, ""), 2, "acme.json");
}

#[test]
fn vault_tenant_delete_blocks_reads_until_restored_and_purge_reports() {
    let dir = vault_with_token();
    run(
        dir.path(),
        &["vault", "tenant", "delete", "--tenant", "acme"],
        "",
    )
    .success();
    fails_with(get_github(dir.path(), &[]), 2, "is being deleted");
    run(dir.path(), &["vault", "export", "--tenant", "acme"], "").success();
    let purge = run(dir.path(), &["vault", "purge", "--json"], "").success();
    assert_eq!(json(&purge)["tenants"], serde_json::json!([]));
    assert_eq!(json(&purge)["oldest_overdue_seconds"], 0);
    run(
        dir.path(),
        &["vault", "tenant", "restore", "--tenant", "acme"],
        "",
    )
    .success();
    // The deletion removed the OAuth token at once (issue 14); the tenant itself is back.
    fails_with(get_github(dir.path(), &[]), 2, "no oauth_token record");
    run(dir.path(), &["vault", "list", "--tenant", "acme"], "").success();
}

#[test]
fn vault_purge_every_and_watch_take_an_interval_and_refuse_a_bad_one() {
    let dir = vault_with_token();
    let purge = run(
        dir.path(),
        &["vault", "purge", "--every", "1h", "--json"],
        "",
    )
    .success();
    assert_eq!(json(&purge)["oldest_overdue_seconds"], 0);
    // An interval the promises cannot be kept with (derived data: 24 hours).
    fails_with(
        run(dir.path(), &["vault", "purge", "--every", "1d"], ""),
        2,
        "cannot keep the promise",
    );
    let bad = run(dir.path(), &["vault", "purge", "--watch", "2x"], "");
    assert!(stderr(&bad).contains("the unit must be s, m, h or d"));
    bad.code(2);
}

#[test]
fn vault_audit_lists_events_without_secrets() {
    let dir = vault_with_token();
    get_github(dir.path(), &["--actor", "admin:bob"]).success();
    let a = run(
        dir.path(),
        &["vault", "audit", "--tenant", "acme", "--json"],
        "",
    )
    .success();
    let rows = json(&a);
    let actions: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["tenant_create", "put", "get"]);
    assert_eq!(rows[2]["actor"], "admin:bob");
    let text = run(dir.path(), &["vault", "audit", "--limit", "1"], "").success();
    assert_eq!(stdout(&text).lines().count(), 1);
    assert!(!stdout(&text).contains(SECRET));
}

#[test]
fn vault_reads_keys_from_the_credvault_keys_variable() {
    let dir = vault_with_token();
    let keys =
        std::fs::read_to_string(dir.path().join("credvault-keys/credvault-keys.json")).unwrap();
    std::fs::rename(
        dir.path().join("credvault-keys/credvault-keys.json"),
        dir.path().join("moved.json"),
    )
    .unwrap();
    let mut cmd = credvault(dir.path());
    cmd.env("CREDVAULT_KEYS", keys);
    cmd.args([
        "vault",
        "get",
        "--tenant",
        "acme",
        "--kind",
        "oauth_token",
        "--name",
        "github",
    ]);
    assert!(stdout(&cmd.assert().success()).contains(SECRET));
    let mut cmd = credvault(dir.path());
    cmd.env("CREDVAULT_KEYS", "{not json");
    cmd.args(["vault", "list", "--tenant", "acme"]);
    fails_with(cmd.assert(), 2, "$CREDVAULT_KEYS");
}

// ---------------------------------------------------------------------------------------------
// usage

#[test]
fn bad_flags_and_missing_arguments_exit_2() {
    let dir = TempDir::new().unwrap();
    let cases: &[&[&str]] = &[
        &[],
        &["nonsense"],
        &["key", "generate", "--format", "pem"],
        &["key", "rotate"],
        &["key", "destroy", "one", "--keys", "k.json"],
        &["fernet", "decrypt", "--key-file", "f", "--at", "5"],
        &["password", "hash", "--scheme", "md5"],
        &["password", "verify"],
        &["password", "hash", "--password", "pw"],
        &[
            "vault", "put", "--tenant", "acme", "--kind", "ssh_key", "--name", "n",
        ],
        &["vault", "export", "--tenant", "acme", "--format", "xml"],
    ];
    for args in cases {
        let a = run(dir.path(), args, "");
        let err = stderr(&a);
        a.code(2);
        assert!(
            err.contains("Usage:") || err.contains("try '--help'"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = TempDir::new().unwrap();
    let commands: &[&[&str]] = &[
        &[],
        &["key", "generate"],
        &["key", "rotate"],
        &["key", "list"],
        &["key", "destroy"],
        &["key", "min-version"],
        &["fernet", "encrypt"],
        &["fernet", "decrypt"],
        &["fernet", "rotate"],
        &["password", "hash"],
        &["password", "verify"],
        &["vault", "init"],
        &["vault", "put"],
        &["vault", "get"],
        &["vault", "list"],
        &["vault", "delete"],
        &["vault", "disconnect"],
        &["vault", "export"],
        &["vault", "purge"],
        &["vault", "audit"],
        &["vault", "tenant", "delete"],
        &["vault", "tenant", "restore"],
    ];
    for args in commands {
        let mut args = args.to_vec();
        args.push("--help");
        let help = stdout(&run(dir.path(), &args, "").success());
        assert!(
            help.contains("Example") && help.contains("credvault "),
            "{args:?}: {help}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// pinned cases: tests/cli/cases/*.case (format in tests/cli/README.md)

#[derive(Default)]
struct Case {
    args: Vec<String>,
    stdin: Vec<u8>,
    status: i32,
    stdout: Option<String>,
    stderr: String,
}

fn parse_case(root: &Path, text: &str) -> Case {
    let mut case = Case::default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line == "stderr:" {
            case.stderr = lines.map(|l| format!("{l}\n")).collect();
            break;
        }
        let (key, value) = line.split_once(": ").unwrap();
        match key {
            "args" => case.args = value.split_whitespace().map(str::to_owned).collect(),
            "stdin" => case.stdin = value.as_bytes().to_vec(),
            "stdin-line" => case.stdin = format!("{value}\n").into_bytes(),
            "stdin-file" => case.stdin = std::fs::read(root.join(value)).unwrap(),
            "status" => case.status = value.parse().unwrap(),
            "stdout" => case.stdout = Some(value.to_owned()),
            "stdout-line" => case.stdout = Some(format!("{value}\n")),
            other => panic!("unknown case field {other:?}"),
        }
    }
    case
}

#[test]
fn pinned_cases_match_their_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths: Vec<_> = std::fs::read_dir(root.join("tests/cli/cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "cases missing: {paths:?}");
    // git checks the fixture out with the umask's mode (often 0644), and the CLI warns on
    // stderr about a key file others can read: these cases pin the errors, not that warning.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let keyring = root.join("tests/cli/keyring.json");
        std::fs::set_permissions(keyring, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for path in paths {
        let case = parse_case(root, &std::fs::read_to_string(&path).unwrap());
        let mut cmd = credvault(root);
        let a = cmd.args(&case.args).write_stdin(case.stdin).assert();
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(stderr(&a), case.stderr, "{name}: stderr");
        if let Some(expected) = &case.stdout {
            assert_eq!(&stdout(&a), expected, "{name}: stdout");
        }
        assert_eq!(
            a.get_output().status.code(),
            Some(case.status),
            "{name}: status"
        );
    }
}
