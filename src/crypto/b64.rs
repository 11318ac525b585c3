//! URL-safe base64 with padding, strict (canonical text only), for Fernet tokens.
//!
//! Two codecs give the same bytes and refuse the same text:
//!
//! - `base64-simd` (the default): AVX2 or SSSE3 (NEON, SIMD128 elsewhere) chosen at run time
//!   by CPU detection, its scalar code on any other CPU and for the tail of every input. Its
//!   `URL_SAFE` engine requires the padding and refuses non-zero trailing bits, exactly as
//!   the scalar codec below.
//! - the `base64` crate's `URL_SAFE` engine (scalar; canonical padding required, no trailing
//!   bits): the generic path. It is what the `fuzzing` feature forces with
//!   [`with_scalar`], so that the tests and fuzz targets run every Fernet known-answer test
//!   through both codecs (`base64-simd` has no switch to force its own fallback).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE as SCALAR;
use base64_simd::{Out, URL_SAFE as SIMD};

/// The longest decoded length of `text_len` characters of padded base64.
pub(crate) const fn decoded_len_bound(text_len: usize) -> usize {
    text_len.div_ceil(4) * 3
}

/// Decodes `text` into the front of `out` (at least [`decoded_len_bound`] bytes long) and
/// returns the decoded length; `None` for any text that is not canonical URL-safe base64 with
/// its padding.
pub(crate) fn decode(text: &[u8], out: &mut [u8]) -> Option<usize> {
    if out.len() < decoded_len_bound(text.len()) {
        return None;
    }
    if scalar_forced() {
        return SCALAR.decode_slice(text, out).ok();
    }
    SIMD.decode(text, Out::from_slice(out))
        .ok()
        .map(|d| d.len())
}

/// Encodes `raw` as URL-safe base64 with padding.
pub(crate) fn encode(raw: &[u8]) -> String {
    if scalar_forced() {
        return SCALAR.encode(raw);
    }
    SIMD.encode_to_string(raw)
}

#[cfg(not(feature = "fuzzing"))]
#[inline(always)]
fn scalar_forced() -> bool {
    false
}

#[cfg(feature = "fuzzing")]
thread_local! {
    static FORCE_SCALAR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(feature = "fuzzing")]
fn scalar_forced() -> bool {
    FORCE_SCALAR.with(std::cell::Cell::get)
}

/// Runs `f` with this thread's Fernet base64 forced onto the scalar codec (the `base64`
/// crate) instead of `base64-simd`'s run-time dispatch. For tests and fuzz targets only.
#[cfg(feature = "fuzzing")]
pub fn with_scalar<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            FORCE_SCALAR.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(FORCE_SCALAR.with(|c| c.replace(true)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(text: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let mut a = vec![0u8; decoded_len_bound(text.len())];
        let mut b = a.clone();
        let simd = SIMD
            .decode(text, Out::from_slice(&mut a))
            .ok()
            .map(|d| d.to_vec());
        let scalar = SCALAR
            .decode_slice(text, &mut b)
            .ok()
            .map(|n| b[..n].to_vec());
        (simd, scalar)
    }

    #[test]
    fn codecs_agree_on_padding_and_trailing_bits() {
        for text in [
            &b""[..],
            b"AA==",
            b"AB==",
            b"AAA=",
            b"AAB=",
            b"AAAA",
            b"A===",
            b"AA=",
            b"AA",
            b"AA==AA==",
            b"=AAA",
            b"AA=A",
            b"ab+/",
            b"ab-_",
            b"ab c",
            b"ab\nc",
        ] {
            let (simd, scalar) = both(text);
            assert_eq!(simd, scalar, "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn codecs_agree_on_long_text_with_one_bad_byte_anywhere() {
        // Long enough for base64-simd's vector loop (32 characters per step) and its tail.
        let raw: Vec<u8> = (0..=255u8).cycle().take(301).collect();
        let text = SCALAR.encode(&raw);
        assert_eq!(both(text.as_bytes()).0.as_deref(), Some(&raw[..]));
        for i in 0..text.len() {
            for bad in [b'+', b'/', b'=', b' ', b'\n', 0x80, b'*'] {
                let mut t = text.clone().into_bytes();
                t[i] = bad;
                let (simd, scalar) = both(&t);
                assert_eq!(simd, scalar, "byte {i} set to {bad:#x}");
            }
        }
    }

    #[test]
    fn encoders_agree() {
        for len in 0..200 {
            let raw: Vec<u8> = (0..=255u8).cycle().skip(3).step_by(7).take(len).collect();
            assert_eq!(SIMD.encode_to_string(&raw), SCALAR.encode(&raw), "{len}");
        }
    }

    #[test]
    fn short_output_is_refused_not_a_panic() {
        assert_eq!(decode(b"AAAA", &mut [0u8; 2]), None);
    }
}
