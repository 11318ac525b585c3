//! Issue 16, item 3 (second half): shred secrets in a PKCS#11 token (SoftHSM2 here), one
//! non-extractable token object per tenant. The store fails closed as the directory and
//! PostgreSQL stores do (no identity object, no fresh start), two sessions see the same
//! secrets, concurrent creation from two sessions and many threads makes exactly one object
//! per tenant and hands everyone the same secret, and a purge through it leaves a copy of the
//! vault's database taken before the purge unreadable for the purged tenant. Two cases need
//! a second process (SoftHSM2 keeps one login per process, and a crash leaves its objects
//! behind): this test binary is run again as a child with `CREDVAULT_P11_CHILD` set, to try a
//! wrong PIN as its first login and to leave a pending tenant object the way a process killed
//! between making and committing it does.
//!
//! Needs SoftHSM2 (`apt-get install softhsm2`): without it the tests say so and pass, unless
//! `CREDVAULT_REQUIRE_PKCS11=1` (CI sets it). The token lives in a temporary directory.

#![cfg(all(feature = "pkcs11", feature = "sqlite"))]
#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

#[path = "common/backup_copy.rs"]
mod backup_copy;
#[path = "common/softhsm.rs"]
mod softhsm;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use backup_copy::BackupFixture;

use credvault::envelope::pkcs11_store::PENDING_TTL_SECS;
use credvault::envelope::{Pkcs11TenantKeys, TenantKeyStore};
use credvault::keys::KeyError;
use credvault::keys::pkcs11::{Pkcs11Config, Pkcs11Keys};
use credvault::store::OAuthToken;
use credvault::{SecretString, TenantId};

const TOKEN: &str = "credvault-shred";
const PIN: &str = "1234";
const T0: i64 = 1_763_856_000;
/// Set in a child process: what it does (see [`p11_child`]).
const CHILD: &str = "CREDVAULT_P11_CHILD";

/// The module and a token initialised in a temporary directory, once per test process.
fn module() -> Option<PathBuf> {
    static MODULE: OnceLock<Option<PathBuf>> = OnceLock::new();
    MODULE
        .get_or_init(|| {
            let required = std::env::var("CREDVAULT_REQUIRE_PKCS11").as_deref() == Ok("1");
            let Some(module) = softhsm::module() else {
                assert!(
                    !required,
                    "CREDVAULT_REQUIRE_PKCS11=1 but SoftHSM2 is missing (the module or \
                     softhsm2-util)"
                );
                eprintln!(
                    "skipping the PKCS#11 tenant-key tests: SoftHSM2 is not installed \
                     (apt-get install softhsm2, or set CREDVAULT_PKCS11_MODULE)"
                );
                return None;
            };
            softhsm::init_token(TOKEN, PIN);
            Some(module)
        })
        .clone()
}

fn config(module: PathBuf, label: &str) -> Pkcs11Config {
    Pkcs11Config {
        module,
        token_label: TOKEN.to_owned(),
        pin: SecretString::from(PIN),
        key_label: label.to_owned(),
    }
}

fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

