//! Legacy import: values a Python service kept as Fernet tokens (or in clear) sealed into the
//! vault under their tenant, kind and name, counting what was imported, already there, or
//! refused, and why (never the value).
//!
//! The legacy keys only decrypt: nothing is ever encrypted with them. Tokens are opened
//! without a TTL (Python's `decrypt(token)` with `ttl=None`): legacy tokens are as old as the
//! service that wrote them, and their age says nothing about the credential inside.

use std::fmt;
use std::marker::PhantomData;

use crate::crypto::fernet::{InvalidTokenReason, MultiFernet};
use crate::secret::SecretString;
use crate::store::{Progress, ProgressClock, SecretKind, StoreError, Vault};

/// The actor the audit log names for imported records unless [`FernetImport::actor`] sets one.
pub(crate) const IMPORT_ACTOR: &str = "job:import";

/// How many failures an [`ImportReport`] lists; [`ImportReport::failed`] counts them all.
pub const MAX_REPORTED_FAILURES: usize = 1000;

/// The progress callback is called after every this many values, and once at the end.
pub const PROGRESS_EVERY: u64 = 100;

/// The prefix of every Fernet token stamped before 2^36 seconds after 1970 (the year 4147):
/// the version byte 0x80 and the timestamp's top 28 bits, all zero, in base64.
const FERNET_PREFIX: &str = "gAAAAA";

/// A tenant id or record name longer than this is cut in a failure entry (a legacy column
/// may hold anything; the report need not repeat all of it).
const MAX_ECHOED_ID: usize = 256;

/// A legacy value as it was stored: a Fernet token, or the credential in clear.
///
/// `Debug` shows which, and a token's length, never the token or the plaintext.
///
/// ```
/// use credvault::store::LegacyPayload;
///
/// let token = LegacyPayload::from_column("gAAAAABpK3x0...".into());
/// assert!(matches!(token, LegacyPayload::Fernet(_)));
/// let clear = LegacyPayload::from_column("ghp_16C7e42F292c6912E7710c838347Ae178B4a".into());
/// assert!(matches!(clear, LegacyPayload::Plaintext(_)));
/// assert_eq!(format!("{clear:?}"), "Plaintext([REDACTED])");
/// ```
pub enum LegacyPayload {
    /// A Fernet token (URL-safe base64 text) made with one of the legacy keys.
    Fernet(String),
    /// The credential in clear. Imported only when [`FernetImport::allow_plaintext`] is set.
    Plaintext(SecretString),
}

impl LegacyPayload {
    /// Classifies a raw column value: [`Fernet`](Self::Fernet) if it is shaped like a token
    /// (see [`is_fernet_shaped`](Self::is_fernet_shaped)), else
    /// [`Plaintext`](Self::Plaintext).
    pub fn from_column(raw: SecretString) -> Self {
        if Self::is_fernet_shaped(raw.expose_secret()) {
            Self::Fernet(raw.expose_secret().trim_ascii().to_owned())
        } else {
            Self::Plaintext(raw)
        }
    }

    /// Whether `raw` looks like a Fernet token: once leading and trailing ASCII whitespace is
    /// trimmed, it starts with `gAAAAA`, the version byte and the top of a timestamp before
    /// the year 4147. Nothing is decoded or verified.
    ///
    /// The test leans towards "token" on purpose, so that a damaged token (truncated,
    /// altered) is refused as an invalid token instead of being imported as a plaintext
    /// credential. Its limits:
    ///
    /// - a credential kept in clear that happens to start with `gAAAAA` is taken for a token
    ///   and fails to decrypt (it is reported, never imported wrongly); import such a column
    ///   with [`LegacyPayload::Plaintext`] explicitly;
    /// - a token stamped after the year 4147 (only a forged one) is taken for plaintext;
    /// - a credential that is itself some other system's Fernet token cannot be told apart.
    ///
    /// ```
    /// use credvault::store::LegacyPayload;
    ///
    /// assert!(LegacyPayload::is_fernet_shaped(" gAAAAABpK3x0truncated\n"));
    /// assert!(!LegacyPayload::is_fernet_shaped("sk_live_51H8"));
    /// ```
    pub fn is_fernet_shaped(raw: &str) -> bool {
        raw.trim_ascii().starts_with(FERNET_PREFIX)
    }
}

impl fmt::Debug for LegacyPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fernet(token) => f.debug_struct("Fernet").field("len", &token.len()).finish(),
            Self::Plaintext(_) => f.write_str("Plaintext([REDACTED])"),
        }
    }
}

