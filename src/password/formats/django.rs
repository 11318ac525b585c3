//! Django's `algorithm$...` strings (`django.contrib.auth.hashers`, Django 5.2):
//!
//! - `pbkdf2_sha256$<iterations>$<salt text>$<base64 hash>` and `pbkdf2_sha1$...`: the salt
//!   is used as its UTF-8 text, the hash is standard base64 with padding;
//! - `bcrypt$<bcrypt string>` and `bcrypt_sha256$<bcrypt string>` (bcrypt over the hex
//!   SHA-256 of the password);
//! - `argon2<PHC string>`, e.g. `argon2$argon2id$v=19$m=102400,t=2,p=8$...`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{
    BcryptPrehash, MAX_DIGEST_LEN, MAX_SALT_LEN, MIN_DIGEST_LEN, ParsedHash, Pbkdf2Hash, Prf,
    bcrypt, parse_decimal, phc,
};
use crate::password::error::PasswordError;

const PBKDF2: &str = "django pbkdf2";

/// Parses a Django string, or returns `None` if the prefix is not one of Django's.
pub(crate) fn parse(hash: &str) -> Option<Result<ParsedHash, PasswordError>> {
    let (algorithm, rest) = hash.split_once('$')?;
    let parsed = match algorithm {
        "pbkdf2_sha256" => parse_pbkdf2(Prf::Sha256, rest).map(ParsedHash::Pbkdf2),
        "pbkdf2_sha1" => parse_pbkdf2(Prf::Sha1, rest).map(ParsedHash::Pbkdf2),
        "bcrypt" => bcrypt::parse(rest, BcryptPrehash::None).map(ParsedHash::Bcrypt),
        "bcrypt_sha256" => {
            bcrypt::parse(rest, BcryptPrehash::DjangoSha256Hex).map(ParsedHash::Bcrypt)
        }
        "argon2" => phc::parse_argon2(&hash[algorithm.len()..]).map(ParsedHash::Argon2),
        _ => return None,
    };
    Some(parsed)
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
        ] {
            assert_eq!(parse(&s).unwrap().is_ok(), ok, "{s}");
        }
        assert!(parse("md5$abc$def").is_none());
    }
}
