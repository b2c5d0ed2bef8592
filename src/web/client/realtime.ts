import { compareIds } from '../../events/ids'
import { session } from './api'
import type { ServerFrame } from './types'

/**
 * The live connection to GET /v1/ws (API.md, WebSocket section).
 *
 * States: stopped ─start─▶ connecting ─ready─▶ live ─close/ping timeout/offline─▶
 * reconnecting (backoff) ─timer/online─▶ connecting … ; 4401 or no token ─▶
 * stopped (signed out); 1008/1009 ─▶ failed (this page broke the protocol:
 * reconnecting would only repeat it, so it asks for a reload).
 * Every (re)connection authenticates in its first message and resumes after the
 * last event id it handled, so a network loss loses no event and repeats none.
 */
export type Connection = 'connecting' | 'live' | 'reconnecting' | 'stopped' | 'failed'

export type RealtimeHandlers = {
  event(name: string, data: Record<string, unknown>): void
  /** Refetch state over REST: first connection, or the server's `resync`. */
  resync(): void
  status(state: Connection): void
  /** The token was refused or expired (close 4401), or there is none any more. */
  unauthorized(): void
}

const BASE_MS = 500
const CAP_MS = 15_000
const PING_EVERY_MS = 20_000
const PONG_WITHIN_MS = 10_000

/** Exponential backoff with "equal jitter": half the step fixed, half random, capped. */
export function backoffMs(attempt: number, random = Math.random()): number {
  const step = Math.min(CAP_MS, BASE_MS * 2 ** attempt)
  return Math.round(step / 2 + (random * step) / 2)
}

export function makeRealtime(on: RealtimeHandlers) {
  let socket: WebSocket | undefined
  let lastId: string | undefined
  let attempt = 0
  let stopped = true
  let drainingServer = false
  let retryTimer: ReturnType<typeof setTimeout> | undefined
  let pingTimer: ReturnType<typeof setInterval> | undefined
  let pongTimer: ReturnType<typeof setTimeout> | undefined

  function connect() {
    clearTimeout(retryTimer)
    if (stopped) return
    const token = session.token()
    if (!token) {
      // signed out meanwhile (another tab): nothing to reconnect with
      stop()
      on.unauthorized()
      return
    }
    const url = new URL('/v1/ws', location.href)
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
    const ws = new WebSocket(url)
    socket = ws
    drainingServer = false
    on.status('connecting')
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token, resumeAfter: lastId }))
    ws.onmessage = (e) => socket === ws && frame(ws, e.data)
    ws.onclose = (e) => socket === ws && dropped(e.code)
  }

  function frame(ws: WebSocket, raw: unknown) {
    clearTimeout(pongTimer)
    let message: ServerFrame
    try {
      message = JSON.parse(String(raw)) as ServerFrame
    } catch {
      return
    }
    switch (message.type) {
      case 'ready':
        attempt = 0
        on.status('live')
        clearInterval(pingTimer)
        pingTimer = setInterval(() => ping(ws), PING_EVERY_MS)
        if (lastId === undefined) on.resync()
        return
      case 'event':
        if (lastId !== undefined && compareIds(message.id, lastId) <= 0) return
        lastId = message.id
        on.event(message.name, message.data ?? {})
        return
      case 'resync':
        on.resync()
        return
      case 'reconnect':
        drainingServer = true
        return
      case 'pong':
        return
    }
  }

  /** A connection that stops answering (a dead network) is given up on, not waited for. */
  function ping(ws: WebSocket) {
    if (ws.readyState !== WebSocket.OPEN) return
    ws.send('{"type":"ping"}')
    clearTimeout(pongTimer)
    pongTimer = setTimeout(() => abandon(), PONG_WITHIN_MS)
  }

  function abandon() {
    const ws = socket
    if (!ws) return
    socket = undefined
    ws.close()
    dropped(1006)
  }

  function dropped(code: number) {
    socket = undefined
    clearInterval(pingTimer)
    clearTimeout(pongTimer)
    if (stopped) return
    if (code === 4401) {
      stop()
      on.unauthorized()
      return
    }
    if (code === 1008 || code === 1009) {
      stop('failed')
      return
    }
    // a draining server (1012) asks everyone to come back: spread them over a second
    const delay = drainingServer || code === 1012 ? Math.random() * 1000 : backoffMs(attempt++)
    on.status('reconnecting')
    clearTimeout(retryTimer)
    retryTimer = setTimeout(connect, delay)
  }

  function stop(state: 'stopped' | 'failed' = 'stopped') {
    stopped = true
    clearTimeout(retryTimer)
    const ws = socket
    socket = undefined
    ws?.close(1000)
    lastId = undefined
    attempt = 0
    on.status(state)
  }

  addEventListener('offline', () => !stopped && socket && abandon())
  addEventListener('online', () => {
    if (stopped || socket) return
    attempt = 0
    connect()
  })

  return {
    start() {
      if (!stopped) return
      stopped = false
      connect()
    },
    stop: () => stop(),
  }
}
