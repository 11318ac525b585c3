//! `credvault vault ...`: the typed vault over a database.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use credvault::backend::AuditQuery;
use std::sync::Arc;

use credvault::backend::UnreadableRow;
use credvault::envelope::{DirTenantKeys, TenantKeyStore};
use credvault::keys::{KeyError, KeyFile, KeyProvider};
use credvault::promises::{PromiseInputs, PromiseStatus, Promises};
use credvault::store::{
    ApiKey, DerivedData, ExportOptions, ExportReport, OAuthToken, PurgeReport, PurgerConfig,
    ReadAudit, SecretKind, SessionCookies, StoreError, Tenant, Vault, VaultConfig,
};
use credvault::{Keyring, TenantId};
use serde::Serialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::cli::{
    DEFAULT_DATA_DIR, DEFAULT_DB, DEFAULT_KEYS, DEFAULT_KEYS_DIR, DEFAULT_TENANT_KEYS,
    ExportFormat, KindArg, ReportFormat, TenantCommand, VaultArgs, VaultCommand,
};
use crate::error::CliError;
use crate::output::{self, BlockingWriter, Output};

/// Calls `$f::<R>(args...)` with the record type `$kind` names.
macro_rules! with_kind {
    ($kind:expr, $f:ident($($arg:expr),*)) => {
        match $kind {
            KindArg::OauthToken => $f::<OAuthToken>($($arg),*).await,
            KindArg::ApiKey => $f::<ApiKey>($($arg),*).await,
            KindArg::SessionCookies => $f::<SessionCookies>($($arg),*).await,
            KindArg::Derived => $f::<DerivedData>($($arg),*).await,
        }
    };
}

pub(crate) async fn run(args: VaultArgs, out: Output) -> Result<(), CliError> {
    let init = matches!(args.command, VaultCommand::Init);
    let (vault, keys_from) = open(&args, init).await?;
    let result = command(&vault, &args, keys_from, out).await;
    // Reads are audited in batches: write the batch before exiting, even after an error.
    let flushed = vault.flush_audit().await;
    result?;
    Ok(flushed?)
}

async fn command(
    vault: &Vault,
    args: &VaultArgs,
    keys_from: String,
    out: Output,
) -> Result<(), CliError> {
    let tenant = |id: &str| -> Result<Tenant, CliError> {
        Ok(vault.tenant(id)?.with_actor(args.actor.clone())?)
    };
    match &args.command {
        VaultCommand::PromisesCheck {
            format,
            password_hashes,
        } => promises_check(vault, *format, password_hashes.as_deref(), out).await,
        VaultCommand::Init => out.print(
            &json!({ "keys": keys_from, "tenant_keys": args.tenant_keys.display().to_string() }),
            || {
                format!(
                    "vault ready: database migrated; keys from {keys_from}; tenant keys in {}\n",
                    args.tenant_keys.display()
                )
            },
        ),
        VaultCommand::Put { record, update } => {
            let t = tenant(&record.tenant)?;
            with_kind!(record.kind, put(&t, &record.name, *update, out))
        }
        VaultCommand::Get { record } => {
            let t = tenant(&record.tenant)?;
            with_kind!(record.kind, get(&t, &record.name, out))
        }
        VaultCommand::Delete { record } => {
            let t = tenant(&record.tenant)?;
            with_kind!(record.kind, delete(&t, &record.name, out))
        }
        VaultCommand::List { tenant: t, kind } => {
            list(&tenant(&t.tenant)?, kind.map(kind_name), out).await
        }
        VaultCommand::Disconnect {
            tenant: t,
            provider,
        } => disconnect(&tenant(&t.tenant)?, provider, out).await,
        VaultCommand::Export {
            tenant: t,
            format,
            no_secrets,
            out: file,
        } => {
            let options = ExportOptions::default().with_secrets(!no_secrets);
            export(&tenant(&t.tenant)?, *format, options, file.as_deref(), out).await
        }
        VaultCommand::Purge { every, watch } => match (every, watch) {
            (_, Some(interval)) => purge_watch(vault, *interval, out).await,
            (every, None) => purge(vault, every.map(PurgerConfig::every), out).await,
        },
        VaultCommand::Audit {
            tenant: t,
            since,
            limit,
        } => {
            let query = AuditQuery {
                tenant: t
                    .as_deref()
                    .map(TenantId::new)
                    .transpose()
                    .map_err(StoreError::from)?,
                since: *since,
                limit: *limit,
            };
            audit(vault, &query, out).await
        }
        VaultCommand::Tenant(command) => tenant_deletion(vault, command, &args.actor, out).await,
        VaultCommand::ImportFernet {
            legacy_keys,
            kind,
            provider,
            allow_plaintext,
        } => {
            let options = crate::import::Options {
                legacy_keys,
                kind: *kind,
                provider: provider.as_deref(),
                allow_plaintext: *allow_plaintext,
                actor: &args.actor,
            };
            crate::import::run(vault, &options, out).await
        }
        VaultCommand::Rotate {
            tenant,
            all: _,
            kek,
        } => crate::rotate::rotate(vault, tenant.as_deref(), *kek, out).await,
        VaultCommand::Reencrypt {
            batch_size,
            keep_retired_keys,
        } => {
            crate::rotate::reencrypt(vault, *batch_size, *keep_retired_keys, &args.actor, out).await
        }
        VaultCommand::Report {
            dek_max_age,
            kek_max_age,
        } => crate::report::run(vault, *dek_max_age, *kek_max_age, out).await,
        VaultCommand::DestroyKek { version, yes, .. } => {
            crate::rotate::destroy_kek(vault, args.keys.as_deref(), *version, *yes, out).await
        }
        VaultCommand::MinDekVersion { tenant: t, version } => {
            crate::rotate::min_dek_version(vault, &t.tenant, *version, out).await
        }
        VaultCommand::FernetKey { tenant: t } => {
            let export = vault.export_fernet_keys(&t.tenant, &args.actor).await?;
            out.print(&export, || {
                export
                    .keys
                    .iter()
                    .map(|k| format!("{}\n", k.key.expose_secret()))
                    .collect()
            })
        }
    }
}

