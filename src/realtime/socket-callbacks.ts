import type { Logger } from 'pino'
import { toError } from '../errors'
import { about, isFlooding, makeConnection, type Connection, type Socket } from './connection'
import type { Delivery } from './delivery'
import type { GatewayMetrics } from './gateway-metrics'
import { Close, frames, parseClientMessage } from './messages'
import { markClosing, type SocketIo } from './socket-io'

/**
 * Bun's callbacks for each socket, by the id Elysia keeps in ws.data, and
 * what a client's messages do: the first must be `auth`; after it `ping` and
 * `resume` are all there is. A socket's messages are handled one after
 * another, in arrival order; more than the rate (protocol pings included)
 * closes it with 1008.
 */
export type SocketCallbacksDeps = {
  conns: Map<string, Connection>
  log: Logger
  io: SocketIo
  delivery: Delivery
  authenticate: (conn: Connection, token: string, resumeAfter?: string) => Promise<void>
  /** False once the gateway drains: a new socket is told to reconnect elsewhere. */
  accepting: () => boolean
  /** Time for the auth message, ms. */
  authTimeoutMs: number
  /** Messages per second per socket before 1008. */
  maxMessagesPerSecond: number
  closes: GatewayMetrics['closes']
}

export function makeSocketCallbacks(deps: SocketCallbacksDeps) {
  const { conns, log, io } = deps
  const rate = deps.maxMessagesPerSecond

  return {
    open(id: string, socket: Socket) {
      const conn = makeConnection(id, socket)
      conns.set(id, conn)
      if (!deps.accepting()) {
        io.send(conn, frames.reconnect)
        return io.closeWith(conn, Close.draining)
      }
      conn.authTimer = setTimeout(() => io.closeWith(conn, Close.authTimeout), deps.authTimeoutMs)
    },

    /** A protocol-level ping from the client: it counts like a message (Bun answers it). */
    pinged(id: string) {
      const conn = conns.get(id)
      if (!conn || conn.state === 'closing') return
      if (isFlooding(conn, rate, performance.now())) io.closeWith(conn, Close.rateLimited)
    },

    message(id: string, raw: unknown) {
      const conn = conns.get(id)
      if (!conn || conn.state === 'closing') return
      if (isFlooding(conn, rate, performance.now())) return io.closeWith(conn, Close.rateLimited)
      conn.queue = conn.queue
        .then(() => handle(deps, conn, raw))
        .catch((error) => {
          log.error({ ...about(conn), err: toError(error) }, 'socket message failed')
          io.closeWith(conn, Close.internal)
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
      io.release(conn)
      markClosing(conn)
      // Bun reports 1006 for closes it starts itself, such as an oversized message
      const reported =
        conn.closedWith?.code ?? (reason === 'Received too big message' ? Close.tooBig.code : code)
      deps.closes?.inc({ code: String(reported) })
      log.debug({ ...about(conn), code: reported }, 'socket closed')
      conn.markClosed()
    },
  }
}

/** One client message, in its socket's turn. */
async function handle(deps: SocketCallbacksDeps, conn: Connection, raw: unknown) {
  const { io } = deps
  if (conn.state === 'closing') return
  const message = parseClientMessage(raw)
  if (conn.state === 'authenticating') {
    if (message?.type !== 'auth') return io.closeWith(conn, Close.unauthorized)
    return deps.authenticate(conn, message.token, message.resumeAfter)
  }
  switch (message?.type) {
    case 'ping':
      return void io.send(conn, frames.pong)
    case 'resume':
      return deps.delivery.replay(conn, message.after)
    default:
      // a second auth, an unknown type, or not a message at all
      return io.closeWith(conn, Close.invalidMessage)
  }
}
