-- The command key of the request that created a pose (its admin's id and its
-- Idempotency-Key, or a key of its own without one), so a retried creation
-- whose first answer was lost finds the pose it made instead of the unique
-- name's 409: the key record it would have replayed from is written after
-- the pose commits, and can be lost in between.
alter table poses add column creation_key text;
create unique index poses_creation_key on poses (creation_key) where creation_key is not null;
