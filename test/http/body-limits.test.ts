import { afterAll, describe, expect, it, setDefaultTimeout } from 'bun:test'
import { Elysia, t } from 'elysia'
import { connect } from 'node:net'
import { createApp } from '../../src/http/app'
import { bodyLimit } from '../../src/http/body'
import { makeLifecycle } from '../../src/lifecycle/lifecycle'
import { makeMetrics } from '../../src/obs/metrics'
import { serveOptions } from '../../src/server'
import { silentLog, useTestEnv } from '../support/env'

/**
 * Bodies over the limit (issue 15, item 9): the app answers every one itself,
 * JSON 413 payload_too_large with the request id, with and without
 * Content-Length, on a real listening server with production's Bun options
 * (Bun's own limit would answer a bare 413 first). A route may declare its
 * own limit (bodyLimit), which the OpenAPI document shows.
 */
setDefaultTimeout(30_000)
const env = await useTestEnv()
// production's default limit (1 MiB), and the listener's options as main() passes them
const inst = await env.instance()
const server = inst.app.listen({ ...serveOptions(inst.config), port: 0, hostname: '127.0.0.1' })
const base = `http://127.0.0.1:${server.server!.port}`

// an app with one route of its own limit, as uploads will have
const SMALL = 2048
const OWN = 10_000
const limited = createApp({
  log: silentLog,
  metrics: makeMetrics({ instance: 'body-limits' }),
  lifecycle: makeLifecycle(silentLog),
  guards: inst.guards,
  version: 'test',
  maxBodyBytes: SMALL,
  routes: [
    new Elysia()
      .post('/v1/echo', ({ body }) => ({ length: body.text.length }), {
        body: t.Object({ text: t.String() }),
      })
      .post('/v1/large', ({ body }) => ({ length: body.text.length }), {
        body: t.Object({ text: t.String() }),
        detail: { summary: 'takes more', ...bodyLimit(OWN) },
      })
      .post(
        '/v1/form',
        ({ body }) => ({ name: body.file.name, size: body.file.size, note: body.note }),
        {
          body: t.Object({ file: t.File(), note: t.String() }),
          detail: {
            summary: 'multipart',
            ...bodyLimit(OWN),
            requestBody: { content: { 'multipart/form-data': { schema: { type: 'object' } } } },
          },
        },
      ),
  ],
  adminRoutes: [],
})
limited.listen({ ...serveOptions(inst.config), port: 0, hostname: '127.0.0.1' })
const limitedBase = `http://127.0.0.1:${limited.server!.port}`

afterAll(() => {
  inst.app.server?.stop(true)
  limited.server?.stop(true)
})

function expect413(res: { status: number; headers: Headers }, json: any) {
  expect(res.status).toBe(413)
  expect(res.headers.get('content-type')).toStartWith('application/json')
  expect(json.error.code).toBe('payload_too_large')
  expect(json.error.requestId).toBe(res.headers.get('x-request-id'))
}

