import { t, type TSchema } from 'elysia'
import type { TLiteral, TUnion } from '@sinclair/typebox'
import { ValidationFailed } from '../errors'
import { UUID_PATTERN } from '../ids'
import { SafeString } from './text'

/**
 * A union of string literals from an `as const` array: the values are spelled
 * once, and the model, the row types and the checks all derive from them.
 */
export function Literals<const T extends readonly [string, ...string[]]>(values: T) {
  return t.Union(values.map((v) => t.Literal(v))) as unknown as TUnion<[...LiteralsOf<T>]>
}
type LiteralsOf<T extends readonly string[]> = { [K in keyof T]: TLiteral<T[K] & string> }

/** API.md's error shape, for every documented error response. */
export const ErrorResponse = t.Object(
  {
    error: t.Object({
      code: t.String(),
      message: t.String(),
      requestId: t.String(),
      details: t.Optional(t.Unknown()),
    }),
  },
  { description: 'Error (API.md shape)' },
)

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'bad_request: malformed JSON or body',
  401: 'unauthorized',
  402: 'insufficient_credits (details: required, available)',
  403: 'forbidden',
  404: 'not_found',
  409: 'idempotency_conflict or conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'validation_failed (details: list of { path, message }); also for text with U+0000 or an unpaired surrogate, and for a number sent as a string in a JSON body',
  429: 'rate_limited (Retry-After header)',
  503: 'unavailable (Retry-After header)',
}

/** `{ 401: ErrorResponse, … }` for a route's `response` map; documents the codes it can return. */
export function errors<S extends number>(...statuses: S[]): Record<S, typeof ErrorResponse> {
  return Object.fromEntries(
    statuses.map((s) => [s, t.Composite([ErrorResponse], { description: ERROR_DESCRIPTIONS[s] })]),
  ) as Record<S, typeof ErrorResponse>
}

/**
 * `?limit=` 1..100. A pattern on the string rather than a coerced integer:
 * Elysia validates coerced query numbers one by one and loses the property
 * name, and a 422 must say which parameter is wrong.
 */
export const LimitParam = t.Optional(
  SafeString({
    pattern: '^([1-9]|[1-9][0-9]|100)$',
    description: 'page size, 1..100 (default 20)',
  }),
)

export function pageLimit(limit: string | undefined): number {
  return limit === undefined ? 20 : Number(limit)
}

/**
 * Longer than any cursor we issue: a pose cursor holds a name of up to 200
 * characters (up to 800 bytes of UTF-8, as JSON) and a uuid, in base64url.
 */
const MAX_CURSOR_LENGTH = 1200

/** `?cursor=`: opaque base64url, bounded; what it decodes to is checked by each list. */
export const CursorParam = t.Optional(
  SafeString({
    pattern: `^[A-Za-z0-9_-]{1,${MAX_CURSOR_LENGTH}}$`,
    description: 'opaque page cursor (nextCursor of the previous page)',
  }),
)

/** Keyset page: `?limit=` 1..100 (default 20), opaque `?cursor=`. */
export const PageQuery = {
  limit: LimitParam,
  cursor: CursorParam,
}

export function Page<T extends TSchema>(item: T) {
  return t.Object({ items: t.Array(item), nextCursor: t.Union([t.String(), t.Null()]) })
}

export const IdParam = t.Object({ id: SafeString({ format: 'uuid' }) })

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
