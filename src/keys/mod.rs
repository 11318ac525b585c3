//! Layer 3 of ARCHITECTURE.md: keys.
//!
//! A [`Keyring`] holds numbered key versions (primary, decrypt-only, destroyed), seals with
//! its primary and opens with the version a record names. It loads from and saves to a key
//! file or an environment variable ([`file`](mod@file)). [`KeyProvider`] is the seam for the
//! key-encryption key: the local keyring, or a PKCS#11 token ([`pkcs11`], feature `pkcs11`)
//! that wraps and unwraps inside itself, or an AWS KMS key ([`awskms`], feature `aws-kms`), or a keyring kept in the operating
//! system's secret store ([`keychain`], feature `os-keychain`). The
//! only I/O here is reading and writing the key file and talking to the token or to KMS.

#[cfg(feature = "aws-kms")]
#[cfg_attr(docsrs, doc(cfg(feature = "aws-kms")))]
pub mod awskms;
pub mod file;
#[cfg(feature = "os-keychain")]
#[cfg_attr(docsrs, doc(cfg(feature = "os-keychain")))]
pub mod keychain;
mod keyfile;
mod keyring;
#[cfg(feature = "sqlcipher")]
mod page_key;
#[cfg(feature = "pkcs11")]
#[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
pub mod pkcs11;
mod provider;

use std::path::PathBuf;

pub use keyfile::KeyFile;
pub(crate) use keyring::now as now_secs;
pub use keyring::{KeyInfo, KeyState, Keyring};
#[cfg(feature = "sqlcipher")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlcipher")))]
pub use page_key::{PAGE_KEY_LABEL, PageKey};
pub use provider::KeyProvider;

use crate::KeyVersion;
use crate::crypto::CryptoError;

/// Errors of the key layer. Messages name versions, files and variables, never key bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A record names a key version this keyring never had.
    #[error("key version {0} is not in the keyring")]
    UnknownVersion(KeyVersion),
    /// A record names a key version that was destroyed: it can no longer be opened.
    #[error("key version {0} was destroyed; records sealed with it cannot be opened")]
    Destroyed(KeyVersion),
    /// A record names a version below the keyring's minimum decryption version.
    #[error("key version {version} is below the minimum decryption version {minimum}")]
    BelowMinimum {
        /// The version the record names.
        version: KeyVersion,
        /// The keyring's minimum.
        minimum: KeyVersion,
    },
    /// The primary key cannot be destroyed, nor forbidden by the minimum decryption version.
    #[error("key version {0} is the primary key; rotate first")]
    IsPrimary(KeyVersion),
    /// The version counter would pass `u32::MAX`.
    #[error("no key version left after {0}")]
    VersionsExhausted(KeyVersion),
    /// A key file or variable could not be parsed or is inconsistent.
    #[error("key file {source_name}: {problem}")]
    Invalid {
        /// The file path or `$VARIABLE` it came from.
        source_name: String,
        /// What is wrong, without any key bytes.
        problem: String,
    },
    /// Reading or writing a key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A tenant-key store (shred secrets) is missing, empty, foreign or unsafe.
    #[error("tenant-key store {place}: {problem}")]
    Store {
        /// The directory (or other place) of the store.
        place: String,
        /// What is wrong.
        problem: String,
    },
    /// The environment variable is not set or not unicode.
    #[error("environment variable {name} is not set (or not valid unicode)")]
    MissingVariable {
        /// The variable's name.
        name: String,
    },
    /// The key service could not answer now (a key call's worker task was lost, a network
    /// key service timed out): retrying later may succeed. Nothing was changed.
    #[error("key service unavailable: {0}")]
    Unavailable(String),
    /// The key service refused the call and will refuse it again until someone changes its
    /// configuration: access denied, the key disabled, scheduled for deletion or not found,
    /// bad credentials. Retrying does not help; nothing was changed.
    #[error("key service refused: {0}")]
    Denied(String),
    /// There is no entry under this service and account in the operating system's secret
    /// store (feature `os-keychain`): a first run, or a store that lost it (Linux keyutils
    /// keys do not survive a reboot). Never answered by creating one.
    #[error(
        "no key in the OS keychain under service {service:?} account {account:?} (create it explicitly on first run)"
    )]
    KeychainMissing {
        /// The entry's service.
        service: String,
        /// The entry's account.
        account: String,
    },
    /// Creating an entry in the operating system's secret store that already exists: it is
    /// never replaced (feature `os-keychain`).
    #[error("the OS keychain already holds an entry under service {service:?} account {account:?}")]
    KeychainExists {
        /// The entry's service.
        service: String,
        /// The entry's account.
        account: String,
    },
    /// The operating system's secret store failed or refused (locked, no session, a platform
    /// limit): feature `os-keychain`.
    #[error("OS keychain entry service {service:?} account {account:?}: {problem}")]
    Keychain {
        /// The entry's service.
        service: String,
        /// The entry's account.
        account: String,
        /// What went wrong, without any stored bytes.
        problem: String,
    },
    /// A cryptographic or format error while sealing or opening.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}
