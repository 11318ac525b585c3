//! A small but real web backend on axum 0.8 that keeps its users' provider tokens in credvault,
//! on the application's own SQLite pool and its own tables.
//!
//! What it shows, route by route:
//!
//! | route | what happens |
//! |---|---|
//! | `POST /signup` `{email, password, github_token?, referred_by?}` | the password hashed under the policy; the user row and (if given) the user's first token in one transaction of the application's: both commit or neither |
//! | `POST /login` `{email, password}` | one `LoginGuard` call: throttle (shared by every server, in the same database), verify or dummy verify, count, upgrade; a session |
//! | `PUT /connections/{provider}` `{access_token, refresh_token?, expires_in?, account?, scopes?}` | the token sealed for this user (the tenant) |
//! | `GET /connections` | what is connected: metadata only, nothing decrypted |
//! | `POST /connections/{provider}/refresh` | the token refreshed once, even among many servers |
//! | `DELETE /connections/{provider}` | revoked with the provider, then deleted at once |
//! | `GET /export` | the user's data as JSON |
//! | `DELETE /account` | the user row and sessions gone; the vault tenant deleted (kept for the grace period, then shredded by the purge) |
//!
//! Errors map to HTTP in one `match` (`error_response`). Authentication is a bearer session
//! token from `/login`; the tenant id is the user's id.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use credvault::backend::{SqlThrottle, SqliteBackend};
use credvault::password::{LoginGuard, LoginOutcome, ThrottleConfig};
use credvault::sqlx::{self, SqlitePool};
use credvault::store::{OAuthToken, Revoker, Tenant, Vault, VaultConfig};
use credvault::{PasswordPolicy, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// What the application shares between requests.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The application's own pool; the vault's tables live in the same database.
    pub pool: SqlitePool,
    /// The vault, built on that pool.
    pub vault: Vault,
    /// Login: the password policy and the throttle every server shares.
    pub guard: Arc<LoginGuard<SqlThrottle>>,
    /// Revokes tokens with their provider on disconnect.
    pub revoker: Arc<dyn Revoker>,
}

/// The application's own migrations (a real application keeps them in `migrations/`).
const APP_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        email TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        -- checked at commit: a signup naming an unknown referrer fails as a whole
        referred_by INTEGER REFERENCES users (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED)",
    "CREATE TABLE IF NOT EXISTS sessions (
        token TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id))",
];

/// Opens the application's database at `db_path` (created if missing), runs its migrations,
/// then opens the vault on the same pool with its keys kept in `keys_dir`.
///
/// # Errors
///
/// Database and vault errors (a vault whose key file is missing is an error, never a new vault).
pub async fn open_state(
    db_path: &std::path::Path,
    keys_dir: &std::path::Path,
    policy: PasswordPolicy,
    revoker: Arc<dyn Revoker>,
) -> Result<AppState, Box<dyn std::error::Error + Send + Sync>> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db_path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .foreign_keys(true);
    let pool = SqlitePool::connect_with(options).await?;
    for statement in APP_SCHEMA {
        sqlx::query(*statement).execute(&pool).await?;
    }
    let backend = SqliteBackend::from_pool(pool.clone());
    let vault = Vault::open_or_init_local_on(
        backend,
        &keys_dir.join("credvault-keys.json"),
        &keys_dir.join("tenant-keys"),
        VaultConfig::default(),
    )
    .await?;
    // Shared by every server on this database; accounts and addresses stored as keyed hashes.
    let throttle = vault.login_throttle(ThrottleConfig::default()).await?;
    Ok(AppState {
        pool,
        vault,
        guard: Arc::new(LoginGuard::new(policy, throttle)),
        revoker,
    })
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/signup", post(signup))
        .route("/login", post(login))
        .route("/connections", get(list_connections))
        .route("/connections/{provider}", put(connect).delete(disconnect))
        .route("/connections/{provider}/refresh", post(refresh))
        .route("/export", get(export))
        .route("/account", delete(delete_account))
        .with_state(state)
}

