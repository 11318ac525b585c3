//! Hash strings: parse what others wrote, write what we hash. Nothing here computes a hash.
//!
//! One module per family of foreign formats, as RustCrypto's `pbkdf2` keeps `mcf.rs` and
//! `phc.rs` apart. Parsers check syntax and structural limits (salt and digest lengths);
//! the policy checks costs against its caps afterwards.

pub(crate) mod bcrypt;
pub(crate) mod django;
pub(crate) mod ldap;
pub(crate) mod passlib;
pub(crate) mod phc;
pub(crate) mod shacrypt;

#[cfg(any(test, feature = "fuzzing"))]
use crate::password::PasswordPolicy;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::error::PasswordError;

/// Longest salt we read from a stored hash, in bytes (frameworks write 16-22).
pub(crate) const MAX_SALT_LEN: usize = 128;
/// Longest digest we read from a stored hash, in bytes (PBKDF2-SHA512 writes 64).
pub(crate) const MAX_DIGEST_LEN: usize = 128;
/// Shortest digest we accept: argon2-cffi allows 4 bytes, so do we (argon2's own minimum).
pub(crate) const MIN_DIGEST_LEN: usize = 4;
/// Longest hash string we look at; longer input is refused before any parsing.
pub(crate) const MAX_HASH_LEN: usize = 1024;

/// A stored hash, parsed: everything needed to recompute it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParsedHash {
    /// bcrypt, possibly over a pre-hash of the password.
    Bcrypt(BcryptHash),
    /// PBKDF2-HMAC with SHA-1, SHA-256 or SHA-512.
    Pbkdf2(Pbkdf2Hash),
    /// argon2d, argon2i or argon2id.
    Argon2(Argon2Hash),
    /// scrypt (Django's `scrypt$`, passlib's `$scrypt$`).
    Scrypt(ScryptHash),
    /// SHA-256-crypt or SHA-512-crypt (`$5$`, `$6$`).
    ShaCrypt(ShaCryptHash),
    /// One plain digest over the password and a salt: Django's `md5$`/`sha1$` and their
    /// unsalted forms, RFC 2307's `{MD5}`, `{SHA}`, `{SMD5}`, `{SSHA}`, `{SSHA256}`, `{SSHA512}`.
    Digest(DigestHash),
}

/// A parsed scrypt hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScryptHash {
    /// log2 of N, the CPU/memory cost.
    pub(crate) log_n: u8,
    /// Block size.
    pub(crate) r: u32,
    /// Parallelism.
    pub(crate) p: u32,
    /// Salt bytes as fed to scrypt.
    pub(crate) salt: Vec<u8>,
    /// Expected output (64 bytes from Django, 32 from passlib).
    pub(crate) digest: Vec<u8>,
}

/// Which SHA-crypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShaCryptVariant {
    /// `$5$`, SHA-256-crypt.
    Sha256,
    /// `$6$`, SHA-512-crypt.
    Sha512,
}

/// A parsed SHA-crypt hash. The checksum stays text: passlib compares the re-encoded
/// checksum as a string, and so do we.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShaCryptHash {
    /// Variant.
    pub(crate) variant: ShaCryptVariant,
    /// Rounds (5000 when the string names none).
    pub(crate) rounds: u32,
    /// Whether the string wrote `rounds=` (kept for re-encoding).
    pub(crate) rounds_written: bool,
    /// The salt text, 0-16 characters of `./0-9A-Za-z`.
    pub(crate) salt: String,
    /// The checksum text (43 or 86 characters).
    pub(crate) checksum: String,
}

/// The digest of a [`DigestHash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DigestAlgorithm {
    /// MD5.
    Md5,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

/// Where a [`DigestHash`] puts its salt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DigestSalt {
    /// No salt: `digest(password)`.
    None,
    /// Django's `md5$`/`sha1$`: `digest(salt || password)`, the salt as its UTF-8 text.
    Prefix(String),
    /// RFC 2307's salted forms: `digest(password || salt)`.
    Suffix(Vec<u8>),
}

