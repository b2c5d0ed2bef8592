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
