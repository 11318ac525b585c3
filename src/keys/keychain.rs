//! A key provider whose keyring lives in the operating system's secret store (feature
//! `os-keychain`): the macOS Keychain, the Windows Credential Manager, or the Linux kernel's
//! keyutils, through the [`keyring`](https://docs.rs/keyring/3) crate's native backends.
//!
//! The entry (service and account chosen by the application) holds the keyring as key file
//! JSON ([`file`](mod@crate::keys::file)): every KEK version with its state. credvault never
//! writes it to disk. On Linux the entry is a kernel keyutils key in the user's keyring
//! (shared by the user's processes, in kernel memory only: it does not survive a reboot;
//! README, "Desktop mode", says what a Linux desktop uses instead).
//!
//! As with key files, a missing key is an error, never a silent fresh start: [`open`] refuses
//! a missing entry ([`KeyError::KeychainMissing`]), and only [`create`] makes one, refusing an
//! entry that exists ([`KeyError::KeychainExists`]). A corrupt entry is [`KeyError::Invalid`]
//! naming the entry, never replaced.
//!
//! [`open`]: KeychainKeys::open
//! [`create`]: KeychainKeys::create

use std::fmt;
use std::sync::{Arc, RwLock};

use zeroize::Zeroizing;

use crate::KeyVersion;
use crate::crypto::Context;
use crate::keys::{KeyError, KeyInfo, KeyProvider, Keyring};
use crate::secret::SecretBytes;

/// Where an entry lives in the OS secret store: a service and an account (the names the
/// platform shows: macOS Keychain's "Where" and "Account", Windows' target, keyutils'
/// description `keyring-rs:account@service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeychainEntry {
    /// The service, typically the application's reverse-DNS name (`com.example.app`).
    pub service: String,
    /// The account under the service, typically what the key is for (`credvault-kek`).
    pub account: String,
}

impl KeychainEntry {
    /// An entry name.
    pub fn new(service: impl Into<String>, account: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            account: account.into(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "OS keychain entry service {:?} account {:?}",
            self.service, self.account
        )
    }

    /// The platform entry. On Linux: keyring's keyutils credential (description
    /// `keyring-rs:account@service`, as keyring names it) homed in the kernel's *user*
    /// keyring, which every process of the user shares until reboot. keyring's default home
    /// is the session keyring plus a link into the persistent keyring; where there is no login
    /// session keyring (a service, a container, CI) the session keyring is the process's own
    /// and the persistent link is refused, so the key would die with the process.
    fn handle(&self) -> Result<keyring::Entry, KeyError> {
        if self.service.is_empty() || self.account.is_empty() {
            return Err(KeyError::Keychain {
                service: self.service.clone(),
                account: self.account.clone(),
                problem: "the service and the account must not be empty".to_owned(),
            });
        }
        #[cfg(target_os = "linux")]
        {
            use linux_keyutils::{KeyRing, KeyRingIdentifier};
            let user = KeyRing::from_special_id(KeyRingIdentifier::User, false).map_err(|e| {
                KeyError::Keychain {
                    service: self.service.clone(),
                    account: self.account.clone(),
                    problem: format!("the kernel's user keyring cannot be reached: {e:?}"),
                }
            })?;
            Ok(keyring::Entry::new_with_credential(Box::new(
                keyring::keyutils::KeyutilsCredential {
                    session: user,
                    persistent: None,
                    description: format!("keyring-rs:{}@{}", self.account, self.service),
                },
            )))
        }
        #[cfg(not(target_os = "linux"))]
        keyring::Entry::new(&self.service, &self.account).map_err(|e| self.failure(&e))
    }

