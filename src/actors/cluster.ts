import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { Unavailable } from '../errors'
import type { Logger } from '../obs/logger'
import type { Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import {
  makeActorSystem,
  type ActorSystem,
  type ActorSystemDeps,
  type Ask,
  type CommandOf,
  type Exchange,
  type ResultOf,
} from './actor-system'
import { makeClusterMetrics, type ClusterMetrics } from './cluster-metrics'
import { makeForwarding, type Forwarding } from './forwarding'
import { makeHandOff } from './hand-off'
import { makeMembership } from './membership'
import { ownerView, type OwnerView } from './owner-view'
import { makePlacement } from './placement'
import { makeRebalance } from './rebalance'
import { readOwner } from './repository'
import { makeRouter, type Router } from './routing'
import type { WireCodec } from './wire'

/**
 * Cluster ownership of actors (DESIGN.md invariant 2): `ask(key, command)`
 * keeps the actor system's signature and runs the command where the key's
 * one live owner is.
 *
 *   owned here ─────────────────────▶ the local actor, its batches fenced by the epoch
 *   owned by a live other instance ──▶ forwarded to its inbox (routing.ts, forwarding.ts)
 *   nobody, or a dead owner ─────────▶ claimed here (local-first), epoch raised (placement.ts)
 *
 * Local-first: a user's requests that land on one instance stay there, and
 * ownership moves only on drain, crash or an explicit release (hand-off.ts),
 * never when members come and go (no hash ring to reshuffle, no storm on a
 * deploy). Routes are cached here and in Redis; Postgres (actor_owners) is
 * the truth, and a stale route costs one bounce. A batch refused by its
 * epoch (another instance claimed while this one was paused) is re-routed,
 * not failed.
 *
 * States: owning ──handOff()──▶ handing off (claims nothing; ownership
 * released; queued commands forwarded; the inbox answers "moved") ──drain()──▶
 * draining (asks refused, those in flight finish) ──close()──▶ closed
 * (heartbeat deleted, inbox read ended and deleted). Embedded (no Redis): one
 * process owns every key, unfenced.
 */
export type ClusterDeps<P extends Exchange> = ActorSystemDeps<P> & {
  db: Kysely<DB>
  instanceId: string
  /** False outside the Fly.io primary region: never owns, never claims. */
  canOwn: boolean
  /** Server mode; absent when embedded. */
  redis?: ClusterRedis
  wire: WireCodec<CommandOf<P>, ResultOf<P>>
  /** ACTOR_LEASE_MS: heartbeat TTL, and a fresh claim's lease (default 3000). */
  leaseMs?: number
  /** How long a sender awaits a forwarded command's reply (default 2 × lease + 2000 ms). */
  forwardTimeoutMs?: number
  /**
   * Deadline of each routing call to Redis (default 1000 ms): node-redis does
   * not time out a command already written to a server that stopped answering.
   */
  redisTimeoutMs?: number
}

type ClusterRedis = { main: Redis; reader: Redis; keys: RedisKeys }

export type ClusterStats = ReturnType<ActorSystem<Exchange>['stats']> &
  ReturnType<ClusterMetrics['figures']> & { ownedActors: number }

export type Cluster<P extends Exchange> = {
  ask: Ask<P>
  /** Drain stage before the renderer pool's (hand-off.ts). */
  handOff(): Promise<void>
  /** The last drain stage (after the hand-off and the renderer pool). */
  drain(): Promise<void>
  /**
   * Gives up one key wherever it is owned (an explicit rebalance, rebalance.ts):
   * the ownership given up, or undefined when nobody owned it.
   */
  release(key: string): Promise<OwnerView | undefined>
  /** Who owns `key`, from Postgres: the same answer on every instance; undefined: nobody. */
  ownerOf(key: string): Promise<OwnerView | undefined>
  stats(): ClusterStats
  close(): Promise<void>
}

export async function makeCluster<P extends Exchange>(deps: ClusterDeps<P>): Promise<Cluster<P>> {
  return deps.redis ? makeServerCluster(deps, deps.redis) : makeEmbeddedCluster(deps)
}

async function makeServerCluster<P extends Exchange>(
  deps: ClusterDeps<P>,
  redis: ClusterRedis,
): Promise<Cluster<P>> {
  const inflight = new Set<Promise<unknown>>()
  let closed = false
  const { actors, membership, placement, router, forwarding, handOff, rebalance, metrics } =
    await assemble(deps, redis, inflight)

  function ask(key: string, command: CommandOf<P>): Promise<ResultOf<P>> {
    if (closed) return Promise.reject(new Unavailable('This instance is draining; retry', 1))
    const p = router.route(key, command, 0)
    // an ask is in flight from here, not only once it reaches a mailbox: drain waits for it
    inflight.add(p)
    void p.then(
      () => inflight.delete(p),
      () => inflight.delete(p),
    )
    return p
  }

  /** Refuses new asks, lets every ask in flight finish (forwarded or local), then the actors. */
  async function drain() {
    closed = true
    await Promise.allSettled([...inflight])
    await actors.drain()
  }

  return {
    // a routed command answers what the actor runtime answers for it (actor-system.ts)
    ask: ask as Ask<P>,
    handOff: handOff.handOff,
    drain,
    release: rebalance.release,
    async ownerOf(key) {
      const row = await readOwner(deps.db, key)
      return row?.owner ? ownerView(row, row.owner) : undefined
    },
    stats: () => ({ ...actors.stats(), ownedActors: placement.ownedCount, ...metrics.figures() }),
    async close() {
      placement.stopClaiming()
      await membership.close()
      await drain()
      await forwarding.close()
    },
  }
}

/** The server mode's parts, each made from the ones before it; heartbeats start last. */
async function assemble<P extends Exchange>(
  deps: ClusterDeps<P>,
  redis: ClusterRedis,
  inflight: Set<Promise<unknown>>,
) {
  const { db, instanceId, log } = deps
  const leaseMs = deps.leaseMs ?? 3000
  const redisTimeoutMs = deps.redisTimeoutMs ?? 1000
  const forwardTimeoutMs = deps.forwardTimeoutMs ?? 2 * leaseMs + 2000
  const metrics = makeClusterMetrics(deps.name, deps.metrics, () => placement.ownedCount)
  // what most parts take
  const base = { db, redis, instanceId, leaseMs, redisTimeoutMs, log, metrics }
  const actors: ActorSystem<P> = makeActorSystem<P>({
    ...deps,
    handle: (key, batch, context) => router.fencedHandle(key, batch, context),
  })
  const membership = makeMembership({
    ...{ redis: redis.main, keys: redis.keys, instanceId, leaseMs, log },
    announce: deps.canOwn,
    timeoutMs: redisTimeoutMs,
    onDead: (dead) => takeOver(dead),
  })
  const placement = makePlacement({ ...base, membership, claiming: deps.canOwn })
  const router: Router<CommandOf<P>, ResultOf<P>> = makeRouter({
    ...base,
    placement,
    // first called once commands flow, after makeForwarding below has answered
    send: (target, envelope, ms) => forwarding.send(target, envelope, ms),
    askLocal: (key, command) => actors.ask(key, command),
    handle: deps.handle,
    wire: deps.wire,
    forwardTimeoutMs,
  })
  const forwarding = await makeForwarding({
    ...{ redis: redis.main, reader: redis.reader, keys: redis.keys, instanceId, log },
    timeoutMs: redisTimeoutMs,
    // a release is not a command: the owner gives the key up (rebalance.ts)
    receive: (envelope) =>
      envelope.op === 'release' ? rebalance.answer(envelope) : router.receive(envelope),
  })
  const takeOver = inboxTakeovers(forwarding, () => placement.claiming, log, metrics)
  const handOff = makeHandOff({
    ...base,
    placement,
    inflight: () => [...inflight],
    whenIdle: actors.whenIdle,
    leave: () => membership.close(),
  })
  const rebalance = makeRebalance({
    db,
    instanceId,
    placement,
    send: forwarding.send,
    releaseHere: handOff.release,
    timeoutMs: forwardTimeoutMs,
  })
  await membership.start()
  return { actors, membership, placement, router, forwarding, handOff, rebalance, metrics }
}

/**
 * What membership reports dead: its inbox taken over (inbox-takeover.ts), at
 * most one takeover per dead instance at a time, none while handing off.
 */
function inboxTakeovers(
  forwarding: Forwarding,
  claiming: () => boolean,
  log: Logger,
  metrics: ClusterMetrics,
) {
  const takingOver = new Set<string>()
  return (dead: string) => {
    if (!claiming() || takingOver.has(dead)) return
    takingOver.add(dead)
    void forwarding
      .takeOver(dead)
      .then((n) => {
        if (n > 0) log.info({ dead, entries: n }, 'took over a dead instance inbox')
        metrics.recovered?.inc(n)
      })
      .catch((err) => log.warn({ err, dead }, 'inbox takeover failed'))
      .finally(() => takingOver.delete(dead))
  }
}

/** Embedded mode: one process owns every key, unfenced, with no ownership traffic. */
function makeEmbeddedCluster<P extends Exchange>(deps: ClusterDeps<P>): Cluster<P> {
  const actors = makeActorSystem<P>(deps)
  const metrics = makeClusterMetrics(deps.name, deps.metrics, () => 0)
  const since = new Map<string, Date>()
  const viewOf = (key: string) => {
    const at = since.get(key)
    if (!at) return undefined
    return ownerView({ userId: key, owner: deps.instanceId, epoch: 1, since: at }, deps.instanceId)
  }
  return {
    ask(key, command) {
      if (!since.has(key)) since.set(key, new Date())
      return actors.ask(key, command)
    },
    handOff: async () => {},
    drain: actors.drain,
    // one process owns everything: a release forgets the record, the next command makes it again
    async release(key) {
      const view = viewOf(key)
      since.delete(key)
      return view
    },
    ownerOf: async (key) => viewOf(key),
    stats: () => ({ ...actors.stats(), ownedActors: actors.stats().live, ...metrics.figures() }),
    close: actors.close,
  }
}
