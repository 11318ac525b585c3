//! The vocabulary of a policy: schemes, families, encodings, cost caps, answers.

use std::fmt;

use super::formats::{
    Argon2Variant, BcryptPrehash, DigestAlgorithm, ParsedHash, Prf, ShaCryptVariant,
};

/// The bcrypt cost privacy policies promise ("bcrypt-hashed, cost 12").
pub const BCRYPT_PROMISED_COST: u32 = 12;
/// The lowest bcrypt cost a policy hashes with (OWASP: "a minimum work factor of 10").
pub const MIN_BCRYPT_COST: u32 = 10;
/// OWASP's current PBKDF2-HMAC-SHA256 iteration count, the preset's default and the floor.
pub const PBKDF2_SHA256_OWASP_ITERATIONS: u32 = 600_000;
/// OWASP's argon2id memory, in KiB (19 MiB).
pub const ARGON2ID_OWASP_MEMORY_KIB: u32 = 19_456;
/// OWASP's argon2id passes.
pub const ARGON2ID_OWASP_ITERATIONS: u32 = 2;
/// OWASP's argon2id parallelism.
pub const ARGON2ID_OWASP_PARALLELISM: u32 = 1;
/// The least argon2 memory a policy hashes with: OWASP's cheapest listed configuration
/// (m=7168 KiB, t=5).
pub const MIN_ARGON2_MEMORY_KIB: u32 = 7_168;
/// The least memory x passes a policy hashes with (OWASP's configurations all reach it).
pub const MIN_ARGON2_MEMORY_TIME_PRODUCT: u64 = 35_840;

/// A family of hash schemes, as a policy accepts or refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchemeFamily {
    /// bcrypt (`$2a$`, `$2b$`, `$2y$`, Django `bcrypt$`).
    Bcrypt,
    /// bcrypt over a SHA-256 pre-hash (Django `bcrypt_sha256$`, passlib `$bcrypt-sha256$`).
    BcryptSha256,
    /// PBKDF2-HMAC-SHA1 (Django `pbkdf2_sha1$`, passlib `$pbkdf2$`).
    Pbkdf2Sha1,
    /// PBKDF2-HMAC-SHA256.
    Pbkdf2Sha256,
    /// PBKDF2-HMAC-SHA512.
    Pbkdf2Sha512,
    /// argon2id.
    Argon2id,
    /// argon2i.
    Argon2i,
    /// argon2d.
    Argon2d,
    /// scrypt (Django `scrypt$`, passlib `$scrypt$`).
    Scrypt,
    /// SHA-256-crypt (`$5$`, `{CRYPT}$5$`). Legacy: always upgraded.
    Sha256Crypt,
    /// SHA-512-crypt (`$6$`, `{CRYPT}$6$`). Legacy: always upgraded.
    Sha512Crypt,
    /// One MD5 over salt and password, or the password alone: Django `md5$`, `md5$$`, bare
    /// 32-character hex; LDAP `{MD5}`, `{SMD5}`. Legacy: always upgraded.
    Md5Digest,
    /// One SHA-1 over salt and password, or the password alone: Django `sha1$`, `sha1$$`;
    /// LDAP `{SHA}`, `{SSHA}`. Legacy: always upgraded.
    Sha1Digest,
    /// LDAP `{SSHA256}`: one SHA-256 over password and salt. Legacy: always upgraded.
    Sha256Digest,
    /// LDAP `{SSHA512}`: one SHA-512 over password and salt. Legacy: always upgraded.
    Sha512Digest,
}

impl SchemeFamily {
    /// Every family this crate can verify.
    pub const ALL: [Self; 15] = [
        Self::Bcrypt,
        Self::BcryptSha256,
        Self::Pbkdf2Sha1,
        Self::Pbkdf2Sha256,
        Self::Pbkdf2Sha512,
        Self::Argon2id,
        Self::Argon2i,
        Self::Argon2d,
        Self::Scrypt,
        Self::Sha256Crypt,
        Self::Sha512Crypt,
        Self::Md5Digest,
        Self::Sha1Digest,
        Self::Sha256Digest,
        Self::Sha512Digest,
    ];

