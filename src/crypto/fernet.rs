//! Fernet, exactly as the spec (<https://github.com/fernet/spec/blob/master/Spec.md>) writes it,
//! with the names Python's `cryptography` uses.
//!
//! A token is the URL-safe base64 (with padding) of
//! `Version (0x80) ‖ Timestamp (u64 BE) ‖ IV (16) ‖ Ciphertext (AES-128-CBC, PKCS#7) ‖ HMAC (32)`,
//! the HMAC being HMAC-SHA256 under the signing key "of the concatenation of the following
//! fields: Version ‖ Timestamp ‖ IV ‖ Ciphertext". A key is the URL-safe base64 of
//! `Signing-key (16) ‖ Encryption-key (16)`.
//!
//! Time rules match Python's `cryptography`: without a TTL no time is checked at all; with a
//! TTL a token is refused when `timestamp + ttl < now` or when `timestamp > now + 60`
//! (the 60-second clock-skew allowance).
//!
//! Tokens are strict where Python is lenient: a token must be canonical URL-safe base64 with its
//! padding; only leading and trailing ASCII whitespace (a newline read from a file) is ignored.
//! Every token Python writes is accepted. Keys are read as Python's `Fernet(key)` reads them
//! (`base64.urlsafe_b64decode`, non-strict): every key Python accepts is accepted, with the
//! same 32 bytes, and every key it refuses is refused (see [`Fernet::new`]).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use aes::{Aes128Dec, Aes128Enc};
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt as _, BlockModeEncrypt as _, InnerIvInit as _, KeyInit as _};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::crypto::b64;
use crate::secret::{SecretBytes, SecretString};

/// The only version byte the spec defines.
pub const VERSION: u8 = 0x80;
/// Allowed clock skew for tokens stamped in the future, in seconds (Python's `_MAX_CLOCK_SKEW`).
pub const MAX_CLOCK_SKEW: u64 = 60;
/// Length of a raw Fernet key: 16 bytes signing key, then 16 bytes encryption key.
pub const KEY_LEN: usize = 32;

const TIMESTAMP_LEN: usize = 8;
const IV_LEN: usize = 16;
const BLOCK_LEN: usize = 16;
const HMAC_LEN: usize = 32;
/// Version + timestamp + IV.
const HEADER_LEN: usize = 1 + TIMESTAMP_LEN + IV_LEN;
/// The shortest valid token: header, one ciphertext block, HMAC.
const MIN_TOKEN_LEN: usize = HEADER_LEN + BLOCK_LEN + HMAC_LEN;
/// Raw tokens up to this length (plaintexts up to 431 bytes) are built on the stack.
const STACK_TOKEN_LEN: usize = 512;

/// The four decrypt methods of [`Fernet`] and [`MultiFernet`] (one copy for both: they differ
/// only in which keys `key_list` gives). `$keys` says which keys, in the docs.
macro_rules! decrypt_methods {
    ($keys:literal) => {
        #[doc = concat!(
            "Decrypts a token with ", $keys,
            ", without any time check (as Python does when `ttl` is `None`)."
        )]
        ///
        /// # Errors
        ///
        /// [`InvalidToken`] for any token that is not a valid token under the key(s).
        pub fn decrypt(&self, token: impl AsRef<[u8]>) -> Result<SecretBytes, InvalidToken> {
            decrypt_parts(self.key_list(), token.as_ref(), None).map(|(_, data)| data)
        }

        #[doc = concat!(
            "Decrypts a token with ", $keys,
            " if it is no older than `ttl` seconds and not stamped more than 60 s in the future."
        )]
        ///
        /// # Errors
        ///
        /// [`InvalidToken`] for a bad token, or one outside the time window.
        pub fn decrypt_with_ttl(
            &self,
            token: impl AsRef<[u8]>,
            ttl: u64,
        ) -> Result<SecretBytes, InvalidToken> {
            self.decrypt_at_time(token, ttl, now())
        }

        /// [`decrypt_with_ttl`](Self::decrypt_with_ttl) with the current time given (Python's
        /// `decrypt_at_time(token, ttl, current_time)`).
        ///
        /// # Errors
        ///
        /// [`InvalidToken`] for a bad token, or one outside the time window.
        pub fn decrypt_at_time(
            &self,
            token: impl AsRef<[u8]>,
            ttl: u64,
            current_time: u64,
        ) -> Result<SecretBytes, InvalidToken> {
            decrypt_parts(self.key_list(), token.as_ref(), Some((ttl, current_time)))
                .map(|(_, data)| data)
        }

        #[doc = concat!(
            "The timestamp of a token that ", $keys,
            " authenticates (Python's `extract_timestamp`); the HMAC is checked, nothing is \
             decrypted."
        )]
        ///
        /// # Errors
        ///
        /// [`InvalidToken`] if the token is malformed or its HMAC does not verify.
        pub fn extract_timestamp(&self, token: impl AsRef<[u8]>) -> Result<u64, InvalidToken> {
            let raw = decode_token(token.as_ref())?;
            let raw = raw.expose_secret();
            authenticate(self.key_list(), raw).map(|_| timestamp_of(raw))
        }
    };
}

