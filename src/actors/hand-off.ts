import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import type { Logger } from '../obs/logger'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import type { ClusterMetrics } from './cluster-metrics'
import type { Placement } from './placement'
import { releaseAll, releaseOne } from './repository'

/**
 * Giving ownership up (cluster.ts), which is the only way it moves apart
 * from a takeover after a crash: every key on drain (the hand-off), or one
 * key (an explicit rebalance).
 *
 *   owning ──handOff()──▶ handing off: claims nothing more; every owned key
 *     released in one statement (the next command anywhere claims it at once,
 *     with a higher epoch); what is queued or in flight here finds no
 *     ownership and goes to the new owners.
 *   owning `key` ──release(key)──▶ `key` released, the rest as it was.
 */
export type HandOffDeps = {
  db: Kysely<DB>
  redis: { main: Redis; keys: RedisKeys }
  placement: Placement
  instanceId: string
  log: Logger
  metrics: ClusterMetrics
  /** The asks in flight on this instance (forwarded or local): the hand-off waits for them. */
  inflight: () => Promise<unknown>[]
}

/** Route keys deleted per Redis call after a hand-off. */
const DELETE_CHUNK = 500

export function makeHandOff(deps: HandOffDeps) {
  const { db, placement, instanceId: me, log } = deps
  const { main: redis, keys } = deps.redis

  /**
   * Drain stage, before the renderer pool's: claim nothing more, give up
   * every owned key (so the next command anywhere claims it at once), let
   * in-flight batches finish and forward what is still queued.
   */
  async function handOff() {
    const t0 = performance.now()
    placement.stopClaiming()
    const released = await releaseAll(db, me).catch((err) => {
      log.warn({ err }, 'releasing ownership failed: the others take over after the lease')
      return [] as string[]
    })
    placement.clear()
    for (let i = 0; i < released.length; i += DELETE_CHUNK) {
      const chunk = released.slice(i, i + DELETE_CHUNK).map((k) => keys.actorRoute(k))
      await redis.del(chunk).catch(() => {})
    }
    log.info({ released: released.length }, 'actors handed off')
    // what was queued here goes to the new owners: each batch now finds no ownership
    await Promise.allSettled(deps.inflight())
    deps.metrics.handoffSeconds?.observe((performance.now() - t0) / 1000)
  }

  /** Gives up one key (an explicit rebalance): the next command anywhere claims it. */
  async function release(key: string) {
    const epoch = placement.epochOf(key)
    if (epoch === undefined) return false
    placement.forget(key)
    const done = await releaseOne(db, key, me, epoch)
    await redis.del(keys.actorRoute(key)).catch(() => {})
    return done
  }

  return { handOff, release }
}
