-- credvault schema version 6: the last purge run (when it started, Unix seconds, and how late
-- the oldest item waiting for deletion was then, in seconds), so that `promises check` in
-- another process shows when the purge last ran and whether it kept the deadlines.

ALTER TABLE credvault_vault ADD COLUMN last_purge_at INTEGER;
ALTER TABLE credvault_vault ADD COLUMN last_purge_overdue INTEGER;
