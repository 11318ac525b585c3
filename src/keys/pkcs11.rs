//! A key provider whose KEK never leaves a PKCS#11 token (an HSM; SoftHSM2 in the tests).
//!
//! Each KEK version is one AES-256 secret-key object in the token, created by the token
//! (`CKM_AES_KEY_GEN`), sensitive and not extractable: no call can read its value. Its label
//! is `<key_label>/v<version>`, and its `CKA_ID` holds the version and its creation time
//! (4 + 8 bytes, big-endian). Wrapping and unwrapping a data key run inside the token with
//! `CKM_AES_GCM`: the output is the vault's sealed format v1 (ARCHITECTURE.md, "Sealed
//! record"), header and context as the associated data, exactly as a key file's KEK makes it,
//! so a wrapped DEK says which version wraps it and is bound to its tenant and DEK version.
//! The fingerprint the vault records (ARCHITECTURE.md, "Key identity") is an AES-CMAC computed
//! in the token over `"credvault kek fingerprint v1"` and the version.
//!
//! The highest version in the token is the primary; [`Pkcs11Keys::rotate`] creates the next,
//! [`Pkcs11Keys::destroy`] deletes an old one from the token (through
//! [`Vault::destroy_kek_with`](crate::Vault::destroy_kek_with), which first checks that no
//! data key needs it). A version below the primary that is not in the token was destroyed.
//! Several processes may share the token: [`KeyProvider::reload`] sees versions another one
//! created. Opening a token without keys is an error ([`Pkcs11Keys::init`] creates the first).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;

use crate::crypto::{Context, CryptoError, aead};
use crate::keys::{KeyError, KeyInfo, KeyProvider, KeyState};
use crate::{KeyVersion, SecretBytes, SecretString};

/// Where the KEK lives: the token's module, the token, its user PIN and the keys' label.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The label of the token holding the keys.
    pub token_label: String,
    /// The token's user PIN.
    pub pin: SecretString,
    /// The label prefix of the KEK objects: version `n` is `<key_label>/v<n>`.
    pub key_label: String,
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"[redacted]")
            .field("key_label", &self.key_label)
            .finish()
    }
}

/// One KEK version in the token.
#[derive(Debug, Clone, Copy)]
struct Version {
    handle: ObjectHandle,
    created_at: u64,
}

struct Inner {
    config: Pkcs11Config,
    /// Held for every call that reads or changes the token's object store (SoftHSM2 fails
    /// such calls made at once from two sessions of one process with CKR_GENERAL_ERROR).
    objects: Arc<Mutex<()>>,
    session: Mutex<Session>,
    versions: RwLock<BTreeMap<KeyVersion, Version>>,
}

/// The KEK in a PKCS#11 token: a [`KeyProvider`] that wraps and unwraps inside the token.
/// Clones share the session: keep one for [`rotate`](Self::rotate) and
/// [`destroy`](Self::destroy) after handing one to the vault.
#[derive(Clone)]
pub struct Pkcs11Keys {
    inner: Arc<Inner>,
}

impl fmt::Debug for Pkcs11Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Keys")
            .field("token", &self.inner.config.token_label)
            .field("key_label", &self.inner.config.key_label)
            .finish_non_exhaustive()
    }
}

