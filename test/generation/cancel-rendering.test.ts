import { afterAll, describe, expect, it, setDefaultTimeout } from 'bun:test'
import { checkLedger, readBalance } from '../../src/ledger/service'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'
import { imageResponse, startFakeInference } from './fake-inference'
import { sampleImage } from './fixtures'

// real renders through a real (fake) inference server
setDefaultTimeout(60_000)

const env = await useTestEnv()

describe('cancel while items render', () => {
  it('lets running items finish or fail, cancels and refunds only the queued ones, exactly', async () => {
    const fake = await startFakeInference()
    afterAll(fake.stop)
    const png = await sampleImage('png')
    const gate = Promise.withResolvers<void>()
    // the first render succeeds, the second is refused for good; both wait at the gate
    fake.respond = () => {
      const nth = fake.requests
      return gate.promise.then(() =>
        nth === 2 ? Response.json({ error: 'refused' }, { status: 400 }) : imageResponse(png),
      )
    }
    const worker = await env.instance({
      RENDERER: 'http',
      RENDER_HTTP_URL: fake.url,
      RENDER_HTTP_TOKEN: 't',
      RENDER_CONCURRENCY: '2',
      RENDER_MAX_ATTEMPTS: '1',
      RENDER_SIZE: '128',
      RENDER_SWEEP_MS: '60000',
      SIGNUP_CREDITS: '1000',
    })
    const api = client(worker)
    try {
      const { token, user } = await api.register()
      const g = (
        await api.post(
          '/v1/generations',
          { mode: 'text', prompt: 'six dancers', variations: 6 },
          token,
        )
      ).json
      expect(g).toMatchObject({ totalItems: 6, creditsCharged: 180 })
      // two render (held at the gate), one more per slot is claimed ahead, two stay queued
      await fake.whenInFlight(2)
      await waitFor(() => worker.pool.held() === 4, 5000, 'two items to be claimed ahead')
      const statuses = async () =>
        (
          await env.sql`select status, count(*)::int as n from generation_items where generation_id = ${g.id} group by status order by status`
        ).map((r) => [r.status, r.n])
      expect(await statuses()).toEqual([
        ['queued', 2],
        ['running', 4],
      ])

      const cancelled = await api.post(`/v1/generations/${g.id}/cancel`, undefined, token)
      expect(cancelled.status).toBe(200)
      expect(cancelled.json).toMatchObject({ cancelledItems: 2, creditsRefunded: 60 })
      // the running ones are untouched by the cancel
      expect(await statuses()).toEqual([
        ['cancelled', 2],
        ['running', 4],
      ])
      expect(await readBalance(worker.database.db, user.id)).toBe(1000 - 180 + 60)

      gate.resolve()
      let done: any
      await waitFor(
        async () => {
          done = (await api.get(`/v1/generations/${g.id}`, token)).json
          return done.finishedAt !== null
        },
        20_000,
        'the generation to finish',
      )
      expect(done).toMatchObject({
        status: 'partial',
        totalItems: 6,
        succeededItems: 3,
        failedItems: 1,
        cancelledItems: 2,
        creditsCharged: 180,
        creditsRefunded: 90,
        queuePosition: null,
      })
      expect(fake.requests).toBe(4)
      // one refund per cancelled or failed item, each once
      const refunds =
        await env.sql`select idempotency_key, amount::int from ledger_entries where user_id = ${user.id} and kind = 'refund' order by idempotency_key`
      expect(refunds).toHaveLength(3)
      expect(new Set(refunds.map((r) => r.idempotency_key)).size).toBe(3)
      expect(refunds.every((r) => r.amount === 30)).toBe(true)
      expect(await readBalance(worker.database.db, user.id)).toBe(1000 - 180 + 90)
      expect((await checkLedger(worker.database.db)).ok).toBe(true)
    } finally {
      gate.resolve()
      await worker.close()
    }
  })
})
