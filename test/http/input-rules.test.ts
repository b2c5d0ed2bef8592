import { describe, expect, it, setDefaultTimeout } from 'bun:test'
import { signPayload } from '../../src/ledger/webhook-signature'
import { checkLedger, readBalance } from '../../src/ledger/service'
import { SAFE_TEXT_MESSAGE } from '../../src/http/text'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'

/**
 * API.md's text and number rules, decided at the edge: a string Postgres
 * cannot store and a number sent as a string are 422 validation_failed with
 * the field's path, never a 503 from the database; forged cursors are 422,
 * never a 500; the prompt rules hold against invisible and control characters.
 */
// several registrations (argon2) per test: more than bun's 5 s default on a busy machine
setDefaultTimeout(30_000)
const env = await useTestEnv()
const SECRET = 'whsec_input_rules_0123456789'
const inst = await env.instance({
  ADMIN_EMAILS: 'rules-admin@example.com',
  PAYMENT_WEBHOOK_SECRET: SECRET,
  RENDER_CONCURRENCY: '0',
  MAX_ACTIVE_GENERATIONS: '1000',
  MAX_IMAGES_PER_HOUR: '100000',
})
const api = client(inst)
const admin = await api.register('rules-admin@example.com')

async function funded(credits: number) {
  const u = await api.register()
  const res = await api.post(
    '/v1/admin/credits/grants',
    { userId: u.user.id, amount: credits, reason: 'test' },
    admin.token,
  )
  expect(res.status).toBe(201)
  return u
}

function webhook(body: string) {
  const t = Math.floor(Date.now() / 1000)
  return api.call('POST', '/v1/webhooks/payments', {
    body,
    headers: { 'atelier-signature': signPayload(body, SECRET, t) },
  })
}

function expect422(res: { status: number; json: any; headers: Headers }, path: string) {
  expect(res.status, JSON.stringify(res.json)).toBe(422)
  expect(res.json.error.code).toBe('validation_failed')
  expect(res.json.error.requestId).toBe(res.headers.get('x-request-id'))
  expect(res.json.error.details.map((d: any) => d.path)).toContain(path)
}

const NUL = '\u0000'
const LONE = '\ud800'

