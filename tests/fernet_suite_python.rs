//! The Fernet sealing suite against Python's `cryptography`, for real:
//!
//! - a Python process opens the vault's SQLite file itself, reads the stored payloads, and
//!   decrypts them with `MultiFernet` over the tenant's exported keys, checks and strips the
//!   bound context (README, "Sealing with Fernet"), and gets every record's JSON back;
//! - keys Python generates, in the spellings Python's lenient key decoding accepts or refuses,
//!   are accepted or refused here alike, and an accepted one is the same key.
//!
//! Skipped with a message without the `cryptography` package (a failure under
//! `CREDVAULT_REQUIRE_INTEROP=1`).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use std::sync::Arc;

use credvault::crypto::{Fernet, SealingSuite};
use credvault::envelope::DirTenantKeys;
use credvault::store::{ApiKey, Cookie, OAuthToken, SessionCookies, Vault};
use credvault::{Keyring, SecretString};
use serde_json::{Value, json};

/// Reads `credvault_secrets` from the SQLite file named in the request, decrypts each row
/// with its tenant's keys and strips the context: `[[tenant, kind, name, record], ...]`.
const DECRYPT_FROM_DB: &str = r#"
import json, sqlite3, sys
from cryptography.fernet import Fernet, MultiFernet

req = json.load(sys.stdin)
keys = {t: MultiFernet([Fernet(k) for k in ks]) for t, ks in req["keys"].items()}
db = sqlite3.connect(req["db"])
out = []
for tenant, kind, name, sealed in db.execute(
        "SELECT tenant_id, kind, name, sealed FROM credvault_secrets ORDER BY 1, 2, 3"):
    pt = keys[tenant].decrypt(bytes(sealed))
    parts = []
    for _ in range(3):
        n = int.from_bytes(pt[:4], "big")
        parts.append(pt[4:4 + n].decode())
        pt = pt[4 + n:]
    assert parts == [tenant, kind, name], (parts, tenant, kind, name)
    out.append([tenant, kind, name, json.loads(pt)])
# Another tenant's keys do not open a record.
tenants = sorted(keys)
row = db.execute("SELECT sealed FROM credvault_secrets WHERE tenant_id = ?", (tenants[0],)).fetchone()
try:
    keys[tenants[1]].decrypt(bytes(row[0]))
    raise SystemExit("another tenant's key opened a record")
except Exception as e:
    assert type(e).__name__ == "InvalidToken", e
print(json.dumps(out))
"#;

/// Python-generated keys in many spellings: `[{key, ok, token?}]`, the token encrypted by
/// Python under the key when it accepts it.
const KEY_SPELLINGS: &str = r#"
import json, os, random, sys
from cryptography.fernet import Fernet

seed = int.from_bytes(os.urandom(8), "big")
rng = random.Random(seed)
alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
junk = " \t\n\r!#$%&()*,.:;<>?@[]^`{|}~\"'"
out = []
for i in range(400):
    v = Fernet.generate_key().decode()
    for op in rng.sample(range(9), rng.randint(1, 3)):
        if op == 0:
            v = v.replace("-", "+").replace("_", "/")
        elif op == 1:
            for _ in range(rng.randint(1, 4)):
                p = rng.randint(0, len(v)); v = v[:p] + rng.choice(junk) + v[p:]
        elif op == 2:
            v += rng.choice(["", "=", "==", "x", "=abc", "\n", "AAAA"])
        elif op == 3:
            v = v.rstrip("=")
        elif op == 4:
            p = rng.randint(0, len(v)); v = v[:p] + "=" + v[p:]
        elif op == 5:
            p = rng.randrange(len(v)); v = v[:p] + v[p + 1:]
        elif op == 6:
            # Non-canonical trailing bits in the last data character.
            p = v.find("=")
            if p > 0:
                v = v[:p - 1] + rng.choice(alphabet) + v[p - 1 + 1:]
        elif op == 7:
            p = rng.randint(0, len(v)); v = v[:p] + rng.choice(alphabet) + v[p:]
        elif op == 8 and i % 25 == 0:
            p = rng.randint(0, len(v)); v = v[:p] + "\u00e9" + v[p:]
    try:
        token = Fernet(v).encrypt(b"probe").decode()
        out.append({"key": v, "ok": True, "token": token})
    except ValueError:
        out.append({"key": v, "ok": False})
