import type { Event } from '../events/event'
import type { CloseReason } from './messages'

/**
 * One WebSocket's state, kept in the gateway's map under the id Elysia puts
 * in ws.data (Elysia wraps the socket in a new object per callback, so the
 * wrapper is no key).
 *
 * States:
 *   authenticating ──auth ok──▶ live ──close(code)──▶ closing ──Bun's close──▶ gone
 *   authenticating ──5 s / bad token──▶ closing (4408 / 4401)
 *   live: streaming ⇄ replaying (after resumeAfter or resume: live events are
 *   buffered while the log is read, then flushed minus the ids already sent)
 */
export type ConnectionState = 'authenticating' | 'live' | 'closing'

/** What the gateway uses of Bun's ServerWebSocket. */
export type Socket = {
  /** Bytes sent (> 0); -1 queued under backpressure; 0 dropped. */
  send(data: string): number
  close(code?: number, reason?: string): void
  terminate(): void
  getBufferedAmount(): number
}

export type Connection = {
  id: string
  socket: Socket
  state: ConnectionState
  userId?: string
  /** Counted among its user's sockets (the per-user cap); uncounted on release. */
  counted?: boolean
  unsubscribe?: () => void
  authTimer?: ReturnType<typeof setTimeout>
  expiryTimer?: ReturnType<typeof setTimeout>
  /** Arrival times of the last `limit` messages, a ring: the flood check. */
  arrivals: number[]
  arrivalIndex: number
  /** Messages of one socket are handled one after another, in arrival order. */
  queue: Promise<void>
  /** Set while replaying: live events wait here. */
  replayBuffer?: Event[]
  /** Where the last catch-up read started (replay.ts catchUp): at most one per position. */
  caughtUpFrom?: string
  /** The newest event id sent: live events at or below it are duplicates. */
  lastId?: string
  /** A replay whose read failed (Redis down) tries again when this fires. */
  retryTimer?: ReturnType<typeof setTimeout>
  /** Wakes a replay waiting for its retry timer early, when the socket goes away. */
  retryWake?: () => void
  /** Resolved by Bun's drain callback, for a replay waiting on backpressure. */
  drained?: () => void
  /** Why we closed it, when we did (Bun reports 1006 for some closes we start). */
  closedWith?: CloseReason
  closed: Promise<void>
  markClosed: () => void
}

export function makeConnection(id: string, socket: Socket): Connection {
  let markClosed!: () => void
  const closed = new Promise<void>((resolve) => (markClosed = resolve))
  return {
    id,
    socket,
    state: 'authenticating',
    arrivals: [],
    arrivalIndex: 0,
    queue: Promise.resolve(),
    closed,
    markClosed,
  }
}

/**
 * True when this message makes more than `limit` in the last second: a ring
 * of the last `limit` arrival times, so the check is exact and O(1).
 */
export function isFlooding(conn: Connection, limit: number, now: number): boolean {
  const oldest = conn.arrivals.length < limit ? undefined : conn.arrivals[conn.arrivalIndex]
  conn.arrivals[conn.arrivalIndex] = now
  conn.arrivalIndex = (conn.arrivalIndex + 1) % limit
  return oldest !== undefined && now - oldest < 1000
}

/** A socket's log fields: bound at the call, not as a child logger kept per socket. */
export const about = (conn: Connection) => ({ socket: conn.id, userId: conn.userId })

/** setTimeout caps delays at 2^31-1 ms (~24.8 days); longer waits re-arm. */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** Bun's own settings for every socket of the server (Elysia passes them to Bun.serve). */
export function bunSocketSettings(sendBufferBytes: number) {
  return {
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
}

export type UserSocketCounts = ReturnType<typeof makeUserSocketCounts>

/** Authenticated sockets of each user on this instance, against the per-user cap. */
export function makeUserSocketCounts(max: number) {
  const counts = new Map<string, number>()
  return {
    /** Counts one more socket for the user; false (nothing counted) at the cap. */
    take(userId: string): boolean {
      const open = counts.get(userId) ?? 0
      if (open >= max) return false
      counts.set(userId, open + 1)
      return true
    },
    give(userId: string) {
      const left = (counts.get(userId) ?? 1) - 1
      if (left > 0) counts.set(userId, left)
      else counts.delete(userId)
    },
  }
}
