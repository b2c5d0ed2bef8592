-- Cluster ownership of user actors (DESIGN.md invariant 2). One row per user
-- that an instance ever claimed: the owner (null once released), a fencing
-- epoch that every claim raises, and times on the database clock. Liveness is
-- not here (one Redis heartbeat per instance, src/actors/membership.ts): the
-- claimant decides an owner is dead and names it; this table only decides who
-- won, and the epoch makes a stale owner's writes fail.
create table actor_owners (
  user_id uuid primary key references users (id) on delete cascade,
  epoch bigint not null check (epoch > 0),
  owner text,
  -- when the current owner claimed
  since timestamptz not null default now(),
  -- a fresh claim cannot be taken over before this, whatever a heartbeat says:
  -- a new owner's first heartbeat may not be visible yet
  lease_until timestamptz not null default now()
);

create index actor_owners_owner on actor_owners (owner) where owner is not null;

-- Locks the user's account row for the rest of the transaction, opening the
-- account when missing: the same lock ledger_apply takes, so everything that
-- is decided under it (balances, and here ownership) is serialized per user.
create function actor_lock_account(p_user_id uuid) returns void
language plpgsql as $$
begin
  perform 1 from credit_accounts where user_id = p_user_id for update;
  if not found then
    insert into credit_accounts (user_id) values (p_user_id) on conflict (user_id) do nothing;
    perform 1 from credit_accounts where user_id = p_user_id for update;
  end if;
end
$$;

-- Under the account lock: whether p_epoch is still the user's epoch. A null
-- epoch is an unfenced caller (embedded mode: one process owns everything).
-- A claim takes the same lock before it raises the epoch, so a transaction
-- that passed this check commits before the claim, and one that runs after
-- the claim sees the new epoch.
create function actor_epoch_holds(p_user_id uuid, p_epoch bigint) returns boolean
language plpgsql as $$
begin
  perform actor_lock_account(p_user_id);
  if p_epoch is null then
    return true;
  end if;
  return exists (select 1 from actor_owners where user_id = p_user_id and epoch = p_epoch);
end
$$;

-- The fence of a generation command's transaction: raises SQLSTATE AF001
-- (src/db/errors.ts: StaleEpoch) when the epoch is stale; nothing is written.
create function actor_fence(p_user_id uuid, p_epoch bigint) returns void
language plpgsql as $$
begin
  if not actor_epoch_holds(p_user_id, p_epoch) then
    raise exception 'stale actor epoch % for user %', p_epoch, p_user_id using errcode = 'AF001';
  end if;
end
$$;

-- Claims the user for p_owner. It wins when nobody owns the user, when
-- p_owner already does (no change, same epoch), or when the owner is p_dead
-- (which the caller found without a heartbeat) and its claim's lease has
-- passed. A win raises the epoch. Returns the row as it stands: the winner's.
create function actor_claim(p_user_id uuid, p_owner text, p_dead text, p_lease_ms integer)
returns actor_owners
language plpgsql as $$
declare
  v_row actor_owners;
begin
  -- wait for the old owner's transaction in flight, if any: it commits first
  perform actor_lock_account(p_user_id);
  insert into actor_owners as o (user_id, epoch, owner, since, lease_until)
    values (p_user_id, 1, p_owner, now(), now() + make_interval(secs => p_lease_ms / 1000.0))
    on conflict (user_id) do update
      set epoch = o.epoch + 1, owner = excluded.owner, since = excluded.since,
          lease_until = excluded.lease_until
      where o.owner is null
         or (p_dead is not null and o.owner = p_dead and o.lease_until <= now())
    returning * into v_row;
  if v_row.user_id is null then
    select * into strict v_row from actor_owners where user_id = p_user_id;
  end if;
  return v_row;
end
$$;

-- ledger_apply with a fence: p_epoch must be current (AF001 otherwise).
create function ledger_apply(p_user_id uuid, p_commands jsonb, p_epoch bigint) returns jsonb
language plpgsql as $$
begin
  perform actor_fence(p_user_id, p_epoch);
  return ledger_apply(p_user_id, p_commands);
end
$$;

-- ledger_apply_many with a fence per user: each batch carries its owner's
-- epoch ({userId, epoch, commands}); a stale batch is skipped and answered
-- {"fenced": true} (the writer re-routes it), the others commit together.
-- Account rows are locked in user id order, as in ledger_apply_many.
create function ledger_apply_many_fenced(p_batches jsonb) returns jsonb
language sql as $$
  select coalesce(jsonb_object_agg(b ->> 'userId',
    case when actor_epoch_holds((b ->> 'userId')::uuid, (b ->> 'epoch')::bigint)
      then ledger_apply((b ->> 'userId')::uuid, b -> 'commands')
      else '{"fenced": true}'::jsonb end), '{}'::jsonb)
  from (
    select value as b from jsonb_array_elements(p_batches)
    order by (value ->> 'userId')::uuid
  ) ordered
$$;

-- outbox_append with a fence, for event writes outside a fenced transaction.
create function outbox_append(p_user_id uuid, p_events json, p_epoch bigint) returns bigint
language plpgsql as $$
begin
  perform actor_fence(p_user_id, p_epoch);
  return outbox_append(p_user_id, p_events);
end
$$;
