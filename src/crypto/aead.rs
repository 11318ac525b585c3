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

/// Which implementation of AES-256-GCM an [`AeadKey`] runs. Both write and read the same
/// bytes (tests/aead_backends.rs checks it, on NIST and Wycheproof vectors too).
///
/// ```
/// use credvault::crypto::{AeadBackend, AeadKey};
///
/// let key = AeadKey::from_bytes_with(&[7; 32], AeadBackend::RustCrypto);
/// assert_eq!(key.backend(), AeadBackend::RustCrypto);
/// assert_eq!(AeadKey::from_bytes(&[7; 32]).backend(), AeadBackend::DEFAULT);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AeadBackend {
    /// RustCrypto's `aes-gcm` (pure Rust): AES-NI or VAES and PCLMULQDQ chosen at run time,
    /// a constant-time software fallback elsewhere. Its key schedule is zeroed on drop.
    /// The default without the `ring` feature.
    RustCrypto,
    /// `ring`'s AES-GCM (feature `ring`; C and assembly, no OpenSSL): AES-NI + CLMUL, or VAES +
    /// VPCLMULQDQ + AVX2, chosen at run time; several times faster from about 1 KiB up. Its
    /// key schedule is **not** zeroed on drop (SECURITY.md, "Key material in memory"). The
    /// default with the `ring` feature.
    #[cfg(feature = "ring")]
    Ring,
}

impl AeadBackend {
    /// What [`AeadKey::from_bytes`] uses: [`Ring`](Self::Ring) when the `ring` feature is
    /// on, [`RustCrypto`](Self::RustCrypto) otherwise.
    #[cfg(feature = "ring")]
    pub const DEFAULT: Self = Self::Ring;
    /// What [`AeadKey::from_bytes`] uses: [`Ring`](Self::Ring) when the `ring` feature is
    /// on, [`RustCrypto`](Self::RustCrypto) otherwise.
    #[cfg(not(feature = "ring"))]
    pub const DEFAULT: Self = Self::RustCrypto;

    /// Every backend this build has.
    pub const ALL: &'static [Self] = &[
        Self::RustCrypto,
        #[cfg(feature = "ring")]
        Self::Ring,
    ];
}

/// An AES-256-GCM key with its key schedule computed once. With the RustCrypto backend it is
/// zeroed on drop; see [`AeadBackend`] for the other.
///
/// `Debug` prints `AeadKey { .. }`.
#[derive(Clone)]
pub struct AeadKey {
    cipher: Cipher,
}

#[derive(Clone)]
enum Cipher {
    RustCrypto(Aes256Gcm),
    #[cfg(feature = "ring")]
    Ring(ring::aead::LessSafeKey),
}

impl fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AeadKey { .. }")
    }
}

impl AeadKey {
    /// A key from 32 bytes, on [`AeadBackend::DEFAULT`].
    pub fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        Self::from_bytes_with(key, AeadBackend::DEFAULT)
    }

    /// A key from 32 bytes on the given backend.
    pub fn from_bytes_with(key: &[u8; KEY_LEN], backend: AeadBackend) -> Self {
        let cipher = match backend {
            AeadBackend::RustCrypto => Cipher::RustCrypto(Aes256Gcm::new(&(*key).into())),
            #[cfg(feature = "ring")]
            AeadBackend::Ring => {
                let Ok(unbound) = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key) else {
                    // ring refuses only a key of the wrong length; this one is 32 bytes.
                    unreachable!("a 32-byte key is an AES-256 key")
                };
                Cipher::Ring(ring::aead::LessSafeKey::new(unbound))
            }
        };
        Self { cipher }
    }

    /// The backend this key runs on.
    pub fn backend(&self) -> AeadBackend {
        match self.cipher {
            Cipher::RustCrypto(_) => AeadBackend::RustCrypto,
            #[cfg(feature = "ring")]
            Cipher::Ring(_) => AeadBackend::Ring,
        }
    }

    /// Encrypts `in_out` in place and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; format::TAG_LEN], ()> {
        match &self.cipher {
            Cipher::RustCrypto(c) => c
                .encrypt_inout_detached(&Nonce::from(nonce), aad, in_out.into())
                .map(Into::into)
                .map_err(|_| ()),
            #[cfg(feature = "ring")]
            Cipher::Ring(k) => k
                .seal_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::from(aad),
                    in_out,
                )
                .map(|t| {
                    let mut tag = [0u8; format::TAG_LEN];
                    tag.copy_from_slice(t.as_ref());
                    tag
                })
                .map_err(|_| ()),
        }
    }

    /// Checks the tag, then decrypts `in_out` in place; on failure `in_out` may hold
    /// anything and must be discarded.
    pub(crate) fn open_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; format::TAG_LEN],
    ) -> Result<(), ()> {
        match &self.cipher {
            Cipher::RustCrypto(c) => c
                .decrypt_inout_detached(&Nonce::from(nonce), aad, in_out.into(), &Tag::from(*tag))
                .map_err(|_| ()),
            #[cfg(feature = "ring")]
            Cipher::Ring(k) => k
                .open_in_place_separate_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::from(aad),
                    ring::aead::Tag::from(*tag),
                    in_out,
                    0..,
                )
                .map(|_| ())
                .map_err(|_| ()),
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
        key.seal_in_place(nonce, aad, &mut out[PREFIX_LEN..])
    })
    .map_err(|()| CryptoError::PlaintextTooLong {
        len: plaintext.len(),
    })?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Opens a sealed record under `key` and `context`. The key version in the header is part of
/// the associated data but is not checked against `key` here: the keyring picks the key by it.
///
/// Nothing decrypted is returned before the tag verifies: RustCrypto checks the tag before it
/// decrypts; `ring` decrypts and authenticates in one pass into a buffer that is zeroed and
/// dropped when the tag does not verify.
///
/// # Errors
///
/// A framing error from [`format::parse`], or [`CryptoError::DecryptionFailed`] for a wrong
/// key, a wrong context or altered bytes.
pub fn open(key: &AeadKey, blob: &[u8], context: &Context) -> Result<SecretBytes, CryptoError> {
    open_parsed(key, &format::parse(blob)?, context)
}

/// [`open`] of a record already parsed (the keyring parses it once to pick the key).
pub(crate) fn open_parsed(
    key: &AeadKey,
    sealed: &format::Sealed<'_>,
    context: &Context,
) -> Result<SecretBytes, CryptoError> {
    let mut out = SecretBytes::new(sealed.ciphertext.to_vec());
    with_aad(&sealed.header, context, |aad| {
        key.open_in_place(
            sealed.header.nonce,
            aad,
            out.expose_secret_mut(),
            sealed.tag,
        )
    })
    .map_err(|()| CryptoError::DecryptionFailed)?;
    Ok(out)
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
