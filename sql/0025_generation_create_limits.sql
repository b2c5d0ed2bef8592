-- generation_create_many (0024) with two corrections found by review:
--  * a user with several creates in one group has each charged in turn
--    (ledger_apply), so one refused for its credits does not count in the
--    limits of those after it; a user with one create (the common case, one
--    request in flight per user) is still charged with the whole group's in
--    one ledger_apply_many;
--  * the hourly limit's Retry-After counts from the oldest image of the hour,
--    which may be one accepted earlier in the same group (then about 3600 s,
--    not 0).
-- Arguments and answers are those of 0021.
create or replace function generation_create_many(p_batches jsonb, p_limits jsonb) returns jsonb
language plpgsql as $$
declare
  v_images_limit int := (p_limits ->> 'imagesPerHour')::int;
  v_active_limit int := (p_limits ->> 'activeGenerations')::int;
  v_results jsonb := '{}'::jsonb;
  v_batch jsonb;
  v_user uuid;
  v_create jsonb;
  v_id text;
  v_n int;
  v_total bigint;
  v_images bigint;
  v_frees_in numeric;
  v_active bigint;
  v_record idempotency_keys;
  v_prior ledger_entries;
  v_done record;
  v_oldest timestamptz;
  v_command jsonb;
  v_charges jsonb := '[]'::jsonb;
  v_charged jsonb := '[]'::jsonb;
  v_applied jsonb;
  v_charge jsonb;
  v_gens jsonb := '[]'::jsonb;
  v_items jsonb := '[]'::jsonb;
  v_rows jsonb;
  v_item_rows jsonb;
