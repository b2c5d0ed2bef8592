import { abortReason } from './batch-scope'
import { CommitOutcomeUnknown } from './errors'

/**
 * Group commit across actors: each actor hands in one batch at a time; at
 * most `slots` groups are being written at once, and whatever queues
 * meanwhile (other users' batches) is written together in the next group.
 * Nothing waits on a timer: an idle slot takes what is queued at once.
 *
 *   queued ──slot free──▶ in a group (≤ maxPerCommit members) ──flush settled──▶ answered
 *     └──its signal aborts──▶ out of the queue, unwritten, rejected with the abort's reason
 *
 * `flush` writes one group and settles each member (resolve or reject), or
 * hands members back with `requeue` for a later group; it must not throw.
 * Once a member is in a group, its signal is the flush's to honour
 * (src/db/batch-scope.ts): the first member past its deadline ends the
 * group's transaction, and `othersAgain` then sends the rest to the next one.
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
  flush: (group: Member<T, R>[], requeue: (members: Member<T, R>[]) => void) => Promise<void>,
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
      void flush(group, requeue).finally(() => {
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

  /** Members of a group that was not written, first in line for the next one. */
  function requeue(members: Member<T, R>[]) {
    for (const m of members) if (m.signal) leaveOnAbort(m, m.signal)
    queue.unshift(...members)
    pump()
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

/**
 * After a group's write failed with `error`: when a member's deadline ended it
 * (its signal aborted) and nothing committed (any failure but a COMMIT whose
 * outcome is unknown), the aborted members fail with their abort and the
 * others go again in a later group, so that one actor's deadline does not
 * fail 63 other users' batches. True when it did so.
 */
export function othersAgain<T, R>(
  group: Member<T, R>[],
  error: unknown,
  requeue: (members: Member<T, R>[]) => void,
): boolean {
  if (error instanceof CommitOutcomeUnknown) return false
  const aborted = group.filter((m) => m.signal?.aborted)
  if (aborted.length === 0) return false
  for (const m of aborted) m.reject(abortReason(m.signal!))
  const others = group.filter((m) => !m.signal?.aborted)
  if (others.length > 0) requeue(others)
  return true
}
