//! The promise file as TOML: read with serde (every value keeps its position, so that errors
//! name the line) and validated into [`Promises`]; written back by [`render`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Table, Value};

use super::{
    AccountDeletionPromise, AtRestPromise, DisconnectPromise, ExportFormat, ExportPromise, Lines,
    LockoutPromise, LogPromise, PasswordPromise, PromiseError, Promises, TokenFate, duration,
};
use crate::crypto::SealingSuite;
use crate::password::{
    ARGON2ID_OWASP_ITERATIONS, ARGON2ID_OWASP_MEMORY_KIB, ARGON2ID_OWASP_PARALLELISM,
    PBKDF2_SHA256_OWASP_ITERATIONS, PasswordPolicy, Scheme, ThrottleConfig,
};
use crate::store::RotationPolicy;

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    policy: S<String>,
    at_rest: Option<RawAtRest>,
    passwords: Option<RawPasswords>,
    disconnect: Option<RawDisconnect>,
    account_deletion: Option<RawAccountDeletion>,
    logs: Option<RawLogs>,
    lockout: Option<RawLockout>,
    export: Option<RawExport>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAtRest {
    says: Option<String>,
    suite: S<String>,
    #[serde(default)]
    kinds: BTreeMap<String, S<String>>,
    rotate_data_keys_every: Option<S<String>>,
    rotate_master_key_every: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPasswords {
    says: Option<String>,
    scheme: S<String>,
    cost: Option<S<u32>>,
    iterations: Option<S<u32>>,
    memory_kib: Option<S<u32>>,
    parallelism: Option<S<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisconnect {
    says: Option<String>,
    tokens: Option<S<String>>,
    derived_data_within: Option<S<String>>,
    #[serde(default)]
    derived_kinds: Vec<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccountDeletion {
    says: Option<String>,
    erased_within: S<String>,
    kept_for_export: Option<S<String>>,
    backups_purged_within: Option<S<String>>,
    tokens: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogs {
    says: Option<String>,
    kept_for: S<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLockout {
    says: Option<String>,
    max_failures: Option<S<u32>>,
    max_failures_per_address: Option<S<u32>>,
    max_failures_per_account: Option<S<u32>>,
    window: Option<S<String>>,
    lockout: Option<S<String>>,
    max_lockout: Option<S<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExport {
    says: Option<String>,
    formats: Vec<S<String>>,
}

/// Reads the file's values, remembering their lines.
struct Reader<'t> {
    text: &'t str,
    lines: BTreeMap<String, u32>,
}

impl Reader<'_> {
    fn line(&self, offset: usize) -> u32 {
        let end = offset.min(self.text.len());
        let newlines = self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        u32::try_from(newlines.saturating_add(1)).unwrap_or(u32::MAX)
    }

    /// Notes where `field` was written and returns its line.
    fn at<T>(&mut self, field: &str, value: &S<T>) -> u32 {
        let line = self.line(value.span().start);
        self.lines.insert(field.to_owned(), line);
        line
    }

    fn invalid<T: std::fmt::Debug>(
        &mut self,
        field: &str,
        value: &S<T>,
        message: impl Into<String>,
    ) -> PromiseError {
        let raw = format!("{:?}", value.get_ref());
        PromiseError::Invalid {
            line: self.at(field, value),
            field: field.to_owned(),
            value: raw.trim_matches('"').to_owned(),
            message: message.into(),
        }
    }

    fn unkeepable(
        &mut self,
        field: &str,
        value: &S<String>,
        why: &str,
        alternatives: &[&str],
    ) -> PromiseError {
        PromiseError::Unkeepable {
            line: self.at(field, value),
            field: field.to_owned(),
            value: value.get_ref().clone(),
            why: why.to_owned(),
            alternatives: alternatives.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn duration(&mut self, field: &str, value: &S<String>) -> Result<Duration, PromiseError> {
        self.at(field, value);
        match duration::parse(value.get_ref()) {
            Some(d) if !d.is_zero() => Ok(d),
            Some(_) => Err(self.invalid(field, value, "a promise of zero time cannot be kept")),
            None => Err(self.invalid(
                field,
                value,
                "expected a duration such as \"30d\", \"24h\", \"15m\" or \"30 days\"",
            )),
        }
    }

    fn optional_duration(
        &mut self,
        field: &str,
        value: Option<&S<String>>,
    ) -> Result<Option<Duration>, PromiseError> {
        value.map(|v| self.duration(field, v)).transpose()
    }

    fn suite(&mut self, field: &str, value: &S<String>) -> Result<SealingSuite, PromiseError> {
        self.at(field, value);
        let text = value.get_ref().to_ascii_lowercase();
        let compact: String = text.chars().filter(char::is_ascii_alphanumeric).collect();
        match compact.as_str() {
            "fernet" => return Ok(SealingSuite::Fernet),
            "aes256gcm" => return Ok(SealingSuite::Aes256Gcm),
            _ => {}
        }
        let fernet = format!("{field} = \"fernet\" (Fernet: AES-128-CBC + HMAC-SHA256)");
        let gcm = format!("{field} = \"aes-256-gcm\" (AES-256)");
        let alternatives = [fernet.as_str(), gcm.as_str()];
        if compact.contains("fernet") && (compact.contains("256") || compact.contains("192")) {
            return Err(self.unkeepable(
                field,
                value,
                "Fernet is AES-128 in CBC mode with HMAC-SHA256, by its specification; there is no AES-256 Fernet, and a policy that says so promises something no Fernet implementation does",
                &alternatives,
            ));
        }
        if compact.contains("aes128") || compact.contains("aes192") {
            return Err(self.unkeepable(
                field,
                value,
                "credvault seals with Fernet (whose cipher is AES-128) or AES-256-GCM",
                &alternatives,
            ));
        }
        if compact.contains("aes256") || compact == "aes" {
            return Err(self.unkeepable(
                field,
                value,
                "name the mode: credvault's AES-256 suite is AES-256-GCM",
                &alternatives,
            ));
        }
        Err(self.unkeepable(
            field,
            value,
            "credvault seals with Fernet or AES-256-GCM",
            &alternatives,
        ))
    }

    fn token_fate(
        &mut self,
        field: &str,
        value: Option<&S<String>>,
    ) -> Result<TokenFate, PromiseError> {
        let Some(value) = value else {
            return Ok(TokenFate::DeleteAndRevoke);
        };
        self.at(field, value);
        match value.get_ref().as_str() {
            "delete" => Ok(TokenFate::Delete),
            "delete-and-revoke" | "revoke" => Ok(TokenFate::DeleteAndRevoke),
            _ => Err(self.invalid(
                field,
                value,
                "expected \"delete-and-revoke\" (revoked with the provider, then deleted at once) or \"delete\" (deleted at once)",
            )),
        }
    }
}

pub(super) fn parse(text: &str) -> Result<Promises, PromiseError> {
    let file: RawFile = toml::from_str(text).map_err(|e| {
        let reader = Reader {
            text,
            lines: BTreeMap::new(),
        };
        PromiseError::Syntax {
            line: e.span().map_or(0, |s| reader.line(s.start)),
            message: e.message().trim().to_owned(),
        }
    })?;
    let mut r = Reader {
        text,
        lines: BTreeMap::new(),
    };
    r.at("policy", &file.policy);
    if file.policy.get_ref().trim().is_empty() {
        return Err(r.invalid("policy", &file.policy, "name the policy"));
    }
    let at_rest = file.at_rest.map(|a| at_rest(&mut r, a)).transpose()?;
    let passwords = file.passwords.map(|p| passwords(&mut r, p)).transpose()?;
    let disconnect = file
        .disconnect
        .map(|d| -> Result<_, PromiseError> {
            let mut kinds = Vec::new();
            for kind in &d.derived_kinds {
                r.at("disconnect.derived_kinds", kind);
                if let Err(e) = crate::RecordKind::new(kind.get_ref()) {
                    return Err(r.invalid("disconnect.derived_kinds", kind, e.to_string()));
                }
                kinds.push(kind.get_ref().clone());
            }
            Ok(DisconnectPromise {
                tokens: r.token_fate("disconnect.tokens", d.tokens.as_ref())?,
                derived_data_within: r.optional_duration(
                    "disconnect.derived_data_within",
                    d.derived_data_within.as_ref(),
                )?,
                derived_kinds: kinds,
                says: d.says,
            })
        })
        .transpose()?;
    let account_deletion = file
        .account_deletion
        .map(|a| account_deletion(&mut r, a))
        .transpose()?;
    let logs = file
        .logs
        .map(|l| -> Result<_, PromiseError> {
            Ok(LogPromise {
                kept_for: r.duration("logs.kept_for", &l.kept_for)?,
                says: l.says,
            })
        })
        .transpose()?;
    let lockout = file.lockout.map(|l| lockout(&mut r, l)).transpose()?;
    let export = file
        .export
        .map(|e| -> Result<_, PromiseError> {
            let mut formats = Vec::new();
            for format in &e.formats {
                r.at("export.formats", format);
                let f = match format.get_ref().to_ascii_lowercase().as_str() {
                    "json" => ExportFormat::Json,
                    "csv" => ExportFormat::Csv,
                    _ => {
                        return Err(r.unkeepable(
                            "export.formats",
                            format,
                            "the vault exports JSON (records with their secrets) and CSV (metadata)",
                            &["formats = [\"json\"]", "formats = [\"csv\"]"],
                        ));
                    }
                };
                if !formats.contains(&f) {
                    formats.push(f);
                }
            }
            if formats.is_empty() {
                return Err(PromiseError::Invalid {
                    line: 0,
                    field: "export.formats".to_owned(),
                    value: "[]".to_owned(),
                    message: "name at least one format".to_owned(),
                });
            }
            Ok(ExportPromise {
                formats,
                says: e.says,
            })
        })
        .transpose()?;
    Ok(Promises {
        policy: file.policy.into_inner(),
        at_rest,
        passwords,
        disconnect,
        account_deletion,
        logs,
        lockout,
        export,
        lines: Lines(r.lines),
    })
}

fn at_rest(r: &mut Reader<'_>, a: RawAtRest) -> Result<AtRestPromise, PromiseError> {
    let suite = r.suite("at_rest.suite", &a.suite)?;
    let mut kinds = BTreeMap::new();
    for (kind, value) in &a.kinds {
        let field = format!("at_rest.kinds.{kind}");
        if let Err(e) = crate::RecordKind::new(kind) {
            return Err(r.invalid(&field, value, format!("not a record kind: {e}")));
        }
        kinds.insert(kind.clone(), r.suite(&field, value)?);
    }
    let defaults = RotationPolicy::default();
    Ok(AtRestPromise {
        suite,
        kinds,
        rotate_data_keys_every: r
            .optional_duration(
                "at_rest.rotate_data_keys_every",
                a.rotate_data_keys_every.as_ref(),
            )?
            .unwrap_or(defaults.dek_max_age),
        rotate_master_key_every: r
            .optional_duration(
                "at_rest.rotate_master_key_every",
                a.rotate_master_key_every.as_ref(),
            )?
            .unwrap_or(defaults.kek_max_age),
        says: a.says,
    })
}

fn passwords(r: &mut Reader<'_>, p: RawPasswords) -> Result<PasswordPromise, PromiseError> {
    r.at("passwords.scheme", &p.scheme);
    let compact: String = p
        .scheme
        .get_ref()
        .to_ascii_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    let alternatives = [
        "scheme = \"bcrypt\", cost = 12",
        "scheme = \"pbkdf2-sha256\", iterations = 600000",
        "scheme = \"argon2id\"",
    ];
    let get = |v: &Option<S<u32>>, default: u32| v.as_ref().map_or(default, |v| *v.get_ref());
    let unused = |r: &mut Reader<'_>, name: &str, v: &Option<S<u32>>| match v {
        Some(v) => Err(r.invalid(
            &format!("passwords.{name}"),
            v,
            format!("not a parameter of {}", p.scheme.get_ref()),
        )),
        None => Ok(()),
    };
    let scheme = match compact.as_str() {
        "bcrypt" => {
            unused(r, "iterations", &p.iterations)?;
            unused(r, "memory_kib", &p.memory_kib)?;
            unused(r, "parallelism", &p.parallelism)?;
            Scheme::Bcrypt {
                cost: get(&p.cost, 12),
            }
        }
        "pbkdf2" | "pbkdf2sha256" => {
            unused(r, "cost", &p.cost)?;
            unused(r, "memory_kib", &p.memory_kib)?;
            unused(r, "parallelism", &p.parallelism)?;
            Scheme::Pbkdf2Sha256 {
                iterations: get(&p.iterations, PBKDF2_SHA256_OWASP_ITERATIONS),
            }
        }
        "argon2" | "argon2id" => {
            unused(r, "cost", &p.cost)?;
            Scheme::Argon2id {
                memory_kib: get(&p.memory_kib, ARGON2ID_OWASP_MEMORY_KIB),
                iterations: get(&p.iterations, ARGON2ID_OWASP_ITERATIONS),
                parallelism: get(&p.parallelism, ARGON2ID_OWASP_PARALLELISM),
            }
        }
        "md5" | "sha1" | "sha256" | "sha512" | "plaintext" | "plain" | "none" => {
            return Err(r.unkeepable(
                "passwords.scheme",
                &p.scheme,
                "a single fast digest (or none) is not a password hash: a GPU tries billions a second",
                &alternatives,
            ));
        }
        _ => {
            return Err(r.unkeepable(
                "passwords.scheme",
                &p.scheme,
                "credvault hashes passwords with bcrypt, PBKDF2-SHA256 or argon2id",
                &alternatives,
            ));
        }
    };
    if let Err(e) = PasswordPolicy::new(scheme) {
        let field = match scheme {
            Scheme::Bcrypt { .. } => p.cost.as_ref().map(|v| ("passwords.cost", v)),
            Scheme::Pbkdf2Sha256 { .. } => {
                p.iterations.as_ref().map(|v| ("passwords.iterations", v))
            }
            Scheme::Argon2id { .. } => p
                .memory_kib
                .as_ref()
                .map(|v| ("passwords.memory_kib", v))
                .or(p.iterations.as_ref().map(|v| ("passwords.iterations", v)))
                .or(p.parallelism.as_ref().map(|v| ("passwords.parallelism", v))),
        };
        return Err(match field {
            Some((field, value)) => r.invalid(field, value, e.to_string()),
            None => r.invalid("passwords.scheme", &p.scheme, e.to_string()),
        });
    }
    Ok(PasswordPromise {
        scheme,
        says: p.says,
    })
}

fn account_deletion(
    r: &mut Reader<'_>,
    a: RawAccountDeletion,
) -> Result<AccountDeletionPromise, PromiseError> {
    let erased_within = r.duration("account_deletion.erased_within", &a.erased_within)?;
    let kept_for_export = r.optional_duration(
        "account_deletion.kept_for_export",
        a.kept_for_export.as_ref(),
    )?;
    if let (Some(kept), Some(raw)) = (kept_for_export, &a.kept_for_export)
        && kept > erased_within
    {
        let within = duration::render(erased_within);
        return Err(r.unkeepable(
            "account_deletion.kept_for_export",
            raw,
            "an account cannot be kept for export longer than it is promised to be erased within",
            &[
                &format!("kept_for_export = \"{within}\""),
                "erased_within = the export window",
            ],
        ));
    }
    let backups = r.optional_duration(
        "account_deletion.backups_purged_within",
        a.backups_purged_within.as_ref(),
    )?;
    if let (Some(backups), Some(raw)) = (backups, &a.backups_purged_within)
        && backups < erased_within
    {
        let within = duration::render(erased_within);
        return Err(r.unkeepable(
            "account_deletion.backups_purged_within",
            raw,
            "a backup taken just before the deletion holds the account readable until the purge shreds its key, at erased_within",
            &[
                &format!("backups_purged_within = \"{within}\" or more"),
                &format!("erased_within = \"{}\" or less", raw.get_ref()),
            ],
        ));
    }
    Ok(AccountDeletionPromise {
        erased_within,
        kept_for_export,
        backups_purged_within: backups,
        tokens: r.token_fate("account_deletion.tokens", a.tokens.as_ref())?,
        says: a.says,
    })
}

fn lockout(r: &mut Reader<'_>, l: RawLockout) -> Result<LockoutPromise, PromiseError> {
    let mut throttle = ThrottleConfig::default();
    for (name, value, slot) in [
        (
            "lockout.max_failures",
            &l.max_failures,
            &mut throttle.max_failures,
        ),
        (
            "lockout.max_failures_per_address",
            &l.max_failures_per_address,
            &mut throttle.max_failures_per_address,
        ),
        (
            "lockout.max_failures_per_account",
            &l.max_failures_per_account,
            &mut throttle.max_failures_per_account,
        ),
    ] {
        if let Some(v) = value {
            r.at(name, v);
            if *v.get_ref() == 0 {
                return Err(r.invalid(name, v, "at least one failure must be allowed"));
            }
            *slot = *v.get_ref();
        }
    }
    if let Some(d) = r.optional_duration("lockout.window", l.window.as_ref())? {
        throttle.window = d;
    }
    if let Some(d) = r.optional_duration("lockout.lockout", l.lockout.as_ref())? {
        throttle.base_lockout = d;
    }
    if let Some(d) = r.optional_duration("lockout.max_lockout", l.max_lockout.as_ref())? {
        throttle.max_lockout = d;
    }
    if throttle.max_lockout < throttle.base_lockout
        && let Some(raw) = l.max_lockout.as_ref().or(l.lockout.as_ref())
    {
        return Err(r.invalid(
            "lockout.max_lockout",
            raw,
            "the longest lockout must be at least the first",
        ));
    }
    Ok(LockoutPromise {
        throttle,
        says: l.says,
    })
}

fn put(table: &mut Table, key: &str, value: impl Into<Value>) {
    table.insert(key.to_owned(), value.into());
}

fn says(table: &mut Table, says: Option<&String>) {
    if let Some(s) = says {
        put(table, "says", s.clone());
    }
}

fn dur(d: Duration) -> Value {
    Value::String(duration::render(d))
}

fn fate(f: TokenFate) -> &'static str {
    match f {
        TokenFate::Delete => "delete",
        TokenFate::DeleteAndRevoke => "delete-and-revoke",
    }
}

fn int(n: u32) -> Value {
    Value::Integer(i64::from(n))
}

pub(super) fn render(p: &Promises) -> String {
    let mut root = Table::new();
    put(&mut root, "policy", p.policy.clone());
    if let Some(a) = &p.at_rest {
        let mut t = Table::new();
        says(&mut t, a.says.as_ref());
        put(&mut t, "suite", a.suite.as_str());
        if !a.kinds.is_empty() {
            let kinds: Table = a
                .kinds
                .iter()
                .map(|(k, s)| (k.clone(), Value::String(s.as_str().to_owned())))
                .collect();
            put(&mut t, "kinds", kinds);
        }
        put(
            &mut t,
            "rotate_data_keys_every",
            dur(a.rotate_data_keys_every),
        );
        put(
            &mut t,
            "rotate_master_key_every",
            dur(a.rotate_master_key_every),
        );
        put(&mut root, "at_rest", t);
    }
    if let Some(pw) = &p.passwords {
        let mut t = Table::new();
        says(&mut t, pw.says.as_ref());
        match pw.scheme {
            Scheme::Bcrypt { cost } => {
                put(&mut t, "scheme", "bcrypt");
                put(&mut t, "cost", int(cost));
            }
            Scheme::Pbkdf2Sha256 { iterations } => {
                put(&mut t, "scheme", "pbkdf2-sha256");
                put(&mut t, "iterations", int(iterations));
            }
            Scheme::Argon2id {
                memory_kib,
                iterations,
                parallelism,
            } => {
                put(&mut t, "scheme", "argon2id");
                put(&mut t, "memory_kib", int(memory_kib));
                put(&mut t, "iterations", int(iterations));
                put(&mut t, "parallelism", int(parallelism));
            }
        }
        put(&mut root, "passwords", t);
    }
    if let Some(d) = &p.disconnect {
        let mut t = Table::new();
        says(&mut t, d.says.as_ref());
        put(&mut t, "tokens", fate(d.tokens));
        if let Some(w) = d.derived_data_within {
            put(&mut t, "derived_data_within", dur(w));
        }
        if !d.derived_kinds.is_empty() {
            let kinds: Vec<Value> = d.derived_kinds.iter().cloned().map(Value::String).collect();
            put(&mut t, "derived_kinds", kinds);
        }
        put(&mut root, "disconnect", t);
    }
    if let Some(a) = &p.account_deletion {
        let mut t = Table::new();
        says(&mut t, a.says.as_ref());
        put(&mut t, "erased_within", dur(a.erased_within));
        if let Some(k) = a.kept_for_export {
            put(&mut t, "kept_for_export", dur(k));
        }
        if let Some(b) = a.backups_purged_within {
            put(&mut t, "backups_purged_within", dur(b));
        }
        put(&mut t, "tokens", fate(a.tokens));
        put(&mut root, "account_deletion", t);
    }
    if let Some(l) = &p.logs {
        let mut t = Table::new();
        says(&mut t, l.says.as_ref());
        put(&mut t, "kept_for", dur(l.kept_for));
        put(&mut root, "logs", t);
    }
    if let Some(l) = &p.lockout {
        let mut t = Table::new();
        says(&mut t, l.says.as_ref());
        let c = &l.throttle;
        put(&mut t, "max_failures", int(c.max_failures));
        put(
            &mut t,
            "max_failures_per_address",
            int(c.max_failures_per_address),
        );
        put(
            &mut t,
            "max_failures_per_account",
            int(c.max_failures_per_account),
        );
        put(&mut t, "window", dur(c.window));
        put(&mut t, "lockout", dur(c.base_lockout));
        put(&mut t, "max_lockout", dur(c.max_lockout));
        put(&mut root, "lockout", t);
    }
    if let Some(e) = &p.export {
        let mut t = Table::new();
        says(&mut t, e.says.as_ref());
        let formats: Vec<Value> = e
            .formats
            .iter()
            .map(|f| Value::String(f.as_str().to_owned()))
            .collect();
        put(&mut t, "formats", formats);
        put(&mut root, "export", t);
    }
    root.to_string()
}
