import { Elysia, type AnyElysia } from 'elysia'
import type { Logger } from 'pino'
import type { Lifecycle } from '../lifecycle/lifecycle'
import type { Metrics } from '../obs/metrics'
import { makeBodyLimits, parseBody } from './body'
import { makeApiDocument } from './api-document'
import { docsRoutes } from './docs-routes'
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

/** The admin group: every route under it is behind the admin guard. */
const ADMIN_PREFIX = '/v1/admin'

export function createApp(deps: AppDeps) {
  const { log, lifecycle } = deps
  // MAX_BODY_BYTES, or a route's own (bodyLimit() in its detail); read once the routes are in
  const limits = makeBodyLimits(deps.maxBodyBytes)
  const document = makeApiDocument(deps.version)
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
    .onParse(async ({ request, contentType, route }) => {
      const rule = limits.of(request.method, route)
      // the token before the body: nobody without one makes us read (or buffer) a byte of it,
      // and on the admin group nobody but an admin (a 403 there, not a 400 for a bad body)
      if (route.startsWith(`${ADMIN_PREFIX}/`)) await deps.guards.authorize(request)
      else if (rule.authenticated) await deps.guards.authenticate(request)
      return parseBody(request, contentType, rule, (text) => {
        contextOf(request).rawBody = text
      })
    })
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
    .use(document.plugin)
    .use(docsRoutes('/openapi'))
    .use((app) => deps.routes.reduce<AnyElysia>((a, r) => a.use(r), app) as typeof app)
    .group(ADMIN_PREFIX, (admin) =>
      admin
        .use(deps.guards)
        .guard(
          { admin: true },
          (g) => deps.adminRoutes.reduce<AnyElysia>((a, r) => a.use(r), g) as typeof g,
        ),
    )
  limits.index(app.routes)
  document.index(app.routes)
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
