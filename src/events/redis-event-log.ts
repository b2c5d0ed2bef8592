import type { Logger } from 'pino'
import type { Metrics } from '../obs/metrics'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import {
  assertEventName,
  assertReadArgs,
  countAppends,
  type Event,
  type EventLog,
  type EventName,
} from './event'
import { isTruncated } from './ids'
import { MAX_CARRIED_BYTES, isPlainUserId } from './notification'
import { makeRedisTails, toEvent } from './redis-tails'

/**
 * The cluster-wide event log: one Redis stream per user, trimmed to about
 * `history` entries (MAXLEN ~, whole macro nodes at a time) and expiring
 * `ttlSeconds` after its last append.
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

/**
 * Appends a batch in one round trip, atomically: per event XADD with the
 * approximate trim, then each stream's expiry, and ONE notification for the
 * batch, published in the same script so it follows its entries exactly: a
 * record per event (the event itself unless its data is large), records
 * joined by RECORD_SEPARATOR (notification.ts).
 * KEYS: the channel, then the batch's streams. ARGV: history, ttl ms, largest
 * data carried, the length of the stream keys' prefix (a key is that prefix
 * and the user id), then per event: its stream's index in KEYS, name, data,
 * time. Every byte per event counts here: the batch is encoded and decoded
 * in JavaScript.
 * XADD runs under redis.pcall: one that fails (a key holding something other
 * than a stream: WRONGTYPE, refused before anything is written) gives its
 * event '' for an id and the script goes on, so an error can never stop it
 * between an entry and its notification, and one bad key does not fail the
 * others' events.
 */
const APPEND_BATCH = `
local history, ttl, carry, skip = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local ids, records, users, failed = {}, {}, {}, {}
for i = 5, #ARGV, 4 do
  local k = tonumber(ARGV[i])
  local name, data, at = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local id = redis.pcall('XADD', KEYS[k], 'MAXLEN', '~', history, '*', 'n', name, 'd', data, 't', at)
  if type(id) == 'table' then
    failed[k] = true
    ids[#ids + 1] = ''
  else
    local user = users[k]
    if not user then
      user = string.sub(KEYS[k], skip + 1)
      users[k] = user
    end
    ids[#ids + 1] = id
    if #data <= carry then
      records[#records + 1] = table.concat({ user, id, name, at, data }, '\\n')
    else
      records[#records + 1] = user
    end
  end
end
for k = 2, #KEYS do
  if not failed[k] then redis.call('PEXPIRE', KEYS[k], ttl) end
end
if #records > 0 then redis.call('PUBLISH', KEYS[1], table.concat(records, '\\30')) end
return ids
`

/** Events per script call: bounds how long one call holds Redis. */
const MAX_BATCH = 32

type Pending = {
  userId: string
  name: EventName
  data: string
  at: number
  resolve: (id: string) => void
  reject: (error: unknown) => void
}

type RawEntry = [string, string[]]
type ReadAfterReply = [number, number, string, RawEntry[]]

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
  const appended = countAppends(options.metrics)
  const tails = await makeRedisTails({ redis, keys, log, metrics: options.metrics })
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
  function flush() {
    const all = pending
    pending = []
    for (let from = 0; from < all.length; from += MAX_BATCH)
      void appendBatch(all.slice(from, from + MAX_BATCH))
  }

  async function appendBatch(batch: Pending[]) {
    const streams = new Map<string, number>()
    const args = [String(history), String(ttlMs), String(MAX_CARRIED_BYTES), userKeySkip]
    for (const e of batch) {
      const key = keys.userEvents(e.userId)
      let index = streams.get(key)
      if (index === undefined) streams.set(key, (index = streams.size + 2))
      args.push(String(index), e.name, e.data, String(e.at))
    }
    try {
      const ids = (await runScript(redis, APPEND_BATCH, appendSha, {
        keys: [keys.eventNotifications(), ...streams.keys()],
        arguments: args,
      })) as string[]
      batches?.observe(batch.length)
      batch.forEach((e, i) => {
        const id = ids[i]
        if (!id) return e.reject(new Error(`the event stream of user ${e.userId} is not a stream`))
        appended(e.name)
        e.resolve(String(id))
      })
    } catch (error) {
      for (const e of batch) e.reject(error)
    }
  }

  return {
    async append(userId: string, name: EventName, data: unknown) {
      assertEventName(name)
      if (!isPlainUserId(userId)) throw new Error(`not a user id: ${JSON.stringify(userId)}`)
      // serialized now: the log keeps what was appended, not what the producer changes afterwards
      const json = JSON.stringify(data ?? null)
      return new Promise<string>((resolve, reject) => {
        pending.push({ userId, name, data: json, at: Date.now(), resolve, reject })
        if (pending.length === 1) queueMicrotask(flush)
      })
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
