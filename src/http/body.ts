import { BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed } from '../errors'
import { pathOf } from './url'

/**
 * Reads a body up to `limit` bytes. A declared Content-Length over the limit
 * is refused before a byte is read; a chunked body is cut off as soon as it
 * passes the limit, so an oversized body is never buffered whole.
 */
export async function readLimited(request: Request, limit: number): Promise<Uint8Array> {
  checkDeclaredLength(request, limit)
  if (!request.body) return new Uint8Array()
  const chunks: Uint8Array[] = []
  let size = 0
  const reader = request.body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      await reader.cancel()
      throw new PayloadTooLarge(limit)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks)
}

/** Refuses a declared Content-Length over `limit` before any byte is read. */
export function checkDeclaredLength(request: Request, limit: number) {
  const declared = Number(request.headers.get('content-length') ?? NaN)
  if (declared > limit) throw new PayloadTooLarge(limit)
}

/**
 * The API takes JSON (API.md: "JSON in"). A JSON body is read up to `limit`
 * and parsed (malformed → 400); a route that declares a multipart body in its
 * OpenAPI detail (uploads) takes multipart/form-data instead, read up to its
 * limit too and handed on as its fields. Any other type, multipart on a JSON
 * route, JSON on a multipart one, or a body without Content-Type, is refused
 * with 415 before a byte of it is parsed. Every body the app reads is counted
 * as it arrives, so Bun's own limit (BUN_MAX_REQUEST_BODY) never answers first.
 */
export async function parseBody(
  request: Request,
  contentType: string | null | undefined,
  rule: BodyRule,
  onText: (text: string) => void,
): Promise<unknown> {
  const type = contentType?.split(';')[0]!.trim().toLowerCase()
  if (!type) {
    // no declared type: an empty body is no body; bytes of unknown type are refused
    if ((await readLimited(request, rule.limit)).byteLength === 0) return undefined
    throw new UnsupportedMediaType(expected(rule))
  }
  if (rule.multipart) {
    if (type !== 'multipart/form-data') throw new UnsupportedMediaType(expected(rule))
    return parseMultipart(request, rule.limit)
  }
  if (!isJson(type)) throw new UnsupportedMediaType(expected(rule))
  // JSON is UTF-8 (RFC 8259): a body labelled otherwise would be read as what it is not
  const header = request.headers.get('content-type') ?? ''
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(header)?.[1]?.toLowerCase()
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')
    throw new UnsupportedMediaType('Send JSON as UTF-8 (charset=utf-8, or no charset)')
  // the raw text keeps a leading byte-order mark (a webhook's signature covers the bytes as
  // sent); JSON ignores it, as RFC 8259 allows
  const decoded = new TextDecoder('utf-8', { ignoreBOM: true }).decode(
    await readLimited(request, rule.limit),
  )
  onText(decoded)
  return parseJson(decoded.startsWith('\uFEFF') ? decoded.slice(1) : decoded)
}

/**
 * What a route reads: at most `limit` bytes, as JSON, or as multipart/form-data;
 * `authenticated`: only once its bearer token is checked (app.ts).
 */
export type BodyRule = { limit: number; multipart: boolean; authenticated?: boolean }

const expected = (rule: BodyRule) =>
  rule.multipart
    ? 'Send the body as multipart/form-data'
    : 'Send the body as application/json (with that Content-Type)'

/** More parts than any form of the API has; past it a body is refused before it is looked at. */
export const MAX_FORM_PARTS = 64

/**
 * A multipart body, read up to `limit`, as `{ field: value }` (a repeated
 * field: an array of its values; files are File objects), the shape Elysia
 * gives a `t.Object({ file: t.File() })` body schema. One pass over the
 * parts: a `getAll` per distinct name was quadratic (80,000 one-byte fields,
 * 4.7 MB, held the process for 17 s), and at most MAX_FORM_PARTS of them.
 */
async function parseMultipart(request: Request, limit: number) {
  const bytes = await readLimited(request, limit)
  let form: FormData
  try {
    const headers = { 'content-type': request.headers.get('content-type') ?? '' }
    form = await new Response(bytes as BodyInit, { headers }).formData()
  } catch (error) {
    throw new BadRequest('The multipart body could not be parsed', error)
  }
  const body: Record<string, unknown> = Object.create(null)
  let parts = 0
  for (const [key, value] of form.entries()) {
    if (++parts > MAX_FORM_PARTS)
      throw new BadRequest(`The multipart body has more than ${MAX_FORM_PARTS} parts`)
    const prior = body[key]
    body[key] =
      prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value]
  }
  return { ...body }
}

/** Where a route declares its own body limit: a key of its OpenAPI `detail`, so the document shows it. */
export const BODY_LIMIT_KEY = 'x-max-body-bytes'

