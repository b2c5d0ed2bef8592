import { afterAll, describe, expect, it, setDefaultTimeout } from 'bun:test'
import fc from 'fast-check'
import { checkLedger } from '../../src/ledger/service'
import { signPayload } from '../../src/ledger/webhook-signature'
import type { Instance } from '../../src/server'
import { useTestEnv } from '../support/env'
import { client } from '../support/http'
import { openSocket } from '../support/ws'

/**
 * The fuzz suite of issue 15 (invariant 8 of DESIGN.md): property-based
 * requests to every mutating endpoint (found in the app's own route table,
 * so a new one is fuzzed too), the list endpoints' query strings and every
 * WebSocket message type. Bodies are near-valid ones with fields dropped,
 * added or replaced by hostile values (wrong types, huge and tiny numbers,
 * numbers as strings, NUL, lone surrogates, format characters, deep nesting,
 * wide arrays), or raw: truncated JSON, garbage, wrong content types; with
 * random Idempotency-Keys and auth, and webhooks signed and unsigned.
 *
 * Properties: no 5xx; every error in API.md's shape with the request id;
 * every socket closes only with a documented code, never 1011; afterwards
 * the ledger check passes and the server is ready.
 *
 * About 2,000 cases, seeded: FUZZ_SEED=<n> bun test test/fuzz reproduces a run
 * (the seed is printed first; fast-check prints the failing case's path).
 */
setDefaultTimeout(120_000)
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31))
console.log(`fuzz seed ${SEED} (FUZZ_SEED=${SEED} bun test test/fuzz to reproduce)`)
const runs = (n: number) => ({ seed: SEED, numRuns: n, verbose: 1 as const })

const env = await useTestEnv()
const SECRET = 'whsec_fuzz_0123456789abcdef'
const inst: Instance = await env.instance({
  ADMIN_EMAILS: 'fuzz-admin@example.com',
  PAYMENT_WEBHOOK_SECRET: SECRET,
  RENDER_CONCURRENCY: '0',
  ALLOWED_ORIGINS: 'https://app.example.com',
})
const api = client(inst)
const admin = await api.register('fuzz-admin@example.com')
const member = await api.register()
await api.post(
  '/v1/admin/credits/grants',
  { userId: member.user.id, amount: 100_000, reason: 'fuzz' },
  admin.token,
)
const poseIds: string[] = (await env.sql`select id from poses order by name limit 3`).map(
  (r) => r.id,
)
const generationId: string = (
  await api.post(
    '/v1/generations',
    { mode: 'text', prompt: 'a fuzzed cat', variations: 1 },
    member.token,
  )
).json.id

const ERROR_CODES = new Set([
  'bad_request',
  'unauthorized',
  'insufficient_credits',
  'forbidden',
  'not_found',
  'idempotency_conflict',
  'conflict',
  'payload_too_large',
  'unsupported_media_type',
  'validation_failed',
  'rate_limited',
  'unavailable',
])

// ---------------------------------------------------------------- values

const HOSTILE_STRINGS = [
  '',
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udc00',
  '\udbff\udfff',
  '\u200b\u200b\u200b\u200b',
  'a\u200ba\u200ba\u200ba\u200ba\u200ba\u200ba\u200ba\u200ba\u200ba\u200ba',
  'java\tscript:alert(1)',
  'JavaScript:alert(1)',
  '\u001b[31mred\u001b[0m',
  '<script>alert(1)</script>',
  '%_\\',
  "'; drop table users; --",
  '😀😀😀',
  '\u202eevil',
  'é'.normalize('NFD'),
  '100',
  '1e3',
  '0x10',
  'true',
  'null',
  '{"a":1}',
  '#fff',
  '00000000-0000-0000-0000-000000000000',
  'x'.repeat(5000),
]

const hostileString = fc.oneof(
  // what Postgres cannot store, often: the edge must refuse it
  { weight: 3, arbitrary: fc.constantFrom('\u0000', 'a\u0000b', '\ud800', 'x\udc00y', '\udfff') },
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  {
    weight: 2,
    arbitrary: fc.string({
      unit: fc.constantFrom('\u0000', '\ud800', '\udc00', '\u200b', '\u00ad', 'a', ' ', '\n'),
      minLength: 1,
      maxLength: 30,
    }),
  },
)

