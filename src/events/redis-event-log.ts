import type { Logger } from 'pino'
import type { Metrics } from '../obs/metrics'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import { assertEventName, assertReadArgs, type Event, type EventLog, type EventName } from './event'
import { isTruncated } from './ids'
import { makeRedisTails, toEvent } from './redis-tails'

/**
 * The cluster-wide event log: one Redis stream per user, trimmed to about
 * `history` entries (MAXLEN ~, whole macro nodes at a time) and expiring
 * `ttlSeconds` after its last append.
 *
 * Live fan-out costs one subscriber connection per instance, however many
 * sockets it serves: an append also PUBLISHes the user id on one channel, in
 * the same MULTI, and each instance reads the streams of the users it has
 * listeners for (redis-tails.ts).
 *
 * States: open ──close()──▶ closed (the subscriber connection quit; the shared
 * command client belongs to the caller).
 */

export type RedisEventLogOptions = {
  redis: Redis
  keys: RedisKeys
  history: number
  ttlSeconds?: number
  log: Logger
  metrics?: Metrics
}

const DEFAULT_TTL_SECONDS = 7 * 86400

/**
 * readAfter in one round trip and one consistent view: the page after the id,
 * plus what `truncated` needs (whether the stream was ever trimmed, and its
 * oldest retained id).
 */
const READ_AFTER = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, '', {}} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local length, added, first = 0, 0, ''
for i = 1, #info, 2 do
  if info[i] == 'length' then length = info[i + 1] end
  if info[i] == 'entries-added' then added = info[i + 1] end
  if info[i] == 'first-entry' and info[i + 1] then first = info[i + 1][1] end
end
local trimmed = 0
if added > length then trimmed = 1 end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {1, trimmed, first, entries}
`

type RawEntry = [string, string[]]
type ReadAfterReply = [number, number, string, RawEntry[]]

export async function makeRedisEventLog(options: RedisEventLogOptions): Promise<EventLog> {
  const { redis, keys, history, log } = options
  const ttlMs = (options.ttlSeconds ?? DEFAULT_TTL_SECONDS) * 1000
  const appended = options.metrics?.counter('events_appended_total', 'Events appended', ['name'])
  const tails = await makeRedisTails({ redis, keys, log, metrics: options.metrics })

  return {
    async append(userId: string, name: EventName, data: unknown) {
      assertEventName(name)
      const key = keys.userEvents(userId)
      const fields = { n: name, d: JSON.stringify(data ?? null), t: String(Date.now()) }
      const [id] = (await redis
        .multi()
        .xAdd(key, '*', fields, {
          TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: history },
        })
        .pExpire(key, ttlMs)
        .publish(keys.eventNotifications(), userId)
        .exec()) as unknown as [string]
      appended?.inc({ name })
      return String(id)
    },

    async readAfter(userId: string, afterId: string, limit: number) {
      assertReadArgs(afterId, limit)
      const [exists, trimmed, first, entries] = (await redis.eval(READ_AFTER, {
        keys: [keys.userEvents(userId)],
        arguments: [afterId, String(limit)],
      })) as unknown as ReadAfterReply
      const truncated = isTruncated(
        { exists: exists === 1, trimmed: trimmed === 1, first: first || undefined },
        afterId,
      )
      const events: Event[] = []
      for (const [id, flat] of entries) {
        const message: Record<string, string> = {}
        for (let i = 0; i + 1 < flat.length; i += 2) message[flat[i]!] = flat[i + 1]!
        const event = toEvent(id, message, log)
        if (event) events.push(event)
      }
      return { events, truncated }
    },

    subscribe: tails.subscribe,
    close: tails.close,
  }
}
