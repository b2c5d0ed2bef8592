import { abortReason } from './batch-scope'

/**
 * Group commit across actors: each actor hands in one batch at a time; at
 * most `slots` groups are being written at once, and whatever queues
 * meanwhile (other users' batches) is written together in the next group.
 * Nothing waits on a timer: an idle slot takes what is queued at once.
 *
 *   queued ──slot free──▶ in a group (≤ maxPerCommit members) ──flush settled──▶ answered
 *     └──its signal aborts──▶ out of the queue, unwritten, rejected with the abort's reason
 *
 * `flush` writes one group and settles each member (resolve or reject); it
 * must not throw. Once a member is in a group, its signal is the flush's to
 * honour (src/db/batch-scope.ts).
 */
export type Member<T, R> = {
  input: T
  signal?: AbortSignal
  resolve: (r: R) => void
  reject: (e: Error) => void
}

export type GroupCommitLimits = {
  /** Groups written at once (default 4). */
  slots?: number
  /** Members per group (default 64). */
  maxPerCommit?: number
}

export function makeGroupCommit<T, R>(
  flush: (group: Member<T, R>[]) => Promise<void>,
  limits: GroupCommitLimits = {},
) {
  const slots = limits.slots ?? 4
  const maxPerCommit = limits.maxPerCommit ?? 64
  const queue: Member<T, R>[] = []
  /** Stops listening for an abort, per member still queued. */
  const unlisten = new Map<Member<T, R>, () => void>()
  let inflight = 0

  function pump() {
    while (inflight < slots && queue.length > 0) {
      inflight++
      const group = queue.splice(0, maxPerCommit)
      for (const m of group) {
        unlisten.get(m)?.()
        unlisten.delete(m)
      }
      void flush(group).finally(() => {
        inflight--
        pump()
      })
    }
  }

  /** While `m` waits in the queue, an abort of its signal takes it out, unwritten. */
  function leaveOnAbort(m: Member<T, R>, signal: AbortSignal) {
    const aborted = () => {
      unlisten.delete(m)
      const at = queue.indexOf(m)
      if (at >= 0) queue.splice(at, 1)
      m.reject(abortReason(signal))
    }
    signal.addEventListener('abort', aborted, { once: true })
    unlisten.set(m, () => signal.removeEventListener('abort', aborted))
  }

  return {
    /** Writes `input` in the next group; `signal`: its actor batch's (see above). */
    submit(input: T, signal?: AbortSignal): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        if (signal?.aborted) return reject(abortReason(signal))
        const m: Member<T, R> = { input, signal, resolve, reject }
        if (signal) leaveOnAbort(m, signal)
        queue.push(m)
        pump()
      })
    },
  }
}
