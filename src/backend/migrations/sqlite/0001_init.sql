-- credvault schema version 1 (SQLite). Run by SqliteBackend::migrate inside its
-- BEGIN IMMEDIATE transaction; credvault_schema records the version.
-- Times are Unix seconds; sealed payloads and wrapped keys are BLOBs; metadata is JSON text.

CREATE TABLE credvault_tenants (
    tenant_id   TEXT    NOT NULL PRIMARY KEY,
    wrapped_dek BLOB    NOT NULL,
    dek_version INTEGER NOT NULL,
    kek_version INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    deleted_at  INTEGER,
    purge_after INTEGER
);

CREATE INDEX credvault_tenants_purge_after ON credvault_tenants (purge_after);

CREATE TABLE credvault_secrets (
    tenant_id   TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    sealed      BLOB    NOT NULL,
    dek_version INTEGER NOT NULL,
    kek_version INTEGER NOT NULL,
    metadata    TEXT    NOT NULL,
    provider    TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    purge_after INTEGER,
    lease_until INTEGER,
    PRIMARY KEY (tenant_id, kind, name)
);

CREATE INDEX credvault_secrets_tenant_provider ON credvault_secrets (tenant_id, provider);
CREATE INDEX credvault_secrets_purge_after ON credvault_secrets (purge_after);
CREATE INDEX credvault_secrets_expires_at ON credvault_secrets (expires_at);

CREATE TABLE credvault_audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    tenant_id TEXT,
    kind      TEXT,
    name      TEXT,
    action    TEXT    NOT NULL,
    actor     TEXT    NOT NULL,
    outcome   TEXT    NOT NULL
);

CREATE INDEX credvault_audit_at ON credvault_audit (at);
CREATE INDEX credvault_audit_tenant_at ON credvault_audit (tenant_id, at);
