-- generation_create_many (0021) with one statement per table for the whole
-- group instead of several per create: the users' limits, Idempotency-Key
-- records and earlier charges are read for every create of the group at
-- once; the charges go through ledger_apply_many (one set-based write for the
-- group's ledger entries, balances and credits.changed events, 0023); the
-- generation.queued events are one upsert of event_sequences and one insert.
-- Per user, in id order, only its account lock and epoch check stay a call
-- each. Arguments and answers are those of 0021.
--
-- A create refused for its credits still counted in the limits of the
-- creates after it in the same run: limits are decided before the run's
-- charges, which are made together.
create or replace function generation_create_many(p_batches jsonb, p_limits jsonb) returns jsonb
language plpgsql as $$
declare
  v_images_limit int := (p_limits ->> 'imagesPerHour')::int;
  v_active_limit int := (p_limits ->> 'activeGenerations')::int;
  v_results jsonb := '{}'::jsonb;
  v_user record;
  v_create record;
  v_fenced uuid[] := '{}';
  v_images bigint;
  v_frees_in numeric;
  v_active bigint;
  v_last uuid;
  v_charges jsonb := '[]'::jsonb;
  v_charged jsonb := '[]'::jsonb;
  v_applied jsonb;
  v_charge jsonb;
  v_gens jsonb := '[]'::jsonb;
  v_items jsonb := '[]'::jsonb;
  v_rows jsonb;
  v_item_rows jsonb;
begin
  -- every account of the group locked, in user id order, and its epoch checked
  for v_user in
    select (value ->> 'userId')::uuid as user_id, (value ->> 'epoch')::bigint as epoch
    from jsonb_array_elements(p_batches) order by 1
  loop
    if not actor_epoch_holds(v_user.user_id, v_user.epoch) then
      v_fenced := v_fenced || v_user.user_id;
    end if;
  end loop;

  -- the group's creates in order, with all they are checked against, in one query
  for v_create in
    with creates as (
      select (b ->> 'userId')::uuid as user_id, c ->> 'generationId' as id, c, n
      from jsonb_array_elements(p_batches) b,
        jsonb_array_elements(b -> 'creates') with ordinality as x (c, n)
    ), hour as (
      select g.user_id, sum(g.total_items) as images,
        extract(epoch from min(g.created_at) + interval '1 hour' - now()) as frees_in
      from generations g
      where g.user_id in (select user_id from creates) and g.created_at > now() - interval '1 hour'
      group by g.user_id
    ), active as (
      select g.user_id, count(*) as n from generations g
      where g.user_id in (select user_id from creates) and g.status in ('queued', 'running')
      group by g.user_id
    )
    select cr.user_id, cr.id, cr.c,
      jsonb_array_length(cr.c -> 'items') as items,
      (cr.c ->> 'pricePerItem')::bigint * jsonb_array_length(cr.c -> 'items') as total,
      coalesce(h.images, 0) as images, coalesce(h.frees_in, 0) as frees_in,
      coalesce(a.n, 0) as active,
      k.key as record_key, k.request_hash, k.state, k.response_status, k.response_body,
      k.expires_at as record_expires_at,
      e.id as prior_id, e.kind as prior_kind, e.amount as prior_amount,
      e.generation_id as prior_generation_id
    from creates cr
    left join hour h on h.user_id = cr.user_id
    left join active a on a.user_id = cr.user_id
    left join lateral (
      select * from idempotency_keys k
      where k.user_id = cr.user_id and k.key = cr.c -> 'idem' ->> 'key'
    ) k on true
    left join lateral (
      select * from ledger_entries e
      where e.user_id = cr.user_id and e.idempotency_key = cr.c ->> 'chargeKey'
    ) e on true
    order by cr.user_id, cr.n
  loop
    if v_create.user_id = any (v_fenced) then
      v_results := v_results || jsonb_build_object(v_create.id, '{"ok": false, "code": "fenced"}'::jsonb);
      continue;
    end if;
    if v_last is distinct from v_create.user_id then
      -- each create accepted below counts in its user's limits
      v_last := v_create.user_id;
      v_images := v_create.images;
      v_frees_in := v_create.frees_in;
      v_active := v_create.active;
    end if;

    if v_create.record_key is not null and v_create.record_expires_at < now() then
      delete from idempotency_keys where user_id = v_create.user_id and key = v_create.record_key;
    elsif v_create.record_key is not null then
      v_results := v_results || jsonb_build_object(v_create.id,
        case
          when v_create.request_hash <> v_create.c -> 'idem' ->> 'hash' then
            '{"ok": false, "code": "idempotency_conflict"}'::jsonb
          when v_create.state = 'in_flight' then
            jsonb_build_object('ok', false, 'code', 'in_flight', 'holdsFor',
              greatest(0, extract(epoch from v_create.record_expires_at - now())))
          else
            jsonb_build_object('ok', true, 'recorded', jsonb_build_object(
              'status', v_create.response_status, 'body', v_create.response_body))
        end);
      continue;
    end if;

    if v_create.prior_id is not null then
      v_results := v_results || jsonb_build_object(v_create.id,
        case when v_create.prior_kind = 'charge' and v_create.prior_amount = -v_create.total
          then jsonb_build_object('ok', true, 'replayOf', v_create.prior_generation_id)
          else '{"ok": false, "code": "idempotency_conflict"}'::jsonb end);
      continue;
    end if;

    if v_images + v_create.items > v_images_limit then
      v_results := v_results || jsonb_build_object(v_create.id,
        jsonb_build_object('ok', false, 'code', 'hourly_limit', 'freesIn', v_frees_in));
      continue;
    end if;
    if v_active >= v_active_limit then
      v_results := v_results || jsonb_build_object(v_create.id,
        '{"ok": false, "code": "active_limit"}'::jsonb);
      continue;
    end if;
    v_images := v_images + v_create.items;
    v_active := v_active + 1;

    v_charges := v_charges || jsonb_build_object('userId', v_create.user_id,
      'command', jsonb_build_object(
        'id', v_create.c ->> 'chargeId', 'kind', 'charge', 'amount', v_create.total,
        'reason', 'generation ' || v_create.id, 'key', v_create.c ->> 'chargeKey',
        'generationId', v_create.id));
    v_charged := v_charged || jsonb_build_object('userId', v_create.user_id, 'create', v_create.c,
      'items', v_create.items, 'total', v_create.total);
  end loop;

  if jsonb_array_length(v_charges) = 0 then
    return jsonb_build_object('at', now(), 'ahead', 0, 'results', v_results);
  end if;

  -- the group's charges in one write, each user's in the order of its creates
  v_applied := ledger_apply_many((
    select jsonb_agg(jsonb_build_object('userId', u, 'commands', commands))
    from (
      select x ->> 'userId' as u, jsonb_agg(x -> 'command' order by n) as commands
      from jsonb_array_elements(v_charges) with ordinality as c (x, n)
      group by 1
    ) per_user));

  for v_create in
    select x ->> 'userId' as user_id, x -> 'create' as c, (x ->> 'items')::int as items,
      (x ->> 'total')::bigint as total,
      row_number() over (partition by x ->> 'userId' order by n) - 1 as at
    from jsonb_array_elements(v_charged) with ordinality as c (x, n)
    order by n
  loop
    v_charge := v_applied -> v_create.user_id -> 'results' -> v_create.at::int;
    if not (v_charge ->> 'ok')::boolean then
      v_results := v_results || jsonb_build_object(v_create.c ->> 'generationId', v_charge);
      continue;
    end if;
    v_gens := v_gens || jsonb_build_object(
      'id', v_create.c ->> 'generationId', 'user_id', v_create.user_id,
      'mode', v_create.c ->> 'mode', 'request', v_create.c -> 'request',
      'total_items', v_create.items, 'price_per_item', v_create.c -> 'pricePerItem',
      'credits_charged', v_create.total, 'charge_entry_id', v_charge -> 'entry' ->> 'id',
      'deadline_seconds', v_create.c -> 'deadlineSeconds');
    v_items := v_items || (
      select jsonb_agg(i || jsonb_build_object(
        'generation_id', v_create.c ->> 'generationId', 'user_id', v_create.user_id))
      from jsonb_array_elements(v_create.c -> 'items') i);
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
