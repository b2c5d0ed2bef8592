import { afterAll, describe, expect, it } from 'bun:test'
import { useTestEnv } from '../support/env'
import { startFaultProxy } from '../support/fault-proxy'
import { client } from '../support/http'

/**
 * Outside the actor path (generation reads, the idempotency claim, users, the
 * ledger routes) a database that does not answer is 503 `unavailable` with
 * Retry-After, never a 500; and the same requests answer again once it does.
 */
const env = await useTestEnv()
const u = new URL(env.databaseUrl)
const proxy = await startFaultProxy({ host: u.hostname, port: Number(u.port || 5432) })
afterAll(() => proxy.close())
const inst = await env.instance({
  DATABASE_URL: proxy.url(env.databaseUrl),
  DB_CONNECT_TIMEOUT_MS: '500',
  RENDER_CONCURRENCY: '0',
})
const api = client(inst)

describe('database down outside the actor path', () => {
  it('answers 503 unavailable with Retry-After, then serves again', async () => {
    const me = await api.register()
    const requests = [
      () => api.get('/v1/generations', me.token),
      () => api.get(`/v1/generations/${crypto.randomUUID()}`, me.token),
      () => api.get('/v1/credits/ledger', me.token),
      () => api.get('/v1/me', me.token),
      () => api.post('/v1/auth/login', { email: me.user.email, password: me.password }),
      () =>
        api.post(
          '/v1/generations',
          { mode: 'text', prompt: 'while the database is down', variations: 1 },
          me.token,
          { 'idempotency-key': 'down-1' },
        ),
    ]
    proxy.cut()
    proxy.refuse()
    try {
      for (const request of requests) {
        const res = await request()
        expect({ status: res.status, code: res.json?.error?.code }).toEqual({
          status: 503,
          code: 'unavailable',
        })
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
      }
    } finally {
      proxy.heal()
    }
    for (const request of requests.slice(0, 5)) expect((await request()).status).toBeLessThan(500)
  })
})
