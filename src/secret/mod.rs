//! Layer 1 of ARCHITECTURE.md: secret values.
//!
//! `SecretString` is `secrecy`'s boxed string; `SecretBytes` is a vector zeroed by `zeroize` on
//! drop, so that a decrypted payload can be handed over without a copy and still have its whole
//! allocation zeroed.
//!
//! [`SecretBytes`] and [`SecretString`] hold key material and decrypted credentials. They are
//! zeroed when dropped, print `[REDACTED]` under `Debug`, have no `Display`, compare in
//! constant time, and hand out their contents only through an explicit `expose_secret` call.
//! This layer must never log, format or serialise a secret unless the caller asks by name.

use std::fmt;

use secrecy::ExposeSecret as _;
use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroize as _;

/// Secret bytes: key material or a decrypted payload.
///
/// Zeroed on drop; `Debug` prints `SecretBytes([REDACTED])`; equality is constant-time.
///
/// ```
/// use credvault::SecretBytes;
///
/// let key = SecretBytes::new(vec![1, 2, 3]);
/// assert_eq!(format!("{key:?}"), "SecretBytes([REDACTED])");
/// assert_eq!(key.expose_secret(), &[1, 2, 3]);
/// ```
#[derive(Clone, Default)]
pub struct SecretBytes(Vec<u8>);

impl Drop for SecretBytes {
    /// Zeroes the whole allocation, spare capacity included, with `zeroize`'s bulk (memset
    /// plus barrier) path; `Zeroizing<Vec<u8>>` zeroes element by element, which costs about
    /// a cycle per byte.
    fn drop(&mut self) {
        self.0.as_mut_slice().zeroize();
        self.0.spare_capacity_mut().zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for SecretBytes {}

impl SecretBytes {
    /// Takes ownership of `bytes`; they are zeroed when the value is dropped (the whole
    /// allocation, spare capacity included).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Copies `bytes` into a new secret. The caller still owns (and should zeroize) the source.
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// The secret bytes. Every call is a place where a secret leaves its box: keep it short.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.expose_secret().len()
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, writable: for the crate's decryptors, which write plaintext in place.
    pub(crate) fn expose_secret_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// Appends `bytes`; when the buffer must grow, the contents move to a new allocation and
    /// the old one is zeroed before it is freed.
    pub(crate) fn extend_zeroizing(&mut self, bytes: &[u8]) {
        let needed = self.0.len() + bytes.len();
        if needed > self.0.capacity() {
            let mut bigger = Vec::with_capacity(needed.max(self.0.capacity() * 2));
            bigger.extend_from_slice(&self.0);
            let mut old = std::mem::replace(&mut self.0, bigger);
            old.as_mut_slice().zeroize();
        }
        self.0.extend_from_slice(bytes);
    }

    /// Shortens to `len` bytes; the rest stays in the allocation and is zeroed on drop.
    pub(crate) fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }

    /// Interprets the bytes as UTF-8 and turns them into a [`SecretString`].
    ///
    /// # Errors
    ///
    /// [`NotUtf8`] if the bytes are not valid UTF-8; the bytes are zeroed either way.
    pub fn into_secret_string(mut self) -> Result<SecretString, NotUtf8> {
        match String::from_utf8(std::mem::take(&mut self.0)) {
            Ok(text) => Ok(SecretString::new(text)),
            Err(err) => {
                err.into_bytes().zeroize();
                Err(NotUtf8)
            }
        }
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes([REDACTED])")
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time in the contents (the lengths are compared first, as `subtle` does).
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret().ct_eq(other.expose_secret()).into()
    }
}

impl Eq for SecretBytes {}

impl secrecy::ExposeSecret<[u8]> for SecretBytes {
    fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for SecretBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(Self::new)
    }
}

/// A secret text: a password, an OAuth token, an API key, a base64 key.
///
/// Zeroed on drop; `Debug` prints `SecretString([REDACTED])`; equality is constant-time.
///
/// ```
/// use credvault::SecretString;
///
/// let token = SecretString::from("ya29.a0Af...");
/// assert_eq!(format!("{token:?}"), "SecretString([REDACTED])");
/// assert!(token.expose_secret().starts_with("ya29."));
/// ```
#[derive(Clone, Default)]
pub struct SecretString(secrecy::SecretString);

impl SecretString {
    /// Takes ownership of `text`; it is zeroed when the value is dropped.
    pub fn new(text: String) -> Self {
        Self(text.into())
    }