/// `credvault promises check`: the report, and exit 1 unless every promise is kept.
async fn promises_check(
    vault: &Vault,
    format: ReportFormat,
    password_hashes: Option<&Path>,
    out: Output,
) -> Result<(), CliError> {
    let Some(promises) = vault.config().promises.clone() else {
        return Err(CliError::new("no promise file given").hint("pass --promises FILE"));
    };
    let mut inputs = PromiseInputs {
        password_policy: promises.password_policy()?,
        throttle: promises.throttle_config(),
        ..PromiseInputs::default()
    };
    if let Some(path) = password_hashes {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::io("reading the password hashes", path, &e))?;
        inputs.password_hashes = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
    }
    let report = vault.check_promises(&promises, &inputs).await?;
    match (format, out.is_json()) {
        (ReportFormat::Json, _) | (_, true) => Output::new(true).print(&report, String::new)?,
        (ReportFormat::Md, false) => output::write_stdout(report.to_markdown().as_bytes())?,
        (ReportFormat::Text, false) => output::write_stdout(report.to_text().as_bytes())?,
    }
    if report.all_kept() {
        return Ok(());
    }
    let not_kept: Vec<String> = report
        .promises
        .iter()
        .filter(|p| p.status != PromiseStatus::Kept)
        .map(|p| format!("{} ({})", p.promise, p.status.as_str()))
        .collect();
    Err(
        CliError::check_failed(format!("promises not kept: {}", not_kept.join(", ")))
            .hint("see each promise's problems above"),
    )
}

/// Opens the vault. Only `init` on a database without a vault creates anything (the key file
/// if missing, the tenant-key directory); every other command, and `init` on an existing
/// vault, opens what exists and checks it against the identities the vault recorded. Returns
/// where the keys came from.
async fn open(args: &VaultArgs, init: bool) -> Result<(Vault, String), CliError> {
    // A command is a short-lived process: audit each read before printing it.
    let mut config = VaultConfig {
        read_audit: ReadAudit::Synchronous,
        default_actor: args.actor.clone(),
        ..VaultConfig::default()
    };
    if let Some(path) = &args.promises {
        // The promises set what they decide; a flag given beside them must agree (checked
        // when the vault opens, naming the promise).
        Promises::from_path(path)?.apply(&mut config);
    }
    if let Some(suite) = args.sealing_suite {
        config.sealing_suite = suite;
    }
    if let VaultCommand::DestroyKek { quiet_period, .. } = &args.command {
        config.kek_quiet_period = std::time::Duration::from_secs(*quiet_period);
    }
    if init {
        // Before anything is created: a failed init leaves no half-made vault behind.
        if args.db == DEFAULT_DB {
            create_private_dir(DEFAULT_DATA_DIR)?;
        }
        require_database(&args.db, true)?;
        let default_keys =
            args.keys.is_none() && std::env::var_os(credvault::keys::file::ENV_VAR).is_none();
        if default_keys || args.tenant_keys == Path::new(DEFAULT_TENANT_KEYS) {
            create_private_dir(DEFAULT_KEYS_DIR)?;
        }
        let fresh = !Vault::exists(&args.db).await?;
        let (kek, keys_from) = key_provider(args.keys.as_deref(), true, fresh)?;
        let tenant_keys = tenant_key_store(
            &args.tenant_keys,
            if fresh { Make::Create } else { Make::Adopt },
        )
        .await?;
        let vault = Vault::init_with(&args.db, kek, tenant_keys, config)
            .await
            .map_err(key_hint)?;
        return Ok((vault, keys_from));
    }
    let (kek, keys_from) = key_provider(args.keys.as_deref(), false, false)?;
    let tenant_keys = tenant_key_store(&args.tenant_keys, Make::Open).await?;
    require_database(&args.db, false)?;
    let vault = Vault::open_with(&args.db, kek, tenant_keys, config)
        .await
        .map_err(|e| match e {
            StoreError::NotInitialised(_) => {
                CliError::from(e).hint("run `credvault vault init` first, or check --db")
            }
            e => key_hint(e),
        })?;
    Ok((vault, keys_from))
}

