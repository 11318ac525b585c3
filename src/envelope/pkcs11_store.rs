//! Shred secrets in a PKCS#11 token (an HSM; SoftHSM2 in the tests) that several application
//! servers share.
//!
//! Each tenant has one secret-key object in the token (`CKK_GENERIC_SECRET`, 32 bytes, made by
//! the token with `CKM_GENERIC_SECRET_KEY_GEN`, sensitive and not extractable), labelled
//! `<label>/tenant/<tenant id>`. Its value never leaves the token: the tenant's shred secret
//! is an HMAC-SHA256 computed *in* the token with that object over
//! `"credvault shred secret v1\0" || tenant id`. [`TenantKeyStore`] hands the secret to the
//! vault (which derives record keys from it), so the derived secret is in the process's
//! memory while it is used and cached; what the token adds is that destroying the object
//! (purge) destroys the only way to compute it again, and that no backup of the host or of
//! the database holds it. SECURITY.md, "Shred secrets in a PKCS#11 token", says what that
//! promises and what not.
//!
//! The store's identity is a data object (`CKO_DATA`) labelled `<label>/store`, created by
//! [`Pkcs11TenantKeys::create`] (what `credvault vault init` calls); [`Pkcs11TenantKeys::open`]
//! refuses a token without it, and every call checks it again, as the directory and
//! PostgreSQL stores do.
//!
//! # Creating a tenant's object without a race
//!
//! PKCS#11 has no unique constraint and no compare-and-swap, and the processes sharing a
//! token may be on different hosts. A tenant's object is made in two steps, recorded in its
//! `CKA_ID` (state byte `P`ending or `C`ommitted, creation time, 16 random bytes):
//!
//! 1. if the label has a committed object, that is the tenant's; if it has a pending object
//!    made less than [`PENDING_TTL_SECS`] ago, someone else is creating it: wait and look
//!    again (older pending objects are left by crashed processes and deleted);
//! 2. otherwise make a pending object, then list the label again: if ours is the only
//!    object there, commit it (set its state to `C`) and use it; if any other object is
//!    there, delete ours, wait a random moment and start again.
//!
//! Two processes cannot both commit: each lists the label *after* making its object, and an
//! object is only deleted by the process that made it (before it could have been used) or
//! once it is a stale pending object. Nothing derived from a pending object is ever returned.
//! The only timing assumption is that a process commits its object within
//! [`PENDING_TTL_SECS`] of making it (milliseconds in practice), with the hosts' clocks within
//! a few seconds of each other. Two committed objects under one label (something outside
//! credvault made one) are an error, never a guess.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::envelope::TenantKeyStore;
use crate::envelope::shred::SHRED_SECRET_LEN;
use crate::keys::KeyError;
use crate::keys::pkcs11::{Pkcs11Config, logged_in_session, p11, unavailable};
use crate::{SecretBytes, TenantId};

/// How long a pending tenant object may live before other processes treat it as left by a
/// crashed process and delete it.
pub const PENDING_TTL_SECS: u64 = 10;

/// How long [`Pkcs11TenantKeys::get_or_create`] keeps trying before it reports contention.
const CREATE_DEADLINE: Duration = Duration::from_secs(3 * PENDING_TTL_SECS);

const DERIVE_LABEL: &[u8] = b"credvault shred secret v1\0";
const STORE_APPLICATION: &[u8] = b"credvault tenant-key store";
const PENDING: u8 = b'P';
const COMMITTED: u8 = b'C';

/// Shred secrets in a PKCS#11 token: one non-extractable secret-key object per tenant, the
/// secret computed from it inside the token (see the [module](self) documentation).
///
/// `config.key_label` is the store's label prefix (tenant objects are
/// `<key_label>/tenant/<tenant>`, the identity `<key_label>/store`): use a prefix of its own,
/// not the KEK's. Clones share one session.
#[derive(Clone)]
pub struct Pkcs11TenantKeys {
    inner: Arc<Inner>,
}