const hostileNumber = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1, 1.5, 2 ** 31, 2 ** 53, 2 ** 64, 1e308, -1e308, 5e-324, -0),
)

function nested(depth: number): unknown {
  let v: unknown = 1
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v }
  return v
}

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  { weight: 3, arbitrary: hostileNumber },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 100 }).map(String) }, // numbers as strings
  { weight: 1, arbitrary: fc.constantFrom(null, true, false, [], {}) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3000 }).map(nested) }, // deep nesting
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 20_000 }).map((n) => Array(n).fill(7)) }, // wide
  { weight: 1, arbitrary: fc.array(hostileString, { maxLength: 30 }) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
)

/** Drops, replaces and adds fields of a valid body, at any depth of its paths. */
function mutated(valid: () => Record<string, unknown>, paths: string[]) {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('drop' as const), path: fc.constantFrom(...paths) }),
    fc.record({
      kind: fc.constant('set' as const),
      path: fc.constantFrom(...paths),
      value: hostileValue,
    }),
    fc.record({
      kind: fc.constant('extra' as const),
      path: fc.oneof(fc.constantFrom('__proto__', 'constructor', 'x'), fc.string({ maxLength: 8 })),
      value: hostileValue,
    }),
  )
  return fc.array(op, { minLength: 0, maxLength: 2 }).map((ops) => {
    const body = structuredClone(valid())
    for (const o of ops) {
      const keys = o.path.split('.')
      let target: any = body
      for (const k of keys.slice(0, -1)) {
        if (typeof target[k] !== 'object' || target[k] === null) target[k] = {}
        target = target[k]
      }
      const last = keys.at(-1)!
      if (o.kind === 'drop') delete target[last]
      else
        Object.defineProperty(target, last, {
          value: o.value,
          enumerable: true,
          writable: true,
          configurable: true,
        })
    }
    return body
  })
}

type Raw = { text: string | undefined; contentType: string | undefined }

/** A JSON body as sent: whole, truncated, replaced by garbage, or under another content type. */
function rawBody(body: fc.Arbitrary<unknown>): fc.Arbitrary<Raw> {
  const json = (v: unknown) => JSON.stringify(v) ?? 'null'
  return fc.oneof(
    { weight: 8, arbitrary: body.map((b) => ({ text: json(b), contentType: 'application/json' })) },
    {
      weight: 1,
      arbitrary: fc.tuple(body, fc.double({ min: 0, max: 1, noNaN: true })).map(([b, f]) => ({
        text: json(b).slice(0, Math.floor(json(b).length * f)),
        contentType: 'application/json',
      })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          body,
          fc.constantFrom(
            'text/plain',
            'application/x-www-form-urlencoded',
            'multipart/form-data; boundary=xyz',
            'multipart/form-data',
            'application/octet-stream',
            'application/vnd.api+json',
            'application/json; charset=latin1',
            'image/png',
            undefined,
          ),
        )
        .map(([b, contentType]) => ({ text: json(b), contentType })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.constantFrom('application/json', 'multipart/form-data; boundary=a'),
        )
        .map(([text, contentType]) => ({ text, contentType })),
    },
    { weight: 1, arbitrary: fc.constant({ text: undefined, contentType: 'application/json' }) },
  )
}

const OTHER_AUTH = fc.constantFrom('member', 'admin', 'none', 'garbage', 'bearer-only')
/** Mostly the caller the endpoint expects, so most cases get past the guard to the body. */
const authFor = (expected: string) =>
  fc.oneof({ weight: 4, arbitrary: fc.constant(expected) }, { weight: 1, arbitrary: OTHER_AUTH })
const auth = OTHER_AUTH
const idempotencyKey = fc.option(
  fc.oneof(
    fc.uuid(),
    fc.string({ maxLength: 300 }),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.constantFrom('same-key', 'same-key', ' ', 'é'),
  ),
  { nil: undefined },
)

function tokenFor(who: string): string | undefined {
  switch (who) {
    case 'member':
      return `Bearer ${member.token}`
    case 'admin':
      return `Bearer ${admin.token}`
    case 'garbage':
      return 'Bearer not.a.token'
    case 'bearer-only':
      return 'Bearer'
    default:
      return undefined
  }
}

// ---------------------------------------------------------------- checks

