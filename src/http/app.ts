import { openapi } from '@elysiajs/openapi'
import { Elysia, type AnyElysia } from 'elysia'
import type { Logger } from 'pino'
import type { Lifecycle } from '../lifecycle/lifecycle'
import type { Metrics } from '../obs/metrics'
import { makeBodyLimits, parseBody } from './body'
import { DOCS_SCALAR_OPTIONS, docsRoutes } from './docs-routes'
import { renderError } from './errors'
import type { Guards } from './guards'
import { FlyReplay, type RegionEdge } from './region'
import { contextOf, openContext } from './request-context'

/**
 * The Elysia app: global hooks (request id, body limit and JSON parsing,
 * error mapping, one log line and one histogram sample per request), the
 * OpenAPI document, and the rooms' route plugins. No SQL and no rules here.
 */
export type AppDeps = {
  log: Logger
  metrics: Metrics
  lifecycle: Lifecycle
  guards: Guards
  version: string
  maxBodyBytes: number
  /** Fly.io multi-region: replays writes (and a writer's reads) to the primary region. */
  region?: RegionEdge
  /** Public routes and authenticated routes of each room. */
  routes: AnyElysia[]
  /** Mounted under /v1/admin behind the admin guard. */
  adminRoutes: AnyElysia[]
  /**
   * Called once per response, after it is sent, with its method, URL and final
   * status: also for a request answered before routing (e.g. a 413 on a
   * declared Content-Length), which no route's own hook sees.
   */
  responseObservers?: ((r: { method: string; url: string; status: number }) => void)[]
}

export function createApp(deps: AppDeps) {
  const { log, lifecycle } = deps
  // MAX_BODY_BYTES, or a route's own (bodyLimit() in its detail); read once the routes are in
  const limits = makeBodyLimits(deps.maxBodyBytes)
  // the hooks come first: Elysia applies onAfterResponse only to routes added after it, and
  // the OpenAPI document's route must end its request like any other (or a drain waits for it)
  const app = new Elysia()
    .onRequest(({ request, set }) => {
      lifecycle.requestStarted()
      const ctx = openContext(request)
      set.headers['x-request-id'] = ctx.id
      // before the body's size is judged or a byte of it read: a write outside the
      // primary region is answered at once (FlyReplay, rendered by onError)
      deps.region?.(request, set)
      limits.checkDeclared(request)
    })
    .onParse(({ request, contentType, route }) =>
      parseBody(request, contentType, limits.of(request.method, route), (text) => {
        contextOf(request).rawBody = text
      }),
    )
    .onError(({ code, error, request, set }) => {
      if (error instanceof FlyReplay) return error.respond(set)
      const rendered = renderError(code, error, contextOf(request).id, log)
      set.status = rendered.status
      Object.assign(set.headers, rendered.headers, { 'content-type': 'application/json' })
      return rendered.body
    })
    .onAfterResponse(({ request, route, set }) => {
      lifecycle.requestEnded()
      observeResponse(deps, request, route, typeof set.status === 'number' ? set.status : 200)
    })
    .use(apiDocument(deps.version))
    .use(docsRoutes('/openapi'))
    .use((app) => deps.routes.reduce<AnyElysia>((a, r) => a.use(r), app) as typeof app)
    .group('/v1/admin', (admin) =>
      admin
        .use(deps.guards)
        .guard(
          { admin: true },
          (g) => deps.adminRoutes.reduce<AnyElysia>((a, r) => a.use(r), g) as typeof g,
        ),
    )
  limits.index(app.routes)
  return app
}

export type App = ReturnType<typeof createApp>

/** One histogram sample, the response observers, one log line: per response, once it is sent. */
function observeResponse(deps: AppDeps, request: Request, route: string, status: number) {
  const ctx = contextOf(request)
  const ms = performance.now() - ctx.startedAt
  const template = route || 'unmatched'
  deps.metrics.httpDuration.observe({ method: request.method, route: template, status }, ms / 1000)
  // the raw URL: an observer parses it only for the responses it counts
  for (const observe of deps.responseObservers ?? [])
    observe({ method: request.method, url: request.url, status })
  deps.log.info(
    {
      method: request.method,
      route: template,
      status,
      ms: Math.round(ms * 10) / 10,
      requestId: ctx.id,
      userId: ctx.userId,
    },
    'request',
  )
}

/** The OpenAPI document at /openapi/json and its page at /openapi (docs-routes.ts serves the page's bundle). */
function apiDocument(version: string) {
  return openapi({
    path: '/openapi',
    specPath: '/openapi/json',
    // the pinned bundle, served by docsRoutes: no CDN, no @latest
    scalar: DOCS_SCALAR_OPTIONS,
    documentation: {
      info: {
        title: 'Atelier',
        version,
        description: API_DESCRIPTION,
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description:
              "A token must name a user that exists (401 otherwise; a deleted user's tokens stop within 30 s); the role that counts is the user record's, not the token's claim. With JWKS_URL, the provider's (issuer, subject) is mapped to a local user created on first sight.",
          },
        },
      },
    },
  })
}

const API_DESCRIPTION =
  'Credit-metered image generation: REST API. Errors use one shape: { error: { code, message, requestId, details? } }.' +
  " Regions (Fly.io, with PRIMARY_REGION set): outside the primary region every request whose method is not GET, HEAD or OPTIONS is answered, before its body is read, with an empty 409 and the header `fly-replay: region=<primary>` (Fly replays it there; bodies over 1 MB cannot be replayed, so send uploads with `fly-prefer-region: <primary>`); a write that already carries `fly-replay-src` gets 503 `unavailable` with Retry-After. The primary answers writes with the cookie `atelier_last_write=<epoch ms>`; for READ_YOUR_WRITES_MS (default 5 s) after it, that client's /v1 reads (not the WebSocket) are replayed to the primary too."
