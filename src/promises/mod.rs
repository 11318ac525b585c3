//! A company's privacy-policy promises as one small TOML file that the vault, the password
//! policy and the login throttle are built from, and that [`Vault::check_promises`] checks
//! the live vault against.
//!
//! ```
//! use credvault::promises::Promises;
//! use credvault::crypto::SealingSuite;
//!
//! let promises = Promises::from_toml_str(r#"
//! policy = "Kalpa marketing automation"
//!
//! [at_rest]
//! says = "Secrets and OAuth tokens are encrypted at rest with Fernet (AES-128 + HMAC-SHA256)"
//! suite = "fernet"
//!
//! [passwords]
//! says = "Passwords are bcrypt-hashed (cost 12)"
//! scheme = "bcrypt"
//! cost = 12
//! "#)?;
//! assert_eq!(promises.at_rest.as_ref().map(|p| p.suite), Some(SealingSuite::Fernet));
//! let policy = promises.password_policy()?.expect("the file promises a password scheme");
//! # let _ = policy;
//! # Ok::<(), credvault::Error>(())
//! ```
//!
//! A promise credvault cannot keep as written is refused when the file is read, with the
//! reason and the nearest promises it can keep:
//!
//! ```
//! use credvault::promises::{PromiseError, Promises};
//!
//! let err = Promises::from_toml_str("policy = \"CRM\"\n[at_rest]\nsuite = \"AES-256 Fernet\"\n")
//!     .unwrap_err();
//! assert!(matches!(err, PromiseError::Unkeepable { line: 3, .. }));
//! assert!(err.to_string().contains("Fernet is AES-128"));
//! ```
//!
//! The file's fields, section by section (every section is optional; a section left out
//! promises nothing):
//!
//! | section | field | meaning | maps to |
//! |---|---|---|---|
//! | (top) | `policy` | the policy's name, for reports (required) | |
//! | every section | `says` | the policy's own words, quoted in reports | |
//! | `[at_rest]` | `suite` | `"fernet"` or `"aes-256-gcm"` | [`VaultConfig::sealing_suite`] |
//! | | `kinds` | per record kind, e.g. `{ oauth_token = "fernet" }` | [`VaultConfig::kind_suites`] |
//! | | `rotate_data_keys_every`, `rotate_master_key_every` | key ages (default 90d, 365d) | [`RotationPolicy`] |
//! | `[passwords]` | `scheme` | `"bcrypt"`, `"pbkdf2-sha256"` or `"argon2id"` | [`PasswordPolicy`] |
//! | | `cost` / `iterations`, `memory_kib`, `parallelism` | parameters (default: bcrypt 12, PBKDF2 600 000, argon2id OWASP) | |
//! | `[disconnect]` | `tokens` | `"delete"` or `"delete-and-revoke"` (default) | a revoker on each disconnect |
//! | | `derived_data_within`, `derived_kinds` | "purged within 24 hours" | [`VaultConfig::derived_retention`], [`VaultConfig::derived_kinds`] |
//! | `[account_deletion]` | `erased_within` | "erased within 30 days" | [`VaultConfig::grace_period`] |
//! | | `kept_for_export` | "kept 30 days for export" (at most `erased_within`) | [`VaultConfig::grace_period`] (at least) |
//! | | `backups_purged_within` | "backups purged within 60 days" (at least `erased_within`) | crypto-shredding at purge |
//! | | `tokens` | `"revoke"` (default) or `"delete"`: at once on deletion | [`VaultBuilder::revoker`] |
//! | `[logs]` | `kept_for` | "transactional logs kept 90 days" | [`VaultConfig::audit_retention`] |
//! | `[lockout]` | `max_failures`, `window`, `lockout`, `max_lockout`, `max_failures_per_address`, `max_failures_per_account` | "account lockout" (defaults: [`ThrottleConfig`]'s) | [`ThrottleConfig`] |
//! | `[export]` | `formats` | `["json", "csv"]` | [`Tenant::export_json`], [`Tenant::export_csv`] |
//!
//! Durations are written `"30d"`, `"24h"`, `"15m"`, `"45s"` (or `"30 days"`, `"24 hours"`).
//!
//! [`Vault::check_promises`]: crate::store::Vault::check_promises
//! [`VaultConfig::sealing_suite`]: crate::store::VaultConfig::sealing_suite
//! [`VaultConfig::kind_suites`]: crate::store::VaultConfig::kind_suites
//! [`VaultConfig::derived_retention`]: crate::store::VaultConfig::derived_retention
//! [`VaultConfig::derived_kinds`]: crate::store::VaultConfig::derived_kinds
//! [`VaultConfig::grace_period`]: crate::store::VaultConfig::grace_period
//! [`VaultConfig::audit_retention`]: crate::store::VaultConfig::audit_retention
//! [`VaultBuilder::revoker`]: crate::store::VaultBuilder::revoker
//! [`Tenant::export_json`]: crate::store::Tenant::export_json
//! [`Tenant::export_csv`]: crate::store::Tenant::export_csv

