//! `credvault::Error`: the one enum most callers match on. Each layer has its own error enum;
//! each converts into this one with `?`.

use crate::backend::BackendError;
use crate::crypto::CryptoError;
use crate::crypto::fernet::{EmptyKeyList, FernetKeyError, InvalidToken};
use crate::keys::KeyError;
use crate::password::PasswordError;
use crate::store::{ImportError, StoreError};

/// Any credvault error. Messages name ids, versions, lengths and paths, never secret bytes.
///
/// ```
/// use credvault::crypto::fernet::Fernet;
///
/// fn read(token: &str, key: &str) -> Result<Vec<u8>, credvault::Error> {
///     let f = Fernet::new(key)?;
///     Ok(f.decrypt(token)?.expose_secret().to_vec())
/// }
/// let key = Fernet::generate_key();
/// let err = read("not a token", key.expose_secret()).unwrap_err();
/// assert!(matches!(err, credvault::Error::InvalidToken(_)));
/// assert_eq!(err.to_string(), "invalid token (not a fernet token)");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A sealed record could not be parsed or opened.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A Fernet token was refused.
    #[error(transparent)]
    InvalidToken(#[from] InvalidToken),
    /// A Fernet key could not be parsed.
    #[error(transparent)]
    FernetKey(#[from] FernetKeyError),
    /// A `MultiFernet` was built from no keys.
    #[error(transparent)]
    EmptyKeyList(#[from] EmptyKeyList),
    /// A keyring, key file or key provider error.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A vault operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A legacy import stopped because the vault failed; it holds the report so far (boxed:
    /// the report is large).
    #[error(transparent)]
    Import(Box<ImportError>),
    /// A storage backend failed outside a vault operation.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A password could not be hashed or a stored hash could not be read.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A promise file was refused, or a setting contradicts it.
    #[error(transparent)]
    Promise(#[from] crate::promises::PromiseError),
}

impl Error {
    /// Whether the thing asked for does not exist ([`StoreError::is_not_found`]): HTTP 404.
    ///
    /// With [`is_conflict`](Self::is_conflict) and [`is_unavailable`](Self::is_unavailable),
    /// mapping to HTTP is one `match`:
    ///
    /// ```
    /// fn status(e: &credvault::Error) -> u16 {
    ///     match e {
    ///         e if e.is_not_found() => 404,
    ///         e if e.is_conflict() => 409,
    ///         e if e.is_unavailable() => 503,
    ///         _ => 500,
    ///     }
    /// }
    /// # let _ = status;
    /// ```
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_not_found())
    }

    /// Whether the request conflicts with the stored state ([`StoreError::is_conflict`]):
    /// HTTP 409.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Store(e) => e.is_conflict(),
            Self::Backend(e) => e.kind() == crate::backend::BackendErrorKind::Conflict,
            _ => false,
        }
    }

    /// Whether the storage could not serve the request now ([`StoreError::is_unavailable`]):
    /// HTTP 503, retry later.
    pub fn is_unavailable(&self) -> bool {
        use crate::backend::BackendErrorKind::{ReadOnly, Unavailable};
        match self {
            Self::Store(e) => e.is_unavailable(),
            Self::Backend(e) => matches!(e.kind(), Unavailable | ReadOnly),
            _ => false,
        }
    }
}

impl From<ImportError> for Error {
    fn from(e: ImportError) -> Self {
        Self::Import(Box::new(e))
    }
}
