import type { Logger } from 'pino'
import type { Metrics } from '../obs/metrics'
import {
  assertEventName,
  assertReadArgs,
  countAppends,
  type Event,
  type EventListener,
  type EventLog,
  type EventName,
} from './event'
import { compareIds, isTruncated } from './ids'

/**
 * The embedded-mode event log: one bounded ring per user in this process,
 * with the Redis log's semantics (stream-style ids, trimming, `truncated`).
 *
 * States: open ──close()──▶ closed (appends refused, listeners dropped).
 * A user's ring lives until it is evicted: at most `maxUsers` rings are kept,
 * the least recently written goes first, as an idle Redis stream would expire.
 */

type Ring = { events: Event[]; trimmed: boolean }

export type MemoryEventLogOptions = {
  history: number
  /** Rings kept before the least recently written is evicted (default 10 000). */
  maxUsers?: number
  log: Logger
  metrics?: Metrics
  now?: () => number
}

export function makeMemoryEventLog(options: MemoryEventLogOptions): EventLog {
  const { history, log } = options
  const maxUsers = options.maxUsers ?? 10_000
  const now = options.now ?? Date.now
  // Map order is insertion order: re-inserting on append keeps it least-recently-written first
  const rings = new Map<string, Ring>()
  const listeners = new Map<string, Set<EventListener>>()
  const appended = countAppends(options.metrics)
  let last = { ms: 0, seq: 0 }
  let closed = false

  /** Ids like Redis's: the clock in ms, a sequence within the ms, never going back. */
  function nextId(): string {
    const ms = now()
    last = ms > last.ms ? { ms, seq: 0 } : { ms: last.ms, seq: last.seq + 1 }
    return `${last.ms}-${last.seq}`
  }

  function publish(userId: string, event: Event) {
    const set = listeners.get(userId)
    if (!set) return
    for (const listener of set) {
      try {
        listener(event)
      } catch (err) {
        log.error({ err, userId }, 'event listener failed')
      }
    }
  }

  return {
    async append(userId: string, name: EventName, data: unknown) {
      if (closed) throw new Error('event log is closed')
      assertEventName(name)
      // stored as Redis stores it: a JSON copy, so a producer's later mutation changes nothing
      const json = JSON.stringify(data ?? null)
      const event: Event = { id: nextId(), name, data: JSON.parse(json), json, at: now() }
      let ring = rings.get(userId)
      if (ring) rings.delete(userId)
      else ring = { events: [], trimmed: false }
      rings.set(userId, ring)
      ring.events.push(event)
      if (ring.events.length > history) {
        ring.events.shift()
        ring.trimmed = true
      }
      if (rings.size > maxUsers) rings.delete(rings.keys().next().value!)
      appended(name)
      // delivered after append resolves, in append order, as the Redis tail does
      queueMicrotask(() => publish(userId, event))
      return event.id
    },

    async readAfter(userId: string, afterId: string, limit: number) {
      assertReadArgs(afterId, limit)
      const ring = rings.get(userId)
      const retained = ring?.events ?? []
      const truncated = isTruncated(
        {
          exists: ring !== undefined,
          trimmed: ring?.trimmed ?? false,
          first: retained[0]?.id,
          last: retained.at(-1)?.id,
        },
        afterId,
      )
      const start = retained.findIndex((e) => compareIds(e.id, afterId) > 0)
      const events = start < 0 ? [] : retained.slice(start, start + limit)
      return {
        events,
        truncated,
        next: events.at(-1)?.id ?? afterId,
        more: events.length === limit,
      }
    },

    subscribe(userId: string, listener: EventListener) {
      let set = listeners.get(userId)
      if (!set) listeners.set(userId, (set = new Set()))
      set.add(listener)
      return () => {
        set.delete(listener)
        if (set.size === 0 && listeners.get(userId) === set) listeners.delete(userId)
      }
    },

    async close() {
      closed = true
      listeners.clear()
      rings.clear()
    },
  }
}
