-- The transactional outbox (DESIGN.md invariant 6). Every event is written
-- here in the transaction of the change it describes; a relay per instance
-- appends pending rows to the user's Redis stream (or the in-memory log) with
-- the stream id "<seq>-0" and marks them sent. Sent rows are pruned after a
-- while (src/events/outbox-relay.ts).

-- Each user's event sequence. The row is locked by the upsert until commit,
-- so a user's events get their seqs in commit order: a relay that sees seq n
-- committed has every seq below n committed too.
create table event_sequences (
  user_id uuid primary key references users (id) on delete cascade,
  last_seq bigint not null default 0
);

create table event_outbox (
  user_id uuid not null,
  seq bigint not null check (seq > 0),
  name text not null,
  -- json, not jsonb: the text is kept as written (key order, no reformatting)
  data json not null,
  created_at timestamptz not null default now(),
  sent_at timestamptz,
  primary key (user_id, seq)
);

-- what the relay looks for; stays small when the relay keeps up
create index event_outbox_pending on event_outbox (user_id, seq) where sent_at is null;
-- what the pruner deletes, oldest first
create index event_outbox_sent on event_outbox (sent_at) where sent_at is not null;

-- Writes one user's events, in order, with the next seqs: p_events is a JSON
-- array of {"n": name, "d": data}. One upsert and one multi-row insert,
-- whatever the number of events. Returns the last seq written (null for none).
create function outbox_append(p_user_id uuid, p_events json) returns bigint
language plpgsql as $$
declare
  v_n int := coalesce(json_array_length(p_events), 0);
  v_last bigint;
begin
  if v_n = 0 then
    return null;
  end if;
  insert into event_sequences as s (user_id, last_seq) values (p_user_id, v_n)
    on conflict (user_id) do update set last_seq = s.last_seq + v_n
    returning last_seq into v_last;
  insert into event_outbox (user_id, seq, name, data)
    select p_user_id, v_last - v_n + e.i, e.value ->> 'n', e.value -> 'd'
    from json_array_elements(p_events) with ordinality as e (value, i);
  return v_last;
end
$$;

-- ledger_apply as in 0002, plus one credits.changed event per entry written,
-- in the same statement's transaction (a replayed command writes none).
create or replace function ledger_apply(p_user_id uuid, p_commands jsonb) returns jsonb
language plpgsql as $$
declare
  v_balance bigint;
  v_seq bigint;
  v_now timestamptz := now();
  v_results jsonb[] := '{}';
  v_rows ledger_entries[] := '{}';
  v_known jsonb;
  v_cmd jsonb;
  v_kind text;
  v_amount bigint;
  v_signed bigint;
  v_key text;
  v_external text;
  v_owner uuid;
  v_prior jsonb;
  v_entry ledger_entries;
begin
  select balance, last_seq into v_balance, v_seq
    from credit_accounts where user_id = p_user_id for update;
  if not found then
    -- the first entry of a user opens the account
    insert into credit_accounts (user_id) values (p_user_id) on conflict (user_id) do nothing;
    select balance, last_seq into strict v_balance, v_seq
      from credit_accounts where user_id = p_user_id for update;
  end if;

  -- every key of the batch that already has an entry, in one index scan
  select coalesce(jsonb_object_agg(e.idempotency_key, to_jsonb(e)), '{}'::jsonb) into v_known
    from ledger_entries e
    where e.user_id = p_user_id
      and e.idempotency_key in (select c ->> 'key' from jsonb_array_elements(p_commands) c);

  for v_cmd in select value from jsonb_array_elements(p_commands) loop
    v_kind := v_cmd ->> 'kind';
    v_amount := (v_cmd ->> 'amount')::bigint;
    v_signed := case when v_kind = 'charge' then -v_amount else v_amount end;
    v_key := v_cmd ->> 'key';
    v_external := v_cmd ->> 'externalId';

    if v_external is not null then
      insert into processed_webhooks (id, user_id) values (v_external, p_user_id)
        on conflict (id) do nothing;
      if not found then
        select user_id into v_owner from processed_webhooks where id = v_external;
        if v_owner <> p_user_id then
          v_results := v_results || jsonb_build_object('ok', false, 'code', 'idempotency_conflict');
          continue;
        end if;
      end if;
    end if;

    v_prior := case when v_key is null then null else v_known -> v_key end;
    if v_prior is not null then
      if v_prior ->> 'kind' = v_kind and (v_prior ->> 'amount')::bigint = v_signed then
        v_results := v_results || jsonb_build_object('ok', true, 'replayed', true, 'entry', v_prior);
      else
        v_results := v_results || jsonb_build_object('ok', false, 'code', 'idempotency_conflict');
      end if;
      continue;
    end if;

    if v_balance + v_signed < 0 then
      v_results := v_results || jsonb_build_object(
        'ok', false, 'code', 'insufficient_credits', 'required', v_amount, 'available', v_balance);
      continue;
    end if;

    v_balance := v_balance + v_signed;
    v_seq := v_seq + 1;
    v_entry := row(
      (v_cmd ->> 'id')::uuid, p_user_id, v_seq, v_signed, v_balance, v_kind, v_cmd ->> 'reason',
      (v_cmd ->> 'generationId')::uuid, (v_cmd ->> 'refundOf')::uuid, v_key, v_now)::ledger_entries;
    v_rows := v_rows || v_entry;
    v_results := v_results || jsonb_build_object('ok', true, 'entry', to_jsonb(v_entry));
  end loop;

  if cardinality(v_rows) > 0 then
    -- one statement for the whole batch
    insert into ledger_entries select * from unnest(v_rows);
    update credit_accounts set balance = v_balance, last_seq = v_seq, updated_at = v_now
      where user_id = p_user_id;
    -- and one for its events: credits.changed per entry, in entry order
    perform outbox_append(p_user_id, (
      select json_agg(json_build_object('n', 'credits.changed', 'd', json_build_object(
        'balance', r.balance_after, 'delta', r.amount, 'kind', r.kind)) order by r.seq)
      from unnest(v_rows) r));
  end if;
  return jsonb_build_object('balance', v_balance, 'results', to_jsonb(v_results));
end
$$;
