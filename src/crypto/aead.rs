//! AES-256-GCM seal and open in the sealed-record format (ARCHITECTURE.md, "Formats"), with a 96-bit random
//! nonce and the header plus the context as associated data.

use std::fmt;

use aes_gcm::aead::{AeadInOut as _, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use zeroize::Zeroizing;

use crate::KeyVersion;
use crate::crypto::format::{self, Algorithm, Header, NONCE_LEN, OVERHEAD, PREFIX_LEN};
use crate::crypto::{Context, CryptoError};
use crate::secret::SecretBytes;

/// Length of an AES-256-GCM key.
pub const KEY_LEN: usize = 32;
/// The most plaintext one record may hold (GCM's limit for one nonce is 2^36 - 32 bytes).
pub const MAX_PLAINTEXT_LEN: u64 = (1 << 36) - 32;
/// Associated data up to this length is built on the stack.
const STACK_AAD_LEN: usize = 256;

/// An AES-256-GCM key with its key schedule computed once. Zeroed on drop.
///
/// `Debug` prints `AeadKey { .. }`.
#[derive(Clone)]
pub struct AeadKey {
    cipher: Aes256Gcm,
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey { .. }")
    }
}

impl AeadKey {
    /// A key from 32 bytes.
    pub fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: Aes256Gcm::new(&(*key).into()),
        }
    }

    /// A new random key from the OS RNG, with its raw bytes (to store, wrap or export).
    ///
    /// # Errors
    ///
    /// [`CryptoError::RandomnessUnavailable`] if the OS RNG fails.
    pub fn generate() -> Result<(Self, SecretBytes), CryptoError> {
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        crate::crypto::try_fill_from_os_rng(raw.as_mut())?;
        Ok((
            Self::from_bytes(&raw),
            SecretBytes::copy_from_slice(raw.as_ref()),
        ))
    }
}

/// Seals `plaintext` under `key`, writing `key_version` into the header and binding the record
/// to `context`. A fresh random nonce is drawn for every call, unique across `fork()` (see
/// SECURITY.md, "Randomness across fork()").
///
/// # Errors
///
/// [`CryptoError::PlaintextTooLong`] past [`MAX_PLAINTEXT_LEN`];
/// [`CryptoError::RandomnessUnavailable`] if the OS RNG fails.
///
/// ```
/// use credvault::KeyVersion;
/// use credvault::crypto::{aead, AeadKey, Context};
///
/// let (key, _raw) = AeadKey::generate()?;
/// let ctx = Context::record("acme", "api_key", "stripe")?;
/// let blob = aead::seal(&key, KeyVersion::new(1), b"sk_live_...", &ctx)?;
/// assert_eq!(aead::open(&key, &blob, &ctx)?.expose_secret(), b"sk_live_...");
/// let other = Context::record("evil", "api_key", "stripe")?;
/// assert!(aead::open(&key, &blob, &other).is_err());
/// # Ok::<(), credvault::crypto::CryptoError>(())
/// ```
pub fn seal(
    key: &AeadKey,
    key_version: KeyVersion,
    plaintext: &[u8],
    context: &Context,
) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    crate::crypto::rng::try_fill_nonce(&mut nonce)?;
    danger_seal_with_nonce(key, key_version, plaintext, context, nonce)
}