/// A token failed to decrypt. Python's `cryptography.fernet.InvalidToken`.
///
/// Every failure is this one error. [`reason`](Self::reason) separates what anybody can see
/// in the token (it is not a token at all), what the key decides (the HMAC does not match) and
/// what is only known once the HMAC has verified (expired, from the future): none of them tells
/// an attacker anything they did not know, so none is an oracle. Padding is checked only after
/// the HMAC verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid token ({reason})")]
pub struct InvalidToken {
    reason: InvalidTokenReason,
}

impl InvalidToken {
    fn new(reason: InvalidTokenReason) -> Self {
        Self { reason }
    }

    /// Why the token was refused.
    pub fn reason(&self) -> InvalidTokenReason {
        self.reason
    }
}

/// Why a Fernet token was refused. See [`InvalidToken`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidTokenReason {
    /// Not canonical URL-safe base64, too short, a length that is not whole blocks, or a
    /// version byte other than 0x80: visible without any key.
    Malformed,
    /// The HMAC does not verify under this key (or under any key, for [`MultiFernet`]):
    /// a wrong key, or a token that was altered.
    Unauthenticated,
    /// Authenticated, but `timestamp + ttl` is before now.
    Expired,
    /// Authenticated, but stamped more than [`MAX_CLOCK_SKEW`] seconds after now.
    FromTheFuture,
    /// Authenticated, but the plaintext padding is wrong: the token was made with a broken
    /// implementation holding this key.
    BadPadding,
}

impl fmt::Display for InvalidTokenReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "not a fernet token",
            Self::Unauthenticated => "hmac does not verify",
            Self::Expired => "expired",
            Self::FromTheFuture => "timestamp too far in the future",
            Self::BadPadding => "bad padding",
        })
    }
}

/// A Fernet key could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FernetKeyError {
    /// The key is not URL-safe base64 with padding.
    #[error("fernet key is not url-safe base64 with padding")]
    NotBase64,
    /// The key decodes to the wrong number of bytes.
    #[error("fernet key decodes to {len} bytes; a fernet key is 32 bytes (44 base64 characters)")]
    WrongLength {
        /// Number of bytes the key decoded to.
        len: usize,
    },
}

/// [`MultiFernet::new`] was given no keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("multifernet needs at least one key")]
pub struct EmptyKeyList;

/// One Fernet key, ready to encrypt and decrypt. Python's `cryptography.fernet.Fernet`.
///
/// The AES key schedules and the keyed HMAC state are computed once here, not per token.
///
/// ```
/// use credvault::crypto::fernet::Fernet;
///
/// let key = Fernet::generate_key();
/// let f = Fernet::new(key.expose_secret())?;
/// let token = f.encrypt(b"refresh-token");
/// assert_eq!(f.decrypt(&token)?.expose_secret(), b"refresh-token");
/// // With a TTL, a token older than the TTL is refused.
/// assert!(f.decrypt_with_ttl(&token, 60).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Fernet {
    mac: Hmac<Sha256>,
    enc: Aes128Enc,
    dec: Aes128Dec,
}

impl fmt::Debug for Fernet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fernet { .. }")
    }
}

