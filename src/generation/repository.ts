import { sql, type Kysely, type Transaction } from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import { jsonb } from '../db/json'
import type { DB } from '../db/schema'
import type { ItemResult } from './commands'
import type { GenerationItemRow, GenerationRequest, GenerationRow, GenerationStatus } from './table'

type Q = Kysely<DB> | Transaction<DB>

export type NewItem = { id: string; key: string; poseId: string | null; variation: number }

/** What generation_create_many (sql/0021, as 0025 defines it) answers for one create. */
export type CreateRow =
  | { ok: true; generation: Record<string, unknown>; items: Record<string, unknown>[] }
  | { ok: true; replayOf: string }
  | { ok: true; recorded: { status: number; body: unknown } }
  | { ok: false; code: 'fenced' | 'idempotency_conflict' | 'active_limit' }
  | { ok: false; code: 'in_flight'; holdsFor: number }
  | { ok: false; code: 'hourly_limit'; freesIn: number }
  | { ok: false; code: 'insufficient_credits'; required: number; available: number }

export type CreatedMany = { at: string; ahead: number; results: Record<string, CreateRow> }

/**
 * Several users' creates in one statement (sql/0025_generation_create_limits.sql),
 * the JSON payload already encoded: per user under its account lock and epoch,
 * limits, charge, generation.queued; then one insert for the generations and
 * one for their items.
 */
export async function createMany(
  trx: Transaction<DB>,
  payload: string,
  limits: { imagesPerHour: number; activeGenerations: number },
): Promise<CreatedMany> {
  const { rows } = await sql<{ r: CreatedMany }>`
    select generation_create_many(${payload}::text::jsonb, ${JSON.stringify(limits)}::text::jsonb) as r`.execute(
    trx,
  )
  return rows[0]!.r
}

/** A user's generation by id: someone else's is no row, as a missing one is. */
function selectGeneration(q: Q, id: string, userId: string) {
  return q.selectFrom('generations').selectAll().where('id', '=', id).where('user_id', '=', userId)
}

export function lockGeneration(trx: Transaction<DB>, id: string, userId: string) {
  return selectGeneration(trx, id, userId).forUpdate().executeTakeFirst()
}

/** What of an item a generation's view shows (present.ts ItemView). */
const ITEM_VIEW = [
  'generation_items.id',
  'generation_items.key',
  'generation_items.user_id',
  'generation_items.status',
  'generation_items.image_media_id',
  'generation_items.thumbnail_media_id',
  'generation_items.export_media_ids',
  'generation_items.error_code',
  'generation_items.error_message',
] as const

/**
 * A user's generation with its items, in one statement: one snapshot, so the
 * counters and the items agree (an outcome committed between two reads would
 * show an item succeeded that the counters do not count).
 */
export function findGenerationWithItems(q: Q, id: string, userId: string) {
  return selectGeneration(q, id, userId)
    .select((eb) =>
      jsonArrayFrom(
        eb
          .selectFrom('generation_items')
          .select(ITEM_VIEW)
          .whereRef('generation_items.generation_id', '=', 'generations.id')
          .orderBy('generation_items.key'),
      ).as('items'),
    )
    .executeTakeFirst()
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

/** Cancels a generation's items still queued; returns them. */
export function cancelQueuedItems(trx: Transaction<DB>, generationId: string) {
  return trx
    .updateTable('generation_items')
    .set({ status: 'cancelled', finished_at: sql<Date>`now()` })
    .where('generation_id', '=', generationId)
    .where('status', '=', 'queued')
    .returningAll()
    .execute()
}

/** Adds cancelled items and their refunds to a generation's counters; returns it. */
export function countCancelled(
  trx: Transaction<DB>,
  generationId: string,
  items: number,
  refunded: number,
) {
  return trx
    .updateTable('generations')
    .set((eb) => ({
      cancelled_items: eb('cancelled_items', '+', items),
      credits_refunded: eb('credits_refunded', '+', refunded),
    }))
    .where('id', '=', generationId)
    .returningAll()
    .executeTakeFirstOrThrow()
}

/**
 * One statement: the generation starts if it was queued, and its counters
 * come back either way (`just_started` says which).
 */
export async function markStarted(trx: Transaction<DB>, userId: string, generationId: string) {
  const { rows } = await sql<GenerationRow & { just_started: boolean }>`
    with started as (
      update generations set status = 'running', started_at = now()
      where id = ${generationId} and user_id = ${userId} and status = 'queued'
      returning *
    )
    select *, true as just_started from started
    union all
    select *, false as just_started from generations
    where id = ${generationId} and user_id = ${userId} and not exists (select 1 from started)
  `.execute(trx)
  return rows[0]
}

/**
 * Ends a running item with its outcome. Fenced in the statement: only the
 * lease holder (or the sweeper, `owner` null, for an expired lease) ends an
 * item, and only once; undefined when it did not.
 */
export function endItem(
  trx: Transaction<DB>,
  userId: string,
  itemId: string,
  owner: string | null,
  r: ItemResult,
) {
  return trx
    .updateTable('generation_items')
    .set({
      status: r.status,
      finished_at: sql<Date>`now()`,
      lease_owner: null,
      lease_expires_at: null,
      ...(r.status === 'succeeded'
        ? {
            image_media_id: r.imageMediaId,
            thumbnail_media_id: r.thumbnailMediaId,
            export_media_ids: jsonb(r.exports),
            error_code: null,
            error_message: null,
          }
        : { error_code: r.code, error_message: r.message }),
    })
    .where('id', '=', itemId)
    .where('user_id', '=', userId)
    .where('status', '=', 'running')
    .where((eb) =>
      owner === null
        ? eb('lease_expires_at', '<', sql<Date>`now()`)
        : eb('lease_owner', '=', owner),
    )
    .returningAll()
    .executeTakeFirst()
}

/** Counts one ended item in its generation (a failed one refunded); returns the generation. */
export function countOutcome(
  trx: Transaction<DB>,
  generationId: string,
  status: 'succeeded' | 'failed',
) {
  return trx
    .updateTable('generations')
    .set((eb) =>
      status === 'succeeded'
        ? { succeeded_items: eb('succeeded_items', '+', 1) }
        : {
            failed_items: eb('failed_items', '+', 1),
            credits_refunded: eb('credits_refunded', '+', eb.ref('price_per_item')),
          },
    )
    .where('id', '=', generationId)
    .returningAll()
    .executeTakeFirstOrThrow()
}

/** A generation every item of which has ended: its final status. */
export function finishGeneration(
  trx: Transaction<DB>,
  generationId: string,
  status: GenerationStatus,
) {
  return trx
    .updateTable('generations')
    .set({ status, finished_at: sql<Date>`now()` })
    .where('id', '=', generationId)
    .returningAll()
    .executeTakeFirstOrThrow()
}
