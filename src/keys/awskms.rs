//! A key provider whose KEK never leaves AWS KMS (or a KMS-compatible service).
//!
//! Each KEK version is one symmetric KMS key (`SYMMETRIC_DEFAULT`, `ENCRYPT_DECRYPT`), named in
//! the configuration by key id, ARN or alias: [`KmsConfig::keys`] maps versions to keys, and the
//! highest version is the primary. Wrapping a data key is one `Encrypt` call, unwrapping one
//! `Decrypt` call naming the key the version maps to; KMS checks the encryption context, which
//! carries the tenant and DEK version in clear (so CloudTrail shows which tenant's key was
//! opened) and a digest of the whole associated data.
//!
//! # Wrapped format
//!
//! The vault's sealed format v1 framing (ARCHITECTURE.md, "Sealed record"): the 8-byte header
//! names the KEK version, 12 random bytes stand where the nonce is, and the body is KMS's
//! ciphertext blob (itself AES-256-GCM inside KMS). The encryption context is
//!
//! | key | value |
//! |---|---|
//! | `credvault` | `dek v1` |
//! | `kek_version` | the KEK version, decimal |
//! | `purpose` | `dek`, `vault_key`, or `other` |
//! | `tenant`, `dek_version` | for a data key: its tenant id and version |
//! | `name` | for a vault key: its name |
//! | `aad` | base64url SHA-256 of header, nonce field and the context's encoding |
//!
//! so a wrapped key moved to another tenant, version or KEK version does not open.
//!
//! # Rotation
//!
//! Create a key ([`AwsKmsKeys::create_key`] or your infrastructure code), add it under the next
//! version to the configuration (and [`AwsKmsKeys::rotate_to`] it in a running process), then
//! [`Vault::rewrap_deks`](crate::Vault::rewrap_deks) moves every data key to it. Once
//! [`Vault::destroy_kek_with`](crate::Vault::destroy_kek_with) agrees that nothing needs the old
//! version, [`AwsKmsKeys::schedule_deletion`] schedules its deletion in KMS and the version can
//! leave the configuration (a version below the primary that is not configured is destroyed).
//!
//! # Errors
//!
//! Network failures, timeouts, throttling and KMS's internal errors are
//! [`KeyError::Unavailable`] (retry later); access denied, a disabled, missing or pending-deletion
//! key, bad credentials are [`KeyError::Denied`]; a ciphertext KMS refuses (altered bytes, wrong
//! context) is [`CryptoError::DecryptionFailed`]. Retries (3 attempts, bounded backoff) and
//! timeouts (connect 2 s, attempt 5 s, whole call 10 s) are bounded; [`KmsConfig`] changes them.
//!
//! The client runs on a runtime of its own (one worker thread), so the synchronous
//! [`KeyProvider`] calls work on tokio's blocking pool, on any other runtime or on none.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::{BehaviorVersion, Region};
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyState as KmsKeyState, KeyUsageType};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::crypto::format::{self, Algorithm, Header, NONCE_LEN, PREFIX_LEN};
use crate::crypto::{Context, CryptoError};
use crate::keys::{KeyError, KeyInfo, KeyProvider, KeyState};
use crate::{KeyVersion, SecretBytes};

pub use aws_sdk_kms::config::{Credentials, SharedCredentialsProvider};

/// The KMS call budget's defaults.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ATTEMPTS: u32 = 3;
/// How long past the call's own timeout the caller waits for the client's thread to answer.
const ANSWER_GRACE: Duration = Duration::from_secs(5);
/// The value of the `credvault` entry of every encryption context (the format's version).
const CONTEXT_TAG: &str = "dek v1";

/// Where the KEK versions live: the KMS keys, region, endpoint, credentials and call budget.
#[derive(Clone)]
pub struct KmsConfig {
    /// KEK version -> KMS key id, key ARN or `alias/...`. The highest version is the primary.
    pub keys: BTreeMap<KeyVersion, String>,
    /// The AWS region (`eu-west-1`).
    pub region: String,
    /// Another endpoint than the region's (a VPC endpoint; a local test server). `None`: AWS's.
    pub endpoint: Option<String>,
    /// Credentials; `None` reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN` when the provider opens. Pass a provider from the `aws-config` crate
    /// for profiles, SSO or instance roles.
    pub credentials: Option<SharedCredentialsProvider>,
    /// Attempts per call, the first included (default 3).
    pub max_attempts: u32,
    /// Connect timeout (default 2 s).
    pub connect_timeout: Duration,
    /// Timeout of one attempt (default 5 s).
    pub attempt_timeout: Duration,
    /// Timeout of a whole call, retries included (default 10 s).
    pub call_timeout: Duration,
}

