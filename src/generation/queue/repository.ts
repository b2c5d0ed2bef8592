import { sql, type Kysely, type Transaction } from 'kysely'
import type { DB } from '../../db/schema'
import type { GenerationItemRow, GenerationRequest } from '../table'

/**
 * The work queue's statements: claims, leases, requeues and sweeps of
 * generation_items, all timed on the database's clock (`now()`). A lease is
 * held by an instance id; every statement that acts for a holder checks the
 * lease inside its own UPDATE, so a holder that lost it changes nothing.
 */
type Q = Kysely<DB> | Transaction<DB>

/**
 * Claims up to `limit` due items for `owner`, round-robin across users. A
 * user's turn for an item is the number of items it already has rendering
 * (cluster-wide) plus the item's rank in its own queue, so a user who just
 * submitted one image goes before the next item of a user with 160 in
 * flight. SKIP LOCKED lets instances claim at once without waiting on each
 * other; the candidate scan is bounded.
 */
export async function claimDueItems(q: Q, owner: string, limit: number, leaseMs: number) {
  const { rows } = await sql<GenerationItemRow>`
    update generation_items set
      status = 'running',
      lease_owner = ${owner},
      lease_expires_at = now() + ${leaseMs} * interval '1 millisecond',
      attempts = attempts + 1,
      started_at = coalesce(started_at, now())
    where id in (
      select id from generation_items
      where status = 'queued' and id in (
        select due.id from (
          select id, user_id, enqueued_at,
            row_number() over (partition by user_id order by enqueued_at, key) as rank
          from (
            select id, user_id, enqueued_at, key from generation_items
            where status = 'queued' and next_attempt_at <= now()
            order by next_attempt_at, enqueued_at
            limit 5000
          ) candidates
        ) due
        left join (
          select user_id, count(*) as running from generation_items
          where status = 'running' group by user_id
        ) busy on busy.user_id = due.user_id
        order by coalesce(busy.running, 0) + due.rank, due.enqueued_at
        limit ${limit}
      )
      for update skip locked
    )
    returning *`.execute(q)
  return rows
}

/** Extends the lease; false when this owner no longer holds the item. */
export async function extendLease(q: Q, itemId: string, owner: string, leaseMs: number) {
  const result = await q
    .updateTable('generation_items')
    .set({ lease_expires_at: sql<Date>`now() + ${leaseMs} * interval '1 millisecond'` })
    .where('id', '=', itemId)
    .where('lease_owner', '=', owner)
    .where('status', '=', 'running')
    .executeTakeFirst()
  return Number(result.numUpdatedRows) === 1
}

/** Back to the queue (a retry after `delayMs`, or a release on drain that gives back the attempt). */
export async function requeueItem(
  q: Q,
  itemId: string,
  owner: string,
  options: { delayMs: number; error?: { code: string; message: string }; refundAttempt?: boolean },
) {
  const result = await q
    .updateTable('generation_items')
    .set((eb) => ({
      status: 'queued',
      lease_owner: null,
      lease_expires_at: null,
      next_attempt_at: sql<Date>`now() + ${options.delayMs} * interval '1 millisecond'`,
      attempts: options.refundAttempt ? eb('attempts', '-', 1) : eb.ref('attempts'),
      ...(options.error
        ? { error_code: options.error.code, error_message: options.error.message }
        : {}),
    }))
    .where('id', '=', itemId)
    .where('lease_owner', '=', owner)
    .where('status', '=', 'running')
    .executeTakeFirst()
  return Number(result.numUpdatedRows) === 1
}

/** Items whose instance stopped heartbeating, back to the queue; those out of attempts are returned to fail. */
export async function reclaimExpiredLeases(q: Q, maxAttempts: number) {
  const { rows: requeued } = await sql<{ id: string }>`
    update generation_items set status = 'queued', lease_owner = null, lease_expires_at = null,
      next_attempt_at = now()
    where status = 'running' and lease_expires_at < now() and attempts < ${maxAttempts}
    returning id`.execute(q)
  const exhausted = await q
    .selectFrom('generation_items')
    .select(['id', 'user_id', 'lease_owner'])
    .where('status', '=', 'running')
    .where('lease_expires_at', '<', sql<Date>`now()`)
    .where('attempts', '>=', maxAttempts)
    .limit(1000)
    .execute()
  return { requeued: requeued.length, exhausted }
}

/** Generations with queued items past their deadline. */
export function overdueGenerations(q: Q) {
  return q
    .selectFrom('generations')
    .select(['id', 'user_id'])
    .where('status', 'in', ['queued', 'running'])
    .where('deadline_at', '<', sql<Date>`now()`)
    .where((eb) =>
      eb.exists(
        eb
          .selectFrom('generation_items')
          .select('id')
          .whereRef('generation_items.generation_id', '=', 'generations.id')
          .where('generation_items.status', '=', 'queued'),
      ),
    )
    .limit(1000)
    .execute()
}

/** A generation's request, which never changes once written (the pool caches it). */
export async function requestOf(q: Q, generationId: string): Promise<GenerationRequest> {
  const gen = await q
    .selectFrom('generations')
    .select('request')
    .where('id', '=', generationId)
    .executeTakeFirstOrThrow()
  return gen.request as GenerationRequest
}
