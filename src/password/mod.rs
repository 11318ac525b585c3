//! Layer 7 of ARCHITECTURE.md: hashing and verifying user passwords, upgrading old hashes on
//! login, and throttling login attempts. Uses only the secret types below it; it must never
//! put a password in an error, a log line or a panic message, nor truncate one silently.
//!
//! # Formats read by [`PasswordPolicy::verify`]
//!
//! | family | strings |
//! |---|---|
//! | bcrypt | `$2a$`, `$2b$`, `$2y$`; Django `bcrypt$` |
//! | bcrypt over SHA-256 | Django `bcrypt_sha256$`; passlib `$bcrypt-sha256$` v1 (`2b,12`) and v2 (`v=2,t=2b,r=12`) |
//! | PBKDF2 | PHC `$pbkdf2-sha256$i=..`, `$pbkdf2-sha512$i=..`; passlib `$pbkdf2-sha256$<rounds>$`, `$pbkdf2-sha512$`, `$pbkdf2$` (SHA-1); Django `pbkdf2_sha256$`, `pbkdf2_sha1$` |
//! | argon2 | PHC `$argon2id$`, `$argon2i$`, `$argon2d$` (versions 16 and 19, outputs of 4-128 bytes); Django `argon2$` |
//! | scrypt | Django `scrypt$`; passlib `$scrypt$ln=..,r=..,p=..$` |
//! | SHA-crypt | `$5$`, `$6$` (with or without `rounds=`) |
//! | digests (legacy) | Django `md5$`, `sha1$`, unsalted `md5$$`, `sha1$$`, bare 32-hex MD5; LDAP `{MD5}`, `{SHA}`, `{SMD5}`, `{SSHA}`, `{SSHA256}`, `{SSHA512}`, `{CRYPT}` |
//! | Django's unusable marker | `!...`: always [`Verification::Rejected`], after a dummy verify |
//!
//! bcrypt `$2x$` is refused ([`PasswordError::UnsupportedVariant`]). bcrypt hashes are
//! verified as the libraries that wrote them computed them: a password over 72 bytes is cut
//! at 72. New bcrypt hashes refuse such passwords instead ([`PasswordError::PasswordTooLong`]).
//!
//! # Off the async runtime
//!
//! Each hash costs 20-300 ms of CPU. In async code use [`LoginGuard`] or the `_async`
//! methods, which run on tokio's blocking pool, never the hash calls themselves.

mod error;
mod formats;
mod guard;
mod kdf;
mod policy;
mod pseudonym;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod scheme;
pub mod throttle;

mod asynchronous;

pub use error::PasswordError;
pub use guard::{LoginError, LoginGuard, LoginOutcome};
pub use policy::PasswordPolicy;
pub use pseudonym::{PSEUDONYM_KEY_LEN, PseudonymKey};
#[cfg(feature = "redis")]
pub use redis::{RedisThrottle, RedisThrottleError};
pub use scheme::{
    ARGON2ID_OWASP_ITERATIONS, ARGON2ID_OWASP_MEMORY_KIB, ARGON2ID_OWASP_PARALLELISM,
    BCRYPT_PROMISED_COST, CostLimits, HashEncoding, MIN_ARGON2_MEMORY_KIB,
    MIN_ARGON2_MEMORY_TIME_PRODUCT, MIN_BCRYPT_COST, PBKDF2_SHA256_OWASP_ITERATIONS, Scheme,
    SchemeFamily, Upgrade, Verification,
};
pub use throttle::{Decision, InMemoryThrottle, LoginThrottle, ThrottleConfig};

/// Parses a hash string as `verify` would, re-encodes what it can, and checks the result
/// parses back the same. For the fuzz target `password_hash` (feature `fuzzing`); not a
/// stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub fn fuzz_parse_hash(data: &[u8]) {
    formats::fuzz_round_trip(data);
}