impl KmsConfig {
    /// A configuration with one key as version 1, default budget, credentials from the
    /// environment.
    pub fn new(region: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            keys: BTreeMap::from([(KeyVersion::FIRST, key.into())]),
            region: region.into(),
            endpoint: None,
            credentials: None,
            max_attempts: MAX_ATTEMPTS,
            connect_timeout: CONNECT_TIMEOUT,
            attempt_timeout: ATTEMPT_TIMEOUT,
            call_timeout: CALL_TIMEOUT,
        }
    }

    /// Adds (or replaces) the key of `version`.
    #[must_use]
    pub fn key(mut self, version: KeyVersion, key: impl Into<String>) -> Self {
        self.keys.insert(version, key.into());
        self
    }

    /// Sets the endpoint.
    #[must_use]
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Sets the credentials.
    #[must_use]
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(SharedCredentialsProvider::new(credentials));
        self
    }
}

impl fmt::Debug for KmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsConfig")
            .field("keys", &self.keys)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "[redacted]"),
            )
            .field("max_attempts", &self.max_attempts)
            .field("connect_timeout", &self.connect_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

/// One KEK version: the key's ARN as KMS resolved it, its creation.
#[derive(Debug, Clone)]
struct KmsKey {
    /// The key id (a UUID).
    key_id: String,
    arn: String,
    created_at: u64,
}

struct Inner {
    config: KmsConfig,
    /// The keys as configured (or added by [`AwsKmsKeys::rotate_to`]), by version.
    configured: RwLock<BTreeMap<KeyVersion, String>>,
    client: aws_sdk_kms::Client,
    runtime: Option<tokio::runtime::Runtime>,
    versions: RwLock<BTreeMap<KeyVersion, KmsKey>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime: let it go quietly.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The KEK in AWS KMS: a [`KeyProvider`] that wraps and unwraps with KMS `Encrypt`/`Decrypt`.
/// Clones share the client.
#[derive(Clone)]
pub struct AwsKmsKeys {
    inner: Arc<Inner>,
}

impl fmt::Debug for AwsKmsKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsKeys")
            .field("region", &self.inner.config.region)
            .field("keys", &self.inner.config.keys)
            .finish_non_exhaustive()
    }
}

impl AwsKmsKeys {
    /// Opens the configured keys: checks with `DescribeKey` that each exists, is enabled and is
    /// a symmetric encryption key, and records its ARN (the identity the vault records).
    ///
    /// # Errors
    ///
    /// [`KeyError::Invalid`] for an empty key list or a key that is not a symmetric encryption
    /// key; [`KeyError::Denied`] for a key KMS does not have, disabled or pending deletion, or
    /// refused credentials; [`KeyError::Unavailable`] if KMS cannot be reached.
    pub fn open(config: KmsConfig) -> Result<Self, KeyError> {
        if config.keys.is_empty() {
            return Err(KeyError::Invalid {
                source_name: describe(&config),
                problem: "no KMS key configured".to_owned(),
            });
        }
        let keys = Self::connect(config)?;
        keys.reload()?;
        Ok(keys)
    }

