//! Django's `algorithm$...` strings (`django.contrib.auth.hashers`, Django 5.2):
//!
//! - `pbkdf2_sha256$<iterations>$<salt text>$<base64 hash>` and `pbkdf2_sha1$...`: the salt
//!   is used as its UTF-8 text, the hash is standard base64 with padding;
//! - `bcrypt$<bcrypt string>` and `bcrypt_sha256$<bcrypt string>` (bcrypt over the hex
//!   SHA-256 of the password);
//! - `argon2<PHC string>`, e.g. `argon2$argon2id$v=19$m=102400,t=2,p=8$...`;
//! - `scrypt$<N>$<salt text>$<r>$<p>$<base64 hash>`, 64 bytes of scrypt output in standard
//!   base64 with padding (`ScryptPasswordHasher`);
//! - `md5$<salt text>$<hex>`: MD5 of salt then password (`MD5PasswordHasher`).
//!
//! And what older Django wrote, still found in user tables (Django 4.2 was the last to
//! verify them; `identify_hasher` still recognises them by length):
//! - `sha1$<salt text>$<hex>`: SHA-1 of salt then password (`SHA1PasswordHasher`);
//! - `sha1$$<hex>` (46 characters, `UnsaltedSHA1PasswordHasher`);
//! - `md5$$<hex>` (37 characters) and bare 32-character hex (`UnsaltedMD5PasswordHasher`).
//!
//! Hex is lowercase: Django compares the re-encoded string, so uppercase never verifies.
//! A string starting with `!` is `UNUSABLE_PASSWORD_PREFIX` (`set_unusable_password`): see
//! [`is_unusable`]. `crypt$` (DES crypt, `CryptPasswordHasher`, removed in Django 5.0) is not
//! read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{
    BcryptPrehash, DigestAlgorithm, DigestHash, DigestSalt, MAX_DIGEST_LEN, MAX_SALT_LEN,
    MIN_DIGEST_LEN, ParsedHash, Pbkdf2Hash, Prf, ScryptHash, bcrypt, decode_lower_hex,
    parse_canonical_decimal, parse_decimal, phc,
};
use crate::password::error::PasswordError;

const PBKDF2: &str = "django pbkdf2";
const SCRYPT: &str = "django scrypt";
const DIGEST: &str = "django salted digest";
/// Django's `UNUSABLE_PASSWORD_PREFIX`.
const UNUSABLE_PASSWORD_PREFIX: char = '!';
/// `ScryptPasswordHasher` asks `hashlib.scrypt` for 64 bytes (`dklen=64`).
pub(crate) const SCRYPT_DIGEST_LEN: usize = 64;
/// Length of an unsalted MD5 hash, bare (`identify_hasher`'s test).
const UNSALTED_MD5_LEN: usize = 32;

/// Whether `hash` is Django's unusable-password marker (`make_password(None)`,
/// `set_unusable_password()`): no password matches it, and `check_password` answers false.
pub(crate) fn is_unusable(hash: &str) -> bool {
    hash.starts_with(UNUSABLE_PASSWORD_PREFIX)
}

/// Parses a Django string, or returns `None` if the prefix is not one of Django's.
pub(crate) fn parse(hash: &str) -> Option<Result<ParsedHash, PasswordError>> {
    if hash.len() == UNSALTED_MD5_LEN && !hash.contains('$') {
        return Some(parse_digest(DigestAlgorithm::Md5, "", hash).map(ParsedHash::Digest));
    }
    let (algorithm, rest) = hash.split_once('$')?;
    let parsed = match algorithm {
        "pbkdf2_sha256" => parse_pbkdf2(Prf::Sha256, rest).map(ParsedHash::Pbkdf2),
        "pbkdf2_sha1" => parse_pbkdf2(Prf::Sha1, rest).map(ParsedHash::Pbkdf2),
        "bcrypt" => bcrypt::parse(rest, BcryptPrehash::None).map(ParsedHash::Bcrypt),
        "bcrypt_sha256" => {
            bcrypt::parse(rest, BcryptPrehash::DjangoSha256Hex).map(ParsedHash::Bcrypt)
        }
        "argon2" => phc::parse_argon2(&hash[algorithm.len()..]).map(ParsedHash::Argon2),
        "scrypt" => parse_scrypt(rest).map(ParsedHash::Scrypt),
        "md5" | "sha1" => {
            let digest = if algorithm == "md5" {
                DigestAlgorithm::Md5
            } else {
                DigestAlgorithm::Sha1
            };
            match rest.split_once('$') {
                Some((salt, hex)) => parse_digest(digest, salt, hex).map(ParsedHash::Digest),
                None => Err(PasswordError::MalformedHash {
                    format: DIGEST,
                    problem: "wrong number of fields",
                }),
            }
        }
        _ => return None,
    };
    Some(parsed)
}