/// An error answered as JSON `{"error": ...}` with its status.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// Every credvault error to HTTP in one match.
fn error_response(e: impl Into<credvault::Error>) -> ApiError {
    let e: credvault::Error = e.into();
    let status = if e.is_not_found() {
        StatusCode::NOT_FOUND
    } else if e.is_conflict() {
        StatusCode::CONFLICT
    } else if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    // credvault's messages never hold secrets; a real service would still log, not return, 5xx details.
    ApiError(status, e.to_string())
}

fn db_error(e: sqlx::Error) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: SecretString,
}

#[derive(Deserialize)]
struct Signup {
    email: String,
    password: SecretString,
    /// A GitHub token the signup form already obtained (stored with the user, or not at all).
    github_token: Option<SecretString>,
    /// The user who referred this one.
    referred_by: Option<i64>,
}

async fn signup(
    State(state): State<AppState>,
    Json(body): Json<Signup>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let hash = state
        .guard
        .policy()
        .hash_async(body.password)
        .await
        .map_err(error_response)?;
    // One transaction of the application's: the user row and the vault's record (with its
    // audit row) commit together, or neither does.
    let mut tx = state.pool.begin().await.map_err(db_error)?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO users (email, password_hash, referred_by) VALUES (?, ?, ?) RETURNING id",
    )
    .bind(&body.email)
    .bind(&hash)
    .bind(body.referred_by)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            ApiError(StatusCode::CONFLICT, "email already registered".into())
        }
        e => db_error(e),
    })?;
    if let Some(access_token) = body.github_token {
        let tenant = state
            .vault
            .tenant(&format!("user-{id}"))
            .map_err(error_response)?
            .with_actor(format!("user:{id}"))
            .map_err(error_response)?;
        tenant
            .put_in(
                &mut *tx,
                "github",
                &OAuthToken::bearer("github", access_token),
            )
            .await
            .map_err(error_response)?;
    }
    tx.commit().await.map_err(|e| match e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            ApiError(StatusCode::BAD_REQUEST, "unknown referrer".into())
        }
        e => db_error(e),
    })?;
    Ok((StatusCode::CREATED, Json(json!({ "user": id }))))
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Json(body): Json<Credentials>,
) -> Result<Response, ApiError> {
    let user: Option<(i64, String)> =
        sqlx::query_as("SELECT id, password_hash FROM users WHERE email = ?")
            .bind(&body.email)
            .fetch_optional(&state.pool)
            .await
            .map_err(db_error)?;
    let address: IpAddr = peer.ip(); // behind a proxy: the address it forwards, validated
    let outcome = state
        .guard
        .login(
            &body.email,
            address,
            body.password,
            user.as_ref().map(|u| u.1.as_str()),
        )
        .await
        .map_err(|e| ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    match (outcome, user) {
        (LoginOutcome::Success { new_hash }, Some((id, _))) => {
            if let Some(new_hash) = new_hash {
                sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
                    .bind(new_hash)
                    .bind(id)
                    .execute(&state.pool)
                    .await
                    .map_err(db_error)?;
            }
            let token = session_token();
            sqlx::query("INSERT INTO sessions (token, user_id) VALUES (?, ?)")
                .bind(&token)
                .bind(id)
                .execute(&state.pool)
                .await
                .map_err(db_error)?;
            Ok(Json(json!({ "session": token })).into_response())
        }
        (LoginOutcome::Locked { retry_after }, _) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
            let body = Json(json!({ "error": "too many attempts, try again later" }));
            Ok((StatusCode::TOO_MANY_REQUESTS, headers, body).into_response())
        }
        _ => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "wrong email or password".into(),
        )),
    }
}

fn session_token() -> String {
    use std::fmt::Write as _;
    let bytes: [u8; 32] = rand::random();
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The signed-in user, from `Authorization: Bearer <session>`.
#[derive(Debug)]
pub struct User {
    id: i64,
    /// The user's handle on the vault: only this user's records are reachable through it.
    tenant: Tenant,
}

impl<S> FromRequestParts<S> for User
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let unauthorized = || ApiError(StatusCode::UNAUTHORIZED, "sign in first".into());
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(unauthorized)?;
        let id: i64 = sqlx::query_scalar("SELECT user_id FROM sessions WHERE token = ?")
            .bind(token)
            .fetch_optional(&state.pool)
            .await
            .map_err(db_error)?
            .ok_or_else(unauthorized)?;
        let tenant = state
            .vault
            .tenant(&format!("user-{id}"))
            .map_err(error_response)?
            .with_actor(format!("user:{id}"))
            .map_err(error_response)?;
        Ok(Self { id, tenant })
    }
}

