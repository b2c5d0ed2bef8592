import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import type { Logger } from '../obs/logger'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import type { ClusterMetrics } from './cluster-metrics'
import type { Placement } from './placement'
import { readOwner, releaseAll, releaseOne, type Ownership } from './repository'

/**
 * Giving ownership up (cluster.ts), which is the only way it moves apart
 * from a takeover after a crash: every key on drain (the hand-off), or one
 * key (an explicit rebalance).
 *
 *   owning ──handOff()──▶ handing off: claims nothing more; every owned key
 *     released in one statement (the next command anywhere claims it at once,
 *     with a higher epoch); what is queued or in flight here finds no
 *     ownership and goes to the new owners.
 *   owning `key` ──release(key)──▶ releasing `key`: its batch in flight
 *     finishes, what is queued is forwarded to another live instance
 *     ──mailbox empty──▶ released; the next command anywhere claims it.
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
  /** Resolves once the key's actor has nothing queued and no batch in flight (actor-system.ts). */
  whenIdle: (key: string) => Promise<void>
  /**
   * Stops this instance's heartbeat (membership.ts close): when its users could
   * not be released, the others see it gone and take them over after their lease.
   */
  leave: () => Promise<void>
}

/** Tries at releasing every owned key on drain, the waits between them doubling from this. */
const RELEASE_TRIES = 3
const RELEASE_BACKOFF_MS = 100

/** Route keys deleted per Redis call after a hand-off. */
const DELETE_CHUNK = 500

export function makeHandOff(deps: HandOffDeps) {
  return {
    handOff: () => handOff(deps),
    release: (key: string) => release(deps, key),
  }
}

/**
 * Drain stage, before the renderer pool's: claim nothing more, give up
 * every owned key (so the next command anywhere claims it at once), let
 * in-flight batches finish and forward what is still queued.
 */
async function handOff(deps: HandOffDeps) {
  const { placement, log } = deps
  const t0 = performance.now()
  placement.stopClaiming()
  const released = await releaseOwned(deps)
  placement.clear()
  for (let i = 0; i < released.length; i += DELETE_CHUNK) {
    const chunk = released.slice(i, i + DELETE_CHUNK).map((k) => deps.redis.keys.actorRoute(k))
    await deps.redis.main.del(chunk).catch(() => {})
  }
  log.info({ released: released.length }, 'actors handed off')
  // what was queued here goes to the new owners: each batch now finds no ownership
  await Promise.allSettled(deps.inflight())
  deps.metrics.handoffSeconds?.observe((performance.now() - t0) / 1000)
}

/**
 * Every owned key released in one statement, tried a few times. When that
 * keeps failing (Postgres unreachable) the records still name this
 * instance, and while its heartbeat lives the others forward its users to it
 * and it answers "moved": nobody could serve them until it closed. So it
 * leaves the membership: they find it gone and claim its users over it
 * (with a higher epoch, which fences whatever it still has in flight).
 */
async function releaseOwned(deps: HandOffDeps): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await releaseAll(deps.db, deps.instanceId)
    } catch (err) {
      if (attempt < RELEASE_TRIES) {
        await Bun.sleep(RELEASE_BACKOFF_MS * 2 ** (attempt - 1))
        continue
      }
      deps.log.warn(
        { err },
        'releasing ownership failed: leaving, the others take over after the lease',
      )
      await deps.leave()
      return []
    }
  }
}

/**
 * Gives up `key` here (an explicit rebalance): the batch in flight
 * finishes under its epoch; what is queued behind it, and what arrives
 * meanwhile, goes to another live instance, which claims it with a higher
 * epoch. Resolves with the record given up once the mailbox is empty;
 * undefined when this instance does not hold the key.
 */
async function release(deps: HandOffDeps, key: string): Promise<Ownership | undefined> {
  const { placement, instanceId: me } = deps
  const epoch = placement.epochOf(key)
  if (epoch === undefined) return releaseRecord(deps, key)
  // Postgres first: until this instance forgets the key it keeps running its commands
  // (another may claim meanwhile, which the epoch fences), and once it has, every
  // sender that reads Postgres sees the key free, not still here
  const released = await releaseOne(deps.db, key, me, epoch)
  if (!released) {
    placement.forget(key, epoch)
    return undefined
  }
  const resume = placement.holdBack(key)
  try {
    await forgetRoute(deps, key)
    await deps.whenIdle(key)
    deps.log.info({ key, epoch }, 'actor released')
    return released
  } finally {
    resume()
  }
}

/** Postgres names this instance but memory does not (a restart with the same id): the record alone. */
async function releaseRecord(deps: HandOffDeps, key: string) {
  const row = await readOwner(deps.db, key)
  if (row?.owner !== deps.instanceId) return undefined
  const released = await releaseOne(deps.db, key, deps.instanceId, row.epoch)
  await forgetRoute(deps, key)
  return released
}

/** The routing cache in Redis forgets `key` (a miss there reads Postgres). */
function forgetRoute(deps: HandOffDeps, key: string) {
  return deps.redis.main.del(deps.redis.keys.actorRoute(key)).catch(() => {})
}
