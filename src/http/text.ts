import { Type, type IntegerOptions, type StringOptions } from '@sinclair/typebox'

/**
 * The edge's text and number types (API.md, "Text and numbers"). Every
 * schema of a body, query string, path parameter, header we read and
 * WebSocket message uses these instead of `t.String` / `t.Integer`, so a
 * value Postgres cannot store, or a number sent as a string, is a 422 with
 * the field's path before anything reaches SQL.
 *
 * - `SafeString`: no U+0000 (Postgres text and jsonb refuse it, SQLSTATE
 *   22P05/22021) and no unpaired UTF-16 surrogate (not encodable as UTF-8).
 *   A pattern, not a custom format, so the OpenAPI document shows the rule
 *   and a schema may still carry `format: 'uuid'` or `'email'`.
 * - `JsonInteger`: TypeBox's plain integer. Elysia's `t.Integer` also
 *   accepts a string of digits (it is a Transform over `string | integer`),
 *   which a JSON body must not: `"amount": "100"` is not an amount. Query
 *   strings keep Elysia's `t.Integer`/`t.Numeric`, which parse digits.
 */

/**
 * No NUL, no high surrogate without a low one after it, no low surrogate
 * without a high one before it. Written as one lookahead that searches for a
 * violation, not as a loop over code units (`^(?:[^…]|pair)*$`): that form
 * took ~200 ms per MB of text (and ran twice when a field failed: the check,
 * then the error list), so a 1 MB string in a field with a 256-character
 * limit cost the instance 0.6 s of CPU; this one takes ~1–3 ms per MB.
 */
export const SAFE_TEXT_PATTERN =
  '^(?![\\s\\S]*?(?:\\u0000|[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]))'

/** The message a 422 gives for a string that breaks SAFE_TEXT_PATTERN. */
export const SAFE_TEXT_MESSAGE = 'Text must not contain U+0000 or an unpaired surrogate'

const SAFE_TEXT = new RegExp(SAFE_TEXT_PATTERN)

/** True when Postgres can store `s` as text. */
export function isSafeText(s: string): boolean {
  return SAFE_TEXT.test(s)
}

/**
 * A string Postgres can store. A `pattern` of the caller's own must be as
 * strict (an ASCII pattern such as an id's): it replaces this one.
 */
export function SafeString(options: StringOptions = {}) {
  return Type.String({ pattern: SAFE_TEXT_PATTERN, ...options })
}

/**
 * An integer that is a JSON number, never a string of digits: in bodies and
 * WebSocket messages, and in every response (Elysia's `t.Integer` also takes a
 * numeric string, for query strings, and so shows in OpenAPI as
 * `anyOf [string, integer]`).
 */
export function JsonInteger(options: IntegerOptions = {}) {
  return Type.Integer(options)
}
