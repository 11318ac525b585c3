//! [`PasswordPolicy`]: one scheme to hash with, the families still accepted, caps on what a
//! stored hash may cost, and upgrade on login.

use std::sync::{Arc, OnceLock};

use super::error::PasswordError;
use super::formats::{self, Argon2Hash, Argon2Variant, ParsedHash, Pbkdf2Hash, Prf};
use super::kdf;
use super::scheme::{
    ARGON2ID_OWASP_ITERATIONS, ARGON2ID_OWASP_MEMORY_KIB, ARGON2ID_OWASP_PARALLELISM, CostLimits,
    HashEncoding, MIN_ARGON2_MEMORY_KIB, MIN_ARGON2_MEMORY_TIME_PRODUCT, MIN_BCRYPT_COST,
    PBKDF2_SHA256_OWASP_ITERATIONS, Scheme, SchemeFamily, Upgrade, Verification,
};
use crate::SecretString;

const SALT_LEN: usize = 16;
const DIGEST_LEN: usize = 32;
/// Django salts are 22 alphanumeric characters (`get_random_string(22)`), ~131 bits.
const DJANGO_SALT_CHARS: usize = 22;
/// The password behind the dummy hash of [`PasswordPolicy::verify_dummy`]; never a user's.
const DUMMY_PASSWORD: &[u8] = b"credvault dummy password for absent users";

/// How passwords are hashed and which stored hashes are still accepted: passlib's
/// `CryptContext` or Django's `PASSWORD_HASHERS`, in Rust.
///
/// Passwords come in as [`SecretString`] (hashed as their UTF-8 bytes, with no Unicode
/// normalisation: normalise before calling if your old system did) or, through the `_bytes`
/// methods, as raw bytes for legacy systems whose passwords are not UTF-8. Hashes go out as
/// `String`: a hash is not a secret, but it is an offline-attack target, so store it as
/// carefully as the rest of the user row.
///
/// ```
/// use credvault::SecretString;
/// use credvault::password::{PasswordPolicy, Scheme};
///
/// // Production code would use `PasswordPolicy::bcrypt(12)?` or `PasswordPolicy::default()`;
/// // doctests use a cheap cost through the named opt-in.
/// let policy = PasswordPolicy::allow_weak_parameters_for_tests(Scheme::Bcrypt { cost: 4 })?;
/// let password = SecretString::from("correct horse battery staple");
/// let hash = policy.hash(&password)?;
/// assert!(hash.starts_with("$2b$04$"));
/// assert!(policy.verify(&password, &hash)?.is_accepted());
/// assert!(!policy.verify(&SecretString::from("wrong"), &hash)?.is_accepted());
/// # Ok::<(), credvault::password::PasswordError>(())
/// ```
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    scheme: Scheme,
    accepted: Vec<SchemeFamily>,
    encoding: HashEncoding,
    limits: CostLimits,
    allow_weak: bool,
    dummy: Arc<OnceLock<Result<ParsedHash, PasswordError>>>,
}

impl Default for PasswordPolicy {
    /// argon2id with OWASP's parameters (m=19456 KiB, t=2, p=1), every family accepted.
    fn default() -> Self {
        Self::build(
            Scheme::Argon2id {
                memory_kib: ARGON2ID_OWASP_MEMORY_KIB,
                iterations: ARGON2ID_OWASP_ITERATIONS,
                parallelism: ARGON2ID_OWASP_PARALLELISM,
            },
            false,
        )
    }
}

impl PasswordPolicy {
    /// A policy that hashes with `scheme` and accepts every family on verify.
    ///
    /// # Errors
    ///
    /// [`PasswordError::WeakParameters`] below the floors ([`MIN_BCRYPT_COST`],
    /// [`PBKDF2_SHA256_OWASP_ITERATIONS`], [`MIN_ARGON2_MEMORY_KIB`] and
    /// [`MIN_ARGON2_MEMORY_TIME_PRODUCT`]), [`PasswordError::ExcessiveCost`] above the
    /// default [`CostLimits`], [`PasswordError::InvalidParameters`] for impossible values.
    pub fn new(scheme: Scheme) -> Result<Self, PasswordError> {
        validate(scheme, &CostLimits::default(), false)?;
        Ok(Self::build(scheme, false))
    }

    /// bcrypt at `cost`: "passwords are bcrypt-hashed (cost 12)" is `bcrypt(12)`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new): a cost below 10 or above 16 is refused.
    pub fn bcrypt(cost: u32) -> Result<Self, PasswordError> {
        Self::new(Scheme::Bcrypt { cost })
    }

