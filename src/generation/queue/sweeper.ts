import type { Kysely } from 'kysely'
import type { Logger } from 'pino'
import type { DB } from '../../db/schema'
import type { GenerationCommand } from '../commands'
import * as repo from './repository'
import { RENDER_FAILED_MESSAGE } from './retry-policy'

/**
 * Every `intervalMs`, on every instance (each step is safe to run twice):
 *  - items whose lease expired (their instance died) go back to the queue, or
 *    fail through the user's actor when no attempt is left;
 *  - generations past their deadline have their queued items cancelled and
 *    refunded, through the user's actor.
 */
export type SweeperDeps = {
  db: Kysely<DB>
  /** The user actor's ask: outcomes and cancels go through it. */
  ask: (userId: string, command: GenerationCommand) => Promise<unknown>
  maxAttempts: number
  intervalMs: number
  log: Logger
  /** Default true; false outside the primary region (Fly.io): no timer, sweep() does nothing. */
  enabled?: boolean
}

export function makeSweeper(deps: SweeperDeps) {
  let running: Promise<void> | undefined
  const enabled = deps.enabled ?? true
  const timer = enabled ? setInterval(() => void sweep(), deps.intervalMs) : undefined
  timer?.unref?.()

  function sweep(): Promise<void> {
    if (!enabled) return Promise.resolve()
    running ??= once().finally(() => (running = undefined))
    return running
  }

  async function once() {
    try {
      const { requeued, exhausted } = await repo.reclaimExpiredLeases(deps.db, deps.maxAttempts)
      if (requeued > 0) deps.log.warn({ requeued }, 'items with expired leases back in the queue')
      for (const item of exhausted)
        await deps.ask(item.user_id, {
          kind: 'outcome',
          itemId: item.id,
          owner: null,
          result: {
            status: 'failed',
            code: 'lease_expired',
            message: RENDER_FAILED_MESSAGE,
          },
        })
      for (const g of await repo.overdueGenerations(deps.db))
        await deps.ask(g.user_id, { kind: 'cancel', generationId: g.id, reason: 'deadline' })
    } catch (err) {
      deps.log.error({ err }, 'sweep failed')
    }
  }

  return {
    sweep,
    async close() {
      clearInterval(timer)
      await running
    },
  }
}
