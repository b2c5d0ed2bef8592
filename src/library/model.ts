import { t } from 'elysia'
import { CursorParam, LimitParam, decodeCursor, isUuid } from '../http/schemas'
import { SafeString, isSafeText } from '../http/text'
import { KeypointsSchema } from './keypoints'

export const PoseSchema = t.Object({
  id: t.String(),
  name: t.String(),
  category: t.String({ description: 'category id, e.g. standing' }),
  tags: t.Array(t.String()),
  difficulty: t.Union([t.Literal('easy'), t.Literal('medium'), t.Literal('hard')]),
  keypoints: KeypointsSchema,
  thumbnailUrl: t.Union([t.String(), t.Null()], {
    description: 'null until pose thumbnails are rendered',
  }),
})

export const CategorySchema = t.Object({ id: t.String(), name: t.String(), poseCount: t.Integer() })

export const PoseListQuery = t.Object({
  limit: LimitParam,
  cursor: CursorParam,
  // the shape of a category id (sql/0004): anything else could not match, and a NUL would fail in SQL
  category: t.Optional(
    SafeString({ pattern: '^[a-z][a-z0-9-]*$', maxLength: 64, description: 'category id' }),
  ),
})

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
