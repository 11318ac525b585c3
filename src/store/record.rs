//! Typed records: what a vault stores, and the trait any user type implements to be stored.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::secret::SecretString;

/// A type the vault can store: serialised with serde (secret fields through
/// [`secret::expose`](crate::secret::expose)), sealed whole, with non-secret metadata kept in
/// clear beside it for listing and admin screens.
///
/// ```
/// use credvault::store::SecretKind;
/// use credvault::SecretString;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct WebhookSecret {
///     endpoint: String,
///     #[serde(with = "credvault::secret::expose")]
///     signing_secret: SecretString,
/// }
///
/// impl SecretKind for WebhookSecret {
///     const KIND: &'static str = "webhook_secret";
///     fn metadata(&self) -> serde_json::Value {
///         serde_json::json!({ "endpoint": self.endpoint })
///     }
/// }
/// ```
pub trait SecretKind: Serialize + DeserializeOwned + Send + Sync {
    /// The record kind (a valid [`RecordKind`](crate::RecordKind): lowercase letters, digits,
    /// `_ - .`). Part of every record's key and of the associated data that binds it.
    const KIND: &'static str;

    /// Non-secret metadata stored in clear (provider, account name, scopes...). Never put a
    /// secret here. Default: none.
    fn metadata(&self) -> Value {
        Value::Object(serde_json::Map::new())
    }

    /// The provider this record belongs to, which [`disconnect`](crate::store::Tenant::disconnect)
    /// matches. Default: none.
    fn provider(&self) -> Option<&str> {
        None
    }

    /// When the credential expires (Unix seconds), if it does. Stored in clear.
    fn expires_at(&self) -> Option<i64> {
        None
    }
}

/// An OAuth 2.0 token set from a provider.
///
/// `Debug` redacts the tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthToken {
    /// The provider (`github`, `google`...).
    pub provider: String,
    /// The access token.
    #[serde(with = "crate::secret::expose")]
    pub access_token: SecretString,
    /// The refresh token, if the provider issued one.
    #[serde(
        with = "crate::secret::expose",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub refresh_token: Option<SecretString>,
    /// The token type, usually `Bearer`.
    pub token_type: String,
    /// Granted scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the access token expires (Unix seconds), if known.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// The provider account's display name (`octocat`), shown beside the connection.
    #[serde(default)]
    pub account: Option<String>,
}

impl OAuthToken {
    /// A bearer token for `provider` with no refresh token, scopes, expiry or account.
    pub fn bearer(provider: impl Into<String>, access_token: SecretString) -> Self {
        Self {
            provider: provider.into(),
            access_token,
            refresh_token: None,
            token_type: "Bearer".to_owned(),
            scopes: Vec::new(),
            expires_at: None,
            account: None,
        }
    }
}

impl SecretKind for OAuthToken {
    const KIND: &'static str = "oauth_token";

    fn metadata(&self) -> Value {
        json!({
            "provider": self.provider,
            "account": self.account,
            "scopes": self.scopes,
            "token_type": self.token_type,
            "has_refresh_token": self.refresh_token.is_some(),
        })
    }

    fn provider(&self) -> Option<&str> {
        Some(&self.provider)
    }

    fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
}

/// An API key for a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The provider (`stripe`, `openai`...).
    pub provider: String,
    /// The key.
    #[serde(with = "crate::secret::expose")]
    pub key: SecretString,
    /// A label the user gave it.
    #[serde(default)]
    pub label: Option<String>,
}

impl SecretKind for ApiKey {
    const KIND: &'static str = "api_key";

    fn metadata(&self) -> Value {
        json!({ "provider": self.provider, "label": self.label })
    }

    fn provider(&self) -> Option<&str> {
        Some(&self.provider)
    }
}

/// One cookie of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cookie {
    /// The cookie's name (not secret).
    pub name: String,
    /// Its value.
    #[serde(with = "crate::secret::expose")]
    pub value: SecretString,
    /// The domain it is sent to.
    pub domain: String,
    /// The path it is sent to.
    #[serde(default = "root_path")]
    pub path: String,
    /// When it expires (Unix seconds), if it does.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

fn root_path() -> String {
    "/".to_owned()
}

/// Session cookies for a site, captured on the user's behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCookies {
    /// The provider or site (`linkedin`).
    pub provider: String,
    /// The cookies.
    pub cookies: Vec<Cookie>,
}

impl SecretKind for SessionCookies {
    const KIND: &'static str = "session_cookies";

    fn metadata(&self) -> Value {
        let mut domains: Vec<&str> = self.cookies.iter().map(|c| c.domain.as_str()).collect();
        domains.sort_unstable();
        domains.dedup();
        json!({
            "provider": self.provider,
            "domains": domains,
            "cookie_names": self.cookies.iter().map(|c| &c.name).collect::<Vec<_>>(),
        })
    }

    fn provider(&self) -> Option<&str> {
        Some(&self.provider)
    }

    /// The earliest cookie expiry.
    fn expires_at(&self) -> Option<i64> {
        self.cookies.iter().filter_map(|c| c.expires_at).min()
    }
}

/// Data the application derives from a provider (board ids, cached analytics). Sealed like
/// any record; on [`disconnect`](crate::store::Tenant::disconnect) it is not deleted at once
/// but scheduled for the purge job within the vault's derived-data retention (24 hours by
/// default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DerivedData {
    /// The provider it was derived from.
    pub provider: String,
    /// The data.
    pub value: Value,
}

impl SecretKind for DerivedData {
    const KIND: &'static str = "derived";

    fn metadata(&self) -> Value {
        json!({ "provider": self.provider })
    }

    fn provider(&self) -> Option<&str> {
        Some(&self.provider)
    }
}
