import { sql, type Kysely, type Transaction } from 'kysely'
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

/** A first response, recorded in the transaction of its effect. */
export type RecordedResponse = {
  userId: string
  key: string
  requestHash: string
  status: number
  body: unknown
}

/**
 * Records completed responses inside the transaction that made their effect
 * (one multi-row insert). A record that appeared meanwhile (another path's
 * claim of the same key) is left as it is: the effect is still exactly-once
 * by its own key.
 */
export async function recordCompleted(
  trx: Transaction<DB>,
  records: readonly RecordedResponse[],
  keepMs: number,
) {
  if (records.length === 0) return
  await trx
    .insertInto('idempotency_keys')
    .values(
      records.map((r) => ({
        user_id: r.userId,
        key: r.key,
        request_hash: r.requestHash,
        state: 'completed' as const,
        response_status: r.status,
        response_body: jsonb(r.body),
        expires_at: sql<Date>`now() + ${keepMs} * interval '1 millisecond'`,
      })),
    )
    .onConflict((oc) => oc.columns(['user_id', 'key']).doNothing())
    .execute()
}
