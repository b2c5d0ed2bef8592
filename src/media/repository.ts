import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'

/**
 * Records a stored object. The storage key names what the image is
 * (generation, item, variant), so a retried render upserts the same row and
 * keeps its id: one image per key, whatever the number of attempts.
 */
export async function upsertMedia(
  db: Kysely<DB>,
  m: {
    userId: string
    storageKey: string
    contentType: string
    bytes: number
    width: number | null
    height: number | null
  },
) {
  const row = await db
    .insertInto('media')
    .values({
      id: Bun.randomUUIDv7(),
      user_id: m.userId,
      storage_key: m.storageKey,
      content_type: m.contentType,
      bytes: m.bytes,
      width: m.width,
      height: m.height,
    })
    .onConflict((oc) =>
      oc.column('storage_key').doUpdateSet((eb) => ({
        bytes: eb.ref('excluded.bytes'),
        content_type: eb.ref('excluded.content_type'),
        width: eb.ref('excluded.width'),
        height: eb.ref('excluded.height'),
      })),
    )
    .returning('id')
    .executeTakeFirstOrThrow()
  return row.id
}

export function findMedia(db: Kysely<DB>, id: string) {
  return db.selectFrom('media').selectAll().where('id', '=', id).executeTakeFirst()
}
