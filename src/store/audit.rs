//! The audit log: changes are written in their own transaction; reads are buffered.
//!
//! A read must stay a read: one synchronous insert per `get` would turn every read into a disk
//! write. Read events are therefore kept in memory and written in batches: when a batch is
//! full, when [`Vault::flush_audit`] is called, and by the background flusher
//! ([`Vault::spawn_audit_flusher`]). **A crash loses at most the read events not yet
//! flushed**; changes (put, update, delete, disconnect, purge...) are never lost because their
//! audit rows commit with them. Choose [`ReadAudit::Synchronous`] to write every read event
//! before the read returns.

use std::time::Duration;

use crate::backend::{AuditQuery, AuditRow};
use crate::store::{StoreError, Vault};

/// How read events (`get`, `export`) reach the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadAudit {
    /// Buffered in memory and written in batches of `batch` rows (see the module docs for
    /// what a crash may lose).
    Buffered {
        /// Rows per batch.
        batch: usize,
    },
    /// Written before each read returns (one insert per read).
    Synchronous,
    /// Not recorded.
    Off,
}

impl Default for ReadAudit {
    fn default() -> Self {
        Self::Buffered { batch: 64 }
    }
}

impl Vault {
    /// Records a read event according to the vault's [`ReadAudit`] mode.
    pub(crate) async fn record_read(&self, row: AuditRow) -> Result<(), StoreError> {
        if self.config().read_audit == ReadAudit::Off {
            return Ok(());
        }
        let row = self.seal_audit_row(row).await?;
        match self.config().read_audit {
            ReadAudit::Off => Ok(()),
            ReadAudit::Synchronous => Ok(self
                .backend()
                .append_audit(std::slice::from_ref(&row))
                .await?),
            ReadAudit::Buffered { batch } => {
                let full = {
                    let mut buf = self.read_buffer();
                    buf.push(row);
                    (buf.len() >= batch).then(|| std::mem::take(&mut *buf))
                };
                match full {
                    Some(rows) => self.write_batch(rows).await,
                    None => Ok(()),
                }
            }
        }
    }

    /// Writes the buffered read events now. Call it before shutting down.
    ///
    /// # Errors
    ///
    /// A storage error; the events are put back in the buffer to try again.
    pub async fn flush_audit(&self) -> Result<(), StoreError> {
        let rows = std::mem::take(&mut *self.read_buffer());
        if rows.is_empty() {
            return Ok(());
        }
        self.write_batch(rows).await
    }

    /// Spawns a task on the current tokio runtime that flushes buffered read events every
    /// `interval`, until the last clone of the vault is dropped.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn spawn_audit_flusher(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                let vault = Vault { inner };
                if let Err(e) = vault.flush_audit().await {
                    tracing::warn!(error = %e, "credvault: flushing read audit events failed; will retry");
                }
            }
        })
    }

    /// Audit rows, oldest first. A tenant's actors and record names are stored sealed under its
    /// personal-data key and shown opened; once the tenant is purged (its shred secret
    /// destroyed) they read `?`.
    ///
    /// # Errors
    ///
    /// A storage error; a key error (the vault key or a shred secret cannot be read).
    pub async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        self.flush_audit().await?;
        let rows = self.backend().audit(query).await?;
        self.open_audit(rows).await
    }

    async fn write_batch(&self, rows: Vec<AuditRow>) -> Result<(), StoreError> {
        if let Err(e) = self.backend().append_audit(&rows).await {
            let mut buf = self.read_buffer();
            let newer = std::mem::replace(&mut *buf, rows);
            buf.extend(newer);
            return Err(e.into());
        }
        Ok(())
    }

    fn read_buffer(&self) -> std::sync::MutexGuard<'_, Vec<AuditRow>> {
        // A poisoned buffer only means a panic elsewhere while pushing; the rows are intact.
        self.inner
            .read_buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
