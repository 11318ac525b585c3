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
/// header and the wrapped key's context (DESIGN.md: `"dek"`, tenant, DEK version) as AAD.
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
}