/// One legacy value to import: where it goes (tenant, record name) and what it holds.
///
/// The tenant id and name are checked when the value is imported: an invalid one is counted
/// as a failure, not an error.
///
/// ```
/// use credvault::store::{LegacyPayload, LegacyValue};
///
/// let v = LegacyValue::new("acme", "github", LegacyPayload::from_column("gho_x".into()));
/// assert_eq!(v.tenant, "acme");
/// ```
#[derive(Debug)]
pub struct LegacyValue {
    /// The tenant the record belongs to.
    pub tenant: String,
    /// The record name (unique per tenant and kind).
    pub name: String,
    /// The token or plaintext.
    pub payload: LegacyPayload,
}

impl LegacyValue {
    /// A value for `tenant`'s record `name`.
    pub fn new(tenant: impl Into<String>, name: impl Into<String>, payload: LegacyPayload) -> Self {
        Self {
            tenant: tenant.into(),
            name: name.into(),
            payload,
        }
    }
}

/// The caller's mapping refused a decrypted value. Its message goes into the report: say what
/// is wrong ("not a json token set"), never the value.
///
/// ```
/// use credvault::store::MapError;
///
/// let e = MapError::new("refresh token missing");
/// assert_eq!(e.to_string(), "refresh token missing");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(String);

impl MapError {
    /// A refusal with its reason (never the value).
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Why one legacy value was not imported.
///
/// ```
/// use credvault::crypto::fernet::InvalidTokenReason;
/// use credvault::store::FailureCause;
///
/// let cause = FailureCause::InvalidToken(InvalidTokenReason::Unauthenticated);
/// assert_ne!(cause, FailureCause::PlaintextNotAllowed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureCause {
    /// The token is not a Fernet token, or no legacy key opens it.
    InvalidToken(InvalidTokenReason),
    /// A plaintext value, and the import does not allow plaintext.
    PlaintextNotAllowed,
    /// The decrypted value is not UTF-8 text.
    NotUtf8,
    /// The caller's mapping refused the value ([`MapError`]).
    MappingFailed,
    /// The tenant id or record name is invalid, or the record too large for the vault.
    InvalidRecord,
    /// The tenant is being deleted or was crypto-shredded: nothing can be written to it.
    TenantNotWritable,
    /// The source could not read this value at all (a malformed line or row).
    UnreadableSource,
}

impl FailureCause {
    /// Its name in snake case (`invalid_token`, `plaintext_not_allowed`, ...): how it is
    /// serialised. The token's own reason is in the failure's `reason` text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidToken(_) => "invalid_token",
            Self::PlaintextNotAllowed => "plaintext_not_allowed",
            Self::NotUtf8 => "not_utf8",
            Self::MappingFailed => "mapping_failed",
            Self::InvalidRecord => "invalid_record",
            Self::TenantNotWritable => "tenant_not_writable",
            Self::UnreadableSource => "unreadable_source",
        }
    }
}

impl serde::Serialize for FailureCause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One value that was not imported. Never holds the token or the plaintext. Serialised with
/// these field names (`cause` as [`FailureCause::as_str`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportFailure {
    /// The value's tenant, as the source gave it (cut to 256 bytes); `None` when the source
    /// could not read it.
    pub tenant: Option<String>,
    /// The record name, likewise.
    pub name: Option<String>,
    /// What kind of failure.
    pub cause: FailureCause,
    /// What happened, in words: `invalid fernet token (hmac does not verify)`,
    /// `plaintext not allowed`, or the vault's error message.
    pub reason: String,
}

/// What an import did.
///
/// ```
/// use credvault::store::ImportReport;
///
/// let report = ImportReport::default();
/// assert_eq!(report.seen(), 0);
/// assert!(report.failures.is_empty());
/// ```
///
/// Serialised with these field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Values sealed into the vault by this run.
    pub imported: u64,
    /// Values whose record (tenant, kind, name) already existed: left as it was, whatever it
    /// holds. A second run of the same import counts every value here.
    pub already_present: u64,
    /// Values not imported, every one counted.
    pub failed: u64,
    /// The first [`MAX_REPORTED_FAILURES`] failures, in source order.
    pub failures: Vec<ImportFailure>,
}

impl ImportReport {
    /// Values handled: imported, already present or failed.
    pub fn seen(&self) -> u64 {
        self.imported
            .saturating_add(self.already_present)
            .saturating_add(self.failed)
    }

    /// Whether some failures are counted but not listed.
    pub fn failures_truncated(&self) -> bool {
        u64::try_from(self.failures.len()).map_or(true, |listed| listed < self.failed)
    }

