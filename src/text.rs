//! Text that came from outside or from the database, made safe to store and to print:
//! [`escaped`] for showing a stored value (a name, an actor) on a terminal or in a report, and
//! [`check_label`] for the free-text labels the vault stores in clear (actors, providers).

use std::fmt::Write as _;

/// The longest actor or provider label accepted, in characters.
pub const MAX_LABEL_CHARS: usize = 128;

/// Why a label (actor, provider) was refused. Names the field, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LabelError {
    /// The label is empty.
    #[error("{field} is empty")]
    Empty {
        /// Which field (`actor`, `provider`).
        field: &'static str,
    },
    /// The label is longer than [`MAX_LABEL_CHARS`].
    #[error("{field} is {len} characters long, more than the limit of {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The label holds a control character (C0, DEL, C1) or a bidirectional override.
    #[error("{field} holds a control or bidirectional-override character (at character {at})")]
    Control {
        /// Which field.
        field: &'static str,
        /// The character's position (0-based, in characters).
        at: usize,
    },
}

/// Whether `c` must never be stored in a label nor printed raw: C0 controls, DEL, C1
/// controls, the bidirectional embeddings and overrides U+202A-U+202E and isolates
/// U+2066-U+2069, and the line and paragraph separators.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// Checks a label the vault stores in clear and prints back (an actor, a provider): not
/// empty, at most [`MAX_LABEL_CHARS`] characters, no character for which
/// [`is_unsafe_char`] holds.
///
/// # Errors
///
/// [`LabelError`] naming `field`.
pub fn check_label(field: &'static str, value: &str) -> Result<(), LabelError> {
    if value.is_empty() {
        return Err(LabelError::Empty { field });
    }
    let len = value.chars().count();
    if len > MAX_LABEL_CHARS {
        return Err(LabelError::TooLong {
            field,
            len,
            max: MAX_LABEL_CHARS,
        });
    }
    if let Some(at) = value.chars().position(is_unsafe_char) {
        return Err(LabelError::Control { field, at });
    }
    Ok(())
}

/// `value` with every unsafe character (see [`is_unsafe_char`]) and `\` written as a Rust
/// escape (`\n`, `\u{1b}`, `\\`), cut to `max` characters (with `...` when cut). What the CLI
/// and the reports print for anything read from the database.
///
/// ```
/// assert_eq!(credvault::text::escaped("a\u{1b}[2J\nb", 64), "a\\u{1b}[2J\\nb");
/// ```
pub fn escaped(value: &str, max: usize) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        if i == max {
            out.push_str("...");
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_with_controls_or_bidi_are_refused() {
        for bad in [
            "a\nb",
            "a\u{7f}",
            "a\u{85}",
            "a\u{202e}b",
            "x\u{2066}",
            "\u{1b}[2J",
        ] {
            assert!(matches!(
                check_label("actor", bad),
                Err(LabelError::Control { field: "actor", .. })
            ));
        }
        assert!(check_label("actor", "admin:bob").is_ok());
        assert!(check_label("actor", &"a".repeat(129)).is_err());
        assert!(check_label("actor", "").is_err());
    }

    #[test]
    fn escaping_leaves_no_control_character() {
        let shown = escaped("a\u{1b}[2J\n\u{202e}\u{9b}\\", 64);
        assert!(!shown.chars().any(is_unsafe_char));
        assert_eq!(shown, "a\\u{1b}[2J\\n\\u{202e}\\u{9b}\\\\");
        assert_eq!(escaped("abcdef", 3), "abc...");
    }
}
