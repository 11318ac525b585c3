-- credvault schema version 2 (PostgreSQL): the shared login throttle (SqlThrottle). Run by
-- PgBackend::migrate like 0001 (advisory lock, `SET LOCAL search_path` to the schema).
-- One row per counted key: `pair:<address>/<account>` or `addr:<address>` (IPv6 per /64).
-- Times are Unix milliseconds. Rows are deleted on a success (pairs) and by
-- SqlThrottle::prune once they no longer change any decision (found through last_seen).

CREATE TABLE credvault_throttle (
    throttle_key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    lockouts     BIGINT NOT NULL,
    locked_until BIGINT,
    last_seen    BIGINT NOT NULL
);

CREATE INDEX credvault_throttle_last_seen ON credvault_throttle (last_seen);
