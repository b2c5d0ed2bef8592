import type { Connection } from './connection'

/**
 * Live frames of one turn of the event loop, sent together at its end
 * (setImmediate), as Bun's own publish does: sends run back to back instead
 * of between the reads that brought them, which costs the kernel much less
 * per frame (bench:ws: ~25% more events/s; the wait is within the turn, well
 * under a millisecond). A socket's frames keep their order.
 *
 *   empty ──push──▶ waiting (timer set) ──end of turn / 4096 frames / flush()──▶ empty
 *
 * `flush(conn)` sends only that socket's frames, in place: a replay sends what
 * is already waiting for its socket before anything it reads.
 */

/** Live frames waiting for the end of the turn before they are sent at once. */
const MAX_WAITING_FRAMES = 4096

export type SendResult = 'sent' | 'backpressure' | 'closed'

export type LiveFramesDeps = {
  send: (conn: Connection, frame: string) => SendResult
  /** One live frame went out; `at` is when its event was appended. */
  sent: (at: number, now: number) => void
}

export type LiveFrames = ReturnType<typeof makeLiveFrames>

export function makeLiveFrames(deps: LiveFramesDeps) {
  let conns: (Connection | undefined)[] = []
  let texts: string[] = []
  let since: number[] = []
  let timer: ReturnType<typeof setImmediate> | undefined

  function push(conn: Connection, frame: string, at: number) {
    conns.push(conn)
    texts.push(frame)
    since.push(at)
    // a producer that never yields (appends in a microtask loop) must not pile frames up
    if (conns.length >= MAX_WAITING_FRAMES) flush()
    else timer ??= setImmediate(flush)
  }

  /** Sends the waiting frames, in order: all of them, or only one socket's. */
  function flush(only?: Connection) {
    const waiting = conns
    const frames = texts
    const at = since
    if (!only) clear()
    const now = Date.now()
    for (let i = 0; i < waiting.length; i++) {
      const conn = waiting[i]
      if (!conn || (only && conn !== only)) continue
      if (only) waiting[i] = undefined
      if (deps.send(conn, frames[i]!) === 'closed') continue
      deps.sent(at[i]!, now)
    }
  }

  /** Forgets every waiting frame and the timer (the gateway is closing). */
  function clear() {
    clearImmediate(timer)
    timer = undefined
    conns = []
    texts = []
    since = []
  }

  return { push, flush, clear }
}
