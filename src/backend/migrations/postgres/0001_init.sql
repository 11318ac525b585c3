-- credvault schema version 1 (PostgreSQL). Run by PgBackend::migrate inside its transaction,
-- under an advisory lock, with `SET LOCAL search_path` naming the configured schema (if any)
-- so that the names below land there; credvault_schema records the version.
-- Times are Unix seconds; sealed payloads and wrapped keys are BYTEA; metadata is JSON text.
-- Identifiers use the "C" collation so that (kind, name) order is byte order, as in SQLite
-- and the memory backend.

CREATE TABLE credvault_tenants (
    tenant_id   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    wrapped_dek BYTEA  NOT NULL,
    dek_version BIGINT NOT NULL,
    kek_version BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    deleted_at  BIGINT,
    purge_after BIGINT
);

CREATE INDEX credvault_tenants_purge_after ON credvault_tenants (purge_after);

CREATE TABLE credvault_secrets (
    tenant_id   TEXT COLLATE "C" NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    sealed      BYTEA  NOT NULL,
    dek_version BIGINT NOT NULL,
    kek_version BIGINT NOT NULL,
    metadata    TEXT   NOT NULL,
    provider    TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    purge_after BIGINT,
    lease_until BIGINT,
    PRIMARY KEY (tenant_id, kind, name)
);

CREATE INDEX credvault_secrets_tenant_provider ON credvault_secrets (tenant_id, provider);
CREATE INDEX credvault_secrets_purge_after ON credvault_secrets (purge_after);
CREATE INDEX credvault_secrets_expires_at ON credvault_secrets (expires_at);

CREATE TABLE credvault_audit (
    id        BIGSERIAL PRIMARY KEY,
    at        BIGINT NOT NULL,
    tenant_id TEXT COLLATE "C",
    kind      TEXT,
    name      TEXT,
    action    TEXT   NOT NULL,
    actor     TEXT   NOT NULL,
    outcome   TEXT   NOT NULL
);

CREATE INDEX credvault_audit_at ON credvault_audit (at);
CREATE INDEX credvault_audit_tenant_at ON credvault_audit (tenant_id, at);
