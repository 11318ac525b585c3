//! Layer 2 of ARCHITECTURE.md: the cryptographic primitives, pure functions over bytes.
//!
//! Fernet (the spec, exactly), AES-256-GCM sealed records with their binary and text formats,
//! and the context encoding used as associated data. This layer does no I/O and no logging.

pub mod aead;
pub(crate) mod b64;
pub mod context;
pub mod fernet;
pub mod format;
pub(crate) mod rng;
pub mod suite;

pub use aead::{AeadBackend, AeadKey};
pub use context::Context;
pub use fernet::{Fernet, InvalidToken, MultiFernet};
pub(crate) use rng::{fill_from_os_rng, try_fill_from_os_rng};
pub use suite::SealingSuite;

/// Errors of the sealed-record layer. Decryption failures are deliberately one opaque variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// Shorter than a header, nonce and tag.
    #[error("sealed record is truncated: {len} bytes, at least {min} needed")]
    Truncated {
        /// Length received.
        len: usize,
        /// Smallest valid length.
        min: usize,
    },
    /// Does not start with the `cv` magic bytes.
    #[error("not a credvault sealed record (bad magic bytes)")]
    BadMagic,
    /// A format version this build does not know.
    #[error("sealed record format version {0} is not supported (this build reads version 1)")]
    UnsupportedFormatVersion(u8),
    /// An algorithm id this build does not know.
    #[error("sealed record algorithm {0} is not supported (this build knows 1 = aes-256-gcm)")]
    UnsupportedAlgorithm(u8),
    /// The text form lacks its `cv1.` prefix or is not URL-safe base64 without padding.
    #[error("not a cv1. sealed record text (expected `cv1.` and url-safe base64 without padding)")]
    NotSealedText,
    /// A context part is longer than a u32 length prefix can describe.
    #[error("context part is {len} bytes; the limit is u32::MAX")]
    ContextPartTooLong {
        /// Length of the part.
        len: usize,
    },
    /// The plaintext is longer than AES-GCM can seal under one nonce.
    #[error("plaintext is {len} bytes; aes-256-gcm seals at most 64 GiB per record")]
    PlaintextTooLong {
        /// Length of the plaintext.
        len: usize,
    },
    /// The tag did not verify: wrong key, wrong context (tenant, kind or name), or altered
    /// bytes. Deliberately says no more.
    #[error("sealed record failed to open (wrong key, wrong context or altered data)")]
    DecryptionFailed,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    RandomnessUnavailable,
}
