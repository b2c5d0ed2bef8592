import type { Logger } from 'pino'
import { toError } from '../errors'
import type { Event, EventLog } from '../events/event'
import { isIssuableId } from '../events/ids'
import { about, type Connection } from './connection'
import type { SendResult } from './live-frames'
import { frames } from './messages'

/**
 * Replays of the log to one socket: after `resumeAfter`, after a `resume`
 * message, and the catch-up read before a live event that is not its user's
 * next one. While a replay runs, the socket's live events wait in its replay
 * buffer; they are delivered after it, minus the ids it already sent (the
 * ordering note in gateway.ts).
 *
 *   streaming ──replay()──▶ replaying (live events buffered)
 *             ──last page sent──▶ streaming (buffer delivered)
 *   replaying ──read fails (Redis down)──▶ retrying (backoff ≤ 1 s) ──▶ replaying
 */

/** The longest wait between reads of a replay that failed (Redis down). */
const REPLAY_RETRY_MAX_MS = 1000

export type ReplayDeps = {
  events: Pick<EventLog, 'readAfter'>
  log: Logger
  /** Events per log read (default 256). */
  page: number
  send: (conn: Connection, frame: string, flowControlled: boolean) => SendResult
  /** Sends the live frames already waiting for this socket. */
  flushWaiting: (conn: Connection) => void
  /** The live path, for the events buffered during the replay. */
  deliver: (conn: Connection, event: Event) => void
  /** Closes a socket whose catch-up failed (1011). */
  fail: (conn: Connection) => void
  replayed?: { inc(): void }
  caughtUp?: { inc(): void }
}

export function makeReplayer(deps: ReplayDeps) {
  const { log } = deps

  /** Everything after `after`, then the buffered live events. */
  async function replay(conn: Connection, after: string) {
    // frames already waiting go first: they are older than anything the replay sends
    deps.flushWaiting(conn)
    conn.replayBuffer ??= []
    let cursor = after
    let resynced = false
    for (let first = true; ; first = false) {
      // an id past 2^64 no history issued: resync, and nothing to read after it
      const page = isIssuableId(cursor)
        ? await readPage(deps, conn, cursor)
        : { events: [], truncated: true, more: false, next: cursor }
      if (!page || conn.state !== 'live') return
      if (first && page.truncated) {
        resynced = true
        if (deps.send(conn, frames.resync, false) === 'closed') return
      }
      if (!(await sendPage(deps, conn, page.events))) return
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
    for (const event of buffered) deps.deliver(conn, event)
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
    deps.caughtUp?.inc()
    conn.queue = conn.queue
      .then(() => (conn.state === 'live' ? replay(conn, conn.lastId!) : undefined))
      .catch((error) => {
        log.error({ ...about(conn), err: toError(error) }, 'catching up failed')
        deps.fail(conn)
      })
  }

  return { replay, catchUp }
}

/**
 * A page of the log; while the log cannot be read (Redis down), tried again
 * with backoff up to REPLAY_RETRY_MAX_MS for as long as the socket is live:
 * the client keeps its `ready` socket and gets its events once Redis
 * answers, live events waiting in the replay buffer meanwhile.
 * Undefined when the socket went away first.
 */
async function readPage(deps: ReplayDeps, conn: Connection, after: string) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await deps.events.readAfter(conn.userId!, after, deps.page)
    } catch (error) {
      if (conn.state !== 'live') return undefined
      if (attempt === 0)
        deps.log.warn({ ...about(conn), err: toError(error) }, 'replay read failed; retrying')
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

/** A page's events, flow-controlled: false when the socket went away meanwhile. */
async function sendPage(deps: ReplayDeps, conn: Connection, events: readonly Event[]) {
  for (const event of events) {
    const sent = deps.send(conn, frames.event(event), true)
    if (sent === 'closed') return false
    deps.replayed?.inc()
    if (sent === 'backpressure') await new Promise<void>((r) => (conn.drained = r))
    if (conn.state !== 'live') return false
  }
  return true
}
