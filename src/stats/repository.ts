import { sql, type Kysely } from 'kysely'
import type { DB } from '../db/schema'

/**
 * Statistics as set-based SQL: each function is one statement that answers a
 * whole figure family, never a query per row or per day. Ranges are
 * half-open [from, to) instants; days are UTC dates ('YYYY-MM-DD').
 * Served by ledger_entries_user_created and generation_items_user_finished
 * (sql/0009): index-only range scans of one user's rows.
 */
export type Range = { from: Date; to: Date; firstDay: string; lastDay: string }

/** Generations created in the range, counted by status. */
export function generationsByStatus(db: Kysely<DB>, userId: string, r: Range) {
  return db
    .selectFrom('generations')
    .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
    .where('user_id', '=', userId)
    .where('created_at', '>=', r.from)
    .where('created_at', '<', r.to)
    .groupBy('status')
    .execute()
}

/** Items that ended in the range, counted by outcome. */
export function itemsByOutcome(db: Kysely<DB>, userId: string, r: Range) {
  return db
    .selectFrom('generation_items')
    .select((eb) => ['status', eb.fn.countAll<number>().as('n')])
    .where('user_id', '=', userId)
    .where('finished_at', '>=', r.from)
    .where('finished_at', '<', r.to)
    .groupBy('status')
    .execute()
}

/** Ledger sums by kind in the range (charges as positive amounts), and the balance now. */
export async function creditFigures(db: Kysely<DB>, userId: string, r: Range) {
  const { rows } = await sql<{
    granted: number
    purchased: number
    charged: number
    refunded: number
    balance: number | null
  }>`select
      coalesce(sum(amount) filter (where kind = 'grant'), 0)::bigint as granted,
      coalesce(sum(amount) filter (where kind = 'purchase'), 0)::bigint as purchased,
      coalesce(-sum(amount) filter (where kind = 'charge'), 0)::bigint as charged,
      coalesce(sum(amount) filter (where kind = 'refund'), 0)::bigint as refunded,
      (select balance from credit_accounts where user_id = ${userId}) as balance
    from ledger_entries
    where user_id = ${userId} and created_at >= ${r.from} and created_at < ${r.to}`.execute(db)
  return rows[0]!
}

/** The poses of the most images that succeeded in the range: one join, one group. */
export function topPoses(db: Kysely<DB>, userId: string, r: Range, limit: number) {
  return db
    .selectFrom('generation_items as i')
    .innerJoin('poses as p', 'p.id', 'i.pose_id')
    .select((eb) => ['i.pose_id as pose_id', 'p.name', eb.fn.countAll<number>().as('uses')])
    .where('i.user_id', '=', userId)
    .where('i.finished_at', '>=', r.from)
    .where('i.finished_at', '<', r.to)
    .where('i.status', '=', 'succeeded')
    .groupBy(['i.pose_id', 'p.name'])
    .orderBy('uses', 'desc')
    .orderBy('p.name')
    .limit(limit)
    .execute()
}

/**
 * One row per UTC day of the range, zero-filled: images that succeeded that
 * day and credits spent (charges less refunds). generate_series makes the
 * days; each side is grouped once and joined to them.
 */
export async function dailySeries(db: Kysely<DB>, userId: string, r: Range) {
  const { rows } = await sql<{ date: string; images: number; credits: number }>`
    with days as (
      select d::date as day from generate_series(${r.firstDay}::date, ${r.lastDay}::date, interval '1 day') d
    ), images as (
      select (finished_at at time zone 'UTC')::date as day, count(*) as n
      from generation_items
      where user_id = ${userId} and status = 'succeeded'
        and finished_at >= ${r.from} and finished_at < ${r.to}
      group by 1
    ), credits as (
      select (created_at at time zone 'UTC')::date as day, -sum(amount) as n
      from ledger_entries
      where user_id = ${userId} and kind in ('charge', 'refund')
        and created_at >= ${r.from} and created_at < ${r.to}
      group by 1
    )
    select to_char(days.day, 'YYYY-MM-DD') as date,
      coalesce(images.n, 0)::bigint as images, coalesce(credits.n, 0)::bigint as credits
    from days
    left join images on images.day = days.day
    left join credits on credits.day = days.day
    order by days.day`.execute(db)
  return rows
}

// --- system figures (GET /v1/admin/stats) ---

/** Users, generations by status, the queue and the last 15 minutes' throughput, in one statement. */
export async function systemFigures(db: Kysely<DB>) {
  const { rows } = await sql<{
    users: number
    generations: Record<string, number> | null
    queue_depth: number
    oldest_queued_seconds: number | null
    finished_15m: number
  }>`select
      (select count(*) from users)::bigint as users,
      (select jsonb_object_agg(status, n) from
        (select status, count(*) as n from generations group by status) g) as generations,
      (select count(*) from generation_items where status = 'queued')::bigint as queue_depth,
      (select extract(epoch from now() - min(enqueued_at))::float8
        from generation_items where status = 'queued') as oldest_queued_seconds,
      (select count(*) from generation_items
        where finished_at > now() - interval '15 minutes')::bigint as finished_15m`.execute(db)
  return rows[0]!
}

/** Every ledger entry summed by kind. */
export function ledgerTotals(db: Kysely<DB>) {
  return db
    .selectFrom('ledger_entries')
    .select((eb) => [
      'kind',
      eb.fn.countAll<number>().as('entries'),
      eb.fn.sum<number>('amount').as('amount'),
    ])
    .groupBy('kind')
    .execute()
}
