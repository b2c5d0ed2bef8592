import type { Logger } from '../obs/logger'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'

/**
 * Each instance's live figures for GET /v1/admin/stats. With Redis, every
 * instance writes a short-lived record (SET … EX `ttlSeconds`, refreshed every
 * `intervalMs`) and adds its id to a sorted set scored by the time, so any
 * instance can list the live ones; an instance that dies drops out when its
 * record expires. Embedded, the instance is the only one.
 *
 * States: beating (a timer, one write per interval) ──close()──▶ closed (timer
 * stopped, record deleted).
 */
export type InstanceFigures = {
  id: string
  region: string | null
  uptimeSeconds: number
  actorsLive: number
  /** User actors this instance owns (cluster ownership, src/actors/cluster.ts). */
  ownedActors: number
  /** Commands this instance forwarded to other owners, per second over the last 10 s. */
  forwardsPerSecond: number
  /** Users this instance claimed over a dead owner since it started. */
  takeovers: number
  websocketConnections: number
  inflightRequests: number
  /** When the figures were taken (RFC 3339). */
  at: string
}

export type Heartbeat = {
  /** This instance's figures now. */
  local(): InstanceFigures
  /** Every live instance's latest figures, this one's taken now; sorted by id. */
  all(): Promise<InstanceFigures[]>
  close(): Promise<void>
}

export async function makeHeartbeat(deps: {
  redis?: Redis
  keys: RedisKeys
  read: () => InstanceFigures
  log: Logger
  /** Default 5 s. */
  intervalMs?: number
  /** Default 15 s: three missed beats. */
  ttlSeconds?: number
}): Promise<Heartbeat> {
  const { redis, keys, read, log } = deps
  const intervalMs = deps.intervalMs ?? 5000
  const ttlSeconds = deps.ttlSeconds ?? 15
  if (!redis) return { local: read, all: async () => [read()], close: async () => {} }

  const index = keys.instanceStatsIndex()
  async function beat() {
    const figures = read()
    await redis!
      .multi()
      .set(keys.instanceStats(figures.id), JSON.stringify(figures), { EX: ttlSeconds })
      .zAdd(index, { score: Date.now(), value: figures.id })
      .zRemRangeByScore(index, '-inf', Date.now() - ttlSeconds * 1000)
      .exec()
  }
  await beat()
  const timer = setInterval(
    () => void beat().catch((err) => log.warn({ err }, 'stats heartbeat failed')),
    intervalMs,
  )
  timer.unref()

  return {
    local: read,
    async all() {
      const self = read()
      const ids = await redis.zRangeByScore(index, Date.now() - ttlSeconds * 1000, '+inf')
      const others = ids.filter((id) => id !== self.id)
      const records = others.length ? await redis.mGet(others.map(keys.instanceStats)) : []
      const figures = [self]
      for (const text of records) {
        if (!text) continue // expired since the index was read
        try {
          figures.push(readRecord(JSON.parse(text)))
        } catch {
          log.warn('unreadable stats heartbeat record')
        }
      }
      return figures.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    },
    async close() {
      clearInterval(timer)
      const id = read().id
      await redis
        .multi()
        .del(keys.instanceStats(id))
        .zRem(index, id)
        .exec()
        .catch(() => {})
    },
  }
}

const COUNTS = [
  'uptimeSeconds',
  'actorsLive',
  'ownedActors',
  'forwardsPerSecond',
  'takeovers',
  'websocketConnections',
  'inflightRequests',
] as const

/**
 * Another instance's record, as this version reads it: during a rolling
 * deploy an older instance's record lacks the figures added since (a count
 * it does not report is 0), and one that is not a record at all is skipped.
 */
export function readRecord(raw: unknown): InstanceFigures {
  if (typeof raw !== 'object' || raw === null || typeof (raw as { id?: unknown }).id !== 'string')
    throw new Error('not a heartbeat record')
  const r = raw as Record<string, unknown>
  const figures = {
    id: r.id as string,
    region: typeof r.region === 'string' ? r.region : null,
    at: typeof r.at === 'string' ? r.at : new Date(0).toISOString(),
  } as InstanceFigures
  for (const k of COUNTS) {
    const v = r[k]
    figures[k] = typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0
  }
  return figures
}
