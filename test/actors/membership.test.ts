import { describe, expect, it } from 'bun:test'
import { makeMembership } from '../../src/actors/membership'
import { makeRedisKeys } from '../../src/redis/keys'
import { silentLog, useTestEnv } from '../support/env'
import { waitFor } from '../support/wait'

/**
 * A heartbeat whose answers this process reaches only past the beat's
 * deadline (it was paused between sending and reading them: SIGSTOP, a long
 * GC) says nothing current: it counts as failed, installs no view, and the
 * instance is not settled on it (src/actors/membership.ts, `beat`). Paused
 * here by blocking the event loop while the first beat is in flight.
 */
const env = await useTestEnv()
const redis = (await env.instance({ INSTANCE_ID: 'membership-host' })).redis!
const keys = makeRedisKeys(env.redisPrefix)
const LEASE_MS = 3000
const TIMEOUT_MS = 100

describe('a heartbeat reached past its deadline', () => {
  it('counts as failed and installs nothing; the next beat in time does', async () => {
    const me = `late-${crypto.randomUUID().slice(0, 8)}`
    const other = `alive-${crypto.randomUUID().slice(0, 8)}`
    await redis.set(keys.actorHeartbeat(other), String(Date.now()), { PX: 60_000 })
    await redis.zAdd(keys.actorMembers(), { score: Date.now(), value: other })
    const dead: string[] = []
    const membership = makeMembership({
      redis,
      keys,
      instanceId: me,
      leaseMs: LEASE_MS,
      announce: true,
      timeoutMs: TIMEOUT_MS,
      log: silentLog,
      onDead: (id) => dead.push(id),
    })
    try {
      const starting = membership.start()
      // paused past the beat's deadline (2 × TIMEOUT_MS) with its commands in flight
      Bun.sleepSync(4 * TIMEOUT_MS)
      await starting
      // the first timed beat comes a third of a lease later: this is the late beat's view
      expect(membership.live()).toEqual([me])
      expect(membership.settled()).toBe(false)
      // stale: an owner is alive only by a fresh look, so one whose key is gone is not
      await redis.del(keys.actorHeartbeat(other))
      expect(await membership.checkAlive(other)).toBe(false)
      await redis.set(keys.actorHeartbeat(other), String(Date.now()), { PX: 60_000 })
      await waitFor(
        () => membership.live().includes(other),
        5 * LEASE_MS,
        'a beat in time to install the view with the other member',
      )
      expect(dead).toEqual([])
    } finally {
      await membership.close()
      await redis.del(keys.actorHeartbeat(other))
      await redis.zRem(keys.actorMembers(), other)
    }
  })
})