async function send(
  method: string,
  path: string,
  raw: Raw,
  headers: Record<string, string | undefined>,
) {
  const h = new Headers()
  for (const [k, v] of Object.entries({ ...headers, 'content-type': raw.contentType })) {
    if (v === undefined) continue
    try {
      h.set(k, v)
    } catch {
      // a value no HTTP client could send (a newline, a NUL): leave it out
    }
  }
  const res = await inst.app.handle(
    new Request(`http://localhost${path}`, { method, headers: h, body: raw.text }),
  )
  const text = await res.text()
  if (process.env.FUZZ_DEBUG) console.log(res.status, method, path, text.slice(0, 400))
  return { status: res.status, headers: res.headers, text }
}

/** The properties every HTTP answer has. */
function expectSane(res: { status: number; headers: Headers; text: string }, what: string) {
  const requestId = res.headers.get('x-request-id')
  expect(requestId, what).toBeTruthy()
  expect(res.status, `${what} → ${res.status} ${res.text.slice(0, 300)}`).toBeLessThan(500)
  if (res.status < 400) return
  if (res.status === 409 && res.headers.get('fly-replay')) return
  let json: any
  try {
    json = JSON.parse(res.text)
  } catch {
    throw new Error(`${what} → ${res.status} without a JSON body: ${res.text.slice(0, 200)}`)
  }
  expect(Object.keys(json), what).toEqual(['error'])
  expect(ERROR_CODES.has(json.error.code), `${what}: code ${json.error.code}`).toBe(true)
  expect(typeof json.error.message, what).toBe('string')
  expect(json.error.requestId, what).toBe(requestId)
  if (json.error.code === 'validation_failed') {
    expect(Array.isArray(json.error.details), what).toBe(true)
    for (const d of json.error.details) expect(typeof d.path, what).toBe('string')
  }
  expect(res.text, what).not.toMatch(/node_modules|\bat .+:\d+:\d+|\/src\//)
}

// ---------------------------------------------------------------- endpoints

type Endpoint = {
  method: string
  path: (p: string) => string
  valid: () => Record<string, unknown>
  paths: string[]
  signed?: boolean
  /** Who calls it (default member). */
  auth?: string
  runs: number
}

/** As a client would put text in a URL; a lone surrogate goes as the bytes of one (CESU-8). */
function urlEncode(s: string) {
  try {
    return encodeURIComponent(s)
  } catch {
    return `%ED%A0%80${encodeURIComponent(s.replace(/[\ud800-\udfff]/g, ''))}`
  }
}

const uuidPath = fc.oneof(
  fc.constant(() => generationId),
  fc.constant(() => crypto.randomUUID()),
  hostileString.map((s) => () => urlEncode(s)),
)

const ENDPOINTS: Record<string, Endpoint> = {
  'POST /v1/auth/register': {
    method: 'POST',
    path: () => '/v1/auth/register',
    valid: () => ({ email: `f-${crypto.randomUUID()}@example.com`, password: 'correct horse' }),
    paths: ['email', 'password'],
    auth: 'none',
    runs: 25,
  },
  'POST /v1/auth/login': {
    method: 'POST',
    path: () => '/v1/auth/login',
    valid: () => ({ email: member.user.email, password: member.password }),
    paths: ['email', 'password'],
    runs: 25,
  },
  'POST /v1/webhooks/payments': {
    method: 'POST',
    path: () => '/v1/webhooks/payments',
    valid: () => ({
      id: `evt_${crypto.randomUUID()}`,
      type: 'credits.purchased',
      userId: member.user.id,
      credits: 5,
    }),
    paths: ['id', 'type', 'userId', 'credits'],
    signed: true,
    auth: 'none',
    runs: 350,
  },
  'POST /v1/admin/credits/grants': {
    method: 'POST',
    path: () => '/v1/admin/credits/grants',
    valid: () => ({ userId: member.user.id, amount: 3, reason: 'fuzz grant', kind: 'grant' }),
    paths: ['userId', 'amount', 'reason', 'kind'],
    auth: 'admin',
    runs: 300,
  },
  'POST /v1/generations': {
    method: 'POST',
    path: () => '/v1/generations',
    valid: () =>
      Math.random() < 0.5
        ? { mode: 'text', prompt: 'a cat on a mat', variations: 1 }
        : {
            mode: 'library',
            poseIds: poseIds.slice(0, 2),
            variations: 1,
            background: { mode: 'color', value: '#abcdef' },
            formats: ['square'],
            deadlineSeconds: 600,
          },
    paths: [
      'mode',
      'prompt',
      'variations',
      'poseIds',
      'poseIds.0',
      'uploadId',
      'background',
      'background.mode',
      'background.value',
      'formats',
      'formats.0',
      'deadlineSeconds',
    ],
    runs: 500,
  },
  'POST /v1/generations/:id/cancel': {
    method: 'POST',
    path: (id) => `/v1/generations/${id}/cancel`,
    valid: () => ({}),
    paths: ['x'],
    runs: 150,
  },
}

/** Mutating routes nobody described above still get generic hostile bodies. */
function discovered(): Endpoint[] {
  const known = new Set(Object.keys(ENDPOINTS))
  return (inst.app.routes as { method: string; path: string }[])
    .filter((r) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method))
    .filter((r) => !known.has(`${r.method} ${r.path}`))
    .map((r) => ({
      method: r.method,
      path: (p: string) => r.path.replace(/:[a-zA-Z]+/g, p),
      valid: () => ({}),
      paths: ['name', 'id', 'value'],
      auth: r.path.startsWith('/v1/admin') ? 'admin' : 'member',
      runs: 40,
    }))
}

