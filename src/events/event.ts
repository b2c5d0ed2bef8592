import type { Metrics } from '../obs/metrics'
import { isEventId } from './ids'

/**
 * What the event log holds and promises; the implementations are
 * redis-event-log.ts (cluster-wide) and memory-event-log.ts (embedded).
 */

export const EVENT_NAMES = [
  'generation.queued',
  'generation.started',
  'generation.item',
  'generation.finished',
  'credits.changed',
] as const

export type EventName = (typeof EVENT_NAMES)[number]

const NAMES = new Set<string>(EVENT_NAMES)

export function isEventName(name: string): name is EventName {
  return NAMES.has(name)
}

/** A producer's mistake fails at its append, not later at some reader. */
export function assertEventName(name: string): asserts name is EventName {
  if (!isEventName(name)) throw new Error(`unknown event name: ${name}`)
}

export function assertReadArgs(afterId: string, limit: number) {
  if (!isEventId(afterId)) throw new Error(`not an event id: ${afterId}`)
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`not a positive limit: ${limit}`)
}

/**
 * An event as the outbox hands it to the log: its place in the user's
 * sequence (from Postgres, sql/0014_event_outbox.sql) is its id, "<seq>-0".
 */
export type SequencedEvent = {
  userId: string
  /** 1, 2, 3, … per user, in commit order. */
  seq: number
  name: EventName
  /** The data as JSON text, kept as it is. */
  json: string
  /** When it was committed (epoch ms, the database's clock). */
  at: number
}

/** The log now holds the event: added by this call, or already there (relayed before). */
export type AppendOutcome = 'appended' | 'present'

/** A producer's mistake fails at its append, not later at some reader. */
export function assertSequenced(event: SequencedEvent) {
  assertEventName(event.name)
  if (!Number.isSafeInteger(event.seq) || event.seq < 1)
    throw new Error(`not an event seq: ${event.seq}`)
}

export type Event = {
  /** A stream id, "<seq>-0" (ids.ts); strictly increasing per user. */
  id: string
  name: EventName
  data: unknown
  /** `data` as the JSON text the log holds, when it has it: frames reuse it instead of serializing again. */
  json?: string
  /** When it was appended (epoch ms): the start of the delivery latency. */
  at: number
}

export type EventListener = (event: Event) => void

export type ReadResult = {
  /** The events after the id, oldest first, at most `limit`. */
  events: Event[]
  /**
   * Where the next page starts: the id of the last entry read, readable or
   * not (an entry this version cannot read, e.g. an event name from a newer
   * one, is skipped but still read), or the id asked for when none was.
   */
  next: string
  /** True when `limit` entries were read: more may follow `next`. */
  more: boolean
  /**
   * True when events after the id may have been trimmed from the retained
   * history, or when the id is newer than any the history gave (not its own).
   */
  truncated: boolean
}

export type EventLog = {
  /**
   * Appends one event with its id; resolves once the log holds it. An event
   * whose id the user's log already holds, or is past, is refused and
   * resolves 'present': relaying an event twice never duplicates it. Appends
   * of one user must come in seq order (the relay's per-user lock).
   */
  append(event: SequencedEvent): Promise<AppendOutcome>
  readAfter(userId: string, afterId: string, limit: number): Promise<ReadResult>
  /**
   * Live tail: every event appended after this call is passed to `listener`,
   * once, in id order (an event appended just before may be passed too).
   * Returns the unsubscribe function.
   */
  subscribe(userId: string, listener: EventListener): () => void
  close(): Promise<void>
}

/** events_appended_total by name, each name's child bound once: no label work per event. */
export function countAppends(metrics: Metrics | undefined): (name: EventName) => void {
  const tally = metrics?.tally('events_appended_total', 'Events appended', ['name'])
  if (!tally) return () => {}
  const byName = new Map(EVENT_NAMES.map((name) => [name, tally.child({ name })]))
  return (name) => byName.get(name)!.inc()
}
