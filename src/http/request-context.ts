/**
 * Per-request facts that every hook needs (id, start time, the raw body, the
 * authenticated user), kept beside the Request rather than in globals.
 */
export type RequestContext = {
  id: string
  startedAt: number
  rawBody?: string
  userId?: string
}

const contexts = new WeakMap<Request, RequestContext>()

/** A caller's X-Request-Id is kept when it is a sane token; otherwise we mint one. */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/

export function openContext(request: Request): RequestContext {
  const given = request.headers.get('x-request-id')
  const ctx = {
    id: given && SANE_ID.test(given) ? given : Bun.randomUUIDv7(),
    startedAt: performance.now(),
  }
  contexts.set(request, ctx)
  return ctx
}

export function contextOf(request: Request): RequestContext {
  return contexts.get(request) ?? openContext(request)
}