    fn fail(&mut self, failure: ImportFailure) {
        self.failed = self.failed.saturating_add(1);
        if self.failures.len() < MAX_REPORTED_FAILURES {
            self.failures.push(failure);
        }
    }
}

/// An import stopped because the vault itself failed (storage unavailable or read-only, a key
/// that does not unwrap): going on would only fail every remaining value. What was done
/// before is in `report`; running the import again imports nothing twice.
#[derive(Debug, thiserror::Error)]
#[error("import stopped after {} values ({} imported): {error}", report.seen(), report.imported)]
pub struct ImportError {
    /// What was done before it stopped.
    pub report: ImportReport,
    /// Why it stopped.
    #[source]
    pub error: StoreError,
}

/// A legacy import in progress, from [`Vault::import_fernet`]. Feed it with
/// [`run`](Self::run) (an iterator) or value by value with [`push`](Self::push) (from an
/// async stream, a database cursor, a file), then [`finish`](Self::finish).
///
/// Each value is decrypted with the legacy keys (no TTL), turned into a record by the
/// caller's mapping, and [`put`](crate::store::Tenant::put) into its tenant, which is created
/// on first use. An existing record is never overwritten.
pub struct FernetImport<'a, R, F> {
    vault: Vault,
    keys: &'a MultiFernet,
    map: F,
    actor: String,
    allow_plaintext: bool,
    total: Option<u64>,
    progress: Option<&'a mut dyn FnMut(Progress)>,
    clock: Option<ProgressClock>,
    report: ImportReport,
    record: PhantomData<fn() -> R>,
}

impl<R, F> fmt::Debug for FernetImport<'_, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FernetImport")
            .field("keys", self.keys)
            .field("actor", &self.actor)
            .field("allow_plaintext", &self.allow_plaintext)
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Starts importing legacy values decrypted with `legacy_keys` (decrypt-only: the import
    /// never encrypts with them) and turned into records by `map`, which receives the
    /// decrypted text and the value it came from.
    ///
    /// Tokens are opened without a TTL, as Python's `decrypt(token)` does: legacy tokens are
    /// as old as the service that wrote them. A record that already exists (same tenant,
    /// kind and name) is counted as already present and left as it is, even if it holds
    /// something else: running the import again imports nothing twice. Set the audit actor
    /// (default `"job:import"`), plaintext and a progress callback on the returned
    /// [`FernetImport`].
    ///
    /// ```
    /// use credvault::backend::MemoryBackend;
    /// use credvault::crypto::fernet::{Fernet, MultiFernet};
    /// use credvault::envelope::MemoryTenantKeys;
    /// use credvault::store::{LegacyPayload, LegacyValue, OAuthToken, Vault};
    /// use credvault::Keyring;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let vault = Vault::builder(MemoryBackend::new(), Keyring::generate()?, MemoryTenantKeys::new()).build();
    /// vault.migrate().await?;
    /// // The Python service's keys, newest first, as its MultiFernet had them.
    /// let (new, old) = (Fernet::generate_key(), Fernet::generate_key());
    /// let legacy = MultiFernet::new(vec![Fernet::new(new.expose_secret())?, Fernet::new(old.expose_secret())?])?;
    /// let column = Fernet::new(old.expose_secret())?.encrypt(b"gho_example");
    ///
    /// let rows = vec![
    ///     LegacyValue::new("acme", "github", LegacyPayload::from_column(column.into())),
    ///     LegacyValue::new("acme", "gitlab", LegacyPayload::Fernet("garbage".into())),
    /// ];
    /// let report = vault
    ///     .import_fernet(&legacy, |plain, _| Ok(OAuthToken::bearer("github", plain)))
    ///     .run(rows)
    ///     .await?;
    /// assert_eq!((report.imported, report.already_present, report.failed), (1, 0, 1));
    /// assert_eq!(report.failures[0].reason, "invalid fernet token (not a fernet token)");
    /// let token = vault.tenant("acme")?.get::<OAuthToken>("github").await?;
    /// assert_eq!(token.value.access_token.expose_secret(), "gho_example");
    /// # Ok::<(), credvault::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn import_fernet<'a, R, F>(
        &self,
        legacy_keys: &'a MultiFernet,
        map: F,
    ) -> FernetImport<'a, R, F>
    where
        R: SecretKind,
        F: FnMut(SecretString, &LegacyValue) -> Result<R, MapError>,
    {
        FernetImport {
            vault: self.clone(),
            keys: legacy_keys,
            map,
            actor: IMPORT_ACTOR.to_owned(),
            allow_plaintext: false,
            total: None,
            progress: None,
            clock: None,
            report: ImportReport::default(),
            record: PhantomData,
        }
    }
}