    /// PBKDF2-HMAC-SHA256 with a random salt: "PBKDF2 with salt". OWASP's current count is
    /// [`PBKDF2_SHA256_OWASP_ITERATIONS`] (600 000).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new): fewer than 600 000 or more than 10 000 000 iterations.
    pub fn pbkdf2_sha256(iterations: u32) -> Result<Self, PasswordError> {
        Self::new(Scheme::Pbkdf2Sha256 { iterations })
    }

    /// argon2id with `memory_kib` KiB, `iterations` passes and `parallelism` lanes.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn argon2id(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    ) -> Result<Self, PasswordError> {
        Self::new(Scheme::Argon2id {
            memory_kib,
            iterations,
            parallelism,
        })
    }

    /// A policy that may hash below the safe floors. For tests and doctests only: hashes it
    /// writes are cheap to crack. Caps and impossible values are still refused.
    ///
    /// # Errors
    ///
    /// [`PasswordError::ExcessiveCost`] or [`PasswordError::InvalidParameters`].
    pub fn allow_weak_parameters_for_tests(scheme: Scheme) -> Result<Self, PasswordError> {
        validate(scheme, &CostLimits::default(), true)?;
        Ok(Self::build(scheme, true))
    }

    fn build(scheme: Scheme, allow_weak: bool) -> Self {
        Self {
            scheme,
            accepted: SchemeFamily::ALL.to_vec(),
            encoding: HashEncoding::Standard,
            limits: CostLimits::default(),
            allow_weak,
            dummy: Arc::new(OnceLock::new()),
        }
    }

    /// Writes new hashes in `encoding` (default [`HashEncoding::Standard`]).
    pub fn with_encoding(mut self, encoding: HashEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Accepts only `families` on verify (the policy's own family is always accepted); a
    /// hash of another family is [`PasswordError::SchemeNotAccepted`]. Default: all.
    pub fn with_accepted(mut self, families: &[SchemeFamily]) -> Self {
        self.accepted = families.to_vec();
        if !self.accepted.contains(&self.scheme.family()) {
            self.accepted.push(self.scheme.family());
        }
        self
    }

    /// Replaces the caps on stored hashes' costs (default [`CostLimits::default`]).
    ///
    /// # Errors
    ///
    /// [`PasswordError::ExcessiveCost`] if the policy's own scheme is above the new caps.
    pub fn with_cost_limits(mut self, limits: CostLimits) -> Result<Self, PasswordError> {
        validate(self.scheme, &limits, self.allow_weak)?;
        self.limits = limits;
        Ok(self)
    }

    /// The scheme new hashes are made with.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Hashes a password under the policy's scheme, with a fresh random salt.
    ///
    /// # Errors
    ///
    /// [`PasswordError::PasswordTooLong`] for bcrypt and a password over 72 bytes.
    pub fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        self.hash_bytes(password.expose_secret().as_bytes())
    }

    /// [`hash`](Self::hash) for a password given as bytes (need not be UTF-8).
    ///
    /// # Errors
    ///
    /// As [`hash`](Self::hash).
    pub fn hash_bytes(&self, password: &[u8]) -> Result<String, PasswordError> {
        match self.scheme {
            Scheme::Bcrypt { cost } => self.hash_bcrypt(cost, password),
            Scheme::Pbkdf2Sha256 { iterations } => Ok(self.hash_pbkdf2(iterations, password)),
            Scheme::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => {
                let mut h = Argon2Hash {
                    variant: Argon2Variant::Id,
                    version: 0x13,
                    m_cost: memory_kib,
                    t_cost: iterations,
                    p_cost: parallelism,
                    salt: random_bytes(SALT_LEN),
                    digest: vec![0; DIGEST_LEN],
                };
                let mut digest = vec![0; DIGEST_LEN];
                kdf::argon2(&h, password, &mut digest)?;
                h.digest = digest;
                let phc = formats::phc::encode_argon2(&h);
                Ok(match self.encoding {
                    HashEncoding::Django => formats::django::encode_argon2(&phc),
                    HashEncoding::Standard | HashEncoding::Passlib => phc,
                })
            }
        }
    }

    fn hash_bcrypt(&self, cost: u32, password: &[u8]) -> Result<String, PasswordError> {
        if password.len() > kdf::BCRYPT_MAX_KEY_LEN {
            return Err(PasswordError::PasswordTooLong {
                len: password.len(),
                max: kdf::BCRYPT_MAX_KEY_LEN,
            });
        }
        let mut salt = [0u8; 16];
        crate::crypto::rng::fill_nonce(&mut salt);
        let digest = kdf::bcrypt_truncating(cost, salt, password);
        let mcf = formats::bcrypt::encode(cost, &salt, &digest);
        Ok(match self.encoding {
            HashEncoding::Django => formats::django::encode_bcrypt(&mcf),
            HashEncoding::Standard | HashEncoding::Passlib => mcf,
        })
    }

    fn hash_pbkdf2(&self, iterations: u32, password: &[u8]) -> String {
        let salt = match self.encoding {
            HashEncoding::Django => random_alphanumeric(DJANGO_SALT_CHARS),
            HashEncoding::Standard | HashEncoding::Passlib => random_bytes(SALT_LEN),
        };
        let mut digest = vec![0; DIGEST_LEN];
        kdf::pbkdf2(Prf::Sha256, password, &salt, iterations, &mut digest);
        let h = Pbkdf2Hash {
            prf: Prf::Sha256,
            iterations,
            salt,
            digest,
        };
        match self.encoding {
            HashEncoding::Standard => formats::phc::encode_pbkdf2(&h),
            HashEncoding::Django => formats::django::encode_pbkdf2(&h),
            HashEncoding::Passlib => formats::passlib::encode_pbkdf2(&h),
        }
    }

    /// Verifies a password against a stored hash of any supported format (see the
    /// [module docs](super)), and says whether the hash should be upgraded.
    ///
    /// # Errors
    ///
    /// [`PasswordError::UnknownFormat`] or [`PasswordError::MalformedHash`] for a string that
    /// is not a hash we read, [`PasswordError::UnsupportedVariant`],
    /// [`PasswordError::SchemeNotAccepted`], and [`PasswordError::ExcessiveCost`] for a hash
    /// above the [`CostLimits`]. A wrong password is not an error but
    /// [`Verification::Rejected`]; so is Django's unusable-password marker (a hash starting
    /// with `!`, from `set_unusable_password()`), which takes the time of
    /// [`verify_dummy`](Self::verify_dummy), as Django's `check_password` does.
    pub fn verify(
        &self,
        password: &SecretString,
        hash: &str,
    ) -> Result<Verification, PasswordError> {
        self.verify_bytes(password.expose_secret().as_bytes(), hash)
    }

    /// [`verify`](Self::verify) for a password given as bytes.
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify).
    pub fn verify_bytes(&self, password: &[u8], hash: &str) -> Result<Verification, PasswordError> {
        if formats::django::is_unusable(hash) {
            return Ok(self.verify_dummy_bytes(password));
        }
        let parsed = self.parse_checked(hash)?;
        if kdf::matches(&parsed, password)? {
            Ok(Verification::Accepted {
                needs_rehash: self.is_weaker(&parsed),
            })
        } else {
            Ok(Verification::Rejected)
        }
    }

    /// Verifies, and if the password matches a hash weaker than the policy, hashes it anew:
    /// store `new_hash` in place of the old one.
    ///
    /// ```
    /// use credvault::SecretString;
    /// use credvault::password::{PasswordPolicy, Scheme, Upgrade};
    ///
    /// let old = PasswordPolicy::allow_weak_parameters_for_tests(Scheme::Bcrypt { cost: 4 })?;
    /// let new = PasswordPolicy::allow_weak_parameters_for_tests(Scheme::Bcrypt { cost: 5 })?;
    /// let password = SecretString::from("hunter2");
    /// let stored = old.hash(&password)?;
    /// let Upgrade::Accepted { new_hash: Some(upgraded) } = new.verify_and_upgrade(&password, &stored)? else {
    ///     panic!("expected an upgrade");
    /// };
    /// assert!(upgraded.starts_with("$2b$05$"));
    /// # Ok::<(), credvault::password::PasswordError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify) and [`hash`](Self::hash) (a bcrypt policy cannot rehash
    /// a password over 72 bytes that an old truncating hash accepted).
    pub fn verify_and_upgrade(
        &self,
        password: &SecretString,
        hash: &str,
    ) -> Result<Upgrade, PasswordError> {
        self.verify_and_upgrade_bytes(password.expose_secret().as_bytes(), hash)
    }

    /// [`verify_and_upgrade`](Self::verify_and_upgrade) for a password given as bytes.
    ///
    /// # Errors
    ///
    /// As [`verify_and_upgrade`](Self::verify_and_upgrade).
    pub fn verify_and_upgrade_bytes(
        &self,
        password: &[u8],
        hash: &str,
    ) -> Result<Upgrade, PasswordError> {
        match self.verify_bytes(password, hash)? {
            Verification::Rejected => Ok(Upgrade::Rejected),
            Verification::Accepted {
                needs_rehash: false,
            } => Ok(Upgrade::Accepted { new_hash: None }),
            Verification::Accepted { needs_rehash: true } => Ok(Upgrade::Accepted {
                new_hash: Some(self.hash_bytes(password)?),
            }),
        }
    }

    /// The family of a stored hash (bcrypt, PBKDF2-SHA256, an MD5 digest...), whatever a
    /// policy accepts: for counting what a table holds.
    ///
    /// # Errors
    ///
    /// [`PasswordError`] if it is not a hash credvault can read (plaintext, say).
    pub fn family_of(hash: &str) -> Result<SchemeFamily, PasswordError> {
        Ok(SchemeFamily::of(&formats::parse(hash)?))
    }

    /// Whether a stored hash should be replaced (weaker family or lower parameters than the
    /// policy's scheme), without a password: passlib's `needs_update`. Django's
    /// unusable-password marker needs none (no password can be checked against it).
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify), for the hash string.
    pub fn needs_rehash(&self, hash: &str) -> Result<bool, PasswordError> {
        if formats::django::is_unusable(hash) {
            return Ok(false);
        }
        Ok(self.is_weaker(&self.parse_checked(hash)?))
    }

    /// Spends the time of a real [`verify`](Self::verify) against a hash of the policy's own
    /// scheme, and answers [`Verification::Rejected`]. Call it when the account does not
    /// exist, so response times do not tell which accounts do.
    ///
    /// The dummy hash is made once per policy (and its clones), on first use.
    pub fn verify_dummy(&self, password: &SecretString) -> Verification {
        self.verify_dummy_bytes(password.expose_secret().as_bytes())
    }

    /// [`verify_dummy`](Self::verify_dummy) for a password given as bytes.
    pub fn verify_dummy_bytes(&self, password: &[u8]) -> Verification {
        let dummy = self.dummy.get_or_init(|| {
            // `Standard` encoding: the dummy is parsed right back, never stored.
            let policy = Self {
                encoding: HashEncoding::Standard,
                ..self.clone()
            };
            policy
                .hash_bytes(DUMMY_PASSWORD)
                .and_then(|h| formats::parse(&h))
        });
        if let Ok(parsed) = dummy {
            // A bcrypt policy hashes at most 72 bytes; the truncating verify costs the same.
            let _ = kdf::matches(parsed, password);
        }
        Verification::Rejected
    }

    fn parse_checked(&self, hash: &str) -> Result<ParsedHash, PasswordError> {
        let parsed = formats::parse(hash)?;
        let family = SchemeFamily::of(&parsed);
        if !self.accepted.contains(&family) {
            return Err(PasswordError::SchemeNotAccepted(family));
        }
        check_caps(&parsed, &self.limits)?;
        Ok(parsed)
    }

    /// Upgrade rule: a legacy family, another family, or the same family with any cost
    /// below the policy's.
    fn is_weaker(&self, parsed: &ParsedHash) -> bool {
        let family = SchemeFamily::of(parsed);
        if family.is_legacy() || family != self.scheme.family() {
            return true;
        }
        match (self.scheme, parsed) {
            (Scheme::Bcrypt { cost }, ParsedHash::Bcrypt(h)) => h.cost < cost,
            (Scheme::Pbkdf2Sha256 { iterations }, ParsedHash::Pbkdf2(h)) => {
                h.iterations < iterations || h.digest.len() < DIGEST_LEN
            }
            (
                Scheme::Argon2id {
                    memory_kib,
                    iterations,
                    parallelism,
                },
                ParsedHash::Argon2(h),
            ) => {
                h.version < 0x13
                    || h.m_cost < memory_kib
                    || h.t_cost < iterations
                    || h.p_cost < parallelism
                    || h.digest.len() < DIGEST_LEN
            }
            _ => true,
        }
    }
}

