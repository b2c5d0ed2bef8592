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
 * stop() clears every timer it started and closes the socket.
 */
export type Connection = 'connecting' | 'live' | 'reconnecting' | 'stopped' | 'failed'

export type RealtimeDeps = {
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

/** One live connection's state, which the functions below move through. */
type Live = {
  on: RealtimeDeps
  socket: WebSocket | undefined
  lastId: string | undefined
  attempt: number
  stopped: boolean
  /** The server said `reconnect` (it drains): come back within a second, not on the backoff. */
  drainingServer: boolean
  retryTimer: ReturnType<typeof setTimeout> | undefined
  pingTimer: ReturnType<typeof setInterval> | undefined
  pongTimer: ReturnType<typeof setTimeout> | undefined
}

export function makeRealtime(deps: RealtimeDeps) {
  const r: Live = {
    on: deps,
    socket: undefined,
    lastId: undefined,
    attempt: 0,
    stopped: true,
    drainingServer: false,
    retryTimer: undefined,
    pingTimer: undefined,
    pongTimer: undefined,
  }
  addEventListener('offline', () => !r.stopped && r.socket && abandon(r))
  addEventListener('online', () => {
    if (r.stopped || r.socket) return
    r.attempt = 0
    connect(r)
  })

  return {
    start() {
      if (!r.stopped) return
      r.stopped = false
      connect(r)
    },
    stop: () => stop(r),
  }
}

function connect(r: Live) {
  clearTimeout(r.retryTimer)
  if (r.stopped) return
  const token = session.token()
  if (!token) {
    // signed out meanwhile (another tab): nothing to reconnect with
    stop(r)
    r.on.unauthorized()
    return
  }
  const url = new URL('/v1/ws', location.href)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  const ws = new WebSocket(url)
  r.socket = ws
  r.drainingServer = false
  r.on.status('connecting')
  ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token, resumeAfter: r.lastId }))
  ws.onmessage = (e) => r.socket === ws && frame(r, ws, e.data)
  ws.onclose = (e) => r.socket === ws && dropped(r, e.code)
}

function frame(r: Live, ws: WebSocket, raw: unknown) {
  clearTimeout(r.pongTimer)
  let message: ServerFrame
  try {
    message = JSON.parse(String(raw)) as ServerFrame
  } catch {
    return
  }
  switch (message.type) {
    case 'ready':
      r.attempt = 0
      r.on.status('live')
      clearInterval(r.pingTimer)
      r.pingTimer = setInterval(() => ping(r, ws), PING_EVERY_MS)
      if (r.lastId === undefined) r.on.resync()
      return
    case 'event':
      if (r.lastId !== undefined && compareIds(message.id, r.lastId) <= 0) return
      r.lastId = message.id
      r.on.event(message.name, message.data ?? {})
      return
    case 'resync':
      r.on.resync()
      return
    case 'reconnect':
      r.drainingServer = true
      return
    case 'pong':
      return
  }
}

/** A connection that stops answering (a dead network) is given up on, not waited for. */
function ping(r: Live, ws: WebSocket) {
  if (ws.readyState !== WebSocket.OPEN) return
  ws.send('{"type":"ping"}')
  clearTimeout(r.pongTimer)
  r.pongTimer = setTimeout(() => abandon(r), PONG_WITHIN_MS)
}

function abandon(r: Live) {
  const ws = r.socket
  if (!ws) return
  r.socket = undefined
  ws.close()
  dropped(r, 1006)
}

function dropped(r: Live, code: number) {
  r.socket = undefined
  clearInterval(r.pingTimer)
  clearTimeout(r.pongTimer)
  if (r.stopped) return
  if (code === 4401) {
    stop(r)
    r.on.unauthorized()
    return
  }
  if (code === 1008 || code === 1009) {
    stop(r, 'failed')
    return
  }
  // a draining server (1012) asks everyone to come back: spread them over a second
  const delay = r.drainingServer || code === 1012 ? Math.random() * 1000 : backoffMs(r.attempt++)
  r.on.status('reconnecting')
  clearTimeout(r.retryTimer)
  r.retryTimer = setTimeout(() => connect(r), delay)
}

function stop(r: Live, state: 'stopped' | 'failed' = 'stopped') {
  r.stopped = true
  clearTimeout(r.retryTimer)
  clearInterval(r.pingTimer)
  clearTimeout(r.pongTimer)
  const ws = r.socket
  r.socket = undefined
  ws?.close(1000)
  r.lastId = undefined
  r.attempt = 0
  r.on.status(state)
}
