//! The key file: a keyring as JSON, on disk or in an environment variable.
//!
//! ```json
//! {
//!   "format": "credvault-keyring",
//!   "version": 1,
//!   "min_decryption_version": 1,
//!   "keys": [
//!     { "version": 1, "state": "decrypt-only", "created_at": 1763856000, "key": "<43 chars>" },
//!     { "version": 2, "state": "primary",      "created_at": 1771632000, "key": "<43 chars>" },
//!     { "version": 3, "state": "destroyed",    "created_at": 1771632100 }
//!   ]
//! }
//! ```
//!
//! `key` is the 32-byte AES-256 key in URL-safe base64 without padding. Exactly one key is
//! `primary`; a `destroyed` key has no `key`. Versions are unique and at least 1.
//!
//! Saving is atomic: the JSON goes to a new temporary file beside the target (created `0600`
//! on Unix), which is flushed to disk and renamed over the target; the directory is then
//! synced. A file that is replaced keeps its owner, group and mode, and a symbolic link is
//! followed: its target is replaced and the link stays. Loading warns (through `tracing`) when the file is readable by group or others. A
//! corrupt, truncated or inconsistent file is an error naming the file and the problem, never
//! the key bytes, and never a silently generated new key.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::KeyVersion;
use crate::crypto::aead::KEY_LEN;
use crate::fsutil::{Replace, write_atomically};
use crate::keys::keyring::{Entry, Material};
use crate::keys::{KeyError, KeyState, Keyring};
use crate::secret::SecretString;

/// The `format` field of a key file.
pub(crate) const FORMAT_NAME: &str = "credvault-keyring";
/// The key file version this build writes and reads.
pub(crate) const FILE_VERSION: u32 = 1;
/// Key files larger than this are refused before parsing (a keyring of thousands of versions
/// is a few hundred KiB).
pub(crate) const MAX_FILE_LEN: u64 = 4 * 1024 * 1024;
/// The environment variable [`Keyring::from_default_env`] reads.
pub const ENV_VAR: &str = "CREDVAULT_KEYS";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    format: String,
    version: u32,
    min_decryption_version: KeyVersion,
    keys: Vec<FileKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    version: KeyVersion,
    state: String,
    created_at: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::secret::expose"
    )]
    key: Option<SecretString>,
}

impl Keyring {
    /// Loads a keyring from a key file.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] if the file cannot be read; [`KeyError::Invalid`] naming the file if it
    /// is not a valid keyring.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let file = fs::File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        warn_if_readable_by_others(path, &meta);
        if meta.len() > MAX_FILE_LEN {
            return Err(invalid(
                path.display(),
                format!("file is {} bytes; the limit is {MAX_FILE_LEN}", meta.len()),
            ));
        }
        let mut text = Zeroizing::new(String::new());
        file.take(MAX_FILE_LEN + 1)
            .read_to_string(&mut text)
            .map_err(io)?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Generates a new keyring and saves it at `path` (mode 0600), which must not exist: an
    /// existing file is never loaded nor replaced ([`std::io::ErrorKind::AlreadyExists`]).
    ///
    /// To open or create the keys of a local vault, use
    /// [`Vault::open_or_init_local`](crate::store::Vault::open_or_init_local): it never
    /// creates a key beside a database that already holds a vault.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] naming the file (`AlreadyExists` if it exists); RNG failures.
    pub fn create_new(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let ring = Self::generate()?;
        let json = ring.to_json();
        write_atomically(path, json.expose_secret().as_bytes(), Replace::No).map_err(|source| {
            KeyError::Io {
                path: path.to_owned(),
                source,
            }
        })?;
        Ok(ring)
    }

    /// Loads a keyring from the JSON in environment variable `name`.
    ///
    /// # Errors
    ///
    /// [`KeyError::MissingVariable`] if it is unset; [`KeyError::Invalid`] naming the variable
    /// if it is not a valid keyring.
    pub fn from_env(name: &str) -> Result<Self, KeyError> {
        let text = Zeroizing::new(std::env::var(name).map_err(|_| KeyError::MissingVariable {
            name: name.to_owned(),
        })?);
        Self::from_json(&text, &format!("${name}"))
    }

    /// [`from_env`](Self::from_env) with [`ENV_VAR`] (`CREDVAULT_KEYS`).
    ///
    /// # Errors
    ///
    /// As [`from_env`](Self::from_env).
    pub fn from_default_env() -> Result<Self, KeyError> {
        Self::from_env(ENV_VAR)
    }

    /// Parses the key file JSON; `source_name` names it in errors.
    ///
    /// # Errors
    ///
    /// [`KeyError::Invalid`] with the line and column of a syntax error or the inconsistency
    /// found; never a key.
    pub fn from_json(json: &str, source_name: &str) -> Result<Self, KeyError> {
        let doc: FileDoc = serde_json::from_str(json).map_err(|e| {
            // serde_json's own message may quote the offending value: keep only its category
            // and position.
            let what = match e.classify() {
                serde_json::error::Category::Io => "i/o error",
                serde_json::error::Category::Syntax => "not valid json",
                serde_json::error::Category::Data => "json does not match the key file format",
                serde_json::error::Category::Eof => "json ends early (truncated file?)",
            };
            invalid(
                source_name,
                format!("{what} at line {} column {}", e.line(), e.column()),
            )
        })?;
        from_doc(doc, source_name)
    }