/// Checks a policy's own scheme: possible, under the caps, and (unless `allow_weak`) above
/// the floors.
fn validate(scheme: Scheme, limits: &CostLimits, allow_weak: bool) -> Result<(), PasswordError> {
    let weak = |parameter, value: u32, minimum: u64| {
        let value = u64::from(value);
        if !allow_weak && value < minimum {
            return Err(PasswordError::WeakParameters {
                parameter,
                value,
                minimum,
            });
        }
        Ok(())
    };
    match scheme {
        Scheme::Bcrypt { cost } => {
            if !(kdf::BCRYPT_MIN_COST..=kdf::BCRYPT_MAX_COST).contains(&cost) {
                return Err(PasswordError::InvalidParameters(
                    "bcrypt cost (must be 4-31)",
                ));
            }
            cap("bcrypt cost", cost, limits.max_bcrypt_cost)?;
            weak("bcrypt cost", cost, MIN_BCRYPT_COST.into())
        }
        Scheme::Pbkdf2Sha256 { iterations } => {
            if iterations == 0 {
                return Err(PasswordError::InvalidParameters(
                    "pbkdf2 iterations (must be positive)",
                ));
            }
            cap(
                "pbkdf2 iterations",
                iterations,
                limits.max_pbkdf2_iterations,
            )?;
            weak(
                "pbkdf2 iterations",
                iterations,
                PBKDF2_SHA256_OWASP_ITERATIONS.into(),
            )
        }
        Scheme::Argon2id {
            memory_kib,
            iterations,
            parallelism,
        } => {
            if iterations == 0
                || parallelism == 0
                || u64::from(memory_kib) < 8 * u64::from(parallelism)
            {
                return Err(PasswordError::InvalidParameters(
                    "argon2 parameters (passes and lanes must be positive, memory at least 8 KiB per lane)",
                ));
            }
            cap_argon2(memory_kib, iterations, parallelism, limits)?;
            weak(
                "argon2 memory (KiB)",
                memory_kib,
                MIN_ARGON2_MEMORY_KIB.into(),
            )?;
            let product = u64::from(memory_kib) * u64::from(iterations);
            if !allow_weak && product < MIN_ARGON2_MEMORY_TIME_PRODUCT {
                return Err(PasswordError::WeakParameters {
                    parameter: "argon2 memory (KiB) x passes",
                    value: product,
                    minimum: MIN_ARGON2_MEMORY_TIME_PRODUCT,
                });
            }
            Ok(())
        }
    }
}

