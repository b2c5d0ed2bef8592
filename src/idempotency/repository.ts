import { sql, type Kysely } from 'kysely'
import { jsonb } from '../db/json'
import type { DB } from '../db/schema'

export async function claimKey(
  db: Kysely<DB>,
  userId: string,
  key: string,
  requestHash: string,
  holdMs: number,
) {
  const row = await db
    .insertInto('idempotency_keys')
    .values({
      user_id: userId,
      key,
      request_hash: requestHash,
      state: 'in_flight',
      // the database's clock: an instance whose clock is off cannot hold a key longer
      expires_at: sql<Date>`now() + ${holdMs} * interval '1 millisecond'`,
    })
    .onConflict((oc) => oc.columns(['user_id', 'key']).doNothing())
    .returning('key')
    .executeTakeFirst()
  return row !== undefined
}

/** The record, with how long (database clock) an in-flight claim still holds. */
export function findKey(db: Kysely<DB>, userId: string, key: string) {
  return db
    .selectFrom('idempotency_keys')
    .selectAll()
    .select(
      sql<number>`greatest(0, extract(epoch from expires_at - now()))`.as('holds_for_seconds'),
    )
    .where('user_id', '=', userId)
    .where('key', '=', key)
    .executeTakeFirst()
}

export function completeKey(
  db: Kysely<DB>,
  userId: string,
  key: string,
  status: number,
  body: unknown,
  keepMs: number,
) {
  return db
    .updateTable('idempotency_keys')
    .set({
      state: 'completed',
      response_status: status,
      response_body: jsonb(body),
      expires_at: sql<Date>`now() + ${keepMs} * interval '1 millisecond'`,
    })
    .where('user_id', '=', userId)
    .where('key', '=', key)
    .execute()
}

function deleteKey(db: Kysely<DB>, userId: string, key: string) {
  return db.deleteFrom('idempotency_keys').where('user_id', '=', userId).where('key', '=', key)
}

export function releaseKey(db: Kysely<DB>, userId: string, key: string) {
  return deleteKey(db, userId, key).execute()
}

export function deleteExpiredKey(db: Kysely<DB>, userId: string, key: string) {
  return deleteKey(db, userId, key)
    .where('expires_at', '<', sql<Date>`now()`)
    .execute()
}

/** Deletes at most `limit` expired records; returns how many. */
export async function sweepExpired(db: Kysely<DB>, limit: number) {
  const result = await sql`
    delete from idempotency_keys where (user_id, key) in (
      select user_id, key from idempotency_keys where expires_at < now() limit ${limit})`.execute(
    db,
  )
  return Number(result.numAffectedRows ?? 0)
}
