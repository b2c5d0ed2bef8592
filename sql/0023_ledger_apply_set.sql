-- One implementation of the write path for any number of users' batches, with
-- one statement per table for the whole group instead of one per user: one
-- insert into ledger_entries (so one firing of its statement triggers), one
-- update of credit_accounts, one upsert of event_sequences and one insert into
-- event_outbox. Each user's commands are still decided in order, under that
-- user's account row lock, with the rules of 0002/0014 and the index-probe
-- lookup of 0022. Per user of a group this took ~0.25 ms as a call of
-- ledger_apply with its own statements (64 users of 1 charge: 17-21 ms).
--
-- p_batches: [{userId, epoch?, commands}], each user at most once (the writer
-- sends one batch per user and commit; a repeat is refused with SQLSTATE 22023
-- and nothing is written). p_fenced: each batch's epoch is checked under its
-- account lock (sql/0020) and a stale batch answers {"fenced": true}, alone.
-- Returns {userId: {balance, results} | {fenced: true}}, results as in 0002.
create function ledger_apply_set(p_batches jsonb, p_fenced boolean) returns jsonb
language plpgsql as $$
declare
  v_now timestamptz := now();
  v_batch record;
  v_previous uuid;
  v_balance bigint;
  v_seq bigint;
  v_written int;
  v_results jsonb[];
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
  -- the group's new entries, user by user in seq order, and each such user's new balance
  v_rows ledger_entries[] := '{}';
  v_users uuid[] := '{}';
  v_balances bigint[] := '{}';
  v_seqs bigint[] := '{}';
  v_counts int[] := '{}';
  -- every user's answer, under the userId as the caller spelled it
  v_ids text[] := '{}';
  v_answers jsonb[] := '{}';
begin
  -- account rows are locked in user id order, so two groups never deadlock
  for v_batch in
    select (b ->> 'userId')::uuid as user_id, b ->> 'userId' as answer_key,
      (b ->> 'epoch')::bigint as epoch, b -> 'commands' as commands
    from jsonb_array_elements(p_batches) b
    order by 1
  loop
    if v_batch.user_id = v_previous then
      raise exception 'user % has two batches in one ledger group', v_batch.user_id
        using errcode = '22023';
    end if;
    v_previous := v_batch.user_id;
    v_ids := v_ids || v_batch.answer_key;

    if p_fenced and not actor_epoch_holds(v_batch.user_id, v_batch.epoch) then
      v_answers := v_answers || '{"fenced": true}'::jsonb;
      continue;
    end if;

    select balance, last_seq into v_balance, v_seq
      from credit_accounts where user_id = v_batch.user_id for update;
    if not found then
      -- the first entry of a user opens the account
      insert into credit_accounts (user_id) values (v_batch.user_id) on conflict (user_id) do nothing;
      select balance, last_seq into strict v_balance, v_seq
        from credit_accounts where user_id = v_batch.user_id for update;
    end if;

    -- the batch's keys that already have an entry: one index probe per key (0022)
    select coalesce(jsonb_object_agg(e.idempotency_key, to_jsonb(e)), '{}'::jsonb) into v_known
      from jsonb_array_elements(v_batch.commands) c
      cross join lateral (
        select * from ledger_entries e
        where e.user_id = v_batch.user_id and e.idempotency_key = c ->> 'key'
        limit 1
      ) e;

    v_results := '{}';
    v_written := 0;
    for v_cmd in select value from jsonb_array_elements(v_batch.commands) loop
      v_kind := v_cmd ->> 'kind';
      v_amount := (v_cmd ->> 'amount')::bigint;
      v_signed := case when v_kind = 'charge' then -v_amount else v_amount end;
      v_key := v_cmd ->> 'key';
      v_external := v_cmd ->> 'externalId';

      if v_external is not null then
        insert into processed_webhooks (id, user_id) values (v_external, v_batch.user_id)
          on conflict (id) do nothing;
        if not found then
          select user_id into v_owner from processed_webhooks where id = v_external;
          if v_owner <> v_batch.user_id then
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
        (v_cmd ->> 'id')::uuid, v_batch.user_id, v_seq, v_signed, v_balance, v_kind,
        v_cmd ->> 'reason', (v_cmd ->> 'generationId')::uuid, (v_cmd ->> 'refundOf')::uuid, v_key,
        v_now)::ledger_entries;
      v_rows := v_rows || v_entry;
      v_written := v_written + 1;
      v_results := v_results || jsonb_build_object('ok', true, 'entry', to_jsonb(v_entry));
    end loop;

    if v_written > 0 then
      v_users := v_users || v_batch.user_id;
      v_balances := v_balances || v_balance;
      v_seqs := v_seqs || v_seq;
      v_counts := v_counts || v_written;
    end if;
    v_answers := v_answers || jsonb_build_object('balance', v_balance, 'results', to_jsonb(v_results));
  end loop;

  if cardinality(v_rows) > 0 then
    insert into ledger_entries select * from unnest(v_rows);
    update credit_accounts a set balance = u.balance, last_seq = u.last_seq, updated_at = v_now
      from unnest(v_users, v_balances, v_seqs) as u (user_id, balance, last_seq)
      where a.user_id = u.user_id;
    -- one credits.changed per entry, in entry order, with the user's next event seqs
    -- (outbox_append's rule, sql/0014, for all the group's users at once; the upsert
    -- takes their event_sequences rows in user id order)
    with counts as (
      select * from unnest(v_users, v_counts) as c (user_id, n)
    ), last as (
      insert into event_sequences as s (user_id, last_seq)
        select user_id, n from counts order by user_id
        on conflict (user_id) do update set last_seq = s.last_seq + excluded.last_seq
        returning s.user_id, s.last_seq
    )
    insert into event_outbox (user_id, seq, name, data)
      select r.user_id, l.last_seq - c.n + row_number() over (partition by r.user_id order by r.seq),
        'credits.changed',
        json_build_object('balance', r.balance_after, 'delta', r.amount, 'kind', r.kind)
      from unnest(v_rows) r
      join counts c on c.user_id = r.user_id
      join last l on l.user_id = r.user_id;
  end if;

  return coalesce(
    (select jsonb_object_agg(i, a) from unnest(v_ids, v_answers) as x (i, a)), '{}'::jsonb);
end
$$;

-- The entry points keep their names, arguments and answers; each is now a
-- group of its own (ledger_apply: a group of one).
create or replace function ledger_apply(p_user_id uuid, p_commands jsonb) returns jsonb
language sql as $$
  select ledger_apply_set(
    jsonb_build_array(jsonb_build_object('userId', p_user_id, 'commands', p_commands)), false)
    -> p_user_id::text
$$;

create or replace function ledger_apply_many(p_batches jsonb) returns jsonb
language sql as $$
  select ledger_apply_set(p_batches, false)
$$;

create or replace function ledger_apply_many_fenced(p_batches jsonb) returns jsonb
language sql as $$
  select ledger_apply_set(p_batches, true)
$$;
