import type { Kysely } from 'kysely'
import type { Logger } from 'pino'
import type { DB } from '../../db/schema'
import { toError } from '../../errors'
import type { Metrics } from '../../obs/metrics'
import type { GenerationCommand } from '../commands'
import type { Produced, ProduceContext } from '../produce'
import { makeSemaphore, type Release, type Semaphore } from '../renderers/semaphore'
import type { GenerationItemRow } from '../table'
import { makeItemContexts, type ItemContexts } from './item-context'
import * as repo from './repository'
import { RENDER_RETRY_MESSAGE, decideRetry } from './retry-policy'

/**
 * The items a renderer pool holds, each from its claim to its end here:
 *
 *   waiting (claimed ahead, for a slot) ──slot──▶ rendering ──image made──▶
 *     storing and reporting ──outcome through the actor──▶ ended
 *   any of them ──lease lost, or released on drain──▶ given up (aborted; the
 *     queue has it back, by the sweeper or by release())
 *
 * At most `concurrency` render at once: a slot is CPU work, freed as soon as
 * the image is made, before storage and the outcome. A heartbeat extends each
 * held item's lease every leaseMs / 3 (at least 100 ms) and stops when the
 * item ends. A failed render is retried later or failed for good by the
 * retry policy (retry-policy.ts).
 */
export type ItemWorkerDeps = {
  db: Kysely<DB>
  instanceId: string
  produce: (ctx: ProduceContext, signal: AbortSignal, rendered: () => void) => Promise<Produced>
  /** The user actor: every item outcome goes through it. */
  /** The user actor's ask: outcomes and cancels go through it. */
  ask: (userId: string, command: GenerationCommand) => Promise<unknown>
  loadPose: (poseId: string) => Promise<ProduceContext['pose']>
  log: Logger
  metrics?: Metrics
  concurrency: number
  leaseMs: number
  maxAttempts: number
  timeoutMs: number
  retryBaseMs: number
  /** An item's image is made, or it ended without one: its place may be claimed again. */
  onRendered: () => void
}

class LeaseLost extends Error {}
class Released extends Error {}

type Held = { controller: AbortController; done: Promise<void>; rendering: boolean }

type Worker = {
  deps: ItemWorkerDeps
  held: Map<string, Held>
  /** Items handed back whose requeue has not committed yet: still ours meanwhile. */
  releasing: number
  /** Claimed items whose image is not made yet: rendering, or waiting for a slot. */
  unrendered: number
  slots: Semaphore
  context: ItemContexts
  outcomes?: ReturnType<Metrics['counter']>
  seconds?: ReturnType<Metrics['histogram']>
}

export type ItemWorker = ReturnType<typeof makeItemWorker>

