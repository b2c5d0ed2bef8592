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
-- Returns {balance, results: [{ok, entry?, replayed?, code?, required?, available?}]}.
create function ledger_apply(p_user_id uuid, p_commands jsonb) returns jsonb
language plpgsql as $$
declare
  v_balance bigint;
  v_seq bigint;
  v_results jsonb := '[]'::jsonb;
  v_cmd jsonb;
  v_kind text;
  v_amount bigint;
  v_signed bigint;
  v_key text;
  v_external text;
  v_owner uuid;
  v_prior ledger_entries;
  v_entry ledger_entries;
  v_changed boolean := false;
begin
  insert into credit_accounts (user_id) values (p_user_id) on conflict (user_id) do nothing;
  select balance, last_seq into strict v_balance, v_seq
    from credit_accounts where user_id = p_user_id for update;

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
          v_results := v_results || jsonb_build_array(jsonb_build_object('ok', false, 'code', 'idempotency_conflict'));
          continue;
        end if;
      end if;
    end if;

    if v_key is not null then
      select * into v_prior from ledger_entries where user_id = p_user_id and idempotency_key = v_key;
      if found then
        if v_prior.kind = v_kind and v_prior.amount = v_signed then
          v_results := v_results || jsonb_build_array(jsonb_build_object('ok', true, 'replayed', true, 'entry', to_jsonb(v_prior)));
        else
          v_results := v_results || jsonb_build_array(jsonb_build_object('ok', false, 'code', 'idempotency_conflict'));
        end if;
        continue;
      end if;
    end if;

    if v_balance + v_signed < 0 then
      v_results := v_results || jsonb_build_array(jsonb_build_object(
        'ok', false, 'code', 'insufficient_credits', 'required', v_amount, 'available', v_balance));
      continue;
    end if;

    v_balance := v_balance + v_signed;
    v_seq := v_seq + 1;
    insert into ledger_entries
      (id, user_id, seq, amount, balance_after, kind, reason, generation_id, refund_of, idempotency_key)
    values (
      (v_cmd ->> 'id')::uuid, p_user_id, v_seq, v_signed, v_balance, v_kind, v_cmd ->> 'reason',
      (v_cmd ->> 'generationId')::uuid, (v_cmd ->> 'refundOf')::uuid, v_key)
    returning * into v_entry;
    v_changed := true;
    v_results := v_results || jsonb_build_array(jsonb_build_object('ok', true, 'entry', to_jsonb(v_entry)));
  end loop;

  if v_changed then
    update credit_accounts set balance = v_balance, last_seq = v_seq, updated_at = now()
      where user_id = p_user_id;
  end if;
  return jsonb_build_object('balance', v_balance, 'results', v_results);
end
$$;
