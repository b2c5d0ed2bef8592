import type { Logger } from 'pino'
import { toError } from '../errors'
import type { Metrics } from '../obs/metrics'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import { parseEntryFields } from './entry'
import type { Event, EventListener } from './event'
import { ZERO_ID, compareIds } from './ids'
import { notificationRecords, notifiedUser, parseNotification } from './notification'

/**
 * The one reader per instance. A single subscriber connection listens on the
 * notification channel (notification.ts); for a user with local listeners,
 * the user's tail passes a carried event straight on when it is in sync, and
 * otherwise reads the stream after the last id it delivered, on the shared
 * command client. Nothing here grows in connections with listeners, and a
 * tail that keeps up costs no read per event.
 *
 * In sync: the subscription has been confirmed and unbroken since before
 * the tail's last read ran. Redis PUBLISHes each append's notification in
 * the same script as the XADD, so from that read on, every newer event of
 * the user arrives here, in id order, and a carried event newer than the
 * cursor is exactly the next one. Any sign of a broken subscriber connection
 * ('error', 'end', 'reconnecting') puts every tail out of sync; after
 * 'ready' (node-redis resubscribes before it) each tail reads to catch up,
 * and that read puts it back in sync.
 *
 * Tail states (one tail per user with listeners on this instance):
 *   new ──baseline read (XREVRANGE COUNT 1)──▶ idle
 *   idle, in sync ──notification carrying a newer event──▶ idle (delivered)
 *   idle ──any other notification for a newer id──▶ reading
 *   reading ──stream caught up──▶ idle (in sync when the subscription held
 *   throughout); notifications while reading coalesce into one more read.
 *   Last listener gone ──▶ dropped (a read in flight is discarded).
 * The baseline is issued synchronously in subscribe(), before any read the
 * subscriber issues next on the same connection, so an event is either
 * before the caller's read or after the baseline: never in neither.
 */

type Tail = {
  userId: string
  listeners: Set<EventListener>
  /** The last id read (or the baseline); undefined until the baseline returns. */
  cursor: string | undefined
  reading: boolean
  dirty: boolean
  /** Every event after the cursor will arrive as a notification (see above). */
  inSync: boolean
  /** A failed read tries again when this fires (close() and the last unsubscribe clear it). */
  retry?: ReturnType<typeof setTimeout>
}

export type RedisTails = {
  subscribe(userId: string, listener: EventListener): () => void
  close(): Promise<void>
}

/** Entries per XRANGE; a tail that is further behind reads again at once. */
const PAGE = 256
/** A failed read is tried again after this long, even if no notification comes. */
const RETRY_MS = 1000

/** A stream entry as an event; one this version cannot read is logged and skipped. */
export function readEntry(
  id: string,
  fields: Record<string, string>,
  log: Logger,
): Event | undefined {
  const event = parseEntryFields(id, fields)
  if (!event) log.error({ id, fields: Object.keys(fields) }, 'unreadable event skipped')
  return event
}

export type RedisTailsDeps = {
  redis: Redis
  keys: RedisKeys
  log: Logger
  metrics?: Metrics
  /**
   * The id of the user's newest committed event (the outbox's, in Postgres):
   * where a tail starts when Redis cannot give its baseline (Redis down while
   * a socket subscribes). Every event after it is committed after the
   * subscribe, so none the listener is owed is skipped.
   */
  fallbackBaseline?: (userId: string) => Promise<string>
}

/** What the tails of one instance share; the functions below work on it. */
type Tails = {
  deps: RedisTailsDeps
  tails: Map<string, Tail>
  closed: boolean
  /** The subscription: confirmed and unbroken within one epoch. */
  subscribed: boolean
  epoch: number
  counts: ReturnType<typeof tailCounts>
}

export async function makeRedisTails(deps: RedisTailsDeps): Promise<RedisTails> {
  const { redis, keys } = deps
  const s: Tails = {
    deps,
    tails: new Map(),
    closed: false,
    subscribed: false,
    epoch: 0,
    counts: tailCounts(deps.metrics),
  }
  const subscriber = redis.duplicate()
  watchSubscriber(s, subscriber)
  await subscriber.connect()
  await subscriber.subscribe(keys.eventNotifications(), (message) => onNotification(s, message))
  s.subscribed = true
  s.epoch++

  return {
    subscribe(userId, listener) {
      let tail = s.tails.get(userId)
      if (!tail) {
        tail = {
          userId,
          listeners: new Set(),
          cursor: undefined,
          reading: false,
          dirty: false,
          inSync: false,
        }
        s.tails.set(userId, tail)
        // issues the baseline read now, synchronously (see the states above)
        if (!s.closed) void pump(s, tail)
      }
      const t = tail
      t.listeners.add(listener)
      return () => {
        t.listeners.delete(listener)
        if (t.listeners.size > 0 || s.tails.get(userId) !== t) return
        s.tails.delete(userId)
        clearTimeout(t.retry)
      }
    },

    async close() {
      if (s.closed) return
      s.closed = true
      for (const tail of s.tails.values()) clearTimeout(tail.retry)
      s.tails.clear()
      await subscriber.unsubscribe().catch(() => {})
      await subscriber.close().catch(() => subscriber.destroy())
    },
  }
}

