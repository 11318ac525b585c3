//! `credvault password ...`: hash and verify passwords.

use std::io::IsTerminal as _;
use std::path::Path;

use credvault::password::{ARGON2ID_OWASP_MEMORY_KIB, ARGON2ID_OWASP_PARALLELISM};
use credvault::{PasswordPolicy, Verification};
use serde_json::json;
use zeroize::Zeroizing;

use crate::cli::{PasswordCommand, PolicyArgs, SchemeArg};
use crate::error::CliError;
use crate::output::{self, Output};

pub(crate) fn run(command: PasswordCommand, out: Output) -> Result<(), CliError> {
    match command {
        PasswordCommand::Hash(args) => {
            let policy = policy(&args)?;
            let password = output::read_password(true)?;
            let hash = policy.hash_bytes(&password)?;
            out.print(&json!({ "hash": hash }), || format!("{hash}\n"))
        }
        PasswordCommand::Verify {
            hash,
            hash_file,
            policy: args,
        } => {
            let policy = policy(&args)?;
            let (hash, password) = match (hash, hash_file) {
                (Some(hash), _) => (hash, output::read_password(false)?),
                (None, Some(file)) if file.as_os_str() == "-" => stdin_hash_and_password()?,
                (None, Some(file)) => (read_hash_file(&file)?, output::read_password(false)?),
                (None, None) => {
                    return Err(CliError::new("no stored hash given")
                        .hint("pass --hash-file FILE (or - for stdin)"));
                }
            };
            let verification = policy.verify_bytes(&password, &hash)?;
            let needs_rehash = verification.needs_rehash();
            let matched = verification.is_accepted();
            if out.is_json() || matched {
                out.print(
                    &json!({ "match": matched, "needs_rehash": needs_rehash }),
                    || match verification {
                        Verification::Accepted { needs_rehash: true } => {
                            "match; the hash is weaker than the policy: store a new one\n"
                                .to_owned()
                        }
                        _ => "match\n".to_owned(),
                    },
                )?;
            }
            if matched {
                Ok(())
            } else {
                Err(CliError::check_failed("password does not match the hash")
                    .hint("check the password and the stored hash"))
            }
        }
    }
}

/// The first line of `file`: a stored hash.
fn read_hash_file(file: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(file).map_err(|e| CliError::io("reading", file, &e))?;
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// `--hash-file -`: the hash is stdin's first line; the password is the rest of stdin
/// (without one trailing newline), or a prompt when stdin is a terminal.
fn stdin_hash_and_password() -> Result<(String, Zeroizing<Vec<u8>>), CliError> {
    if std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::stdio("reading the hash from stdin", &e))?;
        return Ok((line.trim().to_owned(), output::read_password(false)?));
    }
    let input = output::read_stdin()?;
    let cut = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    let hash = std::str::from_utf8(&input[..cut])
        .map_err(|_| CliError::new("the stored hash on stdin is not utf-8"))?
        .trim()
        .to_owned();
    let mut password = Zeroizing::new(input.get(cut + 1..).unwrap_or_default().to_vec());
    output::strip_newline(&mut password);
    Ok((hash, password))
}

/// The policy `--scheme` and `--cost` name; the library refuses unsafe costs.
fn policy(args: &PolicyArgs) -> Result<PasswordPolicy, CliError> {
    Ok(match (args.scheme, args.cost) {
        (SchemeArg::Bcrypt, cost) => PasswordPolicy::bcrypt(cost.unwrap_or(BCRYPT_DEFAULT_COST))?,
        (SchemeArg::Pbkdf2Sha256, iterations) => PasswordPolicy::pbkdf2_sha256(
            iterations.unwrap_or(credvault::password::PBKDF2_SHA256_OWASP_ITERATIONS),
        )?,
        (SchemeArg::Argon2id, None) => PasswordPolicy::default(),
        (SchemeArg::Argon2id, Some(passes)) => PasswordPolicy::argon2id(
            ARGON2ID_OWASP_MEMORY_KIB,
            passes,
            ARGON2ID_OWASP_PARALLELISM,
        )?,
    })
}

/// bcrypt's default cost: the "cost 12" privacy policies promise.
const BCRYPT_DEFAULT_COST: u32 = credvault::password::BCRYPT_PROMISED_COST;
