//! `credvault vault rotate|reencrypt|destroy-kek|min-dek-version`: key rotation over a vault.
//! The library does the work (`Vault::rotate_dek`, `rewrap_deks`, `reencrypt`, ...); this
//! shows progress, prints the counts and picks the exit status.

use std::path::{Path, PathBuf};

use credvault::store::{ReencryptOptions, ReencryptReport, RewrapReport, StoreError, Vault};
use credvault::{KeyVersion, Keyring};
use serde::Serialize;
use serde_json::json;

use crate::cli::{DEFAULT_ACTOR, DEFAULT_KEYS};
use crate::error::CliError;
use crate::output::Output;
use crate::progress::ProgressDisplay;

/// `vault rotate`: one tenant's data key (`tenant`), every tenant's, or (`kek`) a rewrap of
/// every data key under the primary KEK.
pub(crate) async fn rotate(
    vault: &Vault,
    tenant: Option<&str>,
    kek: bool,
    out: Output,
) -> Result<(), CliError> {
    match (tenant, kek) {
        (Some(tenant), _) => {
            let version = vault.rotate_dek(tenant).await?;
            out.print(
                &json!({ "tenant": tenant, "dek_version": version.get() }),
                || {
                    format!(
                        "tenant {tenant} now seals with data key {version}; \
                         `credvault vault reencrypt` moves its records\n"
                    )
                },
            )
        }
        (None, false) => {
            let mut display = ProgressDisplay::stderr("rotate", "tenants");
            let rotated = vault.rotate_all_deks(|p| display.update(p)).await;
            display.finish();
            let report = rotated?;
            out.print(&report, || {
                let mut text = format!(
                    "{} tenants have a new data key; `credvault vault reencrypt` moves their \
                     records\n",
                    report.rotated
                );
                for row in &report.unreadable {
                    text.push_str(&format!("unreadable, skipped: {row}\n"));
                }
                text
            })?;
            if report.skipped > 0 {
                return Err(CliError::check_failed(format!(
                    "{} rows could not be read: those tenants were not rotated",
                    report.skipped
                ))
                .hint("inspect the rows named `unreadable` in the database, then run the command again"));
            }
            Ok(())
        }
        (None, true) => rewrap(vault, out).await,
    }
}

async fn rewrap(vault: &Vault, out: Output) -> Result<(), CliError> {
    let mut display = ProgressDisplay::stderr("rotate --kek", "data keys");
    let report = vault.rewrap_deks(|p| display.update(p)).await;
    display.finish();
    let report = report?;
    print_rewrap(&report, out)?;
    if !report.unreadable.is_empty() {
        return Err(CliError::check_failed(format!(
            "{} data key rows could not be read: not rewrapped, and no KEK version can be \
             destroyed while they are there",
            report.unreadable.len()
        ))
        .hint("inspect the rows named `unreadable` in the database, then run the command again"));
    }
    if !report.failures.is_empty() {
        return Err(CliError::check_failed(format!(
            "{} data keys could not be rewrapped",
            report.failures.len()
        ))
        .hint(
            "check --keys holds every KEK version the data keys were wrapped under, then run \
             the command again",
        ));
    }
    Ok(())
}

fn print_rewrap(report: &RewrapReport, out: Output) -> Result<(), CliError> {
    /// The report, and how many failed.
    #[derive(Serialize)]
    struct Shown<'a> {
        #[serde(flatten)]
        report: &'a RewrapReport,
        failed: usize,
    }
    let shown = Shown {
        report,
        failed: report.failures.len(),
    };
    out.print(&shown, || {
        let mut text = format!(
            "rewrapped {} data keys under the primary KEK ({} already were, {} failed)\n",
            report.rewrapped,
            report.already_current,
            report.failures.len()
        );
        for f in &report.failures {
            text.push_str(&format!(
                "failed: tenant {} data key {}: {}\n",
                f.tenant, f.dek_version, f.reason
            ));
        }
        for row in &report.unreadable {
            text.push_str(&format!("unreadable, skipped: {row}\n"));
        }
        text
    })
}

/// `vault reencrypt`: exit 0 only when nothing failed and nothing remains.
pub(crate) async fn reencrypt(
    vault: &Vault,
    batch_size: u32,
    keep_retired_keys: bool,
    actor: &str,
    out: Output,
) -> Result<(), CliError> {
    let mut options = ReencryptOptions {
        batch_size,
        destroy_unused: !keep_retired_keys,
        ..ReencryptOptions::default()
    };
    // Without --actor the audit log names the library's re-encryption job.
    if actor != DEFAULT_ACTOR {
        options.actor = actor.to_owned();
    }
    let mut display = ProgressDisplay::stderr("reencrypt", "records");
    let report = vault.reencrypt(&options, |p| display.update(p)).await;
    display.finish();
    let report = report?;
    print_reencrypt(&report, out)?;
    if report.failed > 0 || report.remaining > 0 {
        return Err(CliError::check_failed(format!(
            "{} records could not be re-encrypted; {} remain under an old data key",
            report.failed, report.remaining
        ))
        .hint(
            "records listed as failed need a key that is destroyed or below the tenant's \
             minimum: delete or put them again; for the rest run the command again",
        ));
    }
    Ok(())
}