/**
 * A route's own body limit, for routes that take more (or less) than
 * MAX_BODY_BYTES, e.g. uploads: `detail: { summary: '…', ...bodyLimit(10 * 2 ** 20) }`.
 * Bodies over it get the JSON 413 before they are read past the limit.
 */
export function bodyLimit(bytes: number) {
  return { [BODY_LIMIT_KEY]: bytes }
}

/**
 * Bun's own limit on a request body (Bun.serve's maxRequestBodySize). Over
 * it Bun answers a bare 413, without our error shape or request id, before
 * the app sees the request; every limit of ours is far below it, and the app
 * counts every body it reads, so this is never the one that answers.
 */
export const BUN_MAX_REQUEST_BODY = 2 ** 40

/**
 * Each route's body rule: its limit, its own (bodyLimit) or the default,
 * MAX_BODY_BYTES; and whether it takes multipart/form-data, which a route says
 * by declaring that content in its OpenAPI detail's requestBody (every other
 * route takes JSON).
 */
export function makeBodyLimits(defaultBytes: number) {
  const byRoute = new Map<string, number>()
  /** Routes without a path parameter, by `METHOD /path`: a request's URL names them before routing. */
  const staticLimits = new Map<string, number>()
  const multipart = new Set<string>()
  /** Routes that take a bearer token (the guards' macros say so in the detail). */
  const authenticated = new Set<string>()
  let largest = defaultBytes
  /** The largest limit of a route with a path parameter: all a URL alone can say of those. */
  let largestWithParams = defaultBytes
  return {
    /** Reads every route's declared limit and body type; called once the app has all its routes. */
    index(routes: readonly { method: string; path: string; hooks?: unknown }[]) {
      for (const r of routes) {
        const detail = (r.hooks as { detail?: RouteDetail } | undefined)?.detail
        const route = `${r.method} ${r.path}`
        if (detail?.requestBody?.content?.['multipart/form-data']) multipart.add(route)
        if (detail?.security?.some((s) => 'bearer' in s)) authenticated.add(route)
        const own = detail?.[BODY_LIMIT_KEY]
        if (typeof own !== 'number') continue
        byRoute.set(route, own)
        if (r.path.includes(':')) largestWithParams = Math.max(largestWithParams, own)
        else staticLimits.set(route, own)
        largest = Math.max(largest, own)
      }
      if (largest >= BUN_MAX_REQUEST_BODY) throw new Error('a route body limit is above Bun’s own')
    },
    of: (method: string, route: string): BodyRule => ({
      limit: byRoute.get(`${method} ${route}`) ?? defaultBytes,
      multipart: multipart.has(`${method} ${route}`),
      authenticated: authenticated.has(`${method} ${route}`),
    }),
    /**
     * Refuses, before routing, a declared Content-Length over the limit of the
     * route the URL names (over the largest limit when the URL alone cannot
     * say, for a path with parameters: parsing refuses it at the route's own).
     */
    checkDeclared(request: Request) {
      const declared = Number(request.headers.get('content-length') ?? NaN)
      if (!(declared > defaultBytes)) return
      // Elysia routes `/v1/uploads/` as `/v1/uploads`: so does the lookup
      const path = pathOf(request.url).replace(/(?<=.)\/+$/, '')
      const own = staticLimits.get(`${request.method} ${path}`)
      checkDeclaredLength(request, own ?? largestWithParams)
    },
  }
}

type RouteDetail = {
  [BODY_LIMIT_KEY]?: unknown
  requestBody?: { content?: Record<string, unknown> }
  security?: Record<string, unknown>[]
}

export function isJson(contentType: string | null | undefined) {
  if (!contentType) return false
  const type = contentType.split(';')[0]!.trim().toLowerCase()
  return type === 'application/json' || type.endsWith('+json')
}

/**
 * Keys that, set to a JSON value (never a function), leave an object with no
 * way to become a string: Elysia's validation error message interpolates the
 * value it found, which then throws a TypeError and the request got a 500
 * (fast-check found `{"prompt":{"toString":0}}`). No field of the API has them.
 */
const UNCONVERTIBLE = new Set(['toString', 'valueOf'])

export function parseJson(text: string): unknown {
  let unconvertible = false
  let value: unknown
  try {
    value = JSON.parse(text, (key, v) => {
      if (UNCONVERTIBLE.has(key)) unconvertible = true
      return v
    })
  } catch (error) {
    throw new BadRequest('The request body is not valid JSON', error)
  }
  if (unconvertible) throw new ValidationFailed(unconvertiblePaths(value, ''))
  return value
}

/** JSON pointers of every toString/valueOf key in `value`. */
function unconvertiblePaths(value: unknown, at: string): { path: string; message: string }[] {
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([key, child]) => {
    const path = `${at}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`
    const here = UNCONVERTIBLE.has(key) ? [{ path, message: 'Not a property of this API' }] : []
    return [...here, ...unconvertiblePaths(child, path)]
  })
}
