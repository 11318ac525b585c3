//! passlib's own strings: `$pbkdf2-sha256$29000$salt$hash` (also `-sha512` and `$pbkdf2$`
//! for SHA-1) in passlib's "adapted base64", and `$bcrypt-sha256$` in its v1 and v2 forms.
//!
//! Adapted base64 (`passlib.utils.binary.ab64_encode`) is standard base64 with `.` in place
//! of `+` and no padding. `$bcrypt-sha256$` is bcrypt over standard base64 of SHA-256 of the
//! password (v1, `$bcrypt-sha256$2b,12$...`) or of HMAC-SHA256 keyed by the salt text
//! (v2, `$bcrypt-sha256$v=2,t=2b,r=12$...`), per passlib 1.7.4 `handlers/bcrypt.py`.
//!
//! `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` is passlib's scrypt (`handlers/scrypt.py`):
//! salt and a 32-byte hash in standard base64 without padding. (Its `$7$` form is not read.)

use base64::Engine as _;

use super::{
    B64, BcryptHash, BcryptPrehash, MAX_DIGEST_LEN, MAX_SALT_LEN, MIN_DIGEST_LEN, Pbkdf2Hash,
    ScryptHash, bcrypt, decode_b64_field, parse_canonical_decimal, parse_decimal, split_pbkdf2,
};
use crate::password::error::PasswordError;

const PBKDF2: &str = "passlib pbkdf2";
const BCRYPT_SHA256: &str = "passlib bcrypt-sha256";
const SCRYPT: &str = "passlib scrypt";
/// passlib's scrypt always derives 32 bytes (`scrypt.checksum_size`).
const SCRYPT_DIGEST_LEN: usize = 32;
/// passlib's largest `ln` (`scrypt.max_rounds`).
const SCRYPT_MAX_LOG_N: u32 = 31;

/// Parses `$pbkdf2[-sha256|-sha512]$rounds$salt$hash`.
pub(crate) fn parse_pbkdf2(hash: &str) -> Result<Pbkdf2Hash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: PBKDF2,
        problem,
    };
    let (prf, [rounds, salt, digest]) = split_pbkdf2(hash, PBKDF2)?;
    let iterations = parse_decimal(rounds)
        .filter(|&i| i > 0)
        .ok_or(malformed("rounds are not a positive number"))?;
    let salt = decode_ab64(
        salt,
        "salt is not adapted base64 of 0-128 bytes",
        (0, MAX_SALT_LEN),
    )?;
    let digest = decode_ab64(
        digest,
        "hash is not adapted base64 of 4-128 bytes",
        (MIN_DIGEST_LEN, MAX_DIGEST_LEN),
    )?;
    Ok(Pbkdf2Hash {
        prf,
        iterations,
        salt,
        digest,
    })
}

fn decode_ab64(
    text: &str,
    what: &'static str,
    bounds: (usize, usize),
) -> Result<Vec<u8>, PasswordError> {
    if text.contains('+') {
        return Err(PasswordError::MalformedHash {
            format: PBKDF2,
            problem: what,
        });
    }
    decode_b64_field(&B64, &text.replace('.', "+"), PBKDF2, what, bounds)
}

/// Writes passlib's `$pbkdf2-sha256$rounds$salt$hash` (the form `pbkdf2_sha256.verify` reads).
pub(crate) fn encode_pbkdf2(h: &Pbkdf2Hash) -> String {
    let ident = h.prf.pbkdf2_ident();
    let ab64 = |bytes: &[u8]| B64.encode(bytes).replace('+', ".");
    format!(
        "${ident}${}${}${}",
        h.iterations,
        ab64(&h.salt),
        ab64(&h.digest)
    )
}

/// Parses `$bcrypt-sha256$v=2,t=2b,r=12$salt$digest` or `$bcrypt-sha256$2a,12$salt$digest`.
pub(crate) fn parse_bcrypt_sha256(hash: &str) -> Result<BcryptHash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: BCRYPT_SHA256,
        problem,
    };
    let fields: Vec<&str> = hash.split('$').collect();
    let ["", "bcrypt-sha256", params, salt, digest] = fields[..] else {
        return Err(malformed("wrong number of fields"));
    };
    let params: Vec<&str> = params.split(',').collect();
    let (v2, rounds) = match params[..] {
        ["v=2", "t=2b", rounds] => (true, rounds.strip_prefix("r=").unwrap_or_default()),
        ["2a" | "2b", rounds] => (false, rounds),
        _ => return Err(malformed("parameters are neither v1 nor v2")),
    };
    if rounds.is_empty() || rounds.len() > 2 {
        return Err(malformed("rounds are not one or two digits"));
    }
    let cost = parse_decimal(rounds)
        .filter(|&c| c >= crate::password::kdf::BCRYPT_MIN_COST)
        .ok_or(malformed("rounds are not a number from 4"))?;
    if salt.len() != bcrypt::SALT_CHARS {
        return Err(malformed("salt is not 22 characters"));
    }
    let prehash = if v2 {
        BcryptPrehash::PasslibSha256V2 {
            salt_text: salt.to_owned(),
        }
    } else {
        BcryptPrehash::PasslibSha256V1
    };
    bcrypt::parse_salt_and_digest(&format!("{salt}{digest}"), prehash, cost)
}

