//! The keyring: numbered key versions and their states.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use zeroize::Zeroizing;

use crate::KeyVersion;
use crate::crypto::aead::{self, AeadKey, KEY_LEN};
use crate::crypto::{Context, format};
use crate::keys::KeyError;
use crate::secret::SecretBytes;

/// The state of a key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Seals new records; also opens.
    Primary,
    /// Opens records sealed with it; seals nothing new.
    DecryptOnly,
    /// Its bytes are gone: records sealed with it can never be opened again.
    Destroyed,
}

impl KeyState {
    /// The name used in key files and reports: `primary`, `decrypt-only`, `destroyed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::DecryptOnly => "decrypt-only",
            Self::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a keyring says about one version: never its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// The version.
    pub version: KeyVersion,
    /// Its state.
    pub state: KeyState,
    /// When it was created, in seconds since the Unix epoch.
    pub created_at: u64,
    /// Whether it is below the keyring's minimum decryption version (so refused for opening).
    pub below_minimum: bool,
}

/// Key material of a live version: the raw bytes (for saving) and the ready cipher.
#[derive(Clone)]
pub(crate) struct Material {
    pub(crate) raw: Zeroizing<[u8; KEY_LEN]>,
    cipher: AeadKey,
}

impl Material {
    pub(crate) fn new(raw: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let cipher = AeadKey::from_bytes(&raw);
        Self { raw, cipher }
    }
}

#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) created_at: u64,
    /// `None` once destroyed.
    pub(crate) material: Option<Material>,
}

/// Numbered AES-256 keys: one primary that seals, older ones that only open, destroyed ones
/// that nothing can open any more.
///
/// The key version is written into every sealed record, so opening picks the key directly (no
/// trial decryption). `Debug` shows versions and states, never key bytes.
///
/// ```
/// use credvault::crypto::Context;
/// use credvault::keys::{KeyState, Keyring};
///
/// let mut ring = Keyring::generate()?;
/// let ctx = Context::record("acme", "api_key", "stripe")?;
/// let old = ring.seal(b"sk_live_123", &ctx)?;
///
/// let v2 = ring.rotate()?; // new primary; v1 becomes decrypt-only
/// let new = ring.seal(b"sk_live_456", &ctx)?;
/// assert_eq!(ring.open(&old, &ctx)?.expose_secret(), b"sk_live_123");
/// assert_eq!(ring.open(&new, &ctx)?.expose_secret(), b"sk_live_456");
///
/// // Once nothing needs v1 any more, destroy it: what it sealed is gone for good.
/// ring.destroy(v2.prev())?;
/// assert!(ring.open(&old, &ctx).is_err());
/// assert_eq!(ring.state(v2), Some(KeyState::Primary));
/// # Ok::<(), credvault::keys::KeyError>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    pub(crate) entries: BTreeMap<KeyVersion, Entry>,
    pub(crate) primary: KeyVersion,
    pub(crate) min_decryption_version: KeyVersion,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<_> = self
            .infos()
            .map(|i| format!("{}:{}", i.version, i.state))
            .collect();
        f.debug_struct("Keyring")
            .field("primary", &self.primary)
            .field("min_decryption_version", &self.min_decryption_version)
            .field("keys", &keys)
            .finish()
    }
}

impl Keyring {
    /// A new keyring with one random primary key, version 1, from the OS RNG.
    ///
    /// # Errors
    ///
    /// [`KeyError::Crypto`] if the OS RNG fails.
    pub fn generate() -> Result<Self, KeyError> {
        Self::generate_at(now())
    }

    /// [`generate`](Self::generate) with the creation time given (seconds since the epoch).
    ///
    /// # Errors
    ///
    /// [`KeyError::Crypto`] if the OS RNG fails.
    pub fn generate_at(created_at: u64) -> Result<Self, KeyError> {
        let mut entries = BTreeMap::new();
        entries.insert(KeyVersion::FIRST, random_entry(created_at)?);
        Ok(Self {
            entries,
            primary: KeyVersion::FIRST,
            min_decryption_version: KeyVersion::FIRST,
        })
    }