/// A parsed plain-digest hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DigestHash {
    /// The digest function.
    pub(crate) algorithm: DigestAlgorithm,
    /// The salt and its place.
    pub(crate) salt: DigestSalt,
    /// Expected output (the digest function's full length).
    pub(crate) digest: Vec<u8>,
}

impl DigestAlgorithm {
    /// Output length in bytes.
    pub(crate) fn output_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

/// How the password is turned into the bcrypt key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BcryptPrehash {
    /// The password itself (truncated at 72 bytes, as every bcrypt library does).
    None,
    /// Django's `bcrypt_sha256$`: hex of SHA-256 of the password.
    DjangoSha256Hex,
    /// passlib's `$bcrypt-sha256$` v1: standard base64 of SHA-256 of the password.
    PasslibSha256V1,
    /// passlib's `$bcrypt-sha256$v=2`: standard base64 of HMAC-SHA256 keyed by the salt text.
    PasslibSha256V2 {
        /// The 22-character salt, as written (the HMAC key).
        salt_text: String,
    },
}

/// A parsed bcrypt hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BcryptHash {
    /// Pre-hash applied to the password.
    pub(crate) prehash: BcryptPrehash,
    /// log2 of the number of rounds.
    pub(crate) cost: u32,
    /// The 16-byte salt.
    pub(crate) salt: [u8; 16],
    /// The first 23 bytes of bcrypt's 24-byte output (all that the format keeps).
    pub(crate) digest: [u8; 23],
}

/// The HMAC hash function of a PBKDF2 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prf {
    /// HMAC-SHA1 (Django's `pbkdf2_sha1`, passlib's `$pbkdf2$`).
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Prf {
    /// Every PRF with its identifier in `$pbkdf2[-sha256|-sha512]$...` strings (passlib's and
    /// PHC's alike).
    const IDENTS: [(Self, &'static str); 3] = [
        (Self::Sha1, "pbkdf2"),
        (Self::Sha256, "pbkdf2-sha256"),
        (Self::Sha512, "pbkdf2-sha512"),
    ];

    /// Its identifier: `pbkdf2`, `pbkdf2-sha256`, `pbkdf2-sha512`.
    pub(crate) fn pbkdf2_ident(self) -> &'static str {
        Self::IDENTS
            .iter()
            .find(|(prf, _)| *prf == self)
            .map_or("pbkdf2", |(_, ident)| ident)
    }
}

/// Splits a `$pbkdf2[-sha256|-sha512]$params$salt$hash` string (passlib's and PHC's share this
/// shape) into its PRF and its parameter, salt and hash fields; `format` names it in errors.
pub(crate) fn split_pbkdf2<'h>(
    hash: &'h str,
    format: &'static str,
) -> Result<(Prf, [&'h str; 3]), PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash { format, problem };
    let fields: Vec<&str> = hash.split('$').collect();
    let ["", ident, params, salt, digest] = fields[..] else {
        return Err(malformed("wrong number of fields"));
    };
    let (prf, _) = Prf::IDENTS
        .iter()
        .find(|(_, i)| *i == ident)
        .ok_or(malformed("unknown pbkdf2 variant"))?;
    Ok((*prf, [params, salt, digest]))
}

/// A parsed PBKDF2 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pbkdf2Hash {
    /// The PRF.
    pub(crate) prf: Prf,
    /// Iteration count.
    pub(crate) iterations: u32,
    /// Salt bytes as fed to PBKDF2.
    pub(crate) salt: Vec<u8>,
    /// Expected output.
    pub(crate) digest: Vec<u8>,
}

/// Which argon2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Argon2Variant {
    /// argon2d.
    D,
    /// argon2i.
    I,
    /// argon2id.
    Id,
}

/// A parsed argon2 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Argon2Hash {
    /// Variant.
    pub(crate) variant: Argon2Variant,
    /// 0x10 or 0x13.
    pub(crate) version: u32,
    /// Memory in KiB.
    pub(crate) m_cost: u32,
    /// Passes.
    pub(crate) t_cost: u32,
    /// Lanes.
    pub(crate) p_cost: u32,
    /// Salt bytes.
    pub(crate) salt: Vec<u8>,
    /// Expected output.
    pub(crate) digest: Vec<u8>,
}

