import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { Conflict, NotFound, ValidationFailed } from '../errors'
import type { PoseCache } from './cache'
import type { LibraryInvalidation } from './invalidation'
import { validateKeypoints } from './keypoints'
import {
  categoryExists,
  findPose,
  findPosesByIds,
  findPoseByCreationKey,
  insertPose,
  listCategories,
  listPoses,
  markPoseDeleted,
  replacePose,
  type PoseFilter,
  type PoseValues,
} from './repository'
import type { PoseRow } from './table'

type PoseColumns = Pick<
  PoseRow,
  'id' | 'name' | 'category_id' | 'tags' | 'difficulty' | 'keypoints' | 'thumbnail_url'
>

export type Pose = ReturnType<typeof toPose>

export function toPose(row: PoseColumns) {
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

export type Library = ReturnType<typeof makeLibrary>

export type LibraryDeps = {
  db: Kysely<DB>
  readDb: Kysely<DB>
  cache: PoseCache
  invalidation: LibraryInvalidation
}

/**
 * The pose library's rules. Public reads go to `readDb` (the replica when
 * DATABASE_READ_URL is set) through the cache; what a generation checks and
 * renders reads the primary, so a pose just created can be used at once.
 * Admin writes go to the primary, then clear every instance's cache.
 */
export function makeLibrary(deps: LibraryDeps) {
  const { db, readDb, cache } = deps
  const rowsByIds = (ids: readonly string[]) => cachedRows(db, cache, ids)
  const changed = () => deps.invalidation.publish()

  return {
    list(options: PoseFilter & { limit: number; after?: [string, string] }) {
      // names are stored in NFC: a decomposed é in the query finds the composed one
      const filter =
        options.q === undefined ? options : { ...options, q: options.q.normalize('NFC') }
      return cache.get(`list:${JSON.stringify(filter)}`, async () =>
        (await listPoses(readDb, filter)).map(toPose),
      )
    },
    async get(id: string) {
      const pose = await cache.get(`pose:${id}`, async () => {
        const row = await findPose(readDb, id)
        return row ? toPose(row) : null
      })
      if (!pose) throw new NotFound('Pose')
      return pose
    },
    categories() {
      return cache.get('categories', async () =>
        (await listCategories(readDb)).map((c) => ({
          id: c.id,
          name: c.name,
          poseCount: Number(c.pose_count),
        })),
      )
    },
    /** Which of `ids` are poses of the library now (for accepting a generation). */
    async existing(ids: string[]) {
      const rows = await rowsByIds(ids)
      return new Set([...rows.values()].filter((r) => r && !r.deleted).map((r) => r!.id))
    },
    /** A pose to render, deleted ones included: an item accepted before the delete still renders. */
    async load(id: string) {
      const row = (await rowsByIds([id])).get(id)
      return row ? { id: row.id, name: row.name, keypoints: row.keypoints } : undefined
    },
    /**
     * `creationKey`: the creating request's command key; a retry of a request
     * that created its pose (the answer lost) answers with that pose.
     */
    async create(input: PoseValues, creationKey: string) {
      const values = await checked(db, input)
      const inserted = await insertPose(db, Bun.randomUUIDv7(), values, creationKey).catch(
        conflictOnName,
      )
      const row = inserted ?? (await findPoseByCreationKey(db, creationKey))
      // poses are never removed, only marked deleted: the conflicting one is there
      if (!row) throw new Error('a pose conflicted on its creation key and is not there')
      // a retry too: the first attempt may have died before its caches were told
      await changed()
      return toPose(row)
    },
    async replace(id: string, input: PoseValues) {
      const values = await checked(db, input)
      const row = await replacePose(db, id, values).catch(conflictOnName)
      if (!row) throw new NotFound('Pose')
      await changed()
      return toPose(row)
    },
    async remove(id: string) {
      if (!(await markPoseDeleted(db, id))) throw new NotFound('Pose')
      await changed()
    },
  }
}

/** Rows by id, deleted poses included; null for an id that is no pose. One query for every id not cached. */
function cachedRows(db: Kysely<DB>, cache: PoseCache, ids: readonly string[]) {
  return cache.getMany('row:', ids, async (missing) => {
    const rows = new Map((await findPosesByIds(db, missing)).map((r) => [r.id, r]))
    return new Map(missing.map((id) => [id, rows.get(id) ?? null]))
  })
}

/**
 * A pose's values as the library takes them: valid keypoints, a well-formed
 * name in NFC (so "jeté" typed composed or decomposed is one name to the
 * unique index and to search), a known category.
 */
async function checked(db: Kysely<DB>, values: PoseValues): Promise<PoseValues> {
  const issues = validateKeypoints(values.keypoints)
  if (!values.name.isWellFormed())
    issues.push({ path: '/name', message: 'Expected text without unpaired surrogates' })
  if (issues.length > 0) throw new ValidationFailed(issues)
  if (!(await categoryExists(db, values.category)))
    throw new ValidationFailed([{ path: '/category', message: 'Unknown category' }])
  return { ...values, name: values.name.normalize('NFC') }
}

function conflictOnName(error: unknown): never {
  const e = error as { code?: string; constraint?: string; constraint_name?: string }
  if (e?.code === '23505')
    throw new Conflict('A pose with this name already exists in this category')
  throw error
}