/// The key provider from `--keys`, else `$CREDVAULT_KEYS`, else the default file; `create`
/// (init of a new vault) creates a missing file; `init` picks the hint for a missing one. Returns it and where it came from.
fn key_provider(
    keys: Option<&Path>,
    init: bool,
    create: bool,
) -> Result<(Arc<dyn KeyProvider>, String), CliError> {
    if let Some(spec) = keys
        .and_then(Path::to_str)
        .and_then(|k| k.strip_prefix("pkcs11:"))
    {
        return pkcs11_provider(spec, create);
    }
    if let Some(spec) = keys
        .and_then(Path::to_str)
        .and_then(|k| k.strip_prefix("awskms:"))
    {
        return aws_kms_provider(spec);
    }
    let env_set = std::env::var_os(credvault::keys::file::ENV_VAR).is_some();
    if keys.is_none() && env_set {
        return Ok((
            Arc::new(Keyring::from_default_env()?),
            format!("${}", credvault::keys::file::ENV_VAR),
        ));
    }
    let path = keys.map_or_else(|| PathBuf::from(DEFAULT_KEYS), Path::to_path_buf);
    if create && !path.exists() {
        Keyring::create_new(&path)?;
    }
    let provider = KeyFile::open(&path).map_err(|e| {
        let missing = matches!(&e, KeyError::Io { source, .. }
            if source.kind() == io::ErrorKind::NotFound);
        let err = CliError::from(e);
        if missing && init {
            err.hint(
                "the database already holds a vault: pass the key file it was created with \
                 (--keys FILE, or set CREDVAULT_KEYS); init never makes a second key for it",
            )
        } else if missing {
            err.hint(
                "run `credvault vault init` first, or pass --keys FILE (or set CREDVAULT_KEYS)",
            )
        } else {
            err
        }
    })?;
    Ok((Arc::new(provider), path.display().to_string()))
}

/// The variable the token's user PIN comes from (never a command-line argument: those are
/// visible to every user of the machine).
const PKCS11_PIN_VAR: &str = "CREDVAULT_PKCS11_PIN";

/// `--keys pkcs11:module=PATH,token=LABEL,label=KEY_LABEL`: the KEK in a PKCS#11 token; `create`
/// (init of a new vault) makes its first version.
#[cfg(feature = "pkcs11")]
fn pkcs11_provider(spec: &str, create: bool) -> Result<(Arc<dyn KeyProvider>, String), CliError> {
    let keys = pkcs11_keys(spec, create)?;
    let from = keys.describe();
    Ok((Arc::new(keys), from))
}

#[cfg(feature = "pkcs11")]
fn pkcs11_keys(spec: &str, create: bool) -> Result<credvault::keys::pkcs11::Pkcs11Keys, CliError> {
    use credvault::keys::pkcs11::Pkcs11Keys;
    let config = pkcs11_config(spec, "--keys", "KEY_LABEL")?;
    if create {
        Ok(Pkcs11Keys::init(config)?)
    } else {
        Pkcs11Keys::open(config).map_err(|e| {
            CliError::from(e).hint(
                "pass the token and label the vault was created with (`credvault vault init \
                 --keys pkcs11:...` makes the first key in the token)",
            )
        })
    }
}

/// `pkcs11:module=PATH,token=LABEL,label=LABEL` (after `pkcs11:`) for option `flag`, with the
/// user PIN from `CREDVAULT_PKCS11_PIN`.
#[cfg(feature = "pkcs11")]
fn pkcs11_config(
    spec: &str,
    flag: &str,
    label_name: &str,
) -> Result<credvault::keys::pkcs11::Pkcs11Config, CliError> {
    let usage = || {
        CliError::new(format!("invalid {flag} pkcs11:{spec}")).hint(format!(
            "pass {flag} pkcs11:module=/usr/lib/softhsm/libsofthsm2.so,token=TOKEN,label={label_name} \
             and the user PIN in CREDVAULT_PKCS11_PIN"
        ))
    };
    let (mut module, mut token, mut label) = (None, None, None);
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("module", v)) if !v.is_empty() => module = Some(PathBuf::from(v)),
            Some(("token", v)) if !v.is_empty() => token = Some(v.to_owned()),
            Some(("label", v)) if !v.is_empty() => label = Some(v.to_owned()),
            _ => return Err(usage()),
        }
    }
    let (Some(module), Some(token_label), Some(key_label)) = (module, token, label) else {
        return Err(usage());
    };
    let pin = std::env::var(PKCS11_PIN_VAR).map_err(|_| {
        CliError::new(format!("{PKCS11_PIN_VAR} is not set"))
            .hint("set it to the token's user PIN (it is never taken from the command line)")
    })?;
    Ok(credvault::keys::pkcs11::Pkcs11Config {
        module,
        token_label,
        pin: credvault::SecretString::from(pin),
        key_label,
    })
}

