import { afterAll, describe, expect, it } from 'bun:test'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import type { Instance } from '../../src/server'
import { client } from '../support/http'
import { useTestEnv } from '../support/env'
import { openSocket } from '../support/ws'

/**
 * Tokens name real users: every route and the WebSocket resolve the token to
 * the user record (401 / 4401 when there is none), the record's role counts,
 * and an external identity is mapped to a local user, provisioned on first sight.
 */
const env = await useTestEnv()
const SECRET = 'test-secret-that-is-long-enough-0123456789'
// the instance's clock, moved past the cache's TTL by the tests that need it
let ahead = 0
const inst = await env.instance({}, { now: () => Date.now() + ahead })
const api = client(inst)
const servers: { stop(force?: boolean): unknown }[] = []
afterAll(() => {
  for (const s of servers) s.stop(true)
})

/** A socket URL for `target`, listening on a free port. */
function listen(target: Instance) {
  target.app.listen({ port: 0, hostname: '127.0.0.1' })
  servers.push(target.app.server!)
  return `ws://127.0.0.1:${target.app.server!.port}/v1/ws`
}
const wsUrl = listen(inst)

/** An HS256 token under the instance's secret, with any subject and role claim. */
const localToken = (sub: string, role = 'user') =>
  new SignJWT({ role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(SECRET))

const AUTHENTICATED = [
  ['GET', '/v1/me'],
  ['GET', '/v1/credits'],
  ['GET', '/v1/credits/ledger'],
  ['GET', '/v1/generations'],
  ['GET', `/v1/generations/${crypto.randomUUID()}`],
  ['POST', '/v1/generations'],
  ['POST', `/v1/generations/${crypto.randomUUID()}/cancel`],
] as const

async function expectRefusedEverywhere(token: string, url = wsUrl) {
  for (const [method, path] of AUTHENTICATED) {
    const body = method === 'POST' ? { mode: 'text', prompt: 'a dancer', variations: 1 } : undefined
    const res = await api.call(method, path, { token, body })
    expect(res.status, `${method} ${path}`).toBe(401)
    expect(res.json.error.code).toBe('unauthorized')
  }
  expect((await api.get('/v1/admin/stats', token)).status).toBe(401)
  const socket = await openSocket(url)
  socket.send({ type: 'auth', token })
  expect(await socket.closed()).toMatchObject({ code: 4401 })
  expect(socket.unread()).toEqual([])
}

describe('local tokens', () => {
  it('are 401 on every route and 4401 on the socket when sub is not a UUID', async () => {
    for (const sub of ['not-a-uuid', 'auth0|abc123', "1' or '1'='1", '\u0000'])
      await expectRefusedEverywhere(await localToken(sub))
  })

  it('are 401 on every route and 4401 on the socket for a user that does not exist', async () => {
    await expectRefusedEverywhere(await localToken(crypto.randomUUID()))
  })

  it('are 401 once the user is deleted: at once after forget(), else after the cache TTL', async () => {
    const a = await api.register()
    const b = await api.register()
    for (const u of [a, b]) expect((await api.get('/v1/me', u.token)).status).toBe(200)
    await env.sql`delete from users where id in ${env.sql([a.user.id, b.user.id])}`
    inst.principals.forget(a.user.id)
    await expectRefusedEverywhere(a.token)
    // b is still cached on this instance, for at most the TTL (30 s)
    expect((await api.get('/v1/credits', b.token)).status).toBe(200)
    ahead += 31_000
    await expectRefusedEverywhere(b.token)
  })

  it("take the role from the user record: an ordinary user's token claiming admin is 403", async () => {
    const { user } = await api.register()
    const claimsAdmin = await localToken(user.id, 'admin')
    const forbidden = await api.get('/v1/admin/stats', claimsAdmin)
    expect(forbidden.status).toBe(403)
    expect(forbidden.json.error.code).toBe('forbidden')
    expect((await api.get('/v1/me', claimsAdmin)).json.role).toBe('user')
    // promoted in the record: its token that claims 'user' is an admin's
    await env.sql`update users set role = 'admin' where id = ${user.id}`
    inst.principals.forget(user.id)
    const claimsUser = await localToken(user.id, 'user')
    expect((await api.get('/v1/admin/stats', claimsUser)).status).toBe(200)
  })

  it('keeps at most the configured number of users, least recently used out first', async () => {
    const small = await env.instance({}, { userCacheMax: 2 })
    const api2 = client(small)
    const [a, b, c] = await Promise.all([api.register(), api.register(), api.register()])
    for (const u of [a!, b!, c!, a!]) expect((await api2.get('/v1/me', u.token)).status).toBe(200)
    expect(small.principals.cacheSize()).toBe(2)
    // b was used least recently, so it is the one read again (and found gone)
    await env.sql`delete from users where id in ${env.sql([a!.user.id, b!.user.id, c!.user.id])}`
    expect((await api2.get('/v1/credits', a!.token)).status).toBe(200)
    expect((await api2.get('/v1/credits', c!.token)).status).toBe(200)
    expect((await api2.get('/v1/credits', b!.token)).status).toBe(401)
  })
})

describe('external identities (JWKS_URL)', async () => {
  const ISSUER = 'https://id.example.com/'
  const { privateKey, publicKey } = await generateKeyPair('RS256')
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
  let keySetFetches = 0
  const jwks = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: () => {
      keySetFetches++
      return Response.json({ keys: [jwk] })
    },
  })
  servers.push(jwks)
  const external = await env.instance({
    JWKS_URL: `http://127.0.0.1:${jwks.port}/.well-known/jwks.json`,
    ADMIN_EMAILS: 'chief@example.com',
    SIGNUP_CREDITS: '40',
  })
  const ext = client(external)
  const extWs = listen(external)

  const idToken = (sub: string, claims: Record<string, unknown> = {}) =>
    new SignJWT({ role: 'user', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(ISSUER)
      .setSubject(sub)
      .setExpirationTime('10m')
      .sign(privateKey)

  it('maps (issuer, subject) to a local user created on first sight, with the email claim', async () => {
    const subject = `auth0|${crypto.randomUUID()}`
    const token = await idToken(subject, { email: `${subject.slice(6)}@Example.com` })
    const me = await ext.get('/v1/me', token)
    expect(me.status).toBe(200)
    expect(me.json.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/)
    expect(me.json.id).not.toBe(subject)
    expect(me.json).toMatchObject({ email: `${subject.slice(6)}@example.com`, role: 'user' })
    // signup credits, as at registration
    expect(me.json.balance).toBe(40)
    expect((await ext.get('/v1/me', await idToken(subject))).json.id).toBe(me.json.id)
    const rows =
      await env.sql`select issuer, subject, user_id from user_identities where subject = ${subject}`
    expect([...rows]).toEqual([{ issuer: ISSUER, subject, user_id: me.json.id }])
    expect(keySetFetches).toBeGreaterThan(0)

    const socket = await openSocket(extWs)
    socket.send({ type: 'auth', token })
    expect(await socket.next()).toMatchObject({ type: 'ready', userId: me.json.id })
    await socket.close()
  })

  it('provisions one user for many first requests at once, on two instances', async () => {
    const subject = `auth0|${crypto.randomUUID()}`
    const token = await idToken(subject)
    const second = client(
      await env.instance({ JWKS_URL: external.config.JWKS_URL, SIGNUP_CREDITS: '40' }),
    )
    const all = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? ext : second).get('/v1/me', token)),
    )
    expect(new Set(all.map((r) => r.status))).toEqual(new Set([200]))
    expect(new Set(all.map((r) => r.json.id)).size).toBe(1)
    const [row] =
      await env.sql`select count(*)::int as n from user_identities where subject = ${subject}`
    expect(row?.n).toBe(1)
    // the request that provisioned it granted the signup credits, once
    expect((await ext.get('/v1/me', token)).json.balance).toBe(40)
    const [grants] =
      await env.sql`select count(*)::int as n from ledger_entries where user_id = ${all[0]!.json.id}`
    expect(grants?.n).toBe(1)
  })

  it('never uses the subject as a user id, not even when it is a local user id', async () => {
    const { user } = await ext.register()
    const me = await ext.get('/v1/me', await idToken(user.id))
    expect(me.status).toBe(200)
    expect(me.json.id).not.toBe(user.id)
  })

  it('ignores a role claim, takes no email another account has, and no unverified admin email', async () => {
    const local = await ext.register()
    const taken = await ext.get(
      '/v1/me',
      await idToken(`auth0|${crypto.randomUUID()}`, { role: 'admin', email: local.user.email }),
    )
    expect(taken.status).toBe(200)
    expect(taken.json).toMatchObject({ email: null, role: 'user' })
    const unverified = await idToken(`auth0|${crypto.randomUUID()}`, {
      email: 'chief@example.com',
    })
    expect((await ext.get('/v1/admin/stats', unverified)).status).toBe(403)
    const verified = await idToken(`okta|${crypto.randomUUID()}`, {
      email: 'CHIEF@example.com',
      email_verified: true,
    })
    expect((await ext.get('/v1/me', verified)).json).toMatchObject({ role: 'admin' })
    expect((await ext.get('/v1/admin/stats', verified)).status).toBe(200)
  })

  it('refuses subjects and issuers it cannot store with 401, and keeps passwordless users out of login', async () => {
    for (const sub of ['a\u0000b', 'x'.repeat(256), ' spaced '])
      expect((await ext.get('/v1/me', await idToken(sub))).status).toBe(401)
    const subject = `auth0|${crypto.randomUUID()}`
    const email = `${subject.slice(6)}@example.com`
    expect((await ext.get('/v1/me', await idToken(subject, { email }))).status).toBe(200)
    const login = await ext.post('/v1/auth/login', { email, password: 'any password at all' })
    expect(login.status).toBe(401)
  })

  it('grants the signup credits to a provisioned user whose first request ended before them', async () => {
    // what a first request leaves when its grant fails: the user and its identity, no credits
    const subject = `auth0|${crypto.randomUUID()}`
    const id = Bun.randomUUIDv7()
    await env.sql`insert into users (id, email, password_hash, role) values (${id}, null, null, 'user')`
    await env.sql`insert into user_identities (issuer, subject, user_id) values (${ISSUER}, ${subject}, ${id})`
    const me = await ext.get('/v1/me', await idToken(subject))
    expect([me.status, me.json.id, me.json.balance]).toEqual([200, id, 40])
  })

  it('serves a known identity whose signup-credit repair fails, and repairs at the next sight', async () => {
    // a principal cached for 1 ms: the next request resolves the identity again
    const stuck = await env.instance(
      { JWKS_URL: external.config.JWKS_URL, SIGNUP_CREDITS: '40', DB_LOCK_TIMEOUT_MS: '200' },
      { userCacheTtlMs: 1 },
    )
    const subject = `auth0|${crypto.randomUUID()}`
    const id = Bun.randomUUIDv7()
    await env.sql`insert into users (id, email, password_hash, role) values (${id}, null, null, 'user')`
    await env.sql`insert into user_identities (issuer, subject, user_id) values (${ISSUER}, ${subject}, ${id})`
    await env.sql`insert into credit_accounts (user_id, balance, last_seq) values (${id}, 0, 0)`
    const token = await idToken(subject)
    // the account row held by another transaction: the grant cannot take its lock
    const blocked = await env.sql.begin(async (tx) => {
      await tx`select 1 from credit_accounts where user_id = ${id} for update`
      return client(stuck).get('/v1/credits', token)
    })
    expect([blocked.status, blocked.json.balance]).toEqual([200, 0])
    const me = await client(stuck).get('/v1/me', token)
    expect([me.status, me.json.balance]).toEqual([200, 40])
  }, 30_000)

  it('answers 503 with Retry-After while the key set cannot be had, 401 for a key it lacks', async () => {
    const failing = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: (req) => {
        const path = new URL(req.url).pathname
        if (path === '/500') return new Response('upstream down', { status: 500 })
        // a 200 that is no JSON at all: a proxy's error page
        if (path === '/html') return new Response('<html>bad gateway</html>', { status: 200 })
        return Response.json({ not: 'a key set' })
      },
    })
    servers.push(failing)
    const closed = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
    const closedUrl = `http://127.0.0.1:${closed.port}/jwks.json`
    await closed.stop(true)
    const token = await idToken(`auth0|${crypto.randomUUID()}`)
    for (const url of [
      `http://127.0.0.1:${failing.port}/500`,
      `http://127.0.0.1:${failing.port}/html`,
      `http://127.0.0.1:${failing.port}/bad`,
      closedUrl,
    ]) {
      const res = await client(await env.instance({ JWKS_URL: url })).get('/v1/me', token)
      expect({ url, status: res.status, code: res.json.error.code }).toEqual({
        url,
        status: 503,
        code: 'unavailable',
      })
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
    }
    // the key set answers, and has no key of that id: the token is refused, not the provider
    const stranger = await new SignJWT({})
      .setProtectedHeader({ alg: 'RS256', kid: 'unknown-key' })
      .setIssuer(ISSUER)
      .setSubject('auth0|stranger')
      .setExpirationTime('10m')
      .sign(privateKey)
    expect((await ext.get('/v1/me', stranger)).status).toBe(401)
  })
})
