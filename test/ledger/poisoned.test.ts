import { describe, expect, it, setDefaultTimeout } from 'bun:test'
import { DB_RETRY_AFTER_SECONDS, classifyDbError, toDbAppError } from '../../src/db/errors'
import { dispatchByType } from '../../src/actors/dispatch'
import { AppError, Unavailable } from '../../src/errors'
import { signPayload } from '../../src/ledger/webhook-signature'
import { checkLedger, readBalance } from '../../src/ledger/service'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'

/**
 * One bad command fails alone (issue 15, item 2): a command the database
 * refuses for a reason of its own (here a NUL, which Postgres text refuses
 * with SQLSTATE 22P05) gets its own 4xx; the others of the same actor batch
 * and the same combined cross-user commit still apply. The edge refuses a NUL
 * long before (input-rules.test.ts), so these commands go in past it, as a
 * value the edge does not know about would.
 */
// several registrations (argon2) per test: more than bun's 5 s default on a busy machine
setDefaultTimeout(30_000)
const env = await useTestEnv()
const SECRET = 'whsec_poison_0123456789abcdef'
const inst = await env.instance({
  PAYMENT_WEBHOOK_SECRET: SECRET,
  RENDER_CONCURRENCY: '0',
  MAX_ACTIVE_GENERATIONS: '1000',
})
const api = client(inst)

const poisoned = (key: string) => ({
  kind: 'grant' as const,
  amount: 7,
  reason: `bad\u0000reason`,
  key,
})
const good = (key: string) => ({ kind: 'grant' as const, amount: 10, reason: 'fine', key })

async function settle(promises: Promise<unknown>[]) {
  const results = await Promise.allSettled(promises)
  return results.map((r) =>
    r.status === 'fulfilled'
      ? 'ok'
      : `${(r.reason as AppError).status} ${(r.reason as AppError).code}`,
  )
}

describe('one poisoned command fails alone', () => {
  it('applies eight good signed webhooks sent at once with a poisoned one for the same user', async () => {
    const { user } = await api.register()
    const send = (id: string) => {
      const body = JSON.stringify({ id, type: 'credits.purchased', userId: user.id, credits: 10 })
      return api.call('POST', '/v1/webhooks/payments', {
        body,
        headers: { 'atelier-signature': signPayload(body, SECRET, Math.floor(Date.now() / 1000)) },
      })
    }
    const ids = Array.from({ length: 8 }, () => `evt_${crypto.randomUUID()}`)
    const responses = await Promise.all([
      ...ids.slice(0, 4).map(send),
      send(`evt_\u0000x`),
      ...ids.slice(4).map(send),
    ])
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 422, 200, 200, 200, 200])
    expect(await readBalance(inst.database.db, user.id)).toBe(80)
  })

  it('applies the rest of one user’s actor batch when one command is refused by Postgres', async () => {
    const { user } = await api.register()
    const outcomes = await settle([
      ...Array.from({ length: 4 }, () => inst.credits.apply(user.id, good(crypto.randomUUID()))),
      inst.credits.apply(user.id, poisoned(crypto.randomUUID())),
      ...Array.from({ length: 4 }, () => inst.credits.apply(user.id, good(crypto.randomUUID()))),
    ])
    expect(outcomes).toEqual([
      'ok',
      'ok',
      'ok',
      'ok',
      '422 validation_failed',
      'ok',
      'ok',
      'ok',
      'ok',
    ])
    expect(await readBalance(inst.database.db, user.id)).toBe(80)
    const rows = await env.sql`select id from ledger_entries where user_id = ${user.id}`
    expect(rows.length).toBe(8)
  })

  it('applies other users’ batches of the same combined commit', async () => {
    // the writer has 4 slots: users 0..3 go out alone, 4..11 queue into one combined commit
    const users = await Promise.all(Array.from({ length: 12 }, () => api.register()))
    const bad = users.length - 1
    const outcomes = await settle(
      users.flatMap(({ user }, i) => [
        inst.credits.apply(
          user.id,
          i === bad ? poisoned(crypto.randomUUID()) : good(crypto.randomUUID()),
        ),
        inst.credits.apply(user.id, good(crypto.randomUUID())),
      ]),
    )
    expect(outcomes.filter((o) => o === 'ok').length).toBe(23)
    expect(outcomes[2 * bad]).toBe('422 validation_failed')
    for (const [i, { user }] of users.entries())
      expect(await readBalance(inst.database.db, user.id)).toBe(i === bad ? 10 : 20)
    expect((await checkLedger(inst.database.db)).ok).toBe(true)
  })

  it('fails a generation the database refuses with 422 and accepts its neighbours', async () => {
    const { user } = await api.register()
    await inst.credits.apply(user.id, { kind: 'grant', amount: 300, reason: 'x', key: 'fund' })
    const accept = (prompt: string) =>
      inst.generations.accept(
        user.id,
        { mode: 'text', prompt, variations: 1 },
        { commandKey: crypto.randomUUID() },
      )
    const outcomes = await settle([accept('a cat'), accept('a \ud800 dog'), accept('a cow')])
    expect(outcomes).toEqual(['ok', '422 validation_failed', 'ok'])
    expect(await readBalance(inst.database.db, user.id)).toBe(300 - 60)
  })
})

describe('SQLSTATE classification', () => {
  it('puts data and integrity errors on the request, availability on the database', () => {
    const e = (code: string) => Object.assign(new Error('x'), { code })
    expect(
      ['22P05', '22021', '22003', '22007', '23503', '23514', '23502'].map((c) =>
        classifyDbError(e(c)),
      ),
    ).toEqual(Array(7).fill('input'))
    expect(classifyDbError(e('23505'))).toBe('conflict')
    expect(['40001', '40P01'].map((c) => classifyDbError(e(c)))).toEqual(['retry', 'retry'])
    expect(
      ['08006', '08001', '53300', '57P01', '57P03', '57014'].map((c) => classifyDbError(e(c))),
    ).toEqual(Array(6).fill('unavailable'))
    expect(classifyDbError(Object.assign(new Error('socket'), { code: 'ECONNRESET' }))).toBe(
      'unavailable',
    )
    expect(classifyDbError(new TypeError('oops'))).toBeUndefined()
    expect(classifyDbError(e('42601'))).toBeUndefined()
    expect(toDbAppError(e('22P05'))?.status).toBe(422)
    expect(toDbAppError(e('57P01'))?.status).toBe(503)
    expect(toDbAppError(e('57P01'))?.headers['retry-after']).toBe(String(DB_RETRY_AFTER_SECONDS))
    expect(toDbAppError(e('42601'))).toBeUndefined()
  })
})

describe('actor batch of mixed commands', () => {
  it('fails only the run of commands whose handler failed', async () => {
    const handle = dispatchByType<{ type: 'a' | 'b' }, string>({
      a: async () => {
        throw new Unavailable('down')
      },
      b: async (_key, batch) => batch.map(() => ({ ok: true, value: 'done' })),
    })
    const out = await handle('k', [{ type: 'b' }, { type: 'a' }, { type: 'b' }])
    expect(out.map((o) => o.ok)).toEqual([true, false, true])
  })
})
