//! bcrypt's modular-crypt string: `$2b$12$` + 22 characters of salt + 31 of digest.
//!
//! Written as OpenBSD defines it, in bcrypt's own base64 alphabet (`./A-Za-z0-9`).
//! `$2a$` and `$2y$` are read as `$2b$` (Python's `bcrypt` and PHP do likewise); `$2x$`
//! (crypt_blowfish's sign-extension bug) is refused rather than verified wrongly.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::{BcryptHash, BcryptPrehash, parse_decimal};
use crate::password::error::PasswordError;

const FORMAT: &str = "bcrypt";
/// Characters of salt in the string.
pub(crate) const SALT_CHARS: usize = 22;
/// Characters of digest in the string.
const DIGEST_CHARS: usize = 31;

/// bcrypt's base64: alphabet `./A-Za-z0-9`, no padding, unused trailing bits ignored.
pub(crate) const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::BCRYPT,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Parses `$2?$cc$salt+digest`.
pub(crate) fn parse(hash: &str, prehash: BcryptPrehash) -> Result<BcryptHash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: FORMAT,
        problem,
    };
    let rest = hash
        .strip_prefix('$')
        .ok_or(malformed("missing leading '$'"))?;
    let mut fields = rest.split('$');
    let ident = fields.next().unwrap_or_default();
    match ident {
        "2a" | "2b" | "2y" => {}
        "2x" => return Err(PasswordError::UnsupportedVariant("bcrypt $2x$")),
        _ => return Err(malformed("unknown bcrypt identifier")),
    }
    let cost_text = fields.next().ok_or(malformed("missing cost"))?;
    if cost_text.len() != 2 {
        return Err(malformed("cost is not two digits"));
    }
    let cost = parse_decimal(cost_text).ok_or(malformed("cost is not a number"))?;
    if cost < crate::password::kdf::BCRYPT_MIN_COST {
        return Err(malformed("cost is below 4"));
    }
    let tail = fields.next().ok_or(malformed("missing salt and digest"))?;
    if fields.next().is_some() {
        return Err(malformed("too many fields"));
    }
    parse_salt_and_digest(tail, prehash, cost)
}

/// Parses the 53 characters after the cost.
pub(crate) fn parse_salt_and_digest(
    tail: &str,
    prehash: BcryptPrehash,
    cost: u32,
) -> Result<BcryptHash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: FORMAT,
        problem,
    };
    if tail.len() != SALT_CHARS + DIGEST_CHARS || !tail.is_ascii() {
        return Err(malformed("salt and digest are not 53 characters"));
    }
    let (salt_text, digest_text) = tail.split_at(SALT_CHARS);
    let salt = decode_exact::<16>(salt_text).ok_or(malformed("salt is not bcrypt base64"))?;
    let digest = decode_exact::<23>(digest_text).ok_or(malformed("digest is not bcrypt base64"))?;
    Ok(BcryptHash {
        prehash,
        cost,
        salt,
        digest,
    })
}

/// Decodes bcrypt base64 into exactly `N` bytes.
pub(crate) fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = BCRYPT_B64.decode(text).ok()?;
    bytes.try_into().ok()
}

/// Writes `$2b$cc$salt+digest`.
pub(crate) fn encode(cost: u32, salt: &[u8; 16], digest: &[u8; 23]) -> String {
    format!(
        "$2b${cost:02}${}{}",
        BCRYPT_B64.encode(salt),
        BCRYPT_B64.encode(digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // From jBCrypt's test vectors (as quoted in the `bcrypt` crate).
    const VECTOR: &str = "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.";

    #[test]
    fn parses_and_rewrites_a_known_hash() {
        let parsed = parse(VECTOR, BcryptPrehash::None).unwrap();
        assert_eq!(parsed.cost, 6);
        assert_eq!(
            encode(6, &parsed.salt, &parsed.digest),
            VECTOR.replace("$2a$", "$2b$")
        );
    }

    #[test]
    fn refuses_2x_and_bad_costs() {
        let x = VECTOR.replace("$2a$", "$2x$");
        assert_eq!(
            parse(&x, BcryptPrehash::None),
            Err(PasswordError::UnsupportedVariant("bcrypt $2x$"))
        );
        for bad in [
            VECTOR.replace("$06$", "$03$"),
            VECTOR.replace("$06$", "$6$"),
            VECTOR[..50].to_owned(),
        ] {
            assert!(matches!(
                parse(&bad, BcryptPrehash::None),
                Err(PasswordError::MalformedHash { .. })
            ));
        }
    }
}
