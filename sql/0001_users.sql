-- Users: UUIDv7 ids from the application, one account per case-insensitive email.
create table users (
  id uuid primary key,
  email text not null,
  password_hash text not null,
  role text not null default 'user' check (role in ('user', 'admin')),
  created_at timestamptz not null default now()
);

create unique index users_email_lower_key on users (lower(email));