    /// The keyring as key file JSON. This is the keys in clear: keep it secret.
    pub fn to_json(&self) -> SecretString {
        let doc = FileDoc {
            format: FORMAT_NAME.to_owned(),
            version: FILE_VERSION,
            min_decryption_version: self.min_decryption_version,
            keys: self
                .entries
                .iter()
                .map(|(v, e)| FileKey {
                    version: *v,
                    state: self
                        .state(*v)
                        .map_or("destroyed", KeyState::as_str)
                        .to_owned(),
                    created_at: e.created_at,
                    key: e
                        .material
                        .as_ref()
                        .map(|m| SecretString::new(URL_SAFE_NO_PAD.encode(m.raw.as_ref()))),
                })
                .collect(),
        };
        let mut text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| {
            // Serialising plain strings and integers into a String cannot fail.
            unreachable!("key file serialisation")
        });
        text.push('\n');
        SecretString::new(text)
    }

    /// Saves the keyring to `path` atomically (temporary file, fsync, rename, directory
    /// fsync). On Unix a new file is created with mode `0600`; a file that is replaced keeps
    /// its owner, group and mode. If `path` is a symbolic link, its target is replaced and the
    /// link stays.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] naming the file, also when the replaced file's owner cannot be kept
    /// (changing it needs root). On error the previous file, if any, is untouched.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), KeyError> {
        let path = path.as_ref();
        let json = self.to_json();
        write_atomically(path, json.expose_secret().as_bytes(), Replace::Yes).map_err(|source| {
            KeyError::Io {
                path: path.to_owned(),
                source,
            }
        })
    }
}

fn from_doc(doc: FileDoc, source_name: &str) -> Result<Keyring, KeyError> {
    if doc.format != FORMAT_NAME {
        return Err(invalid(
            source_name,
            format!("format is not \"{FORMAT_NAME}\""),
        ));
    }
    if doc.version != FILE_VERSION {
        return Err(invalid(
            source_name,
            format!(
                "file version {} is not supported (this build reads {FILE_VERSION})",
                doc.version
            ),
        ));
    }
    let mut entries = BTreeMap::new();
    let mut primary = None;
    for key in doc.keys {
        let v = key.version;
        if v.get() == 0 {
            return Err(invalid(
                source_name,
                "key version 0 is not allowed; versions start at 1",
            ));
        }
        let material = match (key.state.as_str(), key.key) {
            ("destroyed", None) => None,
            ("destroyed", Some(_)) => {
                return Err(invalid(
                    source_name,
                    format!("destroyed key {v} still has key bytes"),
                ));
            }
            ("primary" | "decrypt-only", Some(text)) => Some(decode_key(&text, v, source_name)?),
            ("primary" | "decrypt-only", None) => {
                return Err(invalid(source_name, format!("key {v} has no key bytes")));
            }
            (other, _) => {
                return Err(invalid(
                    source_name,
                    format!(
                        "key {v} has unknown state {other:?} (primary, decrypt-only or destroyed)"
                    ),
                ));
            }
        };
        if key.state == "primary" && primary.replace(v).is_some() {
            return Err(invalid(source_name, "more than one primary key"));
        }
        let entry = Entry {
            created_at: key.created_at,
            material,
        };
        if entries.insert(v, entry).is_some() {
            return Err(invalid(
                source_name,
                format!("key version {v} appears twice"),
            ));
        }
    }
    let primary = primary.ok_or_else(|| invalid(source_name, "no primary key"))?;
    if !entries.contains_key(&doc.min_decryption_version) || doc.min_decryption_version > primary {
        return Err(invalid(
            source_name,
            format!(
                "min_decryption_version {} must be a listed version no later than the primary {primary}",
                doc.min_decryption_version
            ),
        ));
    }
    Ok(Keyring {
        entries,
        primary,
        min_decryption_version: doc.min_decryption_version,
    })
}

fn decode_key(text: &SecretString, v: KeyVersion, source_name: &str) -> Result<Material, KeyError> {
    let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(text.expose_secret()).map_err(|_| {
        invalid(
            source_name,
            format!("key {v} is not url-safe base64 without padding"),
        )
    })?);
    let mut raw = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(invalid(
            source_name,
            format!("key {v} is {} bytes; keys are {KEY_LEN} bytes", bytes.len()),
        ));
    }
    raw.copy_from_slice(&bytes);
    Ok(Material::new(raw))
}

fn invalid(source_name: impl ToString, problem: impl Into<String>) -> KeyError {
    KeyError::Invalid {
        source_name: source_name.to_string(),
        problem: problem.into(),
    }
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, meta: &fs::Metadata) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{:o}", mode & 0o777),
            "key file is accessible by group or others; run chmod 600 on it"
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path, _meta: &fs::Metadata) {}
