-- Library search and management (issue 13).
-- ?q= is a case-insensitive substring match on the name and on any tag:
-- `name ilike $1 or pose_tags_text(tags) ilike $1`, each side served by a
-- pg_trgm GIN index (embedded mode loads PGlite's bundled pg_trgm, so both
-- modes run this file and the same queries). ?tag= is `tags @> $1`, served by
-- poses_tags (0004).
create extension if not exists pg_trgm;

-- Tags as one text, for the trigram index. array_to_string is only STABLE
-- (anyarray's output function could depend on settings); for text[] it is
-- immutable in fact. The separator is a newline, which no tag and no ?q= may
-- contain, so a match never spans two tags.
create function pose_tags_text(tags text[]) returns text
  language sql immutable parallel safe
  as $$ select array_to_string(tags, E'\n') $$;

create index poses_name_trgm on poses using gin (name gin_trgm_ops);
create index poses_tags_trgm on poses using gin (pose_tags_text(tags) gin_trgm_ops);

-- A deleted pose leaves the library, but generations that used it keep it
-- (their items keep pose_id, and a queued item still renders it).
alter table poses add column deleted_at timestamptz;

-- one name per category among the poses in the library, ignoring case
create unique index poses_category_name_unique on poses (category_id, lower(name))
  where deleted_at is null;

-- superseded by the trigram index on name
drop index poses_lower_name;