/// A token as the provider's token endpoint returned it.
#[derive(Deserialize)]
struct TokenBody {
    access_token: SecretString,
    refresh_token: Option<SecretString>,
    expires_in: Option<i64>,
    account: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

async fn connect(
    user: User,
    Path(provider): Path<String>,
    Json(body): Json<TokenBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let token = OAuthToken {
        refresh_token: body.refresh_token,
        expires_at: body.expires_in.map(|s| now().saturating_add(s)),
        account: body.account,
        scopes: body.scopes,
        ..OAuthToken::bearer(provider.clone(), body.access_token)
    };
    let version = user
        .tenant
        .put(&provider, &token)
        .await
        .map_err(error_response)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "provider": provider, "version": version })),
    ))
}

/// What `GET /connections` shows of a connection: never a secret.
#[derive(Serialize)]
struct Connection {
    name: String,
    provider: Option<String>,
    version: i64,
    expires_at: Option<i64>,
    metadata: serde_json::Value,
}

async fn list_connections(user: User) -> Result<Json<Vec<Connection>>, ApiError> {
    let records = user
        .tenant
        .list(Some("oauth_token"))
        .await
        .or_else(|e| {
            if e.is_not_found() {
                Ok(credvault::store::Listing::default())
            } else {
                Err(e)
            }
        })
        .map_err(error_response)?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| Connection {
                name: r.name,
                provider: r.provider,
                version: r.version,
                expires_at: r.expires_at,
                metadata: r.metadata,
            })
            .collect(),
    ))
}

async fn refresh(
    user: User,
    Path(provider): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Refreshed if it expires within 5 minutes; among all servers, one refresh runs.
    let fresh = user
        .tenant
        .refresh(&provider, Duration::from_secs(300), |old| async move {
            // Here the provider's token endpoint is called with old.refresh_token (this
            // example has no provider to call: it makes the new token up).
            Ok::<_, String>(OAuthToken {
                access_token: SecretString::from(format!("refreshed-{}", session_token())),
                expires_at: Some(now() + 3600),
                ..old
            })
        })
        .await
        .map_err(error_response)?;
    Ok(Json(
        json!({ "version": fresh.version, "expires_at": fresh.value.expires_at }),
    ))
}

async fn disconnect(
    State(state): State<AppState>,
    user: User,
    Path(provider): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let report = user
        .tenant
        .disconnect(&provider, Some(state.revoker.as_ref()))
        .await
        .map_err(error_response)?;
    if report.deleted == 0 {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{provider} is not connected"),
        ));
    }
    Ok(Json(
        json!({ "deleted": report.deleted, "revoked": report.revoked }),
    ))
}

async fn export(user: User) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    user.tenant
        .export_json(&mut out)
        .await
        .map_err(error_response)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

async fn delete_account(State(state): State<AppState>, user: User) -> Result<StatusCode, ApiError> {
    let mut tx = state.pool.begin().await.map_err(db_error)?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(user.id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(user.id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    let actor = format!("user:{}", user.id);
    let tenant = user.tenant.id().as_str();
    // Marked deleted in the same transaction as the user row...
    state
        .vault
        .delete_tenant_in(&mut *tx, tenant, &actor)
        .await
        .map_err(error_response)?;
    tx.commit().await.map_err(db_error)?;
    // ...then, once committed, its OAuth tokens revoked with the providers and removed
    // (idempotent; the purge would do it otherwise).
    state
        .vault
        .delete_tenant_with(tenant, &actor, state.revoker.as_ref())
        .await
        .map_err(error_response)?;
    Ok(StatusCode::NO_CONTENT)
}
