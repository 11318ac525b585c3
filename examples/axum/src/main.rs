//! `cargo run -p credvault-example-axum -- [DIR]`: serves the example backend on
//! 127.0.0.1:3000 with its database in `DIR/app.db` and the vault's keys in `DIR/keys/`
//! (default DIR: `./axum-example-data`). Try:
//!
//! ```sh
//! curl -s localhost:3000/signup -H 'content-type: application/json' -d '{"email":"a@example.com","password":"correct horse battery"}'
//! curl -s localhost:3000/login  -H 'content-type: application/json' -d '{"email":"a@example.com","password":"correct horse battery"}'
//! curl -s -X PUT localhost:3000/connections/github -H "authorization: Bearer $SESSION" \
//!      -H 'content-type: application/json' -d '{"access_token":"gho_example","expires_in":3600}'
//! curl -s localhost:3000/connections -H "authorization: Bearer $SESSION"
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use credvault::PasswordPolicy;
use credvault::backend::BoxFuture;
use credvault::store::{RevocationRequest, RevokeError, Revoker};

/// Where a real application calls the provider's revocation endpoint (RFC 7009) with
/// `request.oauth_token()`; this example has no provider to call, so it says what it would do.
#[derive(Debug)]
struct ProviderRevoker;

impl Revoker for ProviderRevoker {
    fn revoke<'a>(&'a self, req: &'a RevocationRequest) -> BoxFuture<'a, Result<(), RevokeError>> {
        Box::pin(async move {
            eprintln!(
                "would revoke {} {:?} with {}",
                req.kind, req.name, req.provider
            );
            Ok(())
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("axum-example-data"), PathBuf::from);
    std::fs::create_dir_all(dir.join("keys"))?;
    let state = credvault_example_axum::open_state(
        &dir.join("app.db"),
        &dir.join("keys"),
        PasswordPolicy::bcrypt(12)?,
        Arc::new(ProviderRevoker),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    let app = credvault_example_axum::router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
