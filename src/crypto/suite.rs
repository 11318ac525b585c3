//! Sealing suites (ARCHITECTURE.md, "Sealing suites"): which construction seals a record's
//! payload, how a stored payload says which one sealed it, and the Fernet suite's plaintext
//! layout. Pure functions over bytes.
//!
//! - [`SealingSuite::Aes256Gcm`]: the sealed-record format of [`format`](crate::crypto::format)
//!   (binary, starts with the magic bytes `cv`).
//! - [`SealingSuite::Fernet`]: the payload *is* a Fernet token (its URL-safe base64 text, as
//!   ASCII bytes; it starts with `g`, the base64 of the version byte 0x80), under a per-tenant
//!   Fernet key. The token's plaintext is the record's context (tenant, kind, name, each
//!   prefixed with its length as a u32 big-endian: [`Context::record`]'s encoding) followed by
//!   the record's JSON; the context is checked after decryption, so a token moved to another
//!   record's row fails to open.
//!
//! The two first bytes (`c` = 0x63 and `g` = 0x67) never collide, so a reader tells the suites
//! apart without a column of its own.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::fernet::Fernet;
use crate::crypto::format::MAGIC;
use crate::crypto::{Context, CryptoError};
use crate::secret::SecretBytes;

/// The first byte of every Fernet token's text (`g`: base64 of the version byte 0x80).
pub const FERNET_FIRST_BYTE: u8 = b'g';

/// How a vault seals record payloads. Reads accept both, always; writes use the configured one.
///
/// Serialised (and parsed) as `"aes-256-gcm"` or `"fernet"`, the words a promise file uses.
///
/// ```
/// use credvault::crypto::SealingSuite;
///
/// assert_eq!("fernet".parse::<SealingSuite>()?, SealingSuite::Fernet);
/// assert_eq!(SealingSuite::default(), SealingSuite::Aes256Gcm);
/// assert_eq!(SealingSuite::Aes256Gcm.as_str(), "aes-256-gcm");
/// # Ok::<(), credvault::crypto::suite::UnknownSuite>(())
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[non_exhaustive]
pub enum SealingSuite {
    /// AES-256-GCM in the sealed-record format (the default).
    #[default]
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// Fernet (AES-128-CBC + HMAC-SHA256), spec-exact tokens that Python's `cryptography`
    /// decrypts with the tenant's exported Fernet key.
    #[serde(rename = "fernet")]
    Fernet,
}

impl SealingSuite {
    /// Both suites, in a fixed order.
    pub const ALL: [SealingSuite; 2] = [SealingSuite::Aes256Gcm, SealingSuite::Fernet];

    /// Its name: `aes-256-gcm` or `fernet`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Aes256Gcm => "aes-256-gcm",
            Self::Fernet => "fernet",
        }
    }

    /// The suite that sealed a stored payload, told by its first byte; `None` if it is
    /// neither (the open then fails as corrupt).
    pub fn of_sealed(blob: &[u8]) -> Option<Self> {
        match blob.first() {
            Some(&b) if b == MAGIC[0] => Some(Self::Aes256Gcm),
            Some(&FERNET_FIRST_BYTE) => Some(Self::Fernet),
            _ => None,
        }
    }

    /// The first byte of a payload this suite seals.
    pub const fn first_byte(self) -> u8 {
        match self {
            Self::Aes256Gcm => MAGIC[0],
            Self::Fernet => FERNET_FIRST_BYTE,
        }
    }
}

impl fmt::Display for SealingSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A suite name other than `aes-256-gcm` or `fernet`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown sealing suite {0:?} (known: aes-256-gcm, fernet)")]
pub struct UnknownSuite(pub String);

impl FromStr for SealingSuite {
    type Err = UnknownSuite;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "aes-256-gcm" | "aes256gcm" | "gcm" => Ok(Self::Aes256Gcm),
            "fernet" => Ok(Self::Fernet),
            _ => Err(UnknownSuite(s.to_owned())),
        }
    }
}