    /// Adds a new random key as primary; the old primary becomes decrypt-only. Returns the new
    /// version.
    ///
    /// # Errors
    ///
    /// [`KeyError::VersionsExhausted`] after `u32::MAX` versions; [`KeyError::Crypto`] if the
    /// OS RNG fails.
    pub fn rotate(&mut self) -> Result<KeyVersion, KeyError> {
        self.rotate_at(now())
    }

    /// [`rotate`](Self::rotate) with the creation time given.
    ///
    /// # Errors
    ///
    /// As [`rotate`](Self::rotate).
    pub fn rotate_at(&mut self, created_at: u64) -> Result<KeyVersion, KeyError> {
        let last = self.latest_version();
        let next = last.next().ok_or(KeyError::VersionsExhausted(last))?;
        self.entries.insert(next, random_entry(created_at)?);
        self.primary = next;
        Ok(next)
    }

    /// Destroys a version's key bytes (zeroed in memory; gone from the file once saved).
    /// Records it sealed can never be opened again. Destroying a destroyed version is a no-op.
    ///
    /// # Errors
    ///
    /// [`KeyError::IsPrimary`] for the primary key (rotate first), [`KeyError::UnknownVersion`]
    /// for a version the keyring never had.
    pub fn destroy(&mut self, version: KeyVersion) -> Result<(), KeyError> {
        if version == self.primary {
            return Err(KeyError::IsPrimary(version));
        }
        let entry = self
            .entries
            .get_mut(&version)
            .ok_or(KeyError::UnknownVersion(version))?;
        entry.material = None;
        Ok(())
    }

    /// Refuses to open records sealed with any version below `minimum` (after a compromise,
    /// say), without destroying those keys. Lowering it again is allowed.
    ///
    /// # Errors
    ///
    /// [`KeyError::IsPrimary`] if `minimum` is above the primary version;
    /// [`KeyError::UnknownVersion`] if the keyring never had `minimum`.
    pub fn set_min_decryption_version(&mut self, minimum: KeyVersion) -> Result<(), KeyError> {
        if minimum > self.primary {
            return Err(KeyError::IsPrimary(self.primary));
        }
        if !self.entries.contains_key(&minimum) {
            return Err(KeyError::UnknownVersion(minimum));
        }
        self.min_decryption_version = minimum;
        Ok(())
    }

    /// The version that seals.
    pub fn primary_version(&self) -> KeyVersion {
        self.primary
    }

    /// Versions below this one are refused for opening.
    pub fn min_decryption_version(&self) -> KeyVersion {
        self.min_decryption_version
    }

    /// The state of a version, or `None` if the keyring never had it.
    pub fn state(&self, version: KeyVersion) -> Option<KeyState> {
        self.entries
            .get(&version)
            .map(|e| self.state_of(version, e))
    }

