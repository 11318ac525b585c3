//! `credvault password ...`: hash and verify passwords.

use credvault::password::{ARGON2ID_OWASP_MEMORY_KIB, ARGON2ID_OWASP_PARALLELISM};
use credvault::{PasswordPolicy, Verification};
use serde_json::json;

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
        PasswordCommand::Verify { hash, policy: args } => {
            let policy = policy(&args)?;
            let password = output::read_password(false)?;
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
                    .hint("check the password and the --hash value"))
            }
        }
    }
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