#[cfg(not(feature = "pkcs11"))]
fn pkcs11_provider(_spec: &str, _create: bool) -> Result<(Arc<dyn KeyProvider>, String), CliError> {
    let _ = PKCS11_PIN_VAR;
    Err(CliError::new(
        "a PKCS#11 key provider needs the `pkcs11` feature of credvault-cli",
    ))
}

/// `--keys awskms:region=REGION,key=KEY[,key2=KEY2...][,endpoint=URL]`: the KEK in AWS KMS.
/// `key` (or `key1`) is version 1, `keyN` version N; the highest is the primary. The keys are
/// made outside credvault (KMS never hands one out); credentials come from the environment.
#[cfg(feature = "aws-kms")]
fn aws_kms_provider(spec: &str) -> Result<(Arc<dyn KeyProvider>, String), CliError> {
    let keys = aws_kms_keys(spec)?;
    let from = keys.describe();
    Ok((Arc::new(keys), from))
}

#[cfg(feature = "aws-kms")]
fn aws_kms_keys(spec: &str) -> Result<credvault::keys::awskms::AwsKmsKeys, CliError> {
    use credvault::KeyVersion;
    use credvault::keys::awskms::{AwsKmsKeys, KmsConfig};
    let usage = || {
        CliError::new(format!("invalid --keys awskms:{spec}")).hint(
            "pass --keys awskms:region=REGION,key=KEY_ID_OR_ALIAS[,key2=NEXT_KEY][,endpoint=URL] \
             and the credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
        )
    };
    let (mut region, mut endpoint, mut keys) = (None, None, std::collections::BTreeMap::new());
    for part in spec.split(',') {
        let Some((name, value)) = part.split_once('=').filter(|(_, v)| !v.is_empty()) else {
            return Err(usage());
        };
        match name {
            "region" => region = Some(value.to_owned()),
            "endpoint" => endpoint = Some(value.to_owned()),
            "key" => {
                keys.insert(KeyVersion::FIRST, value.to_owned());
            }
            _ => {
                let version = name
                    .strip_prefix("key")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(usage)?;
                keys.insert(KeyVersion::new(version), value.to_owned());
            }
        }
    }
    let Some(region) = region.filter(|_| !keys.is_empty()) else {
        return Err(usage());
    };
    let mut config = KmsConfig::new(region, String::new());
    config.keys = keys;
    config.endpoint = endpoint;
    Ok(AwsKmsKeys::open(config)?)
}

/// How long KMS waits before deleting a key `vault destroy-kek` scheduled for deletion (KMS's
/// longest window; `CancelKeyDeletion` undoes it meanwhile).
#[cfg(feature = "aws-kms")]
const KMS_DELETION_DAYS: i32 = 30;

/// A KEK that lives outside a key file (`--keys pkcs11:...`, `--keys awskms:...`), for
/// `vault destroy-kek`: `None` for a key file.
pub(crate) fn external_kek(keys: Option<&Path>) -> Result<Option<ExternalKek>, CliError> {
    let Some(spec) = keys.and_then(Path::to_str) else {
        return Ok(None);
    };
    #[cfg(feature = "pkcs11")]
    if let Some(spec) = spec.strip_prefix("pkcs11:") {
        return Ok(Some(ExternalKek::Pkcs11(pkcs11_keys(spec, false)?)));
    }
    #[cfg(feature = "aws-kms")]
    if let Some(spec) = spec.strip_prefix("awskms:") {
        return Ok(Some(ExternalKek::Kms(aws_kms_keys(spec)?)));
    }
    if spec.starts_with("pkcs11:") || spec.starts_with("awskms:") {
        return Err(CliError::new(format!(
            "this build of credvault-cli has no provider for --keys {spec}"
        )));
    }
    Ok(None)
}

/// A KEK in a token or in KMS (see [`external_kek`]).
pub(crate) enum ExternalKek {
    /// In a PKCS#11 token: destroy deletes the token object.
    #[cfg(feature = "pkcs11")]
    Pkcs11(credvault::keys::pkcs11::Pkcs11Keys),
    /// In AWS KMS: destroy schedules the key's deletion.
    #[cfg(feature = "aws-kms")]
    Kms(credvault::keys::awskms::AwsKmsKeys),
}

impl ExternalKek {
    /// Destroys `version` where it lives; `dry_run` only checks it may (not the primary, known).
    pub(crate) fn destroy(
        &self,
        version: credvault::KeyVersion,
        dry_run: bool,
    ) -> Result<(), KeyError> {
        let provider: &dyn KeyProvider = match self {
            #[cfg(feature = "pkcs11")]
            Self::Pkcs11(keys) => keys,
            #[cfg(feature = "aws-kms")]
            Self::Kms(keys) => keys,
        };
        if version == provider.primary_version() {
            return Err(KeyError::IsPrimary(version));
        }
        if !provider.key_infos().iter().any(|k| k.version == version) {
            return Err(KeyError::UnknownVersion(version));
        }
        if dry_run {
            return Ok(());
        }
        match self {
            #[cfg(feature = "pkcs11")]
            Self::Pkcs11(keys) => keys.destroy(version),
            #[cfg(feature = "aws-kms")]
            Self::Kms(keys) => keys.schedule_deletion(version, KMS_DELETION_DAYS),
        }
    }

