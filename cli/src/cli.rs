//! The command line, as clap types. Nothing here does any work.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// The default key file of `vault` commands: in `./credvault-keys/`, apart from the
/// database's directory, so that a backup of the database never holds the keys.
pub(crate) const DEFAULT_KEYS: &str = "./credvault-keys/credvault-keys.json";
/// The default database of `vault` commands, alone in its directory (the one to back up).
pub(crate) const DEFAULT_DB: &str = "sqlite:./credvault-data/credvault.db";
/// The default tenant shred-secret directory of `vault` commands, beside the key file and
/// apart from the database (a purged tenant stays unreadable in old database backups only
/// if this directory is not restored with them).
pub(crate) const DEFAULT_TENANT_KEYS: &str = "./credvault-keys/tenant-keys";
/// The directory of [`DEFAULT_DB`], which `vault init` creates when the default is used.
pub(crate) const DEFAULT_DATA_DIR: &str = "./credvault-data";
/// The directory of [`DEFAULT_KEYS`] and [`DEFAULT_TENANT_KEYS`], which `vault init` creates
/// (`0700`) when a default is used.
pub(crate) const DEFAULT_KEYS_DIR: &str = "./credvault-keys";
/// The default `--actor` of `vault` commands.
pub(crate) const DEFAULT_ACTOR: &str = "cli";
/// The default `vault reencrypt --batch-size` (the library's default).
pub(crate) const DEFAULT_BATCH_SIZE: u32 = 500;
/// The default `vault report --dek-max-age`, in days (the library's default policy).
pub(crate) const DEFAULT_DEK_MAX_AGE_DAYS: u32 = 90;
/// The default `vault report --kek-max-age`, in days (the library's default policy).
pub(crate) const DEFAULT_KEK_MAX_AGE_DAYS: u32 = 365;
/// Default of `vault destroy-kek --quiet-period`: 15 minutes.
pub(crate) const DEFAULT_KEK_QUIET_SECONDS: u64 = 15 * 60;

const MAIN_AFTER_HELP: &str = "\
Exit status: 0 success; 1 a failed check (password mismatch, invalid token, a key report
that needs attention, records not re-encrypted); 2 a usage, input, key, storage or I/O
error. Errors go to stderr: what happened, then what to do.

Secrets are printed only by the commands whose purpose is to print them: key generate,
fernet decrypt, vault get and vault export.

Example:
  credvault vault init
  credvault vault put --tenant acme --kind oauth_token --name github < token.json";

/// Operate credvault: keys, Fernet tokens, password hashes and the vault.
#[derive(Debug, Parser)]
#[command(name = "credvault", version, after_help = MAIN_AFTER_HELP)]
pub(crate) struct Cli {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log more on stderr: -v info, -vv debug, -vvv trace (warnings are always shown).
    /// RUST_LOG directives apply after it (for example RUST_LOG=sqlx=debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate, rotate, list and destroy key-encryption keys in a key file.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Encrypt, decrypt and rotate Fernet tokens (compatible with Python's cryptography).
    #[command(subcommand)]
    Fernet(FernetCommand),
    /// Hash and verify passwords.
    #[command(subcommand)]
    Password(PasswordCommand),
    /// Store, read and delete tenants' credentials in a vault database.
    Vault(VaultArgs),
    /// Check a vault against a privacy policy's promise file.
    #[command(subcommand)]
    Promises(PromisesCommand),
}

// ---------------------------------------------------------------------------------------------
// promises

#[derive(Debug, Subcommand)]
pub(crate) enum PromisesCommand {
    /// Judge every promise of the file against the live vault: kept, at risk or broken, with
    /// the evidence.
    #[command(after_help = "\
Reads the vault (decrypts nothing) and prints, per promise, its status and evidence: records
per sealing suite and data key version, the oldest retired key still holding records, key ages
against the rotation the policy implies, accounts waiting for erasure and the time left to
each deadline, the oldest overdue deletion, the audit log's oldest row against the retention,
the password and lockout settings the file builds. Give --password-hashes to count the stored
hashes (one per line) against the promised scheme.

Exit status: 0 when every promise is kept (cron-able), 1 when one is at risk or broken, 2 on
an error.

Examples:
  credvault promises check --promises policy.toml --db sqlite:/var/lib/app/credvault.db
  credvault promises check --promises policy.toml --format md > promises-2026-11.md")]
    Check(PromisesCheckArgs),
}