/// The module's context, initialised once per process (PKCS#11 allows one `C_Initialize`),
/// and the lock its sessions take around object-store calls.
pub(crate) fn context(module: &PathBuf) -> Result<(Pkcs11, Arc<Mutex<()>>), KeyError> {
    type Contexts = BTreeMap<PathBuf, (Pkcs11, Arc<Mutex<()>>)>;
    static CONTEXTS: OnceLock<Mutex<Contexts>> = OnceLock::new();
    let mut contexts = CONTEXTS
        .get_or_init(|| Mutex::new(BTreeMap::new()))
        .lock()
        .map_err(|_| unavailable("the PKCS#11 context list is poisoned"))?;
    if let Some((ctx, lock)) = contexts.get(module) {
        return Ok((ctx.clone(), Arc::clone(lock)));
    }
    let ctx = Pkcs11::new(module).map_err(|e| KeyError::Invalid {
        source_name: module.display().to_string(),
        problem: format!("cannot load the PKCS#11 module: {e}"),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(p11(&e)),
    }
    let lock = Arc::new(Mutex::new(()));
    contexts.insert(module.clone(), (ctx.clone(), Arc::clone(&lock)));
    Ok((ctx, lock))
}

pub(crate) fn unavailable(problem: &str) -> KeyError {
    KeyError::Unavailable(problem.to_owned())
}

/// A token error (its return code and function; never key bytes).
pub(crate) fn p11(e: &P11Error) -> KeyError {
    KeyError::Unavailable(format!("PKCS#11: {e}"))
}

const FINGERPRINT_LABEL: &[u8] = b"credvault kek fingerprint v1";

impl Pkcs11Keys {
    /// Opens the KEK versions already in the token.
    ///
    /// # Errors
    ///
    /// [`KeyError::Invalid`] if the module cannot be loaded, no token has the label, or the
    /// token holds no key under `key_label` (a missing key is never a fresh start: see
    /// [`init`](Self::init)); [`KeyError::Denied`] if the token refuses the PIN (wrong,
    /// expired, locked: retrying cannot help); [`KeyError::Unavailable`] for another token
    /// failure.
    pub fn open(config: Pkcs11Config) -> Result<Self, KeyError> {
        let keys = Self::connect(config)?;
        if keys.inner.versions.read().map_or(true, |v| v.is_empty()) {
            return Err(keys.invalid("the token holds no key with this label: run init first"));
        }
        Ok(keys)
    }

    /// Creates the first KEK version in the token and opens it.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); [`KeyError::Invalid`] if the token already holds keys under
    /// `key_label` (open them instead).
    pub fn init(config: Pkcs11Config) -> Result<Self, KeyError> {
        let keys = Self::connect(config)?;
        if keys.inner.versions.read().map_or(true, |v| !v.is_empty()) {
            return Err(keys.invalid("the token already holds keys with this label: open them"));
        }
        keys.create(KeyVersion::FIRST)?;
        Ok(keys)
    }

    fn connect(config: Pkcs11Config) -> Result<Self, KeyError> {
        let (session, objects) = logged_in_session(&config)?;
        let versions = {
            let _objects = objects
                .lock()
                .map_err(|_| unavailable("the PKCS#11 object lock is poisoned"))?;
            scan(&session, &config.key_label)?
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                objects,
                session: Mutex::new(session),
                versions: RwLock::new(versions),
            }),
        })
    }

    /// Creates the next KEK version in the token; it becomes the primary.
    ///
    /// # Errors
    ///
    /// [`KeyError::VersionsExhausted`]; a token failure.
    pub fn rotate(&self) -> Result<KeyVersion, KeyError> {
        self.reload()?;
        let next = self
            .primary_version()
            .get()
            .checked_add(1)
            .map(KeyVersion::new)
            .ok_or(KeyError::VersionsExhausted(self.primary_version()))?;
        self.create(next)?;
        Ok(next)
    }

    /// Deletes KEK version `version` from the token. Use
    /// [`Vault::destroy_kek_with`](crate::Vault::destroy_kek_with), which refuses while any
    /// data key is wrapped under it.
    ///
    /// # Errors
    ///
    /// [`KeyError::IsPrimary`] for the primary; [`KeyError::UnknownVersion`] if the token does
    /// not have it; a token failure.
    pub fn destroy(&self, version: KeyVersion) -> Result<(), KeyError> {
        self.reload()?;
        if version == self.primary_version() {
            return Err(KeyError::IsPrimary(version));
        }
        let handle = self.handle(version)?;
        let _objects = self.object_lock()?;
        self.session()?
            .destroy_object(handle)
            .map_err(|e| p11(&e))?;
        if let Ok(mut v) = self.inner.versions.write() {
            v.remove(&version);
        }
        Ok(())
    }

    fn create(&self, version: KeyVersion) -> Result<(), KeyError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut id = version.get().to_be_bytes().to_vec();
        id.extend_from_slice(&now.to_be_bytes());
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Sign(true),
            Attribute::Verify(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Label(label(&self.inner.config.key_label, version).into_bytes()),
            Attribute::Id(id),
        ];
        let _objects = self.object_lock()?;
        let handle = self
            .session()?
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(|e| p11(&e))?;
        if let Ok(mut v) = self.inner.versions.write() {
            v.insert(
                version,
                Version {
                    handle,
                    created_at: now,
                },
            );
        }
        Ok(())
    }

    fn object_lock(&self) -> Result<std::sync::MutexGuard<'_, ()>, KeyError> {
        self.inner
            .objects
            .lock()
            .map_err(|_| unavailable("the PKCS#11 object lock is poisoned"))
    }

    fn session(&self) -> Result<std::sync::MutexGuard<'_, Session>, KeyError> {
        self.inner
            .session
            .lock()
            .map_err(|_| unavailable("the PKCS#11 session is poisoned"))
    }

    /// The token object of `version`, or why there is none.
    fn handle(&self, version: KeyVersion) -> Result<ObjectHandle, KeyError> {
        let versions = self
            .inner
            .versions
            .read()
            .map_err(|_| unavailable("the PKCS#11 key list is poisoned"))?;
        if let Some(v) = versions.get(&version) {
            return Ok(v.handle);
        }
        match versions.keys().next_back() {
            Some(primary) if version < *primary => Err(KeyError::Destroyed(version)),
            _ => Err(KeyError::UnknownVersion(version)),
        }
    }

    fn invalid(&self, problem: &str) -> KeyError {
        KeyError::Invalid {
            source_name: self.describe(),
            problem: problem.to_owned(),
        }
    }
}

