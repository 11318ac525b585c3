//! What the vault reports through `tracing`: spans name the operation, tenant, kind and
//! record, and nothing that reaches a subscriber holds a secret, even when operations fail.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod common;

use credvault::backend::MemoryBackend;
use credvault::envelope::MemoryTenantKeys;
use credvault::store::{OAuthToken, Vault};
use credvault::{Keyring, SecretString};
use std::time::Duration;

#[test]
fn spans_name_the_operation_and_never_hold_a_secret() {
    let capture = common::Capture::default();
    let lines = capture.0.clone();
    tracing::subscriber::with_default(capture, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let keys = Keyring::generate().unwrap();
            let vault = Vault::builder(MemoryBackend::new(), keys, MemoryTenantKeys::new()).build();
            vault.migrate().await.unwrap();
            let acme = vault.tenant("acme").unwrap();
            let token = OAuthToken {
                refresh_token: Some(SecretString::from("ghr_TOPSECRET_REFRESH")),
                expires_at: Some(0),
                ..OAuthToken::bearer("github", SecretString::from("gho_TOPSECRET_ACCESS"))
            };
            let v = acme.put("github", &token).await.unwrap();
            acme.get::<OAuthToken>("github").await.unwrap();
            acme.update("github", &token, v + 5).await.unwrap_err();
            acme.refresh("github", Duration::from_secs(60), |_| async {
                Err::<OAuthToken, _>("provider refused")
            })
            .await
            .unwrap_err();
            let mut out = Vec::new();
            acme.export_json(&mut out).await.unwrap();
            acme.disconnect("github", None).await.unwrap();
            vault.purge().await.unwrap();
        });
    });
    let lines = lines.lock().unwrap();
    let all = lines.join("\n");
    for op in [
        "credvault.put",
        "credvault.get",
        "credvault.update",
        "credvault.refresh",
        "credvault.disconnect",
        "credvault.export_json",
        "credvault.purge",
    ] {
        assert!(all.contains(op), "no span for {op}:\n{all}");
    }
    assert!(
        all.contains("tenant=acme") && all.contains("name=\"github\""),
        "{all}"
    );
    assert!(
        all.contains("changed concurrently"),
        "the CAS failure is reported:\n{all}"
    );
    assert!(
        !all.contains("TOPSECRET"),
        "a secret reached tracing:\n{all}"
    );
}
