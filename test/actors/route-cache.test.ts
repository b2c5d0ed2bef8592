import { describe, expect, it } from 'bun:test'
import { makeRouteCache } from '../../src/actors/route-cache'
import { makeRedisKeys } from '../../src/redis/keys'
import { useTestEnv } from '../support/env'

/**
 * The in-memory routes stay within their bound whichever way a route
 * arrives: won or read from Postgres, or found in Redis' routing cache
 * (src/actors/route-cache.ts).
 */
const env = await useTestEnv()
const redis = (await env.instance({ INSTANCE_ID: 'routes-host' })).redis!
const { db } = await env.database()
const keys = makeRedisKeys(env.redisPrefix)

describe('the route cache', () => {
  it('holds at most its bound of routes, the latest ones', async () => {
    const routes = makeRouteCache({ db, redis: { main: redis, keys }, redisTimeoutMs: 1000 }, 3)
    const users = Array.from({ length: 6 }, () => crypto.randomUUID())
    for (const [i, u] of users.entries())
      await redis.set(keys.actorRoute(u), `instance-${i} ${i + 1}`, { PX: 60_000 })
    for (const u of users) await routes.lookup(u, false)
    expect(routes.size).toBe(3)
    expect(routes.cached(users[5]!)).toEqual(
      expect.objectContaining({ owner: 'instance-5', epoch: 6 }),
    )
    expect(routes.cached(users[0]!)).toBeUndefined()
    routes.remember(users[0]!, {
      userId: users[0]!,
      owner: 'instance-0',
      epoch: 1,
      since: new Date(),
    })
    expect(routes.size).toBe(3)
    expect(routes.cached(users[0]!)?.owner).toBe('instance-0')
  })
})
