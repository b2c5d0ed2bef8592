import { t, type TSchema } from 'elysia'
import { ValidationFailed } from '../errors'

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
  422: 'validation_failed (details: list of { path, message })',
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
  t.String({ pattern: '^([1-9]|[1-9][0-9]|100)$', description: 'page size, 1..100 (default 20)' }),
)

export function pageLimit(limit: string | undefined): number {
  return limit === undefined ? 20 : Number(limit)
}

/** Keyset page: `?limit=` 1..100 (default 20), opaque `?cursor=`. */
export const PageQuery = {
  limit: LimitParam,
  cursor: t.Optional(t.String({ minLength: 1, maxLength: 200 })),
}

export function Page<T extends TSchema>(item: T) {
  return t.Object({ items: t.Array(item), nextCursor: t.Union([t.String(), t.Null()]) })
}

export const IdParam = t.Object({ id: t.String({ format: 'uuid' }) })

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
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (Array.isArray(value) && valid(value)) return value
  } catch {}
  throw new ValidationFailed([{ path: '/cursor', message: 'Unknown cursor' }])
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** A cursor of (RFC 3339 timestamp, uuid), as newest-first lists use. */
export function isTimeIdCursor(v: unknown[]): v is [string, string] {
  return (
    v.length === 2 &&
    typeof v[0] === 'string' &&
    !Number.isNaN(Date.parse(v[0])) &&
    typeof v[1] === 'string' &&
    UUID_PATTERN.test(v[1])
  )
}

/** A cursor of one positive integer (a sequence number). */
export function isSeqCursor(v: unknown[]): v is [number] {
  return v.length === 1 && Number.isSafeInteger(v[0]) && (v[0] as number) > 0
}
