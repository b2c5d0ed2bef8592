import type { Logger } from 'pino'
import type { Metrics } from '../obs/metrics'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import { loadScript } from '../redis/script'
import {
  assertReadArgs,
  assertSequenced,
  countAppends,
  type AppendOutcome,
  type Event,
  type EventLog,
  type EventName,
  type SequencedEvent,
} from './event'
import { encodeEntry } from './entry'
import { isTruncated, seqId } from './ids'
import { MAX_CARRIED_BYTES, isPlainUserId } from './notification'
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
 * channel carrying each event (notification.ts). Each instance passes the
 * events of the users it has listeners for on to them, reading a user's
 * stream only when its subscription may have missed one (redis-tails.ts).
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
  /** How often at most an instance refreshes one stream's expiry (default 1 min; never over ttl / 10). */
  expiryRefreshMs?: number
  fallbackBaseline?: (userId: string) => Promise<string>
}

const DEFAULT_TTL_SECONDS = 7 * 86400

/** readAfter in one round trip and one consistent view (the file says what it returns). */
const READ_AFTER = loadScript(new URL('./lua/read-after.lua', import.meta.url))

/**
 * A batch of appends in one round trip, atomically, with its one notification
 * (the file describes its arguments and results).
 */
const APPEND_BATCH = loadScript(new URL('./lua/append-batch.lua', import.meta.url))

/**
 * Events per script call: bounds how long one call holds Redis (128 take
 * about 0.5 ms of its time).
 */
export const MAX_BATCH = 128

type Pending = {
  userId: string
  name: EventName
  /** "<id>\n" and the entry text (entry.ts): one script argument. */
  text: string
  resolve: (outcome: AppendOutcome) => void
  reject: (error: unknown) => void
}

type RawEntry = [string, string[]]
type ReadAfterReply = [number, number, string, RawEntry[], string]

export async function makeRedisEventLog(options: RedisEventLogOptions): Promise<EventLog> {
  const { redis, keys, history, log } = options
  const ttlMs = (options.ttlSeconds ?? DEFAULT_TTL_SECONDS) * 1000
  // a tenth of the ttl at most: a stream written to all along never comes near expiring
  const refreshMs = Math.min(options.expiryRefreshMs ?? 60_000, ttlMs / 10)
  const appended = countAppends(options.metrics)
  const tails = await makeRedisTails({
    redis,
    keys,
    log,
    metrics: options.metrics,
    fallbackBaseline: options.fallbackBaseline,
  })
  const batches = options.metrics?.histogram(
    'events_append_batch_size',
    'Events per append script call',
    [1, 2, 4, 8, 16, 32, 64, 128, 256],
  )

  // appends made in one turn of the event loop go to Redis as one script call;
  // calls are sent in order on one connection, so each user's order holds
  let pending: Pending[] = []
  const userKeySkip = String(keys.userEvents('').length)
  // when this instance last refreshed each stream's expiry (monotonic clock); forgotten once due again
  const refreshedAt = new Map<string, number>()
  let forgottenAt = performance.now()
  function forgetRefreshes(now: number) {
    if (now - forgottenAt < refreshMs) return
    forgottenAt = now
    for (const [key, at] of refreshedAt) if (now - at >= refreshMs) refreshedAt.delete(key)
  }

  function flush() {
    const all = pending
    pending = []
    forgetRefreshes(performance.now())
    // MAX_BATCH events per call, but a run of one user's consecutive appends is
    // never split: its events land in one script, whole or up to the first
    // that failed, never a later one without an earlier (the relay appends a
    // user's events as one run of at most MAX_BATCH)
    let from = 0
    for (let to = MAX_BATCH; to < all.length; to++) {
      if (all[to]!.userId === all[to - 1]!.userId) continue
      void appendBatch(all.slice(from, to))
      from = to
      to = from + MAX_BATCH - 1
    }
    if (from < all.length) void appendBatch(all.slice(from))
  }

  async function appendBatch(batch: Pending[]) {
    const now = performance.now()
    const streams = new Map<string, number>()
    const refreshes: string[] = []
    const args = [String(history), String(ttlMs), String(MAX_CARRIED_BYTES), userKeySkip, '']
    for (const e of batch) {
      const key = keys.userEvents(e.userId)
      let index = streams.get(key)
      if (index === undefined) {
        streams.set(key, (index = streams.size + 2))
        const due = !(now - (refreshedAt.get(key) ?? -Infinity) < refreshMs)
        if (due) refreshes.push(key)
        args[4] += due ? '1' : '0'
      }
      args.push(String(index), e.text)
    }
    try {
      const results = (await APPEND_BATCH.run(
        redis,
        [keys.eventNotifications(), ...streams.keys()],
        args,
      )) as string[]
      for (const key of refreshes) refreshedAt.set(key, now)
      batches?.observe(batch.length)
      batch.forEach((e, i) => {
        const result = results[i]
        if (result === '=') return e.resolve('present')
        if (!result)
          return e.reject(new Error(`could not append to the event stream of user ${e.userId}`))
        appended(e.name)
        e.resolve('appended')
      })
    } catch (error) {
      for (const e of batch) e.reject(error)
    }
  }

  return {
    async append(event: SequencedEvent) {
      assertSequenced(event)
      const { userId, name } = event
      if (!isPlainUserId(userId)) throw new Error(`not a user id: ${JSON.stringify(userId)}`)
      const text = `${seqId(event.seq)}\n${encodeEntry(name, event.at, event.json)}`
      return new Promise<AppendOutcome>((resolve, reject) => {
        pending.push({ userId, name, text, resolve, reject })
        if (pending.length === 1) queueMicrotask(flush)
      })
    },

    async readAfter(userId: string, afterId: string, limit: number) {
      assertReadArgs(afterId, limit)
      const [exists, trimmed, first, entries, last] = (await READ_AFTER.run(
        redis,
        [keys.userEvents(userId)],
        [afterId, String(limit)],
      )) as ReadAfterReply
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
    },

    subscribe: tails.subscribe,
    close: tails.close,
  }
}
