import type { Kysely } from 'kysely'
import type { Logger } from 'pino'
import type { DB } from '../db/schema'
import { PermanentError, toError } from '../errors'
import type { Metrics } from '../obs/metrics'
import type { GenerationCommand } from './commands'
import type { Produced, ProduceContext } from './produce'
import { RetryLater } from './renderers/renderer'
import * as repo from './repository'
import type { GenerationItemRow, GenerationRequest } from './table'

/**
 * The renderer pool of one instance: at most `concurrency` items at once.
 *
 *   running: claims due items (fairly, SKIP LOCKED) whenever a slot is free:
 *            on wake(), after each item, and every pollMs; a heartbeat extends
 *            each held lease; outcomes go through the user's actor.
 *   draining: claims nothing; items in flight get `drainWaitMs` to finish,
 *            then are aborted and released (queued again, attempt given back,
 *            claimable elsewhere at once).
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

const MAX_BACKOFF_MS = 5 * 60_000

export type RendererPool = ReturnType<typeof makeRendererPool>

export function makeRendererPool(o: RendererPoolOptions) {
  const held = new Map<string, { controller: AbortController; done: Promise<void> }>()
  // slots limit rendering (CPU); an item reporting its outcome no longer holds one
  let rendering = 0
  let state: 'running' | 'draining' | 'closed' = 'running'
  let filling: Promise<void> | undefined
  let again = false
  const poll = setInterval(() => void wake(), o.pollMs ?? 500)
  poll.unref?.()

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
      while (state === 'running' && rendering < o.concurrency) {
        const items = await repo.claimDueItems(
          o.db,
          o.instanceId,
          o.concurrency - rendering,
          o.leaseMs,
        )
        if (items.length === 0) return
        for (const item of items) hold(item)
        for (const [generationId, group] of groupBy(items, (i) => i.generation_id))
          void o
            .report(group[0]!.user_id, {
              kind: 'started',
              generationId,
              itemIds: group.map((i) => i.id),
            })
            .catch((err) => o.log.warn({ err, generationId }, 'could not report items started'))
      }
    } catch (err) {
      o.log.error({ err }, 'claiming items failed')
    }
  }

  function hold(item: GenerationItemRow) {
    const controller = new AbortController()
    rendering++
    let slotFree = false
    const freeSlot = () => {
      if (slotFree) return
      slotFree = true
      rendering--
      void wake()
    }
    const done = work(item, controller, freeSlot).finally(() => {
      freeSlot()
      held.delete(item.id)
    })
    held.set(item.id, { controller, done })
  }

  async function work(item: GenerationItemRow, controller: AbortController, freeSlot: () => void) {
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
    const started = performance.now()
    try {
      const ctx = await context(item)
      const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(o.timeoutMs)])
      // the slot is for CPU work: it frees as soon as the image is rendered, before storage and the outcome
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
    }
  }

  async function settleFailure(item: GenerationItemRow, error: Error, log: Logger) {
    const permanent = error instanceof PermanentError
    const code = permanent
      ? error.code
      : error.name === 'TimeoutError'
        ? 'render_timeout'
        : 'render_failed'
    if (!permanent && item.attempts < o.maxAttempts) {
      const backoff = Math.min(
        MAX_BACKOFF_MS,
        o.retryBaseMs * 2 ** (item.attempts - 1) * (0.5 + Math.random()),
      )
      const delayMs = Math.max(backoff, error instanceof RetryLater ? (error.retryAfterMs ?? 0) : 0)
      log.warn({ err: error, delayMs }, 'render failed; retrying')
      outcomes?.inc({ outcome: 'retried' })
      await repo.requeueItem(o.db, item.id, o.instanceId, {
        delayMs,
        error: { code, message: error.message.slice(0, 500) },
      })
      return
    }
    log.warn({ err: error, code }, 'item failed')
    outcomes?.inc({ outcome: 'failed' })
    await o.report(item.user_id, {
      kind: 'outcome',
      itemId: item.id,
      owner: o.instanceId,
      result: {
        status: 'failed',
        code,
        message: permanent ? error.message : 'The image could not be rendered',
      },
    })
  }

  // a generation's request and the poses never change once written: one read each, not one per item
  const requests = new Map<string, GenerationRequest>()
  const poses = new Map<string, ProduceContext['pose']>()

  async function context(item: GenerationItemRow): Promise<ProduceContext> {
    let request = requests.get(item.generation_id)
    if (!request) {
      const gen = await o.db
        .selectFrom('generations')
        .select('request')
        .where('id', '=', item.generation_id)
        .executeTakeFirstOrThrow()
      request = gen.request as GenerationRequest
      remember(requests, item.generation_id, request)
    }
    let pose = item.pose_id ? poses.get(item.pose_id) : undefined
    if (item.pose_id && !pose) {
      pose = await o.loadPose(item.pose_id)
      if (!pose) throw new PermanentError('pose_missing', 'The pose of this item no longer exists')
      remember(poses, item.pose_id, pose)
    }
    return { item, request, pose }
  }

  /** Drain stage: stop claiming; let held items finish, then abort and release the rest. */
  async function drain() {
    if (state !== 'running') return
    state = 'draining'
    clearInterval(poll)
    await filling
    const all = Promise.all([...held.values()].map((h) => h.done))
    let timer: ReturnType<typeof setTimeout> | undefined
    const waited = await Promise.race([
      all.then(() => true),
      new Promise<false>((r) => (timer = setTimeout(() => r(false), o.drainWaitMs ?? 5000))),
    ])
    clearTimeout(timer)
    if (!waited) {
      const ids = [...held.keys()]
      for (const h of held.values()) h.controller.abort(new Released('released on drain'))
      await all
      await Promise.all(
        ids.map((id) =>
          repo.requeueItem(o.db, id, o.instanceId, { delayMs: 0, refundAttempt: true }),
        ),
      )
      o.log.info({ released: ids.length }, 'items released on drain')
    }
    state = 'closed'
  }

  return { wake, drain, close: drain, held: () => held.size }
}

/** A small bounded cache: the oldest entry goes when it is full. */
const CACHE_SIZE = 1000
function remember<V>(cache: Map<string, V>, key: string, value: V) {
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!)
  cache.set(key, value)
}

function groupBy<T>(items: T[], key: (t: T) => string) {
  const out = new Map<string, T[]>()
  for (const item of items) out.set(key(item), [...(out.get(key(item)) ?? []), item])
  return out
}