/// A read-write session on the token `config` names, logged in as its user, and the lock its
/// process takes around object-store calls on that module.
pub(crate) fn logged_in_session(
    config: &Pkcs11Config,
) -> Result<(Session, Arc<Mutex<()>>), KeyError> {
    let (ctx, objects) = context(&config.module)?;
    let _objects = objects
        .lock()
        .map_err(|_| unavailable("the PKCS#11 object lock is poisoned"))?;
    let slot = find_slot(&ctx, config)?;
    let session = ctx.open_rw_session(slot).map_err(|e| p11(&e))?;
    let pin = cryptoki::types::AuthPin::from(config.pin.expose_secret());
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        // A PIN the token refuses is configuration, not an outage: retrying cannot help.
        Err(
            e @ P11Error::Pkcs11(
                RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinExpired
                | RvError::PinLocked
                | RvError::UserPinNotInitialized,
                _,
            ),
        ) => {
            return Err(KeyError::Denied(format!(
                "PKCS#11: the token {:?} refused the user PIN ({e})",
                config.token_label
            )));
        }
        Err(e) => return Err(p11(&e)),
    }
    drop(_objects);
    Ok((session, objects))
}

fn label(prefix: &str, version: KeyVersion) -> String {
    format!("{prefix}/v{}", version.get())
}

fn find_slot(ctx: &Pkcs11, config: &Pkcs11Config) -> Result<Slot, KeyError> {
    for slot in ctx.get_slots_with_token().map_err(|e| p11(&e))? {
        let info = ctx.get_token_info(slot).map_err(|e| p11(&e))?;
        if info.label().trim_end() == config.token_label {
            return Ok(slot);
        }
    }
    Err(KeyError::Invalid {
        source_name: config.module.display().to_string(),
        problem: format!("no token labelled {:?}", config.token_label),
    })
}

/// The KEK versions in the token under `prefix`.
fn scan(session: &Session, prefix: &str) -> Result<BTreeMap<KeyVersion, Version>, KeyError> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Token(true),
    ];
    let mut out = BTreeMap::new();
    for handle in session.find_objects(&template).map_err(|e| p11(&e))? {
        let attrs = session
            .get_attributes(handle, &[AttributeType::Label, AttributeType::Id])
            .map_err(|e| p11(&e))?;
        let (mut name, mut id) = (Vec::new(), Vec::new());
        for attr in attrs {
            match attr {
                Attribute::Label(l) => name = l,
                Attribute::Id(i) => id = i,
                _ => {}
            }
        }
        let Some(version) = String::from_utf8(name)
            .ok()
            .and_then(|n| n.strip_prefix(&format!("{prefix}/v"))?.parse::<u32>().ok())
        else {
            continue;
        };
        let created_at = id
            .get(4..12)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_be_bytes);
        out.insert(KeyVersion::new(version), Version { handle, created_at });
    }
    Ok(out)
}

impl KeyProvider for Pkcs11Keys {
    fn primary_version(&self) -> KeyVersion {
        self.inner
            .versions
            .read()
            .ok()
            .and_then(|v| v.keys().next_back().copied())
            .unwrap_or(KeyVersion::FIRST)
    }