print(json.dumps({"seed": seed, "cases": out}))
"#;

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_decrypts_the_records_the_fernet_suite_sealed() {
    if !common::python_has(&["cryptography"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vault.db");
    let backend = credvault::backend::SqliteBackend::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let vault = Vault::builder(
        Arc::new(backend),
        Keyring::generate().unwrap(),
        DirTenantKeys::create(dir.path().join("shred")).unwrap(),
    )
    .sealing_suite(SealingSuite::Fernet)
    .build();
    vault.migrate().await.unwrap();
    let acme = vault.tenant("acme").unwrap();
    let globex = vault.tenant("globex").unwrap();
    let token = OAuthToken {
        refresh_token: Some(SecretString::from("r-\u{1F511}-\"quoted\"")),
        scopes: vec!["repo".to_owned()],
        ..OAuthToken::bearer("github", SecretString::from("gho_python"))
    };
    acme.put("github", &token).await.unwrap();
    // A second data key version: Python needs both keys, current first.
    vault.rotate_dek("acme").await.unwrap();
    acme.put(
        "stripe",
        &ApiKey {
            provider: "stripe".to_owned(),
            key: SecretString::from("sk_live_python"),
            label: Some("billing".to_owned()),
        },
    )
    .await
    .unwrap();
    globex
        .put(
            "linkedin",
            &SessionCookies {
                provider: "linkedin".to_owned(),
                cookies: vec![Cookie {
                    name: "li_at".to_owned(),
                    value: SecretString::from("cookie-value"),
                    domain: ".linkedin.com".to_owned(),
                    path: "/".to_owned(),
                    expires_at: None,
                }],
            },
        )
        .await
        .unwrap();
    let mut keys = serde_json::Map::new();
    for t in ["acme", "globex"] {
        let export = vault.export_fernet_keys(t, "test:python").await.unwrap();
        let texts: Vec<Value> = export
            .keys
            .iter()
            .map(|k| Value::from(k.key.expose_secret()))
            .collect();
        keys.insert(t.to_owned(), Value::Array(texts));
    }
    assert_eq!(keys["acme"].as_array().unwrap().len(), 2);
    // Python reads the database file while the vault holds it open (WAL).
    let request = json!({ "db": db.display().to_string(), "keys": keys });
    let out = common::run_python(DECRYPT_FROM_DB, request.to_string().as_bytes());
    let rows: Vec<(String, String, String, Value)> = serde_json::from_slice(&out).unwrap();
    assert_eq!(rows.len(), 3);
    for (tenant, kind, name, record) in rows {
        let t = vault.tenant(&tenant).unwrap();
        let ours = match kind.as_str() {
            "oauth_token" => serde_json::to_value(t.get::<OAuthToken>(&name).await.unwrap().value),
            "api_key" => serde_json::to_value(t.get::<ApiKey>(&name).await.unwrap().value),
            "session_cookies" => {
                serde_json::to_value(t.get::<SessionCookies>(&name).await.unwrap().value)
            }
            other => panic!("unexpected kind {other}"),
        }
        .unwrap();
        assert_eq!(record, ours, "{tenant}/{kind}/{name}");
    }
}

#[test]
fn keys_python_accepts_are_accepted_and_the_same_key() {
    if !common::python_has(&["cryptography"]) {
        return;
    }
    let out = common::run_python(KEY_SPELLINGS, b"");
    let v: Value = serde_json::from_slice(&out).unwrap();
    let seed = &v["seed"];
    let cases = v["cases"].as_array().unwrap();
    let (mut accepted, mut refused) = (0, 0);
    for case in cases {
        let key = case["key"].as_str().unwrap();
        let ours = Fernet::new(key);
        if case["ok"].as_bool().unwrap() {
            accepted += 1;
            let f = ours
                .unwrap_or_else(|e| panic!("python accepts {key:?}, we refuse ({e}); seed {seed}"));
            let token = case["token"].as_str().unwrap();
            assert_eq!(
                f.decrypt(token).unwrap().expose_secret(),
                b"probe",
                "{key:?} is another key here; seed {seed}"
            );
        } else {
            refused += 1;
            assert!(
                ours.is_err(),
                "python refuses {key:?}, we accept it; seed {seed}"
            );
        }
    }
    // The spellings cover both outcomes.
    assert!(
        accepted > 50 && refused > 50,
        "{accepted} accepted, {refused} refused"
    );
}
