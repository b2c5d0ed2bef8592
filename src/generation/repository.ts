import { sql, type Kysely, type Transaction } from 'kysely'
import { jsonb } from '../db/json'
import type { DB } from '../db/schema'
import type { GenerationItemRow, GenerationRequest, GenerationStatus } from './table'

type Q = Kysely<DB> | Transaction<DB>

export type NewItem = { id: string; key: string; poseId: string | null; variation: number }

export async function insertGeneration(
  trx: Transaction<DB>,
  g: {
    id: string
    userId: string
    request: GenerationRequest
    pricePerItem: number
    chargeEntryId: string
    deadlineSeconds: number | null
    items: NewItem[]
  },
) {
  await trx
    .insertInto('generations')
    .values({
      id: g.id,
      user_id: g.userId,
      status: 'queued',
      mode: g.request.mode,
      request: jsonb(g.request),
      total_items: g.items.length,
      price_per_item: g.pricePerItem,
      credits_charged: g.pricePerItem * g.items.length,
      charge_entry_id: g.chargeEntryId,
      deadline_at:
        g.deadlineSeconds === null
          ? null
          : sql<Date>`now() + ${g.deadlineSeconds} * interval '1 second'`,
    })
    .execute()
  await trx
    .insertInto('generation_items')
    .values(
      g.items.map((item) => ({
        id: item.id,
        generation_id: g.id,
        user_id: g.userId,
        key: item.key,
        pose_id: item.poseId,
        variation: item.variation,
        status: 'queued' as const,
      })),
    )
    .execute()
}

/** Images accepted in the rolling hour, and in how many seconds (database clock) the oldest leaves it. */
export async function imagesInLastHour(q: Q, userId: string) {
  const row = await q
    .selectFrom('generations')
    .select((eb) => [
      eb.fn.coalesce(eb.fn.sum<number>('total_items'), sql<number>`0`).as('images'),
      sql<number>`coalesce(extract(epoch from min(created_at) + interval '1 hour' - now()), 0)`.as(
        'frees_in',
      ),
    ])
    .where('user_id', '=', userId)
    .where('created_at', '>', sql<Date>`now() - interval '1 hour'`)
    .executeTakeFirstOrThrow()
  return { images: Number(row.images), freesInSeconds: Number(row.frees_in) }
}

export async function activeGenerations(q: Q, userId: string) {
  const row = await q
    .selectFrom('generations')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('user_id', '=', userId)
    .where('status', 'in', ['queued', 'running'])
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

export function findGeneration(q: Q, id: string, userId: string) {
  return q
    .selectFrom('generations')
    .selectAll()
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .executeTakeFirst()
}

export function lockGeneration(trx: Transaction<DB>, id: string, userId: string) {
  return trx
    .selectFrom('generations')
    .selectAll()
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .forUpdate()
    .executeTakeFirst()
}

export function itemsOf(q: Q, generationId: string) {
  return q
    .selectFrom('generation_items')
    .selectAll()
    .where('generation_id', '=', generationId)
    .orderBy('key')
    .execute()
}

export function listGenerations(
  q: Q,
  userId: string,
  options: { limit: number; status?: GenerationStatus; before?: [string, string] },
) {
  let query = q
    .selectFrom('generations')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(options.limit)
  if (options.status) query = query.where('status', '=', options.status)
  if (options.before) {
    const [at, id] = options.before
    query = query.where((eb) =>
      eb.or([
        eb('created_at', '<', new Date(at)),
        eb.and([eb('created_at', '=', new Date(at)), eb('id', '<', id)]),
      ]),
    )
  }
  return query.execute()
}

/**
 * Items queued cluster-wide before each generation's next queued item, in one
 * query for a whole page (null for a generation with nothing queued).
 */
export async function queuePositions(q: Q, generationIds: string[]): Promise<Map<string, number>> {
  if (generationIds.length === 0) return new Map()
  const { rows } = await sql<{ generation_id: string; ahead: number }>`
    select nextq.generation_id,
      (select count(*) from generation_items o
        where o.status = 'queued' and o.enqueued_at < nextq.first_at)::int as ahead
    from (
      select generation_id, min(enqueued_at) as first_at from generation_items
      where status = 'queued' and generation_id in (${sql.join(generationIds)})
      group by generation_id
    ) nextq`.execute(q)
  return new Map(rows.map((r) => [r.generation_id, Number(r.ahead)]))
}

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

export async function queueFigures(q: Q) {
  const { rows } = await sql<{
    depth: number
    oldest_queued_at: Date | null
    running: number
    retrying: number
    failed_last_hour: number
    succeeded_last_minute: number
  }>`
    select
      count(*) filter (where status = 'queued')::int as depth,
      min(enqueued_at) filter (where status = 'queued') as oldest_queued_at,
      count(*) filter (where status = 'running')::int as running,
      count(*) filter (where status = 'queued' and attempts > 0)::int as retrying,
      count(*) filter (where status = 'failed' and finished_at > now() - interval '1 hour')::int as failed_last_hour,
      count(*) filter (where status = 'succeeded' and finished_at > now() - interval '1 minute')::int as succeeded_last_minute
    from generation_items
    where status in ('queued', 'running') or finished_at > now() - interval '1 hour'`.execute(q)
  const { rows: perInstance } = await sql<{ instance: string; running: number }>`
    select lease_owner as instance, count(*)::int as running from generation_items
    where status = 'running' group by lease_owner order by lease_owner`.execute(q)
  return { ...rows[0]!, perInstance }
}