impl<'a, R, F> FernetImport<'a, R, F>
where
    R: SecretKind,
    F: FnMut(SecretString, &LegacyValue) -> Result<R, MapError>,
{
    /// Who the audit log says imported the records. Default: `"job:import"`.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = actor.into();
        self
    }

    /// Imports [`LegacyPayload::Plaintext`] values too. Default: `false`, and each plaintext
    /// value fails with `plaintext not allowed`.
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// How many values the source holds, for [`Progress::total`]. Default: the iterator's
    /// exact size hint in [`run`](Self::run), else 0 (unknown).
    pub fn expected_total(mut self, total: u64) -> Self {
        self.total = Some(total);
        self
    }

    /// Calls `progress` after every [`PROGRESS_EVERY`] values and once at the end.
    pub fn progress(mut self, progress: &'a mut dyn FnMut(Progress)) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Imports every value of `values`, one at a time: the source is never collected.
    ///
    /// # Errors
    ///
    /// [`ImportError`] if the vault itself fails (storage unavailable or read-only, a
    /// tenant's data key that does not unwrap); it holds the report so far. A value that
    /// cannot be imported is counted in the report, not an error.
    #[tracing::instrument(
        name = "credvault.import_fernet",
        skip_all,
        err(Display, level = "debug")
    )]
    pub async fn run<I>(mut self, values: I) -> Result<ImportReport, ImportError>
    where
        I: IntoIterator<Item = LegacyValue>,
    {
        let values = values.into_iter();
        if self.total.is_none()
            && let (low, Some(high)) = values.size_hint()
            && low == high
        {
            self.total = u64::try_from(low).ok();
        }
        for value in values {
            if let Err(error) = self.push(value).await {
                return Err(ImportError {
                    report: self.finish(),
                    error,
                });
            }
        }
        Ok(self.finish())
    }

    /// Imports one value, counting it as imported, already present or failed.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] that means the vault itself failed (storage unavailable or
    /// read-only, a key that does not unwrap): stop there. The value is not counted.
    pub async fn push(&mut self, value: LegacyValue) -> Result<(), StoreError> {
        match self.import_one(&value).await {
            Ok(true) => self.report.imported = self.report.imported.saturating_add(1),
            Ok(false) => {
                self.report.already_present = self.report.already_present.saturating_add(1);
            }
            Err(Step::Failed(cause, reason)) => self.report.fail(ImportFailure {
                tenant: Some(echo(&value.tenant)),
                name: Some(echo(&value.name)),
                cause,
                reason,
            }),
            Err(Step::Stopped(e)) => return Err(e),
        }
        self.tick();
        Ok(())
    }

    /// Counts a value the source could not read (a malformed line, a row with a missing
    /// column) as failed with `reason`, which must not hold the value: say where it was
    /// ("line 7: not valid json").
    pub fn push_unreadable(&mut self, reason: impl Into<String>) {
        self.report.fail(ImportFailure {
            tenant: None,
            name: None,
            cause: FailureCause::UnreadableSource,
            reason: reason.into(),
        });
        self.tick();
    }

    /// The counts so far.
    pub fn report(&self) -> &ImportReport {
        &self.report
    }

    /// Ends the import: reports progress a last time and returns the counts.
    pub fn finish(mut self) -> ImportReport {
        let done = self.report.seen();
        let snapshot = self.clock().at(done);
        if let Some(progress) = self.progress.as_mut() {
            progress(snapshot);
        }
        tracing::info!(
            imported = self.report.imported,
            already_present = self.report.already_present,
            failed = self.report.failed,
            "credvault: legacy import finished"
        );
        self.report
    }

    /// Decrypt, map, put. `Ok(false)`: the record already exists.
    async fn import_one(&mut self, value: &LegacyValue) -> Result<bool, Step> {
        let tenant = self
            .vault
            .tenant(&value.tenant)
            .map_err(Step::from_store)?
            .with_actor(self.actor.clone())
            .map_err(Step::Stopped)?;
        let plain = self.open(&value.payload)?;
        let record = (self.map)(plain, value)
            .map_err(|e| Step::Failed(FailureCause::MappingFailed, format!("mapping: {e}")))?;
        match tenant.put(&value.name, &record).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(Step::from_store(e)),
        }
    }

    /// The legacy value's text: the token decrypted (no TTL), or the plaintext if allowed.
    fn open(&self, payload: &LegacyPayload) -> Result<SecretString, Step> {
        match payload {
            LegacyPayload::Fernet(token) => self
                .keys
                .decrypt(token.as_bytes())
                .map_err(|e| {
                    Step::Failed(
                        FailureCause::InvalidToken(e.reason()),
                        format!("invalid fernet token ({})", e.reason()),
                    )
                })?
                .into_secret_string()
                .map_err(|_| {
                    Step::Failed(
                        FailureCause::NotUtf8,
                        "decrypted value is not utf-8 text".to_owned(),
                    )
                }),
            LegacyPayload::Plaintext(text) if self.allow_plaintext => Ok(text.clone()),
            LegacyPayload::Plaintext(_) => Err(Step::Failed(
                FailureCause::PlaintextNotAllowed,
                "plaintext not allowed".to_owned(),
            )),
        }
    }

    fn clock(&mut self) -> &ProgressClock {
        let total = self.total.unwrap_or(0);
        self.clock
            .get_or_insert_with(|| ProgressClock::start(total))
    }

    fn tick(&mut self) {
        let done = self.report.seen();
        let snapshot = self.clock().at(done);
        if done.is_multiple_of(PROGRESS_EVERY)
            && let Some(progress) = self.progress.as_mut()
        {
            progress(snapshot);
        }
    }
}

