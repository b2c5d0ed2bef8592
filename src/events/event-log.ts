import type { Logger } from 'pino'
import type { Metrics } from '../obs/metrics'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import type { EventLog } from './event'
import { makeMemoryEventLog } from './memory-event-log'
import { makeRedisEventLog } from './redis-event-log'

/**
 * The per-user event log: what happened to a user's generations and credits,
 * in order, with ids a client can resume from (DESIGN.md invariant 6).
 * Redis streams when REDIS_URL is set (cluster-wide); in memory when embedded.
 */

export type EventLogDeps = {
  /** The shared command client; absent in embedded mode (in-memory log). */
  redis?: Redis
  keys: RedisKeys
  /** Events retained per user (EVENT_HISTORY, default 1000). */
  history: number
  /** Seconds a user's stream lives after its last append (default 7 days). */
  ttlSeconds?: number
  log: Logger
  metrics?: Metrics
  /** Where a live tail starts when Redis cannot say (redis-tails.ts); the outbox's newest id. */
  fallbackBaseline?: (userId: string) => Promise<string>
}

export async function makeEventLog(deps: EventLogDeps): Promise<EventLog> {
  const log = deps.log.child({ room: 'events' })
  return deps.redis
    ? makeRedisEventLog({ ...deps, redis: deps.redis, log })
    : makeMemoryEventLog({ ...deps, log })
}
