-- Statistics (issue 13): GET /v1/stats/me reads one user's ledger entries and
-- items over a date range. Covering indexes, so each figure family is one
-- index-only range scan of that user's rows, not a scan of everyone's.
create index ledger_entries_user_created on ledger_entries (user_id, created_at)
  include (kind, amount);

-- items that ended, per user by end time: images by outcome, the daily series
-- and the top poses
create index generation_items_user_finished on generation_items (user_id, finished_at)
  include (status, pose_id)
  where finished_at is not null;
