import { afterAll, describe, expect, it } from 'bun:test'
import { createClient } from 'redis'
import { makeRedisKeys } from '../../src/redis/keys'
import { useTestEnv } from '../support/env'
import { startFaultProxy } from '../support/fault-proxy'
import { client } from '../support/http'
import { waitFor } from '../support/wait'

/**
 * The guard against takeovers after a Redis outage (src/actors/membership.ts,
 * `settled`; src/actors/placement.ts, `claim`): when Redis comes back every
 * heartbeat has expired, the live instances' too. An instance reads a
 * missing heartbeat as a death only once its own beats have succeeded for a
 * whole lease, so an owner whose heartbeat comes back within a lease of this
 * instance's is neither taken over nor has its inbox taken. Two instances of
 * one process, each reaching Redis through its own fault proxy, so that one
 * comes back before the other.
 */
const env = await useTestEnv()
const LEASE_MS = 5000
const redisUrl = new URL(env.services.redisUrl)
const target = { host: redisUrl.hostname, port: Number(redisUrl.port || 6379) }
const [proxyA, proxyB] = await Promise.all([startFaultProxy(target), startFaultProxy(target)])
// registered after useTestEnv's: the instances close first, while their proxies still forward
afterAll(async () => {
  await Promise.all([proxyA.close(), proxyB.close()])
  await redis.quit()
})
const cluster = (id: string, proxy: typeof proxyA) => ({
  INSTANCE_ID: id,
  REDIS_URL: proxy.url(env.services.redisUrl),
  ACTOR_LEASE_MS: String(LEASE_MS),
  REDIS_COMMAND_TIMEOUT_MS: '300',
})
const a = await env.instance(cluster('outage-a', proxyA))
const b = await env.instance(cluster('outage-b', proxyB))
const keys = makeRedisKeys(env.redisPrefix)
// the test's own look at Redis, not through either proxy
const redis = createClient({ url: env.services.redisUrl })
await redis.connect()
const beating = async (id: string) => (await redis.exists(keys.actorHeartbeat(id))) === 1

async function ownerOf(userId: string) {
  const [row] = await env.sql`select owner, epoch::int from actor_owners where user_id = ${userId}`
  return row
}

/**
 * How Redis goes away: refused (every connection reset: commands fail at once)
 * or stalled (a partition: commands written before it wait, and are answered
 * when it heals, long after the beat that sent them was counted as failed).
 */
const outages = {
  refused: (proxy: typeof proxyA) => {
    proxy.refuse()
    proxy.cut()
  },
  stalled: (proxy: typeof proxyA) => proxy.stall(),
}

describe.each(Object.keys(outages) as (keyof typeof outages)[])(
  'after a Redis outage (%s)',
  (kind) => {
    it('takes over nobody whose heartbeat lapsed only because Redis was away', async () => {
      const { user } = await client(a).register()
      const grant = (key: string) =>
        b.credits.apply(user.id, { kind: 'grant', amount: 1, reason: 'outage', key })
      await a.credits.apply(user.id, { kind: 'grant', amount: 10, reason: 'outage', key: 'first' })
      expect(await ownerOf(user.id)).toEqual({ owner: 'outage-a', epoch: 1 })
      // Redis away for both, longer than a lease: every heartbeat expires
      for (const proxy of [proxyA, proxyB]) outages[kind](proxy)
      const cutAt = performance.now()
      try {
        await waitFor(
          async () => !(await beating('outage-a')) && !(await beating('outage-b')),
          LEASE_MS + 3000,
          'both heartbeats to expire',
        )
        // and the outage lasts more than a lease after b's first beat inside it (a time, with no
        // event to await): a beat's MULTI, once written or queued offline, has no timeout in
        // node-redis, and may complete once Redis is back; it must not count b as connected
        // since it began
        await Bun.sleep(Math.max(0, cutAt + 1.5 * LEASE_MS - performance.now()))
        // b comes back first: its first beats find a's heartbeat missing
        proxyB.heal()
        await waitFor(() => beating('outage-b'), 5000, "b's heartbeat back")
        const backAt = performance.now()
        const firstBeat = await redis.get(keys.actorHeartbeat('outage-b'))
        // a command for a's user on b: a's heartbeat is gone, but b has not seen Redis for a lease
        const during = await grant('during').then(
          () => 'applied',
          (error: unknown) => error,
        )
        expect(during).toMatchObject({ code: 'unavailable', status: 503 })
        expect((during as { headers: Record<string, string> }).headers['retry-after']).toBeTruthy()
        // b beats again a third of a lease later, so what its first beats made of a's missing
        // heartbeat is done; a, still cut off, cannot have touched its own streams meanwhile
        await waitFor(
          async () => (await redis.get(keys.actorHeartbeat('outage-b'))) !== firstBeat,
          LEASE_MS,
          "b's next beat",
        )
        expect(await redis.exists(keys.instanceInbox('outage-a'))).toBe(1)
        expect(await redis.zScore(keys.actorMembers(), 'outage-a')).not.toBeNull()
        expect(performance.now() - backAt).toBeLessThan(LEASE_MS) // all inside b's first lease
        // a comes back within that lease: b forwards to it, and nothing was taken over
        proxyA.heal()
        await waitFor(() => beating('outage-a'), 5000, "a's heartbeat back")
        expect(performance.now() - backAt).toBeLessThan(LEASE_MS)
        expect((await grant('during')).balance).toBe(11)
        expect(await ownerOf(user.id)).toEqual({ owner: 'outage-a', epoch: 1 })
        expect(b.userActors.stats().takeovers).toBe(0)
        expect(a.userActors.stats().takeovers).toBe(0)
        // and once b has seen Redis for a lease (a time, with no event to await) it still
        // forwards to the live owner
        await Bun.sleep(LEASE_MS - (performance.now() - backAt) + 500)
        expect((await grant('after')).balance).toBe(12)
        expect(await ownerOf(user.id)).toEqual({ owner: 'outage-a', epoch: 1 })
        expect(b.userActors.stats().takeovers).toBe(0)
      } finally {
        // a failed check must not leave an instance cut off for the closing of the file
        proxyA.heal()
        proxyB.heal()
      }
    }, 60_000)
  },
)