    /// Creates a new symmetric encryption key in KMS (for a first version or a rotation) and
    /// returns its key id; `config.keys` is not used. Add the id to the configuration under the
    /// next version.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn create_key(config: &KmsConfig, description: &str) -> Result<String, KeyError> {
        let keys = Self::connect(config.clone())?;
        let client = keys.inner.client.clone();
        let description = description.to_owned();
        let made = keys.call(async move {
            client
                .create_key()
                .description(description)
                .key_usage(KeyUsageType::EncryptDecrypt)
                .key_spec(KeySpec::SymmetricDefault)
                .send()
                .await
        })?;
        let made = made.map_err(|e| kms_error("CreateKey", &e))?;
        made.key_metadata()
            .map(|m| m.key_id().to_owned())
            .ok_or_else(|| KeyError::Unavailable("AWS KMS CreateKey: no key in its answer".into()))
    }

    /// Schedules the deletion of KEK `version`'s key in KMS, after `pending_days` (7 to 30;
    /// KMS's own bound). Use [`Vault::destroy_kek_with`](crate::Vault::destroy_kek_with),
    /// which refuses while any data key is wrapped under it; then remove the version from the
    /// configuration. Until the window passes, `CancelKeyDeletion` (outside credvault) undoes it.
    ///
    /// # Errors
    ///
    /// [`KeyError::IsPrimary`] for the primary; [`KeyError::UnknownVersion`] if the version is
    /// not configured; what KMS answers.
    pub fn schedule_deletion(
        &self,
        version: KeyVersion,
        pending_days: i32,
    ) -> Result<(), KeyError> {
        if version == self.primary_version() {
            return Err(KeyError::IsPrimary(version));
        }
        let key_id = self.key(version)?.key_id;
        let client = self.inner.client.clone();
        self.call(async move {
            client
                .schedule_key_deletion()
                .key_id(key_id)
                .pending_window_in_days(pending_days)
                .send()
                .await
        })?
        .map_err(|e| kms_error("ScheduleKeyDeletion", &e))?;
        if let Ok(mut versions) = self.inner.versions.write() {
            versions.remove(&version);
        }
        if let Ok(mut configured) = self.inner.configured.write() {
            configured.remove(&version);
        }
        Ok(())
    }

    /// Makes `key` (a key id, ARN or alias) the next KEK version, the new primary, in this
    /// process: new data keys wrap under it. Other processes learn it from their configuration
    /// (add it there too, under the version this returns).
    ///
    /// # Errors
    ///
    /// [`KeyError::VersionsExhausted`]; as [`open`](Self::open) for the key.
    pub fn rotate_to(&self, key: &str) -> Result<KeyVersion, KeyError> {
        let primary = self.primary_version();
        let next = primary
            .get()
            .checked_add(1)
            .map(KeyVersion::new)
            .ok_or(KeyError::VersionsExhausted(primary))?;
        let found = self.describe_key(next, key)?;
        self.inner
            .configured
            .write()
            .map_err(|_| poisoned())?
            .insert(next, key.to_owned());
        self.inner
            .versions
            .write()
            .map_err(|_| poisoned())?
            .insert(next, found);
        Ok(next)
    }

    fn connect(config: KmsConfig) -> Result<Self, KeyError> {
        let credentials = match &config.credentials {
            Some(c) => c.clone(),
            None => SharedCredentialsProvider::new(environment_credentials(&config)?),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("credvault-kms")
            .enable_all()
            .build()
            .map_err(|e| {
                KeyError::Unavailable(format!("cannot start the KMS client's runtime: {e}"))
            })?;
        let retry = RetryConfig::standard()
            .with_max_attempts(config.max_attempts.max(1))
            .with_initial_backoff(Duration::from_millis(50))
            .with_max_backoff(Duration::from_secs(1));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.attempt_timeout)
            .operation_attempt_timeout(config.attempt_timeout)
            .operation_timeout(config.call_timeout)
            .build();
        let mut builder = aws_sdk_kms::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .credentials_provider(credentials)
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        // The HTTP client and the client itself are made on the runtime they will run on.
        let (made, answer) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let http = aws_smithy_http_client::Builder::new()
                .tls_provider(Provider::Rustls(CryptoMode::Ring))
                .build_https();
            let _ = made.send(aws_sdk_kms::Client::from_conf(
                builder.http_client(http).build(),
            ));
        });
        let client = answer
            .recv()
            .map_err(|_| KeyError::Unavailable("the KMS client could not be made".to_owned()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                configured: RwLock::new(config.keys.clone()),
                config,
                client,
                runtime: Some(runtime),
                versions: RwLock::new(BTreeMap::new()),
            }),
        })
    }

    /// Runs `call` on the client's runtime and waits for it (bounded by the call timeout).
    fn call<T: Send + 'static>(
        &self,
        call: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, KeyError> {
        let runtime = self
            .inner
            .runtime
            .as_ref()
            .ok_or_else(|| KeyError::Unavailable("the KMS client stopped".to_owned()))?;
        let (reply, answer) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = reply.send(call.await);
        });
        answer
            .recv_timeout(self.inner.config.call_timeout + ANSWER_GRACE)
            .map_err(|_| KeyError::Unavailable("AWS KMS did not answer in time".to_owned()))
    }

    fn key(&self, version: KeyVersion) -> Result<KmsKey, KeyError> {
        let versions = self.inner.versions.read().map_err(|_| poisoned())?;
        if let Some(key) = versions.get(&version) {
            return Ok(key.clone());
        }
        match versions.keys().next_back() {
            Some(primary) if version < *primary => Err(KeyError::Destroyed(version)),
            _ => Err(KeyError::UnknownVersion(version)),
        }
    }

    /// Resolves one configured key with `DescribeKey` and checks it can wrap.
    fn describe_key(&self, version: KeyVersion, configured: &str) -> Result<KmsKey, KeyError> {
        let client = self.inner.client.clone();
        let id = configured.to_owned();
        let found = self
            .call(async move { client.describe_key().key_id(id).send().await })?
            .map_err(|e| kms_error("DescribeKey", &e))?;
        let meta = found
            .key_metadata()
            .ok_or_else(|| KeyError::Unavailable("AWS KMS DescribeKey: no key metadata".into()))?;
        let invalid = |problem: String| KeyError::Invalid {
            source_name: self.describe(),
            problem: format!("KEK version {version} ({configured}): {problem}"),
        };
        if meta.key_usage() != Some(&KeyUsageType::EncryptDecrypt)
            || meta
                .key_spec()
                .is_some_and(|s| *s != KeySpec::SymmetricDefault)
        {
            return Err(invalid("not a symmetric encryption key".to_owned()));
        }
        if !meta.enabled() || meta.key_state().is_some_and(|s| *s != KmsKeyState::Enabled) {
            return Err(KeyError::Denied(format!(
                "AWS KMS key {configured} (KEK version {version}) is {}",
                meta.key_state().map_or("disabled", KmsKeyState::as_str)
            )));
        }
        Ok(KmsKey {
            key_id: meta.key_id().to_owned(),
            arn: meta.arn().unwrap_or(meta.key_id()).to_owned(),
            created_at: meta
                .creation_date()
                .and_then(|d| u64::try_from(d.secs()).ok())
                .unwrap_or(0),
        })
    }
}