function headersFor(e: Endpoint) {
  return fc.record({
    who: authFor(e.auth ?? 'member'),
    key: idempotencyKey,
    signature: e.signed
      ? fc.constantFrom('valid', 'valid', 'valid', 'none', 'bad', 'stale', 'garbage')
      : fc.constant('none'),
  })
}

function signatureFor(mode: string, text: string | undefined) {
  const now = Math.floor(Date.now() / 1000)
  switch (mode) {
    case 'valid':
      return signPayload(text ?? '', SECRET, now)
    case 'stale':
      return signPayload(text ?? '', SECRET, now - 3600)
    case 'bad':
      return signPayload(text ?? '', 'another-secret', now)
    case 'garbage':
      return 't=abc,v1=zz'
    default:
      return undefined
  }
}

describe('fuzzing every mutating endpoint', () => {
  const endpoints = [
    ...Object.entries(ENDPOINTS),
    ...discovered().map((e) => [`${e.method} (discovered)`, e] as const),
  ]
  for (const [name, e] of endpoints) {
    it(`${name}: no 5xx, every error in API.md's shape`, async () => {
      await fc.assert(
        fc.asyncProperty(
          rawBody(mutated(e.valid, e.paths)),
          headersFor(e),
          uuidPath,
          async (raw, h, id) => {
            const path = e.path(id())
            const res = await send(e.method, path, raw, {
              authorization: tokenFor(h.who),
              'idempotency-key': h.key,
              'atelier-signature': signatureFor(h.signature, raw.text),
            })
            expectSane(res, `${e.method} ${path} ${raw.contentType} ${raw.text?.slice(0, 200)}`)
          },
        ),
        runs(e.runs),
      )
    })
  }
})

describe('fuzzing query strings', () => {
  const LISTS = [
    '/v1/generations',
    '/v1/credits/ledger',
    '/v1/library/poses',
    '/v1/library/categories',
  ]
  const param = fc.tuple(
    fc.constantFrom('limit', 'cursor', 'status', 'category', 'tag', 'q', 'from', 'to', 'x'),
    fc.oneof(
      hostileString,
      fc.integer().map(String),
      fc.constantFrom('0', '1', '100', '101', '-1', '1.5', '1e2', ' 5'),
      fc
        .jsonValue({ maxDepth: 2 })
        .map((v) => Buffer.from(JSON.stringify(v) ?? '').toString('base64url')), // forged cursors
      fc.constantFrom(
        Buffer.from(JSON.stringify(['+275760-09-13T00:00:00.000Z', crypto.randomUUID()])).toString(
          'base64url',
        ),
        Buffer.from(JSON.stringify([2 ** 63])).toString('base64url'),
      ),
    ),
  )
  it('GET lists: no 5xx, every error in API.md’s shape', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...LISTS),
        fc.array(param, { maxLength: 4 }),
        auth,
        async (path, params, who) => {
          const qs = params.map(([k, v]) => `${k}=${urlEncode(v)}`).join('&')
          const res = await send(
            'GET',
            `${path}?${qs}`,
            { text: undefined, contentType: undefined },
            {
              authorization: tokenFor(who),
            },
          )
          expectSane(res, `GET ${path}?${qs}`)
        },
      ),
      runs(300),
    )
  })
})