    /// Creates the next KEK version where it lives (a new token object), which becomes the
    /// primary; `credvault vault rotate --kek` then rewraps the data keys under it.
    pub(crate) fn rotate(&self) -> Result<credvault::KeyVersion, CliError> {
        match self {
            #[cfg(feature = "pkcs11")]
            Self::Pkcs11(keys) => Ok(keys.rotate()?),
            #[cfg(feature = "aws-kms")]
            Self::Kms(_) => Err(CliError::new(
                "credvault does not create AWS KMS keys (KMS keeps them and bills for them)",
            )
            .hint(
                "create one (aws kms create-key), add it as key2=KEY_ID (the next version) to \
                 --keys awskms:..., then run `credvault vault rotate --kek`",
            )),
        }
    }

    /// The provider, to list its versions.
    pub(crate) fn provider(&self) -> &dyn KeyProvider {
        match self {
            #[cfg(feature = "pkcs11")]
            Self::Pkcs11(keys) => keys,
            #[cfg(feature = "aws-kms")]
            Self::Kms(keys) => keys,
        }
    }

    /// Where it lives, for the output.
    pub(crate) fn describe(&self) -> String {
        match self {
            #[cfg(feature = "pkcs11")]
            Self::Pkcs11(keys) => keys.describe(),
            #[cfg(feature = "aws-kms")]
            Self::Kms(keys) => keys.describe(),
        }
    }
}

#[cfg(not(feature = "aws-kms"))]
fn aws_kms_provider(_spec: &str) -> Result<(Arc<dyn KeyProvider>, String), CliError> {
    Err(CliError::new(
        "an AWS KMS key provider needs the `aws-kms` feature of credvault-cli",
    ))
}

/// Creates a default directory (`0700`) for `init`; only the defaults are created (a path
/// given on the command line must have an existing directory: a typo is an error).
fn create_private_dir(dir: &str) -> Result<(), CliError> {
    if Path::new(dir).is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| CliError::new(format!("creating {dir}: {e}")))
}

/// Keys that are not the vault's: say what to pass.
fn key_hint(e: StoreError) -> CliError {
    let hint = match &e {
        StoreError::KeyMismatch { .. } | StoreError::KeyCannotUnwrap { .. } => {
            "pass the key file this vault was created with (--keys FILE, or CREDVAULT_KEYS)"
        }
        StoreError::TenantKeyStoreMismatch { .. } => {
            "pass --tenant-keys DIR, the directory the vault was created with"
        }
        StoreError::KekBehind { .. } => "pass the rotated key file (--keys FILE)",
        _ => return e.into(),
    };
    CliError::from(e).hint(hint)
}

/// A missing, empty or foreign tenant-key directory: say what to pass.
/// How [`tenant_key_store`] treats a store that is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Make {
    /// Open an existing store only.
    Open,
    /// Open an existing store, or adopt a directory of shred secrets made before markers.
    Adopt,
    /// Create a new store (init of a new vault).
    Create,
}

/// The tenant-key store `--tenant-keys` names: a directory, or (with the `postgres` feature)
/// a shared PostgreSQL store, `postgres://user@host/database#schema` (schema default
/// `credvault_keys`).
async fn tenant_key_store(place: &Path, make: Make) -> Result<Arc<dyn TenantKeyStore>, CliError> {
    let text = place.to_string_lossy();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return pg_tenant_keys(&text, make).await;
    }
    if let Some(spec) = text.strip_prefix("pkcs11:") {
        return pkcs11_tenant_keys(spec, make).await;
    }
    Ok(match make {
        Make::Create => Arc::new(DirTenantKeys::create(place)?),
        Make::Adopt => Arc::new(DirTenantKeys::open_or_adopt(place).map_err(store_hint)?),
        Make::Open => Arc::new(DirTenantKeys::open(place).map_err(store_hint)?),
    })
}

#[cfg(feature = "postgres")]
async fn pg_tenant_keys(url: &str, make: Make) -> Result<Arc<dyn TenantKeyStore>, CliError> {
    let (url, schema) = match url.split_once('#') {
        Some((url, schema)) => (url.to_owned(), schema.to_owned()),
        None => (url.to_owned(), "credvault_keys".to_owned()),
    };
    let store = tokio::task::spawn_blocking(move || match make {
        Make::Create => credvault::envelope::PgTenantKeys::create(&url, &schema),
        Make::Adopt | Make::Open => credvault::envelope::PgTenantKeys::open(&url, &schema),
    })
    .await
    .map_err(|e| CliError::new(format!("the tenant-key store's task failed: {e}")))?
    .map_err(|e| {
        CliError::from(e).hint(
            "pass --tenant-keys postgres://USER@HOST/DATABASE#SCHEMA, the store the vault was              created with (`credvault vault init` creates it for a new vault)",
        )
    })?;
    Ok(Arc::new(store))
}

