import { describe, expect, it } from 'bun:test'
import postgres from 'postgres'
import { client, rawExchange, serveOnLoopback } from '../support/http'
import { useTestEnv } from '../support/env'

const LIMIT = 2048
const env = await useTestEnv()
const inst = await env.instance({ MAX_BODY_BYTES: String(LIMIT) })
const api = client(inst)

/** Asserts API.md's error shape, the request id agreement, and that nothing internal leaks. */
function expectError(
  res: { status: number; headers: Headers; json: any; text: string },
  status: number,
  code: string,
) {
  expect(res.status).toBe(status)
  expect(res.headers.get('content-type')).toStartWith('application/json')
  expect(Object.keys(res.json)).toEqual(['error'])
  const { error } = res.json
  expect(error.code).toBe(code)
  expect(typeof error.message).toBe('string')
  expect(error.message.length).toBeGreaterThan(0)
  expect(error.requestId).toBe(res.headers.get('x-request-id'))
  for (const key of Object.keys(error))
    expect(['code', 'message', 'requestId', 'details']).toContain(key)
  expect(res.text).not.toMatch(/\bat .+:\d+:\d+|stack|node_modules|\/src\//i)
}

/** A body that arrives in pieces with no Content-Length (chunked on the wire). */
function streamOf(chunks: string[]) {
  const bytes = new TextEncoder()
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(bytes.encode(chunk))
      controller.close()
    },
  })
}

async function send(request: Request) {
  const res = await inst.app.handle(request)
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {}
  return { status: res.status, headers: res.headers, json, text }
}

describe('error mapping', () => {
  it('answers malformed JSON with 400 bad_request', async () => {
    const res = await api.post('/v1/auth/register', '{"email": "a@example.com", "password": ')
    expectError(res, 400, 'bad_request')
    expect(res.json.error.message).toContain('JSON')
  })

  it('answers an unknown route with a JSON 404 not_found', async () => {
    for (const [method, path] of [
      ['GET', '/v1/nothing-here'],
      ['POST', '/v1/nothing/here'],
      ['DELETE', '/v1/me'],
      ['GET', '/nothing-here'], // / is the browser client (src/web)
    ] as const)
      expectError(await api.call(method, path), 404, 'not_found')
  })

  it('refuses a declared Content-Length over MAX_BODY_BYTES with 413 before reading it', async () => {
    const body = JSON.stringify({ email: 'big@example.com', password: 'x'.repeat(LIMIT) })
    let pulled = 0
    const res = await send(
      new Request('http://localhost/v1/auth/register', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': String(body.length) },
        // highWaterMark 0: the stream is pulled only when someone reads the body
        body: new ReadableStream(
          {
            pull(controller) {
              pulled++
              controller.enqueue(new TextEncoder().encode(body))
              controller.close()
            },
          },
          { highWaterMark: 0 },
        ),
        duplex: 'half',
      } as RequestInit),
    )
    expectError(res, 413, 'payload_too_large')
    expect(res.json.error.details).toEqual({ limit: LIMIT })
    expect(pulled).toBe(0)
  })

  it('cuts off a chunked body without Content-Length once it passes MAX_BODY_BYTES', async () => {
    const chunk = 'x'.repeat(1000)
    const request = new Request('http://localhost/v1/auth/register', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: streamOf(['{"email":"big@example.com","password":"', chunk, chunk, chunk, '"}']),
      duplex: 'half',
    } as RequestInit)
    expect(request.headers.get('content-length')).toBeNull()
    expectError(await send(request), 413, 'payload_too_large')
  })

  it('refuses text, form and binary bodies with 415 without reading them', async () => {
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/octet-stream',
    ]) {
      const chunk = 'x'.repeat(1000)
      const res = await send(
        new Request('http://localhost/v1/auth/register', {
          method: 'POST',
          headers: { 'content-type': type },
          body: streamOf([chunk, chunk, chunk]),
          duplex: 'half',
        } as RequestInit),
      )
      expectError(res, 415, 'unsupported_media_type')
    }
  })

  it('accepts a chunked body under the limit', async () => {
    const res = await send(
      new Request('http://localhost/v1/auth/register', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: streamOf(['{"email":"chunked@example.com",', '"password":"long enough"}']),
        duplex: 'half',
      } as RequestInit),
    )
    expect(res.status).toBe(201)
    expect(res.json.user.email).toBe('chunked@example.com')
  })

  it('answers a schema failure with 422 validation_failed and the failing paths', async () => {
    const res = await api.post('/v1/auth/register', { email: 42, password: 'short' })
    expectError(res, 422, 'validation_failed')
    const details = res.json.error.details as { path: string; message: string }[]
    expect(Array.isArray(details)).toBe(true)
    for (const d of details) {
      expect(typeof d.path).toBe('string')
      expect(typeof d.message).toBe('string')
    }
    const paths = details.map((d) => d.path)
    expect(paths).toContain('/email')
    expect(paths).toContain('/password')
  })

  it('answers a missing body with 422, not 500', async () => {
    const res = await api.call('POST', '/v1/auth/register', {
      headers: { 'content-type': 'application/json' },
    })
    expectError(res, 422, 'validation_failed')
  })

  it('answers a JSON body of the wrong type with 422', async () => {
    for (const body of ['[]', '"text"', 'null', '7'])
      expectError(await api.post('/v1/auth/register', body), 422, 'validation_failed')
  })

  it('answers 401 unauthorized in the same shape', async () => {
    expectError(await api.get('/v1/me'), 401, 'unauthorized')
  })

  it('hides internals behind a 500 that names only the request id', async () => {
    // the users table disappears under a running instance: the driver error mentions SQL
    const sql = postgres(env.databaseUrl, { max: 1, onnotice: () => {} })
    await sql`alter table users rename to users_elsewhere`
    try {
      const res = await api.post('/v1/auth/register', {
        email: 'lost@example.com',
        password: 'long enough',
      })
      expectError(res, 500, 'internal')
      expect(res.json.error.details).toBeUndefined()
      expect(res.text).not.toContain('users')
      expect(res.text).not.toMatch(/relation|select|insert|postgres/i)
    } finally {
      await sql`alter table users_elsewhere rename to users`
      await sql.end()
    }
  })
})

