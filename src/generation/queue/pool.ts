import type { Kysely } from 'kysely'
import type { Logger } from 'pino'
import type { DB } from '../../db/schema'
import { toError } from '../../errors'
import type { Metrics } from '../../obs/metrics'
import type { GenerationCommand } from '../commands'
import type { Produced, ProduceContext } from '../produce'
import { makeSemaphore, type Release } from '../renderers/semaphore'
import type { GenerationItemRow } from '../table'
import { makeItemContexts } from './item-context'
import * as repo from './repository'
import { decideRetry } from './retry-policy'

/**
 * The renderer pool of one instance: at most `concurrency` items rendering
 * at once (a slot is CPU work: it frees as soon as the image is made, before
 * storage and the outcome), and at most `concurrency` more claimed ahead,
 * leased and waiting for a slot, so a freed slot starts its next item at
 * once instead of after a claim's round trip to the database.
 *
 *   running: claims due items (fairly, SKIP LOCKED) while fewer than twice
 *            `concurrency` are unrendered: on wake(), after each render, and
 *            every pollMs; a heartbeat extends each held lease; outcomes go
 *            through the user's actor.
 *   draining: claims nothing; items waiting for a slot are released at once
 *            (queued again, attempt given back, claimable elsewhere); items
 *            in flight get `drainWaitMs` to finish, then are aborted and
 *            released too.
 *   closed:  no timer, no item held.
 */
export type RendererPoolOptions = {
  db: Kysely<DB>
  instanceId: string
  produce: (ctx: ProduceContext, signal: AbortSignal, rendered: () => void) => Promise<Produced>
  /** The user actor: every item outcome goes through it. */
  report: (userId: string, command: GenerationCommand) => Promise<unknown>
  loadPose: (poseId: string) => Promise<ProduceContext['pose']>
  log: Logger
  metrics?: Metrics
  concurrency: number
  leaseMs: number
  maxAttempts: number
  timeoutMs: number
  retryBaseMs: number
  /** Default 500 ms. */
  pollMs?: number
  /** Default 5 000 ms. */
  drainWaitMs?: number
}

class LeaseLost extends Error {}
class Released extends Error {}

export type RendererPool = ReturnType<typeof makeRendererPool>

type Held = { controller: AbortController; done: Promise<void>; rendering: boolean }

