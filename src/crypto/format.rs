//! The sealed-record format, version 1 (ARCHITECTURE.md, "Formats"): parse and write, nothing else.
//!
//! ```text
//! offset  size  field
//! 0       2     magic  0x63 0x76 ("cv")
//! 2       1     format version = 1
//! 3       1     algorithm: 1 = AES-256-GCM
//! 4       4     key version that sealed it, u32 big-endian
//! 8       12    nonce
//! 20      n     ciphertext
//! 20+n    16    GCM tag
//! ```
//!
//! The text form is the same bytes in URL-safe base64 without padding, prefixed `cv1.`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::KeyVersion;
use crate::crypto::CryptoError;

/// The two magic bytes, `cv`.
pub(crate) const MAGIC: [u8; 2] = [0x63, 0x76];
/// The format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u8 = 1;
/// Length of the part of the header that is fed to GCM as associated data.
pub(crate) const HEADER_LEN: usize = 8;
/// Length of the GCM nonce.
pub(crate) const NONCE_LEN: usize = 12;
/// Header plus nonce: where the ciphertext starts.
pub(crate) const PREFIX_LEN: usize = HEADER_LEN + NONCE_LEN;
/// Length of the GCM tag.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a sealed record adds to its plaintext.
pub const OVERHEAD: usize = PREFIX_LEN + TAG_LEN;
/// Prefix of the text form.
pub const TEXT_PREFIX: &str = "cv1.";

/// The algorithm byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Algorithm {
    /// AES-256-GCM with a 96-bit nonce and a 128-bit tag.
    Aes256Gcm,
}

impl Algorithm {
    /// The byte written at offset 3.
    pub const fn id(self) -> u8 {
        match self {
            Self::Aes256Gcm => 1,
        }
    }

    /// The algorithm for a byte, if known.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Self::Aes256Gcm),
            _ => None,
        }
    }
}

/// The public header of a sealed record: everything before the ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The algorithm that sealed it.
    pub algorithm: Algorithm,
    /// The key version that sealed it.
    pub key_version: KeyVersion,
    /// The GCM nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    /// The first 8 bytes: magic, format version, algorithm, key version. These are the first
    /// bytes of the associated data.
    pub fn aad_prefix(&self) -> [u8; HEADER_LEN] {
        let v = self.key_version.get().to_be_bytes();
        [
            MAGIC[0],
            MAGIC[1],
            FORMAT_VERSION,
            self.algorithm.id(),
            v[0],
            v[1],
            v[2],
            v[3],
        ]
    }

    /// Header and nonce, as written at the start of the record.
    pub fn to_bytes(&self) -> [u8; PREFIX_LEN] {
        let mut out = [0u8; PREFIX_LEN];
        out[..HEADER_LEN].copy_from_slice(&self.aad_prefix());
        out[HEADER_LEN..].copy_from_slice(&self.nonce);
        out
    }
}

/// A parsed sealed record, borrowing its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed<'a> {
    /// The header.
    pub header: Header,
    /// The ciphertext (same length as the plaintext).
    pub ciphertext: &'a [u8],
    /// The GCM tag.
    pub tag: &'a [u8; TAG_LEN],
}

/// Parses a sealed record's framing. Checks lengths, magic, version and algorithm; does no
/// cryptography.
///
/// # Errors
///
/// [`CryptoError::Truncated`], [`CryptoError::BadMagic`],
/// [`CryptoError::UnsupportedFormatVersion`] or [`CryptoError::UnsupportedAlgorithm`].
pub fn parse(blob: &[u8]) -> Result<Sealed<'_>, CryptoError> {
    if blob.len() < OVERHEAD {
        return Err(CryptoError::Truncated {
            len: blob.len(),
            min: OVERHEAD,
        });
    }
    if blob[..2] != MAGIC {
        return Err(CryptoError::BadMagic);
    }
    if blob[2] != FORMAT_VERSION {
        return Err(CryptoError::UnsupportedFormatVersion(blob[2]));
    }
    let algorithm =
        Algorithm::from_id(blob[3]).ok_or(CryptoError::UnsupportedAlgorithm(blob[3]))?;
    let key_version = KeyVersion::new(u32::from_be_bytes([blob[4], blob[5], blob[6], blob[7]]));
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&blob[HEADER_LEN..PREFIX_LEN]);
    let (ciphertext, tag) = blob[PREFIX_LEN..].split_at(blob.len() - OVERHEAD);
    let tag = tag.try_into().map_err(|_| CryptoError::Truncated {
        len: blob.len(),
        min: OVERHEAD,
    })?;
    Ok(Sealed {
        header: Header {
            algorithm,
            key_version,
            nonce,
        },
        ciphertext,
        tag,
    })
}

/// The `cv1.` text form of a sealed record.
///
/// ```
/// use credvault::crypto::format;
///
/// let text = format::to_text(b"cv\x01\x01...");
/// assert!(text.starts_with("cv1."));
/// assert_eq!(format::from_text(&text)?, b"cv\x01\x01...");
/// # Ok::<(), credvault::crypto::CryptoError>(())
/// ```
pub fn to_text(blob: &[u8]) -> String {
    let mut out = String::with_capacity(TEXT_PREFIX.len() + blob.len().div_ceil(3) * 4);
    out.push_str(TEXT_PREFIX);
    URL_SAFE_NO_PAD.encode_string(blob, &mut out);
    out
}

/// Decodes the `cv1.` text form back to bytes (surrounding ASCII whitespace is ignored). Does
/// not parse the record: pass the result to [`parse`] or to an `open`.
///
/// # Errors
///
/// [`CryptoError::NotSealedText`] without the prefix or with invalid base64.
pub fn from_text(text: &str) -> Result<Vec<u8>, CryptoError> {
    let body = text
        .trim_ascii()
        .strip_prefix(TEXT_PREFIX)
        .ok_or(CryptoError::NotSealedText)?;
    URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| CryptoError::NotSealedText)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_design() {
        let h = Header {
            algorithm: Algorithm::Aes256Gcm,
            key_version: KeyVersion::new(0x0102_0304),
            nonce: [9; 12],
        };
        let b = h.to_bytes();
        assert_eq!(&b[..8], &[0x63, 0x76, 1, 1, 1, 2, 3, 4]);
        assert_eq!(&b[8..], &[9; 12]);
    }

    #[test]
    fn parse_rejects_each_framing_defect() {
        let mut blob = Header {
            algorithm: Algorithm::Aes256Gcm,
            key_version: KeyVersion::new(1),
            nonce: [0; 12],
        }
        .to_bytes()
        .to_vec();
        blob.extend_from_slice(&[0; 16]);
        assert!(parse(&blob).is_ok());
        assert!(matches!(
            parse(&blob[..35]),
            Err(CryptoError::Truncated { len: 35, .. })
        ));
        let mut bad = blob.clone();
        bad[0] = b'x';
        assert_eq!(parse(&bad), Err(CryptoError::BadMagic));
        let mut bad = blob.clone();
        bad[2] = 2;
        assert_eq!(parse(&bad), Err(CryptoError::UnsupportedFormatVersion(2)));
        let mut bad = blob;
        bad[3] = 7;
        assert_eq!(parse(&bad), Err(CryptoError::UnsupportedAlgorithm(7)));
    }

    #[test]
    fn text_form_refuses_padding_and_missing_prefix() {
        assert_eq!(from_text("cv2.AAAA"), Err(CryptoError::NotSealedText));
        assert_eq!(from_text("cv1.AA=="), Err(CryptoError::NotSealedText));
        assert_eq!(from_text("cv1.AA").unwrap(), vec![0]);
    }
}
