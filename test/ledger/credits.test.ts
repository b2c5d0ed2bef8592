import { describe, expect, it } from 'bun:test'
import { AppError } from '../../src/errors'
import { checkLedger, readBalance } from '../../src/ledger/service'
import { signPayload } from '../../src/ledger/webhook-signature'
import type { Instance } from '../../src/server'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { waitFor } from '../support/wait'

const env = await useTestEnv()
const WEBHOOK_SECRET = 'whsec_test_0123456789abcdef'
const inst = await env.instance({
  ADMIN_EMAILS: 'admin@example.com',
  PAYMENT_WEBHOOK_SECRET: WEBHOOK_SECRET,
  SIGNUP_CREDITS: '25',
})
const api = client(inst)
const admin = await api.register('admin@example.com')

async function grant(userId: string, amount: number, key?: string, token = admin.token) {
  return api.post(
    '/v1/admin/credits/grants',
    { userId, amount, reason: 'test' },
    token,
    key ? { 'idempotency-key': key } : {},
  )
}

async function chargeMany(target: Instance, userId: string, n: number, amount: number) {
  const results = await Promise.allSettled(
    Array.from({ length: n }, () =>
      target.credits.apply(userId, {
        kind: 'charge',
        amount,
        reason: 'test charge',
        key: crypto.randomUUID(),
      }),
    ),
  )
  const ok = results.filter((r) => r.status === 'fulfilled').length
  const codes = results.flatMap((r) =>
    r.status === 'rejected' ? [(r.reason as AppError).code] : [],
  )
  return { ok, codes }
}

describe('no overdraft under concurrency', () => {
  it('accepts exactly 500 of 1,000 concurrent charges of 30 against 15,000, with group commit', async () => {
    const { user } = await api.register()
    expect((await grant(user.id, 15_000 - 25)).status).toBe(201)
    const before = inst.userActors.stats()
    const { ok, codes } = await chargeMany(inst, user.id, 1000, 30)
    expect(ok).toBe(500)
    expect(codes.length).toBe(500)
    expect(new Set(codes)).toEqual(new Set(['insufficient_credits']))
    expect(await readBalance(inst.database.db, user.id)).toBe(0)
    const after = inst.userActors.stats()
    const mean = (after.commands - before.commands) / (after.batches - before.batches)
    // group commit: while one transaction is in flight the rest queue into the next
    expect(mean).toBeGreaterThan(10)
    expect((await checkLedger(inst.database.db)).ok).toBe(true)
  })

  it('still accepts exactly 500 when two instances (two actor systems) charge the same user', async () => {
    const other = await env.instance()
    const { user } = await api.register()
    await grant(user.id, 15_000 - 25)
    const [a, b] = await Promise.all([
      chargeMany(inst, user.id, 500, 30),
      chargeMany(other, user.id, 500, 30),
    ])
    expect(a.ok + b.ok).toBe(500)
    expect(await readBalance(inst.database.db, user.id)).toBe(0)
    const check = await checkLedger(inst.database.db)
    expect(check).toMatchObject({ ok: true, mismatches: [] })
  })

  it('reports a tampered balance in the reconciliation check', async () => {
    const { user } = await api.register()
    await env.sql`update credit_accounts set balance = balance + 1 where user_id = ${user.id}`
    const res = await api.get('/v1/admin/ledger/check', admin.token)
    expect(res.status).toBe(200)
    expect(res.json.ok).toBe(false)
    expect(res.json.mismatches).toContainEqual({ userId: user.id, balance: 26, sumOfEntries: 25 })
    await env.sql`update credit_accounts set balance = balance - 1 where user_id = ${user.id}`
    expect((await api.get('/v1/admin/ledger/check', admin.token)).json.ok).toBe(true)
  })
})