describe('text Postgres cannot store', () => {
  it('answers a NUL or a lone surrogate in any string field with 422 and its path', async () => {
    const { user, token } = await funded(1000)
    const cases: [string, unknown, string, string?][] = [
      ['/v1/generations', { mode: 'text', prompt: `a cat${NUL}`, variations: 1 }, '/prompt'],
      ['/v1/generations', { mode: 'text', prompt: `a cat${LONE}`, variations: 1 }, '/prompt'],
      [
        '/v1/generations',
        {
          mode: 'text',
          prompt: 'a cat',
          variations: 1,
          background: { mode: 'prompt', value: `sky${NUL}` },
        },
        '/background/value',
      ],
      [
        '/v1/admin/credits/grants',
        { userId: user.id, amount: 5, reason: `bonus${NUL}` },
        '/reason',
        admin.token,
      ],
      [
        '/v1/admin/credits/grants',
        { userId: user.id, amount: 5, reason: `bonus${LONE}x` },
        '/reason',
        admin.token,
      ],
      ['/v1/auth/register', { email: 'x@example.com', password: `passw${NUL}rd!` }, '/password'],
    ]
    for (const [path, body, field, auth = token] of cases) {
      const res = await api.post(path, body, auth)
      expect422(res, field)
      if (field !== '/password')
        expect(res.json.error.details.find((d: any) => d.path === field).message).toBe(
          SAFE_TEXT_MESSAGE,
        )
    }
    // a well-formed surrogate pair is text like any other
    const emoji = await api.post(
      '/v1/generations',
      { mode: 'text', prompt: 'a 😀 cat', variations: 1 },
      token,
    )
    expect(emoji.status).toBe(202)
    expect(await readBalance(inst.database.db, user.id)).toBe(1000 - 30)
    // a field that fails another of its checks (a format, a length) is not said to hold a NUL
    const notUuid = await api.post(
      '/v1/admin/credits/grants',
      { userId: 'not-a-uuid', amount: 5, reason: 'bonus' },
      admin.token,
    )
    expect422(notUuid, '/userId')
    expect(notUuid.json.error.details[0].message).not.toBe(SAFE_TEXT_MESSAGE)
    const tooLong = await api.post(
      '/v1/admin/credits/grants',
      { userId: user.id, amount: 5, reason: 'r'.repeat(5000) },
      admin.token,
    )
    expect422(tooLong, '/reason')
    expect(tooLong.json.error.details[0].message).not.toBe(SAFE_TEXT_MESSAGE)
  })

  it('answers a path id that could never name anything with 404, as an unknown one', async () => {
    const { token } = await funded(10)
    const adminToken = admin.token
    const ids = ['not-a-uuid', '%00', '%ED%A0%80', 'x'.repeat(300), crypto.randomUUID()]
    const answers: string[] = []
    for (const id of ids) {
      const calls: [string, string, string][] = [
        ['GET', `/v1/generations/${id}`, token],
        ['POST', `/v1/generations/${id}/cancel`, token],
        ['GET', `/v1/library/poses/${id}`, token],
        ['DELETE', `/v1/admin/library/poses/${id}`, adminToken],
        ['GET', `/v1/media/${id}`, token],
        ['GET', `/v1/admin/actors/${id}`, adminToken],
      ]
      for (const [method, path, bearer] of calls) {
        const res = await api.call(method, path, { token: bearer })
        answers.push(`${method} ${path.slice(0, 40)} ${res.status} ${res.json?.error?.code}`)
        expect(res.json?.error?.requestId).toBe(res.headers.get('x-request-id'))
      }
    }
    expect(answers.filter((a) => !a.endsWith(' 404 not_found'))).toEqual([])
  })

  it('answers a signed webhook whose event id holds a NUL with 422, not 503', async () => {
    const { user } = await api.register()
    const res = await webhook(
      JSON.stringify({ id: `evt_${NUL}1`, type: 'credits.purchased', userId: user.id, credits: 5 }),
    )
    expect422(res, '/id')
    expect(await readBalance(inst.database.db, user.id)).toBe(0)
  })

  it('answers a NUL in a query string with 422', async () => {
    const { token } = await funded(10)
    expect422(await api.get('/v1/library/poses?category=%00', token), '/category')
    expect422(await api.get('/v1/generations?cursor=%00', token), '/cursor')
    expect422(await api.get('/v1/credits/ledger?cursor=ab%00', token), '/cursor')
  })

  it('answers a malformed Idempotency-Key header with 422 on the header', async () => {
    const { token } = await funded(100)
    const res = await api.post(
      '/v1/generations',
      { mode: 'text', prompt: 'a cat', variations: 1 },
      token,
      { 'idempotency-key': 'é'.repeat(3) },
    )
    expect422(res, '/headers/idempotency-key')
  })
})

describe('objects that cannot become a string', () => {
  it('answers a toString or valueOf key anywhere in a JSON body with 422 and its path, not 500', async () => {
    const { token } = await funded(1000)
    expect422(
      await api.post(
        '/v1/generations',
        '{"mode":"text","prompt":{"toString":0},"variations":1}',
        token,
      ),
      '/prompt/toString',
    )
    expect422(
      await api.post(
        '/v1/admin/credits/grants',
        '{"userId":"x","amount":1,"reason":{"valueOf":[1]}}',
        admin.token,
      ),
      '/reason/valueOf',
    )
  })
})