impl Fernet {
    /// A new random key from the OS RNG, as URL-safe base64 (Python's `Fernet.generate_key`).
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails, which leaves nothing safe to do.
    pub fn generate_key() -> SecretString {
        let mut raw = Zeroizing::new([0u8; KEY_LEN]);
        crate::crypto::fill_from_os_rng(raw.as_mut());
        SecretString::new(b64::encode(raw.as_ref()))
    }

    /// Parses a key: URL-safe base64 (with padding) of 32 bytes, decoded exactly as Python's
    /// `cryptography` decodes a Fernet key (`base64.urlsafe_b64decode`, non-strict), so that a
    /// key a Python service accepts works here too: characters outside the base64 alphabets
    /// are skipped (whitespace, line breaks, stray punctuation), both the URL-safe (`-_`) and
    /// the standard (`+/`) alphabet are read, decoding stops at the padding that completes a
    /// group (anything after it is ignored), and non-zero trailing bits are dropped. As in
    /// Python, a key whose data characters do not end on a group boundary without padding (an
    /// unpadded key) and any non-ASCII text are refused.
    ///
    /// # Errors
    ///
    /// [`FernetKeyError`] if the text is not base64 or not 32 bytes. The message never
    /// contains the key.
    pub fn new(key: &str) -> Result<Self, FernetKeyError> {
        let decoded = Zeroizing::new(python_b64decode(key).ok_or(FernetKeyError::NotBase64)?);
        let raw: &[u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| FernetKeyError::WrongLength { len: decoded.len() })?;
        Ok(Self::from_key_bytes(raw))
    }

    /// Builds a Fernet from the 32 raw key bytes (signing key, then encryption key).
    pub fn from_key_bytes(key: &[u8; KEY_LEN]) -> Self {
        let (signing, encryption) = key.split_at(KEY_LEN / 2);
        // Both lengths are fixed by the split above: 16 bytes is a valid HMAC and AES-128 key.
        let mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(signing)
            .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
        let enc_key = aes::cipher::Key::<Aes128Enc>::try_from(encryption)
            .unwrap_or_else(|_| unreachable!("encryption key is 16 bytes"));
        Self {
            mac,
            enc: Aes128Enc::new(&enc_key),
            dec: Aes128Dec::new(&enc_key),
        }
    }

    /// Encrypts `data` stamped with the current time.
    ///
    /// # Panics
    ///
    /// As [`encrypt_at_time`](Self::encrypt_at_time).
    pub fn encrypt(&self, data: &[u8]) -> String {
        self.encrypt_at_time(data, now())
    }

    /// Encrypts `data` stamped with `current_time` (seconds since the Unix epoch). The IV is
    /// random and unique across `fork()` (see SECURITY.md, "Randomness across fork()").
    ///
    /// # Panics
    ///
    /// If the operating system's random number generator fails while seeding the IV
    /// generator, which leaves nothing safe to do.
    pub fn encrypt_at_time(&self, data: &[u8], current_time: u64) -> String {
        let mut iv = [0u8; IV_LEN];
        crate::crypto::rng::fill_nonce(&mut iv);
        self.danger_encrypt_with_iv(data, current_time, iv)
    }

    /// Encrypts with a caller-chosen IV, for known-answer tests.
    ///
    /// # Security
    ///
    /// The IV must be unique for every token under a key; use [`encrypt`](Self::encrypt),
    /// which draws it at random, everywhere but in tests.
    pub fn danger_encrypt_with_iv(
        &self,
        data: &[u8],
        current_time: u64,
        iv: [u8; IV_LEN],
    ) -> String {
        let padded_len = (data.len() / BLOCK_LEN + 1) * BLOCK_LEN;
        let raw_len = HEADER_LEN + padded_len + HMAC_LEN;
        if raw_len <= STACK_TOKEN_LEN {
            self.seal_into(
                &mut [0u8; STACK_TOKEN_LEN][..raw_len],
                data,
                current_time,
                iv,
            )
        } else {
            self.seal_into(&mut vec![0u8; raw_len], data, current_time, iv)
        }
    }

