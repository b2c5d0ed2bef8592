-- A generation's created_at in milliseconds, as its keyset cursor carries it
-- (and as uploads keep theirs, 0010). With microseconds, generations accepted
-- in one group commit share one now() that the cursor, cut to milliseconds by
-- the client, could not name: the page after such a row skipped its peers.
-- Truncated, not rounded, so no existing row moves to another day of the
-- stats rollups; new rows are rounded on insert, before any trigger sees them.
alter table generations
  alter column created_at type timestamptz(3) using date_trunc('milliseconds', created_at);