/// `md5$salt$hex`, `sha1$salt$hex`; an empty salt is the unsalted hasher's form.
fn parse_digest(
    algorithm: DigestAlgorithm,
    salt: &str,
    hex: &str,
) -> Result<DigestHash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: DIGEST,
        problem,
    };
    if salt.len() > MAX_SALT_LEN {
        return Err(malformed("salt is too long"));
    }
    let digest = decode_lower_hex(hex, algorithm.output_len()).ok_or(malformed(
        "hash is not lowercase hex of the digest's length",
    ))?;
    let salt = if salt.is_empty() {
        DigestSalt::None
    } else {
        DigestSalt::Prefix(salt.to_owned())
    };
    Ok(DigestHash {
        algorithm,
        salt,
        digest,
    })
}

/// `scrypt$N$salt$r$p$hash`, read as `ScryptPasswordHasher.decode` splits it; N must be a
/// power of two from 2 (`hashlib.scrypt` refuses anything else).
fn parse_scrypt(rest: &str) -> Result<ScryptHash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: SCRYPT,
        problem,
    };
    let fields: Vec<&str> = rest.split('$').collect();
    let [n, salt, r, p, digest] = fields[..] else {
        return Err(malformed("wrong number of fields"));
    };
    let n = parse_canonical_decimal(n).ok_or(malformed("N is not a number"))?;
    if n < 2 || !n.is_power_of_two() {
        return Err(malformed("N is not a power of two from 2"));
    }
    let log_n = u8::try_from(n.trailing_zeros()).map_err(|_| malformed("N is out of range"))?;
    let positive = |text| parse_canonical_decimal(text).filter(|&v| v > 0);
    let r = positive(r).ok_or(malformed("r is not a positive number"))?;
    let p = positive(p).ok_or(malformed("p is not a positive number"))?;
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(malformed("salt is empty or too long"));
    }
    let digest = STANDARD
        .decode(digest)
        .map_err(|_| malformed("hash is not base64"))?;
    if digest.len() != SCRYPT_DIGEST_LEN {
        return Err(malformed("hash is not 64 bytes"));
    }
    Ok(ScryptHash {
        log_n,
        r,
        p,
        salt: salt.as_bytes().to_vec(),
        digest,
    })
}

fn parse_pbkdf2(prf: Prf, rest: &str) -> Result<Pbkdf2Hash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: PBKDF2,
        problem,
    };
    let fields: Vec<&str> = rest.split('$').collect();
    let [iterations, salt, digest] = fields[..] else {
        return Err(malformed("wrong number of fields"));
    };
    let iterations = parse_decimal(iterations)
        .filter(|&i| i > 0)
        .ok_or(malformed("iterations are not a positive number"))?;
    if salt.is_empty() || salt.len() > MAX_SALT_LEN {
        return Err(malformed("salt is empty or too long"));
    }
    let digest = STANDARD
        .decode(digest)
        .map_err(|_| malformed("hash is not base64"))?;
    if digest.len() < MIN_DIGEST_LEN || digest.len() > MAX_DIGEST_LEN {
        return Err(malformed("hash length is out of range"));
    }
    Ok(Pbkdf2Hash {
        prf,
        iterations,
        salt: salt.as_bytes().to_vec(),
        digest,
    })
}

/// Writes `pbkdf2_sha256$iterations$salt$hash` (the salt must be `$`-free text).
pub(crate) fn encode_pbkdf2(h: &Pbkdf2Hash) -> String {
    let algorithm = match h.prf {
        Prf::Sha1 => "pbkdf2_sha1",
        // Django has no SHA-512 hasher; policies never write one (see `Scheme`).
        Prf::Sha256 | Prf::Sha512 => "pbkdf2_sha256",
    };
    format!(
        "{algorithm}${}${}${}",
        h.iterations,
        String::from_utf8_lossy(&h.salt),
        STANDARD.encode(&h.digest)
    )
}

/// Writes `scrypt$N$salt$r$p$hash` (the salt must be `$`-free text).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode_scrypt(h: &ScryptHash) -> String {
    format!(
        "scrypt${}${}${}${}${}",
        1u64 << h.log_n.min(63),
        String::from_utf8_lossy(&h.salt),
        h.r,
        h.p,
        STANDARD.encode(&h.digest)
    )
}