    /// Families a hash of which is always upgraded when it verifies, whatever the policy:
    /// single fast digests (minutes on a GPU for a whole table) and SHA-crypt and
    /// PBKDF2-SHA1, which no policy hashes with.
    pub fn is_legacy(self) -> bool {
        matches!(
            self,
            Self::Pbkdf2Sha1
                | Self::Sha256Crypt
                | Self::Sha512Crypt
                | Self::Md5Digest
                | Self::Sha1Digest
                | Self::Sha256Digest
                | Self::Sha512Digest
        )
    }

    pub(crate) fn of(parsed: &ParsedHash) -> Self {
        match parsed {
            ParsedHash::Bcrypt(h) if h.prehash == BcryptPrehash::None => Self::Bcrypt,
            ParsedHash::Bcrypt(_) => Self::BcryptSha256,
            ParsedHash::Pbkdf2(h) => match h.prf {
                Prf::Sha1 => Self::Pbkdf2Sha1,
                Prf::Sha256 => Self::Pbkdf2Sha256,
                Prf::Sha512 => Self::Pbkdf2Sha512,
            },
            ParsedHash::Argon2(h) => match h.variant {
                Argon2Variant::Id => Self::Argon2id,
                Argon2Variant::I => Self::Argon2i,
                Argon2Variant::D => Self::Argon2d,
            },
            ParsedHash::Scrypt(_) => Self::Scrypt,
            ParsedHash::ShaCrypt(h) => match h.variant {
                ShaCryptVariant::Sha256 => Self::Sha256Crypt,
                ShaCryptVariant::Sha512 => Self::Sha512Crypt,
            },
            ParsedHash::Digest(h) => match h.algorithm {
                DigestAlgorithm::Md5 => Self::Md5Digest,
                DigestAlgorithm::Sha1 => Self::Sha1Digest,
                DigestAlgorithm::Sha256 => Self::Sha256Digest,
                DigestAlgorithm::Sha512 => Self::Sha512Digest,
            },
        }
    }
}

impl fmt::Display for SchemeFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bcrypt => "bcrypt",
            Self::BcryptSha256 => "bcrypt-sha256",
            Self::Pbkdf2Sha1 => "pbkdf2-sha1",
            Self::Pbkdf2Sha256 => "pbkdf2-sha256",
            Self::Pbkdf2Sha512 => "pbkdf2-sha512",
            Self::Argon2id => "argon2id",
            Self::Argon2i => "argon2i",
            Self::Argon2d => "argon2d",
            Self::Scrypt => "scrypt",
            Self::Sha256Crypt => "sha256-crypt",
            Self::Sha512Crypt => "sha512-crypt",
            Self::Md5Digest => "md5",
            Self::Sha1Digest => "sha1",
            Self::Sha256Digest => "salted sha256",
            Self::Sha512Digest => "salted sha512",
        })
    }
}

/// The scheme and parameters a policy hashes new passwords with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// bcrypt with `2^cost` rounds. Refuses passwords over 72 bytes rather than truncating.
    Bcrypt {
        /// log2 of the rounds (4-31; policies want at least [`MIN_BCRYPT_COST`]).
        cost: u32,
    },
    /// PBKDF2-HMAC-SHA256 with a 16-byte random salt (22 characters for Django's form).
    Pbkdf2Sha256 {
        /// Iteration count.
        iterations: u32,
    },
    /// argon2id (version 0x13) with a 16-byte random salt and a 32-byte output.
    Argon2id {
        /// Memory in KiB.
        memory_kib: u32,
        /// Passes over memory.
        iterations: u32,
        /// Lanes.
        parallelism: u32,
    },
}

impl Scheme {
    /// The family hashes of this scheme belong to.
    pub fn family(self) -> SchemeFamily {
        match self {
            Self::Bcrypt { .. } => SchemeFamily::Bcrypt,
            Self::Pbkdf2Sha256 { .. } => SchemeFamily::Pbkdf2Sha256,
            Self::Argon2id { .. } => SchemeFamily::Argon2id,
        }
    }
}

