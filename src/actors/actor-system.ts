import type { Logger } from 'pino'
import { Unavailable, toError } from '../errors'
import type { Metrics } from '../obs/metrics'

/**
 * The actor runtime: one mailbox per key; an actor processes one batch at a
 * time, so everything for one key is serialized without a lock in our code.
 *
 * Actor states:
 *   idle ──ask──▶ processing ──mailbox empty──▶ idle ──idleMs──▶ passivated (gone)
 *   While a batch is in flight, new commands queue; when it settles, all that
 *   queued (up to batchMax) forms the next batch: group commit with no waiting.
 * System states:
 *   accepting ──drain()──▶ draining (asks refused with 503, mailboxes finish)
 *             ──▶ closed (every actor passivated, every timer stopped)
 *
 * Callers address an actor by key only (`ask(key, command)`), so cluster
 * ownership can sit behind the same call.
 */

export type Outcome<R> = { ok: true; value: R } | { ok: false; error: Error }

/**
 * What a batch runs under. `epoch`: the fencing epoch of this instance's
 * ownership of the key (cluster mode, src/actors/cluster.ts); every write of
 * the batch checks it under the key's row lock. Undefined: unfenced
 * (embedded mode, one process). `signal`: aborts at the batch's deadline; the
 * handler then ends its work and answers truthfully what of it took effect.
 */
export type BatchContext = { epoch?: number; signal?: AbortSignal }

/** Processes one batch for one key; returns one outcome per command, in order. */
export type BatchHandler<C, R> = (
  key: string,
  batch: readonly C[],
  context?: BatchContext,
) => Promise<Outcome<R>[]>

export type ActorSystemOptions<C, R> = {
  name: string
  handle: BatchHandler<C, R>
  log: Logger
  metrics?: Metrics
  /** Commands waiting per actor before ask() answers 503 (default 1024). */
  mailboxCapacity?: number
  /** Commands per batch (default 256). */
  batchMax?: number
  /** Idle time before an actor is passivated (default 60 000 ms). */
  idleMs?: number
  /**
   * Longest time one batch may take (default 20 000 ms, above the database's
   * own call deadline so that one fires first). Past it the batch's signal is
   * aborted: its database work ends in a known way (src/db/batch-scope.ts),
   * the handler answers what committed and fails the rest with 503, and the
   * actor goes on with its mailbox. Nothing of an aborted batch commits later.
   */
  batchTimeoutMs?: number
  /**
   * How long an aborted batch's handler may take to settle (default 15 000
   * ms, above the database's commit settling budget). Past it the commands
   * fail with 503 regardless and the loss of certainty is logged: a handler
   * that ignores its signal is a bug.
   */
  abortGraceMs?: number
}

class BatchDeadline extends Unavailable {
  constructor(ms: number) {
    super(`This account's commands took longer than ${ms} ms; retry`, 1)
  }
}

/** A batch that did not settle after its abort: what it did is not known here. */
class BatchNotSettled extends BatchDeadline {
  constructor(ms: number, graceMs: number) {
    super(ms)
    this.message = `${this.message} (the batch did not settle ${graceMs} ms after its abort)`
  }
}

type Pending<C, R> = { command: C; resolve: (r: R) => void; reject: (e: Error) => void }

type Actor<C, R> = {
  key: string
  mailbox: Pending<C, R>[]
  processing: boolean
  idleTimer?: ReturnType<typeof setTimeout>
}

export type ActorSystem<C, R> = ReturnType<typeof makeActorSystem<C, R>>