    fn wrap_key(&self, key: &SecretBytes, context: &Context) -> Result<Vec<u8>, KeyError> {
        let version = self.primary_version();
        let handle = self.handle(version)?;
        let session = self.session()?;
        aead::seal_with(
            version,
            key.expose_secret(),
            context,
            |nonce, aad, plain| {
                let mut iv = *nonce;
                let params = GcmParams::new(&mut iv, aad, 128.into()).map_err(|e| p11(&e))?;
                session
                    .encrypt(&Mechanism::AesGcm(params), handle, plain)
                    .map_err(|e| p11(&e))
            },
        )?
    }

    fn unwrap_key(&self, wrapped: &[u8], context: &Context) -> Result<SecretBytes, KeyError> {
        let version = crate::crypto::format::parse(wrapped)?.header.key_version;
        let handle = self.handle(version)?;
        let session = self.session()?;
        aead::open_with(wrapped, context, |nonce, aad, body| {
            let mut iv = *nonce;
            let params = GcmParams::new(&mut iv, aad, 128.into()).map_err(|e| p11(&e))?;
            match session.decrypt(&Mechanism::AesGcm(params), handle, body) {
                Ok(plain) => Ok(SecretBytes::new(plain)),
                // A wrong key, context or altered bytes: the tag does not verify.
                Err(P11Error::Pkcs11(
                    RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange,
                    _,
                )) => Err(KeyError::Crypto(CryptoError::DecryptionFailed)),
                // Some tokens (SoftHSM2) answer a tag that does not verify with a general
                // failure: if the token still answers, it was the data, not the token.
                Err(P11Error::Pkcs11(RvError::GeneralError | RvError::FunctionFailed, _))
                    if session.get_session_info().is_ok() =>
                {
                    Err(KeyError::Crypto(CryptoError::DecryptionFailed))
                }
                Err(e) => Err(p11(&e)),
            }
        })?
    }

    fn key_infos(&self) -> Vec<KeyInfo> {
        let Ok(versions) = self.inner.versions.read() else {
            return Vec::new();
        };
        let primary = versions.keys().next_back().copied();
        versions
            .iter()
            .map(|(version, v)| KeyInfo {
                version: *version,
                state: if Some(*version) == primary {
                    KeyState::Primary
                } else {
                    KeyState::DecryptOnly
                },
                created_at: v.created_at,
                below_minimum: false,
            })
            .collect()
    }

    fn fingerprint(&self, version: KeyVersion) -> Result<Option<String>, KeyError> {
        let handle = match self.handle(version) {
            Ok(handle) => handle,
            Err(KeyError::Destroyed(_) | KeyError::UnknownVersion(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut data = FINGERPRINT_LABEL.to_vec();
        data.extend_from_slice(&version.get().to_be_bytes());
        let mac = self
            .session()?
            .sign(&Mechanism::AesCMac, handle, &data)
            .map_err(|e| p11(&e))?;
        Ok(Some(mac.iter().map(|b| format!("{b:02x}")).collect()))
    }

    fn reload(&self) -> Result<bool, KeyError> {
        let found = {
            let _objects = self.object_lock()?;
            scan(&*self.session()?, &self.inner.config.key_label)?
        };
        let mut versions = self
            .inner
            .versions
            .write()
            .map_err(|_| unavailable("the PKCS#11 key list is poisoned"))?;
        let changed = found.keys().ne(versions.keys());
        *versions = found;
        Ok(changed)
    }

    fn describe(&self) -> String {
        format!(
            "PKCS#11 token {:?} (keys {:?})",
            self.inner.config.token_label, self.inner.config.key_label
        )
    }
}

/// Whether `value` can be read out of the token for KEK `version` (it must not): for tests and
/// audits. `Ok(false)` when the token refuses, as it must for a sensitive, non-extractable key.
///
/// # Errors
///
/// [`KeyError::UnknownVersion`] / [`KeyError::Destroyed`]; a token failure.
pub fn key_value_readable(keys: &Pkcs11Keys, version: KeyVersion) -> Result<bool, KeyError> {
    let handle = keys.handle(version)?;
    let session = keys.session()?;
    match session.get_attributes(handle, &[AttributeType::Value]) {
        Ok(attrs) => Ok(attrs
            .iter()
            .any(|a| matches!(a, Attribute::Value(v) if !v.is_empty()))),
        Err(P11Error::Pkcs11(RvError::AttributeSensitive, _)) => Ok(false),
        Err(e) => Err(p11(&e)),
    }
}
