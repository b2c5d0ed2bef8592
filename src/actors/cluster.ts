import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { StaleEpoch, Unavailable, toError } from '../errors'
import type { Logger } from '../obs/logger'
import type { Metrics } from '../obs/metrics'
import { withDeadline, type Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import {
  makeActorSystem,
  type ActorSystemOptions,
  type BatchContext,
  type BatchHandler,
  type Outcome,
} from './actor-system'
import { InboxGone, makeForwarding, ReplyTimeout, type Envelope, type Reply } from './forwarding'
import { makeMembership } from './membership'
import { claimOwner, readOwner, releaseAll, releaseOne, type Ownership } from './repository'
import type { WireCodec } from './wire'

/**
 * Cluster ownership of actors (DESIGN.md invariant 2): `ask(key, command)`
 * keeps the actor system's signature and runs the command where the key's
 * one live owner is.
 *
 *   owned here ─────────────────────▶ the local actor, its batches fenced by the epoch
 *   owned by a live other instance ──▶ forwarded to its inbox (forwarding.ts)
 *   nobody, or a dead owner ─────────▶ claimed here (local-first), epoch raised
 *
 * Local-first: a user's requests that land on one instance stay there, and
 * ownership moves only on drain, crash or an explicit release, never when
 * members come and go (no hash ring to reshuffle, no storm on a deploy).
 * Routes are cached here and in Redis; Postgres (actor_owners) is the truth,
 * and a stale route costs one bounce. A batch refused by its epoch (another
 * instance claimed while this one was paused) is re-routed, not failed.
 *
 * States: owning ──handOff()──▶ handing off (claims nothing; ownership
 * released; queued commands forwarded; the inbox answers "moved") ──close()──▶
 * closed. Embedded (no Redis): one process owns every key, unfenced.
 */
export type ClusterDeps<C, R> = Omit<ActorSystemOptions<C, R>, 'handle'> & {
  handle: BatchHandler<C, R>
  db: Kysely<DB>
  instanceId: string
  /** False outside the Fly.io primary region: never owns, never claims. */
  canOwn: boolean
  /** Server mode; absent when embedded. */
  redis?: { main: Redis; reader: Redis; keys: RedisKeys }
  wire: WireCodec<C, R>
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

const MAX_HOPS = 3
const ROUTE_TTL_MS = 2000

type Route = { owner: string | null; epoch: number }

export type Cluster<C, R> = Awaited<ReturnType<typeof makeCluster<C, R>>>

export async function makeCluster<C, R>(deps: ClusterDeps<C, R>) {
  const { db, instanceId: me, log, wire } = deps
  const leaseMs = deps.leaseMs ?? 3000
  const forwardTimeoutMs = deps.forwardTimeoutMs ?? 2 * leaseMs + 2000
  const redisTimeoutMs = deps.redisTimeoutMs ?? 1000
  const owned = new Map<string, number>()
  const routes = new Map<string, Route & { at: number }>()
  const deciding = new Map<string, Promise<void>>()
  const embeddedSince = new Map<string, Date>()
  let claiming = deps.canOwn
  let closed = false
  const inflight = new Set<Promise<unknown>>()
  let takeovers = 0
  const forwardTimes: number[] = []

  const m = deps.metrics
  const name = deps.name
  m?.gauge(`${name}_owned`, 'Actors this instance owns', [], () => owned.size)
  const forwarded = m?.counter(`${name}_forwarded_total`, 'Commands forwarded', ['result'])
  const forwardSeconds = m?.histogram(
    `${name}_forward_seconds`,
    'Forwarded command round trip',
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
  )
  const bounced = m?.counter(`${name}_bounced_total`, 'Forwards answered "moved" or lost inbox')
  const fencedBatches = m?.counter(`${name}_fenced_batches_total`, 'Batches refused by the epoch')
  const takeoverCount = m?.counter(`${name}_takeovers_total`, 'Users claimed over a dead owner')
  const recovered = m?.counter(`${name}_inbox_recovered_total`, 'Dead inbox entries processed')
  const handoffSeconds = m?.histogram(
    `${name}_handoff_seconds`,
    'Hand-off on drain',
    [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  )

  const actors = makeActorSystem<C, R>({ ...deps, handle: fencedHandle })
  const redis = deps.redis
  const takingOver = new Set<string>()
  const membership = redis
    ? makeMembership({
        redis: redis.main,
        keys: redis.keys,
        instanceId: me,
        leaseMs,
        announce: deps.canOwn,
        timeoutMs: redisTimeoutMs,
        log,
        onDead: (dead) => {
          if (!claiming || takingOver.has(dead)) return
          takingOver.add(dead)
          void forwarding!
            .takeOver(dead)
            .then((n) => {
              if (n > 0) log.info({ dead, entries: n }, 'took over a dead instance inbox')
              recovered?.inc(n)
            })
            .catch((err) => log.warn({ err, dead }, 'inbox takeover failed'))
            .finally(() => takingOver.delete(dead))
        },
      })
    : undefined
  const forwarding = redis
    ? await makeForwarding({
        redis: redis.main,
        reader: redis.reader,
        keys: redis.keys,
        instanceId: me,
        timeoutMs: redisTimeoutMs,
        log,
        receive,
      })
    : undefined
  await membership?.start()

  /** The actor's batch, under this instance's epoch; what the epoch refuses goes to the owner. */
  async function fencedHandle(
    key: string,
    batch: readonly C[],
    context?: BatchContext,
  ): Promise<Outcome<R>[]> {
    // the batch's deadline signal (actor-system.ts) goes with every handle call made for it
    if (!redis) return deps.handle(key, batch, context)
    const signal = context?.signal
    const epoch = owned.get(key)
    if (epoch === undefined)
      return Promise.all(batch.map((c) => settle(route(key, c, 1, true, signal))))
    const outcomes = await deps.handle(key, batch, { ...context, epoch })
    const stale = outcomes.flatMap((o, i) => (!o.ok && o.error instanceof StaleEpoch ? [i] : []))
    if (stale.length === 0) return outcomes
    fencedBatches?.inc()
    log.warn({ key, epoch, commands: stale.length }, 'batch fenced: re-routing to the owner')
    if (owned.get(key) === epoch) owned.delete(key)
    routes.delete(key)
    await Promise.all(
      stale.map(async (i) => (outcomes[i] = await settle(route(key, batch[i]!, 1, true, signal)))),
    )
    return outcomes
  }

  /**
   * Runs `command` where its owner is. `inActor`: called from inside the key's
   * own batch (a fenced command re-routed), so a command that lands here runs
   * in that batch, not behind it in the mailbox it is blocking.
   */
  async function route(
    key: string,
    command: C,
    hops: number,
    inActor = false,
    signal?: AbortSignal,
  ): Promise<R> {
    for (;;) {
      const epoch = owned.get(key)
      if (epoch !== undefined) {
        if (!inActor) return actors.ask(key, command)
        const [outcome] = await deps.handle(key, [command], { epoch, signal })
        if (outcome!.ok || !(outcome!.error instanceof StaleEpoch)) return unwrap(outcome!)
        fencedBatches?.inc()
        if (owned.get(key) === epoch) owned.delete(key)
        routes.delete(key)
        hops++
        continue
      }
      if (hops > MAX_HOPS)
        throw new Unavailable('The owner of this account moved too often; retry', 1)
      const target = await decide(key, hops > 0)
      if (target === undefined) continue // claimed here
      const reply = await forward(target, key, command, hops)
      if (reply) return unwrap(reply)
      hops++
    }
  }

  /**
   * Where a key's commands go now: undefined once this instance owns it,
   * else the live owner to forward to. One decision per key at a time.
   */
  async function decide(key: string, fresh: boolean): Promise<Route | undefined> {
    for (;;) {
      const pending = deciding.get(key)
      if (!pending) break
      await pending.catch(() => {})
      if (owned.has(key)) return undefined
    }
    let result: Route | undefined
    const run = (async () => {
      result = await decideOnce(key, fresh)
    })()
    deciding.set(key, run)
    try {
      await run
    } finally {
      deciding.delete(key)
    }
    return result
  }

  async function decideOnce(key: string, fresh: boolean): Promise<Route | undefined> {
    let known = fresh ? undefined : cached(key)
    if (!known || known.owner === me) known = await lookup(key, fresh || known?.owner === me)
    if (known.owner && known.owner !== me && (await alive(known.owner))) return known
    if (!claiming) {
      // handing off: the user goes to a live instance, which claims it (local-first there)
      const others = membership!.live().filter((id) => id !== me)
      if (others.length === 0) throw new Unavailable('No instance can take this account now', 1)
      return { owner: others[hash(key) % others.length]!, epoch: 0 }
    }
    const dead = known.owner && known.owner !== me ? known.owner : null
    // just back from a Redis outage, every heartbeat has expired, the live ones too
    if (dead && !membership!.settled())
      throw new Unavailable('Cluster routing is recovering (Redis); retry shortly', 1)
    let won = await claimOwner(db, key, me, dead, leaseMs)
    if (dead && won.owner === dead && won.leaseLeftMs > 0) {
      // its heartbeat lapsed before its own fresh claim's lease did (it died right after
      // claiming): that lease is a time on the database clock, so wait it out, then claim
      await Bun.sleep(won.leaseLeftMs + 5)
      won = await claimOwner(db, key, me, dead, leaseMs)
    }
    remember(key, won)
    if (won.owner === me && !claiming) {
      // the hand-off began while this claim was in flight: give it up at once
      await releaseOne(db, key, me, won.epoch)
      routes.delete(key)
      return decideOnce(key, true)
    }
    if (won.owner === me) {
      owned.set(key, won.epoch)
      if (dead) {
        takeovers++
        takeoverCount?.inc()
        log.info({ key, dead, epoch: won.epoch }, 'took over an actor')
      }
      return undefined
    }
    if (won.owner && (await alive(won.owner))) return { owner: won.owner, epoch: won.epoch }
    throw new Unavailable('The owner of this account is not reachable yet; retry', 1)
  }

  function cached(key: string): Route | undefined {
    const r = routes.get(key)
    if (r && Date.now() - r.at < ROUTE_TTL_MS) return r
    return undefined
  }

  /** Redis' routing cache, then Postgres (the truth; `fresh` goes there at once). */
  async function lookup(key: string, fresh: boolean): Promise<Route> {
    if (!fresh) {
      const text = await withDeadline(redisTimeoutMs, 'actor route', () =>
        redis!.main.get(redis!.keys.actorRoute(key)),
      ).catch(() => null)
      if (text) {
        const [owner, epoch] = text.split(' ')
        const r = { owner: owner!, epoch: Number(epoch) }
        routes.set(key, { ...r, at: Date.now() })
        return r
      }
    }
    const row = await readOwner(db, key)
    const r: Route = { owner: row?.owner ?? null, epoch: row?.epoch ?? 0 }
    if (row) remember(key, row)
    return r
  }

  function remember(key: string, o: Ownership) {
    routes.set(key, { owner: o.owner, epoch: o.epoch, at: Date.now() })
    if (routes.size > 100_000) routes.delete(routes.keys().next().value!)
    const k = redis!.keys.actorRoute(key)
    const write = o.owner
      ? redis!.main.set(k, `${o.owner} ${o.epoch}`, { PX: 600_000 })
      : redis!.main.del(k)
    void write.catch(() => {})
  }

  /** The reply, or undefined when the target did not take it (moved, gone): route again. */
  async function forward(target: Route, key: string, command: C, hops: number) {
    const envelope: Envelope = {
      id: crypto.randomUUID(),
      from: me,
      key,
      epoch: target.epoch,
      deadline: Date.now() + forwardTimeoutMs,
      hops,
      command: wire.encodeCommand(command),
    }
    const t0 = performance.now()
    let reply: Reply
    try {
      reply = await forwarding!.send(target.owner!, envelope, forwardTimeoutMs)
    } catch (err) {
      if (err instanceof InboxGone) {
        bounced?.inc()
        routes.delete(key)
        return undefined
      }
      forwarded?.inc({ result: err instanceof ReplyTimeout ? 'timeout' : 'failed' })
      if (err instanceof ReplyTimeout)
        throw new Unavailable('The owner of this account did not answer in time; retry', 1, err)
      throw new Unavailable('Could not reach the owner of this account; retry', 1, err)
    }
    const ms = performance.now() - t0
    forwardSeconds?.observe(ms / 1000)
    forwardTimes.push(Date.now())
    if (forwardTimes.length > 100_000) forwardTimes.splice(0, 50_000)
    if ('moved' in reply) {
      bounced?.inc()
      routes.delete(key)
      return undefined
    }
    forwarded?.inc({ result: 'answered' })
    return wire.decodeOutcome(command, reply.outcome)
  }

  /** An inbox entry: run it if this instance owns (or may claim) the key, else "moved". */
  async function receive(envelope: Envelope): Promise<Reply> {
    let command: C
    try {
      command = wire.decodeCommand(envelope.command)
    } catch (err) {
      log.error({ err, key: envelope.key }, 'undecodable forwarded command')
      return { outcome: wire.encodeOutcome(command!, { ok: false, error: toError(err) }) }
    }
    if (!owned.has(envelope.key)) {
      if (!claiming) return { moved: true }
      try {
        if ((await decide(envelope.key, true)) !== undefined) return { moved: true }
      } catch (err) {
        return { outcome: wire.encodeOutcome(command, { ok: false, error: toError(err) }) }
      }
    }
    const outcome = await settle(actors.ask(envelope.key, command))
    return { outcome: wire.encodeOutcome(command, outcome) }
  }

  async function alive(id: string): Promise<boolean> {
    try {
      return await membership!.checkAlive(id)
    } catch (err) {
      // no look at the owner's heartbeat: neither forward blindly nor take its users
      throw new Unavailable('Cluster routing is unavailable (Redis); retry shortly', 1, err)
    }
  }

  function ask(key: string, command: C): Promise<R> {
    if (!redis) {
      if (!embeddedSince.has(key)) embeddedSince.set(key, new Date())
      return actors.ask(key, command)
    }
    if (closed) return Promise.reject(new Unavailable('This instance is draining; retry', 1))
    const p = route(key, command, 0)
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

  /**
   * Drain stage, before the renderer pool's: claim nothing more, give up
   * every owned key (so the next command anywhere claims it at once), let
   * in-flight batches finish and forward what is still queued.
   */
  async function handOff() {
    const t0 = performance.now()
    claiming = false
    if (redis) {
      const released = await releaseAll(db, me).catch((err) => {
        log.warn({ err }, 'releasing ownership failed: the others take over after the lease')
        return [] as string[]
      })
      owned.clear()
      routes.clear()
      for (let i = 0; i < released.length; i += 500) {
        const chunk = released.slice(i, i + 500).map((k) => redis.keys.actorRoute(k))
        await redis.main.del(chunk).catch(() => {})
      }
      log.info({ released: released.length }, 'actors handed off')
    }
    // what was queued here goes to the new owners: each batch now finds no ownership
    await Promise.allSettled([...inflight])
    handoffSeconds?.observe((performance.now() - t0) / 1000)
  }

  return {
    ask,
    handOff,
    /** The last drain stage (after the hand-off and the renderer pool). */
    drain,
    /** Gives up one key (an explicit rebalance): the next command anywhere claims it. */
    async release(key: string) {
      const epoch = owned.get(key)
      if (epoch === undefined || !redis) return false
      owned.delete(key)
      routes.delete(key)
      const done = await releaseOne(db, key, me, epoch)
      await redis.main.del(redis.keys.actorRoute(key)).catch(() => {})
      return done
    },
    /** Who owns `key`, from Postgres: the same answer on every instance; undefined: nobody. */
    async ownerOf(key: string) {
      if (!redis) {
        const since = embeddedSince.get(key)
        return since ? { userId: key, owner: me, epoch: 1, since: since.toISOString() } : undefined
      }
      const row = await readOwner(db, key)
      if (!row?.owner) return undefined
      return { userId: key, owner: row.owner, epoch: row.epoch, since: row.since.toISOString() }
    },
    stats() {
      const now = Date.now()
      let recent = 0
      for (let i = forwardTimes.length - 1; i >= 0 && forwardTimes[i]! > now - 10_000; i--) recent++
      return {
        ...actors.stats(),
        ownedActors: redis ? owned.size : actors.stats().live,
        forwardsPerSecond: recent / 10,
        takeovers,
      }
    },
    async close() {
      claiming = false
      await membership?.close()
      await drain()
      await forwarding?.close()
    },
  }
}

async function settle<R>(p: Promise<R>): Promise<Outcome<R>> {
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

function hash(s: string) {
  let h = 0
  for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0
  return Math.abs(h)
}