/// How new hashes are written. Verification reads every format whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HashEncoding {
    /// `$2b$...` for bcrypt, PHC strings for argon2id and PBKDF2 (`$pbkdf2-sha256$i=...`).
    #[default]
    Standard,
    /// Django's strings (`bcrypt$...`, `pbkdf2_sha256$...`, `argon2$argon2id$...`), readable
    /// by `django.contrib.auth.hashers.check_password`.
    Django,
    /// passlib's strings: `$pbkdf2-sha256$<rounds>$...` in adapted base64; bcrypt and argon2
    /// as in [`Standard`](Self::Standard) (passlib reads those).
    Passlib,
}

/// Caps on the cost of a stored hash. A hash above a cap is refused with
/// [`PasswordError::ExcessiveCost`](super::PasswordError::ExcessiveCost) before any work is done, so a forged row cannot make a
/// login spend minutes or gigabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CostLimits {
    /// Highest bcrypt cost (default 16: ~20 s here).
    pub max_bcrypt_cost: u32,
    /// Most PBKDF2 iterations (default 10 000 000: ten times Django 5.2's default).
    pub max_pbkdf2_iterations: u32,
    /// Most argon2 memory in KiB (default 262 144, 256 MiB).
    pub max_argon2_memory_kib: u32,
    /// Most argon2 passes (default 16).
    pub max_argon2_iterations: u32,
    /// Most argon2 lanes (default 16).
    pub max_argon2_parallelism: u32,
    /// Most scrypt memory, 128 x r x N bytes, in KiB (default 262 144, 256 MiB; Django 5.2
    /// writes 16 MiB, passlib 64 MiB).
    pub max_scrypt_memory_kib: u32,
    /// Most scrypt parallelism p, each a full pass over that memory (default 16; Django
    /// writes 5, passlib 1).
    pub max_scrypt_parallelism: u32,
    /// Most SHA-crypt rounds (default 10 000 000: passlib writes 535 000 for SHA-256-crypt
    /// and 656 000 for SHA-512-crypt, glibc 5 000; the format allows 999 999 999, minutes).
    pub max_sha_crypt_rounds: u32,
}

impl Default for CostLimits {
    fn default() -> Self {
        Self {
            max_bcrypt_cost: 16,
            max_pbkdf2_iterations: 10_000_000,
            max_argon2_memory_kib: 262_144,
            max_argon2_iterations: 16,
            max_argon2_parallelism: 16,
            max_scrypt_memory_kib: 262_144,
            max_scrypt_parallelism: 16,
            max_sha_crypt_rounds: 10_000_000,
        }
    }
}

/// The answer to a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Verification {
    /// The password does not match the hash.
    Rejected,
    /// The password matches.
    Accepted {
        /// The hash is of a weaker scheme or lower parameters than the policy's: store a new
        /// one (see [`PasswordPolicy::verify_and_upgrade`](super::PasswordPolicy::verify_and_upgrade)).
        needs_rehash: bool,
    },
}

impl Verification {
    /// Whether the password matched.
    pub fn is_accepted(self) -> bool {
        matches!(self, Self::Accepted { .. })
    }

    /// Whether the password matched and the hash should be replaced.
    pub fn needs_rehash(self) -> bool {
        matches!(self, Self::Accepted { needs_rehash: true })
    }
}

/// The answer to [`PasswordPolicy::verify_and_upgrade`](super::PasswordPolicy::verify_and_upgrade).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Upgrade {
    /// The password does not match the hash.
    Rejected,
    /// The password matches.
    Accepted {
        /// A hash under the policy's scheme, to store in place of the old one; `None` when
        /// the old one is already as strong as the policy asks.
        new_hash: Option<String>,
    },
}

impl Upgrade {
    /// Whether the password matched.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted { .. })
    }
}
