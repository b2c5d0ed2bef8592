import { afterAll, afterEach, describe, expect, it, setSystemTime } from 'bun:test'
import postgres from 'postgres'
import { Conflict } from '../../src/errors'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'

/**
 * One clock: deadlines, holds and expiries are computed and compared on the
 * database's now(). The instance here runs with its clock (Date.now, the
 * process clock every room reads) skewed by two minutes either way; the
 * database is untouched.
 */
const env = await useTestEnv()
const HOLD_MS = 2000
const inst = await env.instance({ RENDER_CONCURRENCY: '0', IDEMPOTENCY_HOLD_MS: String(HOLD_MS) })
const api = client(inst)
const real = Date.now

afterEach(() => setSystemTime())

/** Skews this process's clock (the instance's) by `ms`; the database keeps its own. */
function skew(ms: number) {
  setSystemTime(new Date(real() + ms))
}

async function user(credits = 1000) {
  const u = await api.register()
  await inst.credits.apply(u.user.id, {
    kind: 'grant',
    amount: credits,
    reason: 'test',
    key: `grant-${u.user.id}`,
  })
  return u
}

describe('one clock', () => {
  for (const offset of [-120_000, 120_000]) {
    it(`counts a generation deadline from the database clock (instance clock ${offset / 1000} s)`, async () => {
      const u = await user()
      skew(offset)
      const res = await api.post(
        '/v1/generations',
        { mode: 'text', prompt: 'a skewed clock', variations: 1, deadlineSeconds: 60 },
        u.token,
      )
      setSystemTime()
      expect(res.status).toBe(202)
      const [row] = await env.sql`
        select extract(epoch from deadline_at - now())::float as left
        from generations where id = ${res.json.id}`
      expect(row!.left).toBeGreaterThan(50)
      expect(row!.left).toBeLessThanOrEqual(60)
      // a sweep now cancels nothing: the deadline is a minute away on the database's clock
      skew(offset)
      await inst.sweeper.sweep()
      setSystemTime()
      const after = await api.get(`/v1/generations/${res.json.id}`, u.token)
      expect(after.json.cancelledItems).toBe(0)
    })

    it(`holds an in-flight Idempotency-Key for IDEMPOTENCY_HOLD_MS of database time (instance clock ${offset / 1000} s)`, async () => {
      const u = await user()
      const request = new Request('http://localhost/v1/anything', {
        method: 'POST',
        headers: { 'idempotency-key': `k-${offset}` },
      })
      const call = () => ({ request, set: { headers: {} }, userId: u.user.id, body: { a: 1 } })
      skew(offset)
      // the first request's process "dies": its operation never settles, the key stays in flight
      void inst.idempotency.run(call(), () => new Promise(() => {}))
      await waitFor(
        async () =>
          (await env.sql`select 1 from idempotency_keys where user_id = ${u.user.id}`).length === 1,
        2000,
        'the claim to be written',
      )
      const second = await inst.idempotency.run(call(), async () => 'ran').catch((e) => e)
      expect(second).toBeInstanceOf(Conflict)
      const retryAfter = Number((second as Conflict).headers['retry-after'])
      expect(retryAfter).toBeGreaterThanOrEqual(1)
      expect(retryAfter).toBeLessThanOrEqual(HOLD_MS / 1000)
      // once the hold is over on the database's clock, a retry takes the key over and runs
      let outcome: unknown
      await waitFor(
        async () => {
          outcome = await inst.idempotency.run(call(), async () => 'ran').catch((e) => e)
          return outcome === 'ran'
        },
        HOLD_MS + 3000,
        'the retry to take over the key after its hold',
      )
    }, 15_000)
  }
})

describe('readiness', () => {
  const admin = postgres(env.services.postgresUrl, { max: 1, onnotice: () => {} })
  const name = `${env.dbName}_empty`
  afterAll(async () => {
    await admin.unsafe(`drop database if exists "${name}" with (force)`)
    await admin.end()
  })

  it('is not ready on an unmigrated database with MIGRATE_ON_START=false', async () => {
    await admin.unsafe(`create database "${name}"`)
    const url = new URL(env.databaseUrl)
    url.pathname = `/${name}`
    const empty = await env.instance({ DATABASE_URL: url.toString(), RENDER_CONCURRENCY: '0' })
    const res = await client(empty).get('/health/ready')
    expect(res.status).toBe(503)
    expect(res.json.error.code).toBe('unavailable')
    expect(res.json.error.message).toContain('postgres')
    expect(res.headers.get('retry-after')).not.toBeNull()
  })
})
