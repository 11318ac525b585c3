//! `credvault vault import-fernet`: a Python service's Fernet tokens, as JSON lines on stdin,
//! sealed into the vault. The library does the work (`Vault::import_fernet`); this reads the
//! lines, prints the counts and picks the exit status.

use std::io::{self, BufRead as _};
use std::path::Path;

use credvault::SecretString;
use credvault::store::{
    ApiKey, ImportReport, LegacyPayload, LegacyValue, MapError, OAuthToken, Progress, SecretKind,
    Vault,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::cli::{DEFAULT_ACTOR, ImportKind};
use crate::error::CliError;
use crate::output::Output;
use crate::progress::ProgressDisplay;

/// The command's arguments.
#[derive(Debug)]
pub(crate) struct Options<'a> {
    pub(crate) legacy_keys: &'a Path,
    pub(crate) kind: ImportKind,
    pub(crate) provider: Option<&'a str>,
    pub(crate) allow_plaintext: bool,
    pub(crate) actor: &'a str,
}

/// One stdin line.
#[derive(Deserialize)]
struct Line {
    tenant: String,
    name: String,
    token: SecretString,
}

pub(crate) async fn run(vault: &Vault, options: &Options<'_>, out: Output) -> Result<(), CliError> {
    let keys = crate::fernet::load_keys(options.legacy_keys)?;
    let provider = options.provider;
    let report = match options.kind {
        ImportKind::OauthToken => {
            import_lines(vault, &keys, options, |plain, v| {
                Ok(OAuthToken::bearer(
                    provider.unwrap_or(v.name.as_str()),
                    plain,
                ))
            })
            .await?
        }
        ImportKind::ApiKey => {
            import_lines(vault, &keys, options, |plain, v| {
                Ok(ApiKey {
                    provider: provider.unwrap_or(v.name.as_str()).to_owned(),
                    key: plain,
                    label: None,
                })
            })
            .await?
        }
    };
    print_report(&report, out)?;
    if report.failed > 0 {
        return Err(CliError::check_failed(format!(
            "{} legacy values were not imported",
            report.failed
        ))
        .hint("fix them and run the import again: values already imported are skipped"));
    }
    Ok(())
}

/// Streams stdin line by line into the import.
async fn import_lines<R: SecretKind>(
    vault: &Vault,
    keys: &credvault::crypto::MultiFernet,
    options: &Options<'_>,
    map: impl FnMut(SecretString, &LegacyValue) -> Result<R, MapError>,
) -> Result<ImportReport, CliError> {
    let mut display = ProgressDisplay::stderr("import-fernet", "values");
    let mut progress = |p: Progress| display.update(p);
    let mut import = vault.import_fernet(keys, map);
    // Without --actor the audit log names the library's import job.
    if options.actor != DEFAULT_ACTOR {
        import = import.actor(options.actor);
    }
    let mut import = import
        .allow_plaintext(options.allow_plaintext)
        .progress(&mut progress);
    let mut stdin = io::stdin().lock();
    let mut buf = Zeroizing::new(Vec::new());
    let mut number = 0u64;
    loop {
        buf.clear();
        let read = stdin
            .read_until(b'\n', &mut buf)
            .map_err(|e| CliError::stdio("reading stdin", &e))?;
        if read == 0 {
            break;
        }
        number += 1;
        if buf.trim_ascii().is_empty() {
            continue;
        }
        let line = match serde_json::from_slice::<Line>(&buf) {
            Ok(line) => line,
            Err(e) => {
                import.push_unreadable(format!("line {number}: {}", line_error(&e)));
                continue;
            }
        };
        let value = LegacyValue::new(
            line.tenant,
            line.name,
            LegacyPayload::from_column(line.token),
        );
        if let Err(e) = import.push(value).await {
            let done = import.report();
            return Err(CliError::from(e).context(&format!(
                "import stopped at line {number} after {} values ({} imported)",
                done.seen(),
                done.imported
            )));
        }
    }
    let report = import.finish();
    display.finish();
    Ok(report)
}

/// What is wrong with a line, never what it holds.
fn line_error(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not valid json",
        _ => "not an object with string fields tenant, name and token",
    }
}

fn print_report(report: &ImportReport, out: Output) -> Result<(), CliError> {
    /// The report, and whether failures were counted but not listed.
    #[derive(Serialize)]
    struct Shown<'a> {
        #[serde(flatten)]
        report: &'a ImportReport,
        failures_truncated: bool,
    }
    let shown = Shown {
        report,
        failures_truncated: report.failures_truncated(),
    };
    out.print(&shown, || {
        let mut text = format!(
            "imported {}, already present {}, failed {}\n",
            report.imported, report.already_present, report.failed
        );
        for f in &report.failures {
            match (&f.tenant, &f.name) {
                (Some(tenant), Some(name)) => {
                    text.push_str(&format!("failed: {tenant} {name:?}: {}\n", f.reason));
                }
                _ => text.push_str(&format!("failed: {}\n", f.reason)),
            }
        }
        if report.failures_truncated() {
            text.push_str(&format!(
                "(the first {} failures are listed)\n",
                report.failures.len()
            ));
        }
        text
    })
}