describe('request ids', () => {
  it('puts a fresh X-Request-Id on every response, success or error', async () => {
    const ok = await api.get('/health/live')
    const missing = await api.get('/nope')
    const ids = [ok.headers.get('x-request-id'), missing.headers.get('x-request-id')]
    for (const id of ids) expect(id).toMatch(/^[0-9a-f-]{36}$/)
    expect(ids[0]).not.toBe(ids[1])
    expect(missing.json.error.requestId).toBe(ids[1])
  })

  it('echoes a sane caller X-Request-Id in the header and the error body', async () => {
    const id = 'req-2024.01:abc_DEF'
    const res = await api.call('GET', '/v1/unknown', { headers: { 'x-request-id': id } })
    expect(res.headers.get('x-request-id')).toBe(id)
    expect(res.json.error.requestId).toBe(id)
    const ok = await api.call('GET', '/health/live', { headers: { 'x-request-id': id } })
    expect(ok.headers.get('x-request-id')).toBe(id)
  })

  it('replaces an insane caller X-Request-Id', async () => {
    for (const insane of ['has spaces in it', 'x'.repeat(300), '<script>', 'a\tb', 'ünïcode']) {
      const res = await api.call('GET', '/v1/unknown', { headers: { 'x-request-id': insane } })
      const id = res.headers.get('x-request-id')
      expect(id).not.toBe(insane)
      expect(id).toMatch(/^[0-9a-f-]{36}$/)
      expect(res.json.error.requestId).toBe(id)
    }
  })
})

describe('a request without a usable Host', () => {
  // HTTP/1.0 without Host (some balancers' health checks), an empty one, one with a space:
  // Bun hands the app a bare path for request.url, which `new URL` refuses
  it('is served by its path like any other, never a 500', async () => {
    const server = serveOnLoopback(inst)
    try {
      const heads = ['HTTP/1.0\r\n', 'HTTP/1.1\r\nHost: a b\r\n', 'HTTP/1.1\r\nHost: \r\n']
      for (const head of heads) {
        const live = await rawExchange(
          server.port!,
          `GET /health/live ${head}Connection: close\r\n\r\n`,
          `an answer to /health/live over ${JSON.stringify(head)}`,
        )
        expect({ head, status: live.split('\r\n')[0] }).toEqual({ head, status: 'HTTP/1.1 200 OK' })
        const body = '{"email":"nobody@example.com","password":"not the password"}'
        const login = await rawExchange(
          server.port!,
          `POST /v1/auth/login ${head}Content-Type: application/json\r\n` +
            `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
          `an answer to a login over ${JSON.stringify(head)}`,
        )
        expect({ head, status: login.split('\r\n')[0] }).toEqual({
          head,
          status: 'HTTP/1.1 401 Unauthorized',
        })
      }
    } finally {
      server.stop(true)
    }
  })
})
