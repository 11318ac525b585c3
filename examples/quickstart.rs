//! The main job on the embedded default: a vault in one SQLite file.
//!
//! `cargo run --example quickstart [DIR]` (default: the current directory) creates or opens
//! the database `DIR/credvault-data/credvault.db`, with its key file
//! `DIR/credvault-keys/credvault-keys.json` and shred-secret directory
//! `DIR/credvault-keys/tenant-keys/` kept apart from it (back up `credvault-data/`, never
//! `credvault-keys/` with it; these are also the `credvault` command's defaults), stores an OAuth token for tenant `acme`, reads it back, refreshes it when
//! it is about to expire, lists and exports the tenant, and shows the audit log. Run it twice:
//! the second run finds the token the first one stored. Once the database holds a vault, the
//! keys are never created again: a run with the key file missing fails instead of starting a
//! second vault.

use std::path::PathBuf;
use std::time::Duration;

use credvault::SecretString;
use credvault::backend::AuditQuery;
use credvault::{OAuthToken, StoreError, Vault, VaultConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let (data, keys) = (dir.join("credvault-data"), dir.join("credvault-keys"));
    for d in [&data, &keys] {
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(builder.recursive(true), 0o700);
        builder.recursive(true).create(d)?;
    }
    let db = format!("sqlite://{}", data.join("credvault.db").display());
    let vault = Vault::open_or_init_local(
        &db,
        &keys.join("credvault-keys.json"),
        &keys.join("tenant-keys"),
        VaultConfig::default(),
    )
    .await?;
    println!("opened {db}");

    let acme = vault.tenant("acme")?.with_actor("quickstart")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    match acme.get::<OAuthToken>("github").await {
        Ok(found) => println!("found the token stored earlier (version {})", found.version),
        Err(StoreError::NotFound { .. } | StoreError::UnknownTenant(_)) => {
            let token = OAuthToken {
                refresh_token: Some(SecretString::from("ghr_example_refresh")),
                expires_at: Some(now + 60),
                account: Some("octocat".to_owned()),
                scopes: vec!["repo".to_owned()],
                ..OAuthToken::bearer("github", SecretString::from("gho_example_access"))
            };
            acme.put("github", &token).await?;
            println!("stored a github token for tenant acme");
        }
        Err(e) => return Err(e.into()),
    }

    // Refresh it if it expires within 5 minutes: one refresh runs even among many servers.
    let fresh = acme
        .refresh("github", Duration::from_secs(300), |old| async move {
            println!("refreshing (the provider's token endpoint would be called here)");
            Ok::<_, String>(OAuthToken {
                access_token: SecretString::from("gho_example_refreshed"),
                expires_at: Some(now + 3600),
                ..old
            })
        })
        .await?;
    println!(
        "token version {} expires at {:?}; Debug shows {:?}",
        fresh.version, fresh.value.expires_at, fresh.value.access_token
    );

    for info in acme.list(None).await? {
        println!(
            "  {} {} v{} metadata {}",
            info.kind, info.name, info.version, info.metadata
        );
    }
    let mut export = Vec::new();
    let report = acme.export_json(&mut export).await?;
    println!(
        "export: {} record(s), {} bytes of JSON",
        report.records,
        export.len()
    );

    let audit = vault.audit(&AuditQuery::default()).await?;
    println!(
        "audit log: {} row(s), the last: {:?}",
        audit.len(),
        audit.last().map(|r| &r.action)
    );
    Ok(())
}
