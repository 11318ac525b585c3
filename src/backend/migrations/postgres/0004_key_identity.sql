-- credvault schema version 4 (PostgreSQL): key identity and shredding state.
-- credvault_keys records a fingerprint of every key-encryption key (KEK) version and of the
-- tenant-key store the vault has used (a keyed hash or a store id, never a key), so a
-- mistyped key file or an empty tenant-key directory is refused instead of becoming a second
-- vault. last_primary_at is the last time a process said that version was its primary KEK
-- (the window destroy-kek waits out). credvault_vault.newest_kek is the newest KEK version
-- any process has presented: nothing may be wrapped under an older one (writes that wrap
-- share-lock the row, so raising it waits for them). tenants.shredded_at records that purge
-- destroyed the tenant's shred secret (so a purge interrupted after that finishes on the next
-- run, and the tenant can no longer be restored).

ALTER TABLE credvault_tenants ADD COLUMN shredded_at BIGINT;

CREATE TABLE credvault_keys (
    role            TEXT COLLATE "C" NOT NULL,
    version         BIGINT NOT NULL,
    fingerprint     TEXT NOT NULL,
    recorded_at     BIGINT NOT NULL,
    last_primary_at BIGINT,
    PRIMARY KEY (role, version)
);

CREATE TABLE credvault_vault (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    newest_kek BIGINT NOT NULL
);

INSERT INTO credvault_vault (id, newest_kek)
SELECT 1, COALESCE(MAX(v), 0) FROM (
    SELECT MAX(kek_version) AS v FROM credvault_tenants
    UNION ALL SELECT MAX(kek_version) FROM credvault_tenant_deks
) k;
