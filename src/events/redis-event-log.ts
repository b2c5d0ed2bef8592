import type { Logger } from 'pino'
import type { Metrics } from '../obs/metrics'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import { loadScript } from '../redis/script'
import { encodeEntry } from './entry'
import {
  assertReadArgs,
  assertSequenced,
  type Event,
  type EventLog,
  type ReadResult,
  type SequencedEvent,
} from './event'
import { isTruncated, seqId } from './ids'
import { isPlainUserId, RECORD_SEPARATOR } from './notification'
import { makeRedisAppends } from './redis-appends'
import { makeRedisTails, readEntry } from './redis-tails'

/**
 * The cluster-wide event log: one Redis stream per user, trimmed to about
 * `history` entries (MAXLEN ~, whole macro nodes at a time) and expiring
 * `ttlSeconds` after its last append, give or take `expiryRefreshMs`: an
 * instance refreshes a stream's expiry at most that often, not on every
 * append (a stream it makes gets one at once).
 *
 * Live fan-out costs one subscriber connection per instance, however many
 * sockets it serves: appends are batched per tick into one script that adds
 * the entries, refreshes the expiries and PUBLISHes one notification on one
 * channel carrying each event (redis-appends.ts, notification.ts). Each
 * instance passes the events of the users it has listeners for on to them,
 * reading a user's stream only when its subscription may have missed one
 * (redis-tails.ts).
 *
 * States: open ──close()──▶ closed (the subscriber connection quit; the shared
 * command client belongs to the caller).
 */

export type RedisEventLogDeps = {
  redis: Redis
  keys: RedisKeys
  history: number
  ttlSeconds?: number
  log: Logger
  metrics?: Metrics
  /** How often at most an instance refreshes one stream's expiry (default 1 min; never over ttl / 10). */
  expiryRefreshMs?: number
  fallbackBaseline?: (userId: string) => Promise<string>
}

const DEFAULT_TTL_SECONDS = 7 * 86400

/** readAfter in one round trip and one consistent view (the file says what it returns). */
const READ_AFTER = loadScript(new URL('./lua/read-after.lua', import.meta.url))

type RawEntry = [string, string[]]
type ReadAfterReply = [number, number, string, RawEntry[], string]

export async function makeRedisEventLog(deps: RedisEventLogDeps): Promise<EventLog> {
  const { redis, keys, log } = deps
  const ttlMs = (deps.ttlSeconds ?? DEFAULT_TTL_SECONDS) * 1000
  const appends = makeRedisAppends({
    redis,
    keys,
    history: deps.history,
    ttlMs,
    // a tenth of the ttl at most: a stream written to all along never comes near expiring
    refreshMs: Math.min(deps.expiryRefreshMs ?? 60_000, ttlMs / 10),
    metrics: deps.metrics,
  })
  const tails = await makeRedisTails({
    redis,
    keys,
    log,
    metrics: deps.metrics,
    fallbackBaseline: deps.fallbackBaseline,
  })

  return {
    async append(event: SequencedEvent) {
      assertSequenced(event)
      const { userId, name } = event
      if (!isPlainUserId(userId)) throw new Error(`not a user id: ${JSON.stringify(userId)}`)
      // it separates the events of a batch and the records of a notification; no JSON text holds it
      if (event.json.includes(RECORD_SEPARATOR)) throw new Error('event data is not JSON text')
      return appends.append(
        userId,
        name,
        `${seqId(event.seq)}\n${encodeEntry(name, event.at, event.json)}`,
      )
    },

    async readAfter(userId: string, afterId: string, limit: number) {
      assertReadArgs(afterId, limit)
      const reply = (await READ_AFTER.run(
        redis,
        [keys.userEvents(userId)],
        [afterId, String(limit)],
      )) as ReadAfterReply
      return readResult(reply, afterId, limit, log)
    },

    subscribe: tails.subscribe,
    close: tails.close,
  }
}

/** What read-after.lua answered, as a page of events (unreadable entries skipped, still read). */
function readResult(
  reply: ReadAfterReply,
  afterId: string,
  limit: number,
  log: Logger,
): ReadResult {
  const [exists, trimmed, first, entries, last] = reply
  const truncated = isTruncated(
    {
      exists: exists === 1,
      trimmed: trimmed === 1,
      first: first || undefined,
      last: last || undefined,
    },
    afterId,
  )
  const events: Event[] = []
  for (const [id, flat] of entries) {
    const fields: Record<string, string> = {}
    for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!
    const event = readEntry(id, fields, log)
    if (event) events.push(event)
  }
  return {
    events,
    truncated,
    next: entries.at(-1)?.[0] ?? afterId,
    more: entries.length === limit,
  }
}
