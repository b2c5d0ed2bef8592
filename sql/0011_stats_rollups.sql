-- Statistics rollups (issue 13): per-user, per-UTC-day counts and sums that
-- GET /v1/stats/me reads instead of the source rows, so a range is at most
-- 366 days × a few rows whatever the user's history (at 1,000,000 ledger
-- entries the default 30 days read ~82,000 entries; from the rollup, ~120 rows).
--
-- Each rollup is kept by statement-level AFTER triggers with transition
-- tables on its source table, in the transaction of the statement that wrote
-- the source rows: one grouped upsert per statement, not one per row (a
-- ledger batch of 128 entries is one upsert of one row), and no change to
-- ledger_apply or any other writer. A statement adds its new rows and
-- subtracts its old ones, so inserts, updates of any column (a status, a date
-- moved) and deletes all keep rollup = recomputation from the source rows
-- (test/stats/rollups.test.ts checks it after a concurrent history).
--
-- Locks: an upsert takes its rollup rows in key order (user, day, …). The app
-- writes a user's rows from that user's actor, and ledger entries under the
-- account row lock, so two transactions do not wait on each other's rollup
-- rows in opposite orders.
--
-- Zero rows are kept (a day's 'queued' generations go back to 0 when they
-- start): at most a few per user and day.

-- ledger entries by creation day and kind (amounts signed as stored: charges < 0)
create table stats_ledger_days (
  user_id uuid not null references users (id) on delete cascade,
  day date not null,
  kind text not null,
  entries bigint not null,
  amount bigint not null,
  primary key (user_id, day, kind)
);

-- items that ended, by end day and outcome
create table stats_item_days (
  user_id uuid not null references users (id) on delete cascade,
  day date not null,
  status text not null,
  items bigint not null,
  primary key (user_id, day, status)
);

-- succeeded items by end day and pose (top poses)
create table stats_pose_days (
  user_id uuid not null references users (id) on delete cascade,
  day date not null,
  pose_id uuid not null,
  uses bigint not null,
  primary key (user_id, day, pose_id)
);

-- generations by creation day and current status
create table stats_generation_days (
  user_id uuid not null references users (id) on delete cascade,
  day date not null,
  status text not null,
  generations bigint not null,
  primary key (user_id, day, status)
);

-- the UTC day of an instant
create function stats_day(t timestamptz) returns date
language sql immutable parallel safe as $$ select (t at time zone 'UTC')::date $$;

-- In every trigger below: a DELETE only subtracts, with a plain UPDATE (in a
-- cascade from users the rollup rows may be gone already, and an insert would
-- violate their foreign key); INSERT and UPDATE upsert the net change. Each
-- branch names only the transition tables its operation defines.

-- ledger_entries → stats_ledger_days ------------------------------------------
create function stats_ledger_rollup() returns trigger
language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    insert into stats_ledger_days as s (user_id, day, kind, entries, amount)
      select user_id, stats_day(created_at), kind, count(*), sum(amount)
      from new_rows group by 1, 2, 3 order by 1, 2, 3
      on conflict (user_id, day, kind) do update
        set entries = s.entries + excluded.entries, amount = s.amount + excluded.amount;
  elsif tg_op = 'UPDATE' then
    insert into stats_ledger_days as s (user_id, day, kind, entries, amount)
      select user_id, day, kind, sum(entries), sum(amount)
      from (
        select user_id, stats_day(created_at) as day, kind, 1 as entries, amount from new_rows
        union all
        select user_id, stats_day(created_at), kind, -1, -amount from old_rows
      ) d
      group by 1, 2, 3 having sum(entries) <> 0 or sum(amount) <> 0 order by 1, 2, 3
      on conflict (user_id, day, kind) do update
        set entries = s.entries + excluded.entries, amount = s.amount + excluded.amount;
  else
    update stats_ledger_days s
      set entries = s.entries - d.entries, amount = s.amount - d.amount
      from (select user_id, stats_day(created_at) as day, kind, count(*) as entries,
              sum(amount) as amount
            from old_rows group by 1, 2, 3) d
      where s.user_id = d.user_id and s.day = d.day and s.kind = d.kind;
  end if;
  return null;
end
$$;

create trigger stats_ledger_insert after insert on ledger_entries
  referencing new table as new_rows for each statement execute function stats_ledger_rollup();
create trigger stats_ledger_update after update on ledger_entries
  referencing old table as old_rows new table as new_rows
  for each statement execute function stats_ledger_rollup();
create trigger stats_ledger_delete after delete on ledger_entries
  referencing old table as old_rows for each statement execute function stats_ledger_rollup();