/// Parses any supported hash string. Checks syntax and lengths, not costs.
pub(crate) fn parse(hash: &str) -> Result<ParsedHash, PasswordError> {
    if hash.len() > MAX_HASH_LEN {
        return Err(PasswordError::MalformedHash {
            format: "password",
            problem: "hash string is too long",
        });
    }
    if hash.starts_with("$2") {
        return bcrypt::parse(hash, BcryptPrehash::None).map(ParsedHash::Bcrypt);
    }
    if hash.starts_with("$argon2") {
        return phc::parse_argon2(hash).map(ParsedHash::Argon2);
    }
    if hash.starts_with("$bcrypt-sha256$") {
        return passlib::parse_bcrypt_sha256(hash).map(ParsedHash::Bcrypt);
    }
    if hash.starts_with("$pbkdf2") {
        return if phc::is_phc_pbkdf2(hash) {
            phc::parse_pbkdf2(hash)
        } else {
            passlib::parse_pbkdf2(hash)
        }
        .map(ParsedHash::Pbkdf2);
    }
    if hash.starts_with("$scrypt$") {
        return passlib::parse_scrypt(hash).map(ParsedHash::Scrypt);
    }
    if hash.starts_with("$5$") || hash.starts_with("$6$") {
        return shacrypt::parse(hash).map(ParsedHash::ShaCrypt);
    }
    if let Some(parsed) = ldap::parse(hash) {
        return parsed;
    }
    if let Some(parsed) = django::parse(hash) {
        return parsed;
    }
    Err(PasswordError::UnknownFormat)
}

/// The fuzz target's body: parse; if it parses, the policy's checks must not panic either,
/// and the re-encoded standard form must parse back to the same hash. Only in fuzz and test
/// builds.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn fuzz_round_trip(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = parse(text) else { return };
    let _ = PasswordPolicy::default().needs_rehash(text);
    let reencoded = match &parsed {
        ParsedHash::Bcrypt(h) if h.prehash == BcryptPrehash::None => {
            bcrypt::encode(h.cost, &h.salt, &h.digest)
        }
        ParsedHash::Pbkdf2(h) => phc::encode_pbkdf2(h),
        ParsedHash::Argon2(h) => phc::encode_argon2(h),
        ParsedHash::Scrypt(h) if h.digest.len() == django::SCRYPT_DIGEST_LEN => {
            django::encode_scrypt(h)
        }
        ParsedHash::Scrypt(h) => passlib::encode_scrypt(h),
        ParsedHash::ShaCrypt(h) => shacrypt::encode(h),
        ParsedHash::Digest(h) => match &h.salt {
            DigestSalt::Prefix(_) => django::encode_digest(h),
            DigestSalt::None | DigestSalt::Suffix(_) => ldap::encode(h),
        },
        ParsedHash::Bcrypt(_) => return,
    };
    assert_eq!(
        parse(&reencoded).as_ref(),
        Ok(&parsed),
        "re-encoded hash parses differently"
    );
}

