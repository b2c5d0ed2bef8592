import { openapi } from '@elysiajs/openapi'
import { Elysia } from 'elysia'
import { DOCS_SCALAR_OPTIONS } from './docs-routes'
import { errorResponseObject } from './schemas'

/**
 * The OpenAPI document at /openapi/json and its page at /openapi
 * (docs-routes.ts serves the page's bundle). @elysiajs/openapi builds it from
 * the routes; `index` then lets it say what the app's global hooks do, which
 * no route declares:
 * - a body schema is JSON (`application/json`): the app's own parser
 *   (body.ts) leaves the plugin unable to tell, so it lists no media type;
 * - every route but GET's can answer 400 (malformed), 413 and 415 (body.ts);
 * - every /v1 route can answer 503 `unavailable` (a dependency down);
 * - a route's `detail.responses` adds responses its response schemas cannot
 *   express (image bytes, Prometheus text), which the plugin would replace.
 */
export function makeApiDocument(version: string) {
  let routes: readonly RouteLike[] = []
  const completed = new WeakMap<object, unknown>()
  const plugin = new Elysia({ name: 'api-document' })
    .onAfterHandle(({ route, responseValue }) => {
      if (route !== SPEC_PATH || !responseValue || typeof responseValue !== 'object') return
      // the plugin hands out one cached document while the routes stay the same
      let doc = completed.get(responseValue)
      if (!doc) completed.set(responseValue, (doc = complete(responseValue as Doc, routes)))
      return doc
    })
    .use(
      openapi({
        path: '/openapi',
        specPath: SPEC_PATH,
        // the pinned bundle, served by docsRoutes: no CDN, no @latest
        scalar: DOCS_SCALAR_OPTIONS,
        documentation: {
          info: { title: 'Atelier', version, description: API_DESCRIPTION },
          components: { securitySchemes: { bearer: BEARER } },
        },
      }),
    )
  return {
    plugin,
    /** Reads every route's body schema and detail; called once the app has all its routes. */
    index(all: readonly RouteLike[]) {
      routes = all
    },
  }
}

const SPEC_PATH = '/openapi/json'
const BODILESS = new Set(['GET', 'HEAD', 'OPTIONS'])

type RouteLike = { method: string; path: string; hooks?: unknown }
type Hooks = { body?: unknown; detail?: { hide?: boolean; responses?: Record<string, unknown> } }
type Operation = {
  requestBody?: { content?: Record<string, unknown> }
  responses?: Record<string, unknown>
}
type Doc = { paths: Record<string, Record<string, Operation>> }

/** A copy of `doc` with what the global hooks do added to each operation (see makeApiDocument). */
function complete(doc: Doc, routes: readonly RouteLike[]): Doc {
  const paths: Doc['paths'] = structuredClone(doc.paths)
  for (const route of routes) {
    const hooks = (route.hooks ?? {}) as Hooks
    const path = route.path.replace(/:([^/]+)/g, '{$1}')
    const op = paths[path]?.[route.method.toLowerCase()]
    if (!op || hooks.detail?.hide) continue
    const responses = (op.responses ??= {})
    for (const [status, response] of Object.entries(hooks.detail?.responses ?? {}))
      responses[status] ??= response
    const content = op.requestBody && (op.requestBody.content ??= {})
    if (content && Object.keys(content).length === 0 && hooks.body)
      content['application/json'] = { schema: plainSchema(hooks.body) }
    // the parser reads the body of every method but these (body.ts), declared or not
    if (!BODILESS.has(route.method))
      for (const status of [400, 413, 415]) responses[status] ??= errorResponseObject(status)
    if (route.path.startsWith('/v1/')) responses[503] ??= errorResponseObject(503)
  }
  // the socket's route is an upgrade, which Elysia lists under no OpenAPI method
  if (routes.some((r) => r.path === WS_PATH)) paths[WS_PATH] ??= { get: WS_OPERATION }
  return { ...doc, paths }
}

const WS_PATH = '/v1/ws'

/** GET /v1/ws as OpenAPI can say it: the upgrade and its refusals; the protocol in words. */
const WS_OPERATION: Operation & Record<string, unknown> = {
  tags: ['realtime'],
  summary: 'WebSocket: live events of the caller, resumable (upgrade with Connection: Upgrade)',
  description: [
    'The token is never in the URL (ignored there): the first message, within 5 s, is',
    '`{ "type": "auth", "token": "<JWT>", "resumeAfter": "<event id>"? }`; otherwise the socket',
    'closes with 4401 (no or bad token) or 4408 (timeout). The server answers',
    '`{ "type": "ready", "userId", "instance" }`, then every event after `resumeAfter` in order',
    '(first `{ "type": "resync" }` when that id is no longer retained or out of range; an id that',
    'is no event id closes with 1008), then live events',
    '`{ "type": "event", "id", "name", "data" }` with strictly increasing ids. Client messages after',
    'auth: `{ "type": "ping" }` → `{ "type": "pong" }`, `{ "type": "resume", "after": "<id>" }`;',
    'anything else, a message over 4 KiB or more than 20 messages a second closes with 1008 or',
    '1009; at most WS_MAX_SOCKETS_PER_USER sockets per user per instance (1008 past it). A',
    'client too slow for its events is closed with 1013 and resumes; a draining instance sends',
    '`{ "type": "reconnect" }` and closes with 1012.',
  ].join(' '),
  responses: {
    101: {
      description: 'Switching Protocols: the socket is open; authenticate with the first message',
    },
    403: {
      ...errorResponseObject(403),
      description: 'The Origin is neither absent nor one of ALLOWED_ORIGINS',
    },
    404: {
      ...errorResponseObject(404),
      description: 'Not a WebSocket upgrade: this path answers upgrades only',
    },
    503: { ...errorResponseObject(503), description: 'This instance is draining: connect again' },
  },
}

/** A TypeBox schema as the JSON Schema it is, without its symbol-keyed bookkeeping. */
const plainSchema = (schema: unknown): unknown => JSON.parse(JSON.stringify(schema))

const BEARER = {
  type: 'http' as const,
  scheme: 'bearer',
  bearerFormat: 'JWT',
  description:
    "A token must name a user that exists (401 otherwise; a deleted user's tokens stop within 30 s); the role that counts is the user record's, not the token's claim. With JWKS_URL, the provider's (issuer, subject) is mapped to a local user created on first sight.",
}

const API_DESCRIPTION =
  'Credit-metered image generation: REST API. Errors use one shape: { error: { code, message, requestId, details? } }.' +
  " Regions (Fly.io, with PRIMARY_REGION set): outside the primary region every request whose method is not GET, HEAD or OPTIONS is answered, before its body is read, with an empty 409 and the header `fly-replay: region=<primary>` (Fly replays it there; bodies over 1 MB cannot be replayed, so send uploads with `fly-prefer-region: <primary>`); a write that already carries `fly-replay-src` gets 503 `unavailable` with Retry-After. The primary answers writes with the cookie `atelier_last_write=<epoch ms>`; for READ_YOUR_WRITES_MS (default 5 s) after it, that client's /v1 reads (not the WebSocket) are replayed to the primary too."
