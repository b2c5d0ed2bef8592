import { Elysia, t } from 'elysia'
import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { NotFound } from '../errors'
import { IdParam, Page, encodeCursor, errors, pageLimit } from '../http/schemas'
import { CategorySchema, PoseListQuery, PoseSchema, readPoseCursor } from './model'
import { findPose, listCategories, listPoses } from './repository'
import type { PoseRow } from './table'

type PoseColumns = Pick<
  PoseRow,
  'id' | 'name' | 'category_id' | 'tags' | 'difficulty' | 'keypoints' | 'thumbnail_url'
>

function toPose(row: PoseColumns) {
  return {
    id: row.id,
    name: row.name,
    category: row.category_id,
    tags: row.tags,
    difficulty: row.difficulty,
    keypoints: row.keypoints,
    thumbnailUrl: row.thumbnail_url,
  }
}

/** The pose library, readable without a token (it is the same for everyone). */
export function libraryRoutes(deps: { db: Kysely<DB> }) {
  return new Elysia({ detail: { tags: ['library'] } })
    .get(
      '/v1/library/poses',
      async ({ query }) => {
        const limit = pageLimit(query.limit)
        const after = readPoseCursor(query.cursor)
        const rows = await listPoses(deps.db, { limit: limit + 1, category: query.category, after })
        const page = rows.slice(0, limit)
        const last = page.at(-1)
        return {
          items: page.map(toPose),
          nextCursor: rows.length > limit && last ? encodeCursor([last.name, last.id]) : null,
        }
      },
      {
        query: PoseListQuery,
        detail: { summary: 'Poses in name order (keyset pages); ?category= filters. Public.' },
        response: { 200: Page(PoseSchema), ...errors(422) },
      },
    )
    .get(
      '/v1/library/poses/:id',
      async ({ params }) => {
        const row = await findPose(deps.db, params.id)
        if (!row) throw new NotFound('Pose')
        return toPose(row)
      },
      {
        params: IdParam,
        detail: { summary: 'One pose. Public.' },
        response: { 200: PoseSchema, ...errors(404, 422) },
      },
    )
    .get(
      '/v1/library/categories',
      async () => ({
        items: (await listCategories(deps.db)).map((c) => ({
          id: c.id,
          name: c.name,
          poseCount: Number(c.pose_count),
        })),
      }),
      {
        detail: { summary: 'Categories with their pose counts. Public.' },
        response: { 200: t.Object({ items: t.Array(CategorySchema) }) },
      },
    )
}
