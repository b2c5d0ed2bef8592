import type { GenerationCommand } from '../commands'
import type { GenerationItemRow } from '../table'
import { makeItemWorker, type ItemWorkerDeps } from './item-worker'
import * as repo from './repository'

/**
 * The renderer pool of one instance: at most `concurrency` items rendering
 * at once (a slot is CPU work: it frees as soon as the image is made, before
 * storage and the outcome), and at most `concurrency` more claimed ahead,
 * leased and waiting for a slot, so a freed slot starts its next item at
 * once instead of after a claim's round trip to the database. Each claimed
 * item's life is item-worker.ts's.
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
export type RendererPoolDeps = Omit<ItemWorkerDeps, 'onRendered'> & {
  /** Default 500 ms. */
  pollMs?: number
  /** Default 5 000 ms. */
  drainWaitMs?: number
}

export type RendererPool = ReturnType<typeof makeRendererPool>

export function makeRendererPool(deps: RendererPoolDeps) {
  let state: 'running' | 'draining' | 'closed' = 'running'
  let filling: Promise<void> | undefined
  let again = false
  const claimLimit = 2 * deps.concurrency
  const items = makeItemWorker({ ...deps, onRendered: () => void wake() })
  const poll = setInterval(() => void wake(), deps.pollMs ?? 500)
  poll.unref?.()

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
      while (state === 'running' && items.unrendered() < claimLimit) {
        const claimed = await repo.claimDueItems(
          deps.db,
          deps.instanceId,
          claimLimit - items.unrendered(),
          deps.leaseMs,
        )
        if (claimed.length === 0) return
        for (const item of claimed) items.hold(item)
        reportClaimed(deps, claimed)
      }
    } catch (err) {
      deps.log.error({ err }, 'claiming items failed')
    }
  }

  /** Drain stage: stop claiming; release items not started, let the rest finish, then release those left. */
  async function drain() {
    if (state !== 'running') return
    state = 'draining'
    clearInterval(poll)
    await filling
    await items.releaseWaiting()
    const ended = await within(items.settled(), deps.drainWaitMs ?? 5000)
    if (!ended) await items.releaseAll()
    state = 'closed'
  }

  return { wake, drain, close: drain, held: items.size }
}

/** One `claimed` command per generation, not awaited: the items render meanwhile. */
function reportClaimed(deps: RendererPoolDeps, claimed: GenerationItemRow[]) {
  for (const [generationId, group] of groupBy(claimed, (i) => i.generation_id)) {
    const command: GenerationCommand = {
      kind: 'claimed',
      generationId,
      items: group.map((i) => ({ id: i.id, key: i.key })),
    }
    void deps
      .ask(group[0]!.user_id, command)
      .catch((err) => deps.log.warn({ err, generationId }, 'could not report items started'))
  }
}

/** Whether `work` settled within `ms`; its timer is cleared either way. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const settled = await Promise.race([
    work.then(() => true),
    new Promise<false>((r) => (timer = setTimeout(() => r(false), ms))),
  ])
  clearTimeout(timer)
  return settled
}

function groupBy<T>(items: T[], key: (t: T) => string) {
  const out = new Map<string, T[]>()
  for (const item of items) out.set(key(item), [...(out.get(key(item)) ?? []), item])
  return out
}
