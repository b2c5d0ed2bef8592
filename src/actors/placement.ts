import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { Unavailable } from '../errors'
import type { Logger } from '../obs/logger'
import { withDeadline, type Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import type { ClusterMetrics } from './cluster-metrics'
import type { Membership } from './membership'
import { claimOwner, readOwner, releaseOne, type Claimed } from './repository'
import { makeRouteCache, type Route, type RouteCache } from './route-cache'

/**
 * Where a key's commands go (cluster.ts): the keys this instance owns, with
 * their fencing epochs; the routes to the others (route-cache.ts); and one
 * decision per key at a time, which claims a key that nobody, or a dead
 * instance, owns. Local-first: the instance a command reached claims it.
 *
 * Per key: not owned here ──decide(), claim won──▶ owned here (epoch)
 *          owned here ──forget() (a fenced batch, a release, the hand-off)──▶ not owned here
 *          owned here ──holdBack() (an explicit release)──▶ held back: its
 *            commands go to another live instance ──resume──▶ not owned here
 * Instance: claiming ──stopClaiming() (the hand-off)──▶ not claiming: every
 *   key it decides on goes to another live instance, which claims it there.
 */
export type PlacementDeps = {
  db: Kysely<DB>
  redis: { main: Redis; keys: RedisKeys }
  membership: Membership
  instanceId: string
  /** False outside the Fly.io primary region: never claims. */
  claiming: boolean
  /** A fresh claim's lease (ACTOR_LEASE_MS). */
  leaseMs: number
  /** Deadline of each routing call to Redis. */
  redisTimeoutMs: number
  log: Logger
  metrics: ClusterMetrics
}

export type Placement = ReturnType<typeof makePlacement>

/** Deadline of the ownership check after a failed batch (movedFrom). */
const OWNER_CHECK_MS = 1000

type PlacementState = PlacementDeps & {
  owned: Map<string, number>
  routes: RouteCache
  /** The decision in flight per key. */
  deciding: Map<string, Promise<void>>
  /** Keys being released here (holdBack): sent to another live instance, not claimed again. */
  releasing: Set<string>
}

export function makePlacement(deps: PlacementDeps) {
  const owned = new Map<string, number>()
  const routes = makeRouteCache(deps)
  const state: PlacementState = {
    ...deps,
    owned,
    routes,
    deciding: new Map(),
    releasing: new Set(),
  }
  return {
    /**
     * Where a key's commands go now: undefined once this instance owns it,
     * else the live owner to forward to. `fresh`: skip the caches.
     * `claimFree` false: a key nobody owns is not claimed here; its route
     * (owner null) is returned instead. `avoid`: instances that already
     * answered "moved" to this command; a hand-off target is picked among the others.
     */
    decide: (key: string, fresh: boolean, claimFree = true, avoid?: ReadonlySet<string>) =>
      decide(state, key, fresh, claimFree, avoid),
    /** This instance's epoch for `key`; undefined: not owned here. */
    epochOf: (key: string) => owned.get(key),
    /** Forgets `key`: its ownership (only at `epoch` when given: a fenced batch's) and its route. */
    forget(key: string, epoch?: number) {
      if (epoch === undefined || owned.get(key) === epoch) owned.delete(key)
      routes.forget(key)
    },
    /**
     * Forgets `key` for an explicit rebalance and, until the returned function
     * is called, sends its commands to another live instance instead of
     * claiming it here again (with no other, it is claimed here as before).
     */
    holdBack: (key: string) => holdBack(state, key),
    /** Whether instance `id` is alive (a fresh look when the view lacks it); 503 when Redis cannot say. */
    isAlive: (id: string) => alive(state, id),
    /** Forgets a route that proved wrong (the target answered "moved", or its inbox is gone). */
    forgetRoute: (key: string) => routes.forget(key),
    /** Forgets every owned key and route (the hand-off released them all). */
    clear() {
      owned.clear()
      routes.clear()
    },
    get claiming() {
      return state.claiming
    },
    stopClaiming() {
      state.claiming = false
    },
    get ownedCount() {
      return owned.size
    },
    /**
     * Whether Postgres shows `key` no longer held here at `epoch` (claimed by
     * another, or released). False when that cannot be read within a second.
     */
    movedFrom: (key: string, epoch: number) => movedFrom(state, key, epoch),
  }
}

function holdBack(state: PlacementState, key: string) {
  state.owned.delete(key)
  state.routes.forget(key)
  state.releasing.add(key)
  return () => void state.releasing.delete(key)
}

async function movedFrom(state: PlacementState, key: string, epoch: number) {
  const row = await withDeadline(OWNER_CHECK_MS, 'actor owner', () =>
    readOwner(state.db, key),
  ).catch(() => undefined)
  return row !== undefined && (row.owner !== state.instanceId || row.epoch !== epoch)
}

/** One decision per key at a time: a caller that waited for one may find the key owned here. */
async function decide(
  state: PlacementState,
  key: string,
  fresh: boolean,
  claimFree: boolean,
  avoid?: ReadonlySet<string>,
) {
  for (;;) {
    const pending = state.deciding.get(key)
    if (!pending) break
    await pending.catch(() => {})
    if (state.owned.has(key)) return undefined
  }
  let result: Route | undefined
  const run = (async () => {
    result = await decideOnce(state, key, fresh, claimFree, avoid)
  })()
  state.deciding.set(key, run)
  try {
    await run
  } finally {
    state.deciding.delete(key)
  }
  return result
}

async function decideOnce(
  state: PlacementState,
  key: string,
  fresh: boolean,
  claimFree = true,
  avoid?: ReadonlySet<string>,
): Promise<Route | undefined> {
  const { instanceId: me, routes } = state
  let known = fresh ? undefined : routes.cached(key)
  if (!known || known.owner === me) known = await routes.lookup(key, fresh || known?.owner === me)
  if (known.owner && known.owner !== me && (await alive(state, known.owner))) return known
  if (!known.owner && !claimFree) return known
  if (!state.claiming) return elsewhere(state, key, avoid)
  if (state.releasing.has(key) && others(state).length > 0) return elsewhere(state, key, avoid)
  const dead = known.owner && known.owner !== me ? known.owner : null
  const won = await claim(state, key, dead)
  if (won.owner === me && !state.claiming) {
    // the hand-off began while this claim was in flight: give it up at once
    await releaseOne(state.db, key, me, won.epoch)
    routes.forget(key)
    return decideOnce(state, key, true, true, avoid)
  }
  if (won.owner === me) {
    state.owned.set(key, won.epoch)
    if (dead) {
      state.metrics.tookOver()
      state.log.info({ key, dead, epoch: won.epoch }, 'took over an actor')
    }
    return undefined
  }
  if (won.owner && (await alive(state, won.owner))) return { owner: won.owner, epoch: won.epoch }
  throw new Unavailable('The owner of this account is not reachable yet; retry', 1)
}

/**
 * Handing off or releasing: the user goes to a live instance, which claims it
 * (local-first there); one that answered "moved" already (draining too, as in
 * a rolling deploy that stops two at once) only when no other is left.
 */
function elsewhere(state: PlacementState, key: string, avoid?: ReadonlySet<string>): Route {
  const live = others(state)
  if (live.length === 0) throw new Unavailable('No instance can take this account now', 1)
  const untried = avoid ? live.filter((id) => !avoid.has(id)) : live
  const pool = untried.length > 0 ? untried : live
  return { owner: pool[hash(key) % pool.length]!, epoch: 0 }
}

function others(state: PlacementState) {
  return state.membership.live().filter((id) => id !== state.instanceId)
}

/** Claims `key` here, over `dead` when named (found without a heartbeat): the record as it stands. */
async function claim(state: PlacementState, key: string, dead: string | null): Promise<Claimed> {
  const { db, instanceId: me, leaseMs } = state
  // just back from a Redis outage, every heartbeat has expired, the live ones too
  if (dead && !state.membership.settled())
    throw new Unavailable('Cluster routing is recovering (Redis); retry shortly', 1)
  let won = await claimOwner(db, key, me, dead, leaseMs)
  if (dead && won.owner === dead && won.leaseLeftMs > 0) {
    // its heartbeat lapsed before its own fresh claim's lease did (it died right after
    // claiming): that lease is a time on the database clock, so wait it out, then claim
    await Bun.sleep(won.leaseLeftMs + 5)
    won = await claimOwner(db, key, me, dead, leaseMs)
  }
  state.routes.remember(key, won)
  return won
}

async function alive(state: PlacementState, id: string): Promise<boolean> {
  try {
    return await state.membership.checkAlive(id)
  } catch (err) {
    // no look at the owner's heartbeat: neither forward blindly nor take its users
    throw new Unavailable('Cluster routing is unavailable (Redis); retry shortly', 1, err)
  }
}

function hash(s: string) {
  let h = 0
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0
  return Math.abs(h)
}
