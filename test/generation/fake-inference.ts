import type { Server } from 'bun'

/**
 * A fake inference provider: a real HTTP server on 127.0.0.1, port 0. Each
 * test sets `respond`; the server counts requests and concurrent requests,
 * and keeps what it was sent.
 */
export type FakeInference = Awaited<ReturnType<typeof startFakeInference>>

export async function startFakeInference() {
  const state = {
    requests: 0,
    inFlight: 0,
    maxInFlight: 0,
    received: [] as Array<{ headers: Headers; body: unknown }>,
    respond: (_req: Request): Response | Promise<Response> =>
      new Response('unset', { status: 500 }),
  }
  const inFlightWaiters: Array<{ count: number; resolve: () => void }> = []
  const server: Server<undefined> = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      state.requests++
      state.inFlight++
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight)
      for (const w of inFlightWaiters.splice(0))
        if (state.inFlight >= w.count) w.resolve()
        else inFlightWaiters.push(w)
      try {
        state.received.push({ headers: req.headers, body: await req.json() })
        return await state.respond(req)
      } finally {
        state.inFlight--
      }
    },
  })
  return Object.assign(state, {
    url: `http://127.0.0.1:${server.port}/render`,
    /** Resolves once `count` requests are being handled at the same time; fails after `timeoutMs`. */
    whenInFlight(count: number, timeoutMs = 10_000) {
      if (state.inFlight >= count) return Promise.resolve()
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `timed out waiting for ${count} requests in flight (${state.inFlight} now)`,
              ),
            ),
          timeoutMs,
        )
        inFlightWaiters.push({
          count,
          resolve: () => {
            clearTimeout(timer)
            resolve()
          },
        })
      })
    },
    reset() {
      state.requests = 0
      state.maxInFlight = 0
      state.received = []
    },
    stop: () => server.stop(true),
  })
}

/** A response that waits until the client goes away (for timeouts and aborts). */
export function hang(req: Request): Promise<Response> {
  return new Promise((resolve) =>
    req.signal.addEventListener('abort', () => resolve(new Response(null, { status: 499 }))),
  )
}

export function imageResponse(bytes: Uint8Array, type = 'image/png', init: ResponseInit = {}) {
  return new Response(bytes.slice(), {
    ...init,
    headers: { 'content-type': type, ...init.headers },
  })
}