struct Inner {
    config: Pkcs11Config,
    /// The process-wide lock around object-store calls on this module (shared with
    /// [`Pkcs11Keys`](crate::keys::pkcs11::Pkcs11Keys)).
    objects: Arc<Mutex<()>>,
    session: Mutex<Session>,
    id: String,
}

impl fmt::Debug for Pkcs11TenantKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11TenantKeys")
            .field("token", &self.inner.config.token_label)
            .field("label", &self.inner.config.key_label)
            .finish_non_exhaustive()
    }
}

/// A tenant object as listed: its handle and what its `CKA_ID` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listed {
    handle: ObjectHandle,
    state: u8,
    created_at: u64,
    nonce: [u8; 16],
}

impl Pkcs11TenantKeys {
    /// Opens the store already in the token.
    ///
    /// # Errors
    ///
    /// [`KeyError::Store`] if the token holds no store under `config.key_label` (a mistyped
    /// label or token is never a fresh, empty store: [`create`](Self::create) makes one);
    /// [`KeyError::Invalid`] if the module cannot be loaded or no token has the label;
    /// [`KeyError::Denied`] if the token refuses the PIN; [`KeyError::Unavailable`] for
    /// another token failure.
    pub fn open(config: Pkcs11Config) -> Result<Self, KeyError> {
        let (session, objects) = logged_in_session(&config)?;
        let id = identity_locked(&objects, &session, &config)?.ok_or_else(|| KeyError::Store {
            place: place(&config),
            problem: "the token holds no credvault tenant-key store under this label (a \
                      mistyped token or label?); `credvault vault init` creates one"
                .to_owned(),
        })?;
        Ok(Self::from_parts(config, objects, session, id))
    }

