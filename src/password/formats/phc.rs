//! PHC strings: `$argon2id$v=19$m=19456,t=2,p=1$salt$hash` and
//! `$pbkdf2-sha256$i=600000,l=32$salt$hash`.
//!
//! Follows the PHC string format (github.com/P-H-C/phc-string-format): `$id[$v=version]
//! [$param=value(,param=value)*][$salt[$hash]]`, salt and hash in "B64" (standard base64
//! without padding). argon2-cffi writes this for argon2; RustCrypto's `pbkdf2` for PBKDF2.

use base64::Engine as _;

use super::{
    Argon2Hash, Argon2Variant, B64, MAX_DIGEST_LEN, MAX_SALT_LEN, MIN_DIGEST_LEN, Pbkdf2Hash,
    decode_b64_field, parse_decimal, split_pbkdf2,
};
use crate::password::error::PasswordError;

const ARGON2: &str = "phc argon2";
const PBKDF2: &str = "phc pbkdf2";
/// argon2's smallest salt (RFC 9106 recommends 16 bytes; the reference code allows 8).
const MIN_ARGON2_SALT_LEN: usize = 8;

/// Parses an argon2 PHC string (a missing `v=` means version 0x10, as argon2-cffi reads it).
pub(crate) fn parse_argon2(hash: &str) -> Result<Argon2Hash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: ARGON2,
        problem,
    };
    let mut fields: Vec<&str> = hash.split('$').collect();
    if fields.first() != Some(&"") {
        return Err(malformed("missing leading '$'"));
    }
    fields.remove(0);
    let variant = match fields.first().copied() {
        Some("argon2id") => Argon2Variant::Id,
        Some("argon2i") => Argon2Variant::I,
        Some("argon2d") => Argon2Variant::D,
        _ => return Err(malformed("unknown argon2 variant")),
    };
    let (version, params, salt, digest) = match fields[1..] {
        [v, params, salt, digest] => {
            let version = v.strip_prefix("v=").and_then(parse_decimal);
            (
                version.ok_or(malformed("version is not v=<number>"))?,
                params,
                salt,
                digest,
            )
        }
        [params, salt, digest] => (0x10, params, salt, digest),
        _ => return Err(malformed("wrong number of fields")),
    };
    if version != 0x10 && version != 0x13 {
        return Err(malformed("version is neither 16 nor 19"));
    }
    let (m_cost, t_cost, p_cost) =
        parse_mtp(params).ok_or(malformed("parameters are not m=,t=,p="))?;
    if t_cost == 0 || p_cost == 0 || u64::from(m_cost) < 8 * u64::from(p_cost) {
        return Err(malformed("parameters are out of argon2's range"));
    }
    let salt = decode_b64_field(
        &B64,
        salt,
        ARGON2,
        "salt is not valid b64 of 8-128 bytes",
        (MIN_ARGON2_SALT_LEN, MAX_SALT_LEN),
    )?;
    let digest = decode_b64_field(
        &B64,
        digest,
        ARGON2,
        "hash is not valid b64 of 4-128 bytes",
        (MIN_DIGEST_LEN, MAX_DIGEST_LEN),
    )?;
    Ok(Argon2Hash {
        variant,
        version,
        m_cost,
        t_cost,
        p_cost,
        salt,
        digest,
    })
}

/// `m=..,t=..,p=..` in that order, as every argon2 implementation writes it.
fn parse_mtp(params: &str) -> Option<(u32, u32, u32)> {
    let mut parts = params.split(',');
    let m = parse_decimal(parts.next()?.strip_prefix("m=")?)?;
    let t = parse_decimal(parts.next()?.strip_prefix("t=")?)?;
    let p = parse_decimal(parts.next()?.strip_prefix("p=")?)?;
    parts.next().is_none().then_some((m, t, p))
}

/// Whether a `$pbkdf2...` string is the PHC form (`i=` parameters) rather than passlib's.
pub(crate) fn is_phc_pbkdf2(hash: &str) -> bool {
    hash.split('$').nth(2).is_some_and(|p| p.starts_with("i="))
}