describe('fuzzing WebSocket messages', () => {
  inst.app.listen({ port: 0, hostname: '127.0.0.1' })
  const url = `ws://127.0.0.1:${inst.app.server!.port}/v1/ws`
  afterAll(() => inst.app.server?.stop(true))
  const CLOSE_CODES = new Set([1000, 1008, 1009, 4401, 4408])
  const eventId = fc.oneof(
    fc.constantFrom(
      '0-0',
      '1-0',
      '99999999999999999999-0',
      '18446744073709551615-18446744073709551615',
      'abc',
      '',
      '-1-0',
      '01-1',
    ),
    fc
      .tuple(fc.bigInt({ min: 0n, max: 2n ** 70n }), fc.bigInt({ min: 0n, max: 2n ** 70n }))
      .map(([a, b]) => `${a}-${b}`),
    hostileString,
  )
  const message = fc.oneof(
    fc.record({ type: fc.constant('ping') }),
    fc.record({ type: fc.constant('resume'), after: eventId }),
    fc.record({ type: fc.constant('resume'), after: hostileValue }),
    fc.record({ type: fc.constant('auth'), token: fc.constant('again') }),
    fc.record({ type: hostileValue }),
    fc.dictionary(fc.string({ maxLength: 6 }), hostileValue, { maxKeys: 4 }),
    hostileValue,
  )
  const authMessage = fc.oneof(
    fc.record({
      type: fc.constant('auth'),
      token: fc.constant('good'),
      resumeAfter: fc.option(eventId, { nil: undefined }),
    }),
    fc.record({
      type: fc.constant('auth'),
      token: fc.oneof(hostileValue, fc.constant('good')),
      resumeAfter: hostileValue,
    }),
    fc.record({ type: fc.constant('auth'), token: hostileString }),
    message,
  )
  const asText = fc.oneof(
    { weight: 6, arbitrary: fc.constant('json') },
    { weight: 1, arbitrary: fc.constant('truncated') },
    { weight: 1, arbitrary: fc.constant('binary') },
  )

  function frame(m: unknown, how: string): string | Uint8Array {
    const text = JSON.stringify(m) ?? 'null'
    if (how === 'truncated') return text.slice(0, Math.max(1, text.length >> 1))
    if (how === 'binary') return new TextEncoder().encode(text)
    return text
  }

  it('every message type: closes only with documented codes, never 1011', async () => {
    await fc.assert(
      fc.asyncProperty(authMessage, message, asText, async (first, second, how) => {
        const socket = await openSocket(url, { timeoutMs: 5000 })
        const withToken =
          typeof first === 'object' && first !== null && (first as any).token === 'good'
            ? { ...(first as object), token: member.token }
            : first
        socket.ws.send(frame(withToken, how))
        socket.ws.send(frame(second, 'json'))
        socket.send({ type: 'ping' })
        // until the pong (the socket survived both) or the close
        const outcome = await (async () => {
          for (;;) {
            let m: any
            try {
              m = await socket.next()
            } catch {
              return 'closed'
            }
            expect(['ready', 'pong', 'event', 'resync', 'reconnect']).toContain(m.type)
            if (m.type === 'pong') return 'alive'
          }
        })()
        if (outcome === 'alive') await socket.close()
        const { code } = await socket.closed()
        expect(
          CLOSE_CODES.has(code),
          `closed with ${code} after ${JSON.stringify(withToken)?.slice(0, 200)} then ${JSON.stringify(second)?.slice(0, 200)}`,
        ).toBe(true)
      }),
      runs(300),
    )
  })
})

describe('after the fuzzing', () => {
  it('the ledger check passes and the server is ready', async () => {
    expect((await checkLedger(inst.database.db)).ok).toBe(true)
    const ready = await inst.app.handle(new Request('http://localhost/health/ready'))
    expect(ready.status).toBe(200)
  })
})
