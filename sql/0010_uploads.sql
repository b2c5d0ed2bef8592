-- Reference images uploaded by users. An upload's id is the id of its stored
-- image in `media` (so GET /v1/media/:id serves it like a generated image);
-- its thumbnail is a second media row. `bytes` is the stored (metadata-free)
-- size, which UPLOAD_QUOTA_BYTES counts. `command_key` makes a retried upload
-- under one Idempotency-Key one upload.
create table uploads (
  id uuid primary key references media (id) on delete cascade,
  user_id uuid not null references users (id) on delete cascade,
  thumbnail_media_id uuid not null references media (id) on delete cascade,
  format text not null check (format in ('png', 'jpeg', 'webp')),
  width integer not null check (width between 1 and 65535),
  height integer not null check (height between 1 and 65535),
  bytes bigint not null check (bytes > 0),
  command_key text not null,
  -- milliseconds, as the keyset cursor carries them
  created_at timestamptz(3) not null default now(),
  constraint uploads_command_key unique (user_id, command_key)
);

-- GET /v1/uploads (newest first, keyset) and the hourly count
create index uploads_user_newest on uploads (user_id, created_at desc, id desc);