fn poisoned() -> KeyError {
    KeyError::Unavailable("the KMS key list is poisoned".to_owned())
}

/// Credentials from the usual environment variables.
fn environment_credentials(config: &KmsConfig) -> Result<Credentials, KeyError> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Ok(Credentials::new(
            id,
            secret,
            var("AWS_SESSION_TOKEN"),
            None,
            "environment",
        )),
        _ => Err(KeyError::Invalid {
            source_name: describe(config),
            problem: "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                      pass KmsConfig::credentials"
                .to_owned(),
        }),
    }
}

fn describe(config: &KmsConfig) -> String {
    match &config.endpoint {
        Some(endpoint) => format!("AWS KMS at {endpoint} ({})", config.region),
        None => format!("AWS KMS ({})", config.region),
    }
}

/// Maps a KMS failure to the key layer's kinds (module docs, "Errors"). The message names the
/// operation and KMS's error code and message, never request parameters.
fn kms_error<E, R>(operation: &str, e: &SdkError<E, R>) -> KeyError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug,
{
    match e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            let code = err.code().unwrap_or("unknown");
            let message = format!(
                "AWS KMS {operation}: {code}: {}",
                err.message().unwrap_or("(no message)")
            );
            match code {
                "InvalidCiphertextException" => KeyError::Crypto(CryptoError::DecryptionFailed),
                "ThrottlingException"
                | "LimitExceededException"
                | "KMSInternalException"
                | "DependencyTimeoutException"
                | "KeyUnavailableException"
                | "ServiceUnavailableException"
                | "InternalFailure"
                | "RequestTimeout" => KeyError::Unavailable(message),
                _ => KeyError::Denied(message),
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            KeyError::Unavailable(format!("AWS KMS {operation}: {}", DisplayErrorContext(e)))
        }
        _ => KeyError::Denied(format!("AWS KMS {operation}: {}", DisplayErrorContext(e))),
    }
}

/// The encryption context of a wrapped key (module docs, "Wrapped format").
fn encryption_context(header: &Header, context: &Context) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("credvault".to_owned(), CONTEXT_TAG.to_owned());
    out.insert(
        "kek_version".to_owned(),
        header.key_version.get().to_string(),
    );
    let parts = context.parts();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match parts.as_slice() {
        [label, tenant, version] if *label == crate::crypto::context::DEK_LABEL => {
            out.insert("purpose".to_owned(), "dek".to_owned());
            out.insert("tenant".to_owned(), text(tenant));
            if let Ok(v) = <[u8; 4]>::try_from(*version) {
                out.insert("dek_version".to_owned(), u32::from_be_bytes(v).to_string());
            }
        }
        [label, name] if *label == crate::crypto::context::VAULT_KEY_LABEL => {
            out.insert("purpose".to_owned(), "vault_key".to_owned());
            out.insert("name".to_owned(), text(name));
        }
        _ => {
            out.insert("purpose".to_owned(), "other".to_owned());
        }
    }
    let mut digest = Sha256::new();
    digest.update(header.to_bytes());
    digest.update(context.as_bytes());
    out.insert("aad".to_owned(), URL_SAFE_NO_PAD.encode(digest.finalize()));
    out
}

