//! SQLCipher page keys derived from the KEK (feature `sqlcipher`): ARCHITECTURE.md, "Desktop
//! mode". The backend gets these, never the keyring.

use std::fmt;

use zeroize::Zeroizing;

use crate::KeyVersion;
use crate::keys::{KeyError, KeyState, Keyring};

/// The HKDF info label of the page key (followed by the KEK version, u32 big-endian).
pub const PAGE_KEY_LABEL: &str = "credvault sqlcipher page key v1";

/// The SQLCipher page key of an encrypted database file, derived from one KEK version:
/// HKDF-SHA256 with no salt, the KEK as input key material and [`PAGE_KEY_LABEL`] || version
/// (u32 BE) as info. `Debug` shows the version only.
///
/// ```
/// use credvault::Keyring;
/// use credvault::keys::PageKey;
///
/// let mut kek = Keyring::generate()?;
/// kek.rotate()?;
/// let keys = PageKey::candidates(&kek)?; // primary (v2) first, then v1
/// assert_eq!(keys.iter().map(|k| k.version().get()).collect::<Vec<_>>(), [2, 1]);
/// # Ok::<(), credvault::keys::KeyError>(())
/// ```
pub struct PageKey {
    version: KeyVersion,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for PageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl PageKey {
    /// The page key of KEK `version` of `kek`.
    ///
    /// # Errors
    ///
    /// [`KeyError::UnknownVersion`], [`KeyError::Destroyed`] or [`KeyError::BelowMinimum`].
    pub fn derive(kek: &Keyring, version: KeyVersion) -> Result<Self, KeyError> {
        Ok(Self {
            version,
            key: kek.derive_subkey(version, PAGE_KEY_LABEL.as_bytes())?,
        })
    }

    /// The page key of `kek`'s primary version: the one a file is keyed under.
    ///
    /// # Errors
    ///
    /// As [`derive`](Self::derive).
    pub fn primary(kek: &Keyring) -> Result<Self, KeyError> {
        Self::derive(kek, kek.primary_version())
    }

    /// The page keys an encrypted file may be keyed under: the primary version's first (the
    /// one it must end up under), then every other live version's, newest first. What
    /// `backend::sqlcipher::open` takes.
    ///
    /// # Errors
    ///
    /// As [`derive`](Self::derive).
    pub fn candidates(kek: &Keyring) -> Result<Vec<Self>, KeyError> {
        let primary = kek.primary_version();
        let mut versions: Vec<KeyVersion> = kek
            .infos()
            .filter(|i| i.state != KeyState::Destroyed && !i.below_minimum)
            .map(|i| i.version)
            .collect();
        versions.sort_by_key(|v| std::cmp::Reverse((*v == primary, *v)));
        versions.into_iter().map(|v| Self::derive(kek, v)).collect()
    }

    /// The KEK version it was derived from.
    pub fn version(&self) -> KeyVersion {
        self.version
    }

    /// `"x'<64 hex digits>'"`: SQLCipher's raw key form, quoted for a pragma.
    pub(crate) fn pragma_value(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut text = String::with_capacity(69);
        text.push_str("\"x'");
        for b in self.key.iter() {
            text.push(char::from(HEX[usize::from(b >> 4)]));
            text.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        text.push_str("'\"");
        text
    }
}