describe('grants and idempotency', () => {
  it('grants signup credits once, shows them in /v1/me, /v1/credits and the ledger', async () => {
    const { user, token, password } = await api.register()
    await api.post('/v1/auth/login', { email: user.email, password })
    expect((await api.get('/v1/me', token)).json.balance).toBe(25)
    expect((await api.get('/v1/credits', token)).json).toEqual({ balance: 25 })
    const ledger = await api.get('/v1/credits/ledger', token)
    expect(ledger.json.items).toHaveLength(1)
    expect(ledger.json.items[0]).toMatchObject({ amount: 25, balanceAfter: 25, kind: 'grant' })
  })

  it('replays the first response for the same key, and 409s the same key with another body', async () => {
    const { user, token } = await api.register()
    const first = await grant(user.id, 100, 'grant-key-1')
    const again = await grant(user.id, 100, 'grant-key-1')
    expect(first.status).toBe(201)
    expect(again.status).toBe(201)
    expect(again.json).toEqual(first.json)
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    const other = await grant(user.id, 101, 'grant-key-1')
    expect(other.status).toBe(409)
    expect(other.json.error.code).toBe('idempotency_conflict')
    expect((await api.get('/v1/credits', token)).json.balance).toBe(125)
  })

  it('has one effect for concurrent requests under one key', async () => {
    const { user, token } = await api.register()
    const results = await Promise.all(
      Array.from({ length: 10 }, () => grant(user.id, 7, 'same-key')),
    )
    expect(results.every((r) => r.status === 201 || r.status === 409)).toBe(true)
    expect(results.some((r) => r.status === 201)).toBe(true)
    expect((await api.get('/v1/credits', token)).json.balance).toBe(25 + 7)
  })

  it('has one effect for a key repeated inside one batch, and rejects a repeat with another amount', async () => {
    const { user } = await api.register()
    const same = await Promise.all(
      Array.from({ length: 5 }, () =>
        inst.credits.apply(user.id, { kind: 'grant', amount: 9, reason: 'x', key: 'dup' }),
      ),
    )
    expect(new Set(same.map((r) => r.entry.id)).size).toBe(1)
    expect(same.filter((r) => !r.replayed)).toHaveLength(1)
    const mixed = await Promise.allSettled([
      inst.credits.apply(user.id, { kind: 'grant', amount: 4, reason: 'x', key: 'dup2' }),
      inst.credits.apply(user.id, { kind: 'grant', amount: 5, reason: 'x', key: 'dup2' }),
    ])
    expect(mixed[0].status).toBe('fulfilled')
    expect(mixed[1]).toMatchObject({ status: 'rejected', reason: { code: 'idempotency_conflict' } })
    expect(await readBalance(inst.database.db, user.id)).toBe(25 + 9 + 4)
  })

  it('refuses an unknown user with 422 and a bad key with 422', async () => {
    const res = await grant(crypto.randomUUID(), 10)
    expect(res.status).toBe(422)
    expect(res.json.error.details[0].path).toBe('/userId')
    const { user } = await api.register()
    const badKey = await grant(user.id, 10, 'x'.repeat(256))
    expect(badKey.status).toBe(422)
    const tooMuch = await api.post(
      '/v1/admin/credits/grants',
      { userId: user.id, amount: 1_000_000_001, reason: 'x' },
      admin.token,
    )
    expect(tooMuch.status).toBe(422)
  })

  it('pages the ledger newest first with a cursor, each entry exactly once', async () => {
    const { user, token } = await api.register()
    for (let i = 1; i <= 5; i++) await grant(user.id, i)
    const seen: number[] = []
    let cursor: string | null = null
    do {
      const res = await api.get(
        `/v1/credits/ledger?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        token,
      )
      expect(res.status).toBe(200)
      seen.push(...res.json.items.map((e: any) => e.amount))
      cursor = res.json.nextCursor
    } while (cursor)
    expect(seen).toEqual([5, 4, 3, 2, 1, 25])
    expect((await api.get('/v1/credits/ledger?cursor=%%%', token)).status).toBe(422)
    const forged = Buffer.from(JSON.stringify(['1; drop table users'])).toString('base64url')
    expect((await api.get(`/v1/credits/ledger?cursor=${forged}`, token)).status).toBe(422)
  })
})

describe('payment webhook', () => {
  function send(body: unknown, opts: { t?: number; secret?: string; raw?: string } = {}) {
    const raw = opts.raw ?? JSON.stringify(body)
    const sig = signPayload(
      raw,
      opts.secret ?? WEBHOOK_SECRET,
      opts.t ?? Math.floor(Date.now() / 1000),
    )
    return api.call('POST', '/v1/webhooks/payments', {
      body: raw,
      headers: { 'atelier-signature': sig },
    })
  }

  it('grants purchased credits once per event id', async () => {
    const { user, token } = await api.register()
    const event = {
      id: `evt_${crypto.randomUUID()}`,
      type: 'credits.purchased',
      userId: user.id,
      credits: 500,
    }
    const first = await send(event)
    expect(first.status).toBe(200)
    expect(first.json).toEqual({ received: true })
    expect((await send(event)).status).toBe(200)
    // the same id with another body: a conflict named for what it is, the event id
    const changed = await send({ ...event, credits: 900 })
    expect([changed.status, changed.json.error.code]).toEqual([409, 'idempotency_conflict'])
    expect(changed.json.error.message).toContain('event id')
    expect((await api.get('/v1/credits', token)).json.balance).toBe(525)
    const entries = (await api.get('/v1/credits/ledger', token)).json.items
    expect(entries.filter((e: any) => e.kind === 'purchase')).toHaveLength(1)
  })

  it('takes a body that starts with a byte-order mark, signed over its bytes as sent', async () => {
    const { user, token } = await api.register()
    const event = {
      id: `evt_${crypto.randomUUID()}`,
      type: 'credits.purchased',
      userId: user.id,
      credits: 7,
    }
    const res = await send(null, { raw: `\uFEFF${JSON.stringify(event)}` })
    expect(res.status).toBe(200)
    expect((await api.get('/v1/credits', token)).json.balance).toBe(32)
  })

  it('refuses a replayed event id for another user with 409', async () => {
    const a = await api.register()
    const b = await api.register()
    const id = `evt_${crypto.randomUUID()}`
    expect(
      (await send({ id, type: 'credits.purchased', userId: a.user.id, credits: 5 })).status,
    ).toBe(200)
    const stolen = await send({ id, type: 'credits.purchased', userId: b.user.id, credits: 5 })
    expect(stolen.status).toBe(409)
    expect((await api.get('/v1/credits', b.token)).json.balance).toBe(25)
  })

  it('refuses bad signatures, stale timestamps, malformed bodies and unknown users, granting nothing', async () => {
    const { user, token } = await api.register()
    const event = {
      id: `evt_${crypto.randomUUID()}`,
      type: 'credits.purchased',
      userId: user.id,
      credits: 50,
    }
    const badSig = await send(event, { secret: 'wrong-secret' })
    expect(badSig.status).toBe(401)
    const stale = await send(event, { t: Math.floor(Date.now() / 1000) - 301 })
    expect(stale.status).toBe(401)
    const unsigned = await api.call('POST', '/v1/webhooks/payments', { body: event })
    expect(unsigned.status).toBe(401)
    const malformed = await send(null, { raw: '{"id": "evt_1", ' })
    expect(malformed.status).toBe(400)
    const wrongShape = await send({ ...event, credits: -5 })
    expect(wrongShape.status).toBe(422)
    const unknown = await send({ ...event, userId: crypto.randomUUID() })
    expect(unknown.status).toBe(422)
    expect(unknown.json.error.details[0].path).toBe('/userId')
    expect((await api.get('/v1/credits', token)).json.balance).toBe(25)
  })
})

describe('actor runtime', () => {
  it('answers 503 with Retry-After when a mailbox is full, and keeps working', async () => {
    const small = await env.instance({
      ACTOR_MAILBOX_CAPACITY: '4',
      ADMIN_EMAILS: 'admin@example.com',
    })
    const smallApi = client(small)
    const login = await smallApi.post('/v1/auth/login', {
      email: 'admin@example.com',
      password: admin.password,
    })
    const { user, token } = await api.register()
    // the user's actor lives where its signup grant ran; this test is about small's mailbox
    await inst.userActors.release(user.id)
    const results = await Promise.all(
      Array.from({ length: 40 }, () =>
        smallApi.post(
          '/v1/admin/credits/grants',
          { userId: user.id, amount: 1, reason: 'x' },
          login.json.token,
        ),
      ),
    )
    const unavailable = results.filter((r) => r.status === 503)
    expect(unavailable.length).toBeGreaterThan(0)
    expect(unavailable[0]!.json.error.code).toBe('unavailable')
    expect(Number(unavailable[0]!.headers.get('retry-after'))).toBeGreaterThan(0)
    const accepted = results.filter((r) => r.status === 201).length
    expect(accepted + unavailable.length).toBe(40)
    expect((await api.get('/v1/credits', token)).json.balance).toBe(25 + accepted)
  })

  it('passivates idle actors, which come back with the right balance', async () => {
    const quick = await env.instance({ ACTOR_IDLE_MS: '100' })
    const { user } = await api.register()
    await inst.userActors.release(user.id) // so that quick claims it
    await quick.credits.apply(user.id, { kind: 'grant', amount: 70, reason: 'x', key: 'g' })
    expect(quick.userActors.stats().live).toBe(1)
    await waitFor(() => quick.userActors.stats().live === 0, 5000, 'passivation')
    const result = await quick.credits.apply(user.id, {
      kind: 'charge',
      amount: 95,
      reason: 'x',
      key: 'c',
    })
    expect(result.balance).toBe(0)
    await expect(
      quick.credits.apply(user.id, { kind: 'charge', amount: 1, reason: 'x', key: 'c2' }),
    ).rejects.toMatchObject({
      code: 'insufficient_credits',
      details: { required: 1, available: 0 },
    })
  })

  it('finishes queued commands on drain and refuses new ones with 503', async () => {
    const draining = await env.instance()
    const { user } = await api.register()
    await inst.userActors.release(user.id) // so that draining claims it
    const queued = Array.from({ length: 50 }, (_, i) =>
      draining.credits.apply(user.id, { kind: 'grant', amount: 1, reason: 'x', key: `d${i}` }),
    )
    await draining.userActors.drain()
    expect((await Promise.all(queued)).length).toBe(50)
    await expect(
      draining.credits.apply(user.id, { kind: 'grant', amount: 1, reason: 'x', key: 'late' }),
    ).rejects.toMatchObject({
      code: 'unavailable',
    })
    expect(await readBalance(inst.database.db, user.id)).toBe(75)
    expect(draining.userActors.stats().live).toBe(0)
  })
})