fn print_reencrypt(report: &ReencryptReport, out: Output) -> Result<(), CliError> {
    /// The report, and whether failures were counted but not listed.
    #[derive(Serialize)]
    struct Shown<'a> {
        #[serde(flatten)]
        report: &'a ReencryptReport,
        failures_truncated: bool,
    }
    let truncated = report.failed > u64::try_from(report.failures.len()).unwrap_or(u64::MAX);
    let shown = Shown {
        report,
        failures_truncated: truncated,
    };
    out.print(&shown, || {
        let mut text = format!(
            "resealed {} of {} records in {} batches; changed meanwhile {}, failed {}, \
                 remaining {}; destroyed {} retired data keys\n",
            report.resealed,
            report.total,
            report.batches,
            report.changed,
            report.failed,
            report.remaining,
            report.destroyed_deks
        );
        for f in &report.failures {
            text.push_str(&format!(
                "failed: {} {} \"{}\": {}\n",
                crate::vault::shown(f.key.tenant.as_str()),
                crate::vault::shown(f.key.kind.as_str()),
                crate::vault::shown(f.key.name.as_str()),
                crate::vault::shown(&f.reason)
            ));
        }
        for row in &report.unreadable {
            text.push_str(&format!("skipped: {row}\n"));
        }
        if truncated {
            text.push_str(&format!(
                "(the first {} failures are listed)\n",
                report.failures.len()
            ));
        }
        text
    })
}

/// `vault destroy-kek`: the vault checks no data key needs the version; the key file is
/// rewritten atomically.
pub(crate) async fn destroy_kek(
    vault: &Vault,
    keys: Option<&Path>,
    version: u32,
    yes: bool,
    out: Output,
) -> Result<(), CliError> {
    let version = KeyVersion::new(version);
    if let Some(kek) = crate::vault::external_kek(keys)? {
        // Every check first (data keys in use, quiet period, primary, unknown version).
        vault
            .destroy_kek_with(version, |v| kek.destroy(v, true))
            .await
            .map_err(in_use)?;
        if !yes {
            return Err(CliError::new(format!(
                "destroying KEK {version} is irreversible: what it wrapped can never be \
                 opened again"
            ))
            .hint("no data key in this vault needs it; add --yes to destroy it"));
        }
        vault
            .destroy_kek_with(version, |v| kek.destroy(v, false))
            .await
            .map_err(in_use)?;
        let place = kek.describe();
        return out.print(
            &json!({ "destroyed": version.get(), "keys": place }),
            || format!("KEK {version} destroyed in {place}\n"),
        );
    }
    let path = key_file(keys)?;
    let mut ring = Keyring::load(&path)?;
    if !yes {
        // Every check first (data keys in use, primary, unknown version), on a copy.
        vault
            .destroy_kek(&mut ring.clone(), version)
            .await
            .map_err(in_use)?;
        return Err(CliError::new(format!(
            "destroying KEK {version} is irreversible: what it wrapped can never be \
             opened again"
        ))
        .hint("no data key in this vault needs it; add --yes to destroy it"));
    }
    vault
        .destroy_kek(&mut ring, version)
        .await
        .map_err(in_use)?;
    ring.save(&path)?;
    out.print(
        &json!({ "destroyed": version.get(), "keys": path.display().to_string() }),
        || {
            format!(
                "KEK {version} destroyed in {}; give this key file to every process \
                 using the vault\n",
                path.display()
            )
        },
    )
}

/// A KEK still needed by data keys is a failed check (exit 1), with what to run first.
fn in_use(e: StoreError) -> CliError {
    match e {
        StoreError::KeyInUse { .. } => CliError::from(e)
            .failed_check()
            .hint("run `credvault vault rotate --kek` first: it rewraps them under the primary"),
        StoreError::KeyRecentlyUsed { .. } => CliError::from(e).failed_check().hint(
            "give every process the rotated key file and try again after the quiet period \
             (--quiet-period SECONDS)",
        ),
        e => e.into(),
    }
}

/// The key file to rewrite: `--keys`, else the default file; never `$CREDVAULT_KEYS`.
fn key_file(keys: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(path) = keys {
        return Ok(path.to_path_buf());
    }
    if std::env::var_os(credvault::keys::file::ENV_VAR).is_some() {
        return Err(CliError::new(format!(
            "the keys come from ${}, which this command cannot rewrite",
            credvault::keys::file::ENV_VAR
        ))
        .hint("pass --keys FILE: the key file the variable's value was taken from"));
    }
    Ok(PathBuf::from(DEFAULT_KEYS))
}

/// `vault min-dek-version`.
pub(crate) async fn min_dek_version(
    vault: &Vault,
    tenant: &str,
    version: u32,
    out: Output,
) -> Result<(), CliError> {
    let version = KeyVersion::new(version);
    vault.set_min_dek_version(tenant, version).await?;
    out.print(
        &json!({ "tenant": tenant, "min_dek_version": version.get() }),
        || {
            format!(
                "tenant {tenant}: records sealed with a data key below {version} no longer \
                 open\n"
            )
        },
    )
}