    /// Creates the store in the token (its identity object), or opens the one already there.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn create(config: Pkcs11Config) -> Result<Self, KeyError> {
        let (session, objects) = logged_in_session(&config)?;
        if let Some(id) = identity_locked(&objects, &session, &config)? {
            return Ok(Self::from_parts(config, objects, session, id));
        }
        let mut raw = [0u8; 16];
        crate::crypto::try_fill_from_os_rng(&mut raw)?;
        let id = format!("pkcs11-{}", hex(&raw));
        {
            let _objects = lock(&objects)?;
            session
                .create_object(&[
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Modifiable(false),
                    Attribute::Label(store_label(&config).into_bytes()),
                    Attribute::Application(STORE_APPLICATION.to_vec()),
                    Attribute::Value(id.into_bytes()),
                ])
                .map_err(|e| p11(&e))?;
        }
        // Two `init`s at once: both read back the same (smallest) identity.
        let id = identity_locked(&objects, &session, &config)?.ok_or_else(|| KeyError::Store {
            place: place(&config),
            problem: "the store's identity object vanished".to_owned(),
        })?;
        Ok(Self::from_parts(config, objects, session, id))
    }

    fn from_parts(
        config: Pkcs11Config,
        objects: Arc<Mutex<()>>,
        session: Session,
        id: String,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                objects,
                session: Mutex::new(session),
                id,
            }),
        }
    }

    /// How many token objects the store holds for `tenant`, committed or pending: 1 for a
    /// tenant in use, 0 after [`destroy`](TenantKeyStore::destroy). For audits and tests.
    ///
    /// # Errors
    ///
    /// A token failure.
    pub fn object_count(&self, tenant: &TenantId) -> Result<usize, KeyError> {
        Ok(self.list(tenant)?.len())
    }

    /// Whether the value of `tenant`'s token object can be read out of the token (it must not:
    /// the object is sensitive and not extractable). For audits and tests; `Ok(false)` when
    /// the token refuses, or the tenant has no object.
    ///
    /// # Errors
    ///
    /// A token failure.
    pub fn object_value_readable(&self, tenant: &TenantId) -> Result<bool, KeyError> {
        let mut readable = false;
        for obj in self.list(tenant)? {
            let _objects = self.object_lock()?;
            match self
                .session()?
                .get_attributes(obj.handle, &[AttributeType::Value])
            {
                Ok(attrs) => {
                    readable |= attrs
                        .iter()
                        .any(|a| matches!(a, Attribute::Value(v) if !v.is_empty()));
                }
                Err(P11Error::Pkcs11(RvError::AttributeSensitive, _)) => {}
                Err(e) => return Err(p11(&e)),
            }
        }
        Ok(readable)
    }

    fn object_lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, KeyError> {
        lock(&self.inner.objects)
    }

    fn session(&self) -> Result<std::sync::MutexGuard<'_, Session>, KeyError> {
        self.inner
            .session
            .lock()
            .map_err(|_| unavailable("the PKCS#11 session is poisoned"))
    }

    fn error(&self, problem: impl Into<String>) -> KeyError {
        KeyError::Store {
            place: place(&self.inner.config),
            problem: problem.into(),
        }
    }

    /// The identity object is still there and still names this store (a token re-initialised
    /// or swapped under a running process is refused, never filled with new secrets).
    fn check(&self) -> Result<(), KeyError> {
        let _objects = self.object_lock()?;
        let session = self.session()?;
        match read_identity(&session, &self.inner.config)? {
            Some(id) if id == self.inner.id => Ok(()),
            Some(_) => Err(self.error("its identity object now names another store")),
            None => Err(self.error("its identity object is gone (token re-initialised?)")),
        }
    }

    /// The tenant's objects, committed or pending (objects deleted while being listed are
    /// left out; objects whose `CKA_ID` is not the store's are an error).
    fn list(&self, tenant: &TenantId) -> Result<Vec<Listed>, KeyError> {
        let _objects = self.object_lock()?;
        let session = self.session()?;
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(true),
            Attribute::Label(tenant_label(&self.inner.config, tenant).into_bytes()),
        ];
        let mut out = Vec::new();
        for handle in session.find_objects(&template).map_err(|e| p11(&e))? {
            let attrs = match session.get_attributes(handle, &[AttributeType::Id]) {
                Ok(attrs) => attrs,
                Err(P11Error::Pkcs11(RvError::ObjectHandleInvalid, _)) => continue,
                Err(e) => return Err(p11(&e)),
            };
            let id = attrs.into_iter().find_map(|a| match a {
                Attribute::Id(id) => Some(id),
                _ => None,
            });
            let listed = id.as_deref().and_then(|id| parse_id(handle, id));
            out.push(listed.ok_or_else(|| {
                self.error(format!(
                    "an object labelled for tenant {tenant} was not made by credvault"
                ))
            })?);
        }
        Ok(out)
    }

    /// The one committed object of the tenant, if any.
    fn committed(&self, tenant: &TenantId, listed: &[Listed]) -> Result<Option<Listed>, KeyError> {
        let mut committed = listed.iter().filter(|o| o.state == COMMITTED);
        match (committed.next(), committed.next()) {
            (None, _) => Ok(None),
            (Some(one), None) => Ok(Some(*one)),
            (Some(_), Some(_)) => Err(self.error(format!(
                "two committed objects for tenant {tenant}: something outside credvault made \
                 one; delete the one its records were not sealed with"
            ))),
        }
    }

    /// The shred secret: HMAC-SHA256 in the token with the tenant's object.
    fn derive(&self, tenant: &TenantId, obj: Listed) -> Result<SecretBytes, KeyError> {
        let mut data = DERIVE_LABEL.to_vec();
        data.extend_from_slice(tenant.as_str().as_bytes());
        let _objects = self.object_lock()?;
        let mac = self
            .session()?
            .sign(&Mechanism::Sha256Hmac, obj.handle, &data)
            .map_err(|e| p11(&e))?;
        if mac.len() != SHRED_SECRET_LEN {
            return Err(self.error("the token's HMAC has the wrong length"));
        }
        Ok(SecretBytes::new(mac))
    }

    /// Makes a pending object for `tenant`.
    fn make_pending(&self, tenant: &TenantId) -> Result<Listed, KeyError> {
        let mut nonce = [0u8; 16];
        crate::crypto::try_fill_from_os_rng(&mut nonce)?;
        let created_at = crate::keys::now_secs();
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Verify(false),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(tenant_label(&self.inner.config, tenant).into_bytes()),
            Attribute::Id(id_bytes(PENDING, created_at, &nonce)),
        ];
        let _objects = self.object_lock()?;
        let handle = self
            .session()?
            .generate_key(&Mechanism::GenericSecretKeyGen, &template)
            .map_err(|e| p11(&e))?;
        Ok(Listed {
            handle,
            state: PENDING,
            created_at,
            nonce,
        })
    }

    /// Deletes an object; one already gone is fine.
    fn delete(&self, handle: ObjectHandle) -> Result<(), KeyError> {
        let _objects = self.object_lock()?;
        match self.session()?.destroy_object(handle) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::ObjectHandleInvalid, _)) => Ok(()),
            Err(e) => Err(p11(&e)),
        }
    }

    /// Deletes a pending object left by a crashed process, if it is still that (read again
    /// under the lock: one committed meanwhile is kept).
    fn delete_stale(&self, obj: Listed) -> Result<(), KeyError> {
        let _objects = self.object_lock()?;
        let session = self.session()?;
        let now = session.get_attributes(obj.handle, &[AttributeType::Id]);
        let still = match now {
            Ok(attrs) => attrs
                .iter()
                .any(|a| matches!(a, Attribute::Id(id) if *id == id_bytes(obj.state, obj.created_at, &obj.nonce))),
            Err(P11Error::Pkcs11(RvError::ObjectHandleInvalid, _)) => false,
            Err(e) => return Err(p11(&e)),
        };
        if still {
            match session.destroy_object(obj.handle) {
                Ok(()) | Err(P11Error::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                Err(e) => return Err(p11(&e)),
            }
        }
        Ok(())
    }

    /// Commits our pending object; `false` if it is gone (deleted as stale: too slow).
    fn commit(&self, obj: Listed) -> Result<bool, KeyError> {
        let _objects = self.object_lock()?;
        match self.session()?.update_attributes(
            obj.handle,
            &[Attribute::Id(id_bytes(
                COMMITTED,
                obj.created_at,
                &obj.nonce,
            ))],
        ) {
            Ok(()) => Ok(true),
            Err(P11Error::Pkcs11(RvError::ObjectHandleInvalid, _)) => Ok(false),
            Err(e) => Err(p11(&e)),
        }
    }
}

