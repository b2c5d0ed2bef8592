import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'

export type NewMedia = {
  userId: string
  storageKey: string
  contentType: string
  bytes: number
  width: number | null
  height: number | null
}

/** A media row as inserted: one spelling of the columns for every writer of `media`. */
export function mediaRow(m: NewMedia & { id: string }) {
  return {
    id: m.id,
    user_id: m.userId,
    storage_key: m.storageKey,
    content_type: m.contentType,
    bytes: m.bytes,
    width: m.width,
    height: m.height,
  }
}

/**
 * Records stored objects in one statement and returns their ids in the
 * order given. The storage key names what an image is (generation, item,
 * variant), so a retried render upserts the same rows and keeps their ids:
 * one image per key, whatever the number of attempts.
 */
export async function upsertMedia(db: Kysely<DB>, media: NewMedia[]): Promise<string[]> {
  if (media.length === 0) return []
  const rows = await db
    .insertInto('media')
    .values(media.map((m) => mediaRow({ ...m, id: Bun.randomUUIDv7() })))
    .onConflict((oc) =>
      oc.column('storage_key').doUpdateSet((eb) => ({
        bytes: eb.ref('excluded.bytes'),
        content_type: eb.ref('excluded.content_type'),
        width: eb.ref('excluded.width'),
        height: eb.ref('excluded.height'),
      })),
    )
    .returning(['id', 'storage_key'])
    .execute()
  const ids = new Map(rows.map((r) => [r.storage_key, r.id]))
  return media.map((m) => ids.get(m.storageKey)!)
}

export function findMedia(db: Kysely<DB>, id: string) {
  return db.selectFrom('media').selectAll().where('id', '=', id).executeTakeFirst()
}
