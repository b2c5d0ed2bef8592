import { describe, expect, it } from 'bun:test'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import { client } from '../support/http'
import { useTestEnv } from '../support/env'

const env = await useTestEnv()
const inst = await env.instance({ ADMIN_EMAILS: 'Boss@Example.com', LOGIN_RATE_PER_EMAIL: '3' })
const api = client(inst)
const secret = new TextEncoder().encode('test-secret-that-is-long-enough-0123456789')

describe('register, login, me', () => {
  it('registers, logs in with any email case, and shows the caller', async () => {
    const reg = await api.post('/v1/auth/register', {
      email: 'Ada@Example.com',
      password: 'analytical engine',
    })
    expect(reg.status).toBe(201)
    expect(reg.json.user).toMatchObject({ email: 'ada@example.com', role: 'user' })
    expect(reg.json.user.id).toMatch(/^[0-9a-f-]{36}$/)
    const login = await api.post('/v1/auth/login', {
      email: 'ADA@example.com',
      password: 'analytical engine',
    })
    expect(login.status).toBe(200)
    const me = await api.get('/v1/me', login.json.token)
    expect(me.status).toBe(200)
    expect(me.json).toMatchObject({
      id: reg.json.user.id,
      email: 'ada@example.com',
      role: 'user',
      balance: 0,
    })
    expect(Date.parse(me.json.createdAt)).not.toBeNaN()
  })

  it('refuses a second account for the same email in another case with 409', async () => {
    await api.register('twice@example.com')
    const again = await api.post('/v1/auth/register', {
      email: 'TWICE@example.com',
      password: 'another password',
    })
    expect(again.status).toBe(409)
    expect(again.json.error.code).toBe('conflict')
  })

  it('gives role admin only to ADMIN_EMAILS at registration', async () => {
    const boss = await api.register('boss@example.com')
    expect(boss.user.role).toBe('admin')
    // unknown fields are stripped by the schema: a caller cannot pick its own role
    const sneaky = await api.post('/v1/auth/register', {
      email: 'sneaky@example.com',
      password: 'password123',
      role: 'admin',
    })
    expect(sneaky.status).toBe(201)
    expect(sneaky.json.user.role).toBe('user')
  })

  it('answers unknown email and wrong password with the same 401 body', async () => {
    await api.register('known@example.com', 'right password')
    const wrong = await api.post('/v1/auth/login', {
      email: 'known@example.com',
      password: 'wrong password',
    })
    const unknown = await api.post('/v1/auth/login', {
      email: 'nobody@example.com',
      password: 'wrong password',
    })
    expect(wrong.status).toBe(401)
    expect(unknown.status).toBe(401)
    const strip = (j: any) => ({ ...j.error, requestId: undefined })
    expect(strip(wrong.json)).toEqual(strip(unknown.json))
  })

  it('rate-limits logins per email with 429 and Retry-After', async () => {
    await api.register('limited@example.com', 'right password')
    const statuses: number[] = []
    let last
    for (let i = 0; i < 4; i++) {
      last = await api.post('/v1/auth/login', {
        email: 'limited@example.com',
        password: 'wrong password',
      })
      statuses.push(last.status)
    }
    expect(statuses).toEqual([401, 401, 401, 429])
    expect(last!.json.error.code).toBe('rate_limited')
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0)
  })

  it('validates credentials with 422 and paths', async () => {
    const res = await api.post('/v1/auth/register', { email: 'not-an-email', password: 'short' })
    expect(res.status).toBe(422)
    expect(res.json.error.code).toBe('validation_failed')
    const paths = res.json.error.details.map((d: any) => d.path)
    expect(paths).toContain('/email')
    expect(paths).toContain('/password')
  })
})

