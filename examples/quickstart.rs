//! The main job on the embedded default: one key file, records sealed, keys rotated, records
//! reopened. `cargo run --example quickstart [KEY_FILE]` (default `./credvault-keys.json`).
//!
//! Run it twice: the second run loads the key file the first one saved, opens what it sealed,
//! and rotates again.

use std::path::PathBuf;

use credvault::crypto::Context;
use credvault::crypto::fernet::Fernet;
use credvault::keys::{KeyError, Keyring};

fn main() -> Result<(), credvault::Error> {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("credvault-keys.json"), PathBuf::from);
    let sealed_path = path.with_extension("sealed.txt");

    // Load the keyring, or create one on the first run (never silently on a broken file).
    let mut ring = match Keyring::load(&path) {
        Ok(ring) => ring,
        Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            println!("no key file at {}: generating one", path.display());
            Keyring::generate()?
        }
        Err(e) => return Err(e.into()),
    };

    let ctx = Context::record("acme", "oauth_token", "github")?;
    if let Ok(previous) = std::fs::read_to_string(&sealed_path) {
        let token = ring.open_text(&previous, &ctx)?;
        println!("opened the record sealed last run ({} bytes)", token.len());
    }

    let sealed = ring.seal_text(b"gho_example_access_token", &ctx)?;
    let rotated_to = ring.rotate()?;
    let resealed = ring.seal_text(b"gho_example_access_token", &ctx)?;
    let same = ring.open_text(&sealed, &ctx)? == ring.open_text(&resealed, &ctx)?;
    println!("sealed under the old primary, rotated to {rotated_to}, both open: {same}");

    ring.save(&path)?;
    std::fs::write(&sealed_path, &resealed).map_err(|source| KeyError::Io {
        path: sealed_path.clone(),
        source,
    })?;
    for info in ring.infos() {
        println!(
            "  key {}  {:<12}  created {}",
            info.version, info.state, info.created_at
        );
    }
    println!("saved {} and {}", path.display(), sealed_path.display());

    // Fernet, for columns shared with Python services.
    let fernet = Fernet::new(Fernet::generate_key().expose_secret())?;
    let token = fernet.encrypt(b"refresh-token");
    let back = fernet.decrypt(&token)?;
    println!(
        "fernet token of {} characters round-trips: {}",
        token.len(),
        back.expose_secret() == b"refresh-token"
    );
    Ok(())
}
