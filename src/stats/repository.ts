import { sql, type Kysely } from 'kysely'
import type { DB } from '../db/schema'

/**
 * Statistics as set-based SQL: each function is one statement that answers a
 * whole figure family, never a query per row or per day. Ranges are whole UTC
 * days, firstDay..lastDay both included ('YYYY-MM-DD'); `from`/`to` are the
 * same range as half-open instants [from, to).
 *
 * Per-user figures read the daily rollups of sql/0011 (stats_*_days, kept by
 * triggers in the transactions that write the source rows): a range scan of
 * at most 366 days × a few rows by primary key, whatever the user's history.
 */
export type Range = { from: Date; to: Date; firstDay: string; lastDay: string }

/** Generations created in the range, counted by (current) status. */
export function generationsByStatus(db: Kysely<DB>, userId: string, r: Range) {
  return db
    .selectFrom('stats_generation_days')
    .select((eb) => ['status', eb.fn.sum<number>('generations').as('n')])
    .where('user_id', '=', userId)
    .where('day', '>=', sql<string>`${r.firstDay}::date`)
    .where('day', '<=', sql<string>`${r.lastDay}::date`)
    .groupBy('status')
    .execute()
}

/** Items that ended in the range, counted by outcome. */
export function itemsByOutcome(db: Kysely<DB>, userId: string, r: Range) {
  return db
    .selectFrom('stats_item_days')
    .select((eb) => ['status', eb.fn.sum<number>('items').as('n')])
    .where('user_id', '=', userId)
    .where('day', '>=', sql<string>`${r.firstDay}::date`)
    .where('day', '<=', sql<string>`${r.lastDay}::date`)
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
    from stats_ledger_days
    where user_id = ${userId} and day >= ${r.firstDay}::date and day <= ${r.lastDay}::date`.execute(
    db,
  )
  return rows[0]!
}

/**
 * The poses of the most images that succeeded in the range: the uses are
 * summed per pose first, then joined to the poses for their names (one join).
 */
export async function topPoses(db: Kysely<DB>, userId: string, r: Range, limit: number) {
  const { rows } = await sql<{ pose_id: string; name: string; uses: number }>`
    with uses as (
      select pose_id, sum(uses) as uses from stats_pose_days
      where user_id = ${userId} and day >= ${r.firstDay}::date and day <= ${r.lastDay}::date
      group by pose_id
      having sum(uses) > 0
    )
    select u.pose_id, p.name, u.uses from uses u join poses p on p.id = u.pose_id
    order by u.uses desc, p.name
    limit ${limit}`.execute(db)
  return rows
}

/**
 * One row per UTC day of the range, zero-filled: images that succeeded that
 * day and credits spent (charges less refunds). generate_series makes the
 * days; each rollup gives at most one row per day, joined to them.
 */
export async function dailySeries(db: Kysely<DB>, userId: string, r: Range) {
  const { rows } = await sql<{ date: string; images: number; credits: number }>`
    with days as (
      select d::date as day from generate_series(${r.firstDay}::date, ${r.lastDay}::date, interval '1 day') d
    ), images as (
      select day, items as n from stats_item_days
      where user_id = ${userId} and status = 'succeeded'
        and day >= ${r.firstDay}::date and day <= ${r.lastDay}::date
    ), credits as (
      select day, -sum(amount) as n from stats_ledger_days
      where user_id = ${userId} and kind in ('charge', 'refund')
        and day >= ${r.firstDay}::date and day <= ${r.lastDay}::date
      group by day
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

/** Every ledger entry summed by kind, from the daily rollup (days × users rows, not entries). */
export function ledgerTotals(db: Kysely<DB>) {
  return db
    .selectFrom('stats_ledger_days')
    .select((eb) => [
      'kind',
      eb.fn.sum<number>('entries').as('entries'),
      eb.fn.sum<number>('amount').as('amount'),
    ])
    .groupBy('kind')
    .execute()
}

// --- the work queue (GET /v1/admin/queue) ---

/**
 * The queue's figures (depth, oldest queued, running, retrying, the last
 * hour's failures, the last minute's successes), then running items per
 * instance: two statements, the one exception to one per function here.
 */
export async function queueFigures(db: Kysely<DB>) {
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
    where status in ('queued', 'running') or finished_at > now() - interval '1 hour'`.execute(db)
  const { rows: perInstance } = await sql<{ instance: string; running: number }>`
    select lease_owner as instance, count(*)::int as running from generation_items
    where status = 'running' group by lease_owner order by lease_owner`.execute(db)
  return { ...rows[0]!, perInstance }
}
