//! The axum example, started on 127.0.0.1 and driven over HTTP as a browser or a mobile app
//! would: signup, login with the shared throttle, connect/list/refresh/disconnect a provider
//! token, export, account deletion.

#![allow(clippy::unwrap_used, reason = "test")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use credvault::PasswordPolicy;
use credvault::backend::BoxFuture;
use credvault::password::Scheme;
use credvault::store::{RevocationRequest, RevokeError, Revoker};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Stands in for the provider's revocation endpoint (which cannot run here): records calls.
#[derive(Debug, Default)]
struct RecordingRevoker(Mutex<Vec<(String, String)>>);

impl Revoker for RecordingRevoker {
    fn revoke<'a>(&'a self, req: &'a RevocationRequest) -> BoxFuture<'a, Result<(), RevokeError>> {
        let token = req.oauth_token().map(|t| t.provider);
        self.0
            .lock()
            .unwrap()
            .push((req.provider.clone(), token.unwrap_or_default()));
        Box::pin(async { Ok(()) })
    }
}

struct App {
    base: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    revoker: Arc<RecordingRevoker>,
    state: credvault_example_axum::AppState,
}

async fn start() -> App {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    let revoker = Arc::new(RecordingRevoker::default());
    // Cost 4 keeps the test fast; the example's binary uses bcrypt 12.
    let policy =
        PasswordPolicy::allow_weak_parameters_for_tests(Scheme::Bcrypt { cost: 4 }).unwrap();
    let state = credvault_example_axum::open_state(
        &dir.path().join("app.db"),
        &dir.path().join("keys"),
        policy,
        revoker.clone(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = credvault_example_axum::router(state.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    App {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        dir,
        revoker,
        state,
    }
}

impl App {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        session: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(s) = session {
            req = req.bearer_auth(s);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn signup_and_login(&self, email: &str) -> String {
        let creds = json!({ "email": email, "password": "correct horse battery" });
        let (status, _) = self
            .send(reqwest::Method::POST, "/signup", None, Some(creds.clone()))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, body) = self
            .send(reqwest::Method::POST, "/login", None, Some(creds))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["session"].as_str().unwrap().to_owned()
    }
}

const ACCESS: &str = "gho_16C7e42F292c6912E7710c838347Ae178B4a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_connects_refreshes_exports_disconnects_and_leaves() {
    use reqwest::Method;
    let app = start().await;
    let alice = app.signup_and_login("alice@example.com").await;

    // The same e-mail twice is a conflict; a wrong password is a 401 that says nothing more.
    let creds = json!({ "email": "alice@example.com", "password": "x" });
    assert_eq!(
        app.send(Method::POST, "/signup", None, Some(creds.clone()))
            .await
            .0,
        StatusCode::CONFLICT
    );
    let (status, body) = app.send(Method::POST, "/login", None, Some(creds)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "wrong email or password");
    assert_eq!(
        app.send(Method::GET, "/connections", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Connect GitHub: sealed at rest, listed without its secret.
    let token = json!({ "access_token": ACCESS, "refresh_token": "ghr_refresh", "expires_in": 60,
                        "account": "octocat", "scopes": ["repo"] });
    let (status, body) = app
        .send(
            Method::PUT,
            "/connections/github",
            Some(&alice),
            Some(token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, list) = app
        .send(Method::GET, "/connections", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["name"], "github");
    assert_eq!(list[0]["metadata"]["account"], "octocat");
    assert!(
        !list.to_string().contains(ACCESS),
        "the list shows no secret: {list}"
    );
    let db = std::fs::read(app.dir.path().join("app.db")).unwrap();
    let wal = std::fs::read(app.dir.path().join("app.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(ACCESS.len()).any(|w| w == ACCESS.as_bytes()),
            "sealed at rest"
        );
    }

    // It expires within 5 minutes: refresh gives a new version.
    let (status, body) = app
        .send(
            Method::POST,
            "/connections/github/refresh",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["version"].as_i64().unwrap() > 1, "{body}");

    // Another user reaches none of it.
    let bob = app.signup_and_login("bob@example.com").await;
    assert_eq!(
        app.send(Method::GET, "/connections", Some(&bob), None)
            .await
            .1,
        json!([])
    );
    assert_eq!(
        app.send(Method::DELETE, "/connections/github", Some(&bob), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    // Export: the user's own data, refreshed token included.
    let (status, export) = app.send(Method::GET, "/export", Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(export.to_string().contains("refreshed-"), "{export}");
    assert_eq!(export["tenant"], "user-1");

    // Disconnect: revoked with the provider, then deleted.
    let (status, body) = app
        .send(Method::DELETE, "/connections/github", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({ "deleted": 1, "revoked": 1 }));
    assert_eq!(
        *app.revoker.0.lock().unwrap(),
        vec![("github".to_owned(), "github".to_owned())]
    );
    assert_eq!(
        app.send(Method::GET, "/connections", Some(&alice), None)
            .await
            .1,
        json!([])
    );

    // Leave: the session stops working and the vault tenant is deleted.
    assert_eq!(
        app.send(Method::DELETE, "/account", Some(&alice), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.send(Method::GET, "/connections", Some(&alice), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let tenant = app.state.vault.tenant("user-1").unwrap();
    let refused = tenant
        .put(
            "github",
            &credvault::store::OAuthToken::bearer("github", ACCESS.into()),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(credvault::store::StoreError::TenantDeleted { .. })
        ),
        "the tenant is deleted (restorable during the grace period): {refused:?}"
    );
    // A user who never stored anything can leave too.
    assert_eq!(
        app.send(Method::DELETE, "/account", Some(&bob), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_are_throttled_with_retry_after() {
    let app = start().await;
    app.signup_and_login("carol@example.com").await;
    let wrong = json!({ "email": "carol@example.com", "password": "guess" });
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..8 {
        let resp = app
            .http
            .post(format!("{}/login", app.base))
            .json(&wrong)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = resp.headers().get("retry-after").cloned();
        }
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        *statuses.last().unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    let secs: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
    assert!(secs >= 1);
    // Even the right password is refused while locked (and not checked).
    let right = json!({ "email": "carol@example.com", "password": "correct horse battery" });
    let (status, _) = app
        .send(reqwest::Method::POST, "/login", None, Some(right))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// Rows in the vault's tables, read on the application's own pool.
async fn vault_rows(app: &App) -> (i64, i64) {
    let secrets = credvault::sqlx::query_scalar("SELECT COUNT(*) FROM credvault_secrets")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    let audit = credvault::sqlx::query_scalar("SELECT COUNT(*) FROM credvault_audit")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    (secrets, audit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_stores_its_token_with_the_user_row_or_not_at_all() {
    use reqwest::Method;
    let app = start().await;
    let signup = |email: &str, referred_by: Option<i64>| {
        json!({ "email": email, "password": "correct horse battery",
                "github_token": ACCESS, "referred_by": referred_by })
    };

    // Commit: the user row and the token (with its audit row) together.
    let (status, body) = app
        .send(
            Method::POST,
            "/signup",
            None,
            Some(signup("dave@example.com", None)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let creds = json!({ "email": "dave@example.com", "password": "correct horse battery" });
    let (_, login) = app.send(Method::POST, "/login", None, Some(creds)).await;
    let dave = login["session"].as_str().unwrap().to_owned();
    let (_, list) = app
        .send(Method::GET, "/connections", Some(&dave), None)
        .await;
    assert_eq!(list[0]["name"], "github", "{list}");
    let before = vault_rows(&app).await;
    assert_eq!(before.0, 1);

    // Rollback: an unknown referrer fails the commit, and the token goes with the user row.
    let (status, body) = app
        .send(
            Method::POST,
            "/signup",
            None,
            Some(signup("erin@example.com", Some(999))),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        vault_rows(&app).await,
        before,
        "no vault record or audit row is left"
    );
    let users: i64 = credvault::sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(users, 1);

    // Leaving: the deletion commits with the user row, then the token is revoked and removed.
    assert_eq!(
        app.send(Method::DELETE, "/account", Some(&dave), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        *app.revoker.0.lock().unwrap(),
        vec![("github".to_owned(), "github".to_owned())]
    );
    assert_eq!(vault_rows(&app).await.0, 0, "the token is gone at once");
}
