import type { Metrics } from '../obs/metrics'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import { loadScript } from '../redis/script'
import { countAppends, type AppendOutcome, type EventName } from './event'
import { MAX_CARRIED_BYTES, RECORD_SEPARATOR } from './notification'

/**
 * The Redis log's appends, batched: appends made in one turn of the event
 * loop go to Redis as one script call (with their one notification);
 * calls are sent in order on one connection, so each user's order holds.
 * A stream's expiry is refreshed at most every `refreshMs` by this
 * instance, not on every append (a stream the script makes gets one at once).
 *
 *   empty ──append──▶ pending (a microtask queued) ──microtask──▶ empty
 *   (the pending appends sent as script calls of at most MAX_BATCH events)
 */

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

export type RedisAppendsDeps = {
  redis: Redis
  keys: RedisKeys
  /** Entries a stream keeps (MAXLEN ~). */
  history: number
  /** A stream expires this long after its last append. */
  ttlMs: number
  /** How often at most this instance refreshes one stream's expiry. */
  refreshMs: number
  metrics?: Metrics
}

type Pending = {
  userId: string
  name: EventName
  /** "<id>\n" and the entry text (entry.ts): one script argument. */
  text: string
  resolve: (outcome: AppendOutcome) => void
  reject: (error: unknown) => void
}

export function makeRedisAppends(deps: RedisAppendsDeps) {
  const { redis, keys, refreshMs } = deps
  const appended = countAppends(deps.metrics)
  const batchSizes = deps.metrics?.histogram(
    'events_append_batch_size',
    'Events per append script call',
    [1, 2, 4, 8, 16, 32, 64, 128, 256],
  )
  const fixedArgs = [
    String(deps.history),
    String(deps.ttlMs),
    String(MAX_CARRIED_BYTES),
    String(keys.userEvents('').length),
  ]
  let pending: Pending[] = []
  // when this instance last refreshed each user's stream's expiry (monotonic clock), by user id
  // (the key is made once per stream and batch, not hashed per event); forgotten once due again
  const refreshedAt = new Map<string, number>()
  let forgottenAt = performance.now()

  function flush() {
    const all = pending
    pending = []
    const now = performance.now()
    if (now - forgottenAt >= refreshMs) {
      forgottenAt = now
      for (const [key, at] of refreshedAt) if (now - at >= refreshMs) refreshedAt.delete(key)
    }
    for (const batch of userRuns(all)) void appendBatch(batch)
  }

  async function appendBatch(batch: Pending[]) {
    const now = performance.now()
    const { streams, refreshes, args } = scriptArgs(batch, fixedArgs, keys, (userId) => {
      return !(now - (refreshedAt.get(userId) ?? -Infinity) < refreshMs)
    })
    try {
      const reply = (await APPEND_BATCH.run(
        redis,
        [keys.eventNotifications(), ...streams],
        args,
      )) as string
      const results = reply.split(',')
      for (const userId of refreshes) refreshedAt.set(userId, now)
      batchSizes?.observe(batch.length)
      settle(batch, results, appended)
    } catch (error) {
      for (const e of batch) e.reject(error)
    }
  }

  return {
    /** Appends one entry ("<id>\n" and its entry text) to the user's stream. */
    append(userId: string, name: EventName, text: string) {
      return new Promise<AppendOutcome>((resolve, reject) => {
        pending.push({ userId, name, text, resolve, reject })
        if (pending.length === 1) queueMicrotask(flush)
      })
    },
  }
}

/**
 * MAX_BATCH events per call, but a run of one user's consecutive appends is
 * never split: its events land in one script, whole or up to the first that
 * failed, never a later one without an earlier (the relay appends a user's
 * events as one run of at most MAX_BATCH).
 */
function userRuns(all: Pending[]): Pending[][] {
  const runs: Pending[][] = []
  let from = 0
  for (let to = MAX_BATCH; to < all.length; to++) {
    if (all[to]!.userId === all[to - 1]!.userId) continue
    runs.push(all.slice(from, to))
    from = to
    to = from + MAX_BATCH - 1
  }
  if (from < all.length) runs.push(from === 0 ? all : all.slice(from))
  return runs
}

/** Each append's outcome from the script's answer: its id (added), '=' (present) or '' (failed). */
function settle(batch: Pending[], results: string[], appended: (name: EventName) => void) {
  batch.forEach((e, i) => {
    const result = results[i]
    if (result === '=') return e.resolve('present')
    if (!result)
      return e.reject(new Error(`could not append to the event stream of user ${e.userId}`))
    appended(e.name)
    e.resolve('appended')
  })
}

/**
 * The script's KEYS after the channel, and its ARGV (lua/append-batch.lua):
 * the batch's events as one argument, each "<stream index>\n<text>", joined
 * by RECORD_SEPARATOR.
 */
function scriptArgs(
  batch: Pending[],
  fixed: readonly string[],
  keys: RedisKeys,
  refreshDue: (userId: string) => boolean,
) {
  // by user id: the producer's string, whose hash is already known after its first lookup
  const streams = new Map<string, number>()
  const streamKeys: string[] = []
  const refreshes: string[] = []
  let flags = ''
  const events: string[] = new Array(batch.length)
  for (let i = 0; i < batch.length; i++) {
    const e = batch[i]!
    let index = streams.get(e.userId)
    if (index === undefined) {
      streams.set(e.userId, (index = streams.size + 2))
      streamKeys.push(keys.userEvents(e.userId))
      const due = refreshDue(e.userId)
      if (due) refreshes.push(e.userId)
      flags += due ? '1' : '0'
    }
    events[i] = `${index}\n${e.text}`
  }
  return {
    streams: streamKeys,
    refreshes,
    args: [...fixed, flags, events.join(RECORD_SEPARATOR)],
  }
}
