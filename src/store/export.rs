//! Data portability: a tenant's records as JSON (decrypted, on explicit request) and their
//! metadata as CSV, streamed page by page so a large tenant never sits in memory.

use serde_json::json;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use crate::backend::{
    AuditAction, AuditQuery, AuditRow, RowFault, SecretRow, TenantRow, UnreadableRow,
};
use crate::store::tenant::{PAGE, open_fault};
use crate::store::{On, RecordInfo, StoreError, Tenant};

/// What an export wrote. Serialised with these field names.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportReport {
    /// Records written.
    pub records: u64,
    /// Records that could not be exported (the count of [`skipped`](Self::skipped)).
    pub unreadable: u64,
    /// The rows skipped, named, with the class of the fault (listed in the JSON export's
    /// `unreadable` array; in the CSV export only here). An export that skipped anything is
    /// incomplete: the CLI exits 1.
    pub skipped: Vec<UnreadableRow>,
    /// The tenant's audit rows written (the JSON export's `audit` array, or
    /// [`Tenant::export_audit_csv`]).
    pub audit: u64,
}

impl ExportReport {
    fn skip(&mut self, row: UnreadableRow) {
        self.unreadable = self.unreadable.saturating_add(1);
        self.skipped.push(row);
    }
}

/// What [`Tenant::export_json_with`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Whether each record's decrypted payload is written (default `true`). Without it,
    /// nothing is decrypted: the export holds the records' clear metadata only.
    pub secrets: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self { secrets: true }
    }
}

impl ExportOptions {
    /// The records' metadata only: no payload, nothing decrypted.
    pub fn metadata_only() -> Self {
        Self { secrets: false }
    }

    /// Sets [`secrets`](Self::secrets).
    pub fn with_secrets(mut self, secrets: bool) -> Self {
        self.secrets = secrets;
        self
    }
}

/// The CSV header of [`Tenant::export_audit_csv`].
pub const AUDIT_CSV_HEADER: &str = "at,kind,name,action,actor,outcome\n";

/// The CSV header of [`Tenant::export_csv`].
pub const CSV_HEADER: &str =
    "kind,name,version,provider,created_at,updated_at,expires_at,purge_after,metadata\n";

impl Tenant {
    /// Writes every record of the tenant, **decrypted**, as one JSON document, with the
    /// tenant's own audit rows (the personal data the vault holds includes who read and
    /// changed what):
    ///
    /// ```text
    /// {"tenant": "...", "exported_at": 1700000000,
    ///  "records": [{"kind", "name", "version", "provider", "created_at", "updated_at",
    ///               "expires_at", "purge_after", "metadata", "payload"}, ...],
    ///  "unreadable": [{"tenant", "kind", "name", "reason", "column"?}, ...],
    ///  "audit": [{"at", "tenant", "kind", "name", "action", "actor", "outcome"}, ...]}
    /// ```
    ///
    /// A row that cannot be exported (a name that is not valid, metadata that is not JSON, a
    /// payload that does not open) is skipped and listed under `unreadable` with the class of
    /// its fault (a payload that does not open is also audited as `open_failed`, as a failed
    /// `get` is); the rest is written and the document stays whole. Allowed during the
    /// deletion grace period. A tenant that never stored anything (or was purged) exports as
    /// empty `records`. Audited as `export`. To leave the secrets out, use
    /// [`export_json_with`](Self::export_json_with) and [`ExportOptions::metadata_only`].
    ///
    /// The document is streamed: if writing or reading fails half-way, `out` holds a prefix
    /// of it. Write to a temporary file and rename it, or to memory, when that matters (the
    /// CLI does).
    ///
    /// # Errors
    ///
    /// [`StoreError::TenantShredded`], storage errors, [`StoreError::Export`] if writing fails.
    #[tracing::instrument(name = "credvault.export_json", skip_all, fields(tenant = %self.id), err(Display, level = "debug"))]
    pub async fn export_json<W: AsyncWrite + Unpin>(
        &self,
        out: &mut W,
    ) -> Result<ExportReport, StoreError> {
        self.export_json_with(out, ExportOptions::default()).await
    }

