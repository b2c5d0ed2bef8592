import { afterAll, describe, expect, it } from 'bun:test'
import sharp from 'sharp'
import { useTestEnv } from '../support/env'
import { client, rawExchange, serveOnLoopback } from '../support/http'

/**
 * Upload figures as an operator scrapes them: GET /metrics over a real
 * listener, after uploads that end in each outcome (stored, 413 declared and
 * streamed, 415, 422, 429) and a replayed Idempotency-Key.
 */
const METRICS_TOKEN = 'upload-metrics-token-0123456789'
const env = await useTestEnv()
const inst = await env.instance({
  RENDER_CONCURRENCY: '0',
  MAX_UPLOADS_PER_HOUR: '2',
  MAX_UPLOAD_BYTES: '262144',
  METRICS_TOKEN,
})
const api = client(inst)
const server = serveOnLoopback(inst)
const base = `http://127.0.0.1:${server.port}`
afterAll(() => server.stop(true))

async function upload(token: string, bytes: Uint8Array | string, headers = {}) {
  const form = new FormData()
  form.append('file', new File([bytes as BlobPart], 'picture.png', { type: 'image/png' }))
  const res = await fetch(`${base}/v1/uploads`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, ...headers },
    body: form,
  })
  return { status: res.status, json: (await res.json()) as any }
}

/** uploads_total by outcome and uploads_stored_bytes_total, as scraped. */
async function scrape() {
  const res = await fetch(`${base}/metrics`, {
    headers: { authorization: `Bearer ${METRICS_TOKEN}` },
  })
  expect(res.status).toBe(200)
  const text = await res.text()
  const outcomes: Record<string, number> = {}
  for (const m of text.matchAll(/^uploads_total\{outcome="([a-z_]+)"[^}]*\} (\d+)$/gm))
    outcomes[m[1]!] = Number(m[2])
  const bytes = /^uploads_stored_bytes_total(?:\{[^}]*\})? (\d+)$/m.exec(text)?.[1]
  return { outcomes, bytes: bytes === undefined ? undefined : Number(bytes) }
}

/** A declared Content-Length over every limit, headers only: the app answers before any body. */
async function declaredTooLarge(token: string) {
  const response = await rawExchange(
    server.port!,
    'POST /v1/uploads HTTP/1.1\r\nHost: localhost\r\n' +
      `Authorization: Bearer ${token}\r\n` +
      'Content-Type: multipart/form-data; boundary=x\r\n' +
      `Content-Length: ${11 * 1024 * 1024}\r\n\r\n`,
    'an answer to the declared 11 MiB upload',
  )
  expect(response).toStartWith('HTTP/1.1 413')
}

describe('upload metrics', () => {
  it('count uploads by outcome and the bytes stored, on /metrics', async () => {
    const before = await scrape()
    expect(before.outcomes).toEqual({
      stored: 0,
      payload_too_large: 0,
      unsupported_media_type: 0,
      validation_failed: 0,
      rate_limited: 0,
    })
    expect(before.bytes).toBe(0)

    const { token } = await api.register()
    const png = (side: number, colour: string) =>
      sharp({ create: { width: side, height: side, channels: 3, background: colour } })
        .png()
        .toBuffer()
    const first = await upload(token, await png(300, '#102030'), { 'idempotency-key': 'one' })
    expect(first.status).toBe(201)
    // the same key again: the first response, not a second upload
    const replay = await upload(token, await png(300, '#102030'), { 'idempotency-key': 'one' })
    expect(replay.status).toBe(201)
    expect(replay.json.id).toBe(first.json.id)
    const second = await upload(token, await png(280, '#405060'))
    expect(second.status).toBe(201)
    expect((await upload(token, await png(290, '#708090'))).status).toBe(429)
    // refusals of another user (the first is at its hourly limit)
    const other = (await api.register()).token
    expect((await upload(other, 'just text, named .png')).status).toBe(415)
    expect((await upload(other, await png(100, '#000000'))).status).toBe(422)
    expect((await upload(other, new Uint8Array(300 * 1024))).status).toBe(413)
    await declaredTooLarge(other)

    const after = await scrape()
    expect(after.outcomes).toEqual({
      stored: 2,
      payload_too_large: 2,
      unsupported_media_type: 1,
      validation_failed: 1,
      rate_limited: 1,
    })
    const [stored] = await env.sql`select sum(bytes)::int as bytes from uploads`
    expect(stored!.bytes).toBe(first.json.bytes + second.json.bytes)
    expect(after.bytes).toBe(stored!.bytes)
  })
})
