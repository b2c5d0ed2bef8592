/**
 * Stream writes per target, sent at once or coalesced (sender.ts, inbox.ts):
 * an item for a target with no write in flight is written at once, alone; an
 * item that arrives while a write to its target is in flight waits for it and
 * goes with every other such item as the next entry. A lone command pays no
 * batching delay (setImmediate cost 0.1–0.3 ms per hop here), and a hot
 * user's 256 forwarded commands still cost two XADDs, not 256. One write per
 * target at a time also keeps each target's entries in the order the items came.
 *
 * Per target: idle ──push──▶ writing [item] ──push──▶ writing, next batch
 *   growing ──write settled──▶ writing the next batch | idle (none waiting)
 */
export type Coalescer<T> = {
  /** Queues `item` for `target`: written now when nothing to it is in flight. */
  push(target: string, item: T): void
  /** Targets with a write in flight. */
  readonly busy: number
}

/** `write` must settle (it is never retried here): its failures are its own to report. */
export function makeCoalescer<T>(write: (target: string, items: T[]) => Promise<unknown>) {
  // present: a write to that target is in flight; the array is what waits for the next one
  const waiting = new Map<string, T[]>()

  function start(target: string, items: T[]) {
    waiting.set(target, [])
    void write(target, items)
      .catch(() => {})
      .finally(() => {
        const next = waiting.get(target)!
        if (next.length) start(target, next)
        else waiting.delete(target)
      })
  }

  const coalescer: Coalescer<T> = {
    push(target, item) {
      const next = waiting.get(target)
      if (next) next.push(item)
      else start(target, [item])
    },
    get busy() {
      return waiting.size
    },
  }
  return coalescer
}
