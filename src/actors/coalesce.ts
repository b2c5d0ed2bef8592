/**
 * Stream writes per target, sent at once or coalesced (sender.ts, inbox.ts):
 * an item for a target with no write in flight is written at once, alone, so
 * a lone command pays no batching delay (setImmediate cost 0.1–0.3 ms per hop
 * here); the items that arrive while a write to that target is in flight go
 * together as one entry at the end of the event loop turn, so a hot user's
 * 256 forwarded commands still cost two XADDs, not 256.
 *
 * The coalesced entry does not wait for the write in flight to be answered:
 * it is pipelined behind it on the same connection, which keeps a target's
 * entries in the order their items came. (Waiting for the answer cut the hot
 * user's rate on three instances from 0.86–0.90 of one instance's to
 * 0.56–0.68 in bench:cluster: under load every burst's tail waited a round trip.)
 *
 * Per target: idle ──push──▶ in flight ──push──▶ next entry growing
 *   ──end of turn──▶ in flight (one write more) ──every write answered──▶ idle
 */
export type Coalescer<T> = {
  /** Queues `item` for `target`: written now when nothing to it is in flight. */
  push(target: string, item: T): void
}

/** `write` must settle (it is never retried here): its failures are its own to report. */
export function makeCoalescer<T>(write: (target: string, items: T[]) => Promise<unknown>) {
  /** Writes in flight per target (absent: none). */
  const inFlight = new Map<string, number>()
  /** Per target, what waits for the end of this turn. */
  const next = new Map<string, T[]>()

  function start(target: string, items: T[]) {
    inFlight.set(target, (inFlight.get(target) ?? 0) + 1)
    void write(target, items)
      .catch(() => {})
      .finally(() => {
        const left = inFlight.get(target)! - 1
        if (left > 0) inFlight.set(target, left)
        else inFlight.delete(target)
      })
  }

  function flush(target: string) {
    const items = next.get(target)!
    next.delete(target)
    start(target, items)
  }

  const coalescer: Coalescer<T> = {
    push(target, item) {
      const waiting = next.get(target)
      if (waiting) waiting.push(item)
      else if (inFlight.has(target)) {
        next.set(target, [item])
        setImmediate(() => flush(target))
      } else start(target, [item])
    },
  }
  return coalescer
}
