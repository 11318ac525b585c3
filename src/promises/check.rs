//! `promises check`: each promise of a file judged against the live vault, with its evidence.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Promises, TokenFate, describe_scheme, duration};
use crate::backend::{AuditQuery, ListQuery};
use crate::password::{PasswordPolicy, Scheme, ThrottleConfig};
use crate::store::{
    DekState, OAuthToken, PurgerConfig, PurgerStatus, SecretKind, StoreError, Vault, secs,
};
use crate::{RecordKind, TenantId};

/// Where a promise stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PromiseStatus {
    /// Kept: the evidence shows nothing against it.
    Kept,
    /// Kept today, but something will break it unless acted on (a key overdue for rotation,
    /// a hash that upgrades only at the next login, a purge run that failed).
    AtRisk,
    /// Broken: a record sealed with another suite, a deletion past its deadline, a setting
    /// that contradicts it.
    Broken,
}

impl PromiseStatus {
    /// `kept`, `at risk`, `broken`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::AtRisk => "at risk",
            Self::Broken => "broken",
        }
    }
}

/// One promise judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromiseResult {
    /// The promise's section (`at_rest`, `passwords`, `disconnect`, `account_deletion`,
    /// `logs`, `lockout`, `export`).
    pub promise: String,
    /// The policy's words for it, if the file quotes them.
    pub says: Option<String>,
    /// Where it stands.
    pub status: PromiseStatus,
    /// What was looked at, by name (counts, ages in seconds, settings in force).
    pub evidence: BTreeMap<String, Value>,
    /// Why it is not kept (empty when kept).
    pub problems: Vec<String>,
}

impl PromiseResult {
    fn new(promise: &str, says: Option<&String>) -> Self {
        Self {
            promise: promise.to_owned(),
            says: says.cloned(),
            status: PromiseStatus::Kept,
            evidence: BTreeMap::new(),
            problems: Vec::new(),
        }
    }

    fn evidence(&mut self, name: &str, value: impl Into<Value>) {
        self.evidence.insert(name.to_owned(), value.into());
    }

    fn problem(&mut self, status: PromiseStatus, problem: impl Into<String>) {
        self.status = self.status.max(status);
        self.problems.push(problem.into());
    }
}

/// The report of [`Vault::check_promises`]: each promise with its status and evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromiseReport {
    /// The policy's name.
    pub policy: String,
    /// When it was made (the vault's clock), Unix seconds.
    pub generated_at: i64,
    /// The worst status of any promise.
    pub status: PromiseStatus,
    /// The promises, in the file's section order.
    pub promises: Vec<PromiseResult>,
}

impl PromiseReport {
    /// Whether every promise is kept (what `credvault promises check` exits 0 on).
    pub fn all_kept(&self) -> bool {
        self.status == PromiseStatus::Kept
    }

    /// The result for one section, if the file makes that promise.
    pub fn promise(&self, section: &str) -> Option<&PromiseResult> {
        self.promises.iter().find(|p| p.promise == section)
    }