/// A decimal number as hash formats write them: 1-10 ASCII digits, fitting a `u32`.
pub(crate) fn parse_decimal(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A decimal number written as Python's `%d` writes it: no sign, no leading zero.
/// Django and passlib re-encode and compare, so a zero-padded number never verifies there.
pub(crate) fn parse_canonical_decimal(text: &str) -> Option<u32> {
    if text.len() > 1 && text.starts_with('0') {
        return None;
    }
    parse_decimal(text)
}

/// Lowercase hex of exactly `len` bytes, as Python's `hexdigest()` writes it.
pub(crate) fn decode_lower_hex(text: &str, len: usize) -> Option<Vec<u8>> {
    if text.len() != len.checked_mul(2)? {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// Lowercase hex.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode_lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// PHC's "B64": standard alphabet, no padding (trailing bits tolerated on input).
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes B64 with length bounds; `what` names the field in the error.
pub(crate) fn decode_b64_field(
    engine: &GeneralPurpose,
    text: &str,
    format: &'static str,
    what: &'static str,
    (min, max): (usize, usize),
) -> Result<Vec<u8>, PasswordError> {
    let bytes = engine
        .decode(text)
        .map_err(|_| PasswordError::MalformedHash {
            format,
            problem: what,
        })?;
    if bytes.len() < min || bytes.len() > max {
        return Err(PasswordError::MalformedHash {
            format,
            problem: what,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_prefix_is_unknown_format() {
        for s in ["", "plain", "$1$abc$def", "md5x$y", "$", "$$$", "{SSHA512"] {
            assert_eq!(parse(s), Err(PasswordError::UnknownFormat), "{s}");
        }
    }

    #[test]
    fn decimal_parsing_rejects_signs_and_overflow() {
        assert_eq!(parse_decimal("12"), Some(12));
        assert_eq!(parse_decimal("+12"), None);
        assert_eq!(parse_decimal(""), None);
        assert_eq!(parse_decimal("4294967296"), None);
        assert_eq!(parse_canonical_decimal("012"), None);
        assert_eq!(parse_canonical_decimal("0"), Some(0));
    }

    /// One hash of each newer format, made by Django 5.2 or passlib 1.7.4 (password "");
    /// the fuzz target's assertion holds for each (the seeds in `fuzz/corpus/password_hash`).
    #[test]
    fn new_formats_round_trip_as_the_fuzz_target_checks() {
        for hash in [
            "scrypt$16$LSQ6b1cGIlUAE8lQj4XiD7$8$1$XYHMoG+iczuQiLV7z1fFYZp8RDieYa+emCTq65cTv/P13XgYaRcJotP2Devne+Teoa81td3Qv/0ugtuAgD1ksw==",
            "md5$Q2KLLkhWfVHA9DfpxSXYgv$86cf5dbb75e26e5c4966437bcebb7ca4",
            "sha1$K5NhVO4xRYVd$01e757e0ea9e069309cce4a1d5efff5fb3c621d0",
            "sha1$$da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "md5$$d41d8cd98f00b204e9800998ecf8427e",
            "d41d8cd98f00b204e9800998ecf8427e",
            "$scrypt$ln=4,r=8,p=1$SimF8H5PSQlBaG1NCWHsHQ$ysiHJLmPmwPDA2fMC6NuiLPLU5chBTZ6K/X+ljgDtxk",
            "$5$rounds=1000$S0TKcwIjFzGV0nfs$zsK0QqMe23Rpnku4nPHxN9qOrFnYkCqZtxoCIJ.OaHA",
            "$6$rounds=1000$8zRm.qGYQTKsMaIL$OEKFacbLQB3tWF.85E4uSIqA7AVIHCH.iE7NB2Jx8Nt4rG6SxHt8gO2Qun9wdIE2mReIpLUm4zRJxu/yHJ4XU.",
            "{MD5}1B2M2Y8AsgTpgAmY7PhCfg==",
            "{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=",
            "{SMD5}tQDi3xYixqSP55Wj8/hQILQWolQ=",
            "{SSHA}LaI990JadLOe93SNcX3pfmluCdBozTlH",
            "{SSHA256}ea2R5xzYZYG1muv6xLO1A0FekiqPO12oKggpXeeqwhW4t9Y6",
            "{SSHA512}37xtFxnvzBQyMO22GEupaybI2UWimf9V8hoArM6xyJrcOPcZJ21G6YxcVavRqyqLpdXL7dneRB06+g1dVUpx1AdAKAU=",
            "{CRYPT}$2b$04$FtM2gsoc8TXkLWy4dsEpiOqKbZlIl6813cj.rsHnSL7jJoJtCAheC",
            "{CRYPT}$5$rounds=1000$uVRzxSN67/1hcOx2$naUpgVE3fV3I9aU8uaECEqVltwySb7aMxKLMD9PhuP2",
        ] {
            assert!(parse(hash).is_ok(), "{hash}");
            fuzz_round_trip(hash.as_bytes());
        }
    }

    #[test]
    fn hex_is_lowercase_and_exact() {
        assert_eq!(decode_lower_hex("00ff", 2), Some(vec![0, 255]));
        assert_eq!(decode_lower_hex("00FF", 2), None);
        assert_eq!(decode_lower_hex("00f", 2), None);
        assert_eq!(decode_lower_hex("é0", 1), None);
        assert_eq!(encode_lower_hex(&[0, 255]), "00ff");
    }
}