/// What became of one value that was not imported or already present.
enum Step {
    /// Counted, and the import goes on.
    Failed(FailureCause, String),
    /// The vault failed: the import stops.
    Stopped(StoreError),
}

impl Step {
    /// Record-level store errors are failures of the value; the rest stop the import.
    fn from_store(e: StoreError) -> Self {
        let cause = match &e {
            StoreError::Id(_)
            | StoreError::InvalidLabel(_)
            | StoreError::PayloadTooLarge { .. }
            | StoreError::Serialize(_) => FailureCause::InvalidRecord,
            // A value that meets a stored row that cannot be read: that value fails, the
            // import goes on.
            StoreError::CorruptRecord { .. } => FailureCause::InvalidRecord,
            StoreError::Backend(b) if b.kind() == crate::backend::BackendErrorKind::Corrupt => {
                FailureCause::InvalidRecord
            }
            StoreError::TenantDeleted { .. } | StoreError::TenantShredded(_) => {
                FailureCause::TenantNotWritable
            }
            _ => return Self::Stopped(e),
        };
        Self::Failed(cause, e.to_string())
    }
}

/// `text` cut to [`MAX_ECHOED_ID`] bytes, on a character boundary, with control and
/// bidirectional characters escaped (the report is printed to a terminal).
fn echo(text: &str) -> String {
    let text = crate::text::escaped(text, MAX_ECHOED_ID);
    if text.len() <= MAX_ECHOED_ID {
        return text;
    }
    let mut end = MAX_ECHOED_ID;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_leans_towards_tokens() {
        assert!(LegacyPayload::is_fernet_shaped("gAAAAA"));
        assert!(LegacyPayload::is_fernet_shaped("\tgAAAAABpK3x0AAAA==\r\n"));
        assert!(!LegacyPayload::is_fernet_shaped(
            "gho_16C7e42F292c6912E7710c838347Ae178B4a"
        ));
        assert!(!LegacyPayload::is_fernet_shaped(""));
        match LegacyPayload::from_column(" gAAAAAbc\n".into()) {
            LegacyPayload::Fernet(t) => assert_eq!(t, "gAAAAAbc"),
            LegacyPayload::Plaintext(_) => panic!("a token-shaped value is a token"),
        }
    }

    #[test]
    fn debug_shows_no_value() {
        let token = LegacyPayload::Fernet("gAAAAAsecret".to_owned());
        assert_eq!(format!("{token:?}"), "Fernet { len: 12 }");
        let v = LegacyValue::new("t", "n", LegacyPayload::Plaintext("hunter2".into()));
        assert!(!format!("{v:?}").contains("hunter2"));
    }

    #[test]
    fn echo_cuts_long_ids_on_a_char_boundary() {
        let long = "é".repeat(200);
        let cut = echo(&long);
        assert!(cut.len() <= MAX_ECHOED_ID + 3);
        assert!(cut.ends_with("..."));
        assert_eq!(echo("acme"), "acme");
    }

    #[test]
    fn report_keeps_a_bounded_list_and_the_exact_count() {
        let mut r = ImportReport::default();
        for _ in 0..MAX_REPORTED_FAILURES + 5 {
            r.fail(ImportFailure {
                tenant: None,
                name: None,
                cause: FailureCause::UnreadableSource,
                reason: "line".to_owned(),
            });
        }
        assert_eq!(r.failed, 1005);
        assert_eq!(r.failures.len(), MAX_REPORTED_FAILURES);
        assert!(r.failures_truncated());
    }
}
