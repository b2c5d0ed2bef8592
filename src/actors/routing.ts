import { AppError, StaleEpoch, Unavailable, toError } from '../errors'
import type { Logger } from '../obs/logger'
import type { BatchContext, BatchHandler, Outcome } from './actor-system'
import type { ClusterMetrics } from './cluster-metrics'
import { InboxGone, ReplyTimeout, type Envelope, type Reply } from './envelope'
import type { Forwarding } from './forwarding'
import type { Placement } from './placement'
import type { Route } from './route-cache'
import { decodeFailure, encodeError, WireError, type WireCodec } from './wire'

/**
 * Runs each command where its key's owner is (cluster.ts): in the local
 * actor when this instance owns the key, else forwarded to the owner's
 * inbox; and the receiving end, an inbox entry run here or answered "moved".
 * A batch that the epoch refused (another instance claimed while this one
 * was paused) is re-routed from inside that batch, not failed.
 *
 * Per command: routing ──owned here──▶ the local actor (its batch fenced by the epoch)
 *   routing ──owned elsewhere──▶ forwarded ──answered──▶ done
 *   forwarded ──"moved", inbox gone──▶ routing again, one hop more (past MAX_HOPS: 503)
 */
export type RouterDeps<C, R> = {
  placement: Placement
  send: Forwarding['send']
  /** The local actor runtime's ask. */
  askLocal: (key: string, command: C) => Promise<R>
  /** ACTOR_LEASE_MS: how long a batch must take before it may have been overtaken (refusedHere). */
  leaseMs: number
  /** The rooms' batch handler, run under this instance's epoch. */
  handle: BatchHandler<C, R>
  wire: WireCodec<C, R>
  instanceId: string
  /** How long a sender awaits a forwarded command's reply. */
  forwardTimeoutMs: number
  log: Logger
  metrics: ClusterMetrics
}

const MAX_HOPS = 3

export type Router<C, R> = ReturnType<typeof makeRouter<C, R>>

export function makeRouter<C, R>(deps: RouterDeps<C, R>) {
  return {
    /** Runs `command` where its owner is (`hops`: how often it was routed already). */
    route: (key: string, command: C, hops: number) => route(deps, key, command, hops),
    /** The local actor's batch handler (cluster mode). */
    fencedHandle: (key: string, batch: readonly C[], context?: BatchContext) =>
      fencedHandle(deps, key, batch, context),
    /** An inbox entry: run here, or answered "moved". */
    receive: (envelope: Envelope) => receive(deps, envelope),
  }
}

/** The actor's batch, under this instance's epoch; what the epoch refuses goes to the owner. */
async function fencedHandle<C, R>(
  deps: RouterDeps<C, R>,
  key: string,
  batch: readonly C[],
  context?: BatchContext,
): Promise<Outcome<R>[]> {
  // the batch's deadline signal (actor-system.ts) goes with every handle call made for it
  const signal = context?.signal
  const epoch = deps.placement.epochOf(key)
  if (epoch === undefined)
    return Promise.all(batch.map((c) => settle(route(deps, key, c, 1, true, signal))))
  const t0 = performance.now()
  const outcomes = await deps.handle(key, batch, { ...context, epoch })
  const refused = await refusedHere(deps, key, epoch, outcomes, performance.now() - t0)
  if (refused.length === 0) return outcomes
  deps.log.warn({ key, epoch, commands: refused.length }, 'batch fenced: re-routing to the owner')
  await Promise.all(
    refused.map(async (i) => {
      outcomes[i] = await settle(route(deps, key, batch[i]!, 1, true, signal))
    }),
  )
  return outcomes
}

/**
 * The commands of a batch run under `epoch` that belong at the key's current
 * owner: those the epoch refused (StaleEpoch), and, when the batch took half
 * a lease or more and Postgres shows the key held by another epoch now, those
 * that failed with 503. Another instance claims over this one only once its
 * heartbeat expired, at least two thirds of a lease after the batch began
 * (beats come every third), so a batch failing sooner was not overtaken and
 * costs no extra read. Such 503s are a stale owner's transaction ended under
 * it: paused (SIGSTOP, a long GC) idle inside it, its session is ended by
 * Postgres (idle_in_transaction_session_timeout) and it wakes to a lost
 * connection, not to the epoch check. Their commands are re-run where the key
 * lives now; their keys (ledger key, command key) make a commit that did
 * happen a replay there. Forgets the ownership when any is returned.
 */
async function refusedHere<C, R>(
  deps: RouterDeps<C, R>,
  key: string,
  epoch: number,
  outcomes: Outcome<R>[],
  tookMs: number,
): Promise<number[]> {
  const failedWith = (test: (e: Error) => boolean) =>
    outcomes.flatMap((o, i) => (!o.ok && test(o.error) ? [i] : []))
  const stale = failedWith((e) => e instanceof StaleEpoch)
  const unavailable = failedWith(
    (e) => e instanceof AppError && e.status === 503 && !(e instanceof StaleEpoch),
  )
  const moved =
    unavailable.length > 0 &&
    tookMs >= deps.leaseMs / 2 &&
    (await deps.placement.movedFrom(key, epoch))
  const refused = moved ? [...stale, ...unavailable].sort((x, y) => x - y) : stale
  if (refused.length === 0) return refused
  deps.metrics.fencedBatches?.inc()
  deps.placement.forget(key, epoch)
  return refused
}

/**
 * Runs `command` where its owner is. `inActor`: called from inside the key's
 * own batch (a fenced command re-routed), so a command that lands here runs
 * in that batch, not behind it in the mailbox it is blocking.
 */
