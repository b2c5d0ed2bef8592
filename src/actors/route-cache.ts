import type { Kysely } from 'kysely'
import type { DB } from '../db/schema'
import { withDeadline, type Redis } from '../redis/client'
import type { RedisKeys } from '../redis/keys'
import { readOwner, type Ownership } from './repository'

/**
 * Routes user → (owner, epoch), for placement.ts: in memory for 2 s and in
 * Redis for 10 minutes, both a cache; Postgres (actor_owners) is the truth,
 * read when both miss or when a route proved wrong. A stale route costs one
 * bounce (the target answers "moved"). No timers: entries age by their time.
 */
export type RouteCacheDeps = {
  db: Kysely<DB>
  redis: { main: Redis; keys: RedisKeys }
  /** Deadline of the Redis read. */
  redisTimeoutMs: number
}

/** A key's owner as last seen, with its epoch (0: unknown). */
export type Route = { owner: string | null; epoch: number }

const ROUTE_TTL_MS = 2000
const ROUTES_MAX = 100_000
const REDIS_ROUTE_TTL_MS = 600_000

export type RouteCache = ReturnType<typeof makeRouteCache>

export function makeRouteCache(deps: RouteCacheDeps, max = ROUTES_MAX) {
  const { db, redisTimeoutMs } = deps
  const { main: redis, keys } = deps.redis
  const routes = new Map<string, Route & { at: number }>()

  /** In memory, the oldest route evicted past `max` (a re-set key moves to the end). */
  function keep(key: string, r: Route) {
    routes.delete(key)
    routes.set(key, { owner: r.owner, epoch: r.epoch, at: Date.now() })
    while (routes.size > max) routes.delete(routes.keys().next().value!)
  }

  function remember(key: string, o: Ownership) {
    keep(key, o)
    const k = keys.actorRoute(key)
    const write = o.owner
      ? redis.set(k, `${o.owner} ${o.epoch}`, { PX: REDIS_ROUTE_TTL_MS })
      : redis.del(k)
    void write.catch(() => {})
  }

  return {
    /** The route seen here in the last 2 s, if any. */
    cached(key: string): Route | undefined {
      const r = routes.get(key)
      if (r && Date.now() - r.at < ROUTE_TTL_MS) return r
      return undefined
    },
    /** Redis' routing cache, then Postgres (the truth; `fresh` goes there at once). */
    async lookup(key: string, fresh: boolean): Promise<Route> {
      if (!fresh) {
        const text = await withDeadline(redisTimeoutMs, 'actor route', () =>
          redis.get(keys.actorRoute(key)),
        ).catch(() => null)
        if (text) {
          const [owner, epoch] = text.split(' ')
          const r = { owner: owner!, epoch: Number(epoch) }
          keep(key, r)
          return r
        }
      }
      const row = await readOwner(db, key)
      const r: Route = { owner: row?.owner ?? null, epoch: row?.epoch ?? 0 }
      if (row) remember(key, row)
      return r
    },
    /** An ownership record just read or won: cached here and in Redis. */
    remember,
    forget: (key: string) => routes.delete(key),
    /** Routes held in memory. */
    get size() {
      return routes.size
    },
    clear: () => routes.clear(),
  }
}
