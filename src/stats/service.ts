import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { ValidationFailed, type ValidationIssue } from '../errors'
import { GENERATION_STATUSES } from '../generation/table'
import {
  creditFigures,
  dailySeries,
  generationsByStatus,
  itemsByOutcome,
  ledgerTotals,
  queueFigures,
  systemFigures,
  topPoses,
  type Range,
} from './repository'

export const MAX_RANGE_DAYS = 366
export const DEFAULT_RANGE_DAYS = 30
const DAY_MS = 86_400_000
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/

/**
 * 'YYYY-MM-DD' (RFC 3339 full-date) as UTC midnight, or undefined when it is
 * no real date, or one of year 0000, which RFC 3339 allows and Postgres has
 * no day for (it counts 1 BC, 1 AD).
 */
function parseDate(text: string): Date | undefined {
  if (!DATE.test(text) || text.startsWith('0000')) return undefined
  const date = new Date(`${text}T00:00:00Z`)
  return Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== text ? undefined : date
}

const day = (d: Date) => d.toISOString().slice(0, 10)

/**
 * The days from..to, both included (UTC). Defaults: `to` today, `from` the
 * 30 days ending at `to`. 422 for a date that is not one, from after to, or
 * more than 366 days.
 */
export function readRange(
  query: { from?: string; to?: string },
  now = new Date(),
): Range & { days: number } {
  const issues: ValidationIssue[] = []
  const to = query.to === undefined ? parseDate(day(now)) : parseDate(query.to)
  if (!to) issues.push({ path: '/to', message: 'Expected a date, YYYY-MM-DD' })
  const from =
    query.from === undefined
      ? to && new Date(to.getTime() - (DEFAULT_RANGE_DAYS - 1) * DAY_MS)
      : parseDate(query.from)
  if (!from) issues.push({ path: '/from', message: 'Expected a date, YYYY-MM-DD' })
  if (issues.length > 0 || !from || !to) throw new ValidationFailed(issues)
  const days = Math.round((to.getTime() - from.getTime()) / DAY_MS) + 1
  if (days < 1) throw new ValidationFailed([{ path: '/from', message: 'from is after to' }])
  if (days > MAX_RANGE_DAYS)
    throw new ValidationFailed([
      { path: '/to', message: `At most ${MAX_RANGE_DAYS} days from from to to` },
    ])
  return {
    from,
    to: new Date(to.getTime() + DAY_MS),
    firstDay: day(from),
    lastDay: day(to),
    days,
  }
}

const countsBy = <K extends string>(rows: { status: string; n: number }[], keys: readonly K[]) =>
  Object.fromEntries(
    keys.map((k) => [k, Number(rows.find((r) => r.status === k)?.n ?? 0)]),
  ) as Record<K, number>

export const TOP_POSES = 5

type UserFigureRows = {
  generations: { status: string; n: number }[]
  items: { status: string; n: number }[]
  credits: Awaited<ReturnType<typeof creditFigures>>
  poses: { pose_id: string | null; name: string; uses: number }[]
  daily: { date: string; images: number; credits: number }[]
}

/** GET /v1/stats/me's body from the five statements' rows. */
export function presentUserStats(rows: UserFigureRows) {
  const { generations, items, credits, poses, daily } = rows
  const byStatus = countsBy(generations, GENERATION_STATUSES)
  return {
    generations: {
      total: Object.values(byStatus).reduce((a, b) => a + b, 0),
      byStatus,
    },
    images: countsBy(items, ['succeeded', 'failed', 'cancelled'] as const),
    credits: {
      granted: Number(credits.granted),
      purchased: Number(credits.purchased),
      charged: Number(credits.charged),
      refunded: Number(credits.refunded),
      balance: Number(credits.balance ?? 0),
    },
    topPoses: poses.map((p) => ({ poseId: p.pose_id!, name: p.name, uses: Number(p.uses) })),
    daily: daily.map((d) => ({
      date: d.date,
      images: Number(d.images),
      credits: Number(d.credits),
    })),
  }
}

export type Stats = ReturnType<typeof makeStats>

export type StatsDeps = {
  /** The read database (the replica when configured). */
  db: Kysely<DB>
  /** Where GET /v1/admin/queue reads (default `db`): the composition root gives it the primary. */
  queueDb?: Kysely<DB>
}

/** Per-user, system and work-queue statistics. */
export function makeStats(deps: StatsDeps) {
  const { db } = deps
  return {
    /** GET /v1/stats/me: five statements, one per figure family, whatever the range. */
    async forUser(userId: string, range: Range) {
      const [generations, items, credits, poses, daily] = await Promise.all([
        generationsByStatus(db, userId, range),
        itemsByOutcome(db, userId, range),
        creditFigures(db, userId, range),
        topPoses(db, userId, range, TOP_POSES),
        dailySeries(db, userId, range),
      ])
      return presentUserStats({ generations, items, credits, poses, daily })
    },
    /** The database's share of GET /v1/admin/stats: two statements. */
    async system() {
      const [figures, ledger] = await Promise.all([systemFigures(db), ledgerTotals(db)])
      const byStatus = Object.fromEntries(
        GENERATION_STATUSES.map((s) => [s, Number(figures.generations?.[s] ?? 0)]),
      ) as Record<(typeof GENERATION_STATUSES)[number], number>
      return {
        users: Number(figures.users),
        generations: { total: Object.values(byStatus).reduce((a, b) => a + b, 0), byStatus },
        queue: {
          depth: Number(figures.queue_depth),
          oldestQueuedAgeSeconds:
            figures.oldest_queued_seconds === null
              ? null
              : Math.max(0, Math.round(figures.oldest_queued_seconds)),
        },
        itemsPerMinute: Math.round((Number(figures.finished_15m) / 15) * 100) / 100,
        ledger: Object.fromEntries(
          (['grant', 'purchase', 'charge', 'refund', 'adjustment'] as const).map((kind) => {
            const row = ledger.find((r) => r.kind === kind)
            return [kind, { entries: Number(row?.entries ?? 0), amount: Number(row?.amount ?? 0) }]
          }),
        ) as Record<
          'grant' | 'purchase' | 'charge' | 'refund' | 'adjustment',
          { entries: number; amount: number }
        >,
      }
    },
    /** GET /v1/admin/queue: two statements. */
    async queue() {
      const q = await queueFigures(deps.queueDb ?? db)
      return {
        depth: q.depth,
        oldestQueuedAgeSeconds: q.oldest_queued_at
          ? Math.round((Date.now() - new Date(q.oldest_queued_at).getTime()) / 1000)
          : null,
        running: q.running,
        retrying: q.retrying,
        failedLastHour: q.failed_last_hour,
        itemsPerMinute: q.succeeded_last_minute,
        perInstance: q.perInstance,
      }
    },
  }
}
