import { t } from 'elysia'
import { ValidationFailed } from '../errors'
import { CursorParam, LimitParam } from '../http/schemas'
import { decodeCursor, isUuid } from '../db/keyset'
import { JsonInteger, SafeString, isSafeText } from '../http/text'
import { KeypointsSchema } from './keypoints'

// Text fields here refuse control characters (a newline separates tags in the
// trigram index, so neither a tag nor ?q= may hold one), NUL included; their own
// pattern replaces SafeString's, so unpaired surrogates are refused in code
// (service and route, with isWellFormed).
const NO_CONTROL = '[^\\u0000-\\u001f\\u007f]'
const PRINTABLE = '[^\\s\\u0000-\\u001f\\u007f]'

/** A tag: lowercase words joined by hyphens, as the seed's (`front-view`). */
export const TagSchema = SafeString({
  pattern: '^[a-z0-9][a-z0-9-]{0,39}$',
  description: 'a tag: lowercase letters, digits and hyphens, up to 40 characters',
})
const CategoryId = SafeString({
  pattern: '^[a-z][a-z0-9-]*$',
  maxLength: 64,
  description: 'category id, e.g. standing',
})
const Difficulty = t.Union([t.Literal('easy'), t.Literal('medium'), t.Literal('hard')])

export const PoseSchema = t.Object({
  id: t.String(),
  name: t.String(),
  category: t.String({ description: 'category id, e.g. standing' }),
  tags: t.Array(t.String()),
  difficulty: Difficulty,
  keypoints: KeypointsSchema,
  thumbnailUrl: t.Union([t.String(), t.Null()], {
    description: 'null until pose thumbnails are rendered',
  }),
})

/** An admin's pose: as GET returns it, without id and thumbnailUrl. */
export const PoseInputSchema = t.Object({
  name: SafeString({
    minLength: 1,
    maxLength: 100,
    pattern: `^${PRINTABLE}(${NO_CONTROL}*${PRINTABLE})?$`,
    description: '1..100 characters, no control characters, no leading or trailing space',
  }),
  category: CategoryId,
  tags: t.Array(TagSchema, { maxItems: 20, uniqueItems: true }),
  difficulty: Difficulty,
  keypoints: KeypointsSchema,
})

export const CategorySchema = t.Object({
  id: t.String(),
  name: t.String(),
  poseCount: JsonInteger(),
})

export const PoseListQuery = t.Object({
  limit: LimitParam,
  cursor: CursorParam,
  q: t.Optional(
    SafeString({
      minLength: 1,
      maxLength: 100,
      pattern: `^${NO_CONTROL}+$`,
      description:
        'case-insensitive substring of the name or of any tag; % _ and \\ match themselves (1..100 characters)',
    }),
  ),
  // the tag pattern is checked by readTags: Elysia reports a failed item of a
  // query array without its path
  tag: t.Optional(
    t.Array(SafeString({ maxLength: 40 }), {
      maxItems: 20,
      description:
        'repeatable (?tag=a&tag=b): poses that have every one of these tags (lowercase letters, digits and hyphens)',
    }),
  ),
  // the shape of a category id (sql/0004): anything else could not match, and a NUL would fail in SQL
  category: t.Optional(CategoryId),
})

const TAG = /^[a-z0-9][a-z0-9-]{0,39}$/

/** `?tag=` values, each a tag's shape (422 with its path otherwise). */
export function readTags(tags: string[] | undefined): string[] | undefined {
  const bad = (tags ?? []).findIndex((tag) => !TAG.test(tag))
  if (bad >= 0) throw new ValidationFailed([{ path: `/tag/${bad}`, message: 'Not a tag' }])
  return tags
}

/**
 * A page cursor is `[name, id]` of the last pose on the previous page. A cursor
 * that decodes but has another shape (forged, or from another list) is a 422
 * on `cursor`: it must never reach SQL, where a non-uuid id or a NUL is a 500.
 */
function isPoseCursor(v: unknown[]): v is [string, string] {
  const [name, id] = v
  return (
    v.length === 2 &&
    typeof name === 'string' &&
    name.length <= 200 &&
    isSafeText(name) &&
    isUuid(id)
  )
}

export function readPoseCursor(cursor: string | undefined): [string, string] | undefined {
  return decodeCursor(cursor, isPoseCursor)
}
