-- Credit accounts and their append-only ledger. The balance check and the
-- unique idempotency key live here, not only in TypeScript: they protect money.
create table credit_accounts (
  user_id uuid primary key references users (id) on delete cascade,
  balance bigint not null default 0 check (balance >= 0),
  -- the seq of the newest entry: entries chain 1, 2, 3, … per user
  last_seq bigint not null default 0,
  updated_at timestamptz not null default now()
);

create table ledger_entries (
  id uuid primary key,
  user_id uuid not null references credit_accounts (user_id) on delete cascade,
  seq bigint not null,
  amount bigint not null check (amount <> 0),
  balance_after bigint not null check (balance_after >= 0),
  kind text not null check (kind in ('grant', 'purchase', 'charge', 'refund', 'adjustment')),
  reason text not null,
  generation_id uuid,
  refund_of uuid references ledger_entries (id),
  idempotency_key text,
  created_at timestamptz not null default now(),
  constraint ledger_entries_seq_key unique (user_id, seq),
  constraint ledger_entries_idempotency_key unique (user_id, idempotency_key),
  constraint ledger_entries_sign check (
    (kind = 'charge' and amount < 0)
    or (kind in ('grant', 'purchase', 'refund') and amount > 0)
    or kind = 'adjustment'
  )
);

create index ledger_entries_generation on ledger_entries (generation_id) where generation_id is not null;

-- Payment provider events already applied, by the provider's event id.
create table processed_webhooks (
  id text primary key,
  user_id uuid not null references users (id) on delete cascade,
  received_at timestamptz not null default now()
);

-- The one write path. Applies a batch of commands for one user in order,
-- under the account row lock, and updates the balance once:
--   {kind, amount > 0, id, reason, key?, generationId?, refundOf?, externalId?}
-- A command whose key exists replays its entry (or is an idempotency_conflict
-- when kind or amount differ); a charge beyond the balance is rejected alone.
-- Keys are unique within one call (the caller folds repeats, see
-- src/ledger/repository.ts), which keeps this linear in the batch size.
-- Returns {balance, results: [{ok, entry?, replayed?, code?, required?, available?}]}.
create function ledger_apply(p_user_id uuid, p_commands jsonb) returns jsonb
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
  end if;
  return jsonb_build_object('balance', v_balance, 'results', to_jsonb(v_results));
end
$$;

-- Several users' batches in one transaction (one commit, one fsync). Account
-- rows are locked in user id order, so two such calls never deadlock. If any
-- batch fails, the whole call rolls back and the caller retries each batch on
-- its own (src/ledger/writer.ts), so one bad batch never fails another's.
create function ledger_apply_many(p_batches jsonb) returns jsonb
language sql as $$
  select coalesce(jsonb_object_agg(b ->> 'userId', ledger_apply((b ->> 'userId')::uuid, b -> 'commands')), '{}'::jsonb)
  from (
    select value as b from jsonb_array_elements(p_batches)
    order by (value ->> 'userId')::uuid
  ) ordered
$$;