mod check;
mod duration;
mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

pub use check::{PromiseInputs, PromiseReport, PromiseResult, PromiseStatus};

use crate::crypto::SealingSuite;
use crate::password::{PasswordError, PasswordPolicy, Scheme, ThrottleConfig};
use crate::store::{RotationPolicy, VaultConfig};

/// Why a promise file was refused, or a setting contradicts it. Every variant names the line
/// of the file it is about (when it has one). Holds no secret: a promise file has none.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PromiseError {
    /// The file could not be read.
    #[error("cannot read the promise file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or not the promise file's shape (an unknown field, a wrong type, a missing
    /// `policy`).
    #[error("promise file line {line}: {message}")]
    Syntax {
        /// The line (1-based; 0 when the parser gave no position).
        line: u32,
        /// What the parser said.
        message: String,
    },
    /// A value that is not one of the field's accepted values.
    #[error("promise file line {line}: `{field}` = {value:?}: {message}")]
    Invalid {
        /// The line (1-based).
        line: u32,
        /// The field, e.g. `account_deletion.erased_within`.
        field: String,
        /// The value as written.
        value: String,
        /// What is expected instead.
        message: String,
    },
    /// A promise credvault cannot keep as written, with the nearest ones it can keep.
    #[error("promise file line {line}: `{field}` = {value:?} cannot be kept as written: {why}; nearest keepable: {}", alternatives.join(" or "))]
    Unkeepable {
        /// The line (1-based).
        line: u32,
        /// The field.
        field: String,
        /// The value as written.
        value: String,
        /// Why it cannot be kept.
        why: String,
        /// The nearest promises credvault can keep, as lines of the file.
        alternatives: Vec<String>,
    },
    /// A setting of the vault (or of the password policy, the throttle, the purge runner)
    /// that breaks a promise of the file: refused at start-up.
    #[error("the setting {setting} breaks the promise {promise} (promise file line {line}{}): {why}", says.as_deref().map(|s| format!(", \"{s}\"")).unwrap_or_default())]
    Contradicted {
        /// The promise's field, e.g. `at_rest.suite`.
        promise: String,
        /// Its line in the file (0 for promises built in code).
        line: u32,
        /// The policy's own words, if the file quotes them.
        says: Option<String>,
        /// The setting, as set, e.g. `sealing_suite = aes-256-gcm`.
        setting: String,
        /// Why it breaks the promise.
        why: String,
    },
}

