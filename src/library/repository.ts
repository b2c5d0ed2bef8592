import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'

const POSE_COLUMNS = [
  'poses.id',
  'poses.name',
  'poses.category_id',
  'poses.tags',
  'poses.difficulty',
  'poses.keypoints',
  'poses.thumbnail_url',
] as const

/** A keyset page in (name, id) order, optionally within one category. */
export function listPoses(
  db: Kysely<DB>,
  options: { limit: number; category?: string; after?: [string, string] },
) {
  let q = db
    .selectFrom('poses')
    .select(POSE_COLUMNS)
    .orderBy('name')
    .orderBy('id')
    .limit(options.limit)
  if (options.category) q = q.where('category_id', '=', options.category)
  // a row comparison, (name, id) > ($1, $2), is one range scan of poses_name_id
  // (or poses_category_name_id after the category's equality)
  const after = options.after
  if (after) q = q.where((eb) => eb(eb.refTuple('name', 'id'), '>', eb.tuple(after[0], after[1])))
  return q.execute()
}

export function findPose(db: Kysely<DB>, id: string) {
  return db.selectFrom('poses').select(POSE_COLUMNS).where('id', '=', id).executeTakeFirst()
}

export function findPosesByIds(db: Kysely<DB>, ids: readonly string[]) {
  if (ids.length === 0) return Promise.resolve([])
  return db
    .selectFrom('poses')
    .select(POSE_COLUMNS)
    .where('id', 'in', [...ids])
    .execute()
}

/** Every category with its number of poses, in one grouped query. */
export function listCategories(db: Kysely<DB>) {
  return db
    .selectFrom('pose_categories')
    .leftJoin('poses', 'poses.category_id', 'pose_categories.id')
    .select((eb) => [
      'pose_categories.id',
      'pose_categories.name',
      eb.fn.count<number>('poses.id').as('pose_count'),
    ])
    .groupBy(['pose_categories.id', 'pose_categories.name'])
    .orderBy('pose_categories.name')
    .execute()
}