#[test]
fn a_token_without_the_store_is_an_error_never_a_fresh_start() {
    let Some(module) = module() else { return };
    let err = Pkcs11TenantKeys::open(config(module.clone(), "never-made")).unwrap_err();
    assert!(matches!(err, KeyError::Store { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("holds no credvault tenant-key store"),
        "{err}"
    );
    let wrong_token = Pkcs11Config {
        token_label: "no-such-token".to_owned(),
        ..config(module.clone(), "made")
    };
    let err = Pkcs11TenantKeys::create(wrong_token).unwrap_err();
    assert!(matches!(err, KeyError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("no token labelled"), "{err}");
    // A wrong PIN: `a_wrong_pin_is_denied_and_never_shown` (it needs a process of its own).

    let made = Pkcs11TenantKeys::create(config(module.clone(), "made")).unwrap();
    let opened = Pkcs11TenantKeys::open(config(module.clone(), "made")).unwrap();
    let again = Pkcs11TenantKeys::create(config(module.clone(), "made")).unwrap();
    assert_eq!(made.identity().unwrap(), opened.identity().unwrap());
    assert_eq!(
        made.identity().unwrap(),
        again.identity().unwrap(),
        "create opens"
    );
    let other = Pkcs11TenantKeys::create(config(module, "other")).unwrap();
    assert_ne!(made.identity().unwrap(), other.identity().unwrap());
    let shown = format!("{made:?} {}", made.describe());
    assert!(!shown.contains(PIN), "{shown}");
    assert!(shown.contains(TOKEN) && shown.contains("made"), "{shown}");
}

#[test]
fn the_store_keeps_one_unreadable_object_per_tenant() {
    let Some(module) = module() else { return };
    let one = Pkcs11TenantKeys::create(config(module.clone(), "contract")).unwrap();
    // Another session on the same token: another server.
    let two = Pkcs11TenantKeys::open(config(module, "contract")).unwrap();
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    assert_eq!(one.get(&acme).unwrap(), None);
    let secret = one.get_or_create(&acme).unwrap();
    assert_eq!(secret.expose_secret().len(), 32);
    assert_eq!(one.get_or_create(&acme).unwrap(), secret, "created once");
    assert_eq!(two.get(&acme).unwrap(), Some(secret.clone()));
    assert_eq!(two.get_or_create(&acme).unwrap(), secret);
    let other = two.get_or_create(&globex).unwrap();
    assert_ne!(other, secret, "each tenant has its own secret");
    assert_eq!(one.object_count(&acme).unwrap(), 1);
    assert!(
        !one.object_value_readable(&acme).unwrap(),
        "the token handed out the tenant object's value"
    );

    two.destroy(&acme).unwrap();
    assert_eq!(one.get(&acme).unwrap(), None);
    assert_eq!(one.object_count(&acme).unwrap(), 0);
    two.destroy(&acme).unwrap();
    one.destroy(&acme).unwrap();
    assert_eq!(one.get(&globex).unwrap(), Some(other), "others untouched");
    let fresh = one.get_or_create(&acme).unwrap();
    assert_ne!(fresh, secret, "a destroyed secret never comes back");
}

#[test]
fn concurrent_creation_on_two_sessions_makes_one_object_per_tenant() {
    let Some(module) = module() else { return };
    let stores = [
        Arc::new(Pkcs11TenantKeys::create(config(module.clone(), "race")).unwrap()),
        Arc::new(Pkcs11TenantKeys::open(config(module, "race")).unwrap()),
    ];
    let tenants: Vec<TenantId> = (0..12).map(|i| tenant(&format!("race-{i}"))).collect();
    let threads = 6;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = Arc::clone(&stores[t % 2]);
            let (barrier, tenants) = (Arc::clone(&barrier), tenants.clone());
            std::thread::spawn(move || {
                barrier.wait();
                tenants
                    .iter()
                    .map(|id| store.get_or_create(id).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<Vec<_>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, id) in tenants.iter().enumerate() {
        let seen: BTreeSet<Vec<u8>> = results
            .iter()
            .map(|r| r[i].expose_secret().to_vec())
            .collect();
        assert_eq!(seen.len(), 1, "tenant {id}: threads got different secrets");
        assert_eq!(stores[0].object_count(id).unwrap(), 1, "tenant {id}");
        assert_eq!(
            stores[1].get(id).unwrap().unwrap().expose_secret(),
            seen.first().unwrap().as_slice()
        );
    }
}

#[tokio::test]
async fn purge_through_it_leaves_an_older_copy_of_the_database_unreadable() {
    let Some(module) = module() else { return };
    let store = Arc::new(
        tokio::task::spawn_blocking(move || {
            Pkcs11TenantKeys::create(config(module, "purge")).unwrap()
        })
        .await
        .unwrap(),
    );
    let f = BackupFixture::new(Arc::clone(&store), T0);
    let vault = f.seeded().await;
    vault.check_keys().await.unwrap();
    // A backup of the vault's database taken before the purge.
    let copy = f.backup("backup.db").await;
    // The copy opens today, before the purge.
    let before = f.open(&copy).await;
    before
        .tenant("acme")
        .unwrap()
        .get::<OAuthToken>("github")
        .await
        .unwrap();

    vault.delete_tenant("acme", "admin").await.unwrap();
    f.clock.advance(Duration::from_secs(31 * 86_400));
    let report = vault.purge().await.unwrap();
    assert_eq!(report.tenants, vec![tenant("acme")]);
    assert_eq!(store.object_count(&tenant("acme")).unwrap(), 0);

    // The old copy, with the same KEK and store: acme is gone for good, globex is not.
    f.assert_only_acme_shredded(&copy).await;
}

/// Runs this test binary again as a child doing `mode` (its environment, with the token's
/// `SOFTHSM2_CONF`, is inherited); returns what it printed.
fn run_child(mode: &str, args: &[(&str, String)]) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "p11_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .envs(args.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child {mode} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Not a test of its own: the child process of the tests below. Does nothing unless
/// `CREDVAULT_P11_CHILD` is set.
#[test]
fn p11_child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let module = softhsm::module().unwrap();
    let label = std::env::var("CREDVAULT_P11_LABEL").unwrap();
    match mode.as_str() {
        "wrong-pin" => {
            let wrong = Pkcs11Config {
                pin: SecretString::from("0000"),
                ..config(module, &label)
            };
            let store = Pkcs11TenantKeys::create(wrong.clone()).map(drop);
            let kek = Pkcs11Keys::init(wrong).map(drop);
            for (what, result) in [("store", store), ("kek", kek)] {
                match result {
                    Ok(()) => println!("RESULT {what} accepted"),
                    Err(KeyError::Denied(msg)) => println!("RESULT {what} denied: {msg}"),
                    Err(other) => println!("RESULT {what} other: {other:?}"),
                }
            }
        }
        "leave-pending" => {
            use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
            use cryptoki::mechanism::Mechanism;
            use cryptoki::object::{Attribute, KeyType, ObjectClass};
            use cryptoki::session::UserType;
            use cryptoki::types::AuthPin;
            let tenant = std::env::var("CREDVAULT_P11_TENANT").unwrap();
            let age: u64 = std::env::var("CREDVAULT_P11_AGE").unwrap().parse().unwrap();
            let ctx = Pkcs11::new(&module).unwrap();
            ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
                .unwrap();
            let slot = ctx
                .get_slots_with_token()
                .unwrap()
                .into_iter()
                .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == TOKEN)
                .unwrap();
            let session = ctx.open_rw_session(slot).unwrap();
            session
                .login(UserType::User, Some(&AuthPin::from(PIN)))
                .unwrap();
            // What `make_pending` writes: state `P`, creation time (big-endian seconds), nonce.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let mut id = vec![b'P'];
            id.extend_from_slice(&(now - age).to_be_bytes());
            id.extend_from_slice(&[0x5a; 16]);
            session
                .generate_key(
                    &Mechanism::GenericSecretKeyGen,
                    &[
                        Attribute::Class(ObjectClass::SECRET_KEY),
                        Attribute::KeyType(KeyType::GENERIC_SECRET),
                        Attribute::ValueLen(32.into()),
                        Attribute::Token(true),
                        Attribute::Private(true),
                        Attribute::Sensitive(true),
                        Attribute::Extractable(false),
                        Attribute::Sign(true),
                        Attribute::Label(format!("{label}/tenant/{tenant}").into_bytes()),
                        Attribute::Id(id),
                    ],
                )
                .unwrap();
            println!("LEFT");
            // Gone without committing, logging out or finalizing: as if killed here.
            std::process::exit(0);
        }
        other => panic!("{CHILD}={other}"),
    }
}

#[test]
fn a_wrong_pin_is_denied_and_never_shown() {
    let Some(module) = module() else { return };
    // The store exists: the PIN is the only thing wrong.
    drop(Pkcs11TenantKeys::create(config(module, "pin-check")).unwrap());
    let out = run_child(
        "wrong-pin",
        &[("CREDVAULT_P11_LABEL", "pin-check".to_owned())],
    );
    assert!(!out.contains("0000"), "the PIN leaked: {out}");
    for what in ["store", "kek"] {
        // (libtest may print its own "test p11_child ... " in front of the first line)
        let tag = format!("RESULT {what} ");
        let line = out
            .lines()
            .find_map(|l| l.find(&tag).map(|at| &l[at..]))
            .unwrap_or_else(|| panic!("no result for {what}: {out}"));
        assert!(
            line.starts_with(&format!("RESULT {what} denied: "))
                && line.contains("refused the user PIN"),
            "a wrong PIN must be KeyError::Denied (retrying cannot help): {line}"
        );
    }
}

/// Leaves a pending object for `tenant` under `label`, made `age` seconds ago, from a child
/// process that exits without committing it.
fn leave_pending(label: &str, tenant: &str, age: u64) {
    let out = run_child(
        "leave-pending",
        &[
            ("CREDVAULT_P11_LABEL", label.to_owned()),
            ("CREDVAULT_P11_TENANT", tenant.to_owned()),
            ("CREDVAULT_P11_AGE", age.to_string()),
        ],
    );
    assert!(out.contains("LEFT"), "{out}");
}

#[test]
fn a_pending_object_left_by_a_crashed_process_is_cleared_and_a_young_one_waited_for() {
    let Some(module) = module() else { return };
    let store = Pkcs11TenantKeys::create(config(module, "crashed")).unwrap();

    // Older than the TTL: left by a process that died between making and committing it.
    let stale = tenant("left-behind");
    leave_pending("crashed", "left-behind", PENDING_TTL_SECS + 5);
    assert_eq!(
        store.object_count(&stale).unwrap(),
        1,
        "the child's object is in the token"
    );
    assert_eq!(
        store.get(&stale).unwrap(),
        None,
        "nothing is derived from a pending object"
    );
    let started = Instant::now();
    let secret = store.get_or_create(&stale).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(PENDING_TTL_SECS),
        "a stale object is deleted at once, not waited for"
    );
    assert_eq!(
        store.object_count(&stale).unwrap(),
        1,
        "the stale object was replaced by one committed object"
    );
    assert_eq!(store.get(&stale).unwrap(), Some(secret.clone()));
    assert_eq!(store.get_or_create(&stale).unwrap(), secret);

    // Younger than the TTL: another process may be about to commit it. It is waited for (not
    // deleted, not used); once it is stale, it is cleared and the tenant's object made.
    let young = tenant("being-made");
    leave_pending("crashed", "being-made", 0);
    let started = Instant::now();
    let secret = store.get_or_create(&young).unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(PENDING_TTL_SECS - 1),
        "a young pending object was not waited for ({:?})",
        started.elapsed()
    );
    assert_eq!(store.object_count(&young).unwrap(), 1);
    assert_eq!(store.get(&young).unwrap(), Some(secret));
}
