import type { Logger } from 'pino'
import type { Metrics } from '../obs/metrics'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
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

/**
 * readAfter in one round trip and one consistent view: the page after the id,
 * plus what `truncated` needs (whether the stream was ever trimmed, its
 * oldest retained id, and the newest id it ever gave).
 */
const READ_AFTER = `
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0, '', {}, ''} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local length, added, first, last = 0, 0, '', ''
for i = 1, #info, 2 do
  if info[i] == 'length' then length = info[i + 1] end
  if info[i] == 'entries-added' then added = info[i + 1] end
  if info[i] == 'first-entry' and info[i + 1] then first = info[i + 1][1] end
  if info[i] == 'last-generated-id' then last = info[i + 1] end
end
local trimmed = 0
if added > length then trimmed = 1 end
local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', ARGV[2])
return {1, trimmed, first, entries, last}
`

/**
 * Appends a batch in one round trip, atomically: per event XADD with its own
 * id ("<seq>-0", from the outbox) and the approximate trim, then each
 * stream's expiry, and ONE notification for the batch, published in the
 * same script so it follows its entries exactly: a record per event added
 * (the event itself unless its data is large), records joined by
 * RECORD_SEPARATOR (notification.ts).
 * KEYS: the channel, then the batch's streams. ARGV: history, ttl ms, largest
 * entry carried, the length of the stream keys' prefix (a key is that prefix
 * and the user id), one character per stream ('1': refresh its expiry), then
 * per event: its stream's index in KEYS and its text, "<id>\n" followed by
 * the entry text (entry.ts), which the script splits into the stream entry's
 * fields; a record carries "<user>\n" and the text as it is. Every argument
 * per event counts here: the batch is encoded in JavaScript and converted
 * again for each call inside the script. A stream the script creates always
 * gets its expiry (XADD NOMKSTREAM tells), so no stream is ever left without
 * one.
 * Per event the script returns its id when it added it, '=' when the stream
 * already holds that id or a newer one (Redis refuses an id that is not
 * above the stream's top: an event relayed twice is refused, not
 * duplicated), and '' when it failed. XADD runs under redis.pcall: one that
 * fails (a key holding something other than a stream: WRONGTYPE, refused
 * before anything is written) cannot stop the script between an entry and
 * its notification, and fails only the rest of its own stream's events in
 * this batch, so a stream never gets a later event before an earlier one.
 */
const APPEND_BATCH = `
local history, ttl, carry, skip, refresh = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local results, records, users, failed, added, expire = {}, {}, {}, {}, {}, {}
for i = 6, #ARGV, 2 do
  local k, text = tonumber(ARGV[i]), ARGV[i + 1]
  local a = string.find(text, '\\n', 1, true)
  local b = a and string.find(text, '\\n', a + 1, true)
  local c = b and string.find(text, '\\n', b + 1, true)
  local result = ''
  if c and not failed[k] then
    local id, name, at, data = string.sub(text, 1, a - 1), string.sub(text, a + 1, b - 1), string.sub(text, b + 1, c - 1), string.sub(text, c + 1)
    local r = redis.pcall('XADD', KEYS[k], 'NOMKSTREAM', 'MAXLEN', '~', history, id, 'n', name, 'd', data, 't', at)
    if not r then
      -- no stream (new, or expired): make it, and give it its expiry whatever was asked
      r = redis.pcall('XADD', KEYS[k], 'MAXLEN', '~', history, id, 'n', name, 'd', data, 't', at)
      expire[k] = true
    end
    if type(r) == 'string' then
      result = r
      added[k] = true
      local user = users[k]
      if not user then
        user = string.sub(KEYS[k], skip + 1)
        users[k] = user
      end
      if #text <= carry then
        records[#records + 1] = user .. '\\n' .. text
      else
        records[#records + 1] = user
      end
    elseif type(r) == 'table' and r.err and string.find(r.err, 'equal or smaller', 1, true) then
      result = '='
    else
      failed[k] = true
    end
  end
  results[#results + 1] = result
end
for k = 2, #KEYS do
  if added[k] and (expire[k] or string.byte(refresh, k - 1) == 49) then
    redis.call('PEXPIRE', KEYS[k], ttl)
  end
end
if #records > 0 then redis.call('PUBLISH', KEYS[1], table.concat(records, '\\30')) end
return results
`

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

/**
 * EVALSHA, and EVAL when Redis no longer has the script (restarted, flushed),
 * which caches it again. node-redis's own scripts (defineScript) must be
 * declared when a client is created; this log runs on the instance's shared
 * client, created before any room.
 */
async function runScript(
  redis: Redis,
  script: string,
  sha: string,
  options: { keys: string[]; arguments: string[] },
) {
  try {
    return await redis.evalSha(sha, options)
  } catch (error) {
    if (!String((error as Error)?.message).startsWith('NOSCRIPT')) throw error
    return redis.eval(script, options)
  }
}

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
  const appendSha = await redis.scriptLoad(APPEND_BATCH)
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
      const results = (await runScript(redis, APPEND_BATCH, appendSha, {
        keys: [keys.eventNotifications(), ...streams.keys()],
        arguments: args,
      })) as string[]
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
      const [exists, trimmed, first, entries, last] = (await redis.eval(READ_AFTER, {
        keys: [keys.userEvents(userId)],
        arguments: [afterId, String(limit)],
      })) as unknown as ReadAfterReply
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
