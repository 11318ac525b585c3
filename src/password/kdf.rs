//! The computations behind each parsed hash: thin calls into `bcrypt`, `pbkdf2`, `argon2`,
//! `scrypt`, `sha-crypt` and the plain digests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use base64ct::Encoding as _;
use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::error::PasswordError;
use super::formats::{
    Argon2Hash, Argon2Variant, BcryptHash, BcryptPrehash, DigestAlgorithm, DigestHash, DigestSalt,
    ParsedHash, Prf, ScryptHash, ShaCryptHash, ShaCryptVariant,
};

/// bcrypt reads at most this many bytes of key.
pub(crate) const BCRYPT_MAX_KEY_LEN: usize = 72;
/// bcrypt's smallest cost (16 rounds).
pub(crate) const BCRYPT_MIN_COST: u32 = 4;
/// bcrypt's largest cost.
pub(crate) const BCRYPT_MAX_COST: u32 = 31;

/// Whether `password` reproduces `parsed`; the digests are compared in constant time.
pub(crate) fn matches(parsed: &ParsedHash, password: &[u8]) -> Result<bool, PasswordError> {
    let computed = compute(parsed, password)?;
    let expected: &[u8] = match parsed {
        ParsedHash::Bcrypt(h) => &h.digest,
        ParsedHash::Pbkdf2(h) => &h.digest,
        ParsedHash::Argon2(h) => &h.digest,
        ParsedHash::Scrypt(h) => &h.digest,
        ParsedHash::ShaCrypt(h) => h.checksum.as_bytes(),
        ParsedHash::Digest(h) => &h.digest,
    };
    Ok(computed.ct_eq(expected).into())
}

/// Recomputes the digest of `parsed` for `password`.
fn compute(parsed: &ParsedHash, password: &[u8]) -> Result<Zeroizing<Vec<u8>>, PasswordError> {
    match parsed {
        ParsedHash::Bcrypt(h) => {
            let key = bcrypt_key(h, password);
            Ok(Zeroizing::new(
                bcrypt_truncating(h.cost, h.salt, &key).to_vec(),
            ))
        }
        ParsedHash::Pbkdf2(h) => {
            let mut out = Zeroizing::new(vec![0; h.digest.len()]);
            pbkdf2(h.prf, password, &h.salt, h.iterations, &mut out);
            Ok(out)
        }
        ParsedHash::Argon2(h) => {
            let mut out = Zeroizing::new(vec![0; h.digest.len()]);
            argon2(h, password, &mut out)?;
            Ok(out)
        }
        ParsedHash::Scrypt(h) => {
            let mut out = Zeroizing::new(vec![0; h.digest.len()]);
            scrypt(h, password, &mut out)?;
            Ok(out)
        }
        ParsedHash::ShaCrypt(h) => sha_crypt_checksum(h, password),
        ParsedHash::Digest(h) => Ok(plain_digest(h, password)),
    }
}

/// The bcrypt key for a password under the hash's pre-hash rule.
fn bcrypt_key(h: &BcryptHash, password: &[u8]) -> Zeroizing<Vec<u8>> {
    match &h.prehash {
        BcryptPrehash::None => Zeroizing::new(password.to_vec()),
        BcryptPrehash::DjangoSha256Hex => {
            let digest = Sha256::digest(password);
            Zeroizing::new(hex_lower(&digest).into_bytes())
        }
        BcryptPrehash::PasslibSha256V1 => {
            Zeroizing::new(STANDARD.encode(Sha256::digest(password)).into_bytes())
        }
        BcryptPrehash::PasslibSha256V2 { salt_text } => {
            // HMAC accepts keys of any length; the error branch cannot happen.
            let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(salt_text.as_bytes()) else {
                return Zeroizing::new(Vec::new());
            };
            mac.update(password);
            Zeroizing::new(STANDARD.encode(mac.finalize().into_bytes()).into_bytes())
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// bcrypt as every library computes it: the key is the password plus a NUL terminator,
/// cut at 72 bytes (so bytes past the 72nd are ignored). Returns the 23 bytes the string keeps.
/// `cost` must be 4..=31 (the parsers and the policy check it).
pub(crate) fn bcrypt_truncating(cost: u32, salt: [u8; 16], password: &[u8]) -> [u8; 23] {
    let copy_len = password.len().min(BCRYPT_MAX_KEY_LEN);
    let mut key = Zeroizing::new([0u8; BCRYPT_MAX_KEY_LEN]);
    key[..copy_len].copy_from_slice(&password[..copy_len]);
    let used = (copy_len + 1).min(BCRYPT_MAX_KEY_LEN);
    let mut full = Zeroizing::new(bcrypt::bcrypt(cost, salt, &key[..used]));
    let mut out = [0u8; 23];
    out.copy_from_slice(&full[..23]);
    full[23] = 0;
    out
}

/// PBKDF2-HMAC with the given PRF, filling `out`.
pub(crate) fn pbkdf2(prf: Prf, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    match prf {
        Prf::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, out),
        Prf::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, out),
        Prf::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, iterations, out),
    }
}