export function makeActorSystem<C, R>(options: ActorSystemOptions<C, R>) {
  const { name, handle, log } = options
  const capacity = options.mailboxCapacity ?? 1024
  const batchMax = options.batchMax ?? 256
  const idleMs = options.idleMs ?? 60_000
  const batchTimeoutMs = options.batchTimeoutMs ?? 20_000
  const abortGraceMs = options.abortGraceMs ?? 15_000
  const actors = new Map<string, Actor<C, R>>()
  const totals = { batches: 0, commands: 0 }
  let accepting = true
  let settled: (() => void) | undefined

  const m = options.metrics
  const batchSize = m?.histogram(
    `${name}_batch_size`,
    'Commands per actor batch',
    [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
  )
  const commands = m?.counter(`${name}_commands_total`, 'Actor commands by result', ['result'])
  const overdue = m?.counter(
    `${name}_batch_deadline_total`,
    'Actor batches failed with 503 because they passed their deadline',
  )
  m?.gauge(`${name}_live`, 'Live (not passivated) actors', [], () => actors.size)
  m?.gauge(`${name}_mailbox_depth`, 'Commands waiting in all mailboxes', [], depth)

  function depth() {
    let n = 0
    for (const a of actors.values()) n += a.mailbox.length
    return n
  }

  function ask(key: string, command: C): Promise<R> {
    if (!accepting) return Promise.reject(new Unavailable('This instance is draining; retry', 1))
    let actor = actors.get(key)
    if (!actor) {
      actor = { key, mailbox: [], processing: false }
      actors.set(key, actor)
    }
    if (actor.mailbox.length >= capacity) {
      commands?.inc({ result: 'refused' })
      return Promise.reject(new Unavailable('Too many commands queued for this account; retry', 1))
    }
    clearTimeout(actor.idleTimer)
    const a = actor
    return new Promise<R>((resolve, reject) => {
      a.mailbox.push({ command, resolve, reject })
      if (!a.processing) void process(a)
    })
  }

  async function process(actor: Actor<C, R>) {
    actor.processing = true
    while (actor.mailbox.length > 0) {
      const batch = actor.mailbox.splice(0, batchMax)
      let outcomes: Outcome<R>[]
      try {
        outcomes = await withinDeadline(
          (signal) =>
            handle(
              actor.key,
              batch.map((p) => p.command),
              { signal },
            ),
          batchTimeoutMs,
          abortGraceMs,
          () => overdue?.inc(),
        )
        if (outcomes.length !== batch.length)
          throw new Error('handler returned a wrong number of outcomes')
      } catch (error) {
        // a failed batch fails its commands, never the actor
        log.error({ err: error, actor: actor.key, size: batch.length }, 'actor batch failed')
        const e = toError(error)
        outcomes = batch.map(() => ({ ok: false, error: e }))
      }
      totals.batches++
      totals.commands += batch.length
      batchSize?.observe(batch.length)
      batch.forEach((pending, i) => {
        const outcome = outcomes[i]!
        commands?.inc({ result: outcome.ok ? 'ok' : 'rejected' })
        if (outcome.ok) pending.resolve(outcome.value)
        else pending.reject(outcome.error)
      })
    }
    actor.processing = false
    if (!accepting) {
      actors.delete(actor.key)
      if (actors.size === 0) settled?.()
      return
    }
    actor.idleTimer = setTimeout(() => {
      if (!actor.processing && actor.mailbox.length === 0) actors.delete(actor.key)
    }, idleMs)
    actor.idleTimer.unref?.()
  }

  /** Drain stage: refuse new commands, let every mailbox finish, passivate all. */
  async function drain() {
    accepting = false
    for (const actor of actors.values()) {
      clearTimeout(actor.idleTimer)
      if (!actor.processing) actors.delete(actor.key)
    }
    if (actors.size > 0) await new Promise<void>((resolve) => (settled = resolve))
  }

  return {
    ask,
    drain,
    close: drain,
    stats: () => ({
      live: actors.size,
      mailboxDepth: depth(),
      batches: totals.batches,
      commands: totals.commands,
      meanBatchSize: totals.batches === 0 ? 0 : totals.commands / totals.batches,
    }),
  }
}

/**
 * Runs `work` with a signal that aborts after `ms`. An aborted work is still
 * awaited (it answers what committed); only one that does not settle within
 * `graceMs` after the abort is given up on, with a 503.
 */
async function withinDeadline<T>(
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