impl TenantKeyStore for Pkcs11TenantKeys {
    fn get_or_create(&self, tenant: &TenantId) -> Result<SecretBytes, KeyError> {
        self.check()?;
        let deadline = Instant::now() + CREATE_DEADLINE;
        let mut round = 0u32;
        loop {
            let listed = self.list(tenant)?;
            if let Some(obj) = self.committed(tenant, &listed)? {
                return self.derive(tenant, obj);
            }
            let now = crate::keys::now_secs();
            let mut busy = false;
            for obj in &listed {
                if now.saturating_sub(obj.created_at) > PENDING_TTL_SECS {
                    self.delete_stale(*obj)?;
                } else {
                    busy = true;
                }
            }
            if !busy {
                let mine = self.make_pending(tenant)?;
                let after = self.list(tenant)?;
                if after.iter().all(|o| o.nonce == mine.nonce) {
                    if self.commit(mine)? {
                        return self.derive(tenant, mine);
                    }
                } else {
                    // Someone else is creating it too: step back, let one of us win.
                    self.delete(mine.handle)?;
                }
            }
            if Instant::now() > deadline {
                return Err(unavailable(&format!(
                    "PKCS#11 tenant-key store: could not create tenant {tenant}'s object within \
                     {}s (other processes kept creating it, or a pending object stayed)",
                    CREATE_DEADLINE.as_secs()
                )));
            }
            round = round.saturating_add(1);
            std::thread::sleep(backoff(round));
        }
    }