    /// Writes the raw token for `data` into `buf` (exactly its length) and returns its text.
    /// `buf` holds the plaintext only until CBC overwrites it in place with the ciphertext.
    fn seal_into(
        &self,
        buf: &mut [u8],
        data: &[u8],
        current_time: u64,
        iv: [u8; IV_LEN],
    ) -> String {
        let signed_len = buf.len() - HMAC_LEN;
        buf[0] = VERSION;
        buf[1..9].copy_from_slice(&current_time.to_be_bytes());
        buf[9..HEADER_LEN].copy_from_slice(&iv);
        let body = &mut buf[HEADER_LEN..signed_len];
        body[..data.len()].copy_from_slice(data);
        let iv = aes::cipher::Iv::<cbc::Encryptor<Aes128Enc>>::from(iv);
        // The buffer is sized for the padded message, so padding cannot fail.
        let encrypted = cbc::Encryptor::inner_iv_init(self.enc.clone(), &iv)
            .encrypt_padded::<Pkcs7>(body, data.len())
            .map(<[u8]>::len);
        debug_assert!(matches!(encrypted, Ok(n) if n == signed_len - HEADER_LEN));
        let mut mac = self.mac.clone();
        mac.update(&buf[..signed_len]);
        buf[signed_len..].copy_from_slice(&mac.finalize().into_bytes());
        b64::encode(buf)
    }

    decrypt_methods!("this key");

    /// This key, as a key list of one (what the decrypt methods search).
    fn key_list(&self) -> &[Fernet] {
        std::slice::from_ref(self)
    }

    /// Spec step 4 and 5: recompute the HMAC and compare in constant time.
    fn verify_hmac(&self, raw: &[u8]) -> Result<(), InvalidToken> {
        let signed_len = raw.len() - HMAC_LEN;
        let mut mac = self.mac.clone();
        mac.update(&raw[..signed_len]);
        mac.verify_slice(&raw[signed_len..])
            .map_err(|_| InvalidToken::new(InvalidTokenReason::Unauthenticated))
    }

    /// Spec steps 6 and 7, on a token whose HMAC verified: the ciphertext is decrypted in
    /// place in the decoded token's own (secret) buffer and the plaintext moved to its front,
    /// so no other buffer ever holds it.
    fn decrypt_verified(&self, mut raw: SecretBytes) -> Result<SecretBytes, InvalidToken> {
        let buf = raw.expose_secret_mut();
        let iv = aes::cipher::Iv::<cbc::Decryptor<Aes128Dec>>::try_from(&buf[9..HEADER_LEN])
            .map_err(|_| InvalidToken::new(InvalidTokenReason::Malformed))?;
        let end = buf.len() - HMAC_LEN;
        let plain_len = cbc::Decryptor::inner_iv_init(self.dec.clone(), &iv)
            .decrypt_padded::<Pkcs7>(&mut buf[HEADER_LEN..end])
            .map_err(|_| InvalidToken::new(InvalidTokenReason::BadPadding))?
            .len();
        buf.copy_within(HEADER_LEN..HEADER_LEN + plain_len, 0);
        raw.truncate(plain_len);
        Ok(raw)
    }
}

/// Several keys: encrypt with the first, decrypt with any. Python's `MultiFernet`.
///
/// ```
/// use credvault::crypto::fernet::{Fernet, MultiFernet};
///
/// let old = Fernet::new(Fernet::generate_key().expose_secret())?;
/// let token = old.encrypt(b"secret");
/// let new = Fernet::new(Fernet::generate_key().expose_secret())?;
/// let both = MultiFernet::new(vec![new.clone(), old])?;
/// let rotated = both.rotate(&token)?; // now under `new`, same timestamp
/// assert_eq!(new.decrypt(&rotated)?.expose_secret(), b"secret");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MultiFernet {
    keys: Vec<Fernet>,
}

