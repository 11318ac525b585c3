//! The audit log: changes are written in their own transaction; reads are buffered.
//!
//! A read must stay a read: one synchronous insert per `get` would turn every read into a disk
//! write. Read events are therefore kept in memory and written in batches: when a batch is
//! full, when [`Vault::flush_audit`] is called, and by the background flusher
//! ([`Vault::spawn_audit_flusher`]). **A crash loses at most the read events not yet
//! flushed**; changes (put, update, delete, disconnect, purge...) are never lost because their
//! audit rows commit with them. Choose [`ReadAudit::Synchronous`] to write every read event
//! before the read returns.
//!
//! A full batch is written by a task spawned on the current tokio runtime (one statement for
//! the batch), so the read that fills it does not wait for 64 rows to be written; outside a
//! runtime it is written before that read returns. Each event is sealed (its actor and record
//! name, under the tenant's personal-data key) when it is recorded, never later: a tenant
//! purged meanwhile leaves nothing in clear. If the log cannot be written (the rows go back
//! to the buffer and the next batch retries them), reads go on only until
//! [`MAX_BACKLOG_BATCHES`] batches are waiting; past that every read writes the backlog
//! itself and fails with the storage error while it cannot: the vault never serves reads
//! whose audit it keeps failing to write.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::backend::{AuditQuery, AuditRow};
use crate::store::{StoreError, Vault};

/// How read events (`get`, `export`) reach the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadAudit {
    /// Buffered in memory and written in batches of `batch` rows, each full batch by a task
    /// spawned on the current tokio runtime (the read that fills it does not wait). A crash
    /// loses the events not yet written. If the log cannot be written, reads fail once
    /// [`MAX_BACKLOG_BATCHES`] batches are waiting, until it can again.
    Buffered {
        /// Rows per batch.
        batch: usize,
    },
    /// Written before each read returns (one insert per read).
    Synchronous,
    /// Not recorded.
    Off,
}

/// How many full batches of read events may wait in memory while the audit log cannot be
/// written ([`ReadAudit::Buffered`]): once that many wait, every read writes them itself and
/// fails with the storage error while it cannot, so the vault never goes on serving reads
/// whose audit it keeps failing to write.
pub const MAX_BACKLOG_BATCHES: usize = 16;

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
                // Counted with the events a write in progress has taken out of the buffer:
                // the buffer's length alone would hide a failing write's rows.
                let waiting = {
                    let mut buf = self.read_buffer();
                    buf.push(row);
                    self.inner.audit_pending.fetch_add(1, Ordering::AcqRel) + 1
                };
                let batch = batch.max(1);
                if waiting >= batch.saturating_mul(MAX_BACKLOG_BATCHES) {
                    // The log has not been written for a while: this read waits for it, and
                    // fails if it still cannot be written.
                    return self.flush_audit().await;
                }
                // A write is started at each full batch (so while the log fails, once per
                // batch of reads, not at every read).
                if !waiting.is_multiple_of(batch) {
                    return Ok(());
                }
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return self.flush_audit().await;
                };
                if !self.inner.audit_write_spawned.swap(true, Ordering::AcqRel) {
                    let vault = self.clone();
                    runtime.spawn(async move {
                        let written = vault.flush_audit().await;
                        vault.inner.audit_write_spawned.store(false, Ordering::Release);
                        if let Err(e) = written {
                            tracing::warn!(error = %e, "credvault: writing buffered read audit events failed; kept for the next batch");
                        }
                    });
                }
                Ok(())
            }
        }
    }

    /// Writes the buffered read events now. Call it before shutting down.
    ///
    /// # Errors
    ///
    /// A storage error; the events are put back in the buffer to try again.
    pub async fn flush_audit(&self) -> Result<(), StoreError> {
        // One writer at a time: a flush waits for a batch being written in the background,
        // so that when it returns every event buffered before the call is in the log.
        let _writer = self.inner.audit_writer.lock().await;
        let rows = std::mem::take(&mut *self.read_buffer());
        if rows.is_empty() {
            return Ok(());
        }
        let written = rows.len();
        self.write_batch(rows).await?;
        self.inner
            .audit_pending
            .fetch_sub(written, Ordering::AcqRel);
        Ok(())
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
