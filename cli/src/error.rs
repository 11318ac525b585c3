//! The command line's error: the library's message, then a line saying what to do.

use std::fmt;
use std::io;
use std::path::Path;

use credvault::backend::{BackendError, BackendErrorKind};
use credvault::crypto::fernet::{InvalidToken, InvalidTokenReason};
use credvault::keys::KeyError;
use credvault::password::PasswordError;
use credvault::store::{KeyKind, StoreError};

/// Exit status of a failed check: a password mismatch, an invalid token.
pub(crate) const EXIT_CHECK_FAILED: u8 = 1;
/// Exit status of a usage, input, key, storage or I/O error (clap's own usage errors too).
pub(crate) const EXIT_ERROR: u8 = 2;

/// What went wrong, what to do about it, and the exit status. Never holds a secret.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
    hint: Option<String>,
    code: u8,
}

impl CliError {
    /// An error (exit 2) with its message.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            code: EXIT_ERROR,
        }
    }

    /// A failed check (exit 1).
    pub(crate) fn check_failed(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_CHECK_FAILED,
            ..Self::new(message)
        }
    }

    /// Makes this a failed check (exit 1): the command ran, and its answer is no.
    pub(crate) fn failed_check(mut self) -> Self {
        self.code = EXIT_CHECK_FAILED;
        self
    }

    /// Sets the line saying what to do next.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The process exit status.
    pub(crate) fn code(&self) -> u8 {
        self.code
    }

    /// Puts `context` before the message ("import stopped after 3 values: ...").
    pub(crate) fn context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// A library error's message followed by its sources, as one line.
    fn from_error(e: &(dyn std::error::Error + 'static)) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        Self::new(message)
    }

    /// Reading or writing `path` failed.
    pub(crate) fn io(what: &str, path: &Path, e: &io::Error) -> Self {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => "check the path and that its directory exists",
            io::ErrorKind::AlreadyExists => "remove the file first or choose another path",
            io::ErrorKind::PermissionDenied => "check the file's permissions",
            _ => "check the path, the disk and the permissions",
        };
        Self::new(format!("{what} {}: {e}", path.display())).hint(hint)
    }

    /// Reading stdin or writing stdout failed.
    pub(crate) fn stdio(what: &str, e: &io::Error) -> Self {
        Self::new(format!("{what}: {e}")).hint("check the pipe or file on the other end")
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "credvault: {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl From<KeyError> for CliError {
    fn from(e: KeyError) -> Self {
        let hint = match &e {
            KeyError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                "check the --keys path; create a key file with `credvault vault init` or \
                 `credvault key generate --out FILE`"
            }
            KeyError::Io { .. } => "check the path and its permissions",
            KeyError::Invalid { .. } => {
                "this is not a valid credvault key file; restore it from your backup"
            }
            KeyError::MissingVariable { .. } => "set the variable or pass --keys FILE",
            KeyError::IsPrimary(_) => {
                "run `credvault key rotate --keys FILE` so a newer version is primary"
            }
            KeyError::UnknownVersion(_) => "see the versions with `credvault key list --keys FILE`",
            KeyError::Destroyed(_) | KeyError::BelowMinimum { .. } => {
                "the key this needs was destroyed or is below the minimum decryption version; \
                 see `credvault key list`"
            }
            _ => "check the --keys file is the one this data was written with",
        };
        Self::from_error(&e).hint(hint)
    }
}