/// How `promises check` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// For a person.
    Text,
    /// For machines (as --json).
    Json,
    /// Markdown, for an auditor's file.
    Md,
}

#[derive(Debug, Args)]
pub(crate) struct PromisesCheckArgs {
    /// The promise file (TOML; see the library's `credvault::promises` docs and
    /// examples/promises/).
    #[arg(long, value_name = "FILE")]
    pub(crate) promises: PathBuf,
    /// The database (as for `vault`).
    #[arg(long, value_name = "URL", default_value = DEFAULT_DB)]
    pub(crate) db: String,
    /// The key file or PKCS#11 key (as for `vault`).
    #[arg(long, value_name = "FILE")]
    pub(crate) keys: Option<PathBuf>,
    /// The tenant shred-secret store (as for `vault`).
    #[arg(long, value_name = "DIR|URL", default_value = DEFAULT_TENANT_KEYS)]
    pub(crate) tenant_keys: PathBuf,
    /// text, json or md.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub(crate) format: ReportFormat,
    /// A file of stored password hashes, one per line, to count against the promise.
    #[arg(long, value_name = "FILE")]
    pub(crate) password_hashes: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// key

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate a new key file (a keyring with one primary key) or one Fernet key.
    #[command(after_help = "\
Without --out the key is printed on stdout: that is the command's purpose; keep it secret.
A keyring written with --out is created with mode 0600; an existing file is never replaced.

Examples:
  credvault key generate --out credvault-keys.json
  credvault key generate --format fernet --out fernet.keys")]
    Generate {
        /// What to generate: a credvault key file, or one Fernet key line.
        #[arg(long, value_enum, default_value_t = KeyFormat::Keyring)]
        format: KeyFormat,
        /// Write to this file (refused if it exists) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Add a new primary key version; the previous primary becomes decrypt-only.
    #[command(after_help = "\
The key file is rewritten atomically, keeping its owner, group and mode; a symbolic link
is followed and its target rewritten. Records and tenant data keys sealed with older
versions keep opening with their (now decrypt-only) version. With --keys pkcs11:... the
token makes the next KEK version (a new object, not extractable); then
`credvault vault rotate --kek` rewraps the data keys and `credvault vault destroy-kek`
deletes the old object.

Examples:
  credvault key rotate --keys credvault-keys.json
  CREDVAULT_PKCS11_PIN=... credvault key rotate \\
    --keys pkcs11:module=/usr/lib/softhsm/libsofthsm2.so,token=prod,label=credvault-kek")]
    Rotate(KeyFileArg),
    /// List key versions: version, state, creation time, below-minimum. Never key bytes.
    #[command(after_help = "Example:\n  credvault key list --keys credvault-keys.json --json")]
    List(KeyFileArg),
    /// Destroy a key version's bytes: what it sealed can never be opened again.
    #[command(after_help = "\
The primary version cannot be destroyed (rotate first). Destroy a version only when nothing
needs it any more: tenants whose data key is wrapped under it become unreadable. This
command sees only the key file; `credvault vault destroy-kek` checks a vault first.

Example:
  credvault key destroy 1 --keys credvault-keys.json --yes")]
    Destroy {
        /// The version to destroy.
        version: u32,
        #[command(flatten)]
        keys: KeyFileArg,
        /// Confirm: destroying is irreversible.
        #[arg(long)]
        yes: bool,
    },
    /// Refuse to open anything sealed with a version below VERSION (keys are kept).
    #[command(
        name = "min-version",
        after_help = "Example:\n  credvault key min-version 2 --keys credvault-keys.json"
    )]
    MinVersion {
        /// The lowest version allowed to open records.
        version: u32,
        #[command(flatten)]
        keys: KeyFileArg,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KeyFormat {
    /// A credvault key file (JSON keyring).
    Keyring,
    /// One Fernet key: 32 bytes in URL-safe base64, as Python's Fernet.generate_key().
    Fernet,
}

#[derive(Debug, Args)]
pub(crate) struct KeyFileArg {
    /// The key file (`rotate` and `list` also take a PKCS#11 KEK,
    /// pkcs11:module=PATH,token=LABEL,label=KEY_LABEL, PIN in CREDVAULT_PKCS11_PIN).
    #[arg(long, value_name = "FILE")]
    pub(crate) keys: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// fernet

#[derive(Debug, Subcommand)]
pub(crate) enum FernetCommand {
    /// Encrypt stdin into one token (printed with a newline).
    #[command(after_help = "\
The key file holds one Fernet key per line; the first one encrypts.

Example:
  printf 'secret' | credvault fernet encrypt --key-file fernet.keys")]
    Encrypt {
        #[command(flatten)]
        key: FernetKeyArg,
        /// Stamp the token with this time (Unix seconds) instead of now.
        #[arg(long, value_name = "UNIX_TIME")]
        at: Option<u64>,
    },
    /// Decrypt the token on stdin; the plaintext goes to stdout as is.
    #[command(after_help = "\
Any key of the key file may have made the token. One trailing newline of the token is
ignored. A token that does not decrypt exits with status 1 and `invalid token` on stderr.

Example:
  credvault fernet decrypt --key-file fernet.keys --ttl 3600 < token.txt")]
    Decrypt {
        #[command(flatten)]
        key: FernetKeyArg,
        /// Refuse tokens older than this many seconds.
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<u64>,
        /// With --ttl, the current time (Unix seconds) to check the token's age against.
        #[arg(long, value_name = "UNIX_TIME", requires = "ttl")]
        at: Option<u64>,
    },
    /// Re-encrypt the token on stdin under the first key, keeping its timestamp.
    #[command(after_help = "\
Put the new key on the first line of the key file and the old ones after it.

Example:
  credvault fernet rotate --key-file fernet.keys < old-token.txt > new-token.txt")]
    Rotate {
        #[command(flatten)]
        key: FernetKeyArg,
    },
}

#[derive(Debug, Args)]
pub(crate) struct FernetKeyArg {
    /// File of Fernet keys, one per line, newest (primary) first.
    #[arg(long, value_name = "FILE")]
    pub(crate) key_file: PathBuf,
}

// ---------------------------------------------------------------------------------------------
// password

#[derive(Debug, Subcommand)]
pub(crate) enum PasswordCommand {
    /// Hash a password read from stdin (or a no-echo prompt on a terminal).
    #[command(after_help = "\
The password is never taken from an argument. When stdin is not a terminal it is read from
stdin, without one trailing newline.

Example:
  printf '%s' \"$PASSWORD\" | credvault password hash --scheme bcrypt --cost 12")]
    Hash(PolicyArgs),
    /// Check a password (stdin or prompt) against a stored hash: exit 0 on match, 1 if not.
    #[command(
        group(ArgGroup::new("stored").required(true).args(["hash", "hash_file"])),
        after_help = "\
Reads bcrypt, argon2, PBKDF2, Django and passlib hashes. needs_rehash says the hash is
weaker than the --scheme/--cost policy (default argon2id).

The stored hash comes from --hash-file FILE, or with --hash-file - from the first line of
stdin (the password is then the rest of stdin, or a prompt on a terminal). --hash HASH
works too, but an argument is visible to every local user in `ps` while the command runs.

Example:
  printf '%s\\n%s' \"$HASH\" \"$PASSWORD\" | credvault password verify --hash-file - --json"
    )]
    Verify {
        /// The stored hash (visible in `ps`: prefer --hash-file).
        #[arg(long, value_name = "HASH")]
        hash: Option<String>,
        /// A file holding the stored hash (its first line), or `-` for stdin's first line.
        #[arg(long, value_name = "FILE")]
        hash_file: Option<PathBuf>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PolicyArgs {
    /// The scheme new hashes use.
    #[arg(long, value_enum, default_value_t = SchemeArg::Argon2id)]
    pub(crate) scheme: SchemeArg,
    /// bcrypt: the cost (default 12, at least 10); pbkdf2-sha256: iterations (default and
    /// minimum 600000); argon2id: passes over 19456 KiB (default 2).
    #[arg(long, value_name = "N")]
    pub(crate) cost: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SchemeArg {
    /// bcrypt ($2b$).
    Bcrypt,
    /// PBKDF2-HMAC-SHA256 (PHC $pbkdf2-sha256$).
    #[value(name = "pbkdf2-sha256")]
    Pbkdf2Sha256,
    /// argon2id (PHC $argon2id$), OWASP parameters.
    Argon2id,
}

// ---------------------------------------------------------------------------------------------
// vault

#[derive(Debug, Args)]
#[command(after_help = "\
Keys come from --keys FILE, or, when --keys is not given and CREDVAULT_KEYS is set, from
that variable, which holds the key file's JSON itself.

Example:
  credvault vault init --db sqlite:/var/lib/app/credvault.db --keys /etc/app/keys.json")]
pub(crate) struct VaultArgs {
    /// The database: sqlite:PATH, or postgres://... when built with the postgres feature.
    #[arg(long, global = true, value_name = "URL", default_value = DEFAULT_DB)]
    pub(crate) db: String,
    /// The key file [default: ./credvault-keys/credvault-keys.json, unless CREDVAULT_KEYS
    /// is set]. Keep it out of the database's directory and backups. Or the KEK in a PKCS#11
    /// token: pkcs11:module=PATH,token=LABEL,label=KEY_LABEL (user PIN in
    /// CREDVAULT_PKCS11_PIN).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) keys: Option<PathBuf>,
    /// Where the per-tenant shred secrets live (keep them out of database backups): a
    /// directory, or a PostgreSQL store several servers share,
    /// postgres://USER@HOST/DATABASE#SCHEMA (schema default credvault_keys), or a PKCS#11
    /// token, pkcs11:module=PATH,token=LABEL,label=STORE_LABEL (user PIN in
    /// CREDVAULT_PKCS11_PIN; a label of its own, not the KEK's).
    #[arg(long, global = true, value_name = "DIR|URL", default_value = DEFAULT_TENANT_KEYS)]
    pub(crate) tenant_keys: PathBuf,
    /// Who the audit log says acted (`vault import-fernet`: job:import, `vault reencrypt`:
    /// job:reencrypt, unless given).
    /// At most 128 characters, no control or bidirectional-override character.
    #[arg(long, global = true, value_name = "NAME", default_value = DEFAULT_ACTOR, value_parser = parse_actor)]
    pub(crate) actor: String,
    /// How new records are sealed: aes-256-gcm (the default) or fernet. Reads accept both;
    /// `vault reencrypt` moves records sealed with the other suite to this one, and `vault
    /// report` counts them as records to reseal: give the vault's own setting to every
    /// command (or a --promises file that names it).
    #[arg(long, global = true, value_name = "SUITE")]
    pub(crate) sealing_suite: Option<credvault::crypto::SealingSuite>,
    /// A promise file (TOML): the vault's suites and retention are built from it, and a
    /// setting or command that would break a promise is refused.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) promises: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: VaultCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum VaultCommand {
    /// `credvault promises check`, run on the vault's arguments.
    #[command(hide = true)]
    PromisesCheck {
        /// text, json or md.
        #[arg(long, default_value = "text")]
        format: ReportFormat,
        /// Stored password hashes, one per line.
        #[arg(long)]
        password_hashes: Option<PathBuf>,
    },
    /// Create a vault: the key file (if missing), the tenant key directory and the schema.
    #[command(after_help = "\
Records the key's fingerprint and the tenant key directory's id in the vault, so that every
later command refuses another key file or directory. An existing key file is loaded, never
replaced. On a database that already holds a vault, nothing is created: the key file and the
directory must exist and be the vault's (safe to run again; a mistyped --keys is an error).
By default the database goes in ./credvault-data/ and the keys in ./credvault-keys/: back up
the first, never the second with it.

Example:
  credvault vault init --db sqlite:/var/lib/app/credvault.db --keys /etc/app/keys.json \\
    --tenant-keys /var/lib/app-keys/tenant-keys")]
    Init,
    /// Store a record read as JSON from stdin (secrets included).
    #[command(after_help = "\
The JSON is the record type's serde form, e.g. for oauth_token:
  {\"provider\": \"github\", \"access_token\": \"gho_...\", \"token_type\": \"Bearer\"}
An existing record is refused unless --update is given.

Example:
  credvault vault put --tenant acme --kind oauth_token --name github < token.json")]
    Put {
        #[command(flatten)]
        record: RecordArgs,
        /// Replace an existing record (compare-and-swap on its current version).
        #[arg(long)]
        update: bool,
    },
    /// Print a record as JSON, secrets included (that is the command's purpose).
    #[command(after_help = "\
Example:
  credvault vault get --tenant acme --kind oauth_token --name github")]
    Get {
        #[command(flatten)]
        record: RecordArgs,
    },
    /// List a tenant's records: metadata only, nothing decrypted.
    #[command(after_help = "Example:\n  credvault vault list --tenant acme --kind oauth_token")]
    List {
        #[command(flatten)]
        tenant: TenantArg,
        /// Only records of this kind.
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
    },
    /// Delete one record at once.
    #[command(after_help = "\
Example:
  credvault vault delete --tenant acme --kind api_key --name stripe")]
    Delete {
        #[command(flatten)]
        record: RecordArgs,
    },
    /// Delete every credential of a provider now; schedule its derived data for the purge.
    #[command(after_help = "\
The command line has no revoker: credentials are deleted without being revoked at the
provider. Revoke them there, or disconnect from your application with a Revoker.

Example:
  credvault vault disconnect --tenant acme --provider github")]
    Disconnect {
        #[command(flatten)]
        tenant: TenantArg,
        /// The provider whose credentials go.
        #[arg(long)]
        provider: String,
    },
    /// Export a tenant: json = every record decrypted (metadata only with --no-secrets);
    /// csv = metadata only.
    #[command(after_help = "\
The JSON export holds the tenant's secrets in clear, unless --no-secrets is given (then
nothing is decrypted). A file written with --out is created with mode 0600; an existing file
is never replaced.

Examples:
  credvault vault export --tenant acme --format json --out acme-export.json
  credvault vault export --tenant acme --no-secrets")]
    Export {
        #[command(flatten)]
        tenant: TenantArg,
        /// The export format.
        #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
        format: ExportFormat,
        /// Leave the secrets out of the JSON export: each record's metadata only, nothing
        /// decrypted (the CSV export never holds secrets).
        #[arg(long)]
        no_secrets: bool,
        /// Write to this file (refused if it exists) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run the purge job: destroy tenants past their grace period, expired records and old
    /// audit rows. Without --every or --watch, deletes what has reached its deadline (so it
    /// is late by up to the time between runs).
    #[command(after_help = "Examples:
  crontab, hourly, deleting ahead so that each item goes before its deadline:
    0 * * * *  credvault vault purge --every 1h --json
  in the foreground (a service), every 15 minutes:
    credvault vault purge --watch 15m")]
    Purge {
        /// One run, as part of a schedule that runs it every INTERVAL (cron): deletes what
        /// falls due before the next run plus a 5-minute margin (90s, 15m, 1h, 1d).
        #[arg(long, value_name = "INTERVAL", value_parser = parse_interval, conflicts_with = "watch")]
        every: Option<std::time::Duration>,
        /// Run every INTERVAL until stopped, deleting ahead as --every does; prints each run.
        #[arg(long, value_name = "INTERVAL", value_parser = parse_interval)]
        watch: Option<std::time::Duration>,
    },
    /// Print the audit log, oldest first.
    #[command(
        after_help = "Example:\n  credvault vault audit --tenant acme --since 1763856000 --limit 100"
    )]
    Audit {
        /// Only this tenant's rows.
        #[arg(long)]
        tenant: Option<String>,
        /// Only rows at or after this time (Unix seconds).
        #[arg(long, value_name = "UNIX_TIME")]
        since: Option<i64>,
        /// At most this many rows.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Delete a tenant (with a grace period) or restore it.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Import a Python service's Fernet tokens (JSON lines on stdin) into the vault.
    #[command(
        name = "import-fernet",
        after_help = "\
Each stdin line is one JSON object: {\"tenant\": \"...\", \"name\": \"...\", \"token\": \"...\"}.
Blank lines are skipped. Tokens are opened with any key of --legacy-keys (newest first, as
MultiFernet takes them), without a TTL, and never encrypted with; a value that is not shaped
like a Fernet token (does not start with gAAAAA) is a plaintext credential, imported only
with --allow-plaintext. A record that already exists is left as it is, so running the import
again imports nothing twice.

Prints the counts: imported, already present, failed (with tenant, name and reason; a
malformed line with its number, never its contents). Exit status 0 when nothing failed, 1
when some values failed, 2 on a usage, key file, storage or I/O error.

Example:
  credvault vault import-fernet --legacy-keys fernet.keys --kind oauth_token \\
      --provider github < legacy-tokens.jsonl"
    )]
    ImportFernet {
        /// File of the legacy Fernet keys, one per line, newest first (decrypt-only).
        #[arg(long, value_name = "FILE")]
        legacy_keys: PathBuf,
        /// The record type each value becomes.
        #[arg(long, value_enum, default_value_t = ImportKind::OauthToken)]
        kind: ImportKind,
        /// The provider of the records [default: each record's name].
        #[arg(long, value_name = "NAME")]
        provider: Option<String>,
        /// Import values that are not Fernet tokens as plaintext credentials.
        #[arg(long)]
        allow_plaintext: bool,
    },

    /// Print a tenant's Fernet keys (audited), so a Python service can decrypt its records
    /// sealed with the Fernet suite.
    #[command(
        name = "fernet-key",
        after_help = "\
Prints one key per line, the current one first (the order Python's MultiFernet takes), one
per live data key version of the tenant; --json prints them with their data key versions.
Each export writes a fernet_key_export audit row naming --actor. The keys are secrets: keep
them out of logs and shell history, and export again after `vault rotate` + `vault reencrypt`.

A record's Fernet plaintext is its context, then its JSON: tenant, kind and name, each
prefixed with its length (4 bytes, big-endian). In Python:
  pt = MultiFernet([Fernet(k) for k in keys]).decrypt(token)
  for _ in range(3): n = int.from_bytes(pt[:4], 'big'); part, pt = pt[4:4+n], pt[4+n:]
  record = json.loads(pt)    # after checking the three parts name the record

Example:
  credvault vault fernet-key --tenant acme --actor ops:alice > acme.fernet.keys"
    )]
    FernetKey {
        #[command(flatten)]
        tenant: TenantArg,
    },

    /// Give tenants new data keys, or rewrap every data key under the primary KEK.
    #[command(
        group(ArgGroup::new("what").required(true).args(["tenant", "all", "kek"])),
        after_help = "\
--tenant ID or --all: new writes use the new data key at once; records sealed with the old
one still open, and `credvault vault reencrypt` moves them to the new one.
--kek: after `credvault key rotate` made a new KEK version primary, rewrap every tenant's
data keys under it (records are untouched); then `credvault vault destroy-kek` can destroy
the old version. Exit status 1 if some data keys could not be rewrapped.