/// Writes `md5$salt$hex` or `sha1$salt$hex` (`$$` when unsalted).
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode_digest(h: &DigestHash) -> String {
    let algorithm = match h.algorithm {
        DigestAlgorithm::Md5 => "md5",
        // Django has no SHA-2 digest hasher; the parsers never make one with this salt.
        DigestAlgorithm::Sha1 | DigestAlgorithm::Sha256 | DigestAlgorithm::Sha512 => "sha1",
    };
    let salt = match &h.salt {
        DigestSalt::Prefix(salt) => salt.as_str(),
        DigestSalt::None | DigestSalt::Suffix(_) => "",
    };
    format!("{algorithm}${salt}${}", super::encode_lower_hex(&h.digest))
}

/// Writes `bcrypt$<bcrypt string>`.
pub(crate) fn encode_bcrypt(bcrypt_string: &str) -> String {
    format!("bcrypt${bcrypt_string}")
}

/// Writes `argon2<PHC string>`.
pub(crate) fn encode_argon2(phc_string: &str) -> String {
    format!("argon2{phc_string}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_django_prefix() {
        let bc = "$2b$05$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.";
        for (s, ok) in [
            ("pbkdf2_sha256$1000$abc$aGFzaA==".to_owned(), true),
            ("pbkdf2_sha1$1000$abc$aGFzaA==".to_owned(), true),
            (format!("bcrypt${bc}"), true),
            (format!("bcrypt_sha256${bc}"), true),
            (
                "argon2$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2g".to_owned(),
                true,
            ),
            ("pbkdf2_sha256$x$abc$aGFzaA==".to_owned(), false),
            ("pbkdf2_sha256$1000$abc".to_owned(), false),
            (format!("md5$abc${}", "0".repeat(32)), true),
            (format!("md5$${}", "0".repeat(32)), true),
            ("0".repeat(32), true),
            (format!("sha1$abc${}", "0".repeat(40)), true),
            (format!("sha1$${}", "0".repeat(40)), true),
            (format!("md5$abc${}", "A".repeat(32)), false),
            (format!("md5$abc${}", "0".repeat(40)), false),
            ("md5$abc".to_owned(), false),
            (
                format!("scrypt$16384$salt$8$1${}", "A".repeat(86) + "=="),
                true,
            ),
            (
                format!("scrypt$16383$salt$8$1${}", "A".repeat(86) + "=="),
                false,
            ),
            (
                format!("scrypt$016384$salt$8$1${}", "A".repeat(86) + "=="),
                false,
            ),
            (
                format!("scrypt$1$salt$8$1${}", "A".repeat(86) + "=="),
                false,
            ),
            (
                format!("scrypt$16384$salt$8$0${}", "A".repeat(86) + "=="),
                false,
            ),
            (
                format!("scrypt$16384$$8$1${}", "A".repeat(86) + "=="),
                false,
            ),
            (
                format!("scrypt$16384$salt$8$1${}", "A".repeat(43) + "="),
                false,
            ),
        ] {
            assert_eq!(parse(&s).unwrap().is_ok(), ok, "{s}");
        }
        assert!(parse("crypt$$abc").is_none());
        assert!(parse(&"0".repeat(31)).is_none());
    }

    #[test]
    fn unsalted_forms_read_as_one_hash() {
        let hex = "5f4dcc3b5aa765d61d8327deb882cf99";
        let bare = parse(hex).unwrap().unwrap();
        assert_eq!(parse(&format!("md5$${hex}")).unwrap().unwrap(), bare);
        let ParsedHash::Digest(h) = bare else {
            panic!("not a digest")
        };
        assert_eq!(h.salt, DigestSalt::None);
    }

    #[test]
    fn scrypt_reads_n_as_a_power_of_two() {
        let s = format!("scrypt$16384$salt$8$5${}==", "A".repeat(86));
        let Some(Ok(ParsedHash::Scrypt(h))) = parse(&s) else {
            panic!("not scrypt")
        };
        assert_eq!((h.log_n, h.r, h.p), (14, 8, 5));
        assert_eq!(encode_scrypt(&h), s);
    }

    #[test]
    fn the_unusable_marker_is_any_string_starting_with_a_bang() {
        assert!(is_unusable("!"));
        assert!(is_unusable("!abc$def"));
        assert!(!is_unusable("md5$!$0"));
    }
}