    /// For a person: one block per promise.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "promises of {}: {}\n",
            esc(&self.policy),
            self.status.as_str()
        );
        for p in &self.promises {
            let _ = writeln!(out, "\n{}: {}", p.promise, p.status.as_str());
            if let Some(says) = &p.says {
                let _ = writeln!(out, "  says: \"{}\"", esc(says));
            }
            for problem in &p.problems {
                let _ = writeln!(out, "  problem: {}", esc(problem));
            }
            for (name, value) in &p.evidence {
                let _ = writeln!(out, "  {name}: {}", esc(&value_text(value)));
            }
        }
        out
    }

    /// For an auditor's file: a Markdown table per promise.
    pub fn to_markdown(&self) -> String {
        let cell = |s: &str| esc(s).replace('|', "\\|");
        let mut out = format!(
            "# Promises of {}\n\nChecked at {} (Unix seconds) against the live vault: **{}**.\n\n| promise | the policy says | status |\n|---|---|---|\n",
            cell(&self.policy),
            self.generated_at,
            self.status.as_str()
        );
        for p in &self.promises {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                p.promise,
                cell(p.says.as_deref().unwrap_or("")),
                p.status.as_str()
            );
        }
        for p in &self.promises {
            let _ = write!(out, "\n## {}: {}\n\n", p.promise, p.status.as_str());
            for problem in &p.problems {
                let _ = writeln!(out, "- **problem:** {}", cell(problem));
            }
            if !p.problems.is_empty() {
                out.push('\n');
            }
            out.push_str("| evidence | value |\n|---|---|\n");
            for (name, value) in &p.evidence {
                let _ = writeln!(out, "| {name} | {} |", cell(&value_text(value)));
            }
        }
        out
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// What the check cannot read from the database: the application's own settings and the
/// password hashes it keeps. Every field is optional; what is not given is judged from the
/// promise file alone (and says so in the evidence).
#[derive(Debug, Clone, Default)]
pub struct PromiseInputs {
    /// The password policy the application logs users in with.
    pub password_policy: Option<PasswordPolicy>,
    /// The stored password hashes (or a sample): each is classified against the promise.
    pub password_hashes: Vec<String>,
    /// The login throttle's settings in force.
    pub throttle: Option<ThrottleConfig>,
    /// The purge runner's schedule and status ([`PurgerHandle::status`]).
    ///
    /// [`PurgerHandle::status`]: crate::store::PurgerHandle::status
    pub purger: Option<(PurgerConfig, PurgerStatus)>,
}

fn age_text(d: Duration) -> String {
    duration::render(Duration::from_secs(d.as_secs()))
}

