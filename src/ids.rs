//! Validated newtypes shared by the layers. No logic beyond validation.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The number of a key in a [`Keyring`](crate::keys::Keyring), as written into every sealed
/// record's header (u32 big-endian). Keyrings number their keys from 1.
///
/// ```
/// use credvault::KeyVersion;
///
/// let v = KeyVersion::new(3);
/// assert_eq!(v.get(), 3);
/// assert_eq!(v.to_string(), "v3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyVersion(u32);

impl KeyVersion {
    /// The first version a new keyring gets.
    pub const FIRST: Self = Self(1);

    /// Wraps a version number.
    pub const fn new(version: u32) -> Self {
        Self(version)
    }

    /// The version number.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The next version, or `None` after `u32::MAX`.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }

    /// The version before this one (saturating at 0).
    pub fn prev(self) -> Self {
        Self(self.0.saturating_sub(1))
    }
}

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// A validated identifier of one of the newtypes below was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Empty, or longer than the limit.
    #[error("{what} must be 1 to {max} bytes long, got {len}")]
    Length {
        /// Which identifier.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("{what} may only contain {allowed}")]
    Character {
        /// Which identifier.
        what: &'static str,
        /// The allowed characters.
        allowed: &'static str,
    },
}

macro_rules! validated_id {
    (
        $(#[$doc:meta])*
        $name:ident, $what:literal, max = $max:expr, allowed = $allowed:literal, $check:expr
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The longest value accepted, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Validates and wraps `value`.
            ///
            /// # Errors
            ///
            /// [`IdError`] if it is empty, too long, or holds a character outside the set.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                if value.is_empty() || value.len() > $max {
                    return Err(IdError::Length { what: $what, len: value.len(), max: $max });
                }
                let check: fn(char) -> bool = $check;
                if !value.chars().all(check) {
                    return Err(IdError::Character { what: $what, allowed: $allowed });
                }
                Ok(Self(value))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Serialises as its text (reports, exports).
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

validated_id!(
    /// A tenant: the unit of isolation, with its own data key. 1 to 128 bytes of ASCII letters,
    /// digits and `_ - . : @`.
    ///
    /// ```
    /// use credvault::TenantId;
    ///
    /// assert!(TenantId::new("acme-inc").is_ok());
    /// assert!(TenantId::new("").is_err());
    /// assert!(TenantId::new("a/b").is_err());
    /// ```
    TenantId, "tenant id", max = 128, allowed = "ascii letters, digits and _ - . : @",
    |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@')
);

validated_id!(
    /// The kind of a record (`oauth_token`, `api_key`, ...). 1 to 64 bytes of lowercase ASCII
    /// letters, digits and `_ - .`.
    RecordKind, "record kind", max = 64, allowed = "lowercase ascii letters, digits and _ - .",
    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
);

validated_id!(
    /// The name of a record within its tenant and kind (`github`, `stripe:acct_123`). 1 to 256
    /// bytes of UTF-8 without control characters.
    RecordName, "record name", max = 256, allowed = "printable characters (no control characters)",
    |c| !c.is_control()
);
