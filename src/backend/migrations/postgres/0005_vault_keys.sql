-- credvault schema version 5 (PostgreSQL): the vault's own keys, and no personal data in the
-- login throttle.
-- credvault_vault_keys holds keys that belong to the vault as a whole, each wrapped under the
-- key-encryption key like a tenant's data key (sealed-record format, context
-- ("vault_key", name)) and rewrapped with the data keys when the KEK rotates. The first is
-- `throttle_pseudonyms`: the HMAC key the login throttle names its rows with, so that
-- credvault_throttle holds keyed hashes, never an account name or an address.
-- Rows written before this version name accounts and addresses in clear (`pair:`, `addr:`,
-- `acct:`, `known:`); SQL cannot compute the HMAC, so credvault_vault.throttle_clear_names
-- says they may be there: the throttle renames them (and the names in its audit rows) the
-- first time it runs with the key, then clears the flag.

CREATE TABLE credvault_vault_keys (
    name        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    wrapped_key BYTEA  NOT NULL,
    kek_version BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

ALTER TABLE credvault_vault ADD COLUMN throttle_clear_names BIGINT NOT NULL DEFAULT 0;

UPDATE credvault_vault SET throttle_clear_names = 1;