begin
  -- users in id order (so two groups cannot deadlock), each under its account lock
  for v_batch in
    select value from jsonb_array_elements(p_batches) order by (value ->> 'userId')::uuid
  loop
    v_user := (v_batch ->> 'userId')::uuid;
    if not actor_epoch_holds(v_user, (v_batch ->> 'epoch')::bigint) then
      select v_results || coalesce(jsonb_object_agg(c ->> 'generationId',
          '{"ok": false, "code": "fenced"}'::jsonb), '{}'::jsonb)
        into v_results from jsonb_array_elements(v_batch -> 'creates') c;
      continue;
    end if;

    -- the user's limits as they stand; each create accepted below counts in them
    select coalesce(sum(total_items), 0), min(created_at)
      into v_images, v_oldest
      from generations where user_id = v_user and created_at > now() - interval '1 hour';
    select count(*) into v_active
      from generations where user_id = v_user and status in ('queued', 'running');

    for v_create in select value from jsonb_array_elements(v_batch -> 'creates') loop
      v_id := v_create ->> 'generationId';
      v_n := jsonb_array_length(v_create -> 'items');
      v_total := (v_create ->> 'pricePerItem')::bigint * v_n;

      if jsonb_typeof(v_create -> 'idem') = 'object' then
        select * into v_record from idempotency_keys
          where user_id = v_user and key = v_create -> 'idem' ->> 'key';
        if found and v_record.expires_at < now() then
          delete from idempotency_keys where user_id = v_user and key = v_record.key;
        elsif found then
          v_results := v_results || jsonb_build_object(v_id,
            case
              when v_record.request_hash <> v_create -> 'idem' ->> 'hash' then
                '{"ok": false, "code": "idempotency_conflict"}'::jsonb
              when v_record.state = 'in_flight' then
                jsonb_build_object('ok', false, 'code', 'in_flight', 'holdsFor',
                  greatest(0, extract(epoch from v_record.expires_at - now())))
              else
                jsonb_build_object('ok', true, 'recorded', jsonb_build_object(
                  'status', v_record.response_status, 'body', v_record.response_body))
            end);
          continue;
        end if;
      end if;

      select * into v_prior from ledger_entries
        where user_id = v_user and idempotency_key = v_create ->> 'chargeKey';
      if found then
        v_results := v_results || jsonb_build_object(v_id,
          case when v_prior.kind = 'charge' and v_prior.amount = -v_total
            then jsonb_build_object('ok', true, 'replayOf', v_prior.generation_id)
            else '{"ok": false, "code": "idempotency_conflict"}'::jsonb end);
        continue;
      end if;

      if v_images + v_n > v_images_limit then
        v_frees_in := coalesce(extract(epoch from v_oldest + interval '1 hour' - now()), 0);
        v_results := v_results || jsonb_build_object(v_id,
          jsonb_build_object('ok', false, 'code', 'hourly_limit', 'freesIn', v_frees_in));
        continue;
      end if;
      if v_active >= v_active_limit then
        v_results := v_results || jsonb_build_object(v_id,
          '{"ok": false, "code": "active_limit"}'::jsonb);
        continue;
      end if;
      v_command := jsonb_build_object(
        'id', v_create ->> 'chargeId', 'kind', 'charge', 'amount', v_total,
        'reason', 'generation ' || v_id, 'key', v_create ->> 'chargeKey', 'generationId', v_id);
      v_charge := null;
      if jsonb_array_length(v_batch -> 'creates') > 1 then
        -- charged now: one refused for its credits is not counted in the limits below
        v_charge := ledger_apply(v_user, jsonb_build_array(v_command)) -> 'results' -> 0;
        if not (v_charge ->> 'ok')::boolean then
          v_results := v_results || jsonb_build_object(v_id, v_charge);
          continue;
        end if;
      else
        v_charges := v_charges || jsonb_build_object('userId', v_user, 'command', v_command);
      end if;
      v_images := v_images + v_n;
      v_active := v_active + 1;
      v_oldest := coalesce(v_oldest, now());
      v_charged := v_charged || jsonb_build_object('userId', v_user, 'create', v_create,
        'items', v_n, 'total', v_total, 'charge', v_charge);
    end loop;
  end loop;

  if jsonb_array_length(v_charged) = 0 then
    return jsonb_build_object('at', now(), 'ahead', 0, 'results', v_results);
  end if;

  -- the single creates' charges in one write (one command per user)
  if jsonb_array_length(v_charges) > 0 then
    v_applied := ledger_apply_many((
      select jsonb_agg(jsonb_build_object('userId', x ->> 'userId',
          'commands', jsonb_build_array(x -> 'command')))
      from jsonb_array_elements(v_charges) x));
  end if;

  for v_done in
    select x ->> 'userId' as user_id, x -> 'create' as c, (x ->> 'items')::int as items,
      (x ->> 'total')::bigint as total, nullif(x -> 'charge', 'null'::jsonb) as charge
    from jsonb_array_elements(v_charged) with ordinality as c (x, n)
    order by n
  loop
    v_charge := coalesce(v_done.charge, v_applied -> v_done.user_id -> 'results' -> 0);
    if not (v_charge ->> 'ok')::boolean then
      v_results := v_results || jsonb_build_object(v_done.c ->> 'generationId', v_charge);
      continue;
    end if;
    v_gens := v_gens || jsonb_build_object(
      'id', v_done.c ->> 'generationId', 'user_id', v_done.user_id,
      'mode', v_done.c ->> 'mode', 'request', v_done.c -> 'request',
      'total_items', v_done.items, 'price_per_item', v_done.c -> 'pricePerItem',
      'credits_charged', v_done.total, 'charge_entry_id', v_charge -> 'entry' ->> 'id',
      'deadline_seconds', v_done.c -> 'deadlineSeconds');
    v_items := v_items || (
      select jsonb_agg(i || jsonb_build_object(
        'generation_id', v_done.c ->> 'generationId', 'user_id', v_done.user_id))
      from jsonb_array_elements(v_done.c -> 'items') i);
  end loop;

  if jsonb_array_length(v_gens) = 0 then
    return jsonb_build_object('at', now(), 'ahead', 0, 'results', v_results);
  end if;

  with ins as (
    insert into generations (id, user_id, mode, request, total_items, price_per_item,
        credits_charged, charge_entry_id, deadline_at)
      select g.id, g.user_id, g.mode, g.request, g.total_items, g.price_per_item,
        g.credits_charged, g.charge_entry_id, now() + g.deadline_seconds * interval '1 second'
      from jsonb_to_recordset(v_gens) as g (id uuid, user_id uuid, mode text, request jsonb,
        total_items int, price_per_item bigint, credits_charged bigint, charge_entry_id uuid,
        deadline_seconds int)
      returning *
  )
  select jsonb_object_agg(ins.id::text, to_jsonb(ins)) into v_rows from ins;

  with ins as (
    insert into generation_items (id, generation_id, user_id, key, pose_id, variation)
      select i.id, i.generation_id, i.user_id, i.key, i."poseId", i.variation
      from jsonb_to_recordset(v_items) as i (id uuid, generation_id uuid, user_id uuid,
        key text, "poseId" uuid, variation int)
      returning *
  )
  select jsonb_object_agg(t.generation_id::text, t.items) into v_item_rows
    from (select generation_id, jsonb_agg(to_jsonb(ins) order by key) as items
          from ins group by generation_id) t;

  -- generation.queued per accepted create, after its user's credits.changed, with the
  -- user's next event seqs (outbox_append's rule, sql/0014, for the whole group at once)
  with queued as (
    select (g ->> 'user_id')::uuid as user_id, g ->> 'id' as id,
      (g ->> 'total_items')::int as total_items, (g ->> 'credits_charged')::bigint as credits_charged,
      row_number() over (partition by g ->> 'user_id' order by ord) as i
    from jsonb_array_elements(v_gens) with ordinality as x (g, ord)
  ), counts as (
    select user_id, count(*)::bigint as n from queued group by user_id
  ), last as (
    insert into event_sequences as s (user_id, last_seq)
      select user_id, n from counts order by user_id
      on conflict (user_id) do update set last_seq = s.last_seq + excluded.last_seq
      returning s.user_id, s.last_seq
  )
  insert into event_outbox (user_id, seq, name, data)
    select q.user_id, l.last_seq - c.n + q.i, 'generation.queued',
      json_build_object('generationId', q.id, 'totalItems', q.total_items,
        'creditsCharged', q.credits_charged)
    from queued q join counts c using (user_id) join last l using (user_id);

  select v_results || jsonb_object_agg(k, jsonb_build_object(
      'ok', true, 'generation', v, 'items', v_item_rows -> k))
    into v_results from jsonb_each(v_rows) as r (k, v);

  return jsonb_build_object(
    'at', now(),
    -- every accepted item is enqueued at now(): what was queued before, for all of them
    'ahead', (select count(*) from generation_items
      where status = 'queued' and enqueued_at < now()),
    'results', v_results);
end
$$;
