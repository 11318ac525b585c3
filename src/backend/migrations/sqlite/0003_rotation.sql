-- credvault schema version 3 (SQLite): key rotation.
-- A tenant row holds its *current* data key (DEK); rotating moves the old one into
-- credvault_tenant_deks (still wrapped, decrypt-only) until no record is sealed with it, when
-- its wrapped key is erased (wrapped_dek NULL, destroyed_at set) and the row is kept for the
-- rotation report. dek_created_at is when the current DEK was made (NULL: with the tenant);
-- min_dek_version forbids opening records sealed with older DEK versions.

ALTER TABLE credvault_tenants ADD COLUMN dek_created_at INTEGER;
ALTER TABLE credvault_tenants ADD COLUMN min_dek_version INTEGER NOT NULL DEFAULT 1;

CREATE TABLE credvault_tenant_deks (
    tenant_id    TEXT    NOT NULL,
    dek_version  INTEGER NOT NULL,
    wrapped_dek  BLOB,
    kek_version  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    retired_at   INTEGER NOT NULL,
    destroyed_at INTEGER,
    PRIMARY KEY (tenant_id, dek_version)
);

CREATE INDEX credvault_tenant_deks_kek ON credvault_tenant_deks (kek_version);
CREATE INDEX credvault_tenants_kek ON credvault_tenants (kek_version);
