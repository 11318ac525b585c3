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
