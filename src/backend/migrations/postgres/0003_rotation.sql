-- credvault schema version 3 (PostgreSQL): key rotation.
-- A tenant row holds its *current* data key (DEK); rotating moves the old one into
-- credvault_tenant_deks (still wrapped, decrypt-only) until no record is sealed with it, when
-- its wrapped key is erased (wrapped_dek NULL, destroyed_at set) and the row is kept for the
-- rotation report. dek_created_at is when the current DEK was made (NULL: with the tenant);
-- min_dek_version forbids opening records sealed with older DEK versions.

ALTER TABLE credvault_tenants ADD COLUMN dek_created_at BIGINT;
ALTER TABLE credvault_tenants ADD COLUMN min_dek_version BIGINT NOT NULL DEFAULT 1;

CREATE TABLE credvault_tenant_deks (
    tenant_id    TEXT COLLATE "C" NOT NULL,
    dek_version  BIGINT NOT NULL,
    wrapped_dek  BYTEA,
    kek_version  BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT NOT NULL,
    destroyed_at BIGINT,
    PRIMARY KEY (tenant_id, dek_version)
);

CREATE INDEX credvault_tenant_deks_kek ON credvault_tenant_deks (kek_version);
CREATE INDEX credvault_tenants_kek ON credvault_tenants (kek_version);