/// `--tenant-keys pkcs11:module=PATH,token=LABEL,label=STORE_LABEL`: shred secrets in a
/// PKCS#11 token; `init` of a new vault creates the store, every other command opens it.
#[cfg(feature = "pkcs11")]
async fn pkcs11_tenant_keys(spec: &str, make: Make) -> Result<Arc<dyn TenantKeyStore>, CliError> {
    use credvault::envelope::Pkcs11TenantKeys;
    let config = pkcs11_config(spec, "--tenant-keys", "STORE_LABEL")?;
    let store = tokio::task::spawn_blocking(move || match make {
        Make::Create => Pkcs11TenantKeys::create(config),
        Make::Adopt | Make::Open => Pkcs11TenantKeys::open(config),
    })
    .await
    .map_err(|e| CliError::new(format!("the tenant-key store's task failed: {e}")))?
    .map_err(|e| {
        CliError::from(e).hint(
            "pass --tenant-keys pkcs11:module=PATH,token=TOKEN,label=STORE_LABEL, the store the \
             vault was created with (`credvault vault init` creates it for a new vault)",
        )
    })?;
    Ok(Arc::new(store))
}

#[cfg(not(feature = "pkcs11"))]
async fn pkcs11_tenant_keys(_spec: &str, _make: Make) -> Result<Arc<dyn TenantKeyStore>, CliError> {
    Err(CliError::new(
        "a PKCS#11 tenant-key store needs the `pkcs11` feature of credvault-cli",
    ))
}

#[cfg(not(feature = "postgres"))]
async fn pg_tenant_keys(_url: &str, _make: Make) -> Result<Arc<dyn TenantKeyStore>, CliError> {
    Err(CliError::new(
        "a PostgreSQL tenant-key store needs the `postgres` feature of credvault-cli".to_owned(),
    ))
}

fn store_hint(e: KeyError) -> CliError {
    let store = matches!(e, KeyError::Store { .. });
    let err = CliError::from(e);
    if store {
        err.hint(
            "pass --tenant-keys DIR, the directory the vault was created with (is its volume \
             mounted?)",
        )
    } else {
        err
    }
}

/// Only `init` creates a database: a mistyped path must not become a new, empty vault. For
/// `init`, the database's directory must exist, checked before the key file is created.
#[cfg(feature = "sqlite")]
fn require_database(url: &str, init: bool) -> Result<(), CliError> {
    if !url.to_ascii_lowercase().starts_with("sqlite:") {
        return Ok(());
    }
    let options = credvault::backend::SqliteBackend::options(url)?;
    let file = options.get_filename();
    if file.as_os_str() == ":memory:" {
        return Ok(());
    }
    if !init && !file.exists() {
        return Err(
            CliError::new(format!("database {} does not exist", file.display()))
                .hint("run `credvault vault init` first, or check --db (sqlite:PATH)"),
        );
    }
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty());
    if init && dir.is_some_and(|d| !d.is_dir()) {
        return Err(CliError::new(format!(
            "the directory of database {} does not exist",
            file.display()
        ))
        .hint("create it first, or check --db (sqlite:PATH)"));
    }
    Ok(())
}

#[cfg(not(feature = "sqlite"))]
fn require_database(_url: &str, _init: bool) -> Result<(), CliError> {
    Ok(())
}

async fn put<R: SecretKind>(
    tenant: &Tenant,
    name: &str,
    update: bool,
    out: Output,
) -> Result<(), CliError> {
    let input = output::read_stdin()?;
    let record: R = serde_json::from_slice(&input).map_err(|e| json_error(R::KIND, &e))?;
    let version = if update {
        let current = tenant
            .list(Some(R::KIND))
            .await?
            .into_iter()
            .find(|info| info.name == name)
            .ok_or_else(|| StoreError::NotFound {
                tenant: tenant.id().clone(),
                kind: R::KIND.to_owned(),
                name: name.to_owned(),
            })
            .map_err(|e| CliError::from(e).hint("drop --update to create it"))?;
        tenant.update(name, &record, current.version).await?
    } else {
        tenant.put(name, &record).await?
    };
    out.print(
        &json!({ "tenant": tenant.id().as_str(), "kind": R::KIND, "name": name, "version": version }),
        || format!("stored {} {name:?} version {version}\n", R::KIND),
    )
}

async fn get<R: SecretKind>(tenant: &Tenant, name: &str, out: Output) -> Result<(), CliError> {
    #[derive(Serialize)]
    struct Got<'a, R> {
        tenant: &'a str,
        kind: &'a str,
        name: &'a str,
        version: i64,
        record: &'a R,
    }
    let got = tenant.get::<R>(name).await?;
    let mut stdout = io::stdout().lock();
    let written = if out.is_json() {
        let wrapped = Got {
            tenant: tenant.id().as_str(),
            kind: R::KIND,
            name,
            version: got.version,
            record: &got.value,
        };
        serde_json::to_writer(&mut stdout, &wrapped)
    } else {
        serde_json::to_writer_pretty(&mut stdout, &got.value)
    };
    written
        .map_err(io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::stdio("writing stdout", &e))
}

