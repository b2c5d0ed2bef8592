import type { Logger } from 'pino'
import { Unavailable, toError } from '../errors'
import type { Metrics } from '../obs/metrics'
import { withinDeadline } from './batch-deadline'

/**
 * The actor runtime: one mailbox per key; an actor processes one batch at a
 * time, so everything for one key is serialized without a lock in our code.
 *
 * Actor states:
 *   idle ──ask──▶ processing ──mailbox empty──▶ idle ──idleMs──▶ passivated (gone)
 *   While a batch is in flight, new commands queue; when it settles, all that
 *   queued (up to batchMax) forms the next batch: group commit with no waiting.
 *   `whenIdle(key)` resolves on the way back to idle.
 * System states:
 *   accepting ──drain()──▶ draining (asks refused with 503, mailboxes finish)
 *             ──▶ closed (every actor passivated, every timer stopped)
 *
 * Callers address an actor by key only (`ask(key, command)`), so cluster
 * ownership can sit behind the same call.
 */

/** How long an aborted batch's handler may take to settle by default (see abortGraceMs). */
export const ABORT_GRACE_MS = 15_000

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

/**
 * What an actor is asked and what it answers: a union of these pairs, one
 * per command type (`Exchange<LedgerMessage, LedgerResult> | …`), so that
 * `ask` answers the result of the command it is given and no caller casts.
 */
export type Exchange<C = unknown, R = unknown> = { command: C; result: R }
export type CommandOf<P extends Exchange> = P['command']
export type ResultOf<P extends Exchange> = P['result']
/** The result paired with command `M` in P (distributes over P's pairs). */
export type AnswerTo<P extends Exchange, M> =
  P extends Exchange<infer C, infer R> ? (M extends C ? R : never) : never

/** The one way to call an actor: runs `command` on the actor of `key`, answers its result. */
export type Ask<P extends Exchange> = <M extends CommandOf<P>>(
  key: string,
  command: M,
) => Promise<AnswerTo<P, M>>