describe('numbers are JSON numbers', () => {
  it('refuses numbers sent as strings in bodies: grant amount, webhook credits, variations', async () => {
    const { user, token } = await funded(1000)
    expect422(
      await api.post(
        '/v1/admin/credits/grants',
        { userId: user.id, amount: '100', reason: 'x' },
        admin.token,
      ),
      '/amount',
    )
    expect422(
      await webhook(
        JSON.stringify({
          id: 'evt_str',
          type: 'credits.purchased',
          userId: user.id,
          credits: '100',
        }),
      ),
      '/credits',
    )
    expect422(
      await api.post('/v1/generations', { mode: 'text', prompt: 'a cat', variations: '4' }, token),
      '/variations',
    )
    expect422(
      await api.post(
        '/v1/generations',
        { mode: 'text', prompt: 'a cat', variations: 1, deadlineSeconds: '600' },
        token,
      ),
      '/deadlineSeconds',
    )
    expect(await readBalance(inst.database.db, user.id)).toBe(1000)
  })

  it('still parses digits in query strings', async () => {
    const { token } = await funded(10)
    const res = await api.get('/v1/credits/ledger?limit=5', token)
    expect(res.status).toBe(200)
  })

  it('declares no input string without a safety pattern and no coercing integer in a body', () => {
    // every route's input schemas, as Elysia holds them: the rule is structural
    const unsafe: string[] = []
    const visit = (s: any, where: string) => {
      if (!s || typeof s !== 'object') return
      if (s.type === 'string' && !s.pattern && !s.format && !s.enum && s.const === undefined)
        unsafe.push(`${where}: string without pattern`)
      if (where.includes(' body') && s.anyOf?.some((x: any) => x.format === 'integer'))
        unsafe.push(`${where}: integer that accepts a string`)
      for (const [k, v] of Object.entries(s)) if (typeof v === 'object') visit(v, `${where}.${k}`)
    }
    for (const route of inst.app.routes as any[]) {
      for (const part of ['body', 'query', 'params', 'headers'] as const)
        visit(route.hooks?.[part], `${route.method} ${route.path} ${part}`)
    }
    expect(unsafe).toEqual([])
  })
})

describe('forged cursors', () => {
  it('answers cursors Postgres could not read with 422, never 500', async () => {
    const { token } = await funded(10)
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')
    const id = crypto.randomUUID()
    const forged = [
      b64(['+275760-09-13T00:00:00.000Z', id]),
      b64(['99999-01-01T00:00:00.000Z', id]),
      b64(['0000-01-01T00:00:00.000Z', id]),
      b64(['2026-02-31T00:00:00.000Z', id]),
      b64(['2026-01-01T00:00:00.000Z', `${id}x`]),
      b64(['2026-01-01', id]),
      'A'.repeat(1300),
    ]
    for (const cursor of forged) {
      const res = await api.get(`/v1/generations?cursor=${cursor}`, token)
      expect422(res, '/cursor')
    }
    for (const cursor of [b64([2 ** 60]), b64([1.5]), b64([-1]), b64(['1'])])
      expect422(await api.get(`/v1/credits/ledger?cursor=${cursor}`, token), '/cursor')
    for (const cursor of [b64([`a${LONE}`, id]), b64(['a', 'b']), b64(['x'.repeat(201), id])])
      expect422(await api.get(`/v1/library/poses?cursor=${cursor}`, token), '/cursor')
  })
})

describe('prompt rules', () => {
  it('applies after removing format characters and refuses control characters', async () => {
    const { user, token } = await funded(1000)
    const zw = '\u200b'
    const refused = [
      `${zw}${zw}${zw}${zw}`, // four zero-width characters are no prompt
      `a ${'a'.split('').concat(Array(11).fill('a')).join(zw)} cat`, // 12 a's split by zero-width spaces
      'java\tscript:alert(1)',
      `java${zw}script:alert(1)`,
      'a red \u001b[31mcat\u001b[0m',
      'a cat\nand a dog',
      'a cat\u2028and a dog', // the Unicode line separator is a newline too
      'a cat\u2029and a dog',
      `<${zw}b>bold</b> cat`,
      `a${'\u00ad'}b`, // two characters once the soft hyphen is gone
    ]
    for (const prompt of refused) {
      const res = await api.post('/v1/generations', { mode: 'text', prompt, variations: 1 }, token)
      expect422(res, '/prompt')
    }
    const bg = await api.post(
      '/v1/generations',
      {
        mode: 'text',
        prompt: 'a cat',
        variations: 1,
        background: { mode: 'prompt', value: 'sky\tblue' },
      },
      token,
    )
    expect422(bg, '/background/value')
    expect(await readBalance(inst.database.db, user.id)).toBe(1000)
    // accepted, and stored as what remains
    const ok = await api.post(
      '/v1/generations',
      { mode: 'text', prompt: `a${zw} cat\u2060 on a mat`, variations: 1 },
      token,
    )
    expect(ok.status).toBe(202)
    const [row] = await env.sql`select request from generations where id = ${ok.json.id}`
    expect(row!.request.prompt).toBe('a cat on a mat')
    expect((await checkLedger(inst.database.db)).ok).toBe(true)
  })
})