/// Parses `$pbkdf2-sha256$i=N[,l=L]$salt$hash` (also `-sha512`, and bare `pbkdf2` for SHA-1).
pub(crate) fn parse_pbkdf2(hash: &str) -> Result<Pbkdf2Hash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: PBKDF2,
        problem,
    };
    let (prf, [params, salt, digest]) = split_pbkdf2(hash, PBKDF2)?;
    let mut parts = params.split(',');
    let iterations = parts
        .next()
        .and_then(|p| p.strip_prefix("i="))
        .and_then(parse_decimal)
        .filter(|&i| i > 0)
        .ok_or(malformed("iterations are not i=<number>"))?;
    let length = match parts.next() {
        None => None,
        Some(l) => Some(
            l.strip_prefix("l=")
                .and_then(parse_decimal)
                .ok_or(malformed("length is not l=<number>"))?,
        ),
    };
    if parts.next().is_some() {
        return Err(malformed("unknown parameter"));
    }
    let salt = decode_b64_field(
        &B64,
        salt,
        PBKDF2,
        "salt is not valid b64 of 0-128 bytes",
        (0, MAX_SALT_LEN),
    )?;
    let digest = decode_b64_field(
        &B64,
        digest,
        PBKDF2,
        "hash is not valid b64 of 4-128 bytes",
        (MIN_DIGEST_LEN, MAX_DIGEST_LEN),
    )?;
    if length.is_some_and(|l| usize::try_from(l).ok() != Some(digest.len())) {
        return Err(malformed("length parameter does not match the hash"));
    }
    Ok(Pbkdf2Hash {
        prf,
        iterations,
        salt,
        digest,
    })
}

/// Writes an argon2 PHC string.
pub(crate) fn encode_argon2(h: &Argon2Hash) -> String {
    let variant = match h.variant {
        Argon2Variant::D => "argon2d",
        Argon2Variant::I => "argon2i",
        Argon2Variant::Id => "argon2id",
    };
    format!(
        "${variant}$v={}$m={},t={},p={}${}${}",
        h.version,
        h.m_cost,
        h.t_cost,
        h.p_cost,
        B64.encode(&h.salt),
        B64.encode(&h.digest)
    )
}

/// Writes a PBKDF2 PHC string, as RustCrypto's `pbkdf2` does.
pub(crate) fn encode_pbkdf2(h: &Pbkdf2Hash) -> String {
    let ident = h.prf.pbkdf2_ident();
    format!(
        "${ident}$i={},l={}${}${}",
        h.iterations,
        h.digest.len(),
        B64.encode(&h.salt),
        B64.encode(&h.digest)
    )
}

#[cfg(test)]
mod tests {
    use super::super::Prf;
    use super::*;

    #[test]
    fn argon2_round_trips_and_defaults_version() {
        let s = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaA";
        let h = parse_argon2(s).unwrap();
        assert_eq!(
            (h.m_cost, h.t_cost, h.p_cost, h.version),
            (19456, 2, 1, 0x13)
        );
        assert_eq!(encode_argon2(&h), s);
        let old = "$argon2i$m=512,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$aGFzaA";
        assert_eq!(parse_argon2(old).unwrap().version, 0x10);
    }

    #[test]
    fn argon2_rejects_bad_params() {
        for s in [
            "$argon2id$v=19$m=8,t=2,p=2$c29tZXNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=18$m=64,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$t=2,m=64,p=1$c29tZXNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=64,t=0,p=1$c29tZXNhbHQ$aGFzaGhhc2g",
            "$argon2x$v=19$m=64,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=19$m=64,t=1,p=1$c29t$aGFzaGhhc2g",
        ] {
            assert!(
                matches!(parse_argon2(s), Err(PasswordError::MalformedHash { .. })),
                "{s}"
            );
        }
    }

    #[test]
    fn pbkdf2_round_trips() {
        let s =
            "$pbkdf2-sha256$i=1000,l=32$c2FsdHNhbHQ$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E";
        let h = parse_pbkdf2(s).unwrap();
        assert_eq!((h.prf, h.iterations), (Prf::Sha256, 1000));
        assert_eq!(encode_pbkdf2(&h), s);
        assert!(parse_pbkdf2(&s.replace("l=32", "l=31")).is_err());
    }
}
