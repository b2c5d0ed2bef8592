-- The covering indexes of sql/0009 served GET /v1/stats/me from the source
-- rows; it reads the rollups of sql/0011 now, and nothing else reads by
-- (user_id, created_at) on ledger_entries or (user_id, finished_at) on
-- generation_items. Every ledger insert paid for the first one: dropped, the
-- ledger's write path maintains one index fewer, which pays for the rollup
-- trigger's upsert. (Admin items per minute uses generation_items_finished.)
drop index ledger_entries_user_created;
drop index generation_items_user_finished;
