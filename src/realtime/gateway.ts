import type { Logger } from 'pino'
import type { EventLog } from '../events/event'
import type { Metrics } from '../obs/metrics'
import type { Authenticator } from '../users/principals'
import { bunSocketSettings, makeUserSocketCounts, type Connection } from './connection'
import { makeAdmission } from './admission'
import { makeDelivery, type Delivery } from './delivery'
import { gatewayMetrics, type GatewayMetrics } from './gateway-metrics'
import { Close, frames } from './messages'
import { makeSocketCallbacks } from './socket-callbacks'
import { makeSocketIo, markClosing, type SocketIo } from './socket-io'

/**
 * The WebSocket gateway of API.md: first-message auth, live events from the
 * event log, resume without gap or duplicate, ping/pong, limits, drain.
 * Connection states are in connection.ts.
 *
 * Gateway states: accepting ──drain()──▶ draining (every socket told to
 * reconnect and closed with 1012; new ones refused) ──close()──▶ closed
 * (whatever is left terminated, every timer stopped).
 *
 * Ordering: a socket subscribes to the user's live tail BEFORE it reads the
 * log for a replay, and buffers live events meanwhile; the buffer is flushed
 * after the replay minus the ids already sent. The tail delivers every event
 * appended after subscribe(), and the replay every event up to its read, so
 * their union has no gap, and the id comparison removes the overlap.
 *
 * The parts, each over the same map of connections: socket-io.ts (send,
 * close, release), socket-callbacks.ts (Bun's callbacks, client messages),
 * admission.ts (auth), delivery.ts (live events; live frames wait for the end
 * of their turn of the event loop and go out together, live-frames.ts;
 * replays and catch-up reads are in replay.ts).
 */

export type GatewayDeps = {
  events: EventLog
  /** Resolves a token to the user record it names (4401 when there is none). */
  tokens: Pick<Authenticator, 'verify'>
  instanceId: string
  log: Logger
  metrics?: Metrics
  /** Time for the auth message (default 5000 ms, API.md). */
  authTimeoutMs?: number
  /** Messages per second per socket before 1008, protocol pings included (default 20, API.md). */
  maxMessagesPerSecond?: number
  /** Authenticated sockets per user on this instance; the next closes with 1008 (default 32). */
  maxSocketsPerUser?: number
  /** Bytes queued to one socket before it is closed with 1013 (default 1 MiB). */
  sendBufferBytes?: number
  /** How long drain() waits for clients to close before terminating them (default 3000 ms). */
  drainGraceMs?: number
  /** Events per log read during a replay (default 256). */
  replayPage?: number
  /** The clock token expiries are timed by (default Date.now; tests move it). */
  now?: () => number
}

export type Gateway = ReturnType<typeof makeGateway>

type GatewayState = 'accepting' | 'draining' | 'closed'

export function makeGateway(deps: GatewayDeps) {
  const { events, log } = deps
  const sendBufferBytes = deps.sendBufferBytes ?? 1024 * 1024
  const perUser = makeUserSocketCounts(deps.maxSocketsPerUser ?? 32)
  const conns = new Map<string, Connection>()
  let state: GatewayState = 'accepting'
  const accepting = () => state === 'accepting'

  const metrics = gatewayMetrics(deps.metrics, () => conns.size)
  const io = makeSocketIo({ log, perUser, sendBufferBytes })
  const delivery = makeDelivery({ events, log, replayPage: deps.replayPage ?? 256, io, metrics })
  const { authenticate } = makeAdmission({
    tokens: deps.tokens,
    events,
    instanceId: deps.instanceId,
    log,
    now: deps.now ?? Date.now,
    perUser,
    io,
    delivery,
    accepting,
  })
  const sockets = makeSocketCallbacks({
    conns,
    log,
    io,
    delivery,
    authenticate,
    accepting,
    authTimeoutMs: deps.authTimeoutMs ?? 5000,
    maxMessagesPerSecond: deps.maxMessagesPerSecond ?? 20,
    closes: metrics.closes,
  })
  const parts = { conns, log, io, delivery, metrics }

  return {
    websocket: bunSocketSettings(sendBufferBytes),
    sockets,

    get accepting() {
      return accepting()
    },

    connections: () => conns.size,

    /** Drain stage: every socket is told to reconnect elsewhere and closed with 1012. */
    async drain() {
      if (state === 'accepting') state = 'draining'
      await drainSockets(parts, deps.drainGraceMs ?? 3000)
    },

    /**
     * Stops everything this gateway started. Sockets still open get `reconnect`
     * and 1012 (as in drain, without waiting); those already closing are terminated.
     */
    async close() {
      state = 'closed'
      closeSockets(parts)
    },
  }
}

type Parts = {
  conns: Map<string, Connection>
  log: Logger
  io: SocketIo
  delivery: Delivery
  metrics: GatewayMetrics
}

async function drainSockets({ conns, log, io, delivery }: Parts, graceMs: number) {
  const open = [...conns.values()]
  log.info({ sockets: open.length }, 'closing sockets for drain')
  delivery.live.flush()
  for (const conn of open) {
    if (conn.state !== 'closing') io.send(conn, frames.reconnect)
    io.closeWith(conn, Close.draining)
  }
  let timer: ReturnType<typeof setTimeout> | undefined
  await Promise.race([
    Promise.all(open.map((c) => c.closed)),
    new Promise<void>((r) => (timer = setTimeout(r, graceMs))),
  ])
  clearTimeout(timer)
  for (const conn of open) if (conns.has(conn.id)) conn.socket.terminate()
}

function closeSockets({ conns, io, delivery, metrics }: Parts) {
  delivery.live.clear()
  for (const conn of conns.values()) {
    io.release(conn)
    if (conn.state === 'closing') conn.socket.terminate()
    else {
      // the drain stage never reached it (the budget ran out before): it is still
      // told to reconnect and resume, not cut off
      io.send(conn, frames.reconnect)
      markClosing(conn, Close.draining)
      conn.socket.close(Close.draining.code, Close.draining.reason)
    }
    // Bun's close callback will not find it any more
    metrics.closes?.inc({ code: String(conn.closedWith?.code ?? 1006) })
    conn.markClosed()
  }
  conns.clear()
}
