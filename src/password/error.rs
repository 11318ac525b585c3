//! The password layer's error type.

use super::scheme::SchemeFamily;

/// What can go wrong while hashing or verifying a password.
///
/// A wrong password is not an error: [`PasswordPolicy::verify`](super::PasswordPolicy::verify)
/// answers it with [`Verification::Rejected`](super::Verification::Rejected). Every variant here
/// names a format, a parameter or a length, never the password and never the stored digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The stored hash matches none of the formats this crate reads.
    #[error("unrecognised password hash format")]
    UnknownFormat,

    /// The stored hash names a known format but does not follow it.
    #[error("malformed {format} hash: {problem}")]
    MalformedHash {
        /// The format that was recognised (`"bcrypt"`, `"phc argon2"`, `"django pbkdf2"`...).
        format: &'static str,
        /// What is wrong with it (`"salt is not 22 characters"`...).
        problem: &'static str,
    },

    /// The stored hash uses a variant this crate refuses to verify (for example bcrypt `$2x$`).
    #[error("unsupported password hash variant: {0}")]
    UnsupportedVariant(&'static str),

    /// The stored hash is of a scheme the policy no longer accepts.
    #[error("{0} hashes are not accepted by this policy")]
    SchemeNotAccepted(SchemeFamily),

    /// A cost read from a stored hash (or asked of the policy) is above the cap: verifying it
    /// would let whoever wrote the hash spend our CPU or memory.
    #[error("{parameter} {value} exceeds the limit of {limit}")]
    ExcessiveCost {
        /// Which parameter (`"bcrypt cost"`, `"pbkdf2 iterations"`, `"argon2 memory (KiB)"`...).
        parameter: &'static str,
        /// The value found.
        value: u64,
        /// The largest value allowed.
        limit: u64,
    },

    /// The policy was asked to hash with parameters below the safe floor, without the
    /// [`allow_weak_parameters_for_tests`](super::PasswordPolicy::allow_weak_parameters_for_tests)
    /// opt-in.
    #[error("{parameter} {value} is below the safe minimum of {minimum}")]
    WeakParameters {
        /// Which parameter.
        parameter: &'static str,
        /// The value asked for.
        value: u64,
        /// The smallest value allowed.
        minimum: u64,
    },

    /// The parameters can never work (bcrypt cost below 4, argon2 parallelism 0...).
    #[error("invalid {0}")]
    InvalidParameters(&'static str),

    /// bcrypt reads at most 72 bytes of a password; hashing a longer one would silently
    /// ignore the rest, so it is refused. Choose argon2id or PBKDF2 for long passwords.
    #[error("password is {len} bytes; bcrypt uses at most {max}")]
    PasswordTooLong {
        /// Length of the password, in bytes.
        len: usize,
        /// The scheme's limit, in bytes.
        max: usize,
    },

    /// The blocking task that ran the hash panicked or was cancelled.
    #[error("password hashing task failed")]
    TaskFailed,
}
