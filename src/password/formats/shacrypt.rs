//! SHA-crypt's modular-crypt strings: `$5$[rounds=N$]salt$checksum` (SHA-256-crypt) and
//! `$6$...` (SHA-512-crypt), as Ulrich Drepper's specification ("Unix crypt using SHA-256 and
//! SHA-512") defines them and passlib 1.7.4 (`handlers/sha2_crypt.py`) reads them:
//!
//! - `rounds=` is optional (then 5000), decimal without leading zeros, 1000 to 999 999 999
//!   (the specification clamps out-of-range values; passlib refuses them, so do we);
//! - the salt is 0-16 characters of `./0-9A-Za-z` (longer salts are refused, not cut);
//! - the checksum is 43 (SHA-256) or 86 (SHA-512) characters of the same alphabet.
//!
//! `{CRYPT}$5$...` (passlib's `ldap_sha256_crypt`) is unwrapped in [`super::ldap`].

use super::{ShaCryptHash, ShaCryptVariant, parse_canonical_decimal};
use crate::password::error::PasswordError;

const FORMAT: &str = "sha-crypt";
/// Rounds when the string names none.
pub(crate) const DEFAULT_ROUNDS: u32 = 5_000;
/// The specification's least rounds.
const MIN_ROUNDS: u32 = 1_000;
/// The specification's most rounds.
const MAX_ROUNDS: u32 = 999_999_999;
/// Longest salt, in characters.
const MAX_SALT_CHARS: usize = 16;
/// Checksum characters of SHA-256-crypt and SHA-512-crypt.
const SHA256_CHECKSUM_CHARS: usize = 43;
const SHA512_CHECKSUM_CHARS: usize = 86;

/// Parses `$5$...` or `$6$...`.
pub(crate) fn parse(hash: &str) -> Result<ShaCryptHash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: FORMAT,
        problem,
    };
    let fields: Vec<&str> = hash.split('$').collect();
    let (ident, rounds, salt, checksum) = match fields[..] {
        ["", ident, rounds, salt, checksum] if rounds.starts_with("rounds=") => {
            (ident, Some(rounds), salt, checksum)
        }
        ["", ident, salt, checksum] => (ident, None, salt, checksum),
        _ => return Err(malformed("wrong number of fields")),
    };
    let (variant, checksum_chars) = match ident {
        "5" => (ShaCryptVariant::Sha256, SHA256_CHECKSUM_CHARS),
        "6" => (ShaCryptVariant::Sha512, SHA512_CHECKSUM_CHARS),
        _ => return Err(malformed("unknown sha-crypt identifier")),
    };
    let rounds_written = rounds.is_some();
    let rounds = match rounds {
        None => DEFAULT_ROUNDS,
        Some(text) => text
            .strip_prefix("rounds=")
            .and_then(parse_canonical_decimal)
            .filter(|r| (MIN_ROUNDS..=MAX_ROUNDS).contains(r))
            .ok_or(malformed("rounds are not a number from 1000 to 999999999"))?,
    };
    if salt.len() > MAX_SALT_CHARS || !is_crypt64(salt) {
        return Err(malformed("salt is not 0-16 characters of ./0-9A-Za-z"));
    }
    if checksum.len() != checksum_chars || !is_crypt64(checksum) {
        return Err(malformed("checksum has the wrong length or alphabet"));
    }
    Ok(ShaCryptHash {
        variant,
        rounds,
        rounds_written,
        salt: salt.to_owned(),
        checksum: checksum.to_owned(),
    })
}

/// Writes the string back as it was read.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode(h: &ShaCryptHash) -> String {
    let ident = match h.variant {
        ShaCryptVariant::Sha256 => "5",
        ShaCryptVariant::Sha512 => "6",
    };
    let rounds = if h.rounds_written {
        format!("rounds={}$", h.rounds)
    } else {
        String::new()
    };
    format!("${ident}${rounds}{}${}", h.salt, h.checksum)
}

/// Whether every character is in crypt's base64 alphabet `./0-9A-Za-z`.
fn is_crypt64(text: &str) -> bool {
    text.bytes()
        .all(|b| b == b'.' || b == b'/' || b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    // passlib.hash.sha256_crypt.using(rounds=1000).hash("x")
    const SHA256: &str =
        "$5$rounds=1000$XzN1WMR6wQen6ARC$ZCelbAhL8Pz7aIjVKwn4rrF3mdd20VYW7XTzvsNZk.9";

    #[test]
    fn parses_and_rewrites_both_forms() {
        let h = parse(SHA256).unwrap();
        assert_eq!(
            (h.variant, h.rounds, h.salt.as_str()),
            (ShaCryptVariant::Sha256, 1000, "XzN1WMR6wQen6ARC")
        );
        assert_eq!(encode(&h), SHA256);
        let implicit = SHA256.replace("rounds=1000$", "");
        let h = parse(&implicit).unwrap();
        assert_eq!((h.rounds, h.rounds_written), (DEFAULT_ROUNDS, false));
        assert_eq!(encode(&h), implicit);
        let empty_salt = "$5$$0Uor7kq6CTPY0DtjOiw.I2DuJSUfiZxCqkrafMVjNc8";
        assert_eq!(parse(empty_salt).unwrap().salt, "");
    }

    #[test]
    fn refuses_what_passlib_refuses() {
        for bad in [
            SHA256.replace("1000", "01000"),
            SHA256.replace("1000", "999"),
            SHA256.replace("1000", "1000000000"),
            SHA256.replace("rounds=", "rounds:"),
            SHA256.replace("XzN1WMR6wQen6ARC", "XzN1WMR6wQen6ARCx"),
            SHA256.replace("XzN1", "Xz_1"),
            SHA256[..SHA256.len() - 1].to_owned(),
            SHA256.replace("$5$", "$6$"),
            SHA256.replace("$5$", "$7$"),
            format!("{SHA256}$"),
        ] {
            assert!(
                matches!(parse(&bad), Err(PasswordError::MalformedHash { .. })),
                "{bad}"
            );
        }
    }
}