async fn delete<R: SecretKind>(tenant: &Tenant, name: &str, out: Output) -> Result<(), CliError> {
    if !tenant.delete::<R>(name).await? {
        return Err(StoreError::NotFound {
            tenant: tenant.id().clone(),
            kind: R::KIND.to_owned(),
            name: name.to_owned(),
        }
        .into());
    }
    out.print(&json!({ "deleted": true }), || {
        format!("deleted {} {name:?}\n", R::KIND)
    })
}

async fn list(tenant: &Tenant, kind: Option<&str>, out: Output) -> Result<(), CliError> {
    let listing = tenant.list(kind).await?;
    // `--json` prints the records as before (an array of `RecordInfo`); rows that could not
    // be read are named on stderr, with exit 1.
    out.print(&listing.records, || {
        let mut text = format!(
            "{:<16} {:<24} {:>7} {:<12} {:<11} {}\n",
            "KIND", "NAME", "VERSION", "PROVIDER", "UPDATED", "EXPIRES"
        );
        for i in &listing {
            text.push_str(&format!(
                "{:<16} {:<24} {:>7} {:<12} {:<11} {}\n",
                shown(&i.kind),
                shown(&i.name),
                i.version,
                i.provider.as_deref().map_or_else(|| "-".to_owned(), shown),
                i.updated_at,
                i.expires_at
                    .map_or_else(|| "-".to_owned(), |t| t.to_string()),
            ));
        }
        text
    })?;
    skipped("listed", tenant, &listing.unreadable)
}

/// Text read from the database, made safe to print: control and bidirectional characters
/// escaped, so a stored value cannot move the cursor, clear the screen or fake a line.
pub(crate) fn shown(text: &str) -> String {
    credvault::text::escaped(text, 256)
}

/// A failed check (exit 1) naming the rows a job skipped, or `Ok` if it skipped none. The
/// rows' names are escaped by the library.
pub(crate) fn skipped(done: &str, tenant: &Tenant, rows: &[UnreadableRow]) -> Result<(), CliError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "{} rows of tenant {} could not be read and were not {done}; the rest was",
        rows.len(),
        tenant.id()
    );
    for row in rows {
        message.push_str(&format!("\n  skipped: {row}"));
    }
    Err(CliError::check_failed(message).hint(
        "the rows were written or altered outside credvault (or with the wrong keys): \
         inspect them in the database, then delete or put them again",
    ))
}

async fn export(
    tenant: &Tenant,
    format: ExportFormat,
    options: ExportOptions,
    file: Option<&Path>,
    out: Output,
) -> Result<(), CliError> {
    // The whole document is made before any of it is shown: a failure half-way leaves no
    // truncated output (stdout gets nothing, a file is never created).
    let mut bytes = Zeroizing::new(Vec::new());
    let mut buffer = BlockingWriter(&mut *bytes);
    let report = match format {
        ExportFormat::Json => tenant.export_json_with(&mut buffer, options).await?,
        ExportFormat::Csv => {
            let report = tenant.export_csv(&mut buffer).await?;
            // The audit rows: a second CSV document after an empty line.
            buffer.0.push(b'\n');
            let audit = tenant.export_audit_csv(&mut buffer).await?;
            ExportReport { audit, ..report }
        }
    };
    match file {
        None => output::write_stdout(&bytes)?,
        Some(path) => {
            output::write_secret_file_atomically(path, &bytes)?;
            out.print(&report, || {
                format!(
                    "exported {} records and {} audit rows of tenant {} to {}\n",
                    report.records,
                    report.audit,
                    tenant.id(),
                    path.display()
                )
            })?;
        }
    }
    skipped("exported", tenant, &report.skipped).map_err(|e| {
        e.hint(
            "listed under \"unreadable\" in a JSON export; if every record failed to open, \
             check --keys and --tenant-keys are the ones this database was written with",
        )
    })
}

async fn disconnect(tenant: &Tenant, provider: &str, out: Output) -> Result<(), CliError> {
    let report = tenant.disconnect(provider, None).await?;
    out.print(&report, || {
        let mut text = format!(
            "deleted {} {} credentials (not revoked at the provider)\n",
            report.deleted,
            shown(provider)
        );
        if let Some(at) = report.derived_purge_after {
            text.push_str(&format!(
                "{} derived records scheduled for the purge after {at}\n",
                report.derived_scheduled
            ));
        }
        text
    })?;
    skipped("disconnected", tenant, &report.unreadable)
}

