//! `credvault vault report`: the library's rotation report (`Vault::key_report`) as a table
//! or JSON; exit 1 when it needs attention, so it serves as a cron check.

use credvault::store::{DAY, DekState, KeyReport, RotationPolicy, Vault};

use crate::error::CliError;
use crate::output::Output;

pub(crate) async fn run(
    vault: &Vault,
    dek_max_age_days: u32,
    kek_max_age_days: u32,
    out: Output,
) -> Result<(), CliError> {
    let policy = RotationPolicy {
        dek_max_age: dek_max_age_days * DAY,
        kek_max_age: kek_max_age_days * DAY,
    };
    let report = vault.key_report(&policy).await?;
    out.print(&report, || table(&report))?;
    if report.is_clean() {
        return Ok(());
    }
    let (problems, hints) = attention(&report);
    Err(CliError::check_failed(format!("the key report needs attention: {problems}")).hint(hints))
}

fn table(r: &KeyReport) -> String {
    let mut text = format!(
        "KEK: {}\nshred secrets: {}\n\n",
        r.kek_provider, r.tenant_key_store
    );
    text.push_str(&format!(
        "{:<24} {:>7} {:<9} {:>3} {:>8} {:>8} {}\n",
        "TENANT", "VERSION", "STATE", "KEK", "AGE-DAYS", "RECORDS", "FLAGS"
    ));
    for d in &r.deks {
        let state = match d.state {
            DekState::Current => "current",
            DekState::Retired => "retired",
            DekState::Destroyed => "destroyed",
        };
        text.push_str(&format!(
            "{:<24} {:>7} {:<9} {:>3} {:>8} {:>8} {}\n",
            d.tenant.as_str(),
            d.version.get(),
            state,
            d.kek_version.get(),
            d.age.as_secs() / DAY.as_secs(),
            d.records,
            flags(&[(d.overdue, "overdue"), (d.below_minimum, "below-minimum")]),
        ));
    }
    text.push_str(&format!(
        "\n{:<11} {:<13} {:>8} {:>9} {:<16} {}\n",
        "KEK-VERSION", "STATE", "AGE-DAYS", "DATA-KEYS", "FINGERPRINT", "FLAGS"
    ));
    for k in &r.keks {
        text.push_str(&format!(
            "{:<11} {:<13} {:>8} {:>9} {:<16} {}\n",
            k.version.get(),
            k.state.as_deref().unwrap_or("not-in-keys"),
            k.age.map_or_else(
                || "-".to_owned(),
                |a| (a.as_secs() / DAY.as_secs()).to_string()
            ),
            k.wrapped_deks,
            k.fingerprint
                .as_deref()
                .map_or("-", |f| f.get(..16).unwrap_or(f)),
            flags(&[(k.overdue, "overdue")]),
        ));
    }
    text.push_str(&format!(
        "\nrecords {}; pending re-encryption {}; under a destroyed key {}; below minimum {}; \
         data keys under an unusable KEK {}; overdue keys {}\n",
        r.records,
        r.records_pending_reencryption,
        r.records_with_destroyed_key,
        r.records_below_minimum,
        r.deks_with_unusable_kek,
        r.overdue_keys
    ));
    let suites: Vec<String> = r
        .records_by_suite
        .iter()
        .map(|(suite, n)| format!("{suite} {n}"))
        .collect();
    text.push_str(&format!(
        "records per sealing suite: {}; to reseal {}\n",
        suites.join(", "),
        r.records_to_reseal
    ));
    for row in &r.unreadable {
        text.push_str(&format!("unreadable: {row}\n"));
    }
    text
}

fn flags(set: &[(bool, &str)]) -> String {
    let on: Vec<&str> = set.iter().filter(|(b, _)| *b).map(|(_, f)| *f).collect();
    if on.is_empty() {
        "-".to_owned()
    } else {
        on.join(",")
    }
}

/// What needs attention, and what to run for each.
fn attention(r: &KeyReport) -> (String, String) {
    let mut problems = Vec::new();
    let mut hints = Vec::new();
    if r.records_pending_reencryption > 0 {
        problems.push(format!(
            "{} records pending re-encryption",
            r.records_pending_reencryption
        ));
        hints.push("run `credvault vault reencrypt`");
    }
    let other_suite = r.records_to_reseal.saturating_sub(
        r.records_pending_reencryption + r.records_with_destroyed_key + r.records_below_minimum,
    );
    if other_suite > 0 {
        problems.push(format!(
            "{other_suite} records sealed with another suite than the vault's"
        ));
        hints.push("run `credvault vault reencrypt` with the vault's --sealing-suite");
    }
    if r.overdue_keys > 0 {
        problems.push(format!("{} keys overdue for rotation", r.overdue_keys));
        hints.push(
            "rotate data keys with `credvault vault rotate --all`, the KEK with `credvault key \
             rotate` then `credvault vault rotate --kek`",
        );
    }
    if r.records_with_destroyed_key > 0 || r.records_below_minimum > 0 {
        problems.push(format!(
            "{} records under a destroyed key, {} below their tenant's minimum",
            r.records_with_destroyed_key, r.records_below_minimum
        ));
        hints.push("those records cannot be opened: delete them or put them again");
    }
    if r.deks_with_unusable_kek > 0 {
        problems.push(format!(
            "{} data keys under a destroyed or forbidden KEK",
            r.deks_with_unusable_kek
        ));
        hints.push(
            "restore that KEK version from a backup of the key file, then run `credvault \
             vault rotate --kek`",
        );
    }
    if !r.unreadable.is_empty() {
        problems.push(format!(
            "{} rows could not be read (not in the figures)",
            r.unreadable.len()
        ));
        hints.push("inspect the rows named `unreadable:` in the database");
    }
    (problems.join(", "), hints.join("; "))
}
