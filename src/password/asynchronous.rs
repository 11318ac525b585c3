//! Async wrappers that run hashing on tokio's blocking pool.
//!
//! A bcrypt-12 hash holds a thread for ~300 ms; on a tokio worker it stalls every other task
//! scheduled there. These methods move the work to `tokio::task::spawn_blocking`.

use super::{PasswordError, PasswordPolicy, Upgrade, Verification};
use crate::SecretString;

impl PasswordPolicy {
    /// [`hash`](Self::hash) on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`hash`](Self::hash), or [`PasswordError::TaskFailed`] if the task panicked or the
    /// runtime is shutting down.
    pub async fn hash_async(&self, password: SecretString) -> Result<String, PasswordError> {
        let policy = self.clone();
        run(move || policy.hash(&password)).await?
    }

    /// [`verify`](Self::verify) on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`verify`](Self::verify), or [`PasswordError::TaskFailed`].
    pub async fn verify_async(
        &self,
        password: SecretString,
        hash: String,
    ) -> Result<Verification, PasswordError> {
        let policy = self.clone();
        run(move || policy.verify(&password, &hash)).await?
    }

    /// [`verify_and_upgrade`](Self::verify_and_upgrade) on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As [`verify_and_upgrade`](Self::verify_and_upgrade), or [`PasswordError::TaskFailed`].
    pub async fn verify_and_upgrade_async(
        &self,
        password: SecretString,
        hash: String,
    ) -> Result<Upgrade, PasswordError> {
        let policy = self.clone();
        run(move || policy.verify_and_upgrade(&password, &hash)).await?
    }

    /// [`verify_dummy`](Self::verify_dummy) on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// [`PasswordError::TaskFailed`].
    pub async fn verify_dummy_async(
        &self,
        password: SecretString,
    ) -> Result<Verification, PasswordError> {
        let policy = self.clone();
        run(move || policy.verify_dummy(&password)).await
    }
}

async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| PasswordError::TaskFailed)
}
