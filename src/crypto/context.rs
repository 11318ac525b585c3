//! The context a sealed record is bound to, encoded as associated data (ARCHITECTURE.md, "Formats"): each part
//! length-prefixed with a u32 big-endian, so that no two contexts encode alike.

use crate::KeyVersion;
use crate::crypto::CryptoError;

/// The label of a wrapped DEK's context.
pub(crate) const DEK_LABEL: &[u8] = b"dek";

/// The label of a wrapped vault key's context.
pub(crate) const VAULT_KEY_LABEL: &[u8] = b"vault_key";

/// Where a sealed value belongs: a record's (tenant, kind, name), or a wrapped DEK's
/// ("dek", tenant, DEK version). Opening under any other context fails.
///
/// A context is not secret; `Debug` shows its encoding.
///
/// ```
/// use credvault::crypto::Context;
///
/// let a = Context::record("acme", "oauth_token", "github")?;
/// let b = Context::record("acme", "oauth_token", "gitlab")?;
/// assert_ne!(a, b);
/// // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
/// assert_ne!(Context::from_parts(&[b"ab", b"c"])?, Context::from_parts(&[b"a", b"bc"])?);
/// # Ok::<(), credvault::crypto::CryptoError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Context {
    encoded: Vec<u8>,
}

impl Context {
    /// The context of a record: tenant id, record kind, record name.
    ///
    /// # Errors
    ///
    /// [`CryptoError::ContextPartTooLong`] if a part exceeds `u32::MAX` bytes.
    pub fn record(tenant: &str, kind: &str, name: &str) -> Result<Self, CryptoError> {
        Self::from_parts(&[tenant.as_bytes(), kind.as_bytes(), name.as_bytes()])
    }

    /// The context of a wrapped DEK: `"dek"`, tenant id, DEK version (u32 big-endian).
    ///
    /// # Errors
    ///
    /// [`CryptoError::ContextPartTooLong`] if the tenant id exceeds `u32::MAX` bytes.
    pub fn wrapped_dek(tenant: &str, dek_version: KeyVersion) -> Result<Self, CryptoError> {
        Self::from_parts(&[
            DEK_LABEL,
            tenant.as_bytes(),
            &dek_version.get().to_be_bytes(),
        ])
    }

    /// The context of a key of the vault's own (the login throttle's pseudonym key), wrapped
    /// under the KEK: `"vault_key"`, its name.
    ///
    /// # Errors
    ///
    /// [`CryptoError::ContextPartTooLong`] if the name exceeds `u32::MAX` bytes.
    pub fn vault_key(name: &str) -> Result<Self, CryptoError> {
        Self::from_parts(&[VAULT_KEY_LABEL, name.as_bytes()])
    }

    /// A context from arbitrary parts, each length-prefixed.
    ///
    /// # Errors
    ///
    /// [`CryptoError::ContextPartTooLong`] if a part exceeds `u32::MAX` bytes.
    pub fn from_parts(parts: &[&[u8]]) -> Result<Self, CryptoError> {
        let total = parts.iter().map(|p| p.len() + 4).sum();
        let mut encoded = Vec::with_capacity(total);
        for part in parts {
            let len = u32::try_from(part.len())
                .map_err(|_| CryptoError::ContextPartTooLong { len: part.len() })?;
            encoded.extend_from_slice(&len.to_be_bytes());
            encoded.extend_from_slice(part);
        }
        Ok(Self { encoded })
    }

    /// The encoding fed to GCM after the 8-byte header.
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    /// The parts again, in order (for a key service that wants them readable, such as the AWS
    /// KMS encryption context).
    #[cfg(feature = "aws-kms")]
    pub(crate) fn parts(&self) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = self.encoded.as_slice();
        while let Some((len, tail)) = rest.split_first_chunk::<4>() {
            let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
            let Some((part, tail)) = tail.split_at_checked(len) else {
                break;
            };
            out.push(part);
            rest = tail;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_context_encoding_is_length_prefixed() {
        let c = Context::record("t", "k", "nm").unwrap();
        assert_eq!(c.as_bytes(), b"\0\0\0\x01t\0\0\0\x01k\0\0\0\x02nm");
    }

    #[test]
    fn dek_context_differs_from_record_context() {
        let dek = Context::wrapped_dek("acme", KeyVersion::new(1)).unwrap();
        assert_eq!(
            dek.as_bytes(),
            b"\0\0\0\x03dek\0\0\0\x04acme\0\0\0\x04\0\0\0\x01"
        );
        assert_ne!(dek, Context::record("dek", "acme", "1").unwrap());
    }
}