Examples:
  credvault vault rotate --tenant acme
  credvault vault rotate --all
  credvault key rotate --keys credvault-keys/credvault-keys.json && credvault vault rotate --kek"
    )]
    Rotate {
        /// Rotate this tenant's data key.
        #[arg(long, value_name = "ID")]
        tenant: Option<String>,
        /// Rotate every tenant's data key.
        #[arg(long)]
        all: bool,
        /// Rewrap every data key under the key file's primary KEK version.
        #[arg(long)]
        kek: bool,
    },
    /// Move every record to its tenant's current data key (online, resumable).
    #[command(after_help = "\
Runs in batches, each committed on its own: the application keeps reading and writing, and
a run that is stopped is simply started again. Retired data keys no record needs any more
are destroyed at the end unless --keep-retired-keys is given. Progress goes to stderr: a
bar on a terminal, plain lines otherwise.

Exit status 0 when every record was moved, 1 when some failed or remain (each failure is
listed with its reason), 2 on a key or storage error.

Example:
  credvault vault reencrypt --batch-size 1000 --json")]
    Reencrypt {
        /// Records resealed per transaction (memory use grows with it).
        #[arg(long, value_name = "N", default_value_t = DEFAULT_BATCH_SIZE,
              value_parser = clap::value_parser!(u32).range(1..))]
        batch_size: u32,
        /// Keep the retired data keys instead of destroying those no record needs.
        #[arg(long)]
        keep_retired_keys: bool,
    },
    /// The rotation report: every key's age and records, and what needs attention.
    #[command(after_help = "\
