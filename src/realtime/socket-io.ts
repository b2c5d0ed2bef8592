import type { Logger } from 'pino'
import { about, type Connection, type UserSocketCounts } from './connection'
import type { SendResult } from './live-frames'
import { Close, type CloseReason } from './messages'

/**
 * What the gateway does to one socket: send it a frame (closing it when it
 * cannot keep up, so it resumes instead of missing one), close it with a
 * reason, and release what it holds (its place under the per-user cap, its
 * timers, its live tail, a replay waiting on it).
 */
export type SocketIoDeps = {
  log: Logger
  perUser: UserSocketCounts
  /** Bytes queued to one socket before it is closed with 1013. */
  sendBufferBytes: number
}

export type SocketIo = ReturnType<typeof makeSocketIo>

/** The one place a socket becomes `closing`, remembering why (Bun may report 1006). */
export function markClosing(conn: Connection, why?: CloseReason) {
  conn.state = 'closing'
  if (why) conn.closedWith = why
}

export function makeSocketIo(deps: SocketIoDeps) {
  const { log, perUser, sendBufferBytes } = deps

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

  return { send, closeWith, release }
}