/// [`seal`] with a caller-chosen nonce, for known-answer tests.
///
/// # Errors
///
/// [`CryptoError::PlaintextTooLong`] past [`MAX_PLAINTEXT_LEN`].
///
/// # Security
///
/// Reusing a nonce under one key breaks GCM's confidentiality and integrity. Use [`seal`].
pub fn danger_seal_with_nonce(
    key: &AeadKey,
    key_version: KeyVersion,
    plaintext: &[u8],
    context: &Context,
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, CryptoError> {
    if u64::try_from(plaintext.len()).map_or(true, |len| len > MAX_PLAINTEXT_LEN) {
        return Err(CryptoError::PlaintextTooLong {
            len: plaintext.len(),
        });
    }
    let header = Header {
        algorithm: Algorithm::Aes256Gcm,
        key_version,
        nonce,
    };
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(plaintext);
    let tag = with_aad(&header, context, |aad| {
        key.cipher
            .encrypt_inout_detached(&Nonce::from(nonce), aad, (&mut out[PREFIX_LEN..]).into())
    })
    .map_err(|_| CryptoError::PlaintextTooLong {
        len: plaintext.len(),
    })?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a sealed record under `key` and `context`. The key version in the header is part of
/// the associated data but is not checked against `key` here: the keyring picks the key by it.
///
/// Nothing is decrypted before the tag verifies.
///
/// # Errors
///
/// A framing error from [`format::parse`], or [`CryptoError::DecryptionFailed`] for a wrong
/// key, a wrong context or altered bytes.
pub fn open(key: &AeadKey, blob: &[u8], context: &Context) -> Result<SecretBytes, CryptoError> {
    let sealed = format::parse(blob)?;
    let mut out = Vec::with_capacity(sealed.ciphertext.len());
    out.extend_from_slice(sealed.ciphertext);
    let tag = Tag::from(*sealed.tag);
    with_aad(&sealed.header, context, |aad| {
        key.cipher.decrypt_inout_detached(
            &Nonce::from(sealed.header.nonce),
            aad,
            out.as_mut_slice().into(),
            &tag,
        )
    })
    .map_err(|_| CryptoError::DecryptionFailed)?;
    Ok(SecretBytes::new(out))
}

/// Calls `f` with the associated data: the 8-byte header, then the context encoding.
fn with_aad<T>(header: &Header, context: &Context, f: impl FnOnce(&[u8]) -> T) -> T {
    let ctx = context.as_bytes();
    let len = format::HEADER_LEN + ctx.len();
    if len <= STACK_AAD_LEN {
        let mut buf = [0u8; STACK_AAD_LEN];
        buf[..format::HEADER_LEN].copy_from_slice(&header.aad_prefix());
        buf[format::HEADER_LEN..len].copy_from_slice(ctx);
        f(&buf[..len])
    } else {
        let mut buf = Vec::with_capacity(len);
        buf.extend_from_slice(&header.aad_prefix());
        buf.extend_from_slice(ctx);
        f(&buf)
    }
}

/// [`seal`] with the AES-256-GCM computed elsewhere (inside an HSM): the same format, header
/// and associated data, a fresh nonce from the same generator. `gcm(nonce, aad, plaintext)`
/// returns the ciphertext followed by the 16-byte tag (PKCS#11's `CKM_AES_GCM` output).
#[cfg(feature = "pkcs11")]
pub(crate) fn seal_with<E>(
    key_version: KeyVersion,
    plaintext: &[u8],
    context: &Context,
    gcm: impl FnOnce(&[u8; NONCE_LEN], &[u8], &[u8]) -> Result<Vec<u8>, E>,
) -> Result<Result<Vec<u8>, E>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    crate::crypto::rng::try_fill_nonce(&mut nonce)?;
    let header = Header {
        algorithm: Algorithm::Aes256Gcm,
        key_version,
        nonce,
    };
    let sealed = match with_aad(&header, context, |aad| gcm(&nonce, aad, plaintext)) {
        Ok(sealed) => sealed,
        Err(e) => return Ok(Err(e)),
    };
    if sealed.len() != plaintext.len() + format::TAG_LEN {
        return Err(CryptoError::DecryptionFailed);
    }
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(&sealed);
    Ok(Ok(out))
}

/// [`open`] with the AES-256-GCM computed elsewhere: `gcm(nonce, aad, ciphertext_and_tag)`
/// returns the plaintext, or fails for a wrong key, context or altered bytes.
#[cfg(feature = "pkcs11")]
pub(crate) fn open_with<E>(
    blob: &[u8],
    context: &Context,
    gcm: impl FnOnce(&[u8; NONCE_LEN], &[u8], &[u8]) -> Result<SecretBytes, E>,
) -> Result<Result<SecretBytes, E>, CryptoError> {
    let sealed = format::parse(blob)?;
    let body = &blob[PREFIX_LEN..];
    Ok(with_aad(&sealed.header, context, |aad| {
        gcm(&sealed.header.nonce, aad, body)
    }))
}
