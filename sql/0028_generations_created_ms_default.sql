-- A new generation's created_at truncated to the millisecond rather than
-- rounded by its timestamptz(3) column (0026): a generation accepted in the
-- last half millisecond of a day stays on that day in the stats rollups, with
-- its charge and its items, instead of rounding into the next.
alter table generations alter column created_at set default date_trunc('milliseconds', now());