/** A chunked request over raw TCP: no Content-Length, the body in 64 KiB chunks. */
function sendChunked(port: number, path: string, body: string, contentType = 'application/json') {
  return new Promise<{ status: number; head: string; json: any }>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error('no response to the chunked request within 10 s'))
    }, 10_000)
    socket.on('error', () => {}) // the server may close while we still write
    socket.on('data', (chunk) => {
      text += chunk.toString('utf8')
      const end = text.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = text.slice(0, end)
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? NaN)
      const rest = text.slice(end + 4)
      if (Number.isNaN(length) || Buffer.byteLength(rest) < length) return
      clearTimeout(timer)
      socket.destroy()
      resolve({ status: Number(head.split(' ')[1]), head, json: JSON.parse(rest) })
    })
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\nTransfer-Encoding: chunked\r\n\r\n`,
    )
    for (let i = 0; i < body.length && !socket.destroyed; i += 65_536) {
      const part = body.slice(i, i + 65_536)
      socket.write(`${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n`)
    }
    if (!socket.destroyed) socket.write('0\r\n\r\n')
  })
}

describe('bodies over the limit', () => {
  const big = JSON.stringify({ email: 'a@example.com', password: 'x'.repeat(2_200_000) })

  it('answers a 2.2 MB body with a declared length with JSON 413 and the request id', async () => {
    const res = await fetch(`${base}/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: big,
    })
    expect413(res, await res.json())
  })

  it('answers a 2.2 MB chunked body with JSON 413 and the request id', async () => {
    const res = await sendChunked(server.server!.port!, '/v1/auth/register', big)
    expect(res.status).toBe(413)
    expect(res.head).toMatch(/content-type: application\/json/i)
    expect(res.json.error.code).toBe('payload_too_large')
    expect(res.head.toLowerCase()).toContain(`x-request-id: ${res.json.error.requestId}`)
  })

  it('holds a route to its own declared limit, and every other route to the default', async () => {
    const post = (path: string, n: number) =>
      fetch(`${limitedBase}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'x'.repeat(n) }),
      })
    const mid = 5_000 // over the default, under the route's own
    expect((await post('/v1/large', mid)).status).toBe(200)
    const refused = await post('/v1/echo', mid)
    const json = await refused.json()
    expect413(refused, json)
    expect(json.error.details.limit).toBe(SMALL)
    const over = await post('/v1/large', OWN)
    const overJson = await over.json()
    expect413(over, overJson)
    expect(overJson.error.details.limit).toBe(OWN)
    // chunked, to the route with its own limit
    const chunked = await sendChunked(
      limited.server!.port!,
      '/v1/large',
      JSON.stringify({ text: 'y'.repeat(OWN) }),
    )
    expect(chunked.status).toBe(413)
    expect(chunked.json.error.details.limit).toBe(OWN)
  })

  it('refuses a declared length over a route’s limit with that route’s limit, not the largest', async () => {
    const res = await fetch(`${limitedBase}/v1/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: 'x'.repeat(OWN * 2) }),
    })
    const json = await res.json()
    expect413(res, json)
    expect(json.error.details.limit).toBe(SMALL)
  })

  it('reads a multipart body up to the route’s limit, and refuses one over it', async () => {
    const form = (size: number) => {
      const f = new FormData()
      f.set('file', new File([new Uint8Array(size)], 'a.png', { type: 'image/png' }))
      f.set('note', 'hello')
      return f
    }
    const ok = await fetch(`${limitedBase}/v1/form`, { method: 'POST', body: form(4_000) })
    expect(await ok.json()).toEqual({ name: 'a.png', size: 4_000, note: 'hello' })
    const over = await fetch(`${limitedBase}/v1/form`, { method: 'POST', body: form(OWN) })
    expect413(over, await over.json())
    // chunked: counted as it arrives, not handed whole to a form parser
    const encoded = new Response(form(OWN))
    const type = encoded.headers.get('content-type')!
    const text = Buffer.from(await encoded.arrayBuffer()).toString('latin1')
    const chunked = await sendChunked(limited.server!.port!, '/v1/form', text, type)
    expect(chunked.status).toBe(413)
    expect(chunked.json.error.details.limit).toBe(OWN)
  })

  it('documents a route’s own limit in the OpenAPI document', async () => {
    const doc = await (await limited.handle(new Request('http://localhost/openapi/json'))).json()
    expect(doc.paths['/v1/large'].post['x-max-body-bytes']).toBe(OWN)
  })
})

describe('body media types', () => {
  const send = (path: string, body: BodyInit, headers: Record<string, string> = {}) =>
    fetch(`${limitedBase}${path}`, { method: 'POST', headers, body })
  async function expect415(res: Response) {
    const json = await res.json()
    expect(res.status).toBe(415)
    expect(json.error.code).toBe('unsupported_media_type')
    expect(json.error.requestId).toBe(res.headers.get('x-request-id'))
    return json
  }

  it('refuses multipart/form-data on a route that takes JSON', async () => {
    const form = new FormData()
    form.set('text', 'hello')
    const json = await expect415(await send('/v1/echo', form))
    expect(json.error.message).toContain('application/json')
  })

  it('refuses a body without Content-Type, and reads an empty one as no body', async () => {
    // bytes (not a string, which fetch would label text/plain) carry no Content-Type
    const bytes = new TextEncoder().encode(JSON.stringify({ text: 'hello' }))
    const res = await send('/v1/echo', bytes)
    expect(res.headers.get('content-type')).toStartWith('application/json')
    await expect415(res)
    const empty = await send('/v1/echo', new Uint8Array())
    expect(empty.status).toBe(422) // no body: the schema's required text is missing
  })

  it('reads an empty JSON body as no body, as clients send with a bodiless POST', async () => {
    const empty = await send('/v1/echo', '', { 'content-type': 'application/json' })
    // not 400 "not valid JSON": there is no body, and the schema's required text is missing
    expect([empty.status, (await empty.json()).error.code]).toEqual([422, 'validation_failed'])
  })

  it('refuses JSON on a route that takes multipart/form-data', async () => {
    const body = JSON.stringify({ file: 'x', note: 'hello' })
    const json = await expect415(
      await send('/v1/form', body, { 'content-type': 'application/json' }),
    )
    expect(json.error.message).toContain('multipart/form-data')
  })

  it('still takes JSON with a charset or a +json type', async () => {
    const body = JSON.stringify({ text: 'hello' })
    for (const type of [
      'application/json; charset=utf-8',
      'application/json;charset="UTF-8"',
      'application/merge-patch+json',
    ]) {
      const res = await send('/v1/echo', body, { 'content-type': type })
      expect({ type, status: res.status, body: await res.json() }).toEqual({
        type,
        status: 200,
        body: { length: 5 },
      })
    }
  })

  it('refuses JSON labelled with a charset other than UTF-8', async () => {
    const body = JSON.stringify({ text: 'hello' })
    for (const type of ['application/json; charset=utf-16', 'application/json; charset=latin1']) {
      const json = await expect415(await send('/v1/echo', body, { 'content-type': type }))
      expect(json.error.message).toContain('UTF-8')
    }
  })
})
