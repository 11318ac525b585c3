//! RFC 2307 `{SCHEME}` strings from LDAP directories, as passlib 1.7.4 reads them
//! (`handlers/ldap_digests.py`):
//!
//! - `{MD5}`, `{SHA}`: standard base64 (with padding) of MD5 / SHA-1 of the password;
//! - `{SMD5}`, `{SSHA}`, `{SSHA256}`, `{SSHA512}`: standard base64 of the digest of password
//!   then salt, followed by the 4-16 salt bytes;
//! - `{CRYPT}` around a crypt string: bcrypt (`$2b$...`, passlib's `ldap_bcrypt`) and
//!   SHA-crypt (`$5$`, `$6$`, `ldap_sha256_crypt`, `ldap_sha512_crypt`).
//!
//! Scheme names are matched in upper case, as passlib writes and reads them. The hex forms
//! (`ldap_hex_md5`) and `{CRYPT}` around DES or MD5 crypt are not read.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{BcryptPrehash, DigestAlgorithm, DigestHash, DigestSalt, ParsedHash, bcrypt, shacrypt};
use crate::password::error::PasswordError;

const FORMAT: &str = "ldap";
/// passlib's `ldap_salted_*.min_salt_size` and `max_salt_size`.
const MIN_SALT_LEN: usize = 4;
const MAX_SALT_LEN: usize = 16;
const CRYPT: &str = "{CRYPT}";

/// Parses an LDAP string, or returns `None` if it does not start with a scheme we read.
pub(crate) fn parse(hash: &str) -> Option<Result<ParsedHash, PasswordError>> {
    if let Some(inner) = hash.strip_prefix(CRYPT) {
        return Some(parse_crypt(inner));
    }
    let (algorithm, salted, rest) = [
        ("{MD5}", DigestAlgorithm::Md5, false),
        ("{SHA}", DigestAlgorithm::Sha1, false),
        ("{SMD5}", DigestAlgorithm::Md5, true),
        ("{SSHA}", DigestAlgorithm::Sha1, true),
        ("{SSHA256}", DigestAlgorithm::Sha256, true),
        ("{SSHA512}", DigestAlgorithm::Sha512, true),
    ]
    .into_iter()
    .find_map(|(prefix, algorithm, salted)| {
        Some((algorithm, salted, hash.strip_prefix(prefix)?))
    })?;
    Some(parse_digest(algorithm, salted, rest).map(ParsedHash::Digest))
}

fn parse_digest(
    algorithm: DigestAlgorithm,
    salted: bool,
    text: &str,
) -> Result<DigestHash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: FORMAT,
        problem,
    };
    let mut bytes = STANDARD
        .decode(text)
        .map_err(|_| malformed("value is not padded base64"))?;
    let digest_len = algorithm.output_len();
    if bytes.len() < digest_len {
        return Err(malformed("value is shorter than the digest"));
    }
    let salt = bytes.split_off(digest_len);
    let salt = match (salted, salt.len()) {
        (false, 0) => DigestSalt::None,
        (true, MIN_SALT_LEN..=MAX_SALT_LEN) => DigestSalt::Suffix(salt),
        (false, _) => return Err(malformed("value is longer than the digest")),
        (true, _) => return Err(malformed("salt is not 4-16 bytes")),
    };
    Ok(DigestHash {
        algorithm,
        salt,
        digest: bytes,
    })
}

fn parse_crypt(inner: &str) -> Result<ParsedHash, PasswordError> {
    if inner.starts_with("$2") {
        bcrypt::parse(inner, BcryptPrehash::None).map(ParsedHash::Bcrypt)
    } else if inner.starts_with("$5$") || inner.starts_with("$6$") {
        shacrypt::parse(inner).map(ParsedHash::ShaCrypt)
    } else {
        Err(PasswordError::UnsupportedVariant(
            "ldap {CRYPT} other than bcrypt and sha-crypt",
        ))
    }
}

/// Writes `{MD5}`/`{SHA}` for an unsalted digest, `{SMD5}`... for a suffix-salted one.
/// Returns the unsalted form for a Django (prefix) salt, which no LDAP scheme has.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode(h: &DigestHash) -> String {
    let (scheme, salt): (_, &[u8]) = match (&h.salt, h.algorithm) {
        (DigestSalt::Suffix(salt), DigestAlgorithm::Md5) => ("{SMD5}", salt),
        (DigestSalt::Suffix(salt), DigestAlgorithm::Sha1) => ("{SSHA}", salt),
        (DigestSalt::Suffix(salt), DigestAlgorithm::Sha256) => ("{SSHA256}", salt),
        (DigestSalt::Suffix(salt), DigestAlgorithm::Sha512) => ("{SSHA512}", salt),
        (_, DigestAlgorithm::Md5) => ("{MD5}", &[]),
        (_, DigestAlgorithm::Sha1 | DigestAlgorithm::Sha256 | DigestAlgorithm::Sha512) => {
            ("{SHA}", &[])
        }
    };
    let mut value = h.digest.clone();
    value.extend_from_slice(salt);
    format!("{scheme}{}", STANDARD.encode(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    // passlib.hash.ldap_salted_sha256.hash("x") and friends.
    const SSHA256: &str = "{SSHA256}KmCqV8NoXa1tnrIrjPgt/vBlTSUyI1l0Wb2FIIdQId4dwxij1Lq31g==";

    #[test]
    fn salted_digests_split_digest_and_salt() {
        let Some(Ok(ParsedHash::Digest(h))) = parse(SSHA256) else {
            panic!("not a digest")
        };
        assert_eq!(h.algorithm, DigestAlgorithm::Sha256);
        assert!(matches!(&h.salt, DigestSalt::Suffix(s) if s.len() == 8));
        assert_eq!(encode(&h), SSHA256);
        let Some(Ok(ParsedHash::Digest(h))) = parse("{MD5}ndTkYSaMgDT1yFZOFVxnpg==") else {
            panic!("not a digest")
        };
        assert_eq!(h.salt, DigestSalt::None);
    }

    #[test]
    fn refuses_wrong_lengths_and_unknown_crypt() {
        for bad in [
            "{MD5}ndTkYSaMgDT1yFZOFVxnpgAA",
            "{MD5}ndTkYSaMgDT1yFZOFVxnpg",
            "{SMD5}ndTkYSaMgDT1yFZOFVxnpg==",
            "{SSHA}MLd1GuAOEzNGovIxZS9qC6ts7upZ",
            "{SSHA}",
        ] {
            assert!(
                matches!(parse(bad), Some(Err(PasswordError::MalformedHash { .. }))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("{CRYPT}$1$abc$def"),
            Some(Err(PasswordError::UnsupportedVariant(_)))
        ));
        assert!(parse("{SSHA1}abc").is_none());
        assert!(parse("{ssha}abc").is_none());
    }
}
