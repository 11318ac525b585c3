#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod backend;
pub mod crypto;
pub mod envelope;
mod error;
mod fsutil;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod ids;
pub mod keys;
pub mod password;
pub mod promises;
pub mod secret;
pub mod store;
pub mod text;

pub use error::Error;
pub use ids::{IdError, KeyVersion, RecordKind, RecordName, TenantId};
pub use keys::{KeyProvider, Keyring};
pub use password::{PasswordError, PasswordPolicy, Verification};
pub use secret::{SecretBytes, SecretString};
// The vault's path, at the root: `credvault::Vault`, `credvault::OAuthToken`...
/// The `sqlx` this build uses, so an application can name the exact pool types
/// (`credvault::sqlx::SqlitePool`) that `SqliteBackend::from_pool` / `PgBackend::from_pool`
/// take, without a version mismatch.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sqlx;
pub use store::{
    ApiKey, OAuthToken, RecordInfo, SecretKind, SessionCookies, StoreError, Tenant, Vault,
    VaultConfig, Versioned,
};
