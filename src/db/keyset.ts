import { ValidationFailed } from '../errors'
import { UUID_PATTERN } from '../ids'

/**
 * Keyset pages: opaque cursors that carry the sort key of a page's last row
 * (base64url of a JSON tuple), checked completely when they come back, since
 * a cursor comes from the client: a forged one is a 422 on `cursor`, never a
 * value that reaches SQL unchecked. Each list says what its cursor holds.
 */

export function pageLimit(limit: string | undefined): number {
  return limit === undefined ? 20 : Number(limit)
}

/**
 * Longer than any cursor we issue: a pose cursor holds a name of up to 200
 * characters (up to 800 bytes of UTF-8, as JSON) and a uuid, in base64url.
 */
export const MAX_CURSOR_LENGTH = 1200

/** Opaque cursors: base64url of a JSON tuple; a bad one is a 422 on `cursor`. */
export function encodeCursor(values: unknown[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url')
}

/**
 * Decodes a cursor and checks its shape with `valid`: a cursor is opaque but
 * comes from the client, so a forged one must be a 422, never reach SQL.
 */
export function decodeCursor<T extends unknown[]>(
  cursor: string | undefined,
  valid: (values: unknown[]) => values is T,
): T | undefined {
  if (cursor === undefined) return undefined
  try {
    if (cursor.length > MAX_CURSOR_LENGTH) throw new Error('cursor too long')
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(value) && valid(value)) return value
  } catch {}
  throw new ValidationFailed([{ path: '/cursor', message: 'Unknown cursor' }])
}

/**
 * A timestamp a cursor may carry: RFC 3339 in UTC as toISOString() writes it,
 * with a four-digit year, so Postgres can read it. Date.parse takes
 * "+275760-09-13T00:00:00.000Z", which Postgres refuses ("time zone
 * displacement out of range"): without this check, a 500.
 */
const CURSOR_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

export function isCursorTime(v: unknown): v is string {
  if (typeof v !== 'string' || !CURSOR_TIME.test(v)) return false
  const ms = Date.parse(v)
  // round trip: rejects 2026-02-31 and the like; year 0000 is not a Postgres AD year
  return !Number.isNaN(ms) && new Date(ms).toISOString() === v && !v.startsWith('0000')
}

export function isUuid(v: unknown): v is string {
  return typeof v === 'string' && UUID_PATTERN.test(v)
}

/** A cursor of (RFC 3339 timestamp, uuid), as newest-first lists use. */
export function isTimeIdCursor(v: unknown[]): v is [string, string] {
  return v.length === 2 && isCursorTime(v[0]) && isUuid(v[1])
}

/** A cursor of one positive integer (a sequence number). */
export function isSeqCursor(v: unknown[]): v is [number] {
  // a bigint column: any safe integer fits
  return v.length === 1 && Number.isSafeInteger(v[0]) && (v[0] as number) > 0
}
