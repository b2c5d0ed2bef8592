import { afterAll, describe, expect, it, setDefaultTimeout } from 'bun:test'
import { createClient } from 'redis'
import { makeRedisKeys } from '../../src/redis/keys'
import { makeHeartbeat, type InstanceFigures } from '../../src/stats/heartbeat'
import { silentLog, useTestEnv } from '../support/env'

/**
 * The per-instance records behind GET /v1/admin/stats are short-lived: an
 * instance that dies without closing (kill -9, a partition) leaves the list
 * when its record expires, ttlSeconds after its last beat.
 */
setDefaultTimeout(30_000)

const env = await useTestEnv()
const keys = makeRedisKeys(env.redisPrefix)
const redis = createClient({ url: env.services.redisUrl })
await redis.connect()
afterAll(() => redis.quit())

const figures = (id: string) => (): InstanceFigures => ({
  id,
  region: null,
  uptimeSeconds: 0,
  actorsLive: 0,
  ownedActors: 0,
  forwardsPerSecond: 0,
  takeovers: 0,
  websocketConnections: 0,
  inflightRequests: 0,
  at: new Date().toISOString(),
})

describe('instance heartbeat records', () => {
  it('drop an instance that stopped beating without closing once its record expires', async () => {
    const log = silentLog
    const live = await makeHeartbeat({ redis, keys, read: figures('a-live'), log })
    // beats once at start, then not for a minute: as good as dead after ttlSeconds
    const dead = await makeHeartbeat({
      redis,
      keys,
      read: figures('b-dead'),
      log,
      intervalMs: 60_000,
      ttlSeconds: 1,
    })
    try {
      expect((await live.all()).map((i) => i.id)).toEqual(['a-live', 'b-dead'])
      const deadline = Date.now() + 5000
      let ids = (await live.all()).map((i) => i.id)
      while (ids.includes('b-dead')) {
        if (Date.now() > deadline)
          throw new Error(`b-dead still listed 5 s after its 1 s record: ${ids}`)
        await Bun.sleep(100)
        ids = (await live.all()).map((i) => i.id)
      }
      expect(ids).toEqual(['a-live'])
    } finally {
      await dead.close()
      await live.close()
    }
  })
})

describe('a record from another version', () => {
  it('reads the figures an older instance does not report as 0, and refuses what is no record', async () => {
    const { readRecord } = await import('../../src/stats/heartbeat')
    const older = readRecord({
      id: 'old-1',
      region: null,
      actorsLive: 3,
      at: '2026-12-01T00:00:00.000Z',
    })
    expect(older).toEqual({
      id: 'old-1',
      region: null,
      at: '2026-12-01T00:00:00.000Z',
      uptimeSeconds: 0,
      actorsLive: 3,
      ownedActors: 0,
      forwardsPerSecond: 0,
      takeovers: 0,
      websocketConnections: 0,
      inflightRequests: 0,
    })
    expect(readRecord({ id: 'x', actorsLive: 'lots', takeovers: -1 }).actorsLive).toBe(0)
    for (const raw of [null, 7, 'text', { actorsLive: 1 }]) expect(() => readRecord(raw)).toThrow()
  })
})