    fn get(&self, tenant: &TenantId) -> Result<Option<SecretBytes>, KeyError> {
        self.check()?;
        let listed = self.list(tenant)?;
        match self.committed(tenant, &listed)? {
            Some(obj) => self.derive(tenant, obj).map(Some),
            None => Ok(None),
        }
    }

    fn destroy(&self, tenant: &TenantId) -> Result<(), KeyError> {
        self.check()?;
        for obj in self.list(tenant)? {
            self.delete(obj.handle)?;
        }
        Ok(())
    }

    fn identity(&self) -> Result<String, KeyError> {
        self.check()?;
        Ok(self.inner.id.clone())
    }

    fn describe(&self) -> String {
        place(&self.inner.config)
    }
}

fn lock(objects: &Mutex<()>) -> Result<std::sync::MutexGuard<'_, ()>, KeyError> {
    objects
        .lock()
        .map_err(|_| unavailable("the PKCS#11 object lock is poisoned"))
}

fn place(config: &Pkcs11Config) -> String {
    format!(
        "PKCS#11 token {:?} (label {:?})",
        config.token_label, config.key_label
    )
}

fn store_label(config: &Pkcs11Config) -> String {
    format!("{}/store", config.key_label)
}

fn tenant_label(config: &Pkcs11Config, tenant: &TenantId) -> String {
    format!("{}/tenant/{}", config.key_label, tenant.as_str())
}

/// The store's identity, from its data object(s): the smallest if two `init`s raced. The
/// caller holds the object lock.
fn read_identity(session: &Session, config: &Pkcs11Config) -> Result<Option<String>, KeyError> {
    let template = [
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Label(store_label(config).into_bytes()),
    ];
    let mut ids = Vec::new();
    for handle in session.find_objects(&template).map_err(|e| p11(&e))? {
        let attrs = match session.get_attributes(handle, &[AttributeType::Value]) {
            Ok(attrs) => attrs,
            Err(P11Error::Pkcs11(RvError::ObjectHandleInvalid, _)) => continue,
            Err(e) => return Err(p11(&e)),
        };
        for attr in attrs {
            if let Attribute::Value(v) = attr {
                let id = String::from_utf8(v)
                    .ok()
                    .filter(|id| id.starts_with("pkcs11-"));
                ids.push(id.ok_or_else(|| KeyError::Store {
                    place: place(config),
                    problem: "its identity object is not credvault's".to_owned(),
                })?);
            }
        }
    }
    Ok(ids.into_iter().min())
}

/// [`read_identity`], taking the object lock.
fn identity_locked(
    objects: &Mutex<()>,
    session: &Session,
    config: &Pkcs11Config,
) -> Result<Option<String>, KeyError> {
    let _objects = lock(objects)?;
    read_identity(session, config)
}

/// `CKA_ID` of a tenant object: state, creation time (8 bytes, big-endian), nonce.
fn id_bytes(state: u8, created_at: u64, nonce: &[u8; 16]) -> Vec<u8> {
    let mut id = Vec::with_capacity(25);
    id.push(state);
    id.extend_from_slice(&created_at.to_be_bytes());
    id.extend_from_slice(nonce);
    id
}

fn parse_id(handle: ObjectHandle, id: &[u8]) -> Option<Listed> {
    let (&state, rest) = id.split_first()?;
    if id.len() != 25 || (state != PENDING && state != COMMITTED) {
        return None;
    }
    let created_at = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let nonce = rest.get(8..)?.try_into().ok()?;
    Some(Listed {
        handle,
        state,
        created_at,
        nonce,
    })
}

/// A random wait, growing with the round (1-8 ms, up to 1-64 ms).
fn backoff(round: u32) -> Duration {
    let mut b = [0u8; 1];
    crate::crypto::fill_from_os_rng(&mut b);
    let span = 8u64 << round.min(3);
    Duration::from_millis(1 + u64::from(b[0]) % span)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