impl KeyProvider for AwsKmsKeys {
    fn primary_version(&self) -> KeyVersion {
        self.inner
            .versions
            .read()
            .ok()
            .and_then(|v| v.keys().next_back().copied())
            .or_else(|| self.inner.config.keys.keys().next_back().copied())
            .unwrap_or(KeyVersion::FIRST)
    }

    fn wrap_key(&self, key: &SecretBytes, context: &Context) -> Result<Vec<u8>, KeyError> {
        let version = self.primary_version();
        let arn = self.key(version)?.arn;
        let mut nonce = [0u8; NONCE_LEN];
        crate::crypto::rng::try_fill_nonce(&mut nonce)?;
        let header = Header {
            algorithm: Algorithm::Aes256Gcm,
            key_version: version,
            nonce,
        };
        let ec = encryption_context(&header, context);
        let plaintext = Blob::new(key.expose_secret().to_vec());
        let client = self.inner.client.clone();
        let sealed = self
            .call(async move {
                client
                    .encrypt()
                    .key_id(arn)
                    .plaintext(plaintext)
                    .set_encryption_context(Some(ec.into_iter().collect()))
                    .send()
                    .await
            })?
            .map_err(|e| kms_error("Encrypt", &e))?;
        let blob = sealed
            .ciphertext_blob()
            .ok_or_else(|| KeyError::Unavailable("AWS KMS Encrypt: no ciphertext".to_owned()))?;
        let mut out = Vec::with_capacity(PREFIX_LEN + blob.as_ref().len());
        out.extend_from_slice(&header.to_bytes());
        out.extend_from_slice(blob.as_ref());
        // The framing must parse as every other wrapped key does.
        format::parse(&out)?;
        Ok(out)
    }

    fn unwrap_key(&self, wrapped: &[u8], context: &Context) -> Result<SecretBytes, KeyError> {
        let header = format::parse(wrapped)?.header;
        let arn = self.key(header.key_version)?.arn;
        let ec = encryption_context(&header, context);
        let blob = Blob::new(wrapped[PREFIX_LEN..].to_vec());
        let client = self.inner.client.clone();
        let opened = self
            .call(async move {
                client
                    .decrypt()
                    .key_id(arn)
                    .ciphertext_blob(blob)
                    .set_encryption_context(Some(ec.into_iter().collect()))
                    .send()
                    .await
            })?
            .map_err(|e| kms_error("Decrypt", &e))?;
        let plain = opened
            .plaintext()
            .ok_or_else(|| KeyError::Unavailable("AWS KMS Decrypt: no plaintext".to_owned()))?;
        Ok(SecretBytes::copy_from_slice(plain.as_ref()))
    }

    fn key_infos(&self) -> Vec<KeyInfo> {
        let Ok(versions) = self.inner.versions.read() else {
            return Vec::new();
        };
        let primary = versions.keys().next_back().copied();
        versions
            .iter()
            .map(|(version, key)| KeyInfo {
                version: *version,
                state: if Some(*version) == primary {
                    KeyState::Primary
                } else {
                    KeyState::DecryptOnly
                },
                created_at: key.created_at,
                below_minimum: false,
            })
            .collect()
    }

    /// The key's ARN as KMS resolved it: not secret, and a different key under the same
    /// version (an alias pointed elsewhere) has another.
    fn fingerprint(&self, version: KeyVersion) -> Result<Option<String>, KeyError> {
        match self.key(version) {
            Ok(key) => Ok(Some(format!("aws-kms:{}", key.arn))),
            Err(KeyError::Destroyed(_) | KeyError::UnknownVersion(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Resolves every configured key again (an alias moved, a key disabled).
    fn reload(&self) -> Result<bool, KeyError> {
        let configured = self
            .inner
            .configured
            .read()
            .map_err(|_| poisoned())?
            .clone();
        let mut found = BTreeMap::new();
        for (version, key) in &configured {
            found.insert(*version, self.describe_key(*version, key)?);
        }
        let mut versions = self.inner.versions.write().map_err(|_| poisoned())?;
        let changed = found.len() != versions.len()
            || found
                .iter()
                .zip(versions.iter())
                .any(|((v1, k1), (v2, k2))| v1 != v2 || k1.arn != k2.arn);
        *versions = found;
        Ok(changed)
    }

    fn describe(&self) -> String {
        describe(&self.inner.config)
    }
}
