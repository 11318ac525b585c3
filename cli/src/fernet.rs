//! `credvault fernet ...`: Fernet tokens, as Python's `cryptography` makes them.

use std::path::Path;

use credvault::crypto::fernet::{Fernet, MultiFernet};
use zeroize::Zeroizing;

use crate::cli::FernetCommand;
use crate::error::CliError;
use crate::output;

pub(crate) fn run(command: FernetCommand) -> Result<(), CliError> {
    match command {
        FernetCommand::Encrypt { key, at } => {
            let fernet = load_keys(&key.key_file)?;
            let data = output::read_stdin()?;
            let token = match at {
                Some(time) => fernet.encrypt_at_time(&data, time),
                None => fernet.encrypt(&data),
            };
            output::write_stdout(format!("{token}\n").as_bytes())
        }
        FernetCommand::Decrypt { key, ttl, at } => {
            let fernet = load_keys(&key.key_file)?;
            let mut token = output::read_stdin()?;
            output::strip_newline(&mut token);
            let plain = match (ttl, at) {
                (Some(ttl), Some(time)) => fernet.decrypt_at_time(&*token, ttl, time)?,
                (Some(ttl), None) => fernet.decrypt_with_ttl(&*token, ttl)?,
                (None, _) => fernet.decrypt(&*token)?,
            };
            output::write_stdout(plain.expose_secret())
        }
        FernetCommand::Rotate { key } => {
            let fernet = load_keys(&key.key_file)?;
            let mut token = output::read_stdin()?;
            output::strip_newline(&mut token);
            let rotated = fernet.rotate(&*token)?;
            output::write_stdout(format!("{rotated}\n").as_bytes())
        }
    }
}

/// One Fernet key per non-empty line, the first one primary.
pub(crate) fn load_keys(path: &Path) -> Result<MultiFernet, CliError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| CliError::io("fernet key file", path, &e))?,
    );
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        keys.push(Fernet::new(line).map_err(|e| {
            CliError::new(format!(
                "fernet key file {} line {}: {e}",
                path.display(),
                n + 1
            ))
            .hint("each line must be one fernet key, e.g. from `credvault key generate --format fernet`")
        })?);
    }
    MultiFernet::new(keys).map_err(|e| {
        CliError::new(format!("fernet key file {}: {e}", path.display()))
            .hint("put at least one fernet key in it, newest first")
    })
}