impl fmt::Debug for MultiFernet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiFernet")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl MultiFernet {
    /// Builds from keys in priority order: the first encrypts, all decrypt.
    ///
    /// # Errors
    ///
    /// [`EmptyKeyList`] if `keys` is empty.
    pub fn new(keys: Vec<Fernet>) -> Result<Self, EmptyKeyList> {
        if keys.is_empty() {
            return Err(EmptyKeyList);
        }
        Ok(Self { keys })
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Always `false`: a `MultiFernet` has at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn primary(&self) -> &Fernet {
        // `new` refuses an empty list and nothing removes keys.
        &self.keys[0]
    }

    /// Encrypts with the first key.
    pub fn encrypt(&self, data: &[u8]) -> String {
        self.primary().encrypt(data)
    }

    /// Encrypts with the first key, stamped with `current_time`.
    pub fn encrypt_at_time(&self, data: &[u8], current_time: u64) -> String {
        self.primary().encrypt_at_time(data, current_time)
    }

    decrypt_methods!("any of the keys");

    /// The keys the decrypt methods try, in order.
    fn key_list(&self) -> &[Fernet] {
        &self.keys
    }

    /// Re-encrypts a token under the first key, keeping its original timestamp (Python's
    /// `MultiFernet.rotate`). No TTL is applied: an old token rotates as old as it was.
    ///
    /// # Errors
    ///
    /// [`InvalidToken`] if no key opens the token.
    pub fn rotate(&self, token: impl AsRef<[u8]>) -> Result<String, InvalidToken> {
        let (timestamp, data) = decrypt_parts(&self.keys, token.as_ref(), None)?;
        Ok(self
            .primary()
            .encrypt_at_time(data.expose_secret(), timestamp))
    }
}

/// Decrypts `token` with the first of `keys` whose HMAC verifies, after checking the time
/// window when `time` is `(ttl, current_time)`; returns the token's timestamp too.
fn decrypt_parts(
    keys: &[Fernet],
    token: &[u8],
    time: Option<(u64, u64)>,
) -> Result<(u64, SecretBytes), InvalidToken> {
    let raw = decode_token(token)?;
    let key = authenticate(keys, raw.expose_secret())?;
    let timestamp = timestamp_of(raw.expose_secret());
    if let Some((ttl, current_time)) = time {
        check_time(timestamp, ttl, current_time)?;
    }
    key.decrypt_verified(raw).map(|p| (timestamp, p))
}

/// The first of `keys` whose HMAC verifies `raw`.
fn authenticate<'k>(keys: &'k [Fernet], raw: &[u8]) -> Result<&'k Fernet, InvalidToken> {
    keys.iter()
        .find(|k| k.verify_hmac(raw).is_ok())
        .ok_or(InvalidToken::new(InvalidTokenReason::Unauthenticated))
}

/// Spec steps 1 and 2, plus the length rules: base64url-decode (one pass, straight into the
/// buffer that will hold the plaintext) and check the framing.
fn decode_token(token: &[u8]) -> Result<SecretBytes, InvalidToken> {
    let malformed = || InvalidToken::new(InvalidTokenReason::Malformed);
    let text = token.trim_ascii();
    let mut raw = SecretBytes::new(vec![0u8; b64::decoded_len_bound(text.len())]);
    let len = b64::decode(text, raw.expose_secret_mut()).ok_or_else(malformed)?;
    raw.truncate(len);
    let bytes = raw.expose_secret();
    if len < MIN_TOKEN_LEN
        || !(len - HEADER_LEN - HMAC_LEN).is_multiple_of(BLOCK_LEN)
        || bytes[0] != VERSION
    {
        return Err(malformed());
    }
    Ok(raw)
}

/// Python's `base64.urlsafe_b64decode(text)` (CPython's `binascii.a2b_base64`, non-strict
/// mode, after `-` → `+` and `_` → `/`): `None` where Python raises.
fn python_b64decode(text: &str) -> Option<Vec<u8>> {
    // Python's `str` argument must be ASCII.
    if !text.is_ascii() {
        return None;
    }
    // Never reallocated: no copy of key bytes is left behind in freed memory.
    let mut out = Vec::with_capacity(text.len());
    let (mut quad_pos, mut left, mut pads) = (0u8, 0u8, 0u8);
    for c in text.bytes() {
        if c == b'=' {
            // Padding counts only after two data characters of a group; once it completes
            // the group, decoding stops (what follows is ignored).
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    return Some(out);
                }
            }
            continue;
        }
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        pads = 0;
        match quad_pos {
            0 => left = v,
            1 => {
                out.push((left << 2) | (v >> 4));
                left = v & 0x0f;
            }
            2 => {
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
            }
            _ => {
                out.push((left << 6) | v);
                left = 0;
            }
        }
        quad_pos = (quad_pos + 1) % 4;
    }
    (quad_pos == 0).then_some(out)
}