/** Bound once: a child of a tally counts in a plain number, no label work per event. */
function tailCounts(metrics: Metrics | undefined) {
  const notifications = metrics?.tally(
    'events_notifications_total',
    'Notifications received by this instance, by whether it had listeners',
    ['listened'],
  )
  return {
    reads: metrics?.counter('events_tail_reads_total', 'Stream reads by tails'),
    carried: metrics
      ?.tally(
        'events_carried_total',
        'Events delivered from their notification, with no stream read',
      )
      .child(),
    listened: notifications?.child({ listened: 'yes' }),
    unlistened: notifications?.child({ listened: 'no' }),
  }
}

/** Any sign of a broken subscriber connection puts every tail out of sync; 'ready' wakes them. */
function watchSubscriber(s: Tails, subscriber: Redis) {
  const broken = () => {
    if (!s.subscribed) return
    s.subscribed = false
    s.epoch++
    for (const tail of s.tails.values()) tail.inSync = false
  }
  subscriber.on('error', (err) => {
    broken()
    s.deps.log.error({ err }, 'event subscriber error')
  })
  subscriber.on('end', broken)
  subscriber.on('reconnecting', broken)
  subscriber.on('ready', () => {
    // the first 'ready' comes before the first subscribe, which confirms itself
    if (s.closed || s.subscribed || s.epoch === 0) return
    s.subscribed = true
    s.epoch++
    s.deps.log.info({ tails: s.tails.size }, 'event subscriber reconnected: tails catching up')
    for (const tail of s.tails.values()) wake(s, tail)
  })
}

function onNotification(s: Tails, message: string) {
  for (const record of notificationRecords(message)) {
    const tail = s.tails.get(notifiedUser(record))
    ;(tail ? s.counts.listened : s.counts.unlistened)?.inc()
    if (tail) notified(s, tail, parseNotification(record).carried)
  }
}

function notified(s: Tails, tail: Tail, carried: Event | undefined) {
  if (carried && tail.cursor !== undefined) {
    // already read (a read raced the notification): nothing to do
    if (compareIds(carried.id, tail.cursor) <= 0) return
    // in sync and not reading: this is the next event, nothing can come between
    if (tail.inSync && !tail.reading) {
      tail.cursor = carried.id
      s.counts.carried?.inc()
      return deliver(s, tail, carried)
    }
  }
  wake(s, tail)
}

function wake(s: Tails, tail: Tail) {
  tail.dirty = true
  if (!tail.reading) void pump(s, tail)
}

const isLive = (s: Tails, tail: Tail) => !s.closed && s.tails.get(tail.userId) === tail

async function pump(s: Tails, tail: Tail) {
  const { redis, keys, log } = s.deps
  tail.reading = true
  tail.inSync = false
  // a read puts the tail in sync only if the subscription held from before it ran until after
  let from = s.subscribed ? s.epoch : -1
  const key = keys.userEvents(tail.userId)
  try {
    if (tail.cursor === undefined) await readBaseline(s, tail, key)
    while (tail.dirty && isLive(s, tail)) {
      tail.dirty = false
      from = s.subscribed ? s.epoch : -1
      const entries = await redis.xRange(key, `(${tail.cursor}`, '+', { COUNT: PAGE })
      s.counts.reads?.inc()
      if (!isLive(s, tail)) return
      for (const entry of entries) {
        tail.cursor = entry.id
        const event = readEntry(entry.id, entry.message as Record<string, string>, log)
        if (event) deliver(s, tail, event)
      }
      if (entries.length === PAGE) tail.dirty = true
    }
    tail.inSync = s.subscribed && from === s.epoch
  } catch (err) {
    if (s.closed) return
    log.warn({ err: toError(err), userId: tail.userId }, 'event tail read failed')
    // read again from the cursor: on the next notification, a reconnect, or this timer
    clearTimeout(tail.retry)
    tail.retry = setTimeout(() => isLive(s, tail) && wake(s, tail), RETRY_MS)
    tail.retry.unref?.()
  } finally {
    tail.reading = false
  }
}

/** Where a new tail starts: the stream's newest id (XREVRANGE COUNT 1), or what is committed. */
async function readBaseline(s: Tails, tail: Tail, key: string) {
  try {
    const [last] = await s.deps.redis.xRevRange(key, '+', '-', { COUNT: 1 })
    tail.cursor ??= last?.id ?? ZERO_ID
  } catch (err) {
    // a later baseline from Redis would skip what is relayed meanwhile:
    // start after what is committed now instead (or try both again later)
    const fallback = s.deps.fallbackBaseline
    if (fallback) tail.cursor ??= await fallback(tail.userId).catch(() => undefined)
    throw err
  }
}

function deliver(s: Tails, tail: Tail, event: Event) {
  for (const listener of tail.listeners) {
    try {
      listener(event)
    } catch (err) {
      s.deps.log.error({ err, userId: tail.userId }, 'event listener failed')
    }
  }
}
