import { sql, type Kysely, type Transaction } from 'kysely'
import { jsonb } from '../db/json'
import { containsPattern } from '../db/like'
import type { DB } from '../db/schema'
import type { Keypoint } from './keypoints'
import type { Difficulty } from './table'

const POSE_COLUMNS = [
  'poses.id',
  'poses.name',
  'poses.category_id',
  'poses.tags',
  'poses.difficulty',
  'poses.keypoints',
  'poses.thumbnail_url',
] as const

type Db = Kysely<DB> | Transaction<DB>

export type PoseFilter = {
  /** Substring of the name or of any tag, case-insensitive, taken literally. */
  q?: string
  /** Every one of these tags. */
  tags?: readonly string[]
  category?: string
}

/**
 * A keyset page of the library in (name, id) order under any filter. Every
 * value is a bound parameter; q goes through the one LIKE escape.
 *  - q: `name ilike $p or pose_tags_text(tags) ilike $p`, two trigram GIN
 *    indexes (a BitmapOr); pose_tags_text is the function the index is on.
 *  - tags: `tags @> $t`, the GIN index on tags.
 *  - after: `(name, id) > ($1, $2)`, one range of poses_name_id, or of
 *    poses_category_name_id after the category's equality.
 */
export function listPoses(db: Db, options: PoseListOptions) {
  return poseListQuery(db, options).execute()
}

export type PoseListOptions = PoseFilter & { limit: number; after?: [string, string] }

/** listPoses's query, unexecuted (the tests and the benchmark EXPLAIN it). */
export function poseListQuery(db: Db, options: PoseListOptions) {
  let q = db
    .selectFrom('poses')
    .select(POSE_COLUMNS)
    .where('deleted_at', 'is', null)
    .orderBy('name')
    .orderBy('id')
    .limit(options.limit)
  if (options.category) q = q.where('category_id', '=', options.category)
  if (options.tags && options.tags.length > 0) {
    const tags = [...options.tags]
    q = q.where(sql<boolean>`tags @> ${sql.val(tags)}::text[]`)
  }
  if (options.q !== undefined) {
    const pattern = containsPattern(options.q)
    q = q.where(sql<boolean>`(name ilike ${pattern} or pose_tags_text(tags) ilike ${pattern})`)
  }
  const after = options.after
  if (after) q = q.where((eb) => eb(eb.refTuple('name', 'id'), '>', eb.tuple(after[0], after[1])))
  return q
}

/** One pose of the library (not a deleted one). */
export function findPose(db: Db, id: string) {
  return db
    .selectFrom('poses')
    .select(POSE_COLUMNS)
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .executeTakeFirst()
}

/**
 * Poses by id, deleted ones included (a queued item of a deleted pose still
 * renders it), each with `deleted` so callers choose.
 */
export function findPosesByIds(db: Db, ids: readonly string[]) {
  if (ids.length === 0) return Promise.resolve([])
  return db
    .selectFrom('poses')
    .select([...POSE_COLUMNS, sql<boolean>`deleted_at is not null`.as('deleted')])
    .where('id', 'in', [...ids])
    .execute()
}

/** Every category with its number of poses in the library, in one grouped query. */
export function listCategories(db: Db) {
  return db
    .selectFrom('pose_categories')
    .leftJoin('poses', (join) =>
      join.onRef('poses.category_id', '=', 'pose_categories.id').on('poses.deleted_at', 'is', null),
    )
    .select((eb) => [
      'pose_categories.id',
      'pose_categories.name',
      eb.fn.count<number>('poses.id').as('pose_count'),
    ])
    .groupBy(['pose_categories.id', 'pose_categories.name'])
    .orderBy('pose_categories.name')
    .execute()
}

export async function categoryExists(db: Db, id: string) {
  const row = await db
    .selectFrom('pose_categories')
    .select('id')
    .where('id', '=', id)
    .executeTakeFirst()
  return row !== undefined
}

export type PoseValues = {
  name: string
  category: string
  tags: string[]
  difficulty: Difficulty
  keypoints: Keypoint[]
}

/**
 * Inserts a pose created by the request with command key `creationKey`;
 * undefined when that request already created one (a retry): then
 * `findPoseByCreationKey` has it. A name taken in its category still fails
 * (23505 on poses_category_name_unique).
 */
export function insertPose(db: Db, id: string, v: PoseValues, creationKey: string) {
  return db
    .insertInto('poses')
    .values({
      id,
      name: v.name,
      category_id: v.category,
      tags: v.tags,
      difficulty: v.difficulty,
      keypoints: jsonb(v.keypoints),
      creation_key: creationKey,
    })
    .onConflict((oc) => oc.column('creation_key').where('creation_key', 'is not', null).doNothing())
    .returning(POSE_COLUMNS)
    .executeTakeFirst()
}

/** The pose the request with command key `creationKey` created, deleted or not. */
export function findPoseByCreationKey(db: Db, creationKey: string) {
  return db
    .selectFrom('poses')
    .select(POSE_COLUMNS)
    .where('creation_key', '=', creationKey)
    .executeTakeFirst()
}

/** Replaces a pose of the library; undefined when there is none with that id. */
export function replacePose(db: Db, id: string, v: PoseValues) {
  return db
    .updateTable('poses')
    .set({
      name: v.name,
      category_id: v.category,
      tags: v.tags,
      difficulty: v.difficulty,
      keypoints: jsonb(v.keypoints),
      updated_at: sql<Date>`now()`,
    })
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .returning(POSE_COLUMNS)
    .executeTakeFirst()
}

/** Takes a pose out of the library; its row stays for the generations that used it. */
export async function markPoseDeleted(db: Db, id: string) {
  const result = await db
    .updateTable('poses')
    .set({ deleted_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .where('deleted_at', 'is', null)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}