/// `purge --watch`: the library's purge runner in the foreground, one line per run, until the
/// process is stopped (a run interrupted by a kill is finished by the next one).
async fn purge_watch(
    vault: &Vault,
    interval: std::time::Duration,
    out: Output,
) -> Result<(), CliError> {
    let runner = vault.spawn_purger(PurgerConfig::every(interval))?;
    let mut runs = runner.subscribe();
    let mut failures = 0;
    while runs.changed().await.is_ok() {
        let status = runs.borrow_and_update().clone();
        if status.failures > failures {
            failures = status.failures;
            let error = status.last_error.unwrap_or_default();
            eprintln!(
                "credvault: purge run {} failed (retried at the next run): {error}",
                status.runs
            );
        } else if let Some(report) = &status.last_report {
            print_purge(report, out)?;
        }
    }
    Ok(())
}

async fn purge(vault: &Vault, schedule: Option<PurgerConfig>, out: Output) -> Result<(), CliError> {
    let result = match &schedule {
        Some(schedule) => vault.purge_on_schedule(schedule).await,
        None => vault.purge().await,
    };
    let report = match result {
        Ok(report) => report,
        // Refused tenants are a failed check (exit 1), named in the message; the rest of the
        // purge ran and is printed on stderr with it.
        Err(e @ StoreError::ShredSecretMissing { .. }) => {
            let done = match &e {
                StoreError::ShredSecretMissing { report, .. } => format!(
                    "; purged {} other tenants ({} records), {} expired records, {} audit rows",
                    report.tenants.len(),
                    report.tenant_records,
                    report.expired_records,
                    report.audit_rows
                ),
                _ => String::new(),
            };
            return Err(CliError::from(e)
                .failed_check()
                .context("purge incomplete")
                .hint(format!(
                    "pass --tenant-keys DIR, the vault's tenant-key directory{done}"
                )));
        }
        Err(e) => return Err(e.into()),
    };
    print_purge(&report, out)
}

fn print_purge(report: &PurgeReport, out: Output) -> Result<(), CliError> {
    let overdue = report.oldest_overdue.as_secs();
    out.print(report, || {
        let late = if overdue > 0 {
            format!("; the oldest item was {overdue} s past its deadline: purge more often")
        } else {
            String::new()
        };
        format!(
            "purged {} tenants ({} records), {} expired records, {} audit rows{late}\n",
            report.tenants.len(),
            report.tenant_records,
            report.expired_records,
            report.audit_rows
        )
    })?;
    if report.unreadable.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "{} rows could not be read: due records among them were deleted, tenants skipped; \
         the rest was purged",
        report.unreadable.len()
    );
    for row in &report.unreadable {
        message.push_str(&format!("\n  unreadable: {row}"));
    }
    Err(CliError::check_failed(message)
        .hint("inspect the rows named in the database; a skipped tenant is retried each run"))
}

async fn tenant_deletion(
    vault: &Vault,
    command: &TenantCommand,
    actor: &str,
    out: Output,
) -> Result<(), CliError> {
    match command {
        TenantCommand::Delete(t) => {
            let purge_after = vault.delete_tenant(&t.tenant, actor).await?;
            out.print(
                &json!({ "tenant": t.tenant, "purge_after": purge_after }),
                || {
                    format!(
                        "tenant {} deleted; purged after {purge_after} unless restored\n",
                        t.tenant
                    )
                },
            )
        }
        TenantCommand::Restore(t) => {
            vault.restore_tenant(&t.tenant, actor).await?;
            out.print(&json!({ "tenant": t.tenant, "restored": true }), || {
                format!("tenant {} restored\n", t.tenant)
            })
        }
    }
}

async fn audit(vault: &Vault, query: &AuditQuery, out: Output) -> Result<(), CliError> {
    let rows = vault.audit(query).await?;
    out.print(&rows, || {
        // Every field is escaped: rows written before actors were checked, or by hand, must
        // not reach the terminal raw (escape sequences, a newline faking a line).
        let dash = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), shown);
        let mut text = String::new();
        for r in &rows {
            text.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                r.at,
                dash(r.tenant.as_ref().map(TenantId::as_str)),
                dash(r.kind.as_deref()),
                dash(r.name.as_deref()),
                shown(r.action.as_str()),
                shown(&r.actor),
                shown(&r.outcome)
            ));
        }
        text
    })
}

/// The library's kind string for a `--kind` value.
fn kind_name(kind: KindArg) -> &'static str {
    match kind {
        KindArg::OauthToken => OAuthToken::KIND,
        KindArg::ApiKey => ApiKey::KIND,
        KindArg::SessionCookies => SessionCookies::KIND,
        KindArg::Derived => DerivedData::KIND,
    }
}

/// A record that does not parse: where, never what (the input holds secrets).
fn json_error(kind: &str, e: &serde_json::Error) -> CliError {
    let what = match e.classify() {
        serde_json::error::Category::Io => "could not be read",
        serde_json::error::Category::Syntax => "is not valid json",
        serde_json::error::Category::Data => "does not match the record type",
        serde_json::error::Category::Eof => "ends early",
    };
    CliError::new(format!(
        "stdin {what} ({kind}, line {} column {})",
        e.line(),
        e.column()
    ))
    .hint(format!(
        "pipe one {kind} record as json; see `credvault vault put --help` for its shape"
    ))
}
