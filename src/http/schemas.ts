import { t, type TSchema } from 'elysia'
import { Type, type TLiteral, type TUnion } from '@sinclair/typebox'
import { MAX_CURSOR_LENGTH } from '../db/keyset'
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
  422: 'validation_failed (details: list of { path, message }); also for text with U+0000 or an unpaired surrogate, for a number sent as a string in a JSON body, and for a toString or valueOf key anywhere in a JSON body',
  429: 'rate_limited (Retry-After header)',
  503: 'unavailable (Retry-After header)',
}

/** The statuses that carry `Retry-After` (API.md), documented as a response header. */
const RETRY_AFTER: Record<number, string> = {
  409: 'with conflict for a request whose Idempotency-Key is still in flight: seconds until it may be retried',
  429: 'seconds until the limit lets this request through',
  503: 'seconds after which a retry may succeed',
}

/** `{ 401: ErrorResponse, … }` for a route's `response` map; documents the codes it can return. */
export function errors<S extends number>(...statuses: S[]): Record<S, typeof ErrorResponse> {
  return Object.fromEntries(
    statuses.map((s) => [
      s,
      t.Composite([ErrorResponse], {
        description: ERROR_DESCRIPTIONS[s],
        // read by @elysiajs/openapi into the response's `headers`; validation ignores it
        ...(RETRY_AFTER[s]
          ? {
              headers: { 'Retry-After': Type.Integer({ minimum: 0, description: RETRY_AFTER[s] }) },
            }
          : {}),
      }),
    ]),
  ) as Record<S, typeof ErrorResponse>
}

/**
 * One error response as an OpenAPI response object, the form @elysiajs/openapi
 * gives the `errors()` entries: for the statuses a global hook answers, which
 * no route's own `response` map lists (api-document.ts).
 */
export function errorResponseObject(status: number) {
  const description = ERROR_DESCRIPTIONS[status]
  const retry = RETRY_AFTER[status]
  return {
    description,
    ...(retry
      ? {
          headers: {
            'Retry-After': { schema: { type: 'integer', minimum: 0, description: retry } },
          },
        }
      : {}),
    content: {
      'application/json': { schema: { ...JSON.parse(JSON.stringify(ErrorResponse)), description } },
    },
  }
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
