import type { Logger } from 'pino'
import { Unauthorized } from '../errors'
import type { EventLog } from '../events/event'
import { isEventId } from '../events/ids'
import type { Authenticator } from '../users/principals'
import { MAX_TIMER_MS, about, type Connection, type UserSocketCounts } from './connection'
import type { Delivery } from './delivery'
import { Close, frames } from './messages'
import type { SocketIo } from './socket-io'

/**
 * A socket's first message: the token verified (within the auth timeout,
 * API.md), the per-user cap taken, the token's expiry armed, the live tail
 * subscribed, `ready` sent, then the replay after `resumeAfter` if it asked.
 * authenticating ──ok──▶ live; ──bad token, cap, draining──▶ closing.
 */
export type AdmissionDeps = {
  /** Resolves a token to the user record it names (4401 when there is none). */
  tokens: Pick<Authenticator, 'verify'>
  events: Pick<EventLog, 'subscribe'>
  instanceId: string
  log: Logger
  /** The clock token expiries are timed by. */
  now: () => number
  perUser: UserSocketCounts
  io: SocketIo
  delivery: Delivery
  /** False once the gateway drains: a socket that authenticates then is told to go. */
  accepting: () => boolean
}

export function makeAdmission(deps: AdmissionDeps) {
  const { io, delivery } = deps

  function armExpiry(conn: Connection, expiresAt: number) {
    const left = expiresAt - deps.now()
    if (left <= 0) return io.closeWith(conn, Close.tokenExpired)
    conn.expiryTimer = setTimeout(() => armExpiry(conn, expiresAt), Math.min(left, MAX_TIMER_MS))
  }

  async function authenticate(conn: Connection, token: string, resumeAfter?: string) {
    let principal
    try {
      // the 5 s to authenticate include the verification (a JWKS fetch can be slow)
      principal = await deps.tokens.verify(token)
    } catch (error) {
      if (!(error instanceof Unauthorized)) throw error
      return io.closeWith(conn, Close.unauthorized)
    }
    if (conn.state !== 'authenticating') return
    clearTimeout(conn.authTimer)
    // a good token with a resumeAfter that is no event id at all: 1008 (API.md), not 4401
    if (resumeAfter !== undefined && !isEventId(resumeAfter))
      return io.closeWith(conn, Close.invalidMessage)
    if (!deps.accepting()) return io.closeWith(conn, Close.draining)
    const { userId } = principal
    conn.userId = userId
    if (!deps.perUser.take(userId)) return io.closeWith(conn, Close.tooManySockets)
    conn.counted = true
    conn.state = 'live'
    armExpiry(conn, principal.expiresAt)
    if (conn.state !== 'live') return
    // subscribe first: from here every new event reaches the socket or its replay buffer
    if (resumeAfter !== undefined) conn.replayBuffer = []
    conn.unsubscribe = deps.events.subscribe(userId, (event) => delivery.onLiveEvent(conn, event))
    if (io.send(conn, frames.ready(userId, deps.instanceId)) === 'closed') return
    deps.log.debug({ ...about(conn), resumeAfter }, 'socket authenticated')
    if (resumeAfter !== undefined) await delivery.replay(conn, resumeAfter)
  }

  return { authenticate }
}