    /// [`export_json`](Self::export_json) with `options`. With `secrets: false` nothing is
    /// decrypted: each record has no `payload` member (`unreadable` lists only rows that do
    /// not decode), and the export is audited as `export_metadata` (a shredded tenant's
    /// remaining rows can still be listed this way).
    ///
    /// # Errors
    ///
    /// As [`export_json`](Self::export_json).
    #[tracing::instrument(name = "credvault.export_json_with", skip_all, fields(tenant = %self.id, secrets = options.secrets), err(Display, level = "debug"))]
    pub async fn export_json_with<W: AsyncWrite + Unpin>(
        &self,
        out: &mut W,
        options: ExportOptions,
    ) -> Result<ExportReport, StoreError> {
        let tenant = self.export_tenant(options.secrets).await?;
        let header =
            json!({ "tenant": self.id.as_str(), "exported_at": self.vault.now() }).to_string();
        write(out, &header.as_bytes()[..header.len() - 1]).await?;
        write(out, b",\"records\":[").await?;
        let mut report = ExportReport::default();
        let mut failed_opens = Vec::new();
        let mut after = None;
        let on = &mut On::Pool;
        while tenant.is_some() {
            let (page, next) = self.page(on, None, None, after.take()).await?;
            page.unreadable.into_iter().for_each(|u| report.skip(u));
            let personal = self.metadata_key(&page.rows).await?;
            for row in &page.rows {
                let info = match RecordInfo::checked(row, personal.as_deref()) {
                    Ok(info) => info,
                    Err(skipped) => {
                        report.skip(skipped);
                        continue;
                    }
                };
                let payload = match &tenant {
                    Some(t) if options.secrets => match self.open_bytes(on, row.into(), t).await {
                        Ok(p)
                            if serde_json::from_slice::<serde::de::IgnoredAny>(
                                p.expose_secret(),
                            )
                            .is_ok() =>
                        {
                            Some(p)
                        }
                        Ok(_) => {
                            report.skip(UnreadableRow::of_key(
                                &row.key,
                                RowFault::InvalidPayload,
                                Some("sealed"),
                            ));
                            continue;
                        }
                        Err(e) => {
                            let fault = open_fault(&e).ok_or(e)?;
                            report.skip(UnreadableRow::of_key(&row.key, fault, Some("sealed")));
                            // Audited like a failed `get`: a tampered or foreign record
                            // met by an export is seen in the log, not only in this report.
                            let outcome = format!("failed: {fault}");
                            failed_opens.push(
                                self.sealed_audit(&row.key, AuditAction::OpenFailed, &outcome)
                                    .await?,
                            );
                            continue;
                        }
                    },
                    _ => None,
                };
                let mut meta = record_json(row, info.metadata).to_string();
                if report.records > 0 {
                    write(out, b",").await?;
                }
                if let Some(payload) = payload {
                    meta.pop(); // reopen the object to append the payload
                    write(out, meta.as_bytes()).await?;
                    write(out, b",\"payload\":").await?;
                    write(out, payload.expose_secret()).await?;
                    write(out, b"}").await?;
                } else {
                    write(out, meta.as_bytes()).await?;
                }
                report.records += 1;
            }
            if !failed_opens.is_empty() {
                self.vault.backend().append_audit(&failed_opens).await?;
                failed_opens.clear();
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let unreadable_text = serde_json::to_string(&report.skipped)
            .map_err(|e| StoreError::Export(std::io::Error::other(e)))?;
        write(out, b"],\"unreadable\":").await?;
        write(out, unreadable_text.as_bytes()).await?;
        write(out, b",\"audit\":[").await?;
        let mut first = true;
        self.each_audit_page(
            |rows| {
                let mut text = Vec::new();
                for row in rows {
                    if !std::mem::take(&mut first) {
                        text.push(b',');
                    }
                    serde_json::to_writer(&mut text, row)
                        .map_err(|e| StoreError::Export(std::io::Error::other(e)))?;
                }
                Ok(text)
            },
            out,
            &mut report,
        )
        .await?;
        write(out, b"]}\n").await?;
        out.flush().await.map_err(StoreError::Export)?;
        let action = if options.secrets {
            AuditAction::ExportJson
        } else {
            AuditAction::ExportMetadata
        };
        self.audit_export(action).await?;
        Ok(report)
    }

    /// Writes the metadata of every record (nothing decrypted) as CSV with the header
    /// [`CSV_HEADER`]. Cells that a spreadsheet would read as a formula (starting with `=`,
    /// `+`, `-` or `@`) are prefixed with `'`. A row that cannot be read (a name that is not
    /// valid, metadata that is not JSON) is skipped and named in the report's
    /// [`skipped`](ExportReport::skipped). The tenant's audit rows are a second CSV document:
    /// [`export_audit_csv`](Self::export_audit_csv).
    ///
    /// # Errors
    ///
    /// As [`export_json`](Self::export_json).
    #[tracing::instrument(name = "credvault.export_csv", skip_all, fields(tenant = %self.id), err(Display, level = "debug"))]
    pub async fn export_csv<W: AsyncWrite + Unpin>(
        &self,
        out: &mut W,
    ) -> Result<ExportReport, StoreError> {
        let tenant = self.export_tenant(true).await?;
        write(out, CSV_HEADER.as_bytes()).await?;
        let mut report = ExportReport::default();
        let mut after = None;
        while tenant.is_some() {
            let (page, next) = self.page(&mut On::Pool, None, None, after.take()).await?;
            page.unreadable.into_iter().for_each(|u| report.skip(u));
            let personal = self.metadata_key(&page.rows).await?;
            for row in &page.rows {
                let info = match RecordInfo::checked(row, personal.as_deref()) {
                    Ok(info) => info,
                    Err(skipped) => {
                        report.skip(skipped);
                        continue;
                    }
                };
                let cells = [
                    row.key.kind.to_string(),
                    row.key.name.to_string(),
                    row.version.to_string(),
                    row.provider.clone().unwrap_or_default(),
                    row.created_at.to_string(),
                    row.updated_at.to_string(),
                    row.expires_at.map(|t| t.to_string()).unwrap_or_default(),
                    row.purge_after.map(|t| t.to_string()).unwrap_or_default(),
                    info.metadata.to_string(),
                ];
                let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                write(out, line.join(",").as_bytes()).await?;
                write(out, b"\n").await?;
                report.records += 1;
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        out.flush().await.map_err(StoreError::Export)?;
        self.audit_export(AuditAction::ExportCsv).await?;
        Ok(report)
    }

    /// Writes the tenant's own audit rows, oldest first, as CSV with the header
    /// [`AUDIT_CSV_HEADER`]: the second file of a CSV export (the JSON export holds them in
    /// its `audit` array). Cells are quoted and guarded as in
    /// [`export_csv`](Self::export_csv). Returns how many rows were written.
    ///
    /// # Errors
    ///
    /// Storage errors, [`StoreError::Export`] if writing fails.
    #[tracing::instrument(name = "credvault.export_audit_csv", skip_all, fields(tenant = %self.id), err(Display, level = "debug"))]
    pub async fn export_audit_csv<W: AsyncWrite + Unpin>(
        &self,
        out: &mut W,
    ) -> Result<u64, StoreError> {
        write(out, AUDIT_CSV_HEADER.as_bytes()).await?;
        let mut report = ExportReport::default();
        self.each_audit_page(
            |rows| {
                let mut text = String::new();
                for row in rows {
                    let cells = [
                        row.at.to_string(),
                        row.kind.clone().unwrap_or_default(),
                        row.name.clone().unwrap_or_default(),
                        row.action.as_str().to_owned(),
                        row.actor.clone(),
                        row.outcome.clone(),
                    ];
                    let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                    text.push_str(&line.join(","));
                    text.push('\n');
                }
                Ok(text.into_bytes())
            },
            out,
            &mut report,
        )
        .await?;
        out.flush().await.map_err(StoreError::Export)?;
        Ok(report.audit)
    }

    /// Reads the tenant's audit rows page by page (oldest first), writes what `render` makes
    /// of each page to `out`, and counts them in `report.audit`.
    async fn each_audit_page<W: AsyncWrite + Unpin>(
        &self,
        mut render: impl FnMut(&[AuditRow]) -> Result<Vec<u8>, StoreError>,
        out: &mut W,
        report: &mut ExportReport,
    ) -> Result<(), StoreError> {
        self.vault.flush_audit().await?;
        let rows = self
            .vault
            .backend()
            .audit(&AuditQuery {
                tenant: Some(self.id.clone()),
                ..AuditQuery::default()
            })
            .await?;
        let rows = self.vault.open_audit(rows).await?;
        for chunk in rows.chunks(usize::try_from(PAGE).unwrap_or(200)) {
            write(out, &render(chunk)?).await?;
        }
        report.audit = u64::try_from(rows.len()).unwrap_or(u64::MAX);
        Ok(())
    }

    /// The tenant's row for an export (`None` if it never stored anything): deleted tenants
    /// are allowed, shredded ones are not when `secrets` are exported.
    async fn export_tenant(&self, secrets: bool) -> Result<Option<TenantRow>, StoreError> {
        let row = self.vault.backend().tenant(&self.id).await?;
        if secrets && let Some(row) = &row {
            self.vault.dek(row).await?;
        }
        Ok(row)
    }

    async fn audit_export(&self, action: AuditAction) -> Result<(), StoreError> {
        let audit = [self
            .vault
            .seal_audit_row(self.vault.tenant_audit(&self.id, action, &self.actor, "ok"))
            .await?];
        Ok(self.vault.backend().append_audit(&audit).await?)
    }
}

fn record_json(row: &SecretRow, metadata: serde_json::Value) -> serde_json::Value {
    json!({
        "kind": row.key.kind.as_str(),
        "name": row.key.name.as_str(),
        "version": row.version,
        "provider": row.provider,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "expires_at": row.expires_at,
        "purge_after": row.purge_after,
        "metadata": metadata,
    })
}

/// RFC 4180 quoting, plus a `'` before cells a spreadsheet would evaluate.
fn csv_cell(cell: &str) -> String {
    let guarded = if cell.starts_with(['=', '+', '-', '@']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

async fn write<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8]) -> Result<(), StoreError> {
    out.write_all(bytes).await.map_err(StoreError::Export)
}