/// The promises of one privacy policy. Read with [`Promises::from_toml_str`] or
/// [`Promises::from_path`]; apply with `Vault::builder(..).promises(&promises)` or
/// [`Promises::apply`]; check with [`Vault::check_promises`](crate::store::Vault::check_promises).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promises {
    /// The policy's name (for reports).
    pub policy: String,
    /// Encryption at rest.
    pub at_rest: Option<AtRestPromise>,
    /// Password hashing.
    pub passwords: Option<PasswordPromise>,
    /// What a disconnect does.
    pub disconnect: Option<DisconnectPromise>,
    /// What an account deletion does, and by when.
    pub account_deletion: Option<AccountDeletionPromise>,
    /// How long logs are kept.
    pub logs: Option<LogPromise>,
    /// Rate limiting and account lockout.
    pub lockout: Option<LockoutPromise>,
    /// Export formats.
    pub export: Option<ExportPromise>,
    /// Where each field was written (for messages); not part of equality.
    lines: Lines,
}

/// "Encrypted at rest with ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtRestPromise {
    /// The policy's words.
    pub says: Option<String>,
    /// The suite records are sealed with.
    pub suite: SealingSuite,
    /// Kinds sealed with another suite.
    pub kinds: BTreeMap<String, SealingSuite>,
    /// Data keys rotated at least this often.
    pub rotate_data_keys_every: Duration,
    /// The master key (KEK) rotated at least this often.
    pub rotate_master_key_every: Duration,
}

/// "Passwords are bcrypt-hashed (cost 12)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPromise {
    /// The policy's words.
    pub says: Option<String>,
    /// The scheme and its parameters.
    pub scheme: Scheme,
}

/// What happens to tokens whose account is disconnected (or deleted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFate {
    /// Deleted at once.
    Delete,
    /// Revoked with the provider and deleted at once.
    DeleteAndRevoke,
}

/// "When you disconnect, tokens are deleted immediately and revoked; derived data purged
/// within 24 hours".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisconnectPromise {
    /// The policy's words.
    pub says: Option<String>,
    /// What happens to the tokens.
    pub tokens: TokenFate,
    /// Derived data purged within this time.
    pub derived_data_within: Option<Duration>,
    /// Kinds that are derived data.
    pub derived_kinds: Vec<String>,
}

/// "Account deletion: all data erased within 30 days; backups purged within 60 days".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDeletionPromise {
    /// The policy's words.
    pub says: Option<String>,
    /// Everything erased within this time of the deletion.
    pub erased_within: Duration,
    /// Kept (exportable, restorable) at least this long first.
    pub kept_for_export: Option<Duration>,
    /// Backups hold nothing readable of it after this time.
    pub backups_purged_within: Option<Duration>,
    /// What happens to the account's tokens at once.
    pub tokens: TokenFate,
}

/// "Transactional logs kept 90 days".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPromise {
    /// The policy's words.
    pub says: Option<String>,
    /// Kept this long, then deleted.
    pub kept_for: Duration,
}

/// "Rate limiting and account lockout".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockoutPromise {
    /// The policy's words.
    pub says: Option<String>,
    /// The throttle's settings.
    pub throttle: ThrottleConfig,
}

/// An export format the vault writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExportFormat {
    /// JSON, secrets included ([`Tenant::export_json`](crate::store::Tenant::export_json)).
    Json,
    /// CSV, metadata ([`Tenant::export_csv`](crate::store::Tenant::export_csv)).
    Csv,
}

impl ExportFormat {
    /// `json` or `csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
        }
    }
}

/// "Export your data in CSV".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPromise {
    /// The policy's words.
    pub says: Option<String>,
    /// The formats.
    pub formats: Vec<ExportFormat>,
}

/// Line numbers of the fields, by dotted name.
#[derive(Debug, Clone, Default)]
struct Lines(BTreeMap<String, u32>);

impl PartialEq for Lines {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for Lines {}

impl Promises {
    /// Reads a promise file.
    ///
    /// # Errors
    ///
    /// [`PromiseError::Io`] if it cannot be read; otherwise as
    /// [`from_toml_str`](Self::from_toml_str).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, PromiseError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PromiseError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// Parses and validates a promise file's text.
    ///
    /// # Errors
    ///
    /// [`PromiseError::Syntax`] (not TOML, an unknown field, a wrong type),
    /// [`PromiseError::Invalid`] (a value that is not accepted),
    /// [`PromiseError::Unkeepable`] (a promise credvault cannot keep as written), each naming
    /// the line.
    pub fn from_toml_str(text: &str) -> Result<Self, PromiseError> {
        raw::parse(text)
    }

