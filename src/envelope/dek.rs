//! Wrapping tenant data keys and deriving the record-sealing key.

use std::fmt;

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::crypto::aead::{self, AeadKey};
use crate::crypto::fernet::{self, Fernet};
use crate::crypto::{Context, CryptoError, SealingSuite, suite};
use crate::keys::{KeyError, KeyProvider};
use crate::secret::SecretBytes;
use crate::{KeyVersion, TenantId};

/// Length of a data key and of the derived record key.
pub(crate) const DEK_LEN: usize = 32;
/// HKDF `info` label for the record key.
const RECORD_KEY_LABEL: &[u8] = b"credvault record key v1";
/// HKDF `info` label for the tenant's Fernet key (the Fernet sealing suite).
const FERNET_KEY_LABEL: &[u8] = b"credvault fernet key v1";
/// HKDF `info` label for the tenant's personal-data key (sealed metadata and audit actors).
const PERSONAL_KEY_LABEL: &[u8] = b"credvault personal data key v1";

/// A tenant's record-sealing key, ready to use, with the versions that produced it.
///
/// `Debug` shows the tenant and versions only.
#[derive(Clone)]
pub(crate) struct TenantDek {
    tenant: TenantId,
    version: KeyVersion,
    kek_version: KeyVersion,
    key: AeadKey,
    fernet: Fernet,
    /// The raw Fernet key (signing then encryption key), for the audited export only.
    fernet_raw: SecretBytes,
}

impl fmt::Debug for TenantDek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantDek")
            .field("tenant", &self.tenant)
            .field("version", &self.version)
            .field("kek_version", &self.kek_version)
            .finish_non_exhaustive()
    }
}

impl TenantDek {
    /// Unwraps `wrapped` (a DEK sealed under the KEK for `(tenant, version)`) and derives the
    /// record key with the tenant's shred secret.
    ///
    /// # Errors
    ///
    /// Whatever the provider reports when unwrapping (destroyed KEK version, wrong context),
    /// or `CryptoError::DecryptionFailed` if the unwrapped key has the wrong length.
    pub(crate) fn unwrap(
        provider: &dyn KeyProvider,
        shred_secret: &SecretBytes,
        tenant: &TenantId,
        version: KeyVersion,
        wrapped: &[u8],
    ) -> Result<Self, KeyError> {
        let ctx = Context::wrapped_dek(tenant.as_str(), version)?;
        let material = provider.unwrap_key(wrapped, &ctx)?;
        let kek_version = crate::crypto::format::parse(wrapped)?.header.key_version;
        let key = derive_record_key(&material, shred_secret, tenant, version)?;
        let fernet_raw = derive_fernet_key(&material, shred_secret, tenant, version)?;
        let fernet = Fernet::from_key_bytes(&fernet_raw);
        Ok(Self {
            tenant: tenant.clone(),
            version,
            kek_version,
            key,
            fernet,
            fernet_raw: SecretBytes::copy_from_slice(fernet_raw.as_ref()),
        })
    }

    /// The DEK version.
    pub(crate) fn version(&self) -> KeyVersion {
        self.version
    }

    /// The KEK version that wrapped the DEK.
    pub(crate) fn kek_version(&self) -> KeyVersion {
        self.kek_version
    }

    /// Seals a record payload bound to `context`.
    ///
    /// # Errors
    ///
    /// `CryptoError::PlaintextTooLong` past the GCM limit.
    pub(crate) fn seal(&self, plaintext: &[u8], context: &Context) -> Result<Vec<u8>, CryptoError> {
        aead::seal(&self.key, self.version, plaintext, context)
    }

    /// Seals a record payload bound to `context` with `suite`; `now` (Unix seconds) is the
    /// Fernet token's timestamp (unused by AES-256-GCM).
    ///
    /// # Errors
    ///
    /// `CryptoError::PlaintextTooLong` past the GCM limit;
    /// `CryptoError::RandomnessUnavailable` if no nonce or IV can be drawn.
    pub(crate) fn seal_with(
        &self,
        suite: SealingSuite,
        plaintext: &[u8],
        context: &Context,
        now: u64,
    ) -> Result<Vec<u8>, CryptoError> {
        match suite {
            SealingSuite::Aes256Gcm => self.seal(plaintext, context),
            SealingSuite::Fernet => suite::fernet_seal(&self.fernet, plaintext, context, now),
        }
    }

    /// Opens a record payload sealed by [`seal`](Self::seal) or [`seal_with`](Self::seal_with)
    /// (either suite, told by the payload's first byte) under the same context.
    ///
    /// # Errors
    ///
    /// A framing error, or `CryptoError::DecryptionFailed`.
    pub(crate) fn open(&self, blob: &[u8], context: &Context) -> Result<SecretBytes, CryptoError> {
        match SealingSuite::of_sealed(blob) {
            Some(SealingSuite::Fernet) => suite::fernet_open(&self.fernet, blob, context),
            _ => aead::open(&self.key, blob, context),
        }
    }

