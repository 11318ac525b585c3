-- credvault schema version 2 (SQLite): the shared login throttle (SqlThrottle).
-- One row per counted key: `pair:<address>/<account>` or `addr:<address>` (IPv6 per /64).
-- Times are Unix milliseconds. Rows are deleted on a success (pairs) and by
-- SqlThrottle::prune once they no longer change any decision (found through last_seen).

CREATE TABLE credvault_throttle (
    throttle_key TEXT    NOT NULL PRIMARY KEY,
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    lockouts     INTEGER NOT NULL,
    locked_until INTEGER,
    last_seen    INTEGER NOT NULL
);

CREATE INDEX credvault_throttle_last_seen ON credvault_throttle (last_seen);
