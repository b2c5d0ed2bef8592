-- Idempotency-Key records: one per (user, key). `in_flight` while the first
-- request runs (held until expires_at, then another may take it over);
-- `completed` with the first response, kept for 24 hours.
create table idempotency_keys (
  user_id uuid not null references users (id) on delete cascade,
  key text not null,
  request_hash text not null,
  state text not null check (state in ('in_flight', 'completed')),
  response_status integer,
  response_body jsonb,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  primary key (user_id, key)
);

create index idempotency_keys_expires_at on idempotency_keys (expires_at);