export function makeItemWorker(deps: ItemWorkerDeps) {
  const w: Worker = {
    deps,
    held: new Map(),
    releasing: 0,
    unrendered: 0,
    slots: makeSemaphore(Math.max(1, deps.concurrency)),
    context: makeItemContexts(deps),
    outcomes: deps.metrics?.counter('render_items_total', 'Rendered items by outcome', ['outcome']),
    seconds: deps.metrics?.histogram(
      'render_seconds',
      'Render pipeline duration per item',
      [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    ),
  }
  deps.metrics?.gauge(
    'render_items_held',
    'Items this instance holds (rendering, storing or reporting)',
    [],
    () => w.held.size,
  )
  return {
    hold: (item: GenerationItemRow) => hold(w, item),
    unrendered: () => w.unrendered,
    /** Items held, counting those being handed back until the database has them. */
    size: () => w.held.size + w.releasing,
    /** Hands back the items still waiting for a slot. */
    releaseWaiting: () =>
      release(
        w,
        [...w.held].filter(([, h]) => !h.rendering).map(([id]) => id),
      ),
    /** Hands back every item still held. */
    releaseAll: () => release(w, [...w.held.keys()]),
    /** Settles when every item held now has ended. */
    settled: () => Promise.all([...w.held.values()].map((h) => h.done)),
  }
}

function hold(w: Worker, item: GenerationItemRow) {
  w.unrendered++
  let counted = true
  const rendered = () => {
    if (!counted) return
    counted = false
    w.unrendered--
    w.deps.onRendered()
  }
  const entry: Held = {
    controller: new AbortController(),
    done: Promise.resolve(),
    rendering: false,
  }
  // work() reports and requeues through the database: while it is down either can fail, and
  // the item then stays leased until its lease expires and the sweeper hands it on. That
  // failure must end here, never as an unhandled rejection (which used to kill the process)
  entry.done = work(w, item, entry, rendered)
    .catch((err) => w.deps.log.warn({ err, itemId: item.id }, 'item left to its lease'))
    .finally(() => {
      rendered()
      w.held.delete(item.id)
    })
  w.held.set(item.id, entry)
}

async function work(w: Worker, item: GenerationItemRow, entry: Held, rendered: () => void) {
  const { deps } = w
  const { controller } = entry
  const log = deps.log.child({
    itemId: item.id,
    generationId: item.generation_id,
    attempt: item.attempts,
  })
  const heartbeat = keepLease(deps, item, controller)
  let release: Release | undefined
  const freeSlot = () => {
    release?.()
    release = undefined
    rendered()
  }
  try {
    const ctx = await w.context(item)
    release = await w.slots.acquire(controller.signal)
    entry.rendering = true
    const started = performance.now()
    const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(deps.timeoutMs)])
    const produced = await deps.produce(ctx, signal, freeSlot)
    await deps.ask(item.user_id, {
      kind: 'outcome',
      itemId: item.id,
      owner: deps.instanceId,
      result: { status: 'succeeded', ...produced },
    })
    w.outcomes?.inc({ outcome: 'succeeded' })
    w.seconds?.observe((performance.now() - started) / 1000)
  } catch (raw) {
    const reason = controller.signal.reason
    if (reason instanceof LeaseLost || reason instanceof Released) {
      log.info({ reason: reason.message }, 'item given up')
      return
    }
    await settleFailure(w, item, toError(raw), log)
  } finally {
    clearInterval(heartbeat)
    freeSlot()
  }
}

/** The heartbeat of one held item's lease; a lease found lost aborts the item's work. */
function keepLease(deps: ItemWorkerDeps, item: GenerationItemRow, controller: AbortController) {
  return setInterval(
    async () => {
      const kept = await repo
        .extendLease(deps.db, item.id, deps.instanceId, deps.leaseMs)
        .catch(() => true)
      if (!kept) controller.abort(new LeaseLost('lease lost'))
    },
    Math.max(100, deps.leaseMs / 3),
  )
}

async function settleFailure(w: Worker, item: GenerationItemRow, error: Error, log: Logger) {
  const { deps } = w
  const decision = decideRetry(error, item.attempts, deps)
  if (decision.retry) {
    log.warn({ err: error, delayMs: decision.delayMs }, 'render failed; retrying')
    w.outcomes?.inc({ outcome: 'retried' })
    await repo.requeueItem(deps.db, item.id, deps.instanceId, {
      delayMs: decision.delayMs,
      error: { code: decision.code, message: RENDER_RETRY_MESSAGE },
    })
    return
  }
  log.warn({ err: error, code: decision.code }, 'item failed')
  w.outcomes?.inc({ outcome: 'failed' })
  await deps.ask(item.user_id, {
    kind: 'outcome',
    itemId: item.id,
    owner: deps.instanceId,
    result: { status: 'failed', code: decision.code, message: decision.message },
  })
}

/** Aborts these items and hands them back to the queue: claimable elsewhere at once, attempt given back. */
async function release(w: Worker, ids: string[]) {
  const entries = ids.flatMap((id) => w.held.get(id) ?? [])
  if (entries.length === 0) return
  for (const h of entries) h.controller.abort(new Released('released on drain'))
  // still ours until the database has them back: size() counts them meanwhile
  w.releasing += ids.length
  try {
    await Promise.all(entries.map((h) => h.done))
    await Promise.all(
      ids.map((id) =>
        repo.requeueItem(w.deps.db, id, w.deps.instanceId, { delayMs: 0, refundAttempt: true }),
      ),
    )
  } finally {
    w.releasing -= ids.length
  }
  w.deps.log.info({ released: ids.length }, 'items released on drain')
}