Lists each tenant's data key versions (state, wrapping KEK, age, records, flags) and the KEK
versions, then the counts. Exit status 0 when nothing needs attention, 1 when a key is
overdue or records are pending re-encryption or depend on a destroyed or forbidden key, so
it works as a cron check; --json prints the whole report.

Example (cron, daily):
  credvault vault report --dek-max-age 90 --kek-max-age 365 --json")]
    Report {
        /// Days a tenant's current data key may live before it is overdue.
        #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_DEK_MAX_AGE_DAYS,
              value_parser = clap::value_parser!(u32).range(1..))]
        dek_max_age: u32,
        /// Days the primary KEK version may live before it is overdue.
        #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_KEK_MAX_AGE_DAYS,
              value_parser = clap::value_parser!(u32).range(1..))]
        kek_max_age: u32,
    },
    /// Destroy a KEK version in the key file, once no data key in the vault needs it.
    #[command(
        name = "destroy-kek",
        after_help = "\
A vault command rather than `credvault key destroy`, because the checks need the database:
it counts the data keys still wrapped under VERSION and refuses (exit status 1) while any
are, so run `credvault vault rotate --kek` first; and it refuses while a running process
registered VERSION as its primary key within the quiet period (processes reload a rotated
key file and register again within a minute). The key file (--keys; not CREDVAULT_KEYS,
which cannot be rewritten) is then rewritten atomically; processes reload it by themselves.

