import type { Logger } from 'pino'
import type { Metrics } from '../obs/metrics'
import {
  assertReadArgs,
  assertSequenced,
  countAppends,
  type Event,
  type EventListener,
  type EventLog,
  type ReadResult,
  type SequencedEvent,
} from './event'
import { compareIds, isTruncated, seqId } from './ids'

/**
 * The embedded-mode event log: one bounded ring per user in this process,
 * with the Redis log's semantics (ids "<seq>-0", an id at or below the
 * newest refused as present, trimming, `truncated`).
 *
 * States: open ──close()──▶ closed (appends refused, listeners dropped).
 * A user's ring lives until it is evicted: at most `maxUsers` rings are kept,
 * the least recently written goes first, as an idle Redis stream would expire.
 */

/** `lastSeq`: the newest seq this ring was given (its top, even once trimmed). */
type Ring = { events: Event[]; trimmed: boolean; lastSeq: number }

export type MemoryEventLogDeps = {
  history: number
  /** Rings kept before the least recently written is evicted (default 10 000). */
  maxUsers?: number
  log: Logger
  metrics?: Metrics
}

export function makeMemoryEventLog(deps: MemoryEventLogDeps): EventLog {
  const { history, log } = deps
  const maxUsers = deps.maxUsers ?? 10_000
  // Map order is insertion order: re-inserting on append keeps it least-recently-written first
  const rings = new Map<string, Ring>()
  const listeners = new Map<string, Set<EventListener>>()
  const countAppended = countAppends(deps.metrics)
  let closed = false

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
    async append(appended: SequencedEvent) {
      if (closed) throw new Error('event log is closed')
      assertSequenced(appended)
      const event = pushToRing(rings, appended, history)
      if (!event) return 'present'
      if (rings.size > maxUsers) rings.delete(rings.keys().next().value!)
      countAppended(appended.name)
      // delivered after append resolves, in append order, as the Redis tail does
      queueMicrotask(() => publish(appended.userId, event))
      return 'appended'
    },

    async readAfter(userId: string, afterId: string, limit: number) {
      assertReadArgs(afterId, limit)
      return readRing(rings.get(userId), afterId, limit)
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

/**
 * The event at the top of its user's ring (made and moved to the most
 * recently written end of `rings`); undefined when the ring already holds its
 * seq or a later one, as Redis refuses an id at or below the stream's top.
 */
function pushToRing(rings: Map<string, Ring>, appended: SequencedEvent, history: number) {
  const { userId, seq, name, json } = appended
  let ring = rings.get(userId)
  if (ring && seq <= ring.lastSeq) return undefined
  // parsed here, as Redis readers parse what they read: a JSON error fails the append
  const event: Event = { id: seqId(seq), name, data: JSON.parse(json), json, at: appended.at }
  if (ring) rings.delete(userId)
  else ring = { events: [], trimmed: false, lastSeq: 0 }
  ring.lastSeq = seq
  rings.set(userId, ring)
  ring.events.push(event)
  if (ring.events.length > history) {
    ring.events.shift()
    ring.trimmed = true
  }
  return event
}

function readRing(ring: Ring | undefined, afterId: string, limit: number): ReadResult {
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
}
