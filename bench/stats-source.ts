import { sql, type Kysely } from 'kysely'
import type { DB } from '../src/db/schema'
import type { Range } from '../src/stats/repository'
import { presentUserStats, TOP_POSES } from '../src/stats/service'

/**
 * bench:library's baseline for GET /v1/stats/me: the five statements as they
 * were before the rollups of sql/0011, over the source rows (ledger entries,
 * items, generations), with the covering indexes of sql/0009 (the bench
 * creates them for the comparison). Same shape as the service's answer, so
 * the run also checks that rollups and source rows agree.
 */
export const STATS_SOURCE_INDEXES = [
  sql`create index if not exists bench_ledger_user_created on ledger_entries (user_id, created_at) include (kind, amount)`,
  sql`create index if not exists bench_items_user_finished on generation_items (user_id, finished_at)
    include (status, pose_id) where finished_at is not null`,
  sql`create index if not exists bench_generations_user_created on generations (user_id, created_at) include (status)`,
]

export async function sourceStats(db: Kysely<DB>, userId: string, r: Range) {
  const [generations, items, credits, poses, daily] = await Promise.all([
    sql<{ status: string; n: number }>`select status, count(*) as n from generations
      where user_id = ${userId} and created_at >= ${r.from} and created_at < ${r.to}
      group by status`.execute(db),
    sql<{ status: string; n: number }>`select status, count(*) as n from generation_items
      where user_id = ${userId} and finished_at >= ${r.from} and finished_at < ${r.to}
      group by status`.execute(db),
    sql<{
      granted: number
      purchased: number
      charged: number
      refunded: number
      balance: number | null
    }>`
      select
        coalesce(sum(amount) filter (where kind = 'grant'), 0)::bigint as granted,
        coalesce(sum(amount) filter (where kind = 'purchase'), 0)::bigint as purchased,
        coalesce(-sum(amount) filter (where kind = 'charge'), 0)::bigint as charged,
        coalesce(sum(amount) filter (where kind = 'refund'), 0)::bigint as refunded,
        (select balance from credit_accounts where user_id = ${userId}) as balance
      from ledger_entries
      where user_id = ${userId} and created_at >= ${r.from} and created_at < ${r.to}`.execute(db),
    sql<{ pose_id: string; name: string; uses: number }>`
      select i.pose_id, p.name, count(*) as uses
      from generation_items i join poses p on p.id = i.pose_id
      where i.user_id = ${userId} and i.finished_at >= ${r.from} and i.finished_at < ${r.to}
        and i.status = 'succeeded'
      group by i.pose_id, p.name order by uses desc, p.name limit ${TOP_POSES}`.execute(db),
    sql<{ date: string; images: number; credits: number }>`
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
      order by days.day`.execute(db),
  ])
  return presentUserStats({
    generations: generations.rows,
    items: items.rows,
    credits: credits.rows[0]!,
    poses: poses.rows,
    daily: daily.rows,
  })
}