impl From<BackendError> for CliError {
    fn from(e: BackendError) -> Self {
        let hint = match e.kind() {
            BackendErrorKind::Unavailable => {
                "check the --db URL and that the database's directory exists and is writable"
            }
            BackendErrorKind::ReadOnly => "the database is read-only: check its file permissions",
            BackendErrorKind::Corrupt => "the --db file is damaged or not a credvault database",
            BackendErrorKind::SchemaTooNew => {
                "the database was written by a newer credvault: upgrade this one"
            }
            BackendErrorKind::Conflict => "another writer changed it: run the command again",
            _ => "check the --db URL and the database's state",
        };
        Self::from_error(&e).hint(hint)
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let hint = match e {
            StoreError::Backend(b) => return b.into(),
            StoreError::Key(k) => return k.into(),
            StoreError::UnknownTenant(_) => {
                "check --tenant: a tenant exists once a record was put for it"
            }
            StoreError::NotFound { .. } => {
                "see what the tenant holds with `credvault vault list --tenant TENANT`"
            }
            StoreError::AlreadyExists { .. } => "pass --update to replace it",
            StoreError::Conflict { .. } => "another writer changed it: run the command again",
            StoreError::TenantDeleted { .. } => {
                "restore it with `credvault vault tenant restore --tenant TENANT`, or export it"
            }
            StoreError::TenantShredded(_) => {
                "check --tenant-keys is the directory the tenant was created with; if it is, \
                 the tenant's data is gone for good"
            }
            StoreError::CorruptRecord { .. } => {
                "check --keys and --tenant-keys are the ones this database was written with"
            }
            StoreError::UnsupportedUrl { .. } => "pass --db sqlite:PATH or --db postgres://...",
            StoreError::Export(_) => "check the output file or pipe",
            StoreError::PayloadTooLarge { .. } => "store a smaller record",
            StoreError::KeyInUse {
                what: KeyKind::Kek, ..
            } => "run `credvault vault rotate --kek` first: it rewraps them under the primary",
            StoreError::KeyInUse { .. } => "run `credvault vault reencrypt` first",
            StoreError::InvalidPurgeSchedule { .. } => {
                "pass a shorter --every/--watch interval: below the shortest retention promise, \
                 margin included"
            }
            StoreError::KeyRefused(_) => {
                "see the tenants' data key versions with `credvault vault report`"
            }
            StoreError::Promise(_) => {
                "the promise file (--promises) forbids it: change the setting, or the promise \
                 (and the privacy policy it quotes)"
            }
            _ => "check the command's arguments (see --help)",
        };
        Self::from_error(&e).hint(hint)
    }
}

impl From<credvault::promises::PromiseError> for CliError {
    fn from(e: credvault::promises::PromiseError) -> Self {
        let hint = match &e {
            credvault::promises::PromiseError::Io { .. } => "check the --promises path",
            credvault::promises::PromiseError::Contradicted { .. } => {
                "drop the setting that contradicts the promise file, or change the promise"
            }
            _ => "fix the promise file at the line named (see `credvault promises check --help`)",
        };
        Self::from_error(&e).hint(hint)
    }
}

impl From<PasswordError> for CliError {
    fn from(e: PasswordError) -> Self {
        let hint = match e {
            PasswordError::WeakParameters { .. } => {
                "raise --cost (bcrypt: at least 10; pbkdf2-sha256: at least 600000)"
            }
            PasswordError::ExcessiveCost { .. } => "lower --cost",
            PasswordError::PasswordTooLong { .. } => {
                "use --scheme argon2id or pbkdf2-sha256 for passwords over 72 bytes"
            }
            PasswordError::UnknownFormat
            | PasswordError::MalformedHash { .. }
            | PasswordError::UnsupportedVariant(_) => {
                "check the --hash value; quote it in single quotes so the shell keeps its `$`"
            }
            _ => "check the command's arguments (see --help)",
        };
        Self::from_error(&e).hint(hint)
    }
}

impl From<InvalidToken> for CliError {
    fn from(e: InvalidToken) -> Self {
        let hint = match e.reason() {
            InvalidTokenReason::Malformed => {
                "stdin must hold one fernet token (url-safe base64 starting with gAAAAA)"
            }
            InvalidTokenReason::Unauthenticated => {
                "check --key-file holds the key that made the token (one key per line)"
            }
            InvalidTokenReason::Expired => "the token is older than --ttl; issue a new one",
            InvalidTokenReason::FromTheFuture => "check the clocks (and --at) of both sides",
            _ => "the token was made with this key by a broken implementation",
        };
        Self {
            code: EXIT_CHECK_FAILED,
            ..Self::from_error(&e).hint(hint)
        }
    }
}
