import type { Logger } from 'pino'
import type { Event, EventLog } from '../events/event'
import { compareIds, isNextId } from '../events/ids'
import type { Connection } from './connection'
import type { GatewayMetrics } from './gateway-metrics'
import { makeLiveFrames } from './live-frames'
import { Close, frames } from './messages'
import { makeReplayer } from './replay'
import type { SocketIo } from './socket-io'

/**
 * A socket's events, live and replayed. A live event goes to the live frames
 * (live-frames.ts) when it is the next one the socket is owed; it waits in the
 * replay buffer while a replay runs, and behind a catch-up read when the ones
 * before it never reached the socket (replay.ts). Ids at or below the last
 * one sent are duplicates and dropped (the ordering note in gateway.ts).
 */

/** Live events a socket may buffer during its replay before it counts as too slow. */
const MAX_REPLAY_BUFFER = 10_000

export type DeliveryDeps = {
  events: Pick<EventLog, 'readAfter'>
  log: Logger
  /** Events per log read during a replay. */
  replayPage: number
  io: SocketIo
  metrics: GatewayMetrics
}

export type Delivery = ReturnType<typeof makeDelivery>

export function makeDelivery(deps: DeliveryDeps) {
  const { io, metrics } = deps
  const live = makeLiveFrames({
    send: io.send,
    sent(at, now) {
      metrics.deliveredLive?.inc()
      metrics.latency?.observe(Math.max(0, now - at) / 1000)
    },
  })
  const replays = makeReplayer({
    events: deps.events,
    log: deps.log,
    page: deps.replayPage,
    send: io.send,
    flushWaiting: (conn) => live.flush(conn),
    deliver,
    fail: (conn) => io.closeWith(conn, Close.internal),
    replayed: metrics.deliveredReplay,
    caughtUp: metrics.catchUps,
  })

  function deliver(conn: Connection, event: Event) {
    if (conn.replayBuffer) {
      conn.replayBuffer.push(event)
      if (conn.replayBuffer.length > MAX_REPLAY_BUFFER) io.closeWith(conn, Close.slowConsumer)
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

  return {
    live,
    replay: replays.replay,
    /** The socket's live-tail listener: events reach it only while it is live. */
    onLiveEvent(conn: Connection, event: Event) {
      if (conn.state === 'live') deliver(conn, event)
    },
  }
}
