//! [`PseudonymKey`]: what the shared login throttles (SQL, Redis) name their rows with instead
//! of account names and addresses, so that a copy of the store (a backup, a replica, a Redis
//! dump) holds no personal data.
//!
//! Each name is HMAC-SHA256 under a 32-byte key that belongs to the vault (see
//! `Vault::throttle_key`: random, kept wrapped under the key-encryption key like a data key),
//! cut to 16 bytes and written in hex. Without the key, a name cannot be tied to an account or
//! an address, not even by hashing every address of the IPv4 space or a list of e-mails.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

/// The length of a pseudonym key, in bytes.
pub const PSEUDONYM_KEY_LEN: usize = 32;

/// Bytes of HMAC-SHA256 kept in a name (16: collisions need ~2^64 names).
const TAG_LEN: usize = 16;

/// Domain separation: the first part of every HMAC input.
const LABEL: &[u8] = b"credvault throttle pseudonym v1";

/// The secret key the shared login throttles hash account names and addresses under: one per
/// vault, from `Vault::throttle_key` (or [`generate`](Self::generate) for a throttle that
/// belongs to no vault). Every server sharing a store must use the same key; a different key
/// sees none of the counts.
///
/// `Debug` shows no key material.
#[derive(Clone)]
pub struct PseudonymKey {
    mac: Hmac<Sha256>,
}

impl PseudonymKey {
    /// The key made of these 32 bytes.
    pub fn from_bytes(key: &[u8; PSEUDONYM_KEY_LEN]) -> Self {
        // HMAC takes a key of any length: 32 bytes cannot fail.
        let mac = <Hmac<Sha256>>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
        Self { mac }
    }

    /// A new random key from the operating system's generator.
    ///
    /// # Errors
    ///
    /// [`CryptoError::RandomnessUnavailable`](crate::crypto::CryptoError::RandomnessUnavailable)
    /// if the generator cannot be read.
    pub fn generate() -> Result<Self, crate::crypto::CryptoError> {
        let mut raw = zeroize::Zeroizing::new([0u8; PSEUDONYM_KEY_LEN]);
        crate::crypto::try_fill_from_os_rng(raw.as_mut())?;
        Ok(Self::from_bytes(&raw))
    }

    /// The pseudonym of `account` (32 hex digits): what the SQL throttle's `login_lockout` and
    /// `login_unlock` audit rows name in place of the account (`acct#<pseudonym>`, or
    /// `pair#<pseudonym>.<...>` for a lockout of one address). Support staff search the audit
    /// log with it.
    pub fn pseudonym(&self, account: &str) -> String {
        self.tag(b"acct", &[account.as_bytes()])
    }

    /// The pseudonym of an address as the throttle counts it (an IPv6 address by its /64
    /// block): what `addr#<pseudonym>` rows and their `login_lockout` audit rows name.
    pub fn address_pseudonym(&self, address: IpAddr) -> String {
        self.address(crate::password::throttle::address_block(address))
    }

    /// The pseudonym of an address (its text form, as given).
    pub(crate) fn address(&self, address: IpAddr) -> String {
        self.tag(b"addr", &[address.to_string().as_bytes()])
    }

    /// The pseudonym of an (account, address) pair under `kind` (`pair`, `known`): not
    /// linkable to the address's own pseudonym.
    pub(crate) fn pair(&self, kind: &[u8], account: &str, address: IpAddr) -> String {
        self.tag(kind, &[account.as_bytes(), address.to_string().as_bytes()])
    }

    /// HMAC(key, len ‖ LABEL ‖ len ‖ kind ‖ (len ‖ part)*), lengths u64 big-endian, cut to
    /// [`TAG_LEN`] bytes, in lowercase hex.
    fn tag(&self, kind: &[u8], parts: &[&[u8]]) -> String {
        let mut mac = self.mac.clone();
        for part in [LABEL, kind].iter().chain(parts) {
            let len = u64::try_from(part.len()).unwrap_or(u64::MAX);
            mac.update(&len.to_be_bytes());
            mac.update(part);
        }
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(TAG_LEN * 2);
        for byte in digest.iter().take(TAG_LEN) {
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02x}");
        }
        out
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PseudonymKey").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_depend_on_the_key_and_keep_parts_apart() {
        let a = PseudonymKey::from_bytes(&[1; 32]);
        let b = PseudonymKey::from_bytes(&[2; 32]);
        assert_eq!(a.pseudonym("alice"), a.pseudonym("alice"));
        assert_ne!(a.pseudonym("alice"), b.pseudonym("alice"));
        assert_eq!(a.pseudonym("alice").len(), 32);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_ne!(a.pair(b"pair", "alice", ip), a.pair(b"known", "alice", ip));
        // Length prefixes: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(a.tag(b"x", &[b"ab", b"c"]), a.tag(b"x", &[b"a", b"bc"]));
        assert_eq!(format!("{a:?}"), "PseudonymKey { .. }");
    }
}
