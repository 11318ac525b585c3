//! `credvault`: the operator command line. Parses, calls the library's public API, prints.
//!
//! Every command takes `--json`; errors print what happened and then what to do; exit status
//! 0 is success, 1 a failed check (password mismatch, invalid token), 2 any other error.

mod cli;
mod error;
mod fernet;
mod import;
mod keys;
mod output;
mod password;
mod progress;
mod report;
mod rotate;
mod vault;

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::cli::{Cli, Command, PromisesCommand, VaultArgs, VaultCommand};
use crate::error::CliError;
use crate::output::Output;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.code())
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    let out = Output::new(cli.json);
    match cli.command {
        Command::Key(command) => keys::run(command, out),
        Command::Fernet(command) => fernet::run(command),
        Command::Password(command) => password::run(command, out),
        Command::Vault(args) => runtime()?.block_on(vault::run(args, out)),
        Command::Promises(PromisesCommand::Check(check)) => {
            let args = VaultArgs {
                db: check.db,
                keys: check.keys,
                tenant_keys: check.tenant_keys,
                actor: cli::DEFAULT_ACTOR.to_owned(),
                sealing_suite: None,
                promises: Some(check.promises),
                command: VaultCommand::PromisesCheck {
                    format: check.format,
                    password_hashes: check.password_hashes,
                },
            };
            runtime()?.block_on(vault::run(args, out))
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("starting the async runtime: {e}")))
}

/// Sends the library's `tracing` events (a key file others can read, a failed audit flush) to
/// stderr, where the operator sees them: warnings and errors by default, more with each `-v`,
/// then the directives of `RUST_LOG` (a bare level there replaces the one `-v` chose).
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        2 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    };
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_default();
    let filter = EnvFilter::builder().parse_lossy(format!("{level},{rust_log}"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .init();
}