    /// The secret text. Every call is a place where a secret leaves its box: keep it short.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.expose_secret().len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the UTF-8 bytes into a [`SecretBytes`].
    pub fn to_secret_bytes(&self) -> SecretBytes {
        SecretBytes::copy_from_slice(self.expose_secret().as_bytes())
    }
}

impl From<String> for SecretString {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl From<&str> for SecretString {
    fn from(text: &str) -> Self {
        Self::new(text.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([REDACTED])")
    }
}

impl PartialEq for SecretString {
    /// Constant-time in the contents.
    fn eq(&self, other: &Self) -> bool {
        self.expose_secret()
            .as_bytes()
            .ct_eq(other.expose_secret().as_bytes())
            .into()
    }
}

impl Eq for SecretString {}

impl secrecy::ExposeSecret<str> for SecretString {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// The bytes of a [`SecretBytes`] were not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("secret is not valid utf-8")]
pub struct NotUtf8;

/// Opt-in serialisation of secrets, for the fields where the caller means it.
///
/// Secret types implement `Deserialize` but not `Serialize`, so a struct holding one does not
/// end up in a log or a JSON response by accident. Where writing the secret out is the point
/// (an export the user asked for, a sealed payload), name this module on the field:
///
/// ```
/// use credvault::SecretString;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Token {
///     #[serde(with = "credvault::secret::expose")]
///     access_token: SecretString,
/// }
///
/// let token = Token { access_token: "abc".into() };
/// assert_eq!(serde_json::to_string(&token).unwrap(), r#"{"access_token":"abc"}"#);
/// ```
pub mod expose {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the secret's contents: a string for [`SecretString`](super::SecretString),
    /// a byte sequence for [`SecretBytes`](super::SecretBytes).
    ///
    /// # Errors
    ///
    /// Whatever the serializer returns.
    pub fn serialize<T: Exposable, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        value.serialize_exposed(s)
    }

    /// Reads a secret (the same as its `Deserialize` impl; here so `with = ...` works).
    ///
    /// # Errors
    ///
    /// Whatever the deserializer returns.
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<T, D::Error> {
        T::deserialize(d)
    }

    /// The secret types this module can write out. Sealed: only credvault's secret types.
    pub trait Exposable: private::Sealed {
        /// Serialises the exposed contents.
        ///
        /// # Errors
        ///
        /// Whatever the serializer returns.
        fn serialize_exposed<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
    }

    impl Exposable for super::SecretString {
        fn serialize_exposed<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.expose_secret().serialize(s)
        }
    }

    impl Exposable for super::SecretBytes {
        fn serialize_exposed<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.expose_secret().serialize(s)
        }
    }

    impl<T: Exposable> Exposable for Option<T> {
        fn serialize_exposed<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Some(v) => s.serialize_some(&Wrapper(v)),
                None => s.serialize_none(),
            }
        }
    }

    struct Wrapper<'a, T>(&'a T);

    impl<T: Exposable> Serialize for Wrapper<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.0.serialize_exposed(s)
        }
    }

    mod private {
        pub trait Sealed {}
        impl Sealed for super::super::SecretString {}
        impl Sealed for super::super::SecretBytes {}
        impl<T: Sealed> Sealed for Option<T> {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_contents() {
        let b = SecretBytes::new(b"hunter2".to_vec());
        let s = SecretString::from("hunter2");
        assert!(!format!("{b:?} {b:#?}").contains("hunter2"));
        assert!(!format!("{s:?} {s:#?}").contains("hunter2"));
        assert!(!format!("{:?}", vec![b.clone()]).contains("104"));
    }

    #[test]
    fn equality_compares_contents() {
        assert_eq!(SecretBytes::new(vec![1, 2]), SecretBytes::new(vec![1, 2]));
        assert_ne!(SecretBytes::new(vec![1, 2]), SecretBytes::new(vec![1, 3]));
        assert_ne!(SecretBytes::new(vec![1]), SecretBytes::new(vec![1, 0]));
        assert_eq!(SecretString::from("a"), SecretString::from("a"));
    }

    #[test]
    fn into_secret_string_checks_utf8() {
        let ok = SecretBytes::new(b"abc".to_vec())
            .into_secret_string()
            .unwrap();
        assert_eq!(ok.expose_secret(), "abc");
        assert_eq!(
            SecretBytes::new(vec![0xff]).into_secret_string(),
            Err(NotUtf8)
        );
    }

    #[test]
    fn deserialize_without_serialize() {
        let s: SecretString = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(s.expose_secret(), "x");
        let b: SecretBytes = serde_json::from_str("[1,2]").unwrap();
        assert_eq!(b.expose_secret(), &[1, 2]);
    }
}
