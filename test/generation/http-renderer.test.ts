import { describe, expect, it } from 'bun:test'
import sharp from 'sharp'
import { PermanentError } from '../../src/errors'
import { RetryLater } from '../../src/generation/renderers/renderer'
import { hang, imageResponse } from './fake-inference'
import { failure, useHttpRendererFixture } from './http-renderer-fixture'
import { libraryInput, never, sampleImage } from './fixtures'

const { server, png, renderer } = await useHttpRendererFixture()

describe('http renderer: requests and answers', () => {
  it('posts the input as JSON with the bearer token and returns the image', async () => {
    const out = await renderer().render(libraryInput(), never())
    expect(out.contentType).toBe('image/png')
    expect(Buffer.compare(out.bytes, png)).toBe(0)
    const [sent] = server.received
    expect(sent!.headers.get('authorization')).toBe('Bearer test-token')
    expect(sent!.headers.get('content-type')).toBe('application/json')
    expect(sent!.headers.get('idempotency-key')).toBe('gen-1:pose-1-v0')
    expect(sent!.body).toEqual({ ...libraryInput(), size: 1024 })
  })

  it('re-encodes a JPEG answer as PNG and passes WebP through', async () => {
    const jpeg = await sampleImage('jpeg')
    server.respond = () => imageResponse(jpeg, 'image/jpeg')
    const fromJpeg = await renderer().render(libraryInput(), never())
    expect(fromJpeg.contentType).toBe('image/png')
    expect((await sharp(fromJpeg.bytes).metadata()).format).toBe('png')
    const webp = await sampleImage('webp')
    server.respond = () => imageResponse(webp, 'image/webp')
    expect((await renderer().render(libraryInput(), never())).contentType).toBe('image/webp')
  })

  it('turns a timeout into RetryLater', async () => {
    server.respond = hang
    const err = await failure(renderer({ timeoutMs: 100 }).render(libraryInput(), never()))
    expect(err).toBeInstanceOf(RetryLater)
    expect(err.message).toContain('100 ms')
  })

  it('turns 503 with Retry-After: 2 into RetryLater after 2000 ms', async () => {
    server.respond = () => new Response('busy', { status: 503, headers: { 'retry-after': '2' } })
    const err = await failure(renderer().render(libraryInput(), never()))
    expect(err).toBeInstanceOf(RetryLater)
    expect((err as RetryLater).retryAfterMs).toBe(2000)
  })

  it('honours Retry-After as an HTTP-date on 429', async () => {
    const at = new Date(Date.now() + 30_000).toUTCString()
    server.respond = () => new Response(null, { status: 429, headers: { 'retry-after': at } })
    const err = (await failure(renderer().render(libraryInput(), never()))) as RetryLater
    expect(err).toBeInstanceOf(RetryLater)
    expect(err.retryAfterMs).toBeGreaterThan(25_000)
    expect(err.retryAfterMs).toBeLessThanOrEqual(30_000)
  })

  it('turns 400 into a PermanentError', async () => {
    server.respond = () => new Response('bad pose', { status: 400 })
    const err = await failure(renderer().render(libraryInput(), never()))
    expect(err).toBeInstanceOf(PermanentError)
    expect((err as PermanentError).code).toBe('render_rejected')
  })

  it('turns an unreachable provider into RetryLater', async () => {
    const gone = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response() })
    const url = `http://127.0.0.1:${gone.port}/render`
    await gone.stop(true)
    expect(await failure(renderer({ url }).render(libraryInput(), never()))).toBeInstanceOf(
      RetryLater,
    )
  })

  it('rejects a wrong content type', async () => {
    server.respond = () =>
      new Response('<html>oops</html>', { headers: { 'content-type': 'text/html' } })
    const err = await failure(renderer().render(libraryInput(), never()))
    expect(err).toBeInstanceOf(RetryLater)
    expect(err.message).toContain('text/html')
  })

  it('rejects bytes that are not an image, or a truncated one, despite the content type', async () => {
    server.respond = () => imageResponse(new TextEncoder().encode('definitely not a png'))
    expect(await failure(renderer().render(libraryInput(), never()))).toBeInstanceOf(RetryLater)
    const big = await sampleImage('png', 512, 512)
    server.respond = () => imageResponse(big.subarray(0, Math.floor(big.length / 2)))
    const err = await failure(renderer().render(libraryInput(), never()))
    expect(err).toBeInstanceOf(RetryLater)
    expect(err.message).toContain('unusable image')
  })

  it('rejects a body over the size cap by its Content-Length', async () => {
    const big = await sampleImage('png', 600, 600)
    server.respond = () => imageResponse(big)
    const err = await failure(renderer({ maxBytes: 100 }).render(libraryInput(), never()))
    expect(err).toBeInstanceOf(RetryLater)
    expect(err.message).toContain('more than 100 bytes')
  })

  it('rejects an endless body while streaming it, without buffering it all', async () => {
    let sent = 0
    server.respond = () =>
      new Response(
        new ReadableStream({
          pull(controller) {
            sent += 16 * 1024
            controller.enqueue(new Uint8Array(16 * 1024))
          },
        }),
        { headers: { 'content-type': 'image/png' } },
      )
    const err = await failure(
      renderer({ maxBytes: 64 * 1024, timeoutMs: 10_000 }).render(libraryInput(), never()),
    )
    expect(err).toBeInstanceOf(RetryLater)
    expect(err.message).toContain(`more than ${64 * 1024} bytes`)
    expect(sent).toBeLessThan(64 * 1024 * 1024)
  })

  it('stops a render in flight when its caller aborts, with the caller’s reason', async () => {
    server.respond = hang
    const controller = new AbortController()
    const pending = renderer().render(libraryInput(), controller.signal)
    await server.whenInFlight(1)
    controller.abort(new Error('item cancelled'))
    expect((await failure(pending)).message).toBe('item cancelled')
  })

  it('hands renders in flight back as RetryLater on close, and refuses new ones', async () => {
    server.respond = hang
    const r = renderer()
    const pending = r.render(libraryInput(), never())
    await server.whenInFlight(1)
    await r.close()
    expect(await failure(pending)).toBeInstanceOf(RetryLater)
    expect(await failure(r.render(libraryInput(), never()))).toBeInstanceOf(RetryLater)
  })
})