/// argon2 with the hash's parameters, filling `out`.
pub(crate) fn argon2(h: &Argon2Hash, password: &[u8], out: &mut [u8]) -> Result<(), PasswordError> {
    let refused = |_| PasswordError::MalformedHash {
        format: "argon2",
        problem: "parameters are out of argon2's range",
    };
    let algorithm = match h.variant {
        Argon2Variant::D => argon2::Algorithm::Argon2d,
        Argon2Variant::I => argon2::Algorithm::Argon2i,
        Argon2Variant::Id => argon2::Algorithm::Argon2id,
    };
    let version = if h.version == 0x10 {
        argon2::Version::V0x10
    } else {
        argon2::Version::V0x13
    };
    let params =
        argon2::Params::new(h.m_cost, h.t_cost, h.p_cost, Some(out.len())).map_err(refused)?;
    argon2::Argon2::new(algorithm, version, params)
        .hash_password_into(password, &h.salt, out)
        .map_err(refused)
}

/// scrypt with the hash's parameters, filling `out`. The policy has capped N, r and p
/// (`scrypt::Params::new` multiplies r by p unchecked).
pub(crate) fn scrypt(h: &ScryptHash, password: &[u8], out: &mut [u8]) -> Result<(), PasswordError> {
    let refused = PasswordError::MalformedHash {
        format: "scrypt",
        problem: "parameters are out of scrypt's range",
    };
    let params = scrypt::Params::new(h.log_n, h.r, h.p).map_err(|_| refused.clone())?;
    scrypt::scrypt(password, &h.salt, &params, out).map_err(|_| refused)
}

/// The SHA-crypt checksum text for `password`: the digest's bytes reordered as the
/// specification's final step lists them, then crypt base64.
fn sha_crypt_checksum(
    h: &ShaCryptHash,
    password: &[u8],
) -> Result<Zeroizing<Vec<u8>>, PasswordError> {
    let params = sha_crypt::Params::new(h.rounds).map_err(|_| PasswordError::MalformedHash {
        format: "sha-crypt",
        problem: "rounds are out of range",
    })?;
    let salt = h.salt.as_bytes();
    let reordered: Zeroizing<Vec<u8>> = match h.variant {
        ShaCryptVariant::Sha256 => {
            let raw = Zeroizing::new(sha_crypt::sha256_crypt(password, salt, params));
            Zeroizing::new(SHA256_CRYPT_ORDER.iter().map(|&i| raw[i]).collect())
        }
        ShaCryptVariant::Sha512 => {
            let raw = Zeroizing::new(sha_crypt::sha512_crypt(password, salt, params));
            Zeroizing::new(SHA512_CRYPT_ORDER.iter().map(|&i| raw[i]).collect())
        }
    };
    Ok(Zeroizing::new(
        base64ct::Base64ShaCrypt::encode_string(&reordered).into_bytes(),
    ))
}

/// The byte order of SHA-256-crypt's encoded checksum (Drepper's specification, step 22e;
/// the same table as RustCrypto's `sha-crypt` keeps in its `mcf` module).
const SHA256_CRYPT_ORDER: [usize; 32] = [
    20, 10, 0, 11, 1, 21, 2, 22, 12, 23, 13, 3, 14, 4, 24, 5, 25, 15, 26, 16, 6, 17, 7, 27, 8, 28,
    18, 29, 19, 9, 30, 31,
];

/// The byte order of SHA-512-crypt's encoded checksum (step 22f).
const SHA512_CRYPT_ORDER: [usize; 64] = [
    42, 21, 0, 1, 43, 22, 23, 2, 44, 45, 24, 3, 4, 46, 25, 26, 5, 47, 48, 27, 6, 7, 49, 28, 29, 8,
    50, 51, 30, 9, 10, 52, 31, 32, 11, 53, 54, 33, 12, 13, 55, 34, 35, 14, 56, 57, 36, 15, 16, 58,
    37, 38, 17, 59, 60, 39, 18, 19, 61, 40, 41, 20, 62, 63,
];

/// One digest over the salt and password, in the order the format puts them.
fn plain_digest(h: &DigestHash, password: &[u8]) -> Zeroizing<Vec<u8>> {
    let (prefix, suffix): (&[u8], &[u8]) = match &h.salt {
        DigestSalt::None => (&[], &[]),
        DigestSalt::Prefix(salt) => (salt.as_bytes(), &[]),
        DigestSalt::Suffix(salt) => (&[], salt),
    };
    match h.algorithm {
        DigestAlgorithm::Md5 => digest_of::<md5::Md5>(prefix, password, suffix),
        DigestAlgorithm::Sha1 => digest_of::<sha1::Sha1>(prefix, password, suffix),
        DigestAlgorithm::Sha256 => digest_of::<Sha256>(prefix, password, suffix),
        DigestAlgorithm::Sha512 => digest_of::<sha2::Sha512>(prefix, password, suffix),
    }
}

fn digest_of<D: Digest>(prefix: &[u8], password: &[u8], suffix: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut hasher = D::new();
    hasher.update(prefix);
    hasher.update(password);
    hasher.update(suffix);
    Zeroizing::new(hasher.finalize().to_vec())
}