/// Parses `$scrypt$ln=..,r=..,p=..$salt$hash`.
pub(crate) fn parse_scrypt(hash: &str) -> Result<ScryptHash, PasswordError> {
    let malformed = |problem| PasswordError::MalformedHash {
        format: SCRYPT,
        problem,
    };
    let fields: Vec<&str> = hash.split('$').collect();
    let ["", "scrypt", params, salt, digest] = fields[..] else {
        return Err(malformed("wrong number of fields"));
    };
    let params: Vec<&str> = params.split(',').collect();
    let [ln, r, p] = params[..] else {
        return Err(malformed("parameters are not ln=,r=,p="));
    };
    let number = |text: &str, key: &str| {
        text.strip_prefix(key)
            .and_then(parse_canonical_decimal)
            .filter(|&v| v > 0)
    };
    let log_n = number(ln, "ln=")
        .filter(|&v| v <= SCRYPT_MAX_LOG_N)
        .and_then(|v| u8::try_from(v).ok())
        .ok_or(malformed("ln is not a number from 1 to 31"))?;
    let r = number(r, "r=").ok_or(malformed("r is not a positive number"))?;
    let p = number(p, "p=").ok_or(malformed("p is not a positive number"))?;
    let salt = decode_b64_field(
        &B64,
        salt,
        SCRYPT,
        "salt is not valid b64 of 0-128 bytes",
        (0, MAX_SALT_LEN),
    )?;
    let digest = decode_b64_field(
        &B64,
        digest,
        SCRYPT,
        "hash is not valid b64 of 32 bytes",
        (SCRYPT_DIGEST_LEN, SCRYPT_DIGEST_LEN),
    )?;
    Ok(ScryptHash {
        log_n,
        r,
        p,
        salt,
        digest,
    })
}

/// Writes `$scrypt$ln=..,r=..,p=..$salt$hash`.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn encode_scrypt(h: &ScryptHash) -> String {
    format!(
        "$scrypt$ln={},r={},p={}${}${}",
        h.log_n,
        h.r,
        h.p,
        B64.encode(&h.salt),
        B64.encode(&h.digest)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_round_trips_adapted_base64() {
        // passlib.hash.pbkdf2_sha256.hash("password", rounds=1000, salt=b"salt.sal")
        let s = "$pbkdf2-sha256$1000$c2FsdC5zYWw$N.yJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU.E";
        let h = parse_pbkdf2(s).unwrap();
        assert_eq!(h.iterations, 1000);
        assert_eq!(h.digest[0], 0x37);
        assert_eq!(encode_pbkdf2(&h), s);
        assert!(parse_pbkdf2(&s.replace('.', "+")).is_err());
    }

    #[test]
    fn bcrypt_sha256_reads_both_versions() {
        let tail = "DCq7YPn5Rq63x1Lad4cll.$TV4S6ytwfsfvkgY8jIucDrjc8deX1s.";
        let v2 = parse_bcrypt_sha256(&format!("$bcrypt-sha256$v=2,t=2b,r=12${tail}")).unwrap();
        assert!(matches!(v2.prehash, BcryptPrehash::PasslibSha256V2 { .. }));
        let v1 = parse_bcrypt_sha256(&format!("$bcrypt-sha256$2a,5${tail}")).unwrap();
        assert_eq!((v1.prehash, v1.cost), (BcryptPrehash::PasslibSha256V1, 5));
        assert!(parse_bcrypt_sha256(&format!("$bcrypt-sha256$v=3,t=2b,r=12${tail}")).is_err());
    }

    #[test]
    fn scrypt_round_trips_and_refuses_odd_params() {
        // passlib.hash.scrypt.using(rounds=4).hash("")
        let s = "$scrypt$ln=4,r=8,p=1$07o3prRWyllL6d3b+///fw$U+YZa3773Vw5ewr7ryIKHn6qrX+LseUNN2NDoKzWnTg";
        let h = parse_scrypt(s).unwrap();
        assert_eq!((h.log_n, h.r, h.p, h.salt.len()), (4, 8, 1, 16));
        assert_eq!(encode_scrypt(&h), s);
        for bad in [
            s.replace("ln=4", "ln=0"),
            s.replace("ln=4", "ln=32"),
            s.replace("ln=4", "ln=04"),
            s.replace("r=8,p=1", "p=1,r=8"),
            s.replace("p=1", "p=0"),
            s.replace("$U+YZ", "$U+Y"),
            s.replace("$scrypt$", "$scrypt$x$"),
        ] {
            assert!(parse_scrypt(&bad).is_err(), "{bad}");
        }
    }
}