-- generation_items → stats_item_days (ended items) and stats_pose_days --------
-- A claim or a lease heartbeat changes no ended item: its rows are filtered
-- out (finished_at is null) and the upserts get no input.
create function stats_item_rollup() returns trigger
language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    insert into stats_item_days as s (user_id, day, status, items)
      select user_id, stats_day(finished_at), status, count(*)
      from new_rows where finished_at is not null
      group by 1, 2, 3 order by 1, 2, 3
      on conflict (user_id, day, status) do update set items = s.items + excluded.items;
    insert into stats_pose_days as s (user_id, day, pose_id, uses)
      select user_id, stats_day(finished_at), pose_id, count(*)
      from new_rows
      where finished_at is not null and status = 'succeeded' and pose_id is not null
      group by 1, 2, 3 order by 1, 2, 3
      on conflict (user_id, day, pose_id) do update set uses = s.uses + excluded.uses;
  elsif tg_op = 'UPDATE' then
    insert into stats_item_days as s (user_id, day, status, items)
      select user_id, day, status, sum(n)
      from (
        select user_id, stats_day(finished_at) as day, status, 1 as n
          from new_rows where finished_at is not null
        union all
        select user_id, stats_day(finished_at), status, -1
          from old_rows where finished_at is not null
      ) d
      group by 1, 2, 3 having sum(n) <> 0 order by 1, 2, 3
      on conflict (user_id, day, status) do update set items = s.items + excluded.items;
    insert into stats_pose_days as s (user_id, day, pose_id, uses)
      select user_id, day, pose_id, sum(n)
      from (
        select user_id, stats_day(finished_at) as day, pose_id, 1 as n from new_rows
          where finished_at is not null and status = 'succeeded' and pose_id is not null
        union all
        select user_id, stats_day(finished_at), pose_id, -1 from old_rows
          where finished_at is not null and status = 'succeeded' and pose_id is not null
      ) d
      group by 1, 2, 3 having sum(n) <> 0 order by 1, 2, 3
      on conflict (user_id, day, pose_id) do update set uses = s.uses + excluded.uses;
  else
    update stats_item_days s set items = s.items - d.n
      from (select user_id, stats_day(finished_at) as day, status, count(*) as n
            from old_rows where finished_at is not null group by 1, 2, 3) d
      where s.user_id = d.user_id and s.day = d.day and s.status = d.status;
    update stats_pose_days s set uses = s.uses - d.n
      from (select user_id, stats_day(finished_at) as day, pose_id, count(*) as n
            from old_rows
            where finished_at is not null and status = 'succeeded' and pose_id is not null
            group by 1, 2, 3) d
      where s.user_id = d.user_id and s.day = d.day and s.pose_id = d.pose_id;
  end if;
  return null;
end
$$;

create trigger stats_item_insert after insert on generation_items
  referencing new table as new_rows for each statement execute function stats_item_rollup();
create trigger stats_item_update after update on generation_items
  referencing old table as old_rows new table as new_rows
  for each statement execute function stats_item_rollup();
create trigger stats_item_delete after delete on generation_items
  referencing old table as old_rows for each statement execute function stats_item_rollup();

-- generations → stats_generation_days -----------------------------------------
-- Counter updates (an item ended) keep status and created_at: their +1 and -1
-- cancel and the upsert gets no input.
create function stats_generation_rollup() returns trigger
language plpgsql as $$
begin
  if tg_op = 'INSERT' then
    insert into stats_generation_days as s (user_id, day, status, generations)
      select user_id, stats_day(created_at), status, count(*)
      from new_rows group by 1, 2, 3 order by 1, 2, 3
      on conflict (user_id, day, status) do update
        set generations = s.generations + excluded.generations;
  elsif tg_op = 'UPDATE' then
    insert into stats_generation_days as s (user_id, day, status, generations)
      select user_id, day, status, sum(n)
      from (
        select user_id, stats_day(created_at) as day, status, 1 as n from new_rows
        union all
        select user_id, stats_day(created_at), status, -1 from old_rows
      ) d
      group by 1, 2, 3 having sum(n) <> 0 order by 1, 2, 3
      on conflict (user_id, day, status) do update
        set generations = s.generations + excluded.generations;
  else
    update stats_generation_days s set generations = s.generations - d.n
      from (select user_id, stats_day(created_at) as day, status, count(*) as n
            from old_rows group by 1, 2, 3) d
      where s.user_id = d.user_id and s.day = d.day and s.status = d.status;
  end if;
  return null;
end
$$;

create trigger stats_generation_insert after insert on generations
  referencing new table as new_rows for each statement execute function stats_generation_rollup();
create trigger stats_generation_update after update on generations
  referencing old table as old_rows new table as new_rows
  for each statement execute function stats_generation_rollup();
create trigger stats_generation_delete after delete on generations
  referencing old table as old_rows for each statement execute function stats_generation_rollup();

-- Backfill from the rows already there. Creating the triggers took SHARE ROW
-- EXCLUSIVE on each source table (held until this migration commits), so no
-- write is in flight or can start: every existing row is counted once, here,
-- and every later one by the triggers.
insert into stats_ledger_days (user_id, day, kind, entries, amount)
  select user_id, stats_day(created_at), kind, count(*), sum(amount)
  from ledger_entries group by 1, 2, 3;
insert into stats_item_days (user_id, day, status, items)
  select user_id, stats_day(finished_at), status, count(*)
  from generation_items where finished_at is not null group by 1, 2, 3;
insert into stats_pose_days (user_id, day, pose_id, uses)
  select user_id, stats_day(finished_at), pose_id, count(*)
  from generation_items
  where finished_at is not null and status = 'succeeded' and pose_id is not null
  group by 1, 2, 3;
insert into stats_generation_days (user_id, day, status, generations)
  select user_id, stats_day(created_at), status, count(*)
  from generations group by 1, 2, 3;