async function route<C, R>(
  deps: RouterDeps<C, R>,
  key: string,
  command: C,
  hops: number,
  inActor = false,
  signal?: AbortSignal,
): Promise<R> {
  // the instances that answered "moved" to this command: a hand-off target is not one of them
  const moved = new Set<string>()
  for (;;) {
    const epoch = deps.placement.epochOf(key)
    if (epoch !== undefined) {
      if (!inActor) return deps.askLocal(key, command)
      const outcome = await runInBatch(deps, key, command, epoch, signal)
      if (outcome) return unwrap(outcome)
      hops++
      continue
    }
    if (hops > MAX_HOPS)
      throw new Unavailable('The owner of this account moved too often; retry', 1)
    const target = await deps.placement.decide(key, hops > 0, true, moved)
    if (target === undefined) continue // claimed here
    const reply = await forward(deps, target, key, command, hops)
    if (reply) return unwrap(reply)
    moved.add(target.owner!)
    hops++
  }
}

/** One re-routed command run in the batch it came from; undefined when it belongs elsewhere too. */
async function runInBatch<C, R>(
  deps: RouterDeps<C, R>,
  key: string,
  command: C,
  epoch: number,
  signal?: AbortSignal,
) {
  const t0 = performance.now()
  const outcomes = await deps.handle(key, [command], { epoch, signal })
  const refused = await refusedHere(deps, key, epoch, outcomes, performance.now() - t0)
  return refused.length === 0 ? outcomes[0]! : undefined
}

/** The reply, or undefined when the target did not take it (moved, gone): route again. */
async function forward<C, R>(
  deps: RouterDeps<C, R>,
  target: Route,
  key: string,
  command: C,
  hops: number,
) {
  const { metrics, placement } = deps
  const envelope: Envelope = {
    id: crypto.randomUUID(),
    from: deps.instanceId,
    key,
    epoch: target.epoch,
    deadline: Date.now() + deps.forwardTimeoutMs,
    hops,
    command: deps.wire.encodeCommand(command),
  }
  const t0 = performance.now()
  let reply: Reply
  try {
    reply = await deps.send(target.owner!, envelope, deps.forwardTimeoutMs)
  } catch (err) {
    if (err instanceof InboxGone) {
      metrics.bounced?.inc()
      placement.forgetRoute(key)
      return undefined
    }
    metrics.forwarded?.inc({ result: err instanceof ReplyTimeout ? 'timeout' : 'failed' })
    if (err instanceof ReplyTimeout)
      throw new Unavailable('The owner of this account did not answer in time; retry', 1, err)
    throw new Unavailable('Could not reach the owner of this account; retry', 1, err)
  }
  metrics.forwardedIn(performance.now() - t0)
  if ('failed' in reply) {
    // handling it failed on the owner (logged there): its answer, at once
    metrics.forwarded?.inc({ result: 'failed' })
    throw decodeFailure(reply.failed)
  }
  if (!('outcome' in reply)) {
    // "moved" (a release is answered only to a release, rebalance.ts)
    metrics.bounced?.inc()
    placement.forgetRoute(key)
    return undefined
  }
  metrics.forwarded?.inc({ result: 'answered' })
  try {
    return deps.wire.decodeOutcome(command, reply.outcome)
  } catch (err) {
    if (!(err instanceof WireError)) throw err
    // an owner of another version (a rolling deploy) answered what this one cannot read: 503,
    // as the owner answers a command it cannot read, rather than a 500 for good
    deps.log.error({ err, key }, 'undecodable forwarded outcome')
    throw new Unavailable('The answer of the owner could not be read; retry shortly', 2, err)
  }
}

/** An inbox entry: run it if this instance owns (or may claim) the key, else "moved". */
async function receive<C, R>(deps: RouterDeps<C, R>, envelope: Envelope): Promise<Reply> {
  const { placement, wire } = deps
  let command: C
  try {
    command = wire.decodeCommand(envelope.command)
  } catch (err) {
    // most likely a sender of another version (a rolling deploy): 503, so that its client
    // retries and lands on an instance that reads it, rather than a 500 for good
    deps.log.error({ err, key: envelope.key }, 'undecodable forwarded command')
    const error = new Unavailable('The owner could not read this command; retry shortly', 2, err)
    return { outcome: wire.encodeOutcome(command!, { ok: false, error }) }
  }
  if (placement.epochOf(envelope.key) === undefined) {
    if (!placement.claiming) return { moved: true }
    // sent with an epoch, it was meant for that epoch's owner: a user nobody owns now (a
    // rebalance released it) is claimed where the command landed, by its sender
    // (local-first); epoch 0 is a hand-off's or release's "claim it here"
    const claimFree = envelope.epoch === 0
    try {
      if ((await placement.decide(envelope.key, true, claimFree)) !== undefined)
        return { moved: true }
    } catch (err) {
      return { outcome: wire.encodeOutcome(command, { ok: false, error: toError(err) }) }
    }
  }
  const outcome = await settle(deps.askLocal(envelope.key, command))
  // our bug, not the sender's: logged here with what the sender's generic 500 does not carry
  if (!outcome.ok && encodeError(outcome.error).status === 500)
    deps.log.error({ err: outcome.error, key: envelope.key }, 'forwarded command failed here')
  return { outcome: wire.encodeOutcome(command, outcome) }
}

export async function settle<R>(p: Promise<R>): Promise<Outcome<R>> {
  try {
    return { ok: true, value: await p }
  } catch (error) {
    return { ok: false, error: toError(error) }
  }
}

function unwrap<R>(outcome: Outcome<R>): R {
  if (outcome.ok) return outcome.value
  throw outcome.error
}