export function makeRendererPool(o: RendererPoolOptions) {
  const held = new Map<string, Held>()
  let releasing = 0
  const slots = makeSemaphore(Math.max(1, o.concurrency))
  // claimed items whose image is not made yet: rendering, or claimed ahead and waiting for a slot
  let unrendered = 0
  const claimLimit = 2 * o.concurrency
  let state: 'running' | 'draining' | 'closed' = 'running'
  let filling: Promise<void> | undefined
  let again = false
  const poll = setInterval(() => void wake(), o.pollMs ?? 500)
  poll.unref?.()
  const context = makeItemContexts(o)

  const outcomes = o.metrics?.counter('render_items_total', 'Rendered items by outcome', [
    'outcome',
  ])
  const seconds = o.metrics?.histogram(
    'render_seconds',
    'Render pipeline duration per item',
    [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
  )
  o.metrics?.gauge(
    'render_items_held',
    'Items this instance holds (rendering, storing or reporting)',
    [],
    () => held.size,
  )

  /** Claims work while slots are free; concurrent calls coalesce into one more round. */
  function wake(): Promise<void> {
    if (state !== 'running') return Promise.resolve()
    if (filling) {
      again = true
      return filling
    }
    filling = fill().finally(() => {
      filling = undefined
      if (again) {
        again = false
        void wake()
      }
    })
    return filling
  }

  async function fill() {
    try {
      while (state === 'running' && unrendered < claimLimit) {
        const items = await repo.claimDueItems(
          o.db,
          o.instanceId,
          claimLimit - unrendered,
          o.leaseMs,
        )
        if (items.length === 0) return
        for (const item of items) hold(item)
        for (const [generationId, group] of groupBy(items, (i) => i.generation_id))
          void o
            .report(group[0]!.user_id, {
              kind: 'claimed',
              generationId,
              items: group.map((i) => ({ id: i.id, key: i.key })),
            })
            .catch((err) => o.log.warn({ err, generationId }, 'could not report items started'))
      }
    } catch (err) {
      o.log.error({ err }, 'claiming items failed')
    }
  }

  function hold(item: GenerationItemRow) {
    unrendered++
    let counted = true
    const rendered = () => {
      if (!counted) return
      counted = false
      unrendered--
      void wake()
    }
    const entry: Held = {
      controller: new AbortController(),
      done: Promise.resolve(),
      rendering: false,
    }
    // work() reports and requeues through the database: while it is down either can fail, and
    // the item then stays leased until its lease expires and the sweeper hands it on. That
    // failure must end here, never as an unhandled rejection (which used to kill the process)
    entry.done = work(item, entry, rendered)
      .catch((err) => o.log.warn({ err, itemId: item.id }, 'item left to its lease'))
      .finally(() => {
        rendered()
        held.delete(item.id)
      })
    held.set(item.id, entry)
  }

  async function work(item: GenerationItemRow, entry: Held, rendered: () => void) {
    const { controller } = entry
    const log = o.log.child({
      itemId: item.id,
      generationId: item.generation_id,
      attempt: item.attempts,
    })
    const heartbeat = setInterval(
      async () => {
        const kept = await repo
          .extendLease(o.db, item.id, o.instanceId, o.leaseMs)
          .catch(() => true)
        if (!kept) controller.abort(new LeaseLost('lease lost'))
      },
      Math.max(100, o.leaseMs / 3),
    )
    let release: Release | undefined
    const freeSlot = () => {
      release?.()
      release = undefined
      rendered()
    }
    try {
      const ctx = await context(item)
      release = await slots.acquire(controller.signal)
      entry.rendering = true
      const started = performance.now()
      const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(o.timeoutMs)])
      const produced = await o.produce(ctx, signal, freeSlot)
      await o.report(item.user_id, {
        kind: 'outcome',
        itemId: item.id,
        owner: o.instanceId,
        result: { status: 'succeeded', ...produced },
      })
      outcomes?.inc({ outcome: 'succeeded' })
      seconds?.observe((performance.now() - started) / 1000)
    } catch (raw) {
      const reason = controller.signal.reason
      if (reason instanceof LeaseLost || reason instanceof Released) {
        log.info({ reason: reason.message }, 'item given up')
        return
      }
      await settleFailure(item, toError(raw), log)
    } finally {
      clearInterval(heartbeat)
      freeSlot()
    }
  }

  async function settleFailure(item: GenerationItemRow, error: Error, log: Logger) {
    const decision = decideRetry(error, item.attempts, o)
    if (decision.retry) {
      log.warn({ err: error, delayMs: decision.delayMs }, 'render failed; retrying')
      outcomes?.inc({ outcome: 'retried' })
      await repo.requeueItem(o.db, item.id, o.instanceId, {
        delayMs: decision.delayMs,
        error: { code: decision.code, message: error.message.slice(0, 500) },
      })
      return
    }
    log.warn({ err: error, code: decision.code }, 'item failed')
    outcomes?.inc({ outcome: 'failed' })
    await o.report(item.user_id, {
      kind: 'outcome',
      itemId: item.id,
      owner: o.instanceId,
      result: { status: 'failed', code: decision.code, message: decision.message },
    })
  }

  /** Drain stage: stop claiming; release items not started, let the rest finish, then release those left. */
  async function drain() {
    if (state !== 'running') return
    state = 'draining'
    clearInterval(poll)
    await filling
    await handBack([...held].filter(([, h]) => !h.rendering).map(([id]) => id))
    const all = Promise.all([...held.values()].map((h) => h.done))
    let timer: ReturnType<typeof setTimeout> | undefined
    const waited = await Promise.race([
      all.then(() => true),
      new Promise<false>((r) => (timer = setTimeout(() => r(false), o.drainWaitMs ?? 5000))),
    ])
    clearTimeout(timer)
    if (!waited) await handBack([...held.keys()])
    state = 'closed'
  }

  /** Aborts these items and hands them back to the queue: claimable elsewhere at once, attempt given back. */
  async function handBack(ids: string[]) {
    const entries = ids.flatMap((id) => held.get(id) ?? [])
    if (entries.length === 0) return
    for (const h of entries) h.controller.abort(new Released('released on drain'))
    // still ours until the database has them back: held() counts them meanwhile
    releasing += ids.length
    try {
      await Promise.all(entries.map((h) => h.done))
      await Promise.all(
        ids.map((id) =>
          repo.requeueItem(o.db, id, o.instanceId, { delayMs: 0, refundAttempt: true }),
        ),
      )
    } finally {
      releasing -= ids.length
    }
    o.log.info({ released: ids.length }, 'items released on drain')
  }

  return { wake, drain, close: drain, held: () => held.size + releasing }
}

function groupBy<T>(items: T[], key: (t: T) => string) {
  const out = new Map<string, T[]>()
  for (const item of items) out.set(key(item), [...(out.get(key(item)) ?? []), item])
  return out
}