/// The big-endian timestamp of a token that passed `decode_token`.
fn timestamp_of(raw: &[u8]) -> u64 {
    let mut ts = [0u8; TIMESTAMP_LEN];
    ts.copy_from_slice(&raw[1..=TIMESTAMP_LEN]);
    u64::from_be_bytes(ts)
}

/// Python's rule: `timestamp + ttl < now` is expired; `now + 60 < timestamp` is from the future.
/// Computed without overflow for any timestamp a token may carry.
fn check_time(timestamp: u64, ttl: u64, current_time: u64) -> Result<(), InvalidToken> {
    if timestamp
        .checked_add(ttl)
        .is_some_and(|end| end < current_time)
    {
        return Err(InvalidToken::new(InvalidTokenReason::Expired));
    }
    if current_time.saturating_add(MAX_CLOCK_SKEW) < timestamp {
        return Err(InvalidToken::new(InvalidTokenReason::FromTheFuture));
    }
    Ok(())
}

/// Seconds since the Unix epoch (0 if the clock is set before 1970).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    // From the Fernet spec's generate.json / verify.json
    // (https://github.com/fernet/spec, version 0x80 entries).
    const SPEC_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const SPEC_TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    const SPEC_NOW: u64 = 499_162_800; // 1985-10-26T01:20:00-07:00

    fn iv() -> [u8; 16] {
        core::array::from_fn(|i| u8::try_from(i).unwrap())
    }

    #[test]
    fn spec_generate_vector() {
        let f = Fernet::new(SPEC_KEY).unwrap();
        assert_eq!(
            f.danger_encrypt_with_iv(b"hello", SPEC_NOW, iv()),
            SPEC_TOKEN
        );
    }

    #[test]
    fn spec_verify_vector() {
        let f = Fernet::new(SPEC_KEY).unwrap();
        let p = f.decrypt_at_time(SPEC_TOKEN, 60, SPEC_NOW + 1).unwrap();
        assert_eq!(p.expose_secret(), b"hello");
        assert_eq!(f.extract_timestamp(SPEC_TOKEN).unwrap(), SPEC_NOW);
    }

    #[test]
    fn huge_timestamp_with_ttl_does_not_overflow() {
        let f = Fernet::new(SPEC_KEY).unwrap();
        let t = f.danger_encrypt_with_iv(b"x", u64::MAX, iv());
        let err = f.decrypt_at_time(&t, u64::MAX, 0).unwrap_err();
        assert_eq!(err.reason(), InvalidTokenReason::FromTheFuture);
        assert!(
            f.decrypt(&t).is_ok(),
            "no ttl means no time check, as in python"
        );
        assert!(f.decrypt_at_time(&t, 10, u64::MAX - 5).is_ok());
    }

    #[test]
    fn ttl_edges_match_python() {
        let f = Fernet::new(SPEC_KEY).unwrap();
        let t = f.encrypt_at_time(b"x", 1000);
        assert!(f.decrypt_at_time(&t, 10, 1010).is_ok());
        assert_eq!(
            f.decrypt_at_time(&t, 10, 1011).unwrap_err().reason(),
            InvalidTokenReason::Expired
        );
        assert!(f.decrypt_at_time(&t, 10, 940).is_ok());
        assert_eq!(
            f.decrypt_at_time(&t, 10, 939).unwrap_err().reason(),
            InvalidTokenReason::FromTheFuture
        );
    }

    #[test]
    fn key_errors_are_typed() {
        assert_eq!(
            Fernet::new("not base64!").unwrap_err(),
            FernetKeyError::NotBase64
        );
        assert_eq!(
            Fernet::new("AAAA").unwrap_err(),
            FernetKeyError::WrongLength { len: 3 }
        );
        assert!(MultiFernet::new(vec![]).is_err());
    }

    #[test]
    fn debug_does_not_show_keys() {
        let f = Fernet::new(SPEC_KEY).unwrap();
        assert_eq!(format!("{f:?}"), "Fernet { .. }");
        let m = MultiFernet::new(vec![f]).unwrap();
        assert_eq!(format!("{m:?}"), "MultiFernet { keys: 1, .. }");
    }
}