    /// Every version, oldest first, with its state and age. Never key bytes.
    pub fn infos(&self) -> impl Iterator<Item = KeyInfo> + '_ {
        self.entries.iter().map(|(v, e)| KeyInfo {
            version: *v,
            state: self.state_of(*v, e),
            created_at: e.created_at,
            below_minimum: *v < self.min_decryption_version,
        })
    }

    /// A fingerprint of version `version`: the first 16 bytes of
    /// HMAC-SHA256(key, `"credvault kek fingerprint v1"` || version as u32 BE), in hex. It
    /// identifies the key (the vault records it, to refuse a different key under the same
    /// version) and reveals nothing about it. `None` for a destroyed or unknown version.
    pub fn fingerprint(&self, version: KeyVersion) -> Option<String> {
        use hmac::{KeyInit as _, Mac as _};
        let material = self.entries.get(&version)?.material.as_ref()?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(material.raw.as_ref()).ok()?;
        mac.update(b"credvault kek fingerprint v1");
        mac.update(&version.get().to_be_bytes());
        let tag = mac.finalize().into_bytes();
        Some(tag.iter().take(16).map(|b| format!("{b:02x}")).collect())
    }

    /// A 32-byte key derived from KEK `version` for one purpose: HKDF-SHA256 with no salt,
    /// the KEK as input key material and `label || version as u32 BE` as info. Used for the
    /// SQLCipher page key (feature `sqlcipher`), so the file needs no second secret.
    ///
    /// # Errors
    ///
    /// As [`decryption_key`](Self::decryption_key): an unknown, destroyed or forbidden version.
    #[cfg_attr(not(feature = "sqlcipher"), allow(dead_code))]
    pub(crate) fn derive_subkey(
        &self,
        version: KeyVersion,
        label: &[u8],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
        self.decryption_key(version)?;
        let material = self
            .entries
            .get(&version)
            .and_then(|e| e.material.as_ref())
            .ok_or(KeyError::Destroyed(version))?;
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, material.raw.as_ref());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        let mut info = Vec::with_capacity(label.len() + 4);
        info.extend_from_slice(label);
        info.extend_from_slice(&version.get().to_be_bytes());
        hk.expand(&info, out.as_mut())
            .map_err(|_| KeyError::Unavailable("hkdf output length".to_owned()))?;
        Ok(out)
    }

    /// Seals `plaintext` with the primary key, bound to `context`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Crypto`] if the plaintext is too long for one record.
    pub fn seal(&self, plaintext: &[u8], context: &Context) -> Result<Vec<u8>, KeyError> {
        let key = self.primary_key()?;
        Ok(aead::seal(key, self.primary, plaintext, context)?)
    }

    /// Opens a record sealed by this keyring, with the key version its header names.
    ///
    /// # Errors
    ///
    /// A framing error, [`KeyError::UnknownVersion`], [`KeyError::Destroyed`],
    /// [`KeyError::BelowMinimum`], or `CryptoError::DecryptionFailed` (wrong context, altered).
    pub fn open(&self, blob: &[u8], context: &Context) -> Result<SecretBytes, KeyError> {
        let sealed = format::parse(blob)?;
        let key = self.decryption_key(sealed.header.key_version)?;
        Ok(aead::open_parsed(key, &sealed, context)?)
    }

    /// [`seal`](Self::seal), returning the `cv1.` text form.
    ///
    /// # Errors
    ///
    /// As [`seal`](Self::seal).
    pub fn seal_text(&self, plaintext: &[u8], context: &Context) -> Result<String, KeyError> {
        self.seal(plaintext, context).map(|b| format::to_text(&b))
    }

    /// [`open`](Self::open) for the `cv1.` text form.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), or a text-form error.
    pub fn open_text(&self, text: &str, context: &Context) -> Result<SecretBytes, KeyError> {
        self.open(&format::from_text(text)?, context)
    }

    /// The ready cipher for opening records of `version`, after the state checks.
    ///
    /// # Errors
    ///
    /// [`KeyError::UnknownVersion`], [`KeyError::Destroyed`] or [`KeyError::BelowMinimum`].
    pub fn decryption_key(&self, version: KeyVersion) -> Result<&AeadKey, KeyError> {
        if version < self.min_decryption_version {
            return Err(KeyError::BelowMinimum {
                version,
                minimum: self.min_decryption_version,
            });
        }
        let entry = self
            .entries
            .get(&version)
            .ok_or(KeyError::UnknownVersion(version))?;
        entry
            .material
            .as_ref()
            .map(|m| &m.cipher)
            .ok_or(KeyError::Destroyed(version))
    }

    fn primary_key(&self) -> Result<&AeadKey, KeyError> {
        self.entries
            .get(&self.primary)
            .and_then(|e| e.material.as_ref())
            .map(|m| &m.cipher)
            // Every constructor and mutator keeps a live primary; this is unreachable.
            .ok_or(KeyError::Destroyed(self.primary))
    }

    fn latest_version(&self) -> KeyVersion {
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.primary)
    }

    fn state_of(&self, version: KeyVersion, entry: &Entry) -> KeyState {
        if entry.material.is_none() {
            KeyState::Destroyed
        } else if version == self.primary {
            KeyState::Primary
        } else {
            KeyState::DecryptOnly
        }
    }
}

fn random_entry(created_at: u64) -> Result<Entry, KeyError> {
    let mut raw = Zeroizing::new([0u8; KEY_LEN]);
    crate::crypto::try_fill_from_os_rng(raw.as_mut())?;
    Ok(Entry {
        created_at,
        material: Some(Material::new(raw)),
    })
}

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