    /// A platform error as a [`KeyError`], without anything the error may carry (keyring's
    /// `BadEncoding` holds the stored bytes: never formatted).
    fn failure(&self, err: &keyring::Error) -> KeyError {
        let problem = match err {
            keyring::Error::NoEntry => {
                return KeyError::KeychainMissing {
                    service: self.service.clone(),
                    account: self.account.clone(),
                };
            }
            keyring::Error::BadEncoding(_) => {
                return KeyError::Invalid {
                    source_name: self.describe(),
                    problem: "the stored value is not UTF-8 text".to_owned(),
                };
            }
            keyring::Error::PlatformFailure(e) => format!("the secret store failed: {e}"),
            keyring::Error::NoStorageAccess(e) => {
                format!("the secret store cannot be reached (locked, or no session): {e}")
            }
            keyring::Error::TooLong(what, limit) => {
                format!("the entry's {what} is longer than the platform's limit of {limit}")
            }
            keyring::Error::Invalid(what, why) => format!("invalid {what}: {why}"),
            keyring::Error::Ambiguous(found) => {
                format!("{} entries match; delete all but one", found.len())
            }
            _ => "the secret store failed".to_owned(),
        };
        KeyError::Keychain {
            service: self.service.clone(),
            account: self.account.clone(),
            problem,
        }
    }

    fn read(&self) -> Result<Keyring, KeyError> {
        let text = Zeroizing::new(
            self.handle()?
                .get_password()
                .map_err(|e| self.failure(&e))?,
        );
        Keyring::from_json(&text, &self.describe())
    }

    fn write(&self, ring: &Keyring) -> Result<(), KeyError> {
        let json = ring.to_json();
        self.handle()?
            .set_password(json.expose_secret())
            .map_err(|e| self.failure(&e))
    }

    /// Removes the entry from the secret store: the keys in it are gone for good, and with
    /// them every vault and encrypted file they protect. For uninstallers and tests.
    ///
    /// # Errors
    ///
    /// [`KeyError::KeychainMissing`] if there is no such entry; [`KeyError::Keychain`] if the
    /// store fails.
    pub fn delete(&self) -> Result<(), KeyError> {
        self.handle()?
            .delete_credential()
            .map_err(|e| self.failure(&e))
    }
}

/// A [`KeyProvider`] whose keyring (the KEK versions) is kept in the operating system's
/// secret store under a [`KeychainEntry`], never in a file.
///
/// ```no_run
/// use credvault::keys::{KeyError, KeyProvider};
/// use credvault::keys::keychain::{KeychainEntry, KeychainKeys};
///
/// let entry = KeychainEntry::new("com.example.leads", "credvault-kek");
/// // First run only (the application knows: its database file does not exist yet).
/// let keys = match KeychainKeys::open(&entry) {
///     Ok(keys) => keys,
///     Err(KeyError::KeychainMissing { .. }) => KeychainKeys::create(&entry)?,
///     Err(e) => return Err(e),
/// };
/// assert!(keys.primary_version().get() >= 1);
/// # Ok::<(), KeyError>(())
/// ```
///
/// `Debug` shows the entry's name and the versions, never key bytes.
pub struct KeychainKeys {
    entry: KeychainEntry,
    ring: RwLock<Arc<Keyring>>,
}

impl fmt::Debug for KeychainKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeychainKeys")
            .field("entry", &self.entry)
            .field("keyring", &self.keyring())
            .finish()
    }
}

impl KeychainKeys {
    /// Loads the keyring from `entry`, which must exist: nothing is created here.
    ///
    /// # Errors
    ///
    /// [`KeyError::KeychainMissing`] if there is no such entry (a first run: call
    /// [`create`](Self::create), explicitly); [`KeyError::Invalid`] naming the entry if it
    /// does not hold a valid keyring; [`KeyError::Keychain`] if the store fails.
    pub fn open(entry: &KeychainEntry) -> Result<Self, KeyError> {
        let ring = entry.read()?;
        Ok(Self {
            entry: entry.clone(),
            ring: RwLock::new(Arc::new(ring)),
        })
    }