impl Vault {
    /// Judges each promise of `promises` against this vault: kept / at risk / broken, with
    /// the evidence (records per suite and key version, the oldest retired key still holding
    /// records, pending deletions and the time left to each deadline, the oldest overdue item
    /// and the last purge run, the audit retention actually held, the throttle and password
    /// settings in force, key ages against the rotation policy). Decrypts nothing.
    ///
    /// ```
    /// use credvault::backend::MemoryBackend;
    /// use credvault::envelope::MemoryTenantKeys;
    /// use credvault::promises::{PromiseInputs, Promises};
    /// use credvault::{Keyring, Vault};
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let promises = Promises::from_toml_str(
    ///     "policy = \"example\"\n[at_rest]\nsuite = \"fernet\"\n[logs]\nkept_for = \"90d\"\n",
    /// )?;
    /// let vault = Vault::builder(MemoryBackend::new(), Keyring::generate()?, MemoryTenantKeys::new())
    ///     .promises(&promises)
    ///     .try_build()?;
    /// vault.migrate().await?;
    /// let report = vault.check_promises(&promises, &PromiseInputs::default()).await?;
    /// assert!(report.all_kept(), "{}", report.to_text());
    /// # Ok::<(), credvault::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// Storage and key-provider errors (a promise that cannot be judged is not reported as
    /// kept).
    pub async fn check_promises(
        &self,
        promises: &Promises,
        inputs: &PromiseInputs,
    ) -> Result<PromiseReport, StoreError> {
        let now = self.now();
        // Revocation is enforced per operation (a disconnect or deletion without a revoker is
        // refused), so a handle without one (the command line's) breaks nothing by itself.
        let config_error = promises.check_config(self.config(), None).err();
        let contradiction = |section: &str, result: &mut PromiseResult| {
            if let Some(super::PromiseError::Contradicted {
                promise,
                setting,
                why,
                ..
            }) = &config_error
                && promise.split('.').next() == Some(section)
            {
                result.problem(
                    PromiseStatus::Broken,
                    format!("the vault's setting {setting} breaks {promise}: {why}"),
                );
            }
        };
        let mut results = Vec::new();
        let lead = inputs.purger.as_ref().map(|(c, _)| c.lead());

        if let Some(p) = &promises.at_rest {
            let mut r = PromiseResult::new("at_rest", p.says.as_ref());
            contradiction("at_rest", &mut r);
            let report = self.key_report(&promises.rotation_policy()).await?;
            r.evidence("suite_promised", p.suite.as_str());
            if !p.kinds.is_empty() {
                r.evidence(
                    "kinds_promised",
                    json!(
                        p.kinds
                            .iter()
                            .map(|(k, s)| (k.clone(), s.as_str()))
                            .collect::<BTreeMap<_, _>>()
                    ),
                );
            }
            r.evidence("kek_provider", report.kek_provider.clone());
            r.evidence("records", report.records);
            let by_suite: BTreeMap<&str, u64> = report
                .records_by_suite
                .iter()
                .map(|(s, n)| (s.as_str(), *n))
                .collect();
            r.evidence("records_by_suite", json!(by_suite));
            let mut by_version: BTreeMap<String, u64> = BTreeMap::new();
            let mut oldest_retired: Option<Duration> = None;
            for dek in &report.deks {
                if dek.records == 0 {
                    continue;
                }
                let state = match dek.state {
                    DekState::Current => "current",
                    DekState::Retired => "retired",
                    DekState::Destroyed => "destroyed",
                };
                *by_version
                    .entry(format!("{} ({state})", dek.version))
                    .or_default() += dek.records;
                if dek.state == DekState::Retired {
                    oldest_retired = Some(oldest_retired.map_or(dek.age, |a| a.max(dek.age)));
                }
            }
            r.evidence("records_by_data_key_version", json!(by_version));
            r.evidence(
                "oldest_retired_data_key_with_records_age_seconds",
                oldest_retired.map_or(Value::Null, |a| json!(a.as_secs())),
            );
            r.evidence(
                "records_pending_reencryption",
                report.records_pending_reencryption,
            );
            let other_suite: u64 = report
                .records_by_suite
                .iter()
                .filter(|(s, _)| **s != p.suite)
                .map(|(_, n)| *n)
                .sum();
            let wrong = if p.kinds.is_empty() {
                other_suite
            } else {
                // Per-kind suites: records to reseal that are under a current key are sealed
                // with the wrong suite (a lower bound: old-key records may be too).
                report
                    .records_to_reseal
                    .saturating_sub(report.records_pending_reencryption)
            };
            r.evidence("records_sealed_with_another_suite", wrong);
            if wrong > 0 {
                r.problem(
                    PromiseStatus::Broken,
                    format!(
                        "{wrong} record(s) sealed with another suite than promised ({}): run `credvault vault reencrypt`",
                        p.suite
                    ),
                );
            }
            r.evidence(
                "data_keys_rotated_every_seconds",
                p.rotate_data_keys_every.as_secs(),
            );
            r.evidence(
                "master_key_rotated_every_seconds",
                p.rotate_master_key_every.as_secs(),
            );
            r.evidence("overdue_keys", report.overdue_keys);
            if report.overdue_keys > 0 {
                r.problem(
                    PromiseStatus::AtRisk,
                    format!(
                        "{} key(s) older than the rotation the policy implies: rotate them",
                        report.overdue_keys
                    ),
                );
            }
            let unreadable = report.records_with_destroyed_key + report.records_below_minimum;
            r.evidence("records_unreadable_by_key", unreadable);
            if unreadable > 0 {
                r.problem(
                    PromiseStatus::AtRisk,
                    format!("{unreadable} record(s) under a destroyed or refused data key"),
                );
            }
            results.push(r);
        }

        if let Some(p) = &promises.passwords {
            let mut r = PromiseResult::new("passwords", p.says.as_ref());
            r.evidence("scheme_promised", describe_scheme(p.scheme));
            match &inputs.password_policy {
                Some(policy) => {
                    r.evidence("scheme_in_force", describe_scheme(policy.scheme()));
                    if let Err(e) = promises.check_password_policy(policy) {
                        r.problem(PromiseStatus::Broken, e.to_string());
                    }
                }
                None => r.evidence(
                    "scheme_in_force",
                    "not given: the policy built from the promise file (Promises::password_policy)",
                ),
            }
            if !inputs.password_hashes.is_empty() {
                hashes(&mut r, p.scheme, &inputs.password_hashes);
            }
            results.push(r);
        }

        if let Some(p) = &promises.disconnect {
            let mut r = PromiseResult::new("disconnect", p.says.as_ref());
            contradiction("disconnect", &mut r);
            r.evidence("tokens", p.tokens.to_string());
            r.evidence(
                "tokens_deleted",
                "in the disconnect call, in one transaction with its audit rows",
            );
            if p.tokens == TokenFate::DeleteAndRevoke {
                r.evidence(
                    "revocation",
                    "enforced: a disconnect without a revoker is refused by this vault",
                );
            }
            r.evidence(
                "derived_retention_seconds",
                self.config().derived_retention.as_secs(),
            );
            if let Some(within) = p.derived_data_within {
                r.evidence("derived_data_within_seconds", within.as_secs());
            }
            r.evidence("derived_kinds", json!(self.config().derived_kinds));
            self.deadlines(&mut r, now, lead).await?;
            results.push(r);
        }

        if let Some(p) = &promises.account_deletion {
            let mut r = PromiseResult::new("account_deletion", p.says.as_ref());
            contradiction("account_deletion", &mut r);
            r.evidence("erased_within_seconds", p.erased_within.as_secs());
            r.evidence("grace_period_seconds", self.config().grace_period.as_secs());
            if let Some(kept) = p.kept_for_export {
                r.evidence("kept_for_export_seconds", kept.as_secs());
                if let Some(lead) = lead {
                    let restorable = self.config().grace_period.saturating_sub(lead);
                    r.evidence("restorable_for_seconds", restorable.as_secs());
                    if restorable < kept {
                        r.problem(
                            PromiseStatus::AtRisk,
                            format!(
                                "the purge runner deletes {} ahead of the deadline, so a deleted account is exportable for {} only, less than the {} promised",
                                age_text(lead),
                                age_text(restorable),
                                age_text(kept)
                            ),
                        );
                    }
                }
            }
            r.evidence("tokens", p.tokens.to_string());
            let pending = self.pending_tenants().await?;
            let mut tokens_waiting = 0u64;
            let mut list = Vec::new();
            for (tenant, deadline) in &pending {
                let left = deadline - now;
                list.push(
                    json!({"tenant": tenant.as_str(), "deadline": deadline, "seconds_left": left}),
                );
                if left < 0 {
                    r.problem(
                        PromiseStatus::Broken,
                        format!(
                            "account {} is past its erasure deadline by {}",
                            tenant,
                            age_text(Duration::from_secs(u64::try_from(-left).unwrap_or(0)))
                        ),
                    );
                }
                tokens_waiting += self.oauth_tokens(tenant).await?;
            }
            r.evidence("accounts_pending_erasure", json!(list));
            r.evidence(
                "tokens_of_deleted_accounts_awaiting_revocation",
                tokens_waiting,
            );
            if tokens_waiting > 0 {
                r.problem(
                    PromiseStatus::AtRisk,
                    format!(
                        "{tokens_waiting} OAuth token(s) of deleted accounts wait for a revocation retry (each purge run retries)"
                    ),
                );
            }
            if let Some(backups) = p.backups_purged_within {
                r.evidence("backups_purged_within_seconds", backups.as_secs());
                r.evidence(
                    "backups",
                    format!(
                        "the purge destroys the account's shred secret (in {}), so every backup copy of its records is unreadable from the purge on, at most {} after the deletion; keep that store's own backups under {}",
                        self.tenant_keys_describe(),
                        age_text(p.erased_within),
                        age_text(backups.saturating_sub(p.erased_within)),
                    ),
                );
            }
            self.purger_evidence(&mut r, inputs, now).await?;
            results.push(r);
        }

        if let Some(p) = &promises.logs {
            let mut r = PromiseResult::new("logs", p.says.as_ref());
            contradiction("logs", &mut r);
            r.evidence("kept_for_seconds", p.kept_for.as_secs());
            r.evidence(
                "audit_retention_seconds",
                self.config().audit_retention.as_secs(),
            );
            let oldest = self
                .backend()
                .audit(&AuditQuery {
                    limit: Some(1),
                    ..AuditQuery::default()
                })
                .await?;
            let slack = lead.unwrap_or(crate::store::DAY);
            match oldest.first() {
                Some(row) => {
                    let age = Duration::from_secs(u64::try_from(now - row.at).unwrap_or(0));
                    r.evidence("oldest_audit_row_age_seconds", age.as_secs());
                    if age > p.kept_for + slack {
                        r.problem(
                            PromiseStatus::Broken,
                            format!(
                                "the oldest audit row is {} old, past the {} promised (plus {} for the purge's schedule): the purge is not running",
                                age_text(age),
                                age_text(p.kept_for),
                                age_text(slack)
                            ),
                        );
                    }
                }
                None => r.evidence("oldest_audit_row_age_seconds", Value::Null),
            }
            results.push(r);
        }

        if let Some(p) = &promises.lockout {
            let mut r = PromiseResult::new("lockout", p.says.as_ref());
            let promised = &p.throttle;
            r.evidence("max_failures_promised", promised.max_failures);
            r.evidence("window_promised_seconds", promised.window.as_secs());
            r.evidence("lockout_promised_seconds", promised.base_lockout.as_secs());
            match &inputs.throttle {
                Some(t) => {
                    r.evidence("max_failures_in_force", t.max_failures);
                    r.evidence("max_failures_per_address_in_force", t.max_failures_per_address);
                    r.evidence("max_failures_per_account_in_force", t.max_failures_per_account);
                    r.evidence("window_in_force_seconds", t.window.as_secs());
                    r.evidence("lockout_in_force_seconds", t.base_lockout.as_secs());
                    r.evidence("max_lockout_in_force_seconds", t.max_lockout.as_secs());
                    if let Err(e) = promises.check_throttle(t) {
                        r.problem(PromiseStatus::Broken, e.to_string());
                    }
                }
                None => r.evidence(
                    "throttle_in_force",
                    "not given: the throttle built from the promise file (Promises::throttle_config)",
                ),
            }
            results.push(r);
        }

        if let Some(p) = &promises.export {
            let mut r = PromiseResult::new("export", p.says.as_ref());
            let formats: Vec<&str> = p.formats.iter().map(|f| f.as_str()).collect();
            r.evidence("formats", json!(formats));
            r.evidence(
                "json",
                "Tenant::export_json / `credvault vault export --format json`: every record with its secrets, and the tenant's audit rows",
            );
            r.evidence(
                "csv",
                "Tenant::export_csv + export_audit_csv / `--format csv`: every record's metadata, and the audit rows",
            );
            results.push(r);
        }

        let status = results
            .iter()
            .map(|r| r.status)
            .max()
            .unwrap_or(PromiseStatus::Kept);
        Ok(PromiseReport {
            policy: promises.policy.clone(),
            generated_at: now,
            status,
            promises: results,
        })
    }

    /// The oldest waiting deletion (derived data or account) and how late it is.
    async fn deadlines(
        &self,
        r: &mut PromiseResult,
        now: i64,
        lead: Option<Duration>,
    ) -> Result<(), StoreError> {
        let oldest = self.backend().oldest_purge_deadline().await?;
        r.evidence(
            "oldest_pending_deletion_seconds_left",
            oldest.map_or(Value::Null, |d| json!(d - now)),
        );
        if let Some(deadline) = oldest {
            if deadline < now {
                r.problem(
                    PromiseStatus::Broken,
                    format!(
                        "an item waiting for the purge is {} past its deadline",
                        age_text(Duration::from_secs(
                            u64::try_from(now - deadline).unwrap_or(0)
                        ))
                    ),
                );
            } else if let Some(lead) = lead
                && deadline - now < secs(lead) / 2
            {
                r.problem(
                    PromiseStatus::AtRisk,
                    "an item is due before the purge runner's next run should have taken it",
                );
            }
        }
        Ok(())
    }

    async fn purger_evidence(
        &self,
        r: &mut PromiseResult,
        inputs: &PromiseInputs,
        now: i64,
    ) -> Result<(), StoreError> {
        self.deadlines(r, now, inputs.purger.as_ref().map(|(c, _)| c.lead()))
            .await?;
        let Some((config, status)) = &inputs.purger else {
            // Another process runs the purge: what the database recorded of its last run.
            match self.backend().last_purge_run().await? {
                Some((at, overdue)) => {
                    r.evidence("last_purge_started_at", at);
                    r.evidence("last_purge_age_seconds", now - at);
                    r.evidence("last_purge_oldest_overdue_seconds", overdue);
                    if overdue > 0 {
                        r.problem(
                            PromiseStatus::Broken,
                            format!(
                                "the last purge run found an item {} past its deadline",
                                age_text(Duration::from_secs(u64::try_from(overdue).unwrap_or(0)))
                            ),
                        );
                    }
                }
                None => r.evidence("last_purge_started_at", Value::Null),
            }
            return Ok(());
        };
        r.evidence("purge_every_seconds", config.interval.as_secs());
        r.evidence("purge_lead_seconds", config.lead().as_secs());
        r.evidence("purge_runs", status.runs);
        r.evidence("purge_failures", status.failures);
        r.evidence(
            "last_purge_started_at",
            status.last_started_at.map_or(Value::Null, |t| json!(t)),
        );
        if let Some(report) = &status.last_report {
            r.evidence(
                "last_purge_oldest_overdue_seconds",
                report.oldest_overdue.as_secs(),
            );
            if !report.oldest_overdue.is_zero() {
                r.problem(
                    PromiseStatus::Broken,
                    format!(
                        "the last purge run found an item {} past its deadline",
                        age_text(report.oldest_overdue)
                    ),
                );
            }
        }
        if let Some(error) = &status.last_error {
            r.problem(
                PromiseStatus::AtRisk,
                format!("a purge run failed: {error}"),
            );
        }
        match status.last_started_at {
            Some(at) if now - at > secs(config.lead()) => r.problem(
                PromiseStatus::AtRisk,
                "the purge runner has not run within its interval and margin",
            ),
            None => r.problem(PromiseStatus::AtRisk, "the purge runner has not run yet"),
            _ => {}
        }
        Ok(())
    }

    /// Accounts deleted and waiting for the purge, with their deadlines.
    async fn pending_tenants(&self) -> Result<Vec<(TenantId, i64)>, StoreError> {
        let mut pending = Vec::new();
        for tenant in self.backend().tenants_due_for_purge(i64::MAX).await? {
            let Ok(tenant) = tenant else { continue };
            if let Some(row) = self.backend().tenant(&tenant).await?
                && row.shredded_at.is_none()
                && let Some(deadline) = row.purge_after
            {
                pending.push((tenant, deadline));
            }
        }
        Ok(pending)
    }

    async fn oauth_tokens(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        let rows = self
            .backend()
            .list(&ListQuery {
                tenant: tenant.clone(),
                kind: Some(RecordKind::new(OAuthToken::KIND)?),
                provider: None,
                after: None,
                limit: 10_000,
            })
            .await?;
        Ok(u64::try_from(rows.len()).unwrap_or(u64::MAX))
    }
}

/// Classifies stored password hashes against the promised scheme.
fn hashes(r: &mut PromiseResult, promised: Scheme, hashes: &[String]) {
    let policy = PasswordPolicy::new(promised);
    let mut by_family: BTreeMap<String, u64> = BTreeMap::new();
    let (mut other, mut weaker, mut unreadable) = (0u64, 0u64, 0u64);
    for hash in hashes {
        match PasswordPolicy::family_of(hash) {
            Ok(family) => {
                *by_family.entry(format!("{family:?}")).or_default() += 1;
                if family != promised.family() {
                    other += 1;
                } else if let Ok(p) = &policy
                    && p.needs_rehash(hash).unwrap_or(true)
                {
                    weaker += 1;
                }
            }
            Err(_) => unreadable += 1,
        }
    }
    r.evidence(
        "hashes_checked",
        u64::try_from(hashes.len()).unwrap_or(u64::MAX),
    );
    r.evidence("hashes_by_family", json!(by_family));
    r.evidence("hashes_of_another_scheme", other);
    r.evidence("hashes_below_promised_parameters", weaker);
    r.evidence("hashes_not_recognised", unreadable);
    if other + unreadable > 0 {
        r.problem(
            PromiseStatus::Broken,
            format!(
                "{} stored password(s) not hashed with {}{}",
                other + unreadable,
                describe_scheme(promised),
                if unreadable > 0 {
                    " (some not a hash credvault recognises: plaintext?)"
                } else {
                    " (they upgrade at the next login; force a reset for dormant accounts)"
                }
            ),
        );
    }
    if weaker > 0 {
        r.problem(
            PromiseStatus::AtRisk,
            format!("{weaker} hash(es) below the promised parameters: upgraded at the next login"),
        );
    }
}

/// Text from a promise file or the database, safe to print on a terminal.
fn esc(text: &str) -> String {
    crate::text::escaped(text, 4096)
}
