//! Layer 4 of ARCHITECTURE.md: envelope encryption.
//!
//! Every tenant has its own data key (DEK), stored only wrapped by the key-encryption key
//! ([`KeyProvider`](crate::keys::KeyProvider)). The key that seals records is derived from the
//! unwrapped DEK *and* a per-tenant shred secret that lives outside the database, in a
//! [`TenantKeyStore`]. Purging a tenant destroys its shred secret: from then on no copy of the
//! database, old backups included, can open that tenant's records, even with the KEK. This
//! layer does no database I/O.

mod dek;
#[cfg(feature = "postgres")]
mod pg_store;
#[cfg(feature = "pkcs11")]
#[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
pub mod pkcs11_store;
mod shred;

pub(crate) use dek::{TenantDek, derive_personal_key, new_dek_material};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use pg_store::PgTenantKeys;
#[cfg(feature = "pkcs11")]
#[cfg_attr(docsrs, doc(cfg(feature = "pkcs11")))]
pub use pkcs11_store::Pkcs11TenantKeys;
pub use shred::{DirTenantKeys, MemoryTenantKeys, TenantKeyStore};