    /// The file's text for these promises (what [`from_toml_str`](Self::from_toml_str) reads
    /// back as equal promises).
    pub fn to_toml(&self) -> String {
        raw::render(self)
    }

    /// The line a field was written on (`"at_rest.suite"`), 0 if unknown.
    pub fn line_of(&self, field: &str) -> u32 {
        self.lines.0.get(field).copied().unwrap_or(0)
    }

    /// Sets the vault settings the promises decide: the sealing suites, the derived-data
    /// window and kinds, the grace period, the audit retention.
    pub fn apply(&self, config: &mut VaultConfig) {
        if let Some(p) = &self.at_rest {
            config.sealing_suite = p.suite;
            config.kind_suites = p.kinds.clone();
        }
        if let Some(p) = &self.disconnect {
            if let Some(within) = p.derived_data_within {
                config.derived_retention = within;
            }
            for kind in &p.derived_kinds {
                if !config.derived_kinds.contains(kind) {
                    config.derived_kinds.push(kind.clone());
                }
            }
        }
        if let Some(p) = &self.account_deletion {
            config.grace_period = p.erased_within;
        }
        if let Some(p) = &self.logs {
            config.audit_retention = p.kept_for;
        }
        config.promises = Some(self.clone());
    }

    /// The key-age policy the promises imply (the defaults if they say nothing).
    pub fn rotation_policy(&self) -> RotationPolicy {
        self.at_rest
            .as_ref()
            .map_or_else(RotationPolicy::default, |p| RotationPolicy {
                dek_max_age: p.rotate_data_keys_every,
                kek_max_age: p.rotate_master_key_every,
            })
    }

    /// The password policy the promises name, if they name one.
    ///
    /// # Errors
    ///
    /// As [`PasswordPolicy::new`] (the file's parameters were checked when it was read).
    pub fn password_policy(&self) -> Result<Option<PasswordPolicy>, PasswordError> {
        self.passwords
            .as_ref()
            .map(|p| PasswordPolicy::new(p.scheme))
            .transpose()
    }

    /// The login throttle's settings the promises name, if they promise lockout.
    pub fn throttle_config(&self) -> Option<ThrottleConfig> {
        self.lockout.as_ref().map(|p| p.throttle)
    }

    /// Whether a disconnect or an account deletion must revoke tokens with their provider
    /// (the application's [`Revoker`](crate::store::Revoker) is then required).
    pub fn requires_revocation(&self) -> bool {
        self.disconnect
            .as_ref()
            .is_some_and(|p| p.tokens == TokenFate::DeleteAndRevoke)
            || self
                .account_deletion
                .as_ref()
                .is_some_and(|p| p.tokens == TokenFate::DeleteAndRevoke)
    }

    fn contradicted(
        &self,
        promise: &str,
        says: Option<&String>,
        setting: String,
        why: impl Into<String>,
    ) -> PromiseError {
        PromiseError::Contradicted {
            promise: promise.to_owned(),
            line: self.line_of(promise),
            says: says.cloned(),
            setting,
            why: why.into(),
        }
    }

