import type { Logger } from 'pino'
import { Unauthorized, toError } from '../errors'
import type { Event, EventLog } from '../events/event'
import { compareIds, isEventId, isIssuableId, isNextId } from '../events/ids'
import type { Metrics } from '../obs/metrics'
import type { Authenticator } from '../users/principals'
import {
  MAX_TIMER_MS,
  isFlooding,
  makeConnection,
  type Connection,
  type Socket,
} from './connection'
import { Close, frames, parseClientMessage, type CloseReason } from './messages'

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
 * Live frames are sent at the end of the event loop's turn they arrive in,
 * all together (setImmediate), as Bun's own publish does: sends run back to
 * back instead of between the reads that brought them, which costs the
 * kernel much less per frame (bench:ws: ~25% more events/s; the wait is
 * within the turn, well under a millisecond). A socket's frames keep their
 * order; a replay first sends what is waiting for its socket, and drain what
 * is waiting for all.
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

/** Live frames waiting for the end of the turn before they are sent at once. */
const MAX_WAITING_FRAMES = 4096

/** The longest wait between reads of a replay that failed (Redis down). */
const REPLAY_RETRY_MAX_MS = 1000

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
  /** Authenticated sockets of each user on this instance. */
  const socketsOfUser = new Map<string, number>()
  const conns = new Map<string, Connection>()
  let state: 'accepting' | 'draining' | 'closed' = 'accepting'

  const m = options.metrics
  m?.gauge('ws_connections', 'Open WebSocket connections', [], () => conns.size)
  const delivered = m?.tally('ws_events_delivered_total', 'Events sent to sockets', ['via'])
  // bound once: a child of a tally counts in a plain number
  const deliveredLive = delivered?.child({ via: 'live' })
  const deliveredReplay = delivered?.child({ via: 'replay' })
  const latency = m?.tallyHistogram(
    'ws_delivery_latency_seconds',
    'From append to send, for live events',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  )
  const closes = m?.counter('ws_closes_total', 'WebSocket closes by code', ['code'])
  const catchUps = m?.counter(
    'ws_catch_up_reads_total',
    'Replays started because a live event was not the next one of its user',
  )

  /** Bun's own settings for every socket of the server (Elysia passes them to Bun.serve). */
  const websocket = {
    /** API.md: a message over 4 KiB closes with 1009, which Bun sends itself. */
    maxPayloadLength: 4 * 1024,
    /** API.md: silent for 60 s closes; Bun pings idle sockets at protocol level. */
    idleTimeout: 60,
    sendPings: true,
    /** Twice our own limit: we close at sendBufferBytes with 1013, Bun's hard limit is a backstop. */
    backpressureLimit: sendBufferBytes * 2,
    closeOnBackpressureLimit: true,
    /** Events are small JSON: compression would cost CPU and zlib memory per socket for little. */
    perMessageDeflate: false,
  }

  /** A socket's log fields: bound at the call, not as a child logger kept per socket. */
  const about = (conn: Connection) => ({ socket: conn.id, userId: conn.userId })

  function closeWith(conn: Connection, why: CloseReason) {
    if (conn.state === 'closing') return
    conn.state = 'closing'
    conn.closedWith = why
    release(conn)
    log.debug({ ...about(conn), code: why.code, reason: why.reason }, 'closing socket')
    conn.socket.close(why.code, why.reason)
  }

  function release(conn: Connection) {
    if (conn.counted) {
      conn.counted = false
      const left = (socketsOfUser.get(conn.userId!) ?? 1) - 1
      if (left > 0) socketsOfUser.set(conn.userId!, left)
      else socketsOfUser.delete(conn.userId!)
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
  function send(conn: Connection, frame: string, flowControlled = false) {
    if (conn.state === 'closing') return 'closed' as const
    const status = conn.socket.send(frame)
    if (status > 0) return 'sent' as const
    if (status === 0 || (!flowControlled && conn.socket.getBufferedAmount() > sendBufferBytes)) {
      closeWith(conn, Close.slowConsumer)
      return 'closed' as const
    }
    return 'backpressure' as const
  }

  // Live frames of one turn of the event loop, sent together at its end (see the header).
  let waitingConns: (Connection | undefined)[] = []
  let waitingFrames: string[] = []
  let waitingSince: number[] = []
  let flushTimer: ReturnType<typeof setImmediate> | undefined

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
        return catchUp(conn, event)
    }
    conn.lastId = event.id
    waitingConns.push(conn)
    waitingFrames.push(frames.event(event))
    waitingSince.push(event.at)
    // a producer that never yields (appends in a microtask loop) must not pile frames up
    if (waitingConns.length >= MAX_WAITING_FRAMES) flushLive()
    else flushTimer ??= setImmediate(flushLive)
  }

  /** Sends the waiting live frames, in order: all of them, or only one socket's. */
  function flushLive(only?: Connection) {
    const conns = waitingConns
    const texts = waitingFrames
    const since = waitingSince
    if (!only) {
      clearImmediate(flushTimer)
      flushTimer = undefined
      waitingConns = []
      waitingFrames = []
      waitingSince = []
    }
    const now = Date.now()
    for (let i = 0; i < conns.length; i++) {
      const conn = conns[i]
      if (!conn || (only && conn !== only)) continue
      if (only) conns[i] = undefined
      if (send(conn, texts[i]!) === 'closed') continue
      deliveredLive?.inc()
      latency?.observe(Math.max(0, now - since[i]!) / 1000)
    }
  }

  function onLiveEvent(conn: Connection, event: Event) {
    if (conn.state === 'live') deliverLive(conn, event)
  }

  /**
   * A live event that is not the next of its user (ids are the user's seqs,
   * consecutive): the ones between are in the log but reached this socket
   * neither in its replay nor live, e.g. a resume read before the relay
   * caught up after a Redis outage, while the tail started after what was
   * committed. They are read from the log first, the event waiting with the
   * other live ones; message handling waits its turn behind the read.
   */
  function catchUp(conn: Connection, event: Event) {
    conn.replayBuffer = [event]
    conn.caughtUpFrom = conn.lastId
    catchUps?.inc()
    conn.queue = conn.queue
      .then(() => (conn.state === 'live' ? replay(conn, conn.lastId!) : undefined))
      .catch((error) => {
        log.error({ ...about(conn), err: toError(error) }, 'catching up failed')
        closeWith(conn, Close.internal)
      })
  }

  /** Everything after `after`, then the buffered live events; see the ordering note above. */
  async function replay(conn: Connection, after: string) {
    // frames already waiting go first: they are older than anything the replay sends
    flushLive(conn)
    conn.replayBuffer ??= []
    let cursor = after
    let resynced = false
    for (let first = true; ; first = false) {
      // an id past 2^64 no history issued: resync, and nothing to read after it
      const page = isIssuableId(cursor)
        ? await readPage(conn, cursor)
        : { events: [], truncated: true, more: false, next: cursor }
      if (!page || conn.state !== 'live') return
      if (first && page.truncated) {
        resynced = true
        if (send(conn, frames.resync) === 'closed') return
      }
      for (const event of page.events) {
        const sent = send(conn, frames.event(event), true)
        if (sent === 'closed') return
        deliveredReplay?.inc()
        if (sent === 'backpressure') await new Promise<void>((r) => (conn.drained = r))
        if (conn.state !== 'live') return
      }
      // paged by what was read, not by what was sent: an entry this version
      // cannot read must not end the replay early
      cursor = page.next
      if (!page.more) break
    }
    const buffered = conn.replayBuffer ?? []
    conn.replayBuffer = undefined
    // after a resync with nothing read, `after` is no position in this history (it
    // may be newer than all of it): only ids actually sent hold live events back
    if (!(resynced && cursor === after)) conn.lastId = cursor
    for (const event of buffered) deliverLive(conn, event)
  }

  /**
   * A page of the log; while the log cannot be read (Redis down), tried again
   * with backoff up to REPLAY_RETRY_MAX_MS for as long as the socket is live:
   * the client keeps its `ready` socket and gets its events once Redis
   * answers, live events waiting in the replay buffer meanwhile.
   * Undefined when the socket went away first.
   */
  async function readPage(conn: Connection, after: string) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await events.readAfter(conn.userId!, after, replayPage)
      } catch (error) {
        if (conn.state !== 'live') return undefined
        if (attempt === 0)
          log.warn({ ...about(conn), err: toError(error) }, 'replay read failed; retrying')
        const delay = Math.min(REPLAY_RETRY_MAX_MS, 50 * 2 ** attempt)
        await new Promise<void>((resolve) => {
          conn.retryWake = resolve
          conn.retryTimer = setTimeout(resolve, delay)
        })
        conn.retryWake = undefined
        if (conn.state !== 'live') return undefined
      }
    }
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
    const open = socketsOfUser.get(userId) ?? 0
    if (open >= maxSocketsPerUser) return closeWith(conn, Close.tooManySockets)
    socketsOfUser.set(userId, open + 1)
    conn.counted = true
    conn.state = 'live'
    armExpiry(conn, principal.expiresAt)
    if (conn.state !== 'live') return
    // subscribe first: from here every new event reaches the socket or its replay buffer
    if (resumeAfter !== undefined) conn.replayBuffer = []
    conn.unsubscribe = events.subscribe(userId, (event) => onLiveEvent(conn, event))
    if (send(conn, frames.ready(userId, instanceId)) === 'closed') return
    log.debug({ ...about(conn), resumeAfter }, 'socket authenticated')
    if (resumeAfter !== undefined) await replay(conn, resumeAfter)
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
        return replay(conn, message.after)
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
      conn.state = 'closing'
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
      flushLive()
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
      clearImmediate(flushTimer)
      flushTimer = undefined
      waitingConns = []
      waitingFrames = []
      waitingSince = []
      for (const conn of conns.values()) {
        release(conn)
        if (conn.state === 'closing') conn.socket.terminate()
        else {
          // the drain stage never reached it (the budget ran out before): it is still
          // told to reconnect and resume, not cut off
          send(conn, frames.reconnect)
          conn.state = 'closing'
          conn.closedWith = Close.draining
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