Example:
  credvault vault destroy-kek 1 --yes"
    )]
    DestroyKek {
        /// The KEK version to destroy.
        version: u32,
        /// Confirm: destroying is irreversible.
        #[arg(long)]
        yes: bool,
        /// Seconds since any process last registered VERSION as its primary key before it
        /// may be destroyed.
        #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_KEK_QUIET_SECONDS)]
        quiet_period: u64,
    },
    /// Refuse to open a tenant's records sealed with a data key version below VERSION.
    #[command(
        name = "min-dek-version",
        after_help = "\
For when an old data key may be compromised: its records fail to open, and the
re-encryption job leaves them as they are. VERSION may not be above the tenant's current
data key version (see `credvault vault report`).

Example:
  credvault vault min-dek-version --tenant acme 3"
    )]
    MinDekVersion {
        #[command(flatten)]
        tenant: TenantArg,
        /// The lowest data key version allowed to open the tenant's records.
        version: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ImportKind {
    /// OAuthToken: the value is the bearer access token.
    #[value(name = "oauth_token")]
    OauthToken,
    /// ApiKey: the value is the key.
    #[value(name = "api_key")]
    ApiKey,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Start deleting a tenant: only export and restore work until the purge destroys it.
    #[command(after_help = "Example:\n  credvault vault tenant delete --tenant acme")]
    Delete(TenantArg),
    /// Cancel a tenant's deletion during its grace period.
    #[command(after_help = "Example:\n  credvault vault tenant restore --tenant acme")]
    Restore(TenantArg),
}

#[derive(Debug, Args)]
pub(crate) struct TenantArg {
    /// The tenant id.
    #[arg(long)]
    pub(crate) tenant: String,
}

#[derive(Debug, Args)]
pub(crate) struct RecordArgs {
    /// The tenant id.
    #[arg(long)]
    pub(crate) tenant: String,
    /// The record type.
    #[arg(long, value_enum)]
    pub(crate) kind: KindArg,
    /// The record name (unique per tenant and kind).
    #[arg(long)]
    pub(crate) name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KindArg {
    /// OAuthToken.
    #[value(name = "oauth_token")]
    OauthToken,
    /// ApiKey.
    #[value(name = "api_key")]
    ApiKey,
    /// SessionCookies.
    #[value(name = "session_cookies")]
    SessionCookies,
    /// DerivedData.
    #[value(name = "derived")]
    Derived,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// Every record decrypted, as one JSON document.
    Json,
    /// Metadata only, as CSV.
    Csv,
}

/// An interval: a number with a unit, `s`, `m`, `h` or `d` (`90s`, `15m`, `1h`, `1d`); a bare
/// number is seconds.
/// An `--actor`: checked as the library checks it, so a forged audit line is refused early.
fn parse_actor(s: &str) -> Result<String, String> {
    credvault::text::check_label("actor", s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "expected a number and a unit: 90s, 15m, 1h, 1d".to_owned())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err("the unit must be s, m, h or d".to_owned()),
    };
    n.checked_mul(scale)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| "interval too long".to_owned())
}
