import { sql, type Kysely, type Transaction } from 'kysely'
import type { DB } from '../db/schema'
import { mediaRow, type NewMedia } from './repository'
import type { UploadRow, UploadTable } from './table'
import type { Insertable } from 'kysely'

/** Serializes one user's uploads (limits are check-then-insert) until the transaction ends. */
export async function lockUserUploads(trx: Transaction<DB>, userId: string) {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`uploads:${userId}`}, 0))`.execute(trx)
}

/** Uploads in the last hour (and the oldest of them), and the bytes of all of them. */
export async function uploadUsage(db: Kysely<DB> | Transaction<DB>, userId: string) {
  const row = await db
    .selectFrom('uploads')
    .select([
      sql<number>`count(*) filter (where created_at > now() - interval '1 hour')::int`.as(
        'last_hour',
      ),
      sql<Date | null>`min(created_at) filter (where created_at > now() - interval '1 hour')`.as(
        'oldest_in_hour',
      ),
      sql<number>`coalesce(sum(bytes), 0)::bigint`.as('bytes'),
    ])
    .where('user_id', '=', userId)
    .executeTakeFirstOrThrow()
  return {
    lastHour: row.last_hour,
    oldestInHour: row.oldest_in_hour ? new Date(row.oldest_in_hour) : null,
    bytes: Number(row.bytes),
  }
}

export function findUploadByKey(db: Kysely<DB> | Transaction<DB>, userId: string, key: string) {
  return db
    .selectFrom('uploads')
    .selectAll()
    .where('user_id', '=', userId)
    .where('command_key', '=', key)
    .executeTakeFirst()
}

/** The upload, if it is this user's. */
export function findOwnUpload(db: Kysely<DB>, userId: string, id: string) {
  return db
    .selectFrom('uploads')
    .innerJoin('media', 'media.id', 'uploads.id')
    .selectAll('uploads')
    .select(['media.storage_key', 'media.content_type'])
    .where('uploads.id', '=', id)
    .where('uploads.user_id', '=', userId)
    .executeTakeFirst()
}

export async function insertUpload(
  trx: Transaction<DB>,
  image: NewMedia & { id: string },
  thumb: NewMedia & { id: string },
  upload: Insertable<UploadTable>,
): Promise<UploadRow> {
  await trx
    .insertInto('media')
    .values([mediaRow(image), mediaRow(thumb)])
    .execute()
  return trx.insertInto('uploads').values(upload).returningAll().executeTakeFirstOrThrow()
}

/** Newest first, keyset on (created_at, id). */
export function listUploads(
  db: Kysely<DB>,
  userId: string,
  options: { limit: number; before?: [string, string] },
) {
  let q = db.selectFrom('uploads').selectAll().where('user_id', '=', userId)
  if (options.before) {
    const [at, id] = options.before
    q = q.where((eb) =>
      eb.or([
        eb('created_at', '<', new Date(at)),
        eb.and([eb('created_at', '=', new Date(at)), eb('id', '<', id)]),
      ]),
    )
  }
  return q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(options.limit).execute()
}
