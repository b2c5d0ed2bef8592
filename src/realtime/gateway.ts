import type { Logger } from 'pino'
import { Unauthorized, toError } from '../errors'
import type { Event, EventLog } from '../events/event'
import { compareIds, isEventId, isNextId } from '../events/ids'
import type { Metrics } from '../obs/metrics'
import type { Authenticator } from '../users/principals'
import {
  MAX_TIMER_MS,
  bunSocketSettings,
  isFlooding,
  makeConnection,
  makeUserSocketCounts,
  type Connection,
  type Socket,
} from './connection'
import { gatewayMetrics } from './gateway-metrics'
import { makeLiveFrames, type SendResult } from './live-frames'
import { Close, frames, parseClientMessage, type CloseReason } from './messages'
import { about, makeReplayer } from './replay'

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
 * Live frames wait for the end of their turn of the event loop and go out
 * together (live-frames.ts); replays and catch-up reads are in replay.ts.
 */

export type GatewayOptions = {
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

/** Live events a socket may buffer during its replay before it counts as too slow. */
const MAX_REPLAY_BUFFER = 10_000

export function makeGateway(options: GatewayOptions) {
  const { events, tokens, instanceId, log } = options
  const authTimeoutMs = options.authTimeoutMs ?? 5000
  const rate = options.maxMessagesPerSecond ?? 20
  const sendBufferBytes = options.sendBufferBytes ?? 1024 * 1024
  const drainGraceMs = options.drainGraceMs ?? 3000
  const replayPage = options.replayPage ?? 256
  const now = options.now ?? Date.now
  const maxSocketsPerUser = options.maxSocketsPerUser ?? 32
  const perUser = makeUserSocketCounts(maxSocketsPerUser)
  const conns = new Map<string, Connection>()
  let state: 'accepting' | 'draining' | 'closed' = 'accepting'

  const { deliveredLive, deliveredReplay, latency, closes, catchUps } = gatewayMetrics(
    options.metrics,
    () => conns.size,
  )

  const websocket = bunSocketSettings(sendBufferBytes)

  /** The one place a socket becomes `closing`, remembering why (Bun may report 1006). */
  function markClosing(conn: Connection, why?: CloseReason) {
    conn.state = 'closing'
    if (why) conn.closedWith = why
  }

  function closeWith(conn: Connection, why: CloseReason) {
    if (conn.state === 'closing') return
    markClosing(conn, why)
    release(conn)
    log.debug({ ...about(conn), code: why.code, reason: why.reason }, 'closing socket')
    conn.socket.close(why.code, why.reason)
  }

  function release(conn: Connection) {
    if (conn.counted) {
      conn.counted = false
      perUser.give(conn.userId!)
    }
    clearTimeout(conn.authTimer)
    clearTimeout(conn.expiryTimer)
    clearTimeout(conn.retryTimer)
    conn.retryWake?.()
    conn.unsubscribe?.()
    conn.unsubscribe = undefined
    conn.replayBuffer = undefined
    conn.drained?.()
  }

  /** Sends one frame; a socket that cannot keep up is closed (and resumes), never skipped. */
  function send(conn: Connection, frame: string, flowControlled = false): SendResult {
    if (conn.state === 'closing') return 'closed'
    const status = conn.socket.send(frame)
    if (status > 0) return 'sent'
    if (status === 0 || (!flowControlled && conn.socket.getBufferedAmount() > sendBufferBytes)) {
      closeWith(conn, Close.slowConsumer)
      return 'closed'
    }
    return 'backpressure'
  }

  const live = makeLiveFrames({
    send: (conn, frame) => send(conn, frame),
    sent(at, now) {
      deliveredLive?.inc()
      latency?.observe(Math.max(0, now - at) / 1000)
    },
  })
  const replays = makeReplayer({
    events,
    log,
    page: replayPage,
    send,
    flushWaiting: (conn) => live.flush(conn),
    deliver: deliverLive,
    fail: (conn) => closeWith(conn, Close.internal),
    replayed: deliveredReplay,
    caughtUp: catchUps,
  })

  function deliverLive(conn: Connection, event: Event) {
    if (conn.replayBuffer) {
      conn.replayBuffer.push(event)
      if (conn.replayBuffer.length > MAX_REPLAY_BUFFER) closeWith(conn, Close.slowConsumer)
      return
    }
    if (conn.lastId !== undefined) {
      if (compareIds(event.id, conn.lastId) <= 0) return
      // once per position: a read from there that brought nothing new (a log that
      // lost entries) must not loop; the event goes out after it as it is
      if (!isNextId(conn.lastId, event.id) && conn.caughtUpFrom !== conn.lastId)
        return replays.catchUp(conn, event)
    }
    conn.lastId = event.id
    live.push(conn, frames.event(event), event.at)
  }

  function onLiveEvent(conn: Connection, event: Event) {
    if (conn.state === 'live') deliverLive(conn, event)
  }

  function armExpiry(conn: Connection, expiresAt: number) {
    const left = expiresAt - now()
    if (left <= 0) return closeWith(conn, Close.tokenExpired)
    conn.expiryTimer = setTimeout(() => armExpiry(conn, expiresAt), Math.min(left, MAX_TIMER_MS))
  }

  async function authenticate(conn: Connection, token: string, resumeAfter?: string) {
    let principal
    try {
      // the 5 s to authenticate include the verification (a JWKS fetch can be slow)
      principal = await tokens.verify(token)
    } catch (error) {
      if (!(error instanceof Unauthorized)) throw error
      return closeWith(conn, Close.unauthorized)
    }
    if (conn.state !== 'authenticating') return
    clearTimeout(conn.authTimer)
    // a good token with a resumeAfter that is no event id at all: 1008 (API.md), not 4401
    if (resumeAfter !== undefined && !isEventId(resumeAfter))
      return closeWith(conn, Close.invalidMessage)
    if (state !== 'accepting') return closeWith(conn, Close.draining)
    const { userId } = principal
    conn.userId = userId
    if (!perUser.take(userId)) return closeWith(conn, Close.tooManySockets)
    conn.counted = true
    conn.state = 'live'
    armExpiry(conn, principal.expiresAt)
    if (conn.state !== 'live') return
    // subscribe first: from here every new event reaches the socket or its replay buffer
    if (resumeAfter !== undefined) conn.replayBuffer = []
    conn.unsubscribe = events.subscribe(userId, (event) => onLiveEvent(conn, event))
    if (send(conn, frames.ready(userId, instanceId)) === 'closed') return
    log.debug({ ...about(conn), resumeAfter }, 'socket authenticated')
    if (resumeAfter !== undefined) await replays.replay(conn, resumeAfter)
  }

  async function handle(conn: Connection, raw: unknown) {
    if (conn.state === 'closing') return
    const message = parseClientMessage(raw)
    if (conn.state === 'authenticating') {
      if (message?.type !== 'auth') return closeWith(conn, Close.unauthorized)
      return authenticate(conn, message.token, message.resumeAfter)
    }
    switch (message?.type) {
      case 'ping':
        return void send(conn, frames.pong)
      case 'resume':
        return replays.replay(conn, message.after)
      default:
        // a second auth, an unknown type, or not a message at all
        return closeWith(conn, Close.invalidMessage)
    }
  }

  /** Bun's callbacks for one socket, by the id Elysia keeps in ws.data. */
  const sockets = {
    open(id: string, socket: Socket) {
      const conn = makeConnection(id, socket)
      conns.set(id, conn)
      if (state !== 'accepting') {
        send(conn, frames.reconnect)
        return closeWith(conn, Close.draining)
      }
      conn.authTimer = setTimeout(() => closeWith(conn, Close.authTimeout), authTimeoutMs)
    },

    /** A protocol-level ping from the client: it counts like a message (Bun answers it). */
    pinged(id: string) {
      const conn = conns.get(id)
      if (!conn || conn.state === 'closing') return
      if (isFlooding(conn, rate, performance.now())) closeWith(conn, Close.rateLimited)
    },

    message(id: string, raw: unknown) {
      const conn = conns.get(id)
      if (!conn || conn.state === 'closing') return
      if (isFlooding(conn, rate, performance.now())) return closeWith(conn, Close.rateLimited)
      conn.queue = conn.queue
        .then(() => handle(conn, raw))
        .catch((error) => {
          log.error({ ...about(conn), err: toError(error) }, 'socket message failed')
          closeWith(conn, Close.internal)
        })
    },

    /** The socket's send buffer emptied (Bun's `drain`). */
    writable(id: string) {
      const conn = conns.get(id)
      const wake = conn?.drained
      if (conn) conn.drained = undefined
      wake?.()
    },

    closed(id: string, code: number, reason: string) {
      const conn = conns.get(id)
      if (!conn) return
      conns.delete(id)
      release(conn)
      markClosing(conn)
      // Bun reports 1006 for closes it starts itself, such as an oversized message
      const reported =
        conn.closedWith?.code ?? (reason === 'Received too big message' ? Close.tooBig.code : code)
      closes?.inc({ code: String(reported) })
      log.debug({ ...about(conn), code: reported }, 'socket closed')
      conn.markClosed()
    },
  }

  return {
    websocket,
    sockets,

    get accepting() {
      return state === 'accepting'
    },

    connections: () => conns.size,

    /** Drain stage: every socket is told to reconnect elsewhere and closed with 1012. */
    async drain() {
      if (state === 'accepting') state = 'draining'
      const open = [...conns.values()]
      log.info({ sockets: open.length }, 'closing sockets for drain')
      live.flush()
      for (const conn of open) {
        if (conn.state !== 'closing') send(conn, frames.reconnect)
        closeWith(conn, Close.draining)
      }
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        Promise.all(open.map((c) => c.closed)),
        new Promise<void>((r) => (timer = setTimeout(r, drainGraceMs))),
      ])
      clearTimeout(timer)
      for (const conn of open) if (conns.has(conn.id)) conn.socket.terminate()
    },

    /**
     * Stops everything this gateway started. Sockets still open get `reconnect`
     * and 1012 (as in drain, without waiting); those already closing are terminated.
     */
    async close() {
      state = 'closed'
      live.clear()
      for (const conn of conns.values()) {
        release(conn)
        if (conn.state === 'closing') conn.socket.terminate()
        else {
          // the drain stage never reached it (the budget ran out before): it is still
          // told to reconnect and resume, not cut off
          send(conn, frames.reconnect)
          markClosing(conn, Close.draining)
          conn.socket.close(Close.draining.code, Close.draining.reason)
        }
        // Bun's close callback will not find it any more
        closes?.inc({ code: String(conn.closedWith?.code ?? 1006) })
        conn.markClosed()
      }
      conns.clear()
    },
  }
}
