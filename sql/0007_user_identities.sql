-- External identities (JWKS_URL mode): an identity provider's (issuer, subject)
-- names one local user, created the first time a valid token shows it. The
-- subject ("auth0|abc123") is never used as a user id itself.
create table user_identities (
  issuer text not null,
  subject text not null,
  user_id uuid not null references users (id) on delete cascade,
  -- the email claim when the provider sent one (users.email is null when another
  -- account already has that address: a provider's claim never takes one over)
  email text,
  created_at timestamptz not null default now(),
  primary key (issuer, subject)
);

create index user_identities_user_id on user_identities (user_id);

-- A user provisioned from an identity has no password (it cannot log in with
-- one) and has an email only when the provider sent one.
alter table users alter column password_hash drop not null;
alter table users alter column email drop not null;