/// Refuses a stored hash whose cost is above the caps, before any work is done.
fn check_caps(parsed: &ParsedHash, limits: &CostLimits) -> Result<(), PasswordError> {
    match parsed {
        ParsedHash::Bcrypt(h) => cap("bcrypt cost", h.cost, limits.max_bcrypt_cost),
        ParsedHash::Pbkdf2(h) => cap(
            "pbkdf2 iterations",
            h.iterations,
            limits.max_pbkdf2_iterations,
        ),
        ParsedHash::Argon2(h) => cap_argon2(h.m_cost, h.t_cost, h.p_cost, limits),
        ParsedHash::Scrypt(h) => cap_scrypt(h.log_n, h.r, h.p, limits),
        ParsedHash::ShaCrypt(h) => cap("sha-crypt rounds", h.rounds, limits.max_sha_crypt_rounds),
        ParsedHash::Digest(_) => Ok(()),
    }
}

/// scrypt needs 128 x r x N bytes and p passes over them.
fn cap_scrypt(log_n: u8, r: u32, p: u32, limits: &CostLimits) -> Result<(), PasswordError> {
    cap("scrypt parallelism", p, limits.max_scrypt_parallelism)?;
    let limit = u64::from(limits.max_scrypt_memory_kib);
    // 128 x r x 2^log_n bytes = r x 2^log_n / 8 KiB; saturate rather than overflow.
    let kib = 1u64
        .checked_shl(u32::from(log_n))
        .and_then(|n| n.checked_mul(u64::from(r)))
        .map_or(u64::MAX, |blocks| blocks / 8);
    if kib > limit {
        return Err(PasswordError::ExcessiveCost {
            parameter: "scrypt memory (KiB)",
            value: kib,
            limit,
        });
    }
    Ok(())
}

fn cap_argon2(m: u32, t: u32, p: u32, limits: &CostLimits) -> Result<(), PasswordError> {
    cap("argon2 memory (KiB)", m, limits.max_argon2_memory_kib)?;
    cap("argon2 passes", t, limits.max_argon2_iterations)?;
    cap("argon2 lanes", p, limits.max_argon2_parallelism)
}

fn cap(parameter: &'static str, value: u32, limit: u32) -> Result<(), PasswordError> {
    if value > limit {
        return Err(PasswordError::ExcessiveCost {
            parameter,
            value: value.into(),
            limit: limit.into(),
        });
    }
    Ok(())
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    crate::crypto::rng::fill_nonce(&mut bytes);
    bytes
}

/// `len` characters from `[A-Za-z0-9]`, uniformly (rejection sampling), as Django's salts.
fn random_alphanumeric(len: usize) -> Vec<u8> {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let mut byte = [0u8; 1];
        crate::crypto::rng::fill_nonce(&mut byte);
        // 248 = 4 x 62: bytes at or above it would bias the first characters.
        if byte[0] < 248 {
            out.push(ALPHABET[usize::from(byte[0] % 62)]);
        }
    }
    out
}