/// Seals `payload` as a Fernet token stamped `now` (Unix seconds) whose plaintext is
/// `context ‖ payload`, with a random IV unique across `fork()`. Returns the token's text as
/// bytes (what is stored).
///
/// # Errors
///
/// [`CryptoError::RandomnessUnavailable`] if the IV cannot be drawn (never a panic).
///
/// ```
/// use credvault::crypto::{suite, Context, Fernet};
///
/// let f = Fernet::new(Fernet::generate_key().expose_secret())?;
/// let ctx = Context::record("acme", "oauth_token", "github")?;
/// let token = suite::fernet_seal(&f, b"{\"a\":1}", &ctx, 1_700_000_000)?;
/// assert!(token.starts_with(b"gAAAAA"));
/// assert_eq!(suite::fernet_open(&f, &token, &ctx)?.expose_secret(), b"{\"a\":1}");
/// let moved = Context::record("acme", "oauth_token", "gitlab")?;
/// assert!(suite::fernet_open(&f, &token, &moved).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn fernet_seal(
    fernet: &Fernet,
    payload: &[u8],
    context: &Context,
    now: u64,
) -> Result<Vec<u8>, CryptoError> {
    let ctx = context.as_bytes();
    let mut plain = Zeroizing::new(Vec::with_capacity(ctx.len() + payload.len()));
    plain.extend_from_slice(ctx);
    plain.extend_from_slice(payload);
    let mut iv = [0u8; 16];
    crate::crypto::rng::try_fill_nonce(&mut iv)?;
    Ok(fernet.danger_encrypt_with_iv(&plain, now, iv).into_bytes())
}

/// Opens a payload sealed by [`fernet_seal`]: the token must verify under `fernet` (no time
/// check, as Python's `decrypt` without a TTL) and its plaintext must start with `context`.
///
/// # Errors
///
/// [`CryptoError::DecryptionFailed`] for a token that does not verify, or one bound to
/// another record (deliberately the same error).
pub fn fernet_open(
    fernet: &Fernet,
    token: &[u8],
    context: &Context,
) -> Result<SecretBytes, CryptoError> {
    let plain = fernet
        .decrypt(token)
        .map_err(|_| CryptoError::DecryptionFailed)?;
    let ctx = context.as_bytes();
    match plain.expose_secret().split_at_checked(ctx.len()) {
        Some((bound, payload)) if bound == ctx => Ok(SecretBytes::copy_from_slice(payload)),
        _ => Err(CryptoError::DecryptionFailed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_the_suites_apart() {
        let f = Fernet::new(Fernet::generate_key().expose_secret()).unwrap();
        let ctx = Context::record("t", "k", "n").unwrap();
        let token = fernet_seal(&f, b"x", &ctx, 0).unwrap();
        assert_eq!(SealingSuite::of_sealed(&token), Some(SealingSuite::Fernet));
        assert_eq!(
            SealingSuite::of_sealed(b"cv\x01\x01"),
            Some(SealingSuite::Aes256Gcm)
        );
        assert_eq!(SealingSuite::of_sealed(b""), None);
        assert_eq!(SealingSuite::of_sealed(b"zzz"), None);
    }

    #[test]
    fn plaintext_is_context_then_payload() {
        let f = Fernet::new(Fernet::generate_key().expose_secret()).unwrap();
        let ctx = Context::record("t", "k", "nm").unwrap();
        let token = fernet_seal(&f, b"{}", &ctx, 0).unwrap();
        let plain = f.decrypt(&token).unwrap();
        assert_eq!(
            plain.expose_secret(),
            b"\0\0\0\x01t\0\0\0\x01k\0\0\0\x02nm{}"
        );
        // A shorter plaintext than the context does not panic.
        let short = f.encrypt_at_time(b"ab", 0);
        assert!(matches!(
            fernet_open(&f, short.as_bytes(), &ctx),
            Err(CryptoError::DecryptionFailed)
        ));
    }
}
