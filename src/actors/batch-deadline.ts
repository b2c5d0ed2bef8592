import { Unavailable } from '../errors'

/**
 * The deadline of one actor batch (actor-system.ts): past `ms` its signal is
 * aborted and the handler answers what of it committed; a handler that does
 * not settle within the grace after that is given up on with a 503.
 */
export class BatchDeadline extends Unavailable {
  constructor(ms: number) {
    super(`This account's commands took longer than ${ms} ms; retry`, 1)
  }
}

/** A batch that did not settle after its abort: what it did is not known here. */
export class BatchNotSettled extends BatchDeadline {
  constructor(ms: number, graceMs: number) {
    super(ms)
    this.message = `${this.message} (the batch did not settle ${graceMs} ms after its abort)`
  }
}

/**
 * Runs `work` with a signal that aborts after `ms`. An aborted work is still
 * awaited (it answers what committed); only one that does not settle within
 * `graceMs` after the abort is given up on, with a 503.
 */
export async function withinDeadline<T>(
  work: (signal: AbortSignal) => Promise<T>,
  ms: number,
  graceMs: number,
  onOverdue: () => void,
): Promise<T> {
  const controller = new AbortController()
  let grace: ReturnType<typeof setTimeout> | undefined
  const givenUp = Promise.withResolvers<never>()
  const timer = setTimeout(() => {
    onOverdue()
    controller.abort(new BatchDeadline(ms))
    grace = setTimeout(() => givenUp.reject(new BatchNotSettled(ms, graceMs)), graceMs)
  }, ms)
  const running = work(controller.signal)
  running.catch(() => {}) // a failure after being given up on is already answered
  try {
    return await Promise.race([running, givenUp.promise])
  } finally {
    clearTimeout(timer)
    clearTimeout(grace)
  }
}