export type ActorSystemDeps<P extends Exchange> = {
  name: string
  handle: BatchHandler<CommandOf<P>, ResultOf<P>>
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

type Pending<C, R> = { command: C; resolve: (r: R) => void; reject: (e: Error) => void }

type Actor<C, R> = {
  key: string
  mailbox: Pending<C, R>[]
  processing: boolean
  idleTimer?: ReturnType<typeof setTimeout>
  /** whenIdle() callers, told when the mailbox is empty and no batch is in flight. */
  idle: (() => void)[]
}

/** One runtime's state, which the functions below share. */
type Runtime<C, R> = {
  actors: Map<string, Actor<C, R>>
  totals: { batches: number; commands: number }
  accepting: boolean
  /** Told when the last actor is passivated during a drain. */
  settled?: () => void
  capacity: number
  batchMax: number
  idleMs: number
  runBatch: (key: string, batch: C[]) => Promise<Outcome<R>[]>
  metrics: RuntimeMetrics
}

export type ActorSystem<P extends Exchange> = ReturnType<typeof makeActorSystem<P>>

export function makeActorSystem<P extends Exchange>(deps: ActorSystemDeps<P>) {
  type C = CommandOf<P>
  type R = ResultOf<P>
  const actors = new Map<string, Actor<C, R>>()
  const metrics = runtimeMetrics(
    deps,
    () => actors.size,
    () => depth(rt),
  )
  const rt: Runtime<C, R> = {
    actors,
    totals: { batches: 0, commands: 0 },
    accepting: true,
    capacity: deps.mailboxCapacity ?? 1024,
    batchMax: deps.batchMax ?? 256,
    idleMs: deps.idleMs ?? 60_000,
    runBatch: batchRunner(deps, metrics),
    metrics,
  }
  const drain = () => drainAll(rt)
  return {
    // the handler answers each command with its own result (Exchange): that pairing is
    // the handler's contract, which TypeScript cannot check through a generic conditional
    ask: ((key: string, command: C) => enqueue(rt, key, command)) as Ask<P>,
    /** Resolves once `key`'s actor has nothing queued and no batch in flight. */
    whenIdle(key: string): Promise<void> {
      const actor = actors.get(key)
      if (!actor || (!actor.processing && actor.mailbox.length === 0)) return Promise.resolve()
      return new Promise((resolve) => actor.idle.push(resolve))
    },
    drain,
    close: drain,
    stats: () => ({
      live: actors.size,
      mailboxDepth: depth(rt),
      batches: rt.totals.batches,
      commands: rt.totals.commands,
      meanBatchSize: rt.totals.batches === 0 ? 0 : rt.totals.commands / rt.totals.batches,
    }),
  }
}

function depth(rt: Runtime<unknown, unknown>) {
  let n = 0
  for (const a of rt.actors.values()) n += a.mailbox.length
  return n
}

function enqueue<C, R>(rt: Runtime<C, R>, key: string, command: C): Promise<R> {
  if (!rt.accepting) return Promise.reject(new Unavailable('This instance is draining; retry', 1))
  let actor = rt.actors.get(key)
  if (!actor) {
    actor = { key, mailbox: [], processing: false, idle: [] }
    rt.actors.set(key, actor)
  }
  if (actor.mailbox.length >= rt.capacity) {
    rt.metrics.commands?.inc({ result: 'refused' })
    return Promise.reject(new Unavailable('Too many commands queued for this account; retry', 1))
  }
  clearTimeout(actor.idleTimer)
  const a = actor
  return new Promise<R>((resolve, reject) => {
    a.mailbox.push({ command, resolve, reject })
    if (!a.processing) void processMailbox(rt, a)
  })
}

/** One batch at a time until the mailbox is empty; then idle (passivated after idleMs). */
async function processMailbox<C, R>(rt: Runtime<C, R>, actor: Actor<C, R>) {
  actor.processing = true
  while (actor.mailbox.length > 0) {
    const batch = actor.mailbox.splice(0, rt.batchMax)
    const outcomes = await rt.runBatch(
      actor.key,
      batch.map((p) => p.command),
    )
    rt.totals.batches++
    rt.totals.commands += batch.length
    batch.forEach((pending, i) => {
      const outcome = outcomes[i]!
      if (outcome.ok) pending.resolve(outcome.value)
      else pending.reject(outcome.error)
    })
  }
  actor.processing = false
  for (const told of actor.idle.splice(0)) told()
  if (!rt.accepting) {
    rt.actors.delete(actor.key)
    if (rt.actors.size === 0) rt.settled?.()
    return
  }
  actor.idleTimer = setTimeout(() => {
    if (!actor.processing && actor.mailbox.length === 0) rt.actors.delete(actor.key)
  }, rt.idleMs)
  actor.idleTimer.unref?.()
}

/** Drain stage: refuse new commands, let every mailbox finish, passivate all. */
async function drainAll<C, R>(rt: Runtime<C, R>) {
  rt.accepting = false
  for (const actor of rt.actors.values()) {
    clearTimeout(actor.idleTimer)
    if (!actor.processing) rt.actors.delete(actor.key)
  }
  if (rt.actors.size > 0) await new Promise<void>((resolve) => (rt.settled = resolve))
}

type RuntimeMetrics = ReturnType<typeof runtimeMetrics>

function runtimeMetrics(
  deps: { name: string; metrics?: Metrics },
  live: () => number,
  depth: () => number,
) {
  const { name, metrics: m } = deps
  m?.gauge(`${name}_live`, 'Live (not passivated) actors', [], live)
  m?.gauge(`${name}_mailbox_depth`, 'Commands waiting in all mailboxes', [], depth)
  return {
    batchSize: m?.histogram(
      `${name}_batch_size`,
      'Commands per actor batch',
      [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    ),
    commands: m?.counter(`${name}_commands_total`, 'Actor commands by result', ['result']),
    overdue: m?.counter(
      `${name}_batch_deadline_total`,
      'Actor batches failed with 503 because they passed their deadline',
    ),
  }
}

/** One batch through the handler, under its deadline: always one outcome per command. */
function batchRunner<C, R>(
  deps: Pick<ActorSystemDeps<Exchange<C, R>>, 'handle' | 'log'> & {
    batchTimeoutMs?: number
    abortGraceMs?: number
  },
  metrics: RuntimeMetrics,
) {
  const batchTimeoutMs = deps.batchTimeoutMs ?? 20_000
  const abortGraceMs = deps.abortGraceMs ?? ABORT_GRACE_MS
  return async (key: string, batch: C[]): Promise<Outcome<R>[]> => {
    let outcomes: Outcome<R>[]
    try {
      outcomes = await withinDeadline(
        (signal) => deps.handle(key, batch, { signal }),
        batchTimeoutMs,
        abortGraceMs,
        () => metrics.overdue?.inc(),
      )
      if (outcomes.length !== batch.length)
        throw new Error('handler returned a wrong number of outcomes')
    } catch (error) {
      // a failed batch fails its commands, never the actor
      deps.log.error({ err: error, actor: key, size: batch.length }, 'actor batch failed')
      const e = toError(error)
      outcomes = batch.map(() => ({ ok: false, error: e }))
    }
    metrics.batchSize?.observe(batch.length)
    for (const o of outcomes) metrics.commands?.inc({ result: o.ok ? 'ok' : 'rejected' })
    return outcomes
  }
}
