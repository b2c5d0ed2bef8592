-- Stored images (renders, thumbnails, exports; uploads later). The storage key
-- is derived from what the image is, so a retried render overwrites its own
-- object instead of producing a second one.
create table media (
  id uuid primary key,
  user_id uuid not null references users (id) on delete cascade,
  storage_key text not null unique,
  content_type text not null,
  bytes bigint not null check (bytes > 0),
  width integer,
  height integer,
  created_at timestamptz not null default now()
);

create index media_user on media (user_id, created_at desc);

create table generations (
  id uuid primary key,
  user_id uuid not null references users (id) on delete cascade,
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled')),
  mode text not null check (mode in ('library', 'text')),
  -- prompt, poseIds, variations, background, formats, uploadId, as accepted
  request jsonb not null,
  total_items integer not null check (total_items > 0),
  succeeded_items integer not null default 0,
  failed_items integer not null default 0,
  cancelled_items integer not null default 0,
  price_per_item bigint not null check (price_per_item > 0),
  credits_charged bigint not null check (credits_charged > 0),
  credits_refunded bigint not null default 0,
  charge_entry_id uuid not null references ledger_entries (id),
  deadline_at timestamptz,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  check (succeeded_items + failed_items + cancelled_items <= total_items),
  check (credits_refunded <= credits_charged)
);

create index generations_user_newest on generations (user_id, created_at desc, id desc);
create index generations_user_active on generations (user_id) where status in ('queued', 'running');

-- The work queue. An item is claimed with FOR UPDATE SKIP LOCKED and leased to
-- one instance (lease_owner until lease_expires_at, extended by heartbeats);
-- an expired lease returns it to the queue. It ends succeeded, failed or cancelled.
create table generation_items (
  id uuid primary key,
  generation_id uuid not null references generations (id) on delete cascade,
  user_id uuid not null references users (id) on delete cascade,
  key text not null,
  pose_id uuid,
  variation integer not null check (variation >= 0),
  status text not null default 'queued'
    check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  attempts integer not null default 0,
  lease_owner text,
  lease_expires_at timestamptz,
  next_attempt_at timestamptz not null default now(),
  error_code text,
  error_message text,
  image_media_id uuid references media (id),
  thumbnail_media_id uuid references media (id),
  -- { square | portrait | story: media id }
  export_media_ids jsonb not null default '{}'::jsonb,
  enqueued_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  constraint generation_items_key unique (generation_id, key),
  check ((status = 'running') = (lease_owner is not null))
);

create index generation_items_due on generation_items (next_attempt_at, enqueued_at) where status = 'queued';
create index generation_items_leased on generation_items (lease_expires_at) where status = 'running';
create index generation_items_generation on generation_items (generation_id);
create index generation_items_finished on generation_items (finished_at) where finished_at is not null;