describe('tokens', () => {
  it('rejects alg none, a wrong key, a past exp and a malformed header with 401', async () => {
    const { user } = await api.register()
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ sub: user.id, role: 'admin', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url')}.`
    const wrongKey = await new SignJWT({ role: 'user' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user.id)
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode('another-secret-another-secret-another-secret'))
    const expired = await new SignJWT({ role: 'user' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user.id)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 10)
      .sign(secret)
    const noExp = await new SignJWT({ role: 'user' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user.id)
      .sign(secret)
    // signed with our key, but a `sub` that is no string: an array holding the user's id passes
    // a pattern test as its string form, and must not pass as a subject
    const subjects = [[user.id], { id: user.id }, 42, null]
    const oddSubjects = await Promise.all(
      subjects.map((sub) =>
        new SignJWT({ role: 'user', sub } as Record<string, unknown>)
          .setProtectedHeader({ alg: 'HS256' })
          .setExpirationTime('10m')
          .sign(secret),
      ),
    )
    for (const token of [none, wrongKey, expired, noExp, 'garbage', ...oddSubjects]) {
      const res = await api.get('/v1/me', token)
      expect({ token, status: res.status, code: res.json.error.code }).toEqual({
        token,
        status: 401,
        code: 'unauthorized',
      })
    }
    const missing = await api.call('GET', '/v1/me', { headers: { authorization: 'Basic abc' } })
    expect(missing.status).toBe(401)
  })

  it('rejects an RS256 token when no JWKS_URL is configured (no algorithm confusion)', async () => {
    const { user } = await api.register()
    const { privateKey, publicKey } = await generateKeyPair('RS256')
    await exportJWK(publicKey)
    const rs = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'RS256' })
      .setSubject(user.id)
      .setExpirationTime('10m')
      .sign(privateKey)
    expect((await api.get('/v1/me', rs)).status).toBe(401)
  })
  // external tokens (JWKS_URL) and their mapping to local users: principals.test.ts
})

describe('admin group', () => {
  it('answers 401 anonymous, 403 for users, 200 for admins', async () => {
    const user = await api.register()
    const boss = await api.post('/v1/auth/login', {
      email: 'boss@example.com',
      password: 'correct horse battery',
    })
    expect((await api.get('/v1/admin/stats')).status).toBe(401)
    const forbidden = await api.get('/v1/admin/stats', user.token)
    expect(forbidden.status).toBe(403)
    expect(forbidden.json.error.code).toBe('forbidden')
    const ok = await api.get('/v1/admin/stats', boss.json.token)
    expect(ok.status).toBe(200)
    expect(ok.json.users).toBeGreaterThan(0)
    expect(ok.json.instance.id).toBe(inst.config.instanceId)
  })

  it('answers 401/403 before it validates parameters or bodies: no route rule is shown to them', async () => {
    const user = await api.register()
    for (const token of [undefined, 'not-a-token', user.token]) {
      const want = token === user.token ? 403 : 401
      const badParam = await api.call('GET', '/v1/admin/actors/not-a-uuid', { token })
      expect([badParam.status, badParam.json.error.code]).toEqual([
        want,
        want === 401 ? 'unauthorized' : 'forbidden',
      ])
      const badBody = await api.call('POST', '/v1/admin/credits/grants', {
        token,
        body: { userId: 'nope', amount: -1 },
      })
      expect(badBody.status).toBe(want)
      // nor that its body is malformed: the guard answers before a byte of it is parsed
      const malformed = await api.call('POST', '/v1/admin/credits/grants', {
        token,
        body: '{',
        headers: { 'content-type': 'application/json' },
      })
      expect({ token, status: malformed.status }).toEqual({ token, status: want })
    }
    // the caller's own routes too: a bad body without a token is 401, not 422
    const anonymous = await api.call('POST', '/v1/generations', { body: { mode: 'nonsense' } })
    expect(anonymous.status).toBe(401)
    // and with a token, the rules answer as before: a path id that names nothing is 404
    const invalid = await api.call('GET', '/v1/admin/actors/not-a-uuid', {
      token: (
        await api.post('/v1/auth/login', {
          email: 'boss@example.com',
          password: 'correct horse battery',
        })
      ).json.token,
    })
    expect([invalid.status, invalid.json.error.code]).toEqual([404, 'not_found'])
  })
})
