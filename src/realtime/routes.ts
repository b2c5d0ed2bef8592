import type { ServerWebSocket } from 'bun'
import { Elysia } from 'elysia'
import { Forbidden, Unavailable } from '../errors'
import type { Gateway } from './gateway'
import { makeOriginCheck } from './origins'

export type RealtimeDeps = {
  gateway: Gateway
  /** ALLOWED_ORIGINS: browser origins that may open a socket. */
  allowedOrigins: readonly string[]
}

/** Elysia's copy of Bun's socket type predates getBufferedAmount(); the object is Bun's own. */
const bunSocket = (ws: { raw: unknown }) => ws.raw as ServerWebSocket<unknown>

/**
 * GET /v1/ws. The Origin check runs before the upgrade, so a foreign page gets
 * a plain 403 and never a socket. The query string is never read: a token in
 * the URL ends up in proxy logs, so the protocol only accepts it in the first
 * message (and the request log records the route template, not the URL).
 */
export function realtimeRoutes(deps: RealtimeDeps) {
  const originAllowed = makeOriginCheck(deps.allowedOrigins)
  const { gateway } = deps
  return new Elysia({ name: 'realtime' }).ws('/v1/ws', {
    // Elysia would list the upgrade under a `ws` method, which OpenAPI 3 does not have: the
    // document describes it as GET /v1/ws instead (src/http/api-document.ts)
    detail: { hide: true },
    beforeHandle({ request }) {
      if (!originAllowed(request.headers.get('origin')))
        throw new Forbidden('This origin may not open a WebSocket')
      if (!gateway.accepting) throw new Unavailable('This instance is draining; reconnect', 1)
    },
    open: (ws) => gateway.sockets.open(ws.id, bunSocket(ws)),
    message: (ws, message) => gateway.sockets.message(ws.id, message),
    // Elysia hands this one Bun's own socket, whose data carries the same id
    ping: (ws) => gateway.sockets.pinged((ws as unknown as { data: { id: string } }).data.id),
    drain: (ws) => gateway.sockets.writable(ws.id),
    close: (ws, code, reason) => gateway.sockets.closed(ws.id, code, reason),
  })
}
