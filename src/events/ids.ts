/**
 * Event ids are Redis stream ids. Atelier issues "<seq>-0", seq being the
 * event's place in its user's sequence (the outbox, sql/0014): ids increase
 * strictly per user and say nothing about time, in both implementations.
 * They are compared as pairs of unsigned integers: by digit count, then
 * lexically, which is exact for any length (seq can exceed 2^53).
 */
export const ZERO_ID = '0-0'

/** The id of a user's seq-th event. */
export function seqId(seq: number): string {
  return `${seq}-0`
}

/**
 * True when `id` is the event right after `previous` in a user's sequence
 * ("<n>-0" then "<n+1>-0"), or when either is not of that form (nothing to
 * say about ids this version did not issue). Per event on the live path: no
 * regex, one number parse.
 */
export function isNextId(previous: string, id: string): boolean {
  if (!previous.endsWith('-0') || !id.endsWith('-0')) return true
  return id === `${Number(previous.slice(0, -2)) + 1}-0`
}

// any number of digits (a WebSocket frame bounds them): one above 2^64 is an id in form that
// no history issued, answered with resync, whatever its length (isIssuableId)
const ID = /^(0|[1-9]\d*)-(0|[1-9]\d*)$/

/** JSON-schema pattern of an id, for the edges that accept one (WebSocket messages). */
export const EVENT_ID_PATTERN = ID.source

export function isEventId(value: string): boolean {
  return ID.test(value)
}

/** 2^64 - 1, the largest part of a Redis stream id, as digits. */
const U64_MAX = '18446744073709551615'

function fitsU64(digits: string) {
  return digits.length < U64_MAX.length || (digits.length === U64_MAX.length && digits <= U64_MAX)
}

/**
 * True when `value` is an id some history could have issued: both parts
 * within 0..2^64-1. The pattern allows any length, so "99999999999999999999-0"
 * is an id in form (the client gets `resync`) that Redis would refuse to read.
 */
export function isIssuableId(value: string): boolean {
  const dash = value.indexOf('-')
  // the largest id: nothing can follow it, and Redis refuses a range that starts after it
  if (value === `${U64_MAX}-${U64_MAX}`) return false
  return fitsU64(value.slice(0, dash)) && fitsU64(value.slice(dash + 1))
}

/**
 * Negative when a is older than b, 0 when equal, positive when newer. With
 * no leading zeros, a longer number is larger; numbers of one length compare
 * as text. No substrings: every live event is compared twice on its way.
 */
export function compareIds(a: string, b: string): number {
  const da = a.indexOf('-')
  const db = b.indexOf('-')
  // milliseconds of different lengths
  if (da !== db) return da - db
  // same shape throughout: text order is number order
  if (a.length === b.length) return a < b ? -1 : a > b ? 1 : 0
  // same milliseconds length, sequences of different lengths: milliseconds first
  for (let i = 0; i < da; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i)
    if (d !== 0) return d
  }
  return a.length - b.length
}

/** What a log knows about one user's retained history, to answer readAfter's `truncated`. */
export type Retention = {
  /** False when the user has no history at all (never written, or expired). */
  exists: boolean
  /** True when the history has dropped entries to stay within its bound. */
  trimmed: boolean
  /** The oldest retained id, or undefined when none is retained. */
  first: string | undefined
  /** The newest id the history ever gave, or undefined when it gave none. */
  last: string | undefined
}

/**
 * True when `afterId` is older than the retained history, so events after it
 * may be gone: the history was trimmed past it, or afterId comes from a
 * history that expired since. ZERO_ID ("from the start") is truncated only
 * once something was trimmed. An id just before the oldest retained one counts
 * as older too: Redis keeps no record of trimmed ids (max-deleted-entry-id
 * follows XDEL only), and a needless resync is harmless where a gap is not.
 * An id newer than any the history gave did not come from it (another user's,
 * or a history that expired and started again): the client's view is not
 * this history's either.
 */
export function isTruncated(retention: Retention, afterId: string): boolean {
  if (!retention.exists) return afterId !== ZERO_ID
  if (retention.last !== undefined && compareIds(afterId, retention.last) > 0) return true
  if (retention.first === undefined || compareIds(afterId, retention.first) >= 0) return false
  return afterId !== ZERO_ID || retention.trimmed
}