    /// The tenant's Fernet key for this data key version, as URL-safe base64 (what Python's
    /// `Fernet(key)` takes). Crate-private: the only door out is the audited
    /// `Vault::export_fernet_keys`.
    pub(crate) fn fernet_key_text(&self) -> crate::secret::SecretString {
        use base64::Engine as _;
        crate::secret::SecretString::new(
            base64::engine::general_purpose::URL_SAFE.encode(self.fernet_raw.expose_secret()),
        )
    }
}

/// New random DEK material from the OS RNG, and its wrapping under the provider's primary KEK
/// for `(tenant, version)`.
///
/// # Errors
///
/// `CryptoError::RandomnessUnavailable`, or what the provider reports.
pub(crate) fn new_dek_material(
    provider: &dyn KeyProvider,
    tenant: &TenantId,
    version: KeyVersion,
) -> Result<Vec<u8>, KeyError> {
    let mut raw = Zeroizing::new([0u8; DEK_LEN]);
    crate::crypto::try_fill_from_os_rng(raw.as_mut())?;
    let ctx = Context::wrapped_dek(tenant.as_str(), version)?;
    provider.wrap_key(&SecretBytes::copy_from_slice(raw.as_ref()), &ctx)
}

/// The record key: HKDF-SHA256 with the shred secret as salt, the DEK as input key material,
/// and `"credvault record key v1" ‖ len ‖ tenant ‖ version` as info.
///
/// # Errors
///
/// `CryptoError::DecryptionFailed` if the DEK is not 32 bytes (a wrapped key from elsewhere).
pub(crate) fn derive_record_key(
    dek: &SecretBytes,
    shred_secret: &SecretBytes,
    tenant: &TenantId,
    version: KeyVersion,
) -> Result<AeadKey, CryptoError> {
    if dek.len() != DEK_LEN {
        return Err(CryptoError::DecryptionFailed);
    }
    let info = Context::from_parts(&[
        RECORD_KEY_LABEL,
        tenant.as_str().as_bytes(),
        &version.get().to_be_bytes(),
    ])?;
    let hk = Hkdf::<Sha256>::new(Some(shred_secret.expose_secret()), dek.expose_secret());
    let mut okm = Zeroizing::new([0u8; DEK_LEN]);
    hk.expand(info.as_bytes(), okm.as_mut())
        .map_err(|_| CryptoError::DecryptionFailed)?;
    Ok(AeadKey::from_bytes(&okm))
}

/// The tenant's Fernet key for a data key version: HKDF-SHA256 with the shred secret as salt,
/// the DEK as input key material, and `"credvault fernet key v1" ‖ len ‖ tenant ‖ version` as
/// info (each part length-prefixed, as a [`Context`]); 32 bytes, signing key then encryption
/// key, as the Fernet spec orders them.
///
/// # Errors
///
/// `CryptoError::DecryptionFailed` if the DEK is not 32 bytes (a wrapped key from elsewhere).
pub(crate) fn derive_fernet_key(
    dek: &SecretBytes,
    shred_secret: &SecretBytes,
    tenant: &TenantId,
    version: KeyVersion,
) -> Result<Zeroizing<[u8; fernet::KEY_LEN]>, CryptoError> {
    if dek.len() != DEK_LEN {
        return Err(CryptoError::DecryptionFailed);
    }
    let info = Context::from_parts(&[
        FERNET_KEY_LABEL,
        tenant.as_str().as_bytes(),
        &version.get().to_be_bytes(),
    ])?;
    let hk = Hkdf::<Sha256>::new(Some(shred_secret.expose_secret()), dek.expose_secret());
    let mut okm = Zeroizing::new([0u8; fernet::KEY_LEN]);
    hk.expand(info.as_bytes(), okm.as_mut())
        .map_err(|_| CryptoError::DecryptionFailed)?;
    Ok(okm)
}

/// The tenant's personal-data key (record metadata, audit actors and names): HKDF-SHA256 with
/// the tenant's shred secret as input key material, no salt, and
/// `"credvault personal data key v1" ‖ len ‖ tenant` as info (each part length-prefixed, as a
/// [`Context`]). Independent of the data key and the KEK: see `store/personal.rs` for why.
///
/// # Errors
///
/// `CryptoError::DecryptionFailed` if the shred secret is empty.
pub(crate) fn derive_personal_key(
    shred_secret: &SecretBytes,
    tenant: &TenantId,
) -> Result<AeadKey, CryptoError> {
    if shred_secret.is_empty() {
        return Err(CryptoError::DecryptionFailed);
    }
    let info = Context::from_parts(&[PERSONAL_KEY_LABEL, tenant.as_str().as_bytes()])?;
    let hk = Hkdf::<Sha256>::new(None, shred_secret.expose_secret());
    let mut okm = Zeroizing::new([0u8; DEK_LEN]);
    hk.expand(info.as_bytes(), okm.as_mut())
        .map_err(|_| CryptoError::DecryptionFailed)?;
    Ok(AeadKey::from_bytes(&okm))
}
