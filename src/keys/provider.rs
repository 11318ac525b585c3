//! The key-encryption-key seam.

use std::fmt;

use crate::KeyVersion;
use crate::crypto::Context;
use crate::keys::{KeyError, KeyInfo, Keyring};
use crate::secret::SecretBytes;

/// Who holds the key-encryption key (KEK) that wraps each tenant's data key.
///
/// The local [`Keyring`] implements it; an HSM or a cloud KMS can implement it later without
/// the vault changing. Wrapped keys use the sealed-record format with the KEK version in the
/// header and the wrapped key's context (ARCHITECTURE.md, "Wrapped data key": `"dek"`, tenant, DEK version) as AAD.
///
/// ```
/// use credvault::KeyVersion;
/// use credvault::crypto::Context;
/// use credvault::keys::{KeyProvider, Keyring};
/// use credvault::SecretBytes;
///
/// let kek = Keyring::generate()?;
/// let dek = SecretBytes::new(vec![7; 32]);
/// let ctx = Context::wrapped_dek("acme", KeyVersion::new(1))?;
/// let wrapped = kek.wrap_key(&dek, &ctx)?;
/// assert_eq!(kek.unwrap_key(&wrapped, &ctx)?, dek);
/// # Ok::<(), credvault::keys::KeyError>(())
/// ```
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// The KEK version that new wraps use.
    fn primary_version(&self) -> KeyVersion;

    /// Wraps (seals) a data key under the primary KEK, bound to `context`.
    ///
    /// # Errors
    ///
    /// Whatever the provider reports; never key bytes.
    fn wrap_key(&self, key: &SecretBytes, context: &Context) -> Result<Vec<u8>, KeyError>;

    /// Unwraps a data key wrapped by [`wrap_key`](Self::wrap_key) under any live KEK version.
    ///
    /// # Errors
    ///
    /// Whatever the provider reports: an unknown or destroyed KEK version, a wrong context.
    fn unwrap_key(&self, wrapped: &[u8], context: &Context) -> Result<SecretBytes, KeyError>;

    /// What the provider can say about its KEK versions (states, ages; never key bytes), for
    /// the rotation report. Default: nothing (a provider that cannot list its versions).
    fn key_infos(&self) -> Vec<KeyInfo> {
        Vec::new()
    }

    /// A fingerprint of KEK `version` that identifies it without revealing it (a keyed hash,
    /// never the key), which the vault records and compares so that a different key under the
    /// same version number is refused. `None` if the provider cannot say (then only a
    /// data key wrapped under it can show that it is the right one). Default: `None`.
    ///
    /// # Errors
    ///
    /// Whatever the provider reports.
    fn fingerprint(&self, version: KeyVersion) -> Result<Option<String>, KeyError> {
        let _ = version;
        Ok(None)
    }

    /// Reloads the keys from where they live (a key file that was rotated meanwhile), so a
    /// running process picks up a new KEK version without a restart. Returns whether anything
    /// changed. Default: nothing to reload.
    ///
    /// # Errors
    ///
    /// The keys' source cannot be read or is invalid; the keys in use stay as they were.
    fn reload(&self) -> Result<bool, KeyError> {
        Ok(false)
    }

    /// Where the keys come from, for error messages ("key file /etc/app/keys.json").
    fn describe(&self) -> String {
        "the key provider".to_owned()
    }
}

impl KeyProvider for Keyring {
    fn primary_version(&self) -> KeyVersion {
        Keyring::primary_version(self)
    }

    fn wrap_key(&self, key: &SecretBytes, context: &Context) -> Result<Vec<u8>, KeyError> {
        self.seal(key.expose_secret(), context)
    }

    fn unwrap_key(&self, wrapped: &[u8], context: &Context) -> Result<SecretBytes, KeyError> {
        self.open(wrapped, context)
    }

    fn key_infos(&self) -> Vec<KeyInfo> {
        self.infos().collect()
    }

    fn fingerprint(&self, version: KeyVersion) -> Result<Option<String>, KeyError> {
        Ok(Keyring::fingerprint(self, version))
    }

    fn describe(&self) -> String {
        "the keyring".to_owned()
    }
}

impl<T: KeyProvider + ?Sized> KeyProvider for std::sync::Arc<T> {
    fn primary_version(&self) -> KeyVersion {
        (**self).primary_version()
    }

    fn wrap_key(&self, key: &SecretBytes, context: &Context) -> Result<Vec<u8>, KeyError> {
        (**self).wrap_key(key, context)
    }

    fn unwrap_key(&self, wrapped: &[u8], context: &Context) -> Result<SecretBytes, KeyError> {
        (**self).unwrap_key(wrapped, context)
    }

    fn key_infos(&self) -> Vec<KeyInfo> {
        (**self).key_infos()
    }

    fn fingerprint(&self, version: KeyVersion) -> Result<Option<String>, KeyError> {
        (**self).fingerprint(version)
    }

    fn reload(&self) -> Result<bool, KeyError> {
        (**self).reload()
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}
