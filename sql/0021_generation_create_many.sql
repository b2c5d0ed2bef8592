-- Accepts of several users in one statement (src/generation/create-writer.ts:
-- the accept group commit). p_batches is a JSON array of
--   {"userId", "epoch": bigint | null, "creates": [{"generationId", "chargeId", "mode",
--    "request", "pricePerItem", "deadlineSeconds", "chargeKey",
--    "items": [{"id", "key", "poseId", "variation"}],
--    "idem": {"key", "hash"} | null}]}
-- and p_limits {"imagesPerHour", "activeGenerations"}.
--
-- Users are taken in id order (so two groups cannot deadlock), each under its
-- account row lock with its owner's epoch checked (actor_epoch_holds); a
-- stale user's creates are skipped, answered {"fenced": true}. Per user, in
-- order, each create: its Idempotency-Key record (a completed one with the
-- same request is answered as recorded, another request's is a conflict, one
-- in flight says how long it holds), a charge already made under its key (a
-- replay: its generation), the hourly and the active-generation limits
-- (counting the creates before it), the charge through ledger_apply (which
-- writes credits.changed), then generation.queued. The rows of every create
-- accepted go in one multi-row insert for generations and one for items.
--
-- Returns {"at": now(), "ahead": queued items before this transaction's,
-- "results": {generationId: result}} where a result is one of
--   {"ok": true, "generation": row, "items": [rows in key order]}
--   {"ok": true, "replayOf": generationId}
--   {"ok": true, "recorded": {"status", "body"}}
--   {"ok": false, "code": "fenced" | "idempotency_conflict" | "in_flight"
--     (with "holdsFor" seconds) | "hourly_limit" (with "freesIn" seconds) |
--     "active_limit" | "insufficient_credits" (with "required", "available")}
create function generation_create_many(p_batches jsonb, p_limits jsonb) returns jsonb
language plpgsql as $$
declare
  v_images_limit int := (p_limits ->> 'imagesPerHour')::int;
  v_active_limit int := (p_limits ->> 'activeGenerations')::int;
  v_results jsonb := '{}'::jsonb;
  v_gens jsonb := '[]'::jsonb;
  v_items jsonb := '[]'::jsonb;
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
  v_charge jsonb;
  v_rows jsonb;
  v_item_rows jsonb;
begin
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
    select coalesce(sum(total_items), 0),
        coalesce(extract(epoch from min(created_at) + interval '1 hour' - now()), 0)
      into v_images, v_frees_in
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
        v_results := v_results || jsonb_build_object(v_id,
          jsonb_build_object('ok', false, 'code', 'hourly_limit', 'freesIn', v_frees_in));
        continue;
      end if;
      if v_active >= v_active_limit then
        v_results := v_results || jsonb_build_object(v_id,
          '{"ok": false, "code": "active_limit"}'::jsonb);
        continue;
      end if;

      v_charge := ledger_apply(v_user, jsonb_build_array(jsonb_build_object(
        'id', v_create ->> 'chargeId', 'kind', 'charge', 'amount', v_total,
        'reason', 'generation ' || v_id, 'key', v_create ->> 'chargeKey',
        'generationId', v_id))) -> 'results' -> 0;
      if not (v_charge ->> 'ok')::boolean then
        v_results := v_results || jsonb_build_object(v_id, v_charge);
        continue;
      end if;

      v_images := v_images + v_n;
      v_active := v_active + 1;
      v_gens := v_gens || jsonb_build_object(
        'id', v_id, 'user_id', v_user, 'mode', v_create ->> 'mode',
        'request', v_create -> 'request', 'total_items', v_n,
        'price_per_item', v_create -> 'pricePerItem', 'credits_charged', v_total,
        'charge_entry_id', v_charge -> 'entry' ->> 'id',
        'deadline_seconds', v_create -> 'deadlineSeconds');
      v_items := v_items || (
        select jsonb_agg(i || jsonb_build_object('generation_id', v_id, 'user_id', v_user))
        from jsonb_array_elements(v_create -> 'items') i);
      -- after the charge's credits.changed, which ledger_apply wrote
      perform outbox_append(v_user, json_build_array(json_build_object(
        'n', 'generation.queued',
        'd', json_build_object('generationId', v_id, 'totalItems', v_n, 'creditsCharged', v_total))));
    end loop;
  end loop;

  if jsonb_array_length(v_gens) > 0 then
    with ins as (
      insert into generations (id, user_id, mode, request, total_items, price_per_item,
          credits_charged, charge_entry_id, deadline_at)
        select g.id, g.user_id, g.mode, g.request, g.total_items, g.price_per_item,
          g.credits_charged, g.charge_entry_id,
          now() + g.deadline_seconds * interval '1 second'
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

    select v_results || jsonb_object_agg(k, jsonb_build_object(
        'ok', true, 'generation', v, 'items', v_item_rows -> k))
      into v_results from jsonb_each(v_rows) as r (k, v);
  end if;

  return jsonb_build_object(
    'at', now(),
    -- every accepted item is enqueued at now(): what was queued before, for all of them
    'ahead', (select count(*) from generation_items
      where status = 'queued' and enqueued_at < now()),
    'results', v_results);
end
$$;
