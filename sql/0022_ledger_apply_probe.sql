-- ledger_apply as in 0014, with the lookup of a batch's known keys probing the
-- unique (user_id, idempotency_key) index once per key instead of reading all
-- of the user's entries. Same arguments, semantics and result.
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

  -- every key of the batch that already has an entry: one probe of the unique
  -- (user_id, idempotency_key) index per key. `in (select …)` was planned as a
  -- hash semi join over all the user's entries (8.6 ms of a 32-charge batch at
  -- 20,000 entries), and `= any (array(…))` as a filter on all of them under a
  -- generic plan, whose estimate is the average user's few entries (66,720 rows
  -- read for one key of a hot user). A lateral subquery with a limit cannot be
  -- flattened into a join: it is run per key, with both columns as the index
  -- condition, whatever the statistics say
  select coalesce(jsonb_object_agg(e.idempotency_key, to_jsonb(e)), '{}'::jsonb) into v_known
    from jsonb_array_elements(p_commands) c
    cross join lateral (
      select * from ledger_entries e
      where e.user_id = p_user_id and e.idempotency_key = c ->> 'key'
      limit 1
    ) e;

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