    /// Checks vault settings against the promises: a setting that breaks one is refused,
    /// naming the promise. `has_revoker`: whether the application gave the vault a
    /// [`Revoker`](crate::store::Revoker) (`None`: not known here, not checked).
    ///
    /// # Errors
    ///
    /// [`PromiseError::Contradicted`] for the first setting that breaks a promise.
    pub fn check_config(
        &self,
        config: &VaultConfig,
        has_revoker: Option<bool>,
    ) -> Result<(), PromiseError> {
        if let Some(p) = &self.at_rest {
            let mut kinds: Vec<&String> = p.kinds.keys().collect();
            kinds.extend(config.kind_suites.keys());
            for kind in kinds {
                let promised = p.kinds.get(kind).copied().unwrap_or(p.suite);
                let set = config.suite_for(kind);
                if promised != set {
                    return Err(self.contradicted(
                        &format!("at_rest.kinds.{kind}"),
                        p.says.as_ref(),
                        format!("kind_suite({kind}) = {set}"),
                        format!("records of kind {kind} must be sealed with {promised}"),
                    ));
                }
            }
            if config.sealing_suite != p.suite {
                return Err(self.contradicted(
                    "at_rest.suite",
                    p.says.as_ref(),
                    format!("sealing_suite = {}", config.sealing_suite),
                    format!("new records would be sealed with {}", config.sealing_suite),
                ));
            }
        }
        if let Some(p) = &self.disconnect {
            if let Some(within) = p.derived_data_within
                && config.derived_retention > within
            {
                return Err(self.contradicted(
                    "disconnect.derived_data_within",
                    p.says.as_ref(),
                    format!(
                        "derived_retention = {}",
                        duration::render(config.derived_retention)
                    ),
                    "derived data would be kept longer than promised",
                ));
            }
            for kind in &p.derived_kinds {
                if !config.derived_kinds.contains(kind) {
                    return Err(self.contradicted(
                        "disconnect.derived_kinds",
                        p.says.as_ref(),
                        format!("derived_kinds = {:?}", config.derived_kinds),
                        format!("records of kind {kind} would not be purged after a disconnect"),
                    ));
                }
            }
        }
        if let Some(p) = &self.account_deletion {
            if config.grace_period > p.erased_within {
                return Err(self.contradicted(
                    "account_deletion.erased_within",
                    p.says.as_ref(),
                    format!("grace_period = {}", duration::render(config.grace_period)),
                    "a deleted account would be erased later than promised",
                ));
            }
            if let Some(kept) = p.kept_for_export
                && config.grace_period < kept
            {
                return Err(self.contradicted(
                    "account_deletion.kept_for_export",
                    p.says.as_ref(),
                    format!("grace_period = {}", duration::render(config.grace_period)),
                    "a deleted account would be erased before the promised export window ends",
                ));
            }
        }
        if let Some(p) = &self.logs
            && config.audit_retention != p.kept_for
        {
            return Err(self.contradicted(
                "logs.kept_for",
                p.says.as_ref(),
                format!(
                    "audit_retention = {}",
                    duration::render(config.audit_retention)
                ),
                "the audit log would be kept for another time than promised",
            ));
        }
        if has_revoker == Some(false) {
            for field in ["disconnect.tokens", "account_deletion.tokens"] {
                if let Some(e) = self.revoker_missing(field) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The refusal of an operation without a revoker, if `field` (`disconnect.tokens` or
    /// `account_deletion.tokens`) promises revocation.
    pub(crate) fn revoker_missing(&self, field: &str) -> Option<PromiseError> {
        let (says, fate) = match field {
            "disconnect.tokens" => {
                let p = self.disconnect.as_ref()?;
                (p.says.as_ref(), p.tokens)
            }
            _ => {
                let p = self.account_deletion.as_ref()?;
                (p.says.as_ref(), p.tokens)
            }
        };
        (fate == TokenFate::DeleteAndRevoke).then(|| {
            self.contradicted(
                field,
                says,
                "no revoker".to_owned(),
                "tokens must be revoked with their provider: give the vault a revoker (VaultBuilder::revoker, or the disconnect's revoker argument)",
            )
        })
    }

    /// Checks a password policy against the promise (same family, parameters at least the
    /// promised ones).
    ///
    /// # Errors
    ///
    /// [`PromiseError::Contradicted`] naming `passwords.scheme`.
    pub fn check_password_policy(&self, policy: &PasswordPolicy) -> Result<(), PromiseError> {
        let Some(p) = &self.passwords else {
            return Ok(());
        };
        if !scheme_at_least(policy.scheme(), p.scheme) {
            return Err(self.contradicted(
                "passwords.scheme",
                p.says.as_ref(),
                format!("password policy = {}", describe_scheme(policy.scheme())),
                format!("the promise is {}", describe_scheme(p.scheme)),
            ));
        }
        Ok(())
    }

    /// Checks the login throttle's settings against the lockout promise (no more failures
    /// allowed, no shorter lockouts, no shorter window).
    ///
    /// # Errors
    ///
    /// [`PromiseError::Contradicted`] naming the `lockout` field.
    pub fn check_throttle(&self, throttle: &ThrottleConfig) -> Result<(), PromiseError> {
        let Some(p) = &self.lockout else {
            return Ok(());
        };
        let promised = &p.throttle;
        let checks = [
            (
                "lockout.max_failures",
                throttle.max_failures > promised.max_failures,
                format!("max_failures = {}", throttle.max_failures),
            ),
            (
                "lockout.max_failures_per_address",
                throttle.max_failures_per_address > promised.max_failures_per_address,
                format!(
                    "max_failures_per_address = {}",
                    throttle.max_failures_per_address
                ),
            ),
            (
                "lockout.max_failures_per_account",
                throttle.max_failures_per_account > promised.max_failures_per_account,
                format!(
                    "max_failures_per_account = {}",
                    throttle.max_failures_per_account
                ),
            ),
            (
                "lockout.window",
                throttle.window < promised.window,
                format!("window = {}", duration::render(throttle.window)),
            ),
            (
                "lockout.lockout",
                throttle.base_lockout < promised.base_lockout,
                format!("base_lockout = {}", duration::render(throttle.base_lockout)),
            ),
            (
                "lockout.max_lockout",
                throttle.max_lockout < promised.max_lockout,
                format!("max_lockout = {}", duration::render(throttle.max_lockout)),
            ),
        ];
        for (field, breaks, setting) in checks {
            if breaks {
                return Err(self.contradicted(
                    field,
                    p.says.as_ref(),
                    setting,
                    "the throttle would allow more attempts than promised",
                ));
            }
        }
        Ok(())
    }
}

/// Whether `set` hashes at least as strongly as `promised` (same family, no lower parameter).
fn scheme_at_least(set: Scheme, promised: Scheme) -> bool {
    match (set, promised) {
        (Scheme::Bcrypt { cost: a }, Scheme::Bcrypt { cost: b }) => a >= b,
        (Scheme::Pbkdf2Sha256 { iterations: a }, Scheme::Pbkdf2Sha256 { iterations: b }) => a >= b,
        (
            Scheme::Argon2id {
                memory_kib: m1,
                iterations: t1,
                parallelism: p1,
            },
            Scheme::Argon2id {
                memory_kib: m2,
                iterations: t2,
                parallelism: p2,
            },
        ) => m1 >= m2 && t1 >= t2 && p1 >= p2,
        _ => false,
    }
}

/// `bcrypt cost 12`, `pbkdf2-sha256 600000 iterations`, `argon2id m=19456 t=2 p=1`.
pub(crate) fn describe_scheme(scheme: Scheme) -> String {
    match scheme {
        Scheme::Bcrypt { cost } => format!("bcrypt cost {cost}"),
        Scheme::Pbkdf2Sha256 { iterations } => format!("pbkdf2-sha256 {iterations} iterations"),
        Scheme::Argon2id {
            memory_kib,
            iterations,
            parallelism,
        } => format!("argon2id m={memory_kib} t={iterations} p={parallelism}"),
    }
}

impl fmt::Display for TokenFate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Delete => "deleted at once",
            Self::DeleteAndRevoke => "revoked with the provider and deleted at once",
        })
    }
}
