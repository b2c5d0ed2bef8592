import { describe, expect, it } from 'bun:test'
import { client } from '../support/http'
import { useTestEnv } from '../support/env'

const env = await useTestEnv()
const inst = await env.instance({ SIGNUP_CREDITS: '250' })
const api = client(inst)

describe('signup credits', () => {
  it('are granted once at registration, and logins never ask the user actor', async () => {
    const { user, token, password } = await api.register()
    expect((await api.get('/v1/credits', token)).json).toEqual({ balance: 250 })
    const before = inst.userActors.stats().commands
    for (let i = 0; i < 3; i++) {
      const login = await api.post('/v1/auth/login', { email: user.email, password })
      expect(login.status).toBe(200)
    }
    // a login is a password check and a token: no command went through any actor
    expect(inst.userActors.stats().commands).toBe(before)
    const ledger = await api.get('/v1/credits/ledger', token)
    expect(ledger.json.items.map((e: any) => [e.kind, e.amount, e.reason])).toEqual([
      ['grant', 250, 'signup credits'],
    ])
    expect((await api.get('/v1/credits', token)).json).toEqual({ balance: 250 })
    // four argon2id hashes: seconds on a loaded CI machine, above bun's 5 s default
  }, 20_000)

  it('are granted at the next login to a user whose registration ended before its grant', async () => {
    // what a registration leaves when its grant fails (the actor's owner unreachable): the
    // user committed, no credits; a retry without a key is 409, so only a login can repair it
    const id = Bun.randomUUIDv7()
    const email = `no-grant-${id}@example.com`
    const password = 'correct horse battery'
    await env.sql`insert into users (id, email, password_hash, role)
      values (${id}, ${email}, ${await Bun.password.hash(password, 'argon2id')}, 'user')`
    const login = await api.post('/v1/auth/login', { email, password })
    expect(login.status).toBe(200)
    expect((await api.get('/v1/credits', login.json.token)).json).toEqual({ balance: 250 })
    // and once: the next login finds the grant (one read) and asks no actor
    const before = inst.userActors.stats().commands
    expect((await api.post('/v1/auth/login', { email, password })).status).toBe(200)
    expect(inst.userActors.stats().commands).toBe(before)
    const ledger = await api.get('/v1/credits/ledger', login.json.token)
    expect(ledger.json.items.map((e: any) => [e.kind, e.amount])).toEqual([['grant', 250]])
  }, 20_000)

  it('lets a login through when that repair fails, and repairs at the next one', async () => {
    const stuck = await env.instance({ SIGNUP_CREDITS: '250', DB_LOCK_TIMEOUT_MS: '200' })
    const id = Bun.randomUUIDv7()
    const email = `stuck-grant-${id}@example.com`
    const password = 'correct horse battery'
    await env.sql`insert into users (id, email, password_hash, role)
      values (${id}, ${email}, ${await Bun.password.hash(password, 'argon2id')}, 'user')`
    await env.sql`insert into credit_accounts (user_id, balance, last_seq) values (${id}, 0, 0)`
    // the account row held by another transaction: the grant cannot take its lock
    const blocked = await env.sql.begin(async (tx) => {
      await tx`select 1 from credit_accounts where user_id = ${id} for update`
      return client(stuck).post('/v1/auth/login', { email, password })
    })
    expect(blocked.status).toBe(200)
    expect((await client(stuck).get('/v1/credits', blocked.json.token)).json).toEqual({
      balance: 0,
    })
    const next = await client(stuck).post('/v1/auth/login', { email, password })
    expect(next.status).toBe(200)
    expect((await client(stuck).get('/v1/credits', next.json.token)).json).toEqual({ balance: 250 })
  }, 30_000)

  it('replays a registration retried with its Idempotency-Key: same user, new token, one grant', async () => {
    const email = `retry-${crypto.randomUUID()}@example.com`
    const password = 'correct horse battery'
    const headers = { 'idempotency-key': `signup-${crypto.randomUUID()}` }
    const first = await api.post('/v1/auth/register', { email, password }, undefined, headers)
    expect(first.status).toBe(201)
    const again = await api.post('/v1/auth/register', { email, password }, undefined, headers)
    expect(again.status).toBe(201)
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    expect(again.json.user).toEqual(first.json.user)
    // a working token for the same account, granted once
    const me = await api.get('/v1/me', again.json.token)
    expect({ id: me.json.id, balance: me.json.balance }).toEqual({
      id: first.json.user.id,
      balance: 250,
    })
    // the same key with another password is not the same request; another key, or none,
    // finds the email taken
    const wrong = await api.post(
      '/v1/auth/register',
      { email, password: 'another password entirely' },
      undefined,
      headers,
    )
    expect(wrong.status).toBe(409)
    expect(wrong.json.error.code).toBe('idempotency_conflict')
    const otherKey = { 'idempotency-key': `signup-${crypto.randomUUID()}` }
    for (const h of [otherKey, undefined]) {
      const taken = await api.post('/v1/auth/register', { email, password }, undefined, h)
      expect({ status: taken.status, code: taken.json.error.code }).toEqual({
        status: 409,
        code: 'conflict',
      })
    }
    const ledger = await api.get('/v1/credits/ledger', first.json.token)
    expect(ledger.json.items.map((e: any) => e.amount)).toEqual([250])
    const long = { 'idempotency-key': 'k'.repeat(256) }
    const refused = await api.post(
      '/v1/auth/register',
      { email: `long-${crypto.randomUUID()}@example.com`, password },
      undefined,
      long,
    )
    expect(refused.status).toBe(422)
    expect(refused.json.error.details[0].path).toBe('/headers/idempotency-key')
  }, 30_000)

  it('answers two registrations with the same key at once as one account', async () => {
    const email = `twice-${crypto.randomUUID()}@example.com`
    const password = 'correct horse battery'
    const headers = { 'idempotency-key': `signup-${crypto.randomUUID()}` }
    const both = await Promise.all(
      [0, 1].map(() => api.post('/v1/auth/register', { email, password }, undefined, headers)),
    )
    expect(both.map((r) => r.status)).toEqual([201, 201])
    expect(both[0]!.json.user.id).toBe(both[1]!.json.user.id)
    const replays = both.filter((r) => r.headers.get('idempotent-replayed') === 'true')
    expect(replays.length).toBe(1)
  }, 30_000)
})
