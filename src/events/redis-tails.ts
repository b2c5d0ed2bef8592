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

export type RedisTailsOptions = {
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

export async function makeRedisTails(options: RedisTailsOptions): Promise<RedisTails> {
  const { redis, keys, log } = options
  const tails = new Map<string, Tail>()
  const reads = options.metrics?.counter('events_tail_reads_total', 'Stream reads by tails')
  const carriedEvents = options.metrics
    ?.tally('events_carried_total', 'Events delivered from their notification, with no stream read')
    .child()
  const notifications = options.metrics?.tally(
    'events_notifications_total',
    'Notifications received by this instance, by whether it had listeners',
    ['listened'],
  )
  const listened = notifications?.child({ listened: 'yes' })
  const unlistened = notifications?.child({ listened: 'no' })

  let closed = false
  // the subscription: confirmed and unbroken within one epoch
  let subscribed = false
  let epoch = 0

  const subscriber = redis.duplicate()
  const broken = () => {
    if (!subscribed) return
    subscribed = false
    epoch++
    for (const tail of tails.values()) tail.inSync = false
  }
  subscriber.on('error', (err) => {
    broken()
    log.error({ err }, 'event subscriber error')
  })
  subscriber.on('end', broken)
  subscriber.on('reconnecting', broken)
  subscriber.on('ready', () => {
    // the first 'ready' comes before the first subscribe, which confirms itself below
    if (closed || subscribed || epoch === 0) return
    subscribed = true
    epoch++
    log.info({ tails: tails.size }, 'event subscriber reconnected: tails catching up')
    for (const tail of tails.values()) wake(tail)
  })
  await subscriber.connect()
  await subscriber.subscribe(keys.eventNotifications(), (message) => {
    for (const record of notificationRecords(message)) {
      const tail = tails.get(notifiedUser(record))
      ;(tail ? listened : unlistened)?.inc()
      if (tail) notified(tail, parseNotification(record).carried)
    }
  })
  subscribed = true
  epoch++

  function notified(tail: Tail, carried: Event | undefined) {
    if (carried && tail.cursor !== undefined) {
      // already read (a read raced the notification): nothing to do
      if (compareIds(carried.id, tail.cursor) <= 0) return
      // in sync and not reading: this is the next event, nothing can come between
      if (tail.inSync && !tail.reading) {
        tail.cursor = carried.id
        carriedEvents?.inc()
        return deliver(tail, carried)
      }
    }
    wake(tail)
  }

  function wake(tail: Tail) {
    tail.dirty = true
    if (!tail.reading) void pump(tail)
  }

  const live = (tail: Tail) => !closed && tails.get(tail.userId) === tail

  async function pump(tail: Tail) {
    tail.reading = true
    tail.inSync = false
    // a read puts the tail in sync only if the subscription held from before it ran until after
    let from = subscribed ? epoch : -1
    const key = keys.userEvents(tail.userId)
    try {
      if (tail.cursor === undefined) {
        try {
          const [last] = await redis.xRevRange(key, '+', '-', { COUNT: 1 })
          tail.cursor ??= last?.id ?? ZERO_ID
        } catch (err) {
          // a later baseline from Redis would skip what is relayed meanwhile:
          // start after what is committed now instead (or try both again later)
          if (options.fallbackBaseline)
            tail.cursor ??= await options.fallbackBaseline(tail.userId).catch(() => undefined)
          throw err
        }
      }
      while (tail.dirty && live(tail)) {
        tail.dirty = false
        from = subscribed ? epoch : -1
        const entries = await redis.xRange(key, `(${tail.cursor}`, '+', { COUNT: PAGE })
        reads?.inc()
        if (!live(tail)) return
        for (const entry of entries) {
          tail.cursor = entry.id
          const event = readEntry(entry.id, entry.message as Record<string, string>, log)
          if (event) deliver(tail, event)
        }
        if (entries.length === PAGE) tail.dirty = true
      }
      tail.inSync = subscribed && from === epoch
    } catch (err) {
      if (closed) return
      log.warn({ err: toError(err), userId: tail.userId }, 'event tail read failed')
      // read again from the cursor: on the next notification, a reconnect, or this timer
      clearTimeout(tail.retry)
      tail.retry = setTimeout(() => live(tail) && wake(tail), RETRY_MS)
      tail.retry.unref?.()
    } finally {
      tail.reading = false
    }
  }

  function deliver(tail: Tail, event: Event) {
    for (const listener of tail.listeners) {
      try {
        listener(event)
      } catch (err) {
        log.error({ err, userId: tail.userId }, 'event listener failed')
      }
    }
  }

  return {
    subscribe(userId, listener) {
      let tail = tails.get(userId)
      if (!tail) {
        tail = {
          userId,
          listeners: new Set(),
          cursor: undefined,
          reading: false,
          dirty: false,
          inSync: false,
        }
        tails.set(userId, tail)
        // issues the baseline read now, synchronously (see the states above)
        if (!closed) void pump(tail)
      }
      const t = tail
      t.listeners.add(listener)
      return () => {
        t.listeners.delete(listener)
        if (t.listeners.size === 0 && tails.get(userId) === t) tails.delete(userId)
      }
    },

    async close() {
      if (closed) return
      closed = true
      tails.clear()
      await subscriber.unsubscribe().catch(() => {})
      await subscriber.close().catch(() => subscriber.destroy())
    },
  }
}