    /// Generates a new keyring and stores it under `entry`, which must not exist: an existing
    /// entry is never loaded nor replaced here.
    ///
    /// The check and the write are two calls to the secret store; two processes creating the
    /// same entry at the same moment are not told apart (a desktop application runs once).
    ///
    /// # Errors
    ///
    /// [`KeyError::KeychainExists`] if the entry exists (also when it is corrupt: it is never
    /// overwritten); [`KeyError::Keychain`] if the store fails; RNG failures.
    pub fn create(entry: &KeychainEntry) -> Result<Self, KeyError> {
        match entry.handle()?.get_password() {
            Ok(mut text) => {
                zeroize::Zeroize::zeroize(&mut text);
                return Err(KeyError::KeychainExists {
                    service: entry.service.clone(),
                    account: entry.account.clone(),
                });
            }
            Err(keyring::Error::NoEntry) => {}
            Err(keyring::Error::BadEncoding(mut bytes)) => {
                zeroize::Zeroize::zeroize(&mut bytes);
                return Err(KeyError::KeychainExists {
                    service: entry.service.clone(),
                    account: entry.account.clone(),
                });
            }
            Err(e) => return Err(entry.failure(&e)),
        }
        let ring = Keyring::generate()?;
        entry.write(&ring)?;
        Ok(Self {
            entry: entry.clone(),
            ring: RwLock::new(Arc::new(ring)),
        })
    }

    /// The entry the keys live under.
    pub fn entry(&self) -> &KeychainEntry {
        &self.entry
    }

    /// The keyring as last loaded.
    pub fn keyring(&self) -> Arc<Keyring> {
        match self.ring.read() {
            Ok(ring) => Arc::clone(&ring),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Applies `change` to a copy of the keyring as stored now, writes the result back to the
    /// entry and uses it: a KEK rotation ([`Keyring::rotate`]), a version destroyed
    /// ([`Keyring::destroy`]). Nothing changes if `change` or the write fails.
    ///
    /// ```no_run
    /// # use credvault::keys::keychain::{KeychainEntry, KeychainKeys};
    /// # let keys = KeychainKeys::open(&KeychainEntry::new("s", "a"))?;
    /// let new_primary = keys.update(|ring| ring.rotate())?;
    /// # Ok::<(), credvault::keys::KeyError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// What `change` returns; the entry's read and write errors.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut Keyring) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let mut ring = self.entry.read()?;
        let out = change(&mut ring)?;
        self.entry.write(&ring)?;
        if let Ok(mut slot) = self.ring.write() {
            *slot = Arc::new(ring);
        }
        Ok(out)
    }
}

impl KeyProvider for KeychainKeys {
    fn primary_version(&self) -> KeyVersion {
        self.keyring().primary_version()
    }

    fn wrap_key(&self, key: &SecretBytes, context: &Context) -> Result<Vec<u8>, KeyError> {
        self.keyring().wrap_key(key, context)
    }

    fn unwrap_key(&self, wrapped: &[u8], context: &Context) -> Result<SecretBytes, KeyError> {
        self.keyring().unwrap_key(wrapped, context)
    }

    fn key_infos(&self) -> Vec<KeyInfo> {
        self.keyring().infos().collect()
    }

    fn fingerprint(&self, version: KeyVersion) -> Result<Option<String>, KeyError> {
        Ok(Keyring::fingerprint(&self.keyring(), version))
    }

    /// Reads the entry again (another process may have rotated it); `true` if the keyring's
    /// versions or states changed.
    fn reload(&self) -> Result<bool, KeyError> {
        let ring = self.entry.read()?;
        let old = self.keyring();
        if old.infos().eq(ring.infos())
            && ring
                .infos()
                .all(|i| Keyring::fingerprint(&old, i.version) == ring.fingerprint(i.version))
        {
            return Ok(false);
        }
        if let Ok(mut slot) = self.ring.write() {
            *slot = Arc::new(ring);
        }
        Ok(true)
    }

    fn describe(&self) -> String {
        self.entry.describe()
    }
}
