//! `credvault key ...`: the key file.

use std::io::Write as _;
use std::path::Path;

use credvault::crypto::fernet::Fernet;
use credvault::keys::KeyProvider;
use credvault::{KeyVersion, Keyring};
use serde_json::json;

use crate::cli::{KeyCommand, KeyFormat};
use crate::error::CliError;
use crate::output::{self, Output};

pub(crate) fn run(command: KeyCommand, out: Output) -> Result<(), CliError> {
    match command {
        KeyCommand::Generate { format, out: file } => generate(format, file.as_deref(), out),
        KeyCommand::Rotate(keys) => {
            if let Some(kek) = crate::vault::external_kek(Some(&keys.keys))? {
                let version = kek.rotate()?;
                return out.print(
                    &json!({ "primary": version.get(), "keys": kek.describe() }),
                    || {
                        format!(
                            "key version {version} is now primary in {}; {} is decrypt-only; \
                             `credvault vault rotate --kek` rewraps the data keys under it\n",
                            kek.describe(),
                            version.prev()
                        )
                    },
                );
            }
            let mut ring = Keyring::load(&keys.keys)?;
            let version = ring.rotate()?;
            ring.save(&keys.keys)?;
            out.print(&json!({ "primary": version.get() }), || {
                format!(
                    "key version {version} is now primary; {} is decrypt-only\n",
                    version.prev()
                )
            })
        }
        KeyCommand::List(keys) => match crate::vault::external_kek(Some(&keys.keys))? {
            Some(kek) => list_provider(kek.provider(), out),
            None => list(&Keyring::load(&keys.keys)?, out),
        },
        KeyCommand::Destroy { version, keys, yes } => {
            let version = KeyVersion::new(version);
            let mut ring = Keyring::load(&keys.keys)?;
            if !yes {
                // The library's own checks first (primary, unknown version), on a copy.
                ring.clone().destroy(version)?;
                return Err(CliError::new(format!(
                    "destroying key version {version} is irreversible: what it sealed can \
                     never be opened again"
                ))
                .hint("make sure no tenant still needs it, then add --yes"));
            }
            ring.destroy(version)?;
            ring.save(&keys.keys)?;
            out.print(&json!({ "destroyed": version.get() }), || {
                format!("key version {version} destroyed\n")
            })
        }
        KeyCommand::MinVersion { version, keys } => {
            let version = KeyVersion::new(version);
            let mut ring = Keyring::load(&keys.keys)?;
            ring.set_min_decryption_version(version)?;
            ring.save(&keys.keys)?;
            out.print(&json!({ "min_decryption_version": version.get() }), || {
                format!("versions below {version} no longer open anything\n")
            })
        }
    }
}

fn generate(format: KeyFormat, file: Option<&Path>, out: Output) -> Result<(), CliError> {
    let refuse = |path: &Path| {
        CliError::new(format!("{} already exists", path.display()))
            .hint("a key file is never overwritten: remove it first or choose another --out")
    };
    match (format, file) {
        (KeyFormat::Keyring, None) => {
            let ring = Keyring::generate()?;
            output::write_stdout(ring.to_json().expose_secret().as_bytes())
        }
        (KeyFormat::Keyring, Some(path)) => {
            if path.exists() {
                return Err(refuse(path));
            }
            // Creates only if missing (a file that appears meanwhile is an error, never replaced).
            let ring = Keyring::create_new(path)?;
            let primary = ring.primary_version();
            out.print(
                &json!({ "file": path.display().to_string(), "primary": primary.get() }),
                || format!("wrote {} (key version {primary})\n", path.display()),
            )
        }
        (KeyFormat::Fernet, None) => {
            let key = Fernet::generate_key();
            output::write_stdout(key.expose_secret().as_bytes())?;
            output::write_stdout(b"\n")
        }
        (KeyFormat::Fernet, Some(path)) => {
            if path.exists() {
                return Err(refuse(path));
            }
            let key = Fernet::generate_key();
            let mut file = output::create_secret_file(path)?;
            file.write_all(key.expose_secret().as_bytes())
                .and_then(|()| file.write_all(b"\n"))
                .and_then(|()| file.sync_all())
                .map_err(|e| CliError::io("writing", path, &e))?;
            out.print(&json!({ "file": path.display().to_string() }), || {
                format!("wrote {}\n", path.display())
            })
        }
    }
}

fn list(ring: &Keyring, out: Output) -> Result<(), CliError> {
    let infos: Vec<_> = ring.infos().collect();
    let value = json!({
        "primary": ring.primary_version().get(),
        "min_decryption_version": ring.min_decryption_version().get(),
        "keys": infos.iter().map(|i| json!({
            "version": i.version.get(),
            "state": i.state.as_str(),
            "created_at": i.created_at,
            "below_minimum": i.below_minimum,
        })).collect::<Vec<_>>(),
    });
    out.print(&value, || {
        let mut text = format!(
            "{:<8} {:<13} {:<11} {}\n",
            "VERSION", "STATE", "CREATED", "BELOW-MINIMUM"
        );
        for i in &infos {
            text.push_str(&format!(
                "{:<8} {:<13} {:<11} {}\n",
                i.version.get(),
                i.state,
                i.created_at,
                if i.below_minimum { "yes" } else { "no" }
            ));
        }
        text
    })
}

/// `key list` for a KEK in a token or KMS: versions and states, never key bytes.
fn list_provider(provider: &dyn KeyProvider, out: Output) -> Result<(), CliError> {
    let infos = provider.key_infos();
    let value = json!({
        "provider": provider.describe(),
        "primary": provider.primary_version().get(),
        "keys": infos.iter().map(|i| json!({
            "version": i.version.get(),
            "state": i.state.as_str(),
            "created_at": i.created_at,
        })).collect::<Vec<_>>(),
    });
    out.print(&value, || {
        let mut text = format!("{:<8} {:<13} {}\n", "VERSION", "STATE", "CREATED");
        for i in &infos {
            text.push_str(&format!(
                "{:<8} {:<13} {}\n",
                i.version.get(),
                i.state,
                i.created_at
            ));
        }
        text
    })
}
